"""Architecture: which candidate models to train and how big, from the family's catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext


class ArchitectureAgent(BaseAgent):
    stage = "architecture"

    def __init__(self, bus: Any = None, llm: Any = None) -> None:
        super().__init__(bus)
        self.llm = llm  # writes blocks and optimizers the spec describes in words (tools/lab)

    def _execute(self, context: JobContext) -> dict[str, Any]:
        from orchestrator.events import DataReport
        from tools.models import model_family_for
        from tools.models.base import read_meta
        from tools.preflight import make_plan, plan_rows

        task_type = context.task_type or "tabular_classification"
        meta = read_meta(Path(context.data_paths["dir"]))
        family = model_family_for(task_type)
        architecture = family.architecture(task_type, context.config, meta)
        for note in architecture.get("notes") or []:  # a request honoured differently (QLoRA without a GPU…)
            self.log(str(note), "warning")
        lab_config: dict[str, Any] = {}
        if context.spec.get("architecture") or context.spec.get("optimizer"):  # the spec brings its own pieces
            from tools.lab.pipeline import apply_lab

            architecture, lab_config = apply_lab(context, family.name, meta, architecture, self.llm, self.log)
        plan = make_plan(architecture, context.config, meta)
        architecture["plan"] = plan
        self.emit(DataReport(stage=self.stage, title="Plan", rows=tuple(plan_rows(plan))))
        result: dict[str, Any] = {"architecture": architecture, "summary": architecture.get("summary", "")}
        if lab_config:
            result["config"] = dict(lab_config)
        if plan.get("epochs_fitted"):  # the budget caps the run: fewer epochs, chosen before it starts
            result["config"] = {**result.get("config", {}), "epochs": plan["epochs_fitted"]}
            self.log(plan["note"])
        return result
