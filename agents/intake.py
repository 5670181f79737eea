"""Intake: the conversation that turns what a person types into a spec.

Every message is redacted (secrets → vault reference ids) before it is stored, shown to a model or
logged. The backend, not the model, decides when intake is complete: ``finish_intake`` refuses
while a required field is missing or a credential failed validation. Without an LLM the same
fields are collected by a guided question-and-answer, so both paths end in the same spec.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.events import EventBus
from tools.base_tool import BaseTool, ToolExecutor, ToolOutcome

#: What each runtime needs before a job can start (field → question for the guided mode).
REQUIRED_BY_RUNTIME: dict[str, tuple[str, ...]] = {
    "local": ("task", "data_source"),
    "kaggle": ("task", "data_source", "kaggle_credentials"),
    "modal": ("task", "data_source", "modal_token"),
}
QUESTIONS: dict[str, str] = {
    "task": "What model do you want? Describe it in a sentence (e.g. 'predict whether a customer churns').",
    "data_source": "Where is the data? Give a path to a CSV or parquet file.",
    "target": "Which column should the model predict? (press Enter to let mltrainer infer it)",
    "hub_repo": "Publish the model to the HuggingFace Hub? Give a repo id like user/name, or press Enter to skip.",
    "hf_token": "Paste a HuggingFace token with write access (input is hidden).",
}
OPENING = ("Hi! Tell me what model you want and where the data is — for example "
           "'predict whether a customer churns from data/churn.csv'. I'll ask for anything missing.")
MAX_TOKEN_TRIES = 3


@dataclass
class IntakeState:
    """What intake has collected so far; secrets appear only as reference ids."""

    task: str | None = None
    data_source: str | None = None
    target: str | None = None
    runtime: str = "local"
    hub_repo: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)  # kind → reference id
    validated: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind → {ok, message}
    conversation: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    def missing(self) -> list[str]:
        """Required fields not yet collected, and credentials not yet validated, in asking order."""
        gaps = [name for name in REQUIRED_BY_RUNTIME.get(self.runtime, REQUIRED_BY_RUNTIME["local"])
                if not getattr(self, name, None) and name not in self.credentials]
        if self.hub_repo:
            if "hf_token" not in self.credentials:
                gaps.append("hf_token")
            elif not self.validated.get("hf_token", {}).get("ok"):
                gaps.append("a validated HuggingFace write token")
        return gaps

    def to_spec(self, llm: Any = None) -> dict[str, Any]:
        """The same mapping a spec file would hold (validated by mltrainer.spec.Spec).

        ``llm`` is the session's router: the job keeps using that model (its key stays in the
        environment or vault, never in the spec).
        """
        model: Any = "none"
        if llm is not None:
            base = getattr(llm, "api_base", None)
            model = {"model": llm.model, "api_base": base} if base else llm.model
        spec: dict[str, Any] = {"task": self.task, "data": {"source": self.data_source}, "runtime": self.runtime,
                                "llm": model}
        if self.target:
            spec["data"]["target"] = self.target
        if self.hub_repo:
            spec["deploy"] = {"target": "hub", "repo_id": self.hub_repo, "token": self.credentials.get("hf_token")}
        return spec

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecordFieldsTool(BaseTool):
    name = "record_request"
    description = "Record what the user asked for. Pass only the fields the user actually stated."
    parameters = {
        "type": "object",
        "properties": {
            "task": {"type": "string", "description": "the model the user wants, in their words"},
            "data_source": {"type": "string", "description": "path or id of the data"},
            "target": {"type": "string", "description": "the column to predict, if the user named it"},
            "runtime": {"type": "string", "enum": list(REQUIRED_BY_RUNTIME)},
            "hub_repo": {"type": "string", "description": "HuggingFace repo id to publish to, like user/name"},
        },
    }

    def __init__(self, state: IntakeState) -> None:
        self.state = state

    def run(self, **fields: Any) -> ToolOutcome:
        unknown = sorted(set(fields) - set(self.parameters["properties"]))
        if unknown:
            return ToolOutcome(False, f"Unknown fields: {', '.join(unknown)}.")
        if fields.get("runtime") and fields["runtime"] not in REQUIRED_BY_RUNTIME:
            return ToolOutcome(False, f"runtime must be one of {', '.join(REQUIRED_BY_RUNTIME)}.")
        for key, value in fields.items():
            if value not in (None, ""):
                setattr(self.state, key, str(value).strip())
        missing = self.state.missing()
        return ToolOutcome(True, "Recorded." + (f" Still missing: {', '.join(missing)}." if missing else " Nothing is missing."))


class FinishIntakeTool(BaseTool):
    name = "finish_intake"
    description = "Call when everything needed has been collected; it refuses while something is missing."
    parameters = {"type": "object", "properties": {}}

    def __init__(self, state: IntakeState) -> None:
        self.state = state

    def run(self, **_: Any) -> ToolOutcome:
        missing = self.state.missing()
        if missing:
            return ToolOutcome(False, f"Intake cannot finish: still missing {', '.join(missing)}; ask the user for it.")
        self.state.done = True
        return ToolOutcome(True, "Intake complete; the job will start now.")


class IntakeAgent:
    """Runs the conversation until the backend's completeness check passes."""

    stage = "intake"

    def __init__(self, *, ask: Callable[[str, bool], str], say: Callable[[str], None], vault: Any, job_id: str,
                 llm: Any = None, bus: EventBus | None = None, validators: list[BaseTool] | None = None,
                 state: IntakeState | None = None, max_tool_rounds: int = 4, max_turns: int = 40,
                 on_turn: Callable[[IntakeState], None] | None = None) -> None:
        from tools.kaggle_validator import KaggleValidator
        from tools.validators import HFTokenValidator, LLMKeyValidator

        self.ask, self.say, self.vault, self.job_id, self.llm, self.bus = ask, say, vault, job_id, llm, bus
        self.state = state or IntakeState()
        self.max_tool_rounds, self.max_turns = max_tool_rounds, max_turns
        self.on_turn = on_turn or (lambda s: None)
        tools: list[BaseTool] = [RecordFieldsTool(self.state), FinishIntakeTool(self.state),
                                 *(validators or [HFTokenValidator(), LLMKeyValidator(), KaggleValidator()])]
        self.executor = ToolExecutor({self.stage: tools}, vault=vault, job_id=job_id, bus=bus)

    # -- shared ------------------------------------------------------------------------------
    def _hear(self, text: str) -> str:
        """Redact a user message, remember any credential by kind, store the safe text."""
        from tools.vault import redact

        safe, findings = redact(text, self.vault, self.job_id)
        for finding in findings:
            self.state.credentials.setdefault(finding.kind, finding.ref)
        self.state.conversation.append({"role": "user", "content": safe})
        return safe

    def _validate(self, kind: str, need_write: bool) -> ToolOutcome:
        outcome = self.executor.execute(self.stage, "validate_hf_token",
                                        {"token": self.state.credentials[kind], "need_write": need_write})
        self._record_validation(kind, outcome)
        return outcome

    def _record_validation(self, kind: str, outcome: ToolOutcome) -> None:
        self.state.validated[kind] = {"ok": outcome.ok, "message": outcome.message}
        if outcome.ok and outcome.data.get("username") and self.state.hub_repo and "/" not in self.state.hub_repo:
            self.state.hub_repo = f"{outcome.data['username']}/{self.state.hub_repo}"

    def run(self) -> IntakeState:
        if not self.state.conversation:
            self.say(OPENING)
            self.state.conversation.append({"role": "assistant", "content": OPENING})
        if self.llm is None:
            self._guided()
        else:
            self._conversation()
        return self.state

    # -- no LLM: guided questions ------------------------------------------------------------
    def _guided(self) -> None:
        from agents.intent_rules import parse_rules

        if not self.state.task:
            answer = self._hear(self.ask(QUESTIONS["task"], False))
            self.state.task = answer
            parsed = parse_rules(answer)
            self.state.data_source = self.state.data_source or parsed.dataset.source
            self.state.target = self.state.target or parsed.dataset.target
            if parsed.runtime in REQUIRED_BY_RUNTIME:
                self.state.runtime = parsed.runtime
            if parsed.deploy and getattr(parsed.deploy, "repo_id", None):
                self.state.hub_repo = parsed.deploy.repo_id
            self.on_turn(self.state)
        if not self.state.data_source:
            self.state.data_source = self._hear(self.ask(QUESTIONS["data_source"], False)).strip() or None
        if self.state.target is None:
            self.state.target = self._hear(self.ask(QUESTIONS["target"], False)).strip() or None
        if self.state.hub_repo is None:
            self.state.hub_repo = self._hear(self.ask(QUESTIONS["hub_repo"], False)).strip() or None
        self.on_turn(self.state)
        tries = 0
        while self.state.hub_repo and not self.state.validated.get("hf_token", {}).get("ok"):
            if "hf_token" not in self.state.credentials or tries:
                if tries >= MAX_TOKEN_TRIES:
                    self.say("No valid write token; the model will be exported locally and not published.")
                    self.state.hub_repo = None
                    break
                self._hear(self.ask(QUESTIONS["hf_token"], True))
            tries += 1
            if "hf_token" in self.state.credentials:
                self.say(self._validate("hf_token", need_write=True).message)
            self.on_turn(self.state)
        missing = self.state.missing()
        for name in missing:  # anything a runtime needs that the questions above do not cover
            self.say(f"Still missing {name}; set it in a spec file and use 'mltrainer run'.")
        self.state.done = not missing

    # -- with an LLM: a conversation with tool calls -------------------------------------------
    def _system(self) -> str:
        import prompts

        return prompts.load("intake")

    def _conversation(self) -> None:
        from tools.vault import mask

        for _turn in range(self.max_turns):
            if self.state.done:
                return
            if self.state.conversation[-1]["role"] != "user":
                self._hear(self.ask("> ", bool(self._asks_for_secret())))
                self.on_turn(self.state)
            for _round in range(self.max_tool_rounds):
                reply = self.llm.complete(self._system(), self._messages(), tools=self.executor.schemas(self.stage),
                                          stage=self.stage)
                if not reply.tool_calls:
                    text = mask(reply.content or "", self.vault, self.job_id)
                    self.state.conversation.append({"role": "assistant", "content": text})
                    self.say(text)
                    break
                self.state.conversation.append({"role": "assistant", "content": mask(reply.content or "", self.vault, self.job_id),
                                                "tool_calls": [{"id": c.id, "type": "function", "function": {
                                                    "name": c.name, "arguments": json.dumps(c.arguments)}} for c in reply.tool_calls]})
                for call in reply.tool_calls:
                    outcome = self.executor.execute(self.stage, call.name, call.arguments)
                    if call.name == "validate_hf_token":
                        self._record_validation("hf_token", outcome)
                    self.state.conversation.append({"role": "tool", "tool_call_id": call.id, "content": outcome.for_model()})
                self.on_turn(self.state)
                if self.state.done:
                    return
            else:
                self.say("Let me ask differently.")
        self.say("We went back and forth too long; start again or write a spec file for 'mltrainer run'.")

    def _messages(self) -> list[dict[str, Any]]:
        state = {"collected": {k: getattr(self.state, k) for k in ("task", "data_source", "target", "runtime", "hub_repo")},
                 "credentials": self.state.credentials, "validated": self.state.validated, "missing": self.state.missing()}
        note = {"role": "system", "content": "Intake state (secrets are reference ids): " + json.dumps(state)}
        return [*self.state.conversation, note]

    def _asks_for_secret(self) -> bool:
        last = next((m["content"] for m in reversed(self.state.conversation) if m["role"] == "assistant"), "") or ""
        return any(word in last.lower() for word in ("token", "api key", "password", "secret"))
