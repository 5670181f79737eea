"""BaseAgent: the contract every stage keeps.

``run(context) -> dict`` wraps a single ``_execute``; the agent reads a snapshot of the context
and returns the fields to change. Only the orchestrator merges that result into the real context.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from orchestrator.context import JobContext
from orchestrator.events import AgentLog, Event, EventBus


class BaseAgent(ABC):
    """One pipeline stage."""

    #: The stage this agent implements (a name from ``orchestrator.plan.STAGES``).
    stage: ClassVar[str]

    def __init__(self, bus: EventBus | None = None) -> None:
        self.bus = bus

    def run(self, context: JobContext) -> dict[str, Any]:
        result = self._execute(context)
        if not isinstance(result, dict):
            raise TypeError(f"{type(self).__name__}._execute must return a dict, not {type(result).__name__}")
        return result

    @abstractmethod
    def _execute(self, context: JobContext) -> dict[str, Any]:
        """Do the stage's work and return the JobContext fields it sets."""

    # -- helpers -----------------------------------------------------------------------------
    def previous_errors(self, context: JobContext) -> list[str]:
        """Errors of this stage's earlier attempts, oldest first, for the next prompt or plan."""
        return list(context.error_feedback.get(self.stage, []))

    def error_feedback_text(self, context: JobContext) -> str:
        """The earlier errors as a block to put in front of a model ('' when there were none)."""
        errors = self.previous_errors(context)
        if not errors:
            return ""
        lines = [f"Attempt {i} failed with: {e}" for i, e in enumerate(errors, 1)]
        return "\n".join(lines) + "\nDo not repeat these mistakes."

    def emit(self, event: Event) -> None:
        if self.bus is not None:
            self.bus.emit(event)

    def log(self, message: str, level: str = "info") -> None:
        self.emit(AgentLog(stage=self.stage, message=message, level=level))  # type: ignore[arg-type]

    @staticmethod
    def job_path(context: JobContext, *parts: str) -> Path:
        path = Path(context.job_dir).joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
