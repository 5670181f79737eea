"""The one door to language models: a router over litellm, so agents never import litellm.

Any litellm model string works (``anthropic/…``, ``openai/…``, ``gemini/…``, ``groq/…``,
``ollama_chat/…``) as does any OpenAI-compatible server (``api_base``). Keys travel per call, never
through ``os.environ``. Every call emits ``LLMCall``/``LLMResponse`` events and adds to ``totals``;
transient failures are retried with backoff, the rest raise at once as one of our error classes.
litellm is imported on the first call: importing it takes seconds, and a no-LLM job never pays that.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.errors import ClientError, CredentialError, MltrainerError, SpecError, TransientError
from orchestrator.events import AgentLog, EventBus, LLMCall, LLMResponse
from orchestrator.retry import RetryPolicy
from tools.llm_errors import CREDENTIAL_ERRORS, LLMErrorInfo, classify_llm_error


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool the model asked for; ``arguments`` is ``{}`` when ``raw_arguments`` is not a JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str


@dataclass
class LLMReply:
    content: str | None
    tool_calls: list[ToolCallRequest]
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    latency: float

    def as_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation before sending tool results back."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments}}
                for c in self.tool_calls
            ]
        return message


def tool_result_message(call: ToolCallRequest, content: str) -> dict[str, Any]:
    """The ``tool`` message answering one tool call."""
    return {"role": "tool", "tool_call_id": call.id, "content": content}


class LLMClient(Protocol):
    """What agents depend on: the router in production, ``tests.fakes.scripted_llm`` in tests."""

    model: str

    def complete(self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                 response_format: dict[str, Any] | None = None, stage: str = "") -> LLMReply: ...


# -- litellm, loaded once on first use -------------------------------------------------------------

_litellm: Any = None
_litellm_lock = threading.Lock()


def _load_litellm() -> Any:
    """Import litellm quietly: bundled price map (no fetch), no telemetry, no 'Give Feedback' banners."""
    global _litellm
    with _litellm_lock:
        if _litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            litellm.telemetry = False  # gone in recent versions; harmless to set
            litellm.suppress_debug_info = True
            litellm.set_verbose = False
            _litellm = litellm
    return _litellm


#: Backoff between tries of one call; ``attempts`` is replaced by the router's ``max_retries + 1``.
BACKOFF = RetryPolicy(attempts=4, base_delay=1.0, backoff=2.0, cap=30.0, jitter=0.1, feed_errors=False)

_KEY_PATTERN = re.compile(r"\b(?:sk|gsk|xai|pk|AIza)[-_A-Za-z0-9*.]{8,}|Bearer\s+\S+")
#: litellm's prefixes ("litellm.BadRequestError: OpenAIException - "), which repeat the class name.
_PREFIX_PATTERN = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception|Timeout)(?::|\s+-)\s*)+")


def _scrub(text: str, secret: str | None) -> str:
    """First line of a provider message, without the key or anything shaped like one."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if secret:
        line = line.replace(secret, "[redacted]")
    line = _PREFIX_PATTERN.sub("", _KEY_PATTERN.sub("[redacted]", line))
    return line[:200].rstrip(". ")


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After``), if it said."""
    headers = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def _parse_arguments(raw: Any) -> tuple[dict[str, Any], str]:
    """Tool arguments as (dict, raw text); a non-JSON or non-object payload gives ``{}``."""
    if isinstance(raw, dict):
        return raw, json.dumps(raw)
    text = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}, text
    return (value if isinstance(value, dict) else {}), text


class LLMRouter:
    """One model behind litellm, with retries, events and per-job totals; implements ``LLMClient``."""

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None,
                 bus: EventBus | None = None, timeout: float = 120.0, max_retries: int = 3,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.model = model
        self.api_base = api_base
        self._api_key = api_key
        self.bus = bus
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.sleep = sleep
        self.totals: dict[str, float] = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost": 0.0, "latency": 0.0}
        self._lock = threading.Lock()
        self._rng = random.Random()

    def __repr__(self) -> str:  # never the key
        return f"LLMRouter(model={self.model!r}, api_base={self.api_base!r})"

    def complete(self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                 response_format: dict[str, Any] | None = None, stage: str = "") -> LLMReply:
        """One chat completion; retries transient failures, raises ``MltrainerError`` subclasses."""
        full = ([{"role": "system", "content": system}] if system else []) + list(messages)
        self._emit(LLMCall(stage=stage, model=self.model, messages=len(full)))
        litellm = _load_litellm()
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": full, "timeout": self.timeout,
            "max_retries": 0,  # the SDK's own retries would sleep for real; ours are below
            "drop_params": True,  # a provider lacking e.g. response_format still answers
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        elif self.api_base and self.model.startswith("openai/"):
            # A keyless local server (vLLM, llama.cpp…): a placeholder satisfies the SDK, and the user's
            # real OPENAI_API_KEY is never sent to a server that is not OpenAI.
            kwargs["api_key"] = "no-key"
        if tools:
            kwargs["tools"] = tools
            # litellm sends any call with tools through its MCP-gateway check first, which imports
            # the `mcp` package (only in litellm's proxy extra; it drags in starlette, uvicorn…).
            # We never use MCP tools, so we skip that check instead of adding the dependency;
            # test_tool_call_round_trip proves tool calls work end to end without `mcp` installed.
            kwargs["_skip_mcp_handler"] = True
        if response_format:
            kwargs["response_format"] = response_format
        policy = BACKOFF
        for attempt in range(1, self.max_retries + 2):
            started = time.monotonic()
            try:
                response = litellm.completion(**kwargs)
            except Exception as exc:  # noqa: BLE001 - classified below; unknown errors re-raised
                info = classify_llm_error(exc)
                if info is None:
                    raise
                if not info.retry or attempt > self.max_retries:
                    raise self._error(exc, info, attempts=attempt) from exc
                wait = policy.delay(attempt, self._rng)
                asked = _retry_after(exc)
                if asked is not None:
                    wait = max(wait, min(asked, policy.cap))
                self._emit(AgentLog(stage=stage, level="warning", message=(
                    f"{self.model}: {info.description}; retrying in {wait:.1f}s "
                    f"(try {attempt + 1} of {self.max_retries + 1})")))
                self.sleep(wait)
                continue
            latency = time.monotonic() - started
            return self._reply(litellm, response, latency, stage)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- helpers ---------------------------------------------------------------------------------
    def _reply(self, litellm: Any, response: Any, latency: float, stage: str) -> LLMReply:
        message = response.choices[0].message
        calls = []
        for call in getattr(message, "tool_calls", None) or []:
            arguments, raw = _parse_arguments(call.function.arguments)
            calls.append(ToolCallRequest(id=str(call.id or ""), name=str(call.function.name or ""),
                                         arguments=arguments, raw_arguments=raw))
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        try:  # litellm's bundled price map; an unknown model (a local server) costs nothing
            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # noqa: BLE001 - cost is informational, never a reason to fail a call
            cost = 0.0
        with self._lock:
            self.totals["calls"] += 1
            self.totals["tokens_in"] += tokens_in
            self.totals["tokens_out"] += tokens_out
            self.totals["cost"] += cost
            self.totals["latency"] += latency
        self._emit(LLMResponse(stage=stage, model=self.model, tokens_in=tokens_in, tokens_out=tokens_out,
                               cost=cost, latency=latency))
        return LLMReply(content=message.content, tool_calls=calls, model=self.model, tokens_in=tokens_in,
                        tokens_out=tokens_out, cost=cost, latency=latency)

    def _error(self, exc: BaseException, info: LLMErrorInfo, attempts: int) -> MltrainerError:
        """One sentence naming the model, what went wrong and what to do; never the key."""
        detail = _scrub(str(exc), self._api_key)
        where = f"{self.model}" + (f" at {self.api_base}" if self.api_base else "")
        error: MltrainerError
        if info.name in CREDENTIAL_ERRORS:
            error = CredentialError(f"The LLM {where} refused the call: {info.description}; check the API key "
                                    f"and its permissions ({info.name}).")
        elif info.retry:
            error = TransientError(f"The LLM {where} kept failing after {attempts} tries: {info.description} "
                                   f"({info.name}: {detail}).")
        else:
            error = ClientError(f"The LLM {where} rejected the call: {info.description} ({info.name}: {detail}).")
        error.llm_error = info.name  # type: ignore[attr-defined]
        error.feed_back = info.feed_back  # type: ignore[attr-defined]
        return error

    def _emit(self, event: Any) -> None:
        if self.bus is not None:
            self.bus.emit(event)


# -- choosing a model ------------------------------------------------------------------------------

#: (env vars holding the key, first wins) -> a cheap, capable default; tried in this order.
PROVIDER_DEFAULTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("OPENAI_API_KEY",), "openai/gpt-4.1-mini"),
    (("ANTHROPIC_API_KEY",), "anthropic/claude-haiku-4-5"),
    (("GEMINI_API_KEY", "GOOGLE_API_KEY"), "gemini/gemini-2.5-flash"),
    (("MISTRAL_API_KEY",), "mistral/mistral-small-latest"),
    (("DEEPSEEK_API_KEY",), "deepseek/deepseek-chat"),
    (("GROQ_API_KEY",), "groq/openai/gpt-oss-120b"),  # Groq's free tier: the last paid-key-free option
)

#: litellm provider prefix -> env vars that may hold its key, for explicit model strings.
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
    "xai": ("XAI_API_KEY",),
    "cerebras": ("CEREBRAS_API_KEY",),
}

#: Keys a spec's ``llm:`` mapping may have. ``api_key_env`` names an env var, so keys stay out of specs.
SPEC_KEYS = frozenset({"model", "api_base", "api_key", "api_key_env"})


def _first_key(names: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    for name in names:
        value = (env.get(name) or "").strip()
        if value:
            return value
    return None


def probe_ollama(url: str, timeout: float) -> str | None:
    """The first model of an Ollama answering at ``url`` (GET /api/tags), or None; never raises."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/tags", timeout=timeout) as answer:  # noqa: S310
            models = json.loads(answer.read()).get("models") or []
        name = (models[0].get("name") or models[0].get("model")) if models else None
        return str(name) if name else None
    except Exception:  # noqa: BLE001 - no Ollama is the normal case
        return None


def router_from_spec(llm: str | dict[str, Any] | None, *, env: Mapping[str, str] | None = None,
                     bus: EventBus | None = None, ollama_url: str = "http://127.0.0.1:11434",
                     probe_timeout: float = 0.3) -> LLMRouter | None:
    """The router a spec's ``llm`` asks for, or None for no-LLM mode.

    ``"none"`` -> None; a model string -> that model (its key looked up in ``env``); a mapping ->
    ``model`` with optional ``api_base``/``api_key``/``api_key_env``; None or ``"auto"`` -> the
    first provider key in ``env``, else Groq, else a local Ollama, else None.
    """
    env = os.environ if env is None else env
    if isinstance(llm, Mapping):
        unknown = sorted(set(llm) - SPEC_KEYS)
        if unknown:
            raise SpecError(f"llm has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SPEC_KEYS))}.")
        model = str(llm.get("model") or "").strip()
        if not model:
            raise SpecError("llm needs a model, e.g. {model: openai/my-model, api_base: http://host:8000/v1}.")
        api_base = llm.get("api_base") or None
        if api_base and "/" not in model:
            model = f"openai/{model}"  # a bare name on a custom server means the OpenAI protocol
        api_key = llm.get("api_key") or None
        if llm.get("api_key_env"):
            api_key = _first_key((str(llm["api_key_env"]),), env)
            if api_key is None:
                raise CredentialError(f"llm.api_key_env names {llm['api_key_env']}, which is not set.")
        if api_key is None and not api_base:
            api_key = _first_key(PROVIDER_KEYS.get(model.split("/", 1)[0], ()), env)
        return LLMRouter(model, api_base=str(api_base) if api_base else None, api_key=api_key, bus=bus)
    if llm is not None and not isinstance(llm, str):
        raise SpecError(f"llm must be a model name, none, auto or a mapping, not {type(llm).__name__}.")
    choice = (llm or "auto").strip()
    if choice.lower() == "none":
        return None
    if choice.lower() != "auto":
        return LLMRouter(choice, api_key=_first_key(PROVIDER_KEYS.get(choice.split("/", 1)[0], ()), env), bus=bus)
    for names, model in PROVIDER_DEFAULTS:
        key = _first_key(names, env)
        if key:
            return LLMRouter(model, api_key=key, bus=bus)
    name = probe_ollama(ollama_url, probe_timeout)
    if name:  # ollama_chat/ uses /api/chat, which litellm recommends for messages and tools
        return LLMRouter(f"ollama_chat/{name}", api_base=ollama_url, bus=bus)
    return None


__all__ = [
    "LLMClient", "LLMReply", "LLMRouter", "ToolCallRequest", "router_from_spec", "tool_result_message",
    "probe_ollama", "PROVIDER_DEFAULTS",
]
