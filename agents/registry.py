"""Which agent runs each stage: a table, so tests and later issues can swap entries."""

from __future__ import annotations

from agents.architecture import ArchitectureAgent
from agents.base import BaseAgent
from agents.codegen import CodegenAgent
from agents.config import ConfigAgent
from agents.dataset import DatasetAgent
from agents.deploy import DeployAgent
from agents.export import ExportAgent
from agents.intent import IntentAgent
from agents.preprocessing import PreprocessingAgent
from agents.training import TrainingAgent
from orchestrator.events import EventBus
from orchestrator.plan import STAGES

AGENT_CLASSES: dict[str, type[BaseAgent]] = {
    "intent": IntentAgent,
    "dataset": DatasetAgent,
    "preprocessing": PreprocessingAgent,
    "config": ConfigAgent,
    "architecture": ArchitectureAgent,
    "codegen": CodegenAgent,
    "training": TrainingAgent,
    "export": ExportAgent,
    "deploy": DeployAgent,
}
assert tuple(AGENT_CLASSES) == STAGES, "every stage needs exactly one agent, in plan order"


def default_agents(bus: EventBus | None = None) -> dict[str, BaseAgent]:
    return {stage: cls(bus) for stage, cls in AGENT_CLASSES.items()}
