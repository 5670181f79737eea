"""Every test runs sealed: its own MLTRAINER_HOME and HOME, offline, no real sleeps."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


@pytest.fixture(autouse=True)
def sealed_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mltrainer-home"
    monkeypatch.setenv("MLTRAINER_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    (tmp_path / "user-home").mkdir()
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLTRAINER_CRASH_AT", raising=False)
    return home


def make_classification_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A small messy table: numeric and categorical features, missing values, an id column."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(-2, 2, n)
    color = rng.choice(["red", "green", "blue"], n)
    logit = 3.0 * x1 - 2.0 * x2**2 + 2.5 + 2.5 * (color == "red")
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame({"row_id": np.arange(n), "x1": x1, "x2": x2, "color": color, "label": label})
    frame.loc[rng.random(n) < 0.05, "x1"] = np.nan
    return frame


def make_regression_frame(n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.uniform(0, 3, n)
    kind = rng.choice(["small", "large"], n)
    y = 3 * a + np.sin(2 * b) * 4 + 5 * (kind == "large") + rng.normal(0, 0.3, n) + 100
    return pd.DataFrame({"a": a, "b": b, "kind": kind, "value": y})


FAST_HYPERPARAMETERS: dict[str, Any] = {"epochs": 6, "patience": 3, "gbdt_rounds": 40}


def write_spec(directory: Path, *, data: str = "data.csv", target: str | None = "label", extra: str = "",
               task: str = "predict whether the label is yes", hyper: dict[str, Any] | None = None) -> Path:
    import yaml

    spec: dict[str, Any] = {"task": task, "data": {"source": data}}
    if target is not None:
        spec["data"]["target"] = target
    spec["hyperparameters"] = dict(FAST_HYPERPARAMETERS if hyper is None else hyper)
    path = directory / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False) + extra)
    return path


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for running the CLI in a subprocess, sealed like the tests."""
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env["MLTRAINER_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    env.pop("MLTRAINER_CRASH_AT", None)
    env.update(extra)
    return env


MLTRAINER = [sys.executable, "-m", "mltrainer"]
