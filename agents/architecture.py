"""Architecture: which candidate models to train and how big, from the family's catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext


class ArchitectureAgent(BaseAgent):
    stage = "architecture"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        from tools.models import model_family_for
        from tools.models.base import read_meta

        task_type = context.task_type or "tabular_classification"
        meta = read_meta(Path(context.data_paths["dir"]))
        architecture = model_family_for(task_type).architecture(task_type, context.config, meta)
        return {"architecture": architecture, "summary": architecture.get("summary", "")}
