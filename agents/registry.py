"""Which agent runs each stage: a table, so tests and later issues can swap entries."""

from __future__ import annotations

import inspect
from typing import Any

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


def takes_llm(cls: type[BaseAgent]) -> bool:
    """Whether an agent's constructor accepts an LLM client (IntentAgent in this version)."""
    return "llm" in inspect.signature(cls.__init__).parameters


def default_agents(bus: EventBus | None = None, llm: Any = None) -> dict[str, BaseAgent]:
    """One agent per stage; ``llm`` (a client with ``complete``, or None) goes to those that take one."""
    return {
        stage: cls(bus, llm=llm) if takes_llm(cls) else cls(bus)  # type: ignore[call-arg]
        for stage, cls in AGENT_CLASSES.items()
    }
