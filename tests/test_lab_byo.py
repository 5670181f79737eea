"""Bring your own model: a user's nn.Module trains through `mltrainer run` (tabular, image and text
families, each with its own template and export), with per-group learning rates in the metrics;
mistakes are one sentence at the architecture stage; `mltrainer try` evaluates a class quickly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from mltrainer.app import app
from tests.conftest import make_classification_frame
from tools.script_gates import check_imports, check_syntax

runner = CliRunner()
TABULAR_NET = '''from __future__ import annotations

import torch
import torch.nn as nn


class TinyNet(nn.Module):
    """Backbone and head, so the spec can give each its own learning rate."""

    def __init__(self, in_features: int, n_classes: int, hidden: int = 8):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


if __name__ == "__main__":
    print(TinyNet(4, 2)(torch.zeros(1, 4)))
'''
IMAGE_NET = '''import torch.nn as nn


class SmallCNN(nn.Module):
    def __init__(self, in_channels, n_classes, width=8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.head(self.features(x))
'''
TEXT_NET = '''import torch.nn as nn


class MeanEmbedding(nn.Module):
    """Mean of the token embeddings (padding left out) → linear head."""

    def __init__(self, vocab_size, n_classes, pad_id=0, dim=16):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, ids):
        keep = (ids != self.pad_id).unsqueeze(-1).float()
        return self.head((self.embed(ids) * keep).sum(1) / keep.sum(1).clamp(min=1.0))
'''
COLORS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 200)}
TOPICS = {"sport": ["goal", "match", "team", "coach"], "food": ["pizza", "bake", "sauce", "cheese"],
          "tech": ["laptop", "code", "server", "chip"]}


def show(job: str) -> dict[str, Any]:
    result = runner.invoke(app, ["show", job, "--json"])
    assert result.exit_code == 0, result.output
    detail: dict[str, Any] = json.loads(result.output)
    return detail


def context_of(job: str) -> dict[str, Any]:
    from mltrainer import settings
    from mltrainer.store import Store

    store = Store(settings.db_path())
    try:
        return dict(json.loads(store.require_job(job).context_json))
    finally:
        store.close()


def test_a_user_module_trains_with_param_group_learning_rates(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.py").write_text(TABULAR_NET)
    frame = make_classification_frame(260)
    frame.iloc[:240].to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "spec.yaml").write_text("""task: predict the label
data: {source: data.csv, target: label}
hyperparameters: {epochs: 3, patience: 3, lr: 0.001}
architecture:
  module: models/net.py:TinyNet
  kwargs: {hidden: 16}
optimizer:
  name: adamw
  param_groups:
    - {match: '^net\\.backbone\\.', name: backbone, lr: 0.0001}
    - {match: '^net\\.head\\.', name: head, lr: 0.01, weight_decay: 0.0}
""")
    result = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--job-id", "byo"])
    assert result.exit_code == 0, result.output
    detail = show("byo")
    custom = detail["architecture"]["custom"]
    assert custom["source"] == "net.py:TinyNet" and custom["kwargs"] == {"hidden": 16}
    assert Path(custom["model_file"]).read_text() == TABULAR_NET  # copied into the job folder as is
    candidate = detail["architecture"]["candidates"][0]
    assert candidate["parameters"] == (6 * 16 + 16) + (16 * 2 + 2) == candidate["summary"]["total_parameters"]
    rows = [r for r in context_of("byo")["training_metrics"] if r["model"] == "custom"]
    assert rows and rows[0]["lr_backbone"] == pytest.approx(1e-4) and rows[0]["lr_head"] == pytest.approx(1e-2)
    logs = "\n".join(context_of("byo")["training_logs"])
    assert '"lr_groups": {"backbone": 0.0001, "head": 0.01}' in logs  # as train.py printed it
    script = Path(detail["artifacts"]["training_script"]).read_text()
    check_imports(check_syntax(script))  # standalone: stdlib, numpy, torch, safetensors only
    assert "CUSTOM_MODEL_SOURCE = r'''from __future__ import annotations" in script
    assert "'param_groups': [{'lr': 0.0001, 'match': '^net\\\\.backbone\\\\.', 'name': 'backbone'}" in script

    export = Path(detail["artifacts"]["export_dir"])
    assert (export / "custom_nets.py").is_file() and "torch==2.13.0" in (export / "requirements.txt").read_text()
    assert json.loads((export / "model.json").read_text())["kind"] == "custom"
    frame.iloc[240:].drop(columns=["label"]).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["predict", "byo", "--input", str(tmp_path / "new.csv"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(out)
    assert len(predicted) == 20 and set(predicted["label"]) <= {"yes", "no"}
    assert np.allclose(predicted[["proba_no", "proba_yes"]].sum(axis=1), 1.0)


def test_an_image_module_trains_exports_and_predicts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name, color in COLORS.items():
        (tmp_path / "squares" / name).mkdir(parents=True)
        for i in range(16):
            pixels = np.clip(np.array(color)[None, None, :] + rng.normal(0, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "squares" / name / f"{i:02d}.png")
    (tmp_path / "cnn.py").write_text(IMAGE_NET)
    (tmp_path / "spec.yaml").write_text("""task: tell the colour of each square
task_type: image_classification
data: {source: squares}
hyperparameters: {epochs: 4, batch_size: 8, patience: 4, lr: 0.01}
architecture: {module: cnn.py:SmallCNN, kwargs: {width: 6}}
optimizer: {name: SGD, params: {momentum: 0.9}, grokfast: {alpha: 0.9, lamb: 1.0}}
""")
    result = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--job-id", "squares"])
    assert result.exit_code == 0, result.output
    detail = show("squares")
    assert detail["config"]["arch"] == "custom" and detail["best_metric"]["model"] == "custom"
    script = Path(detail["artifacts"]["training_script"]).read_text()
    assert "class Grokfast(cls):" in script and "'grokfast': {'alpha': 0.9, 'lamb': 1.0}" in script
    export = Path(detail["artifacts"]["export_dir"])
    assert "class SmallCNN(nn.Module):" in (export / "image_nets.py").read_text()
    assert json.loads((export / "torchscript.json").read_text())["torchscript"] == "model.torchscript.pt"
    assert detail["test_metrics"]["accuracy"] > 0.5
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in sorted((tmp_path / "squares" / "red").glob("*.png"))[:3]) + "\n")
    result = runner.invoke(app, ["predict", "squares", "--input", str(listing), "--output", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 4


def test_a_text_module_trains_on_token_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(150):
        label = list(TOPICS)[i % 3]
        rows.append({"message": " ".join(rng.choice(TOPICS[label], 3)) + " and so on", "topic": label})
    pd.DataFrame(rows).to_csv(tmp_path / "texts.csv", index=False)
    (tmp_path / "bag.py").write_text(TEXT_NET)
    (tmp_path / "spec.yaml").write_text("task: classify the topic\ntask_type: text_classification\n"
                                        "data: {source: texts.csv, text: message, target: topic}\n"
                                        "hyperparameters: {epochs: 4, patience: 4, lr: 0.02}\n"
                                        "architecture: {module: bag.py:MeanEmbedding}\n")
    result = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--job-id", "topics"])
    assert result.exit_code == 0, result.output
    detail = show("topics")
    candidate = detail["architecture"]["candidates"][0]
    vocab = json.loads((Path(detail["data_paths"]["dir"]) / "meta.json").read_text())["tokenizer"]["vocab_size"]
    assert candidate["parameters"] == vocab * 16 + 16 * 3 + 3  # vocab_size and n_classes came from the data
    assert detail["best_metric"]["model"] == "custom" and detail["test_metrics"]["accuracy"] > 0.6
    assert "class MeanEmbedding" in (Path(detail["artifacts"]["export_dir"]) / "text_classifier_nets.py").read_text()


def test_mistakes_are_one_sentence_at_the_architecture_stage(tmp_path: Path) -> None:
    make_classification_frame(120).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "net.py").write_text(TABULAR_NET.replace("return self.head(self.backbone(x))",
                                                         "return self.head(self.backbone(x))[:, :1]"))
    cases = {"net.py:Nope": "net.py has no class 'Nope'; it defines TinyNet.",
             "net.py:TinyNet": "returned shape [2, 1] for a batch of 2; it must return [2, 2] for this task.",
             "missing.py:Net": "missing.py does not exist; check the path in FILE.py:Class."}
    for number, (target, expected) in enumerate(cases.items()):
        (tmp_path / "spec.yaml").write_text(f"task: predict the label\ndata: {{source: data.csv, target: label}}\n"
                                            f"architecture: {{module: '{target}'}}\n")
        result = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--job-id", f"bad{number}"])
        assert result.exit_code != 0
        failure = show(f"bad{number}")["failure"]
        assert failure["stage"] == "architecture" and failure["error"].endswith(expected), failure
        assert "Traceback" not in result.output


def test_try_prints_metrics_and_throughput(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(TABULAR_NET)
    make_classification_frame(200).to_csv(tmp_path / "data.csv", index=False)
    result = runner.invoke(app, ["try", f"{tmp_path / 'net.py'}:TinyNet", "--data", str(tmp_path / "data.csv"),
                                 "--target", "label", "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    trial = json.loads(result.output)
    assert trial["task_type"] == "tabular_classification" and trial["input_shape"] == [6] and trial["outputs"] == 2
    assert [row["epoch"] for row in trial["epochs"]] == [1, 2]
    assert all(row["samples_per_sec"] > 0 and 0.0 <= row["val_accuracy"] <= 1.0 for row in trial["epochs"])

    result = runner.invoke(app, ["try", f"{tmp_path / 'net.py'}:TinyNet", "--data", "random", "--input-shape", "4,5",
                                 "--kwargs", '{"in_features": 5, "n_classes": 3}'])
    assert result.exit_code == 0, result.output
    assert "input [4, 5] (float) -> output [4, 3]" in result.output and "samples/s" in result.output
    result = runner.invoke(app, ["try", f"{tmp_path / 'net.py'}:TinyNet", "--data", "random", "--input-shape", "4,7",
                                 "--kwargs", '{"in_features": 5, "n_classes": 3}'])
    assert result.exit_code != 0 and "TinyNet fails on a random input of shape [4, 7]: RuntimeError" in result.output
