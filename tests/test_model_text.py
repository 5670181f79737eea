"""Text classification models: the CLI trains, exports and predicts end to end; the generated
train.py resumes where it stopped and rejects bad data; configs and summaries follow the data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agents.codegen import render_training_script
from mltrainer.app import app
from orchestrator.errors import SpecError
from tools.models.text import TEXT_CLASSIFIER, roc_auc

runner = CliRunner()
TOPICS = {
    "sport": ["goal", "match", "team", "score", "league", "coach", "referee", "stadium"],
    "food": ["pizza", "recipe", "bake", "sauce", "dinner", "spicy", "cheese", "oven"],
    "tech": ["laptop", "software", "code", "server", "chip", "update", "battery", "screen"],
}
FILLER = ["the", "a", "was", "really", "today", "my", "we", "so", "very", "and", "it", "this"]


def topic_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Short texts whose class is the topic of its key words, among filler words."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % 3]
        words = list(rng.choice(TOPICS[label], 3)) + list(rng.choice(FILLER, int(rng.integers(2, 6))))
        rng.shuffle(words)
        rows.append({"message": " ".join(words) + f" {i}", "topic": label})
    return pd.DataFrame(rows)


def show(job: str) -> dict:
    result = runner.invoke(app, ["show", job, "--json"])
    assert result.exit_code == 0, result.output
    detail: dict = json.loads(result.output)
    return detail


def test_cli_trains_exports_and_predicts(tmp_path: Path) -> None:
    topic_frame().to_csv(tmp_path / "texts.csv", index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: classify the topic of each message\ntask_type: text_classification\n"
                    "data: {source: texts.csv, text: message, target: topic}\n"
                    "hyperparameters: {epochs: 4, patience: 2, seed: 3}\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "topics"])
    assert result.exit_code == 0, result.output
    detail = show("topics")
    assert detail["status"] == "done"
    assert {s["status"] for s in detail["stages"]} <= {"done", "skipped"} and len(detail["stages"]) == 9
    export = Path(detail["artifacts"]["export_dir"])
    # the architecture summary was measured by a forward pass of each candidate
    candidates = json.loads((export / "config.json").read_text())["architecture"]["candidates"]
    assert [c["name"] for c in candidates] == ["bow", "transformer"]
    for c in candidates:
        assert c["parameters"] > 0 and c["summary"]["total_parameters"] == c["parameters"]
        assert c["summary"]["output_shape"] == [2, 3] and all("output_shape" in layer for layer in c["summary"]["layers"])
    assert any(layer["type"] == "MultiheadAttention" for layer in candidates[1]["summary"]["layers"])
    run_out = Path(detail["artifacts"]["run_dir"])
    metrics = json.loads((run_out / "metrics.json").read_text())
    assert metrics["primary_metric"] == "macro_f1" and metrics["higher_is_better"] is True
    assert metrics["test"]["macro_f1"] > metrics["baseline"]["macro_f1"] + 0.3
    assert metrics["test"]["accuracy"] > metrics["baseline"]["accuracy"]
    assert "roc_auc" not in metrics["test"]  # three classes
    assert detail["test_metrics"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])  # export re-scored the same
    for name in ("predict.py", "model.safetensors", "model.json", "tokenizer.json", "text_classifier_nets.py",
                 "requirements.txt", "README.md"):
        assert (export / name).is_file(), name
    assert "tokenizers" in (export / "requirements.txt").read_text()

    texts = ["the coach was angry at the referee", "we bake pizza with cheese", "my laptop battery died", "goal"]
    (tmp_path / "new.txt").write_text("\n".join(texts) + "\n\n")
    out = tmp_path / "pred.csv"
    result = runner.invoke(app, ["predict", "topics", "--input", str(tmp_path / "new.txt"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(out)
    assert list(predictions.columns[:2]) == ["text", "label"] and predictions["text"].tolist() == texts
    assert set(predictions["label"]) <= set(TOPICS)
    pd.DataFrame({"message": texts}).to_csv(tmp_path / "new.csv", index=False)  # the training column name works
    assert runner.invoke(app, ["predict", "topics", "--input", str(tmp_path / "new.csv"), "--output", str(out)]).exit_code == 0
    assert len(pd.read_csv(out)) == len(texts)

    # bad input: one clear sentence, no traceback
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(app, ["predict", "topics", "--input", str(tmp_path / "bad.csv"), "--output", str(out)])
    assert result.exit_code == 1 and "no 'text' column" in result.output and "Traceback" not in result.output
    from tools.models.base import load_predict_module

    predictor = load_predict_module(export).Predictor.load(str(export))
    assert predictor.predict(texts[:2]) == predictions["label"].tolist()[:2]
    with pytest.raises(ValueError, match="list of texts"):
        predictor.predict("one string")
    with pytest.raises(ValueError, match="not a text"):
        predictor.predict(["fine", 3])


def write_arrays(d: Path, n: int = 160, vocab: int = 40, length: int = 10, seed: int = 0) -> Path:
    """Prepared-data layout without a tokenizer: class 1 texts contain token 5."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    meta = {"classes": ["no", "yes"], "max_length": length, "tokenizer": {"kind": "char", "vocab_size": vocab, "pad_id": 0},
            "splits": {"train": n, "val": n // 4, "test": n // 4}}
    for split, rows in meta["splits"].items():
        ids = rng.integers(6, vocab, (rows, length)).astype(np.int32)
        ids[:, length - 3:] = 0  # padding
        y = (np.arange(rows) % 2).astype(np.int64)
        ids[y == 1, rng.integers(0, length - 3)] = 5
        np.save(d / f"ids_{split}.npy", ids)
        np.save(d / f"y_{split}.npy", y)
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def render(tmp_path: Path, data: Path, **locked: object) -> Path:
    meta = json.loads((data / "meta.json").read_text())
    config = TEXT_CLASSIFIER.config("text_classification", meta, dict(locked), None)
    source = render_training_script("text_classifier", TEXT_CLASSIFIER.template_values(
        "text_classification", config, {}, 'job "q" \\ id'))
    script = tmp_path / "train.py"
    script.write_text(source)
    return script


def train(script: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), "--data-dir", str(data), "--out-dir", str(out), "--device", "cpu",
                           *extra], capture_output=True, text=True, timeout=120)


def metric_lines(stdout: str) -> list[dict]:
    return [json.loads(line[len("METRIC "):]) for line in stdout.splitlines() if line.startswith("METRIC ")]


def test_generated_script_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    data = write_arrays(tmp_path / "data")
    script = render(tmp_path, data, d_model=16, hidden=32, n_heads=2, layers=1)
    out = tmp_path / "out"
    first = train(script, data, out, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    assert {(m["model"], m["epoch"]) for m in metric_lines(first.stdout)} == {("bow", 1), ("transformer", 1)}
    second = train(script, data, out, "--epochs", "3", "--resume")
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stdout
    epochs = {(m["model"], m["epoch"]) for m in metric_lines(second.stdout) if m["split"] == "val"}
    assert epochs == {(a, e) for a in ("bow", "transformer") for e in (2, 3)}  # continued, not restarted
    train_line = next(m for m in metric_lines(second.stdout) if m["split"] == "train")
    assert {"loss", "grad_norm", "lr", "samples_per_sec"} <= set(train_line)
    state = json.loads((out / "checkpoint.json").read_text())
    assert state["candidates"]["transformer"]["epoch"] == 3 and state["config"]["d_model"] == 16
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["baseline"]["name"].startswith("majority class")
    assert set(metrics["test"]) == {"accuracy", "macro_f1", "roc_auc"}
    model = json.loads((out / "model.json").read_text())
    assert model["kind"] == metrics["best_model"] and model["architecture"]["d_model"] == 16

    np.save(data / "y_val.npy", np.full(40, 7, dtype=np.int64))  # a label outside the classes
    bad = train(script, data, tmp_path / "out2", "--smoke")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == "error: y_val must hold class indices in 0..1, got values 7..7"


def test_config_follows_the_data_and_the_spec() -> None:
    small = {"splits": {"train": 500}, "classes": ["a", "b"], "max_length": 16,
             "tokenizer": {"vocab_size": 300, "pad_id": 0}}
    large = {**small, "splits": {"train": 100_000}}
    a, b = (TEXT_CLASSIFIER.config("text_classification", m, {}, None) for m in (small, large))
    assert a["d_model"] < b["d_model"] and a["epochs"] > b["epochs"] and a["batch_size"] < b["batch_size"]
    assert a["task_type"] == "text_classification" and a["arch"] == "auto"
    locked = TEXT_CLASSIFIER.config("text_classification", small, {"arch": "bow", "lr_scheduler": "linear", "lr": 0.01,
                                                                   "val_fraction": 0.2}, 60)
    assert (locked["arch"], locked["scheduler"], locked["lr"], locked["time_budget"]) == ("bow", "linear", 0.01, 60.0)
    assert "val_fraction" not in locked and "lr" in locked["locked"]
    arch = TEXT_CLASSIFIER.architecture("text_classification", locked, small)
    assert [c["name"] for c in arch["candidates"]] == ["bow"] and arch["candidates"][0]["parameters"] > 300 * a["d_model"]
    with pytest.raises(SpecError, match="multiple of n_heads"):
        TEXT_CLASSIFIER.config("text_classification", small, {"d_model": 30, "n_heads": 4}, None)
    with pytest.raises(SpecError, match="arch 'cnn'"):
        TEXT_CLASSIFIER.config("text_classification", small, {"arch": "cnn"}, None)


def test_roc_auc_is_the_share_of_correctly_ordered_pairs() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) + 0.3 * y, 1)  # rounded: ties count half
    pos, neg = score[y == 1][:, None], score[y == 0][None, :]
    assert roc_auc(y, score) == pytest.approx(float(np.mean((pos > neg) + 0.5 * (pos == neg))))
    assert roc_auc(np.ones(5), np.arange(5)) == 0.5
