"""The language-model family (tools/models/lm.py, tools/templates/lm/): config rules, a measured
architecture summary, an end-to-end CLI run that beats the unigram baseline, resume, and bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mltrainer.app import app
from tests.conftest import REPO

runner = CliRunner()
#: A tiny, fast model: enough to learn the character statistics of the toy corpus in a few steps.
FAST = {"block_size": 32, "epochs": 3, "d_model": 32, "layers": 1, "n_heads": 2, "batch_size": 16, "lr": 0.01,
        "seed": 0, "patience": 3}


def toy_corpus(n_sentences: int = 220, seed: int = 0) -> str:
    """Sentences from a small grammar: learnable structure, far from uniform characters."""
    rng = random.Random(seed)
    subjects, verbs, places = ["the cat", "a dog", "the bird", "my friend"], ["sat", "ran", "slept", "sang"], \
        ["on the mat", "in the park", "by the door", "at home"]
    return "\n".join(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(places)}." for _ in range(n_sentences)) + "\n"


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepared(tmp: Path) -> tuple[Path, dict]:
    """The toy corpus through the LM preprocessing, as the pipeline would do it."""
    from tools.prep.base import DataOptions
    from tools.prep.lm import LANGUAGE_MODELLING

    (tmp / "corpus.txt").write_text(toy_corpus())
    options = DataOptions(task_type="text_generation", params={"block_size": 32})
    inspection = LANGUAGE_MODELLING.inspect(tmp / "corpus.txt", options)
    LANGUAGE_MODELLING.prepare(tmp / "corpus.txt", options, inspection.report, tmp / "data")
    return tmp / "data", json.loads((tmp / "data" / "meta.json").read_text())


def test_config_sizes_from_the_corpus_and_locked_values_win() -> None:
    from orchestrator.errors import SpecError
    from tools.models.lm import LANGUAGE_MODEL

    meta = {"tokens": {"train": 10_000}, "block_size": 64, "vocab_size": 88}
    config = LANGUAGE_MODEL.config("text_generation", meta, {}, None)
    assert (config["arch"], config["d_model"], config["layers"], config["task_type"]) == ("gpt", 64, 2, "text_generation")
    assert config["lr_scheduler"] == "cosine" and "scheduler" not in config
    assert (config["steps_per_epoch"], config["epochs"], config["patience"], config["threads"]) == (5, 100, 10, 1)
    big = LANGUAGE_MODEL.config("text_generation", {**meta, "tokens": {"train": 5_000_000}}, {}, 600)
    assert big["d_model"] == 192 and big["layers"] == 4 and big["time_budget"] == 600.0
    locked = LANGUAGE_MODEL.config("text_generation", meta, {"epochs": 7, "d_model": 96, "lr_scheduler": "plateau",
                                                              "arch": "bigram"}, None)
    assert (locked["epochs"], locked["d_model"], locked["lr_scheduler"], locked["arch"]) == (7, 96, "plateau", "bigram")
    assert locked["n_heads"] == 4 and "epochs" in locked["locked"]
    with pytest.raises(SpecError, match="not a multiple of n_heads"):
        LANGUAGE_MODEL.config("text_generation", meta, {"d_model": 100, "n_heads": 3}, None)
    with pytest.raises(SpecError, match="arch 'lstm'"):
        LANGUAGE_MODEL.config("text_generation", meta, {"arch": "lstm"}, None)


def test_architecture_summary_is_measured_by_a_forward_pass() -> None:
    from tools.models.lm import LANGUAGE_MODEL

    meta = {"tokens": {"train": 10_000}, "block_size": 16, "vocab_size": 50}
    for arch in ("gpt", "bigram"):
        config = LANGUAGE_MODEL.config("text_generation", meta, {"arch": arch}, None)
        result = LANGUAGE_MODEL.architecture("text_generation", config, meta)
        candidate = result["candidates"][0]
        summary = candidate["summary"]
        assert result["family"] == "lm" and candidate["name"] == arch and candidate["parameters"] > 0
        assert summary["total_parameters"] == candidate["parameters"] and summary["output_shape"] == [2, 16, 50]
        assert summary["layers"] and all("output_shape" in layer for layer in summary["layers"])
    assert any(layer["type"] == "LayerNorm" for layer in LANGUAGE_MODEL.architecture(
        "text_generation", LANGUAGE_MODEL.config("text_generation", meta, {}, None), meta)["candidates"][0]["summary"]["layers"])


def test_lm_job_end_to_end_beats_unigram_and_predicts(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text(toy_corpus())
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"task": "generate sentences like these", "task_type": "text_generation",
                                    "data": {"source": "corpus.txt"}, "hyperparameters": FAST}, sort_keys=False))
    result = runner.invoke(app, ["run", str(spec), "--job-id", "lm"])
    assert result.exit_code == 0, result.output
    detail = json.loads(runner.invoke(app, ["show", "lm", "--json"]).output)
    assert detail["status"] == "done"
    assert all(s["status"] in ("done", "skipped") for s in detail["stages"]) and len(detail["stages"]) == 9
    run_out = Path(detail["artifacts"]["run_dir"])
    metrics = json.loads((run_out / "metrics.json").read_text())
    assert metrics["primary_metric"] == "loss" and metrics["higher_is_better"] is False
    assert metrics["baseline"]["name"].startswith("unigram")
    assert metrics["test"]["perplexity"] < metrics["baseline"]["perplexity"], metrics
    assert detail["test_metrics"]["loss"] == pytest.approx(metrics["test"]["loss"], abs=1e-3)  # the export scores alike
    export = Path(detail["artifacts"]["export_dir"])
    for name in ("predict.py", "model.safetensors", "model.json", "tokenizer.json", "lm_nets.py", "README.md"):
        assert (export / name).is_file(), name
    assert "tokenizers" in (export / "requirements.txt").read_text()

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the cat\na dog ran\n\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["predict", "lm", "--input", str(prompts), "--output", str(out)])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["prompt"] for r in rows] == ["the cat", "a dog ran", ""] and all(r["completion"] for r in rows[:2])
    again = tmp_path / "again.csv"
    assert runner.invoke(app, ["predict", "lm", "--input", str(prompts), "--output", str(again)]).exit_code == 0
    assert again.read_text() == out.read_text()  # fixed seed: the same completions

    (tmp_path / "empty.txt").write_text("")
    result = runner.invoke(app, ["predict", "lm", "--input", str(tmp_path / "empty.txt"), "--output", str(out)])
    assert result.exit_code == 1 and "holds no prompts" in result.output and "Traceback" not in result.output


def test_predict_rejects_bad_input_with_one_sentence(tmp_path: Path) -> None:
    predict = load_module(REPO / "tools" / "templates" / "lm" / "predict.py", "lm_predict_under_test")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        predict.read_prompts(str(tmp_path / "latin1.txt"))
    (tmp_path / "binary.txt").write_bytes(b"ab\x00cd\n")
    with pytest.raises(ValueError, match="binary bytes"):
        predict.read_prompts(str(tmp_path / "binary.txt"))
    (tmp_path / "ok.txt").write_text("one\r\ntwo\n")
    assert predict.read_prompts(str(tmp_path / "ok.txt")) == ["one", "two"]


def test_train_script_resumes_the_epoch_counter_and_refuses_bad_blocks(tmp_path: Path) -> None:
    from agents.codegen import render_training_script
    from tools.models.lm import LANGUAGE_MODEL

    data, meta = prepared(tmp_path)
    config = LANGUAGE_MODEL.config("text_generation", meta, {k: v for k, v in FAST.items() if k != "block_size"}, None)
    arch = LANGUAGE_MODEL.architecture("text_generation", config, meta)
    script = tmp_path / "train.py"
    script.write_text(render_training_script("lm", LANGUAGE_MODEL.template_values("text_generation", config, arch, 'j"1')))
    out = tmp_path / "out"

    def run(*extra: str, data_dir: Path = data) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), "--data-dir", str(data_dir), "--out-dir", str(out),
                               "--device", "cpu", *extra], capture_output=True, text=True, timeout=120)

    def val_epochs(proc: subprocess.CompletedProcess) -> list[int]:
        lines = [json.loads(l[7:]) for l in proc.stdout.splitlines() if l.startswith("METRIC ")]
        assert all(isinstance(m["sample"], str) for m in lines if m["split"] == "val")
        return [m["epoch"] for m in lines if m["split"] == "val"]

    first = run("--epochs", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    assert val_epochs(first) == [1]
    assert json.loads((out / "checkpoint.json").read_text())["state"]["epoch"] == 1
    second = run("--epochs", "3", "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming" in second.stdout and val_epochs(second) == [2, 3]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and {"loss", "perplexity"} <= set(metrics["test"])
    assert json.loads((out / "model.json").read_text())["architecture"]["d_model"] == 32

    blocks = np.load(data / "blocks_val.npy")
    blocks[0, 0] = meta["vocab_size"] + 5  # an id outside the vocabulary
    np.save(data / "blocks_val.npy", blocks)
    bad = run()
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: blocks_val.npy must hold token ids")
