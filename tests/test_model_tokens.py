"""The token tagger family (tools/models/tokens.py, tools/templates/token_tagger/): a CoNLL file goes
through all nine stages, the exported predict.py tags new sentences, a killed run resumes, and the
seqeval-style scoring agrees with the textbook span rules."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from orchestrator.errors import SpecError, UnsupportedError
from tests.conftest import OFFLINE_ENV
from tools.models.token_tagger_nets import entity_scores, get_entities
from tools.models.tokens import TOKEN_TAGGER, primary_metric

runner = CliRunner()
FIRST = ["Mary", "Ali", "Wei", "Anna", "Omar", "Lena", "Ivan", "Sara"]
LAST = ["Smith", "Novak", "Rossi", "Khan"]
PLACES = ["Paris", "Lagos", "Tokyo", "Lima", "Oslo", "Cairo"]
ORGS = ["Acme", "Initech", "Globex", "Umbrella"]
TEMPLATES = ["{per} lives in {loc} .", "{per} works for {org} in {loc} .", "{org} opened an office in {loc} .",
             "{per} met {per} in {loc} .", "yesterday it rained in {loc} ."]
#: Small, fast settings: the point is the plumbing, the data is easy.
HYPER = {"epochs": 4, "patience": 4, "d_model": 32, "n_heads": 2, "layers": 1, "hidden": 64, "batch_size": 16,
         "lr": 0.005, "vocab_size": 200, "seed": 3}


def sentences(n: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sentence: list[tuple[str, str]] = []
        for piece in rng.choice(TEMPLATES).split():
            if piece == "{per}":
                name = [rng.choice(FIRST)] + ([rng.choice(LAST)] if rng.random() < 0.5 else [])
                sentence += [(w, ("B-" if i == 0 else "I-") + "PER") for i, w in enumerate(name)]
            elif piece in ("{loc}", "{org}"):
                sentence.append((rng.choice(PLACES if piece == "{loc}" else ORGS), "B-" + piece[1:4].upper()))
            else:
                sentence.append((piece, "O"))
        out.append(sentence)
    return out


def write_conll(path: Path, rows: list[list[tuple[str, str]]]) -> Path:
    path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One full `mltrainer run` of a small CoNLL file, shared by the tests below (it is the slow part)."""
    import yaml

    work = tmp_path_factory.mktemp("ner")
    write_conll(work / "ner.conll", sentences(200))
    spec = work / "spec.yaml"
    spec.write_text(yaml.safe_dump({"task": "tag people, places and organisations", "task_type": "token_classification",
                                    "data": {"source": "ner.conll"}, "hyperparameters": HYPER}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLTRAINER_HOME", str(work / "home"))
        mp.setenv("HOME", str(work))
        for key, value in OFFLINE_ENV.items():
            mp.setenv(key, value)
        result = runner.invoke(app, ["run", str(spec), "--job-id", "ner"])
        detail = json.loads(runner.invoke(app, ["show", "ner", "--json"]).output) if result.exit_code == 0 else {}
    yield {"work": work, "home": work / "home", "result": result, "detail": detail}


def test_cli_run_trains_exports_and_predicts(job: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert job["result"].exit_code == 0, job["result"].output
    detail = job["detail"]
    assert detail["status"] == "done"
    assert [s["status"] for s in detail["stages"]] == ["done"] * 8 + ["skipped"]
    metrics = json.loads((Path(detail["artifacts"]["run_dir"]) / "metrics.json").read_text())
    assert metrics["primary_metric"] == "f1" and metrics["higher_is_better"] is True
    assert metrics["baseline"]["f1"] == 0.0 and "'O'" in metrics["baseline"]["name"]
    assert metrics["test"]["f1"] > 0.5 > metrics["baseline"]["f1"]
    assert metrics["test"]["accuracy"] > metrics["baseline"]["accuracy"]
    assert metrics["best_model"] in ("transformer", "bilstm") and set(metrics["candidates"]) == {"transformer", "bilstm"}
    # the export re-scores the test split through predict.py with the same scoring: same figures
    assert detail["test_metrics"]["f1"] == pytest.approx(metrics["test"]["f1"], abs=1e-9)
    export = Path(detail["artifacts"]["export_dir"])
    for name in ("predict.py", "model.safetensors", "model.json", "README.md", "tokenizer.json", "token_tagger_nets.py",
                 "requirements.txt"):
        assert (export / name).is_file(), name
    assert "tokenizers" in (export / "requirements.txt").read_text()

    lines = ["Mary Smith lives in Paris .", "", "Globex opened an office in Lima ."]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MLTRAINER_HOME", str(job["home"]))
    out = tmp_path / "tags.jsonl"
    result = runner.invoke(app, ["predict", "ner", "--input", str(tmp_path / "in.txt"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(lines) and rows[1] == {"words": [], "tags": []}
    assert [len(r["tags"]) for r in rows] == [len(line.split()) for line in lines]
    assert rows[0]["tags"][:2] == ["B-PER", "I-PER"] and rows[2]["tags"][0] == "B-ORG"


def test_predict_rejects_bad_input_with_one_sentence(job: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from tools.models.base import load_predict_module

    export = Path(job["detail"]["artifacts"]["export_dir"])
    predict = load_predict_module(export)
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01 binary")
    (tmp_path / "blank.txt").write_text("\n  \n")
    for path, words in [("bin.txt", "not a text file"), ("blank.txt", "holds no sentences"), ("missing.txt", "cannot read")]:
        with pytest.raises(ValueError, match=words):
            predict.predict_file(str(export), str(tmp_path / path), str(tmp_path / "out.csv"))
    with pytest.raises(ValueError, match="list of sentences"):
        predict.Predictor.load(str(export)).predict("Mary lives in Paris .")
    with pytest.raises(ValueError, match="sentence 2 is a int"):
        predict.Predictor.load(str(export)).predict(["Mary", 3])
    monkeypatch.setattr(sys, "argv", ["predict.py", "--input", str(tmp_path / "bin.txt"), "--output", str(tmp_path / "o.csv"),
                                      "--model-dir", str(export)])
    with pytest.raises(SystemExit) as stop:  # the CLI: exit 2 and one error line
        predict.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("error: ") and err.strip().count("\n") == 0
    monkeypatch.setenv("MLTRAINER_HOME", str(job["home"]))
    result = runner.invoke(app, ["predict", "ner", "--input", str(tmp_path / "bin.txt"), "--output", str(tmp_path / "o.csv")])
    assert result.exit_code != 0 and "not a text file" in result.output
    # a sentence longer than max_length sub-tokens is tagged in windows: one tag per word, still
    long = " ".join(["Mary lives in Paris ."] * 12)
    (tmp_path / "long.txt").write_text(long + "\n")
    assert predict.predict_file(str(export), str(tmp_path / "long.txt"), str(tmp_path / "long.csv")) == 1
    tags = (tmp_path / "long.csv").read_text().splitlines()[1].split(",")[2].split()
    assert len(tags) == len(long.split()) and tags.count("B-PER") >= 10


def test_resume_continues_the_epoch_counter(job: dict, tmp_path: Path) -> None:
    detail = job["detail"]
    script, data = Path(detail["artifacts"]["training_script"]), detail["data_paths"]["dir"]
    out = tmp_path / "out"

    def run(*extra: str) -> list[dict]:
        cmd = [sys.executable, str(script), "--data-dir", data, "--out-dir", str(out), "--device", "cpu", "--arch", "bilstm", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("METRIC ")]

    # bad labels fail before training with one error line (started now, it runs beside the resume runs)
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    labels = np.load(bad / "labels_train.npy")
    labels[0, 0] = 99
    np.save(bad / "labels_train.npy", labels)
    failing = subprocess.Popen([sys.executable, str(script), "--data-dir", str(bad), "--out-dir", str(tmp_path / "o2")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = run("--epochs", "1")
    assert [(m["epoch"], m["split"]) for m in first] == [(1, "train"), (1, "val")]
    second = run("--resume", "--epochs", "3")
    assert [m["epoch"] for m in second if m["split"] == "val"] == [2, 3]
    assert all(m["total_epochs"] == 3 for m in second)
    state = json.loads((out / "checkpoint.json").read_text())
    assert state["candidates"]["bilstm"]["epoch"] == 3 and state["phase"] == "done"
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 3
    _, stderr = failing.communicate(timeout=120)
    assert failing.returncode == 2 and "tag id 99" in stderr and stderr.startswith("error: ")


def test_architecture_summary_is_measured_and_config_honours_the_spec(job: dict) -> None:
    detail = job["detail"]
    meta = json.loads((Path(detail["data_paths"]["dir"]) / "meta.json").read_text())
    arch = json.loads((Path(detail["artifacts"]["export_dir"]) / "config.json").read_text())["architecture"]
    assert arch["family"] == "token_tagger" and [c["name"] for c in arch["candidates"]] == ["transformer", "bilstm"]
    for candidate in arch["candidates"]:
        summary = candidate["summary"]
        assert candidate["parameters"] == summary["total_parameters"] > 0
        assert summary["output_shape"] == [2, meta["max_length"], len(meta["labels"])]
        assert any(layer["name"] == "head" and layer["output_shape"][-1] == len(meta["labels"]) for layer in summary["layers"])
    assert any(layer["type"] == "MultiheadAttention" for layer in arch["candidates"][0]["summary"]["layers"])

    config = TOKEN_TAGGER.config("token_classification", meta, {"arch": "bilstm", "lr_scheduler": "plateau", "epochs": 2}, 60)
    assert (config["arch"], config["scheduler"], config["epochs"], config["time_budget"]) == ("bilstm", "plateau", 2, 60.0)
    assert config["task_type"] == "token_classification" and "arch" in config["locked"]
    only = TOKEN_TAGGER.architecture("token_classification", config, meta)
    assert [c["name"] for c in only["candidates"]] == ["bilstm"] and "as the spec asks" in only["selection"]
    with pytest.raises(SpecError, match="arch"):
        TOKEN_TAGGER.config("token_classification", meta, {"arch": "cnn"}, None)
    with pytest.raises(SpecError, match="divisible"):
        TOKEN_TAGGER.config("token_classification", meta, {"d_model": 30, "n_heads": 4}, None)
    with pytest.raises(UnsupportedError, match="backbone"):
        TOKEN_TAGGER.config("token_classification", meta, {"backbone": "bert-base-cased"}, None)
    big = {**meta, "splits": {"train": 100_000, "val": 1, "test": 1}}
    assert TOKEN_TAGGER.config("token_classification", big, {}, None)["arch"] == "transformer"


def test_entity_scores_follow_seqeval() -> None:
    assert get_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert get_entities(["O", "I-PER", "I-PER", "B-PER"]) == [("PER", 1, 2), ("PER", 3, 3)]  # I- after O starts a chunk
    assert get_entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]
    assert get_entities(["S-PER", "B-ORG", "E-ORG"]) == [("PER", 0, 0), ("ORG", 1, 2)]  # BIOES
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]  # the truncated PER span is wrong, not half right
    scores = entity_scores(gold, pred)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(5 / 6)
    assert entity_scores(gold, [["O"] * 4, ["O"] * 2])["f1"] == 0.0  # the all-"O" baseline
    assert primary_metric(["O", "B-PER", "I-PER"]) == "f1" and primary_metric(["NOUN", "VERB"]) == "accuracy"
    with pytest.raises(ValueError):
        entity_scores([["O"]], [["O", "O"]])
