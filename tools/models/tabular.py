"""Tabular models: a histogram GBDT and a torch MLP, trained side by side, the better kept on validation.

Exports need no torch: predict.py runs both model kinds in numpy and uses the fitted transform.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from orchestrator.errors import TrainingError
from tools.models.base import stage_export

TOOLS = Path(__file__).resolve().parent.parent
#: Rules by training-set size: (upper bound on rows, settings). First row whose bound holds wins.
#: Measured with bench/tabular_quality.py: small tables want a narrower, more regularised MLP.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (1_000, {"hidden": 128, "layers": 2, "dropout": 0.2, "epochs": 300, "patience": 30}),
    (50_000, {"hidden": 256, "layers": 2, "dropout": 0.1, "epochs": 200, "patience": 20}),
    (500_000, {"hidden": 256, "layers": 3, "dropout": 0.1, "epochs": 60, "patience": 10}),
    (math.inf, {"hidden": 512, "layers": 3, "dropout": 0.1, "epochs": 20, "patience": 5}),
)
BASE: dict[str, Any] = {
    "model": "auto",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "seed": 42,
    # 0.1 with early stopping matched 0.05 on every bench table at half the time.
    "gbdt_rounds": 500,
    "gbdt_lr": 0.1,
    "gbdt_max_leaves": 31,
    "gbdt_l2": 1.0,
}
TEMPLATE_KEYS = (
    "task", "model", "epochs", "batch_size", "lr", "weight_decay", "hidden", "layers", "dropout", "patience",
    "seed", "gbdt_rounds", "gbdt_lr", "gbdt_max_leaves", "gbdt_min_leaf", "gbdt_l2", "time_budget",
)
EXPORT_REQUIREMENTS = "numpy\npandas\nsafetensors\n"


def batch_size_for(rows: int) -> int:
    """About 16 steps an epoch, a power of two between 32 and 256."""
    target = min(256, max(32, rows / 16))
    return int(2 ** round(math.log2(target)))


def min_leaf_for(rows: int) -> int:
    """HGB's 20 rows a leaf, scaled down for small tables so trees can still split."""
    return int(min(20, max(3, rows // 50)))


def resolve_config(rows: int, locked: dict[str, Any], time_budget: float | None) -> dict[str, Any]:
    config = dict(BASE)
    config.update(next(rule for bound, rule in SIZE_RULES if rows <= bound))
    config["batch_size"] = batch_size_for(rows)
    config["gbdt_min_leaf"] = min_leaf_for(rows)
    config["time_budget"] = float(time_budget) if time_budget else 0.0
    config.update({k: v for k, v in locked.items() if k not in ("val_fraction", "test_fraction")})
    return config


def mlp_parameters(n_in: int, hidden: int, layers: int, n_out: int) -> int:
    """Exact parameter count of the Linear stack the template builds."""
    sizes = [n_in] + [hidden] * layers + [n_out]
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))



class Tabular:
    name = "tabular"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        config = resolve_config(int(meta["splits"]["train"]), locked, time_budget)
        config["task"] = "classification" if task_type == "tabular_classification" else "regression"
        config["locked"] = sorted(k for k in locked if k not in ("val_fraction", "test_fraction"))
        return config

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        n_in = int(meta["n_features"])
        n_out = int(meta.get("n_classes", 1)) if config["task"] == "classification" else 1
        choice = config.get("model", "auto")
        candidates: list[dict[str, Any]] = []
        if choice in ("auto", "gbdt"):
            candidates.append({
                "name": "gbdt",
                "kind": "gradient-boosted trees (histogram, leaf-wise)",
                "max_rounds": config["gbdt_rounds"],
                "max_leaves": config["gbdt_max_leaves"],
                "min_leaf": config["gbdt_min_leaf"],
                "trees_per_round": n_out if n_out > 2 else 1,
            })
        if choice in ("auto", "mlp"):
            candidates.append({
                "name": "mlp",
                "kind": "multilayer perceptron (Linear-ReLU-Dropout)",
                "input": n_in,
                "hidden": config["hidden"],
                "layers": config["layers"],
                "output": n_out,
                "parameters": mlp_parameters(n_in, config["hidden"], config["layers"], n_out),
            })
        selection = "best validation " + ("accuracy" if config["task"] == "classification" else "R²")
        names = " + ".join(c["name"] for c in candidates)
        mlp = next((c for c in candidates if c["name"] == "mlp"), None)
        summary = f"{names}" + (f"; mlp {mlp['parameters']:,} params" if mlp else "") + f"; keep {selection}"
        return {"family": "tabular", "candidates": candidates, "selection": selection, "summary": summary}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        return {**{key: config[key] for key in TEMPLATE_KEYS}, "job_id": job_id}

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        import json

        import pandas as pd

        from tools.metrics import classification_metrics, regression_metrics

        predict = stage_export(staging, "tabular", data_dir, ("transform.json",),
                               {"transform.py": TOOLS / "tabular_transform.py"}, EXPORT_REQUIREMENTS)
        target = json.loads((data_dir / "meta.json").read_text())["target"]
        test_rows = pd.read_csv(data_dir / "test_rows.csv")
        predictions = predict.predict_frame(staging, test_rows.drop(columns=[target]))
        if len(predictions) != len(test_rows):
            raise TrainingError("The exported predict.py returned a different number of rows than it was given.")
        if task_type == "tabular_classification":
            return classification_metrics(test_rows[target].to_numpy(), predictions[target].to_numpy())
        return regression_metrics(test_rows[target].to_numpy(), predictions[target].to_numpy())


TABULAR = Tabular()
