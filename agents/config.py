"""Config: every hyperparameter resolved — the user's values locked, the rest from data-driven rules."""

from __future__ import annotations

import math
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import UnsupportedError
from orchestrator.plan import TASK_TYPES

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


class ConfigAgent(BaseAgent):
    stage = "config"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        task = TASK_TYPES.get(context.task_type or "")
        if task is not None and not task.supported:
            trainable = " and ".join(t.name.replace("_", " ") for t in TASK_TYPES.values() if t.supported)
            raise UnsupportedError(
                f"Training {task.name.replace('_', ' ')} models is not supported by this version yet "
                f"({trainable} are); the prepared data is in {context.data_paths.get('dir', context.job_dir)}."
            )
        locked = dict(context.spec.get("hyperparameters", {}))
        rows = int(context.preprocessing_report["splits"]["train"])
        budget = context.intent.get("time_budget")
        config = resolve_config(rows, locked, budget)
        config["task"] = "classification" if context.task_type == "tabular_classification" else "regression"
        config["locked"] = sorted(locked)
        config["policy"] = "rules"
        summary = (
            f"model={config['model']} epochs≤{config['epochs']} batch={config['batch_size']} lr={config['lr']:g}"
            + (f" (locked: {', '.join(config['locked'])})" if locked else "")
        )
        return {"config": config, "summary": summary}
