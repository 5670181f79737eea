"""Config: every hyperparameter resolved — the user's values locked, the rest from the family's
data-driven rules (rows, features, classes, lengths, image sizes, time budget)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext


class ConfigAgent(BaseAgent):
    stage = "config"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        from orchestrator.errors import UnsupportedError
        from tools.models import model_family_for
        from tools.models.base import read_meta

        task_type = context.task_type or "tabular_classification"
        try:
            family = model_family_for(task_type)
        except UnsupportedError as err:
            where = context.data_paths.get("dir", context.job_dir)
            raise UnsupportedError(f"{err}; the prepared data is in {where}.") from None
        locked = dict(context.spec.get("hyperparameters", {}))
        meta = read_meta(Path(context.data_paths["dir"]))
        config = family.config(task_type, meta, locked, context.intent.get("time_budget"))
        config["policy"] = "rules"
        shown = " ".join(f"{k}={config[k]:g}" if isinstance(config[k], float) else f"{k}={config[k]}"
                         for k in ("model", "epochs", "batch_size", "lr") if k in config)
        summary = shown + (f" (locked: {', '.join(config['locked'])})" if config.get("locked") else "")
        return {"config": config, "summary": summary}
