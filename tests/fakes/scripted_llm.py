"""An ``LLMClient`` that answers from a list, with no network, for agent tests.

Use it where the HTTP protocol is not the point (that is ``openai_server.py``'s job): give it the
replies the model should produce, run the agent, then look at ``calls`` to see what it was asked.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from tools.llm import LLMReply


@dataclass
class ScriptedCall:
    """What one ``complete`` call was given (deep copies, so later mutation does not rewrite history)."""

    system: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    response_format: dict[str, Any] | None
    stage: str


Scripted = Union[str, LLMReply, BaseException]


class ScriptedLLM:
    """Replies in order: a ``str`` becomes a plain text reply, an ``LLMReply`` is returned as is, and an
    exception instance is raised (to script provider failures). A callable gets the messages and
    returns one of those — for replies that must quote something only known at run time, such as a
    secret's reference id. Running out fails the test loudly."""

    def __init__(self, replies: list[Scripted | Callable[[list[dict[str, Any]]], Scripted]],
                 model: str = "scripted") -> None:
        self.model = model
        self.replies = list(replies)
        self.calls: list[ScriptedCall] = []
        self.totals: dict[str, float] = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost": 0.0, "latency": 0.0}

    def complete(self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                 response_format: dict[str, Any] | None = None, stage: str = "") -> LLMReply:
        self.calls.append(ScriptedCall(system, copy.deepcopy(messages), copy.deepcopy(tools),
                                       copy.deepcopy(response_format), stage))
        if not self.replies:
            raise AssertionError(f"ScriptedLLM ran out of replies at call {len(self.calls)} (stage {stage!r})")
        reply = self.replies.pop(0)
        if callable(reply):
            reply = reply(messages)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            reply = LLMReply(content=reply, tool_calls=[], model=self.model, tokens_in=0, tokens_out=0,
                             cost=0.0, latency=0.0)
        self.totals["calls"] += 1
        self.totals["tokens_in"] += reply.tokens_in
        self.totals["tokens_out"] += reply.tokens_out
        self.totals["cost"] += reply.cost
        return reply

    @property
    def remaining(self) -> int:
        return len(self.replies)
