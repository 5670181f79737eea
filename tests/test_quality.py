"""Default settings, no LLM: the kept model must match scikit-learn's HistGradientBoosting
(defaults, same split) within two points — what a careful practitioner gets by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mltrainer import settings
from mltrainer.app import app
from tests.conftest import make_classification_frame, make_regression_frame, write_spec

runner = CliRunner()


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_matches_hist_gradient_boosting(tmp_path: Path, kind: str) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if kind == "classification":
        make_classification_frame(2000, seed=11).to_csv(tmp_path / "data.csv", index=False)
        spec = write_spec(tmp_path, hyper={})
    else:
        make_regression_frame(2000, seed=12).to_csv(tmp_path / "data.csv", index=False)
        spec = write_spec(tmp_path, target="value", task="predict the value", hyper={})
    result = runner.invoke(app, ["run", str(spec), "--job-id", "q"])
    assert result.exit_code == 0, result.output
    detail = json.loads(runner.invoke(app, ["show", "q", "--json"]).output)

    data = settings.job_dir("q") / "data"
    X, y = np.load(data / "X_train.npy"), np.load(data / "y_train.npy")
    Xt, yt = np.load(data / "X_test.npy"), np.load(data / "y_test.npy")
    model_cls = HistGradientBoostingClassifier if kind == "classification" else HistGradientBoostingRegressor
    baseline = model_cls(random_state=0).fit(X, y).score(Xt, yt)  # accuracy or R² (scale-free)
    ours = detail["test_metrics"]["accuracy" if kind == "classification" else "r2"]
    assert ours >= baseline - 0.02, f"mltrainer {ours:.4f} vs HistGradientBoosting {baseline:.4f}"
