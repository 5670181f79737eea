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
