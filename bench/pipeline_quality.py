"""Whole-pipeline quality against scikit-learn's HistGradientBoosting on the same split.

    python bench/pipeline_quality.py            # every table
    python bench/pipeline_quality.py churn      # one

For each table it runs `mltrainer run` (defaults, no LLM, offline) in a scratch MLTRAINER_HOME,
then fits HGB with defaults on the job's own train split (the arrays written by preprocessing)
and scores both on the job's test split. Prints figures only; never part of CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def sklearn_tables(folder: Path) -> dict[str, tuple[Path, str, str]]:
    from sklearn import datasets

    tables = {}
    for name, loader, kind in [
        ("breast_cancer", datasets.load_breast_cancer, "classification"),
        ("wine", datasets.load_wine, "classification"),
        ("digits", datasets.load_digits, "classification"),
        ("diabetes", datasets.load_diabetes, "regression"),
    ]:
        bunch = loader(as_frame=True)
        frame = bunch.frame.rename(columns={"target": "target"})
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False)
        tables[name] = (path, "target", kind)
    return tables


def run_job(home: Path, data: Path, target: str, kind: str, name: str) -> tuple[str, float]:
    spec = home / f"{name}.yaml"
    task_type = "tabular_classification" if kind == "classification" else "tabular_regression"
    spec.write_text(f"task: predict {target}\ntask_type: {task_type}\ndata:\n  source: {data}\n  target: {target}\n")
    env = {**os.environ, "MLTRAINER_HOME": str(home)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mltrainer", "run", str(spec), "--job-id", name, "--json"], env=env,
                   check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    return name, time.perf_counter() - started


def hgb_score(job_dir: Path, kind: str) -> tuple[float, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    d = job_dir / "data"
    X, y = np.load(d / "X_train.npy"), np.load(d / "y_train.npy")
    Xt, yt = np.load(d / "X_test.npy"), np.load(d / "y_test.npy")
    started = time.perf_counter()
    model = (HistGradientBoostingClassifier if kind == "classification" else HistGradientBoostingRegressor)(random_state=0)
    model.fit(X, y)
    return float(model.score(Xt, yt)), time.perf_counter() - started


def main() -> None:
    only = set(sys.argv[1:])
    scratch = Path(tempfile.mkdtemp(prefix="mltrainer-bench-"))
    tables = {
        "churn": (REPO / "examples/data/churn.csv", "churned", "classification"),
        "houses": (REPO / "examples/data/houses.csv", "price", "regression"),
        **sklearn_tables(scratch),
    }
    print(f"{'table':<14} {'metric':<9} {'mltrainer':>9} {'kept':>5} {'HGB':>7} {'delta':>7} {'ours s':>7} {'HGB s':>6}")
    for name, (path, target, kind) in tables.items():
        if only and name not in only:
            continue
        _, seconds = run_job(scratch, path, target, kind, name)
        job_dir = scratch / "jobs" / name
        context = json.loads(subprocess.run(
            [sys.executable, "-m", "mltrainer", "show", name, "--json"], env={**os.environ, "MLTRAINER_HOME": str(scratch)},
            capture_output=True, text=True, check=True, cwd=REPO).stdout)
        metric = "accuracy" if kind == "classification" else "r2"
        ours = context["test_metrics"][metric]
        kept = context["best_metric"]["model"]
        theirs, hgb_seconds = hgb_score(job_dir, kind)
        print(f"{name:<14} {metric:<9} {ours:>9.4f} {kept:>5} {theirs:>7.4f} {ours - theirs:>+7.4f} {seconds:>7.1f} {hgb_seconds:>6.1f}")


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
