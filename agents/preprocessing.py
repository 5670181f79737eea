"""Preprocessing: hand the data to its family, which splits it, fits on the training split only
and writes arrays the training script loads in one read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from agents.dataset import data_options
from orchestrator.context import JobContext


class PreprocessingAgent(BaseAgent):
    stage = "preprocessing"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        from tools.prep import family_for

        task_type = context.task_type or "tabular_classification"
        roles = context.data_report.get("roles") or {}
        options = data_options(context, task_type, roles)
        out_dir = Path(context.job_dir) / "data"
        prepared = family_for(task_type).prepare(Path(context.data_paths["source"]), options, context.data_report,
                                                 out_dir, self.log)
        report = {**prepared.report, "val_fraction": options.val_fraction, "test_fraction": options.test_fraction}
        report.setdefault("seed", options.seed)
        return {"preprocessing_report": report, "data_paths": {"dir": str(out_dir), **prepared.files},
                "summary": prepared.summary}
