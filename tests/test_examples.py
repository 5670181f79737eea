"""The README's example commands keep working: each example spec runs offline end to end and
`mltrainer predict` scores its held-out rows."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from tests.conftest import REPO

runner = CliRunner()


def test_readme_first_command_is_the_churn_example() -> None:
    readme = (REPO / "README.md").read_text()
    first = re.search(r"```bash\n(.+?)\n```", readme, re.S).group(1)  # type: ignore[union-attr]
    assert "pip install torch==2.13.0" in first  # the pinned CPU wheel, never an unpinned torch
    assert "mltrainer run examples/churn.yaml --job-id churn-demo" in first
    assert "mltrainer predict churn-demo --input examples/data/churn_new.csv" in first
    ci = (REPO / ".ci" / "run").read_text()
    tests_command = re.findall(r"```bash\n(.+?)\n```", readme, re.S)[1]
    assert tests_command in ci, ".ci/run must run the README's test command"


@pytest.mark.parametrize("name,target,new_rows", [("churn", "churned", "churn_new.csv"), ("houses", "price", "houses_new.csv")])
def test_example_spec_runs_and_predicts(tmp_path: Path, name: str, target: str, new_rows: str) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(REPO / "examples", examples, ignore=shutil.ignore_patterns("out"))
    spec = examples / f"{name}.yaml"
    spec.write_text(spec.read_text() + "hyperparameters: {epochs: 5, patience: 3, gbdt_rounds: 40, seed: 7}\n"
                    if "hyperparameters" not in spec.read_text()
                    else spec.read_text().replace("seed: 7", "seed: 7\n  epochs: 5\n  patience: 3\n  gbdt_rounds: 40"))
    result = runner.invoke(app, ["run", str(spec), "--job-id", name])
    assert result.exit_code == 0, result.output
    out = tmp_path / "pred.csv"
    result = runner.invoke(app, ["predict", name, "--input", str(examples / "data" / new_rows), "--output", str(out)])
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(out)
    assert len(predictions) == len(pd.read_csv(examples / "data" / new_rows)) and target in predictions
    detail = json.loads(runner.invoke(app, ["show", name, "--json"]).output)
    assert detail["status"] == "done"
    if name == "houses":
        assert (examples / "out" / "houses-model" / "predict.py").exists()  # the spec's local deploy


#: example spec → (family, a data-report key it must have, files its preprocessing must write)
DATA_EXAMPLES = {
    "churn": ("tabular", "target_distribution", ["X_train.npy", "y_test.npy", "transform.json"]),
    "sms_spam": ("text", "text_length", ["ids_train.npy", "y_val.npy", "tokenizer.json"]),
    "ner": ("tokens", "label_vocabulary", ["ids_train.npy", "labels_test.npy", "tokenizer.json"]),
    "digits_images": ("image", "images", ["X_train.npy", "y_test.npy"]),
    "daily_sales": ("time_series", "frequency", ["X_train.npy", "y_test.npy", "series.parquet"]),
    "corpus_lm": ("lm", "characters", ["blocks_train.npy", "blocks_val.npy", "tokenizer.json"]),
    "iris_clusters": ("clustering", "reference_labels", ["X_train.npy", "X_test.npy", "transform.json"]),
}


@pytest.mark.parametrize("name", list(DATA_EXAMPLES))
def test_example_specs_prepare_their_data_offline(name: str) -> None:
    """Each family's example gets through dataset and preprocessing with splits and a data report."""
    family, report_key, files = DATA_EXAMPLES[name]
    result = runner.invoke(app, ["run", str(REPO / "examples" / f"{name}.yaml"), "--job-id", name,
                                 "--until", "preprocessing"])
    assert result.exit_code == 0, result.output
    assert "Paused" in result.output and f"mltrainer resume {name}" in result.output
    detail = json.loads(runner.invoke(app, ["show", name, "--json"]).output)
    assert detail["status"] == "paused"
    report = detail["data_report"]
    assert report["family"] == family and report_key in report, report
    assert report["rows"] > 0 and report["sha256"]
    splits = detail["preprocessing_report"]["splits"]
    assert min(splits[s] for s in ("train", "val", "test")) > 0 and splits["train"] > splits["test"]
    assert detail["preprocessing_report"]["seed"] == 42
    data_dir = Path(detail["data_paths"]["dir"])
    for file in files:
        assert (data_dir / file).is_file(), file
    meta = json.loads((data_dir / "meta.json").read_text())
    assert meta["splits"] == splits
    # the compact data-report table was shown
    assert "Data:" in result.output


def test_the_same_example_always_gets_the_same_split() -> None:
    for job in ("a", "b"):
        assert runner.invoke(app, ["run", str(REPO / "examples" / "sms_spam.yaml"), "--job-id", job,
                                   "--until", "preprocessing"]).exit_code == 0
    dirs = [Path(json.loads(runner.invoke(app, ["show", job, "--json"]).output)["data_paths"]["dir"]) for job in "ab"]
    for file in ("ids_train.npy", "ids_test.npy", "y_val.npy"):
        assert (dirs[0] / file).read_bytes() == (dirs[1] / file).read_bytes()


def test_an_unlabelled_request_on_prose_becomes_text_classification(tmp_path: Path) -> None:
    """No task type in the spec and a table of messages + labels: the data says it is a text task."""
    spec = tmp_path / "spec.yaml"
    shutil.copy(REPO / "examples" / "data" / "sms.csv", tmp_path / "sms.csv")
    spec.write_text("task: train a model on this\ndata:\n  source: sms.csv\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "guess", "--until", "preprocessing"])
    assert result.exit_code == 0, result.output
    detail = json.loads(runner.invoke(app, ["show", "guess", "--json"]).output)
    report = detail["data_report"]
    assert detail["task_type"] == "text_classification" and report["family"] == "text"
    assert "free text" in report["task_type_reason"] and report["roles"] == {"text": "message", "target": "label"}
