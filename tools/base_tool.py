"""Tools an LLM may call: each a BaseTool in OpenAI function format, run by one ToolExecutor.

The executor is the single place where a secret reference id turns back into its value — only
inside the arguments of the call it is about to run, and only for the current job — and where
arguments and results are masked before they reach events, logs or the model.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from orchestrator.events import EventBus, ToolCall, ToolResult

if TYPE_CHECKING:
    from tools.vault import Vault


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool answers: ok or not, one sentence for a person (and the model), and data."""

    ok: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def for_model(self) -> str:
        return json.dumps({"ok": self.ok, "message": self.message, **({"data": self.data} if self.data else {})})


def unresolved_reference(*values: str | None) -> ToolOutcome | None:
    """A not-ok answer when a secret argument is still a reference id (forged, or another job's)."""
    if any(isinstance(v, str) and "⟨secret:" in v for v in values):
        return ToolOutcome(False, "That reference id is not one of this session's secrets; ask the user to paste it again.")
    return None


class BaseTool(ABC):
    """One callable tool; ``parameters`` is its JSON schema."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]]

    def schema(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                  "parameters": self.parameters}}

    @abstractmethod
    def run(self, **arguments: Any) -> ToolOutcome:
        """Do the work with resolved arguments (secrets are real values here, and only here)."""


class ToolExecutor:
    """Maps agent → tools; resolves reference ids; runs; sanitises for events and the model."""

    def __init__(self, tools: Mapping[str, Sequence[BaseTool]], *, vault: Vault | None, job_id: str,
                 bus: EventBus | None = None) -> None:
        self.tools = {agent: {t.name: t for t in items} for agent, items in tools.items()}
        self.vault = vault
        self.job_id = job_id
        self.bus = bus

    def schemas(self, agent: str) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self.tools.get(agent, {}).values()]

    def _mask(self, obj: Any) -> Any:
        from tools.vault import mask_obj

        return mask_obj(obj, self.vault, self.job_id)

    def execute(self, agent: str, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Run one tool call from ``agent``; never raises for a tool's own failure."""
        tool = self.tools.get(agent, {}).get(name)
        shown_args = self._mask(arguments)
        if self.bus:
            self.bus.emit(ToolCall(stage=agent, tool=name, arguments=shown_args))
        if tool is None:
            outcome = ToolOutcome(False, f"There is no tool named '{name}' for {agent}; use one of: "
                                         f"{', '.join(self.tools.get(agent, {})) or 'none'}.")
        else:
            resolved = self.vault.resolve_arguments(self.job_id, arguments) if self.vault else dict(arguments)
            try:
                outcome = tool.run(**resolved)
            except TypeError as err:
                outcome = ToolOutcome(False, f"Bad arguments for {name}: {err}.")
            except Exception as err:  # a tool's failure is an answer for the model, not a crash
                outcome = ToolOutcome(False, f"{name} failed: {type(err).__name__}: {err}")
        safe = ToolOutcome(outcome.ok, self._mask(outcome.message), self._mask(outcome.data))
        if self.bus:
            self.bus.emit(ToolResult(stage=agent, tool=name, ok=safe.ok, summary=safe.message[:200]))
        return safe
