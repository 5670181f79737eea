"""The execution plan as data: nine stages, thirteen task types, and which stages each skips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.context import JobContext

#: Every stage, in the order a job runs them.
STAGES: tuple[str, ...] = (
    "intent",
    "dataset",
    "preprocessing",
    "config",
    "architecture",
    "codegen",
    "training",
    "export",
    "deploy",
)


@dataclass(frozen=True)
class TaskType:
    name: str
    family: str
    description: str
    skips: tuple[str, ...] = ()


TASK_TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("tabular_classification", "tabular", "predict a category from table columns"),
        TaskType("tabular_regression", "tabular", "predict a number from table columns"),
        TaskType("image_classification", "image", "label an image"),
        TaskType("image_regression", "image", "predict a number from an image"),
        TaskType("object_detection", "image", "find and box objects in an image"),
        TaskType("text_classification", "text", "label a piece of text"),
        TaskType("text_generation", "text", "generate text like a corpus"),
        TaskType("token_classification", "text", "label each word (NER, POS)"),
        TaskType("summarization", "text", "shorten a text"),
        TaskType("translation", "text", "translate between languages"),
        TaskType("llm_finetuning", "llm", "fine-tune a pretrained causal LM"),
        TaskType("time_series_forecasting", "time_series", "forecast future values of a series"),
        TaskType("clustering", "clustering", "group rows without labels", skips=("deploy",)),
    )
}


def skip_reason(stage: str, context: JobContext) -> str | None:
    """Why ``stage`` does not run for this job, or None when it runs."""
    task = TASK_TYPES.get(context.task_type or "")
    if task and stage in task.skips:
        return f"not used for {task.name}"
    deploy = context.spec.get("deploy") or {}
    if stage == "deploy" and not deploy:
        return "no deploy target in the spec"
    if stage == "deploy" and deploy.get("target") == "hub":
        return _hub_skip_reason(context)
    return None


def _hub_skip_reason(context: JobContext) -> str | None:
    """Why a Hub push cannot happen (no write token, offline mode), or None when it can be tried."""
    from tools.hub_publish import hub_offline, hub_token

    if hub_offline():
        return "HF_HUB_OFFLINE is set, so nothing is published to the Hub; the export stays local"
    if not hub_token(context):
        return ("no HuggingFace write token (set HF_TOKEN or run 'hf auth login'), so nothing is published to the "
                "Hub; the export stays local")
    return None


def plan(context: JobContext) -> list[tuple[str, str | None]]:
    """The stages of this job with their skip reasons (None = runs)."""
    return [(stage, skip_reason(stage, context)) for stage in STAGES]
