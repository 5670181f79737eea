"""The LLM router over the real OpenAI protocol (a fake server on 127.0.0.1), its error table, and
the choice of model when a spec names none."""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.errors import ClientError, CredentialError, SpecError, TransientError
from orchestrator.events import AgentLog, EventBus, LLMCall, LLMResponse
from tests.conftest import REPO
from tests.fakes.openai_server import FakeOpenAIServer, Reply, openai_server  # noqa: F401 - fixture
from tests.fakes.scripted_llm import ScriptedLLM
from tools.llm import LLMReply, LLMRouter, ToolCallRequest, router_from_spec, tool_result_message
from tools.llm_errors import LLM_ERRORS, classify_llm_error

KEY = "sk-test-0123456789abcdefSECRET"
TOOLS: list[dict[str, Any]] = [{
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "required": ["a", "b"]},
    },
}]
USER = [{"role": "user", "content": "hello there"}]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def events() -> Iterator[tuple[EventBus, list[Any]]]:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    yield bus, seen


def make_router(server: FakeOpenAIServer, sleeps: Sleeps, bus: EventBus | None = None, **kw: Any) -> LLMRouter:
    return LLMRouter("openai/fake-model", api_base=server.base_url, api_key=KEY, bus=bus, sleep=sleeps, **kw)


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the happy paths --------------------------------------------------------------------------------

def test_plain_completion(openai_server: FakeOpenAIServer, sleeps: Sleeps) -> None:
    openai_server.add_text("Hi, how can I help?")
    reply = make_router(openai_server, sleeps).complete("Be brief.", USER, stage="intent")
    assert reply.content == "Hi, how can I help?" and reply.tool_calls == []
    assert reply.model == "openai/fake-model"
    [request] = openai_server.chat_requests
    assert request.json["model"] == "fake-model"
    assert request.json["messages"] == [{"role": "system", "content": "Be brief."}, *USER]
    assert "tools" not in request.json and "response_format" not in request.json
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert sleeps == []


def test_tool_call_round_trip(openai_server: FakeOpenAIServer, sleeps: Sleeps) -> None:
    openai_server.add_tool_call("add", {"a": 2, "b": 3}, call_id="call_add")
    openai_server.add_text("2 + 3 = 5")
    router = make_router(openai_server, sleeps)
    first = router.complete("You can add.", [{"role": "user", "content": "2+3?"}], tools=TOOLS)
    assert first.tool_calls == [ToolCallRequest(id="call_add", name="add", arguments={"a": 2, "b": 3},
                                                raw_arguments='{"a": 2, "b": 3}')]
    assert openai_server.chat_requests[0].json["tools"] == TOOLS
    messages = [{"role": "user", "content": "2+3?"}, first.as_message(), tool_result_message(first.tool_calls[0], "5")]
    second = router.complete("You can add.", messages, tools=TOOLS)
    assert second.content == "2 + 3 = 5"
    sent = openai_server.chat_requests[1].json["messages"]
    assert sent[2]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert sent[3] == {"role": "tool", "tool_call_id": "call_add", "content": "5"}
    # litellm's tools= path would import `mcp` (not a dependency); the router skips that check, and the
    # private flag that does so must be consumed by litellm, not forwarded to the provider.
    assert "mcp" not in sys.modules
    assert all(b"_skip_mcp" not in r.raw for r in openai_server.chat_requests)


def test_tool_arguments_that_are_not_json_are_kept_raw(openai_server: FakeOpenAIServer, sleeps: Sleeps) -> None:
    openai_server.add_tool_call("add", '{"a": 2, "b": ')
    openai_server.add_tool_call("add", "[1, 2]")
    router = make_router(openai_server, sleeps)
    [call] = router.complete("", USER, tools=TOOLS).tool_calls
    assert call.arguments == {} and call.raw_arguments == '{"a": 2, "b": '
    [call] = router.complete("", USER, tools=TOOLS).tool_calls
    assert call.arguments == {} and call.raw_arguments == "[1, 2]"


def test_response_format_json(openai_server: FakeOpenAIServer, sleeps: Sleeps) -> None:
    openai_server.add_text('{"target": "churned", "task_type": "tabular_classification"}')
    fmt = {"type": "json_object"}
    reply = make_router(openai_server, sleeps).complete("Answer in JSON.", USER, response_format=fmt)
    assert json.loads(reply.content or "")["target"] == "churned"
    assert openai_server.chat_requests[0].json["response_format"] == fmt


def test_usage_cost_and_latency_reach_events_and_totals(openai_server: FakeOpenAIServer, sleeps: Sleeps,
                                                        events: tuple[EventBus, list[Any]]) -> None:
    bus, seen = events
    openai_server.add_text("one", usage={"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17})
    openai_server.add_text("two", usage={"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37})
    router = make_router(openai_server, sleeps, bus=bus)
    first = router.complete("sys", USER, stage="config")
    router.complete("sys", USER, stage="config")
    assert [type(e) for e in seen] == [LLMCall, LLMResponse, LLMCall, LLMResponse]
    assert seen[0] == LLMCall(stage="config", model="openai/fake-model", messages=2, time=seen[0].time)
    response = seen[1]
    assert (response.stage, response.model) == ("config", "openai/fake-model")
    assert (response.tokens_in, response.tokens_out) == (12, 5)
    assert response.cost == 0.0  # not in litellm's price map
    assert response.latency == first.latency and 0 < first.latency < 30
    assert router.totals["calls"] == 2 and router.totals["tokens_in"] == 42 and router.totals["tokens_out"] == 12
    assert router.totals["latency"] == pytest.approx(first.latency + seen[3].latency)


def test_a_priced_model_costs_money(openai_server: FakeOpenAIServer, sleeps: Sleeps) -> None:
    openai_server.add_text("priced", usage={"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000})
    router = LLMRouter("openai/gpt-4o-mini", api_base=openai_server.base_url, api_key=KEY, sleep=sleeps)
    reply = router.complete("", USER)
    assert 0 < reply.cost < 0.01 and router.totals["cost"] == reply.cost


# -- errors and retries -----------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "text", "expected"), [
    (401, "", CredentialError),  # OpenAI's own wording, with the masked key
    (401, "token rejected", CredentialError),  # litellm calls this a BadRequestError; the status decides
    (403, "", CredentialError),
    (400, "", ClientError),
    (402, "", ClientError),
    (404, "", ClientError),
])
def test_errors_the_caller_must_fix_raise_at_once(openai_server: FakeOpenAIServer, sleeps: Sleeps, status: int,
                                                  text: str, expected: type[Exception]) -> None:
    openai_server.add_status(status, text)
    with pytest.raises(expected) as caught:
        make_router(openai_server, sleeps).complete("", USER)
    message = str(caught.value)
    assert type(caught.value) is expected
    assert KEY not in message and KEY[-6:] not in message and "Bearer" not in message
    assert "openai/fake-model" in message and message.count("\n") == 0
    assert len(openai_server.chat_requests) == 1 and sleeps == []


def test_rate_limit_then_success_is_retried(openai_server: FakeOpenAIServer, sleeps: Sleeps,
                                            events: tuple[EventBus, list[Any]]) -> None:
    bus, seen = events
    openai_server.add_status(429, headers={"retry-after": "3"})
    openai_server.add_status(429)
    openai_server.add_text("finally")
    reply = make_router(openai_server, sleeps, bus=bus).complete("", USER, stage="intent")
    assert reply.content == "finally"
    assert len(openai_server.chat_requests) == 3
    assert len(sleeps) == 2 and sleeps[0] >= 3  # Retry-After honoured
    assert 1.5 <= sleeps[1] <= 2.5  # exponential backoff, second wait
    warnings = [e for e in seen if isinstance(e, AgentLog)]
    assert len(warnings) == 2 and warnings[0].level == "warning" and "retrying" in warnings[0].message
    assert [type(e) for e in seen if not isinstance(e, AgentLog)] == [LLMCall, LLMResponse]


def test_server_errors_exhaust_into_transient_error(openai_server: FakeOpenAIServer, sleeps: Sleeps) -> None:
    openai_server.script(Reply(status=500), Reply(status=503), Reply(status=500))
    with pytest.raises(TransientError) as caught:
        make_router(openai_server, sleeps, max_retries=2).complete("", USER)
    assert "3 tries" in str(caught.value) and KEY not in str(caught.value)
    assert len(openai_server.chat_requests) == 3
    assert len(sleeps) == 2 and sleeps[0] < sleeps[1]


def test_unreachable_server_and_timeout_are_transient(openai_server: FakeOpenAIServer, sleeps: Sleeps) -> None:
    router = LLMRouter("openai/fake-model", api_base=f"http://127.0.0.1:{dead_port()}/v1", api_key=KEY,
                       max_retries=1, sleep=sleeps)
    with pytest.raises(TransientError):
        router.complete("", USER)
    assert len(sleeps) == 1
    openai_server.script(Reply(content="late", delay=1.0))
    with pytest.raises(TransientError, match="in time"):
        make_router(openai_server, sleeps, timeout=0.2, max_retries=0).complete("", USER)


def test_unknown_exceptions_are_not_disguised(monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps) -> None:
    class Stub:
        @staticmethod
        def completion(**kwargs: Any) -> Any:
            raise ValueError("a bug, not the provider")

    monkeypatch.setattr("tools.llm._load_litellm", lambda: Stub)
    with pytest.raises(ValueError, match="a bug"):
        LLMRouter("openai/x", sleep=sleeps).complete("", USER)
    assert sleeps == []
    assert classify_llm_error(ValueError("x")) is None
    assert classify_llm_error(TimeoutError()).retry is True  # type: ignore[union-attr]


def test_classification_follows_the_mro_and_fixes_litellm_mislabels() -> None:
    import litellm

    class FutureRateLimit(litellm.RateLimitError):  # a class litellm might add later
        pass

    future = classify_llm_error(FutureRateLimit(message="slow down", llm_provider="openai", model="m"))
    assert future is not None and future.name == "RateLimitError" and future.retry
    no_key = litellm.InternalServerError(message="Missing credentials. Please pass an `api_key`", llm_provider="openai",
                                         model="m")
    assert classify_llm_error(no_key).name == "AuthenticationError"  # type: ignore[union-attr]
    too_long = classify_llm_error(litellm.ContextWindowExceededError(message="long", model="m", llm_provider="openai"))
    assert too_long is not None and not too_long.retry and too_long.feed_back


def test_the_error_table_names_every_litellm_exception() -> None:
    import litellm
    import litellm.exceptions

    names = {name for name, obj in vars(litellm.exceptions).items()
             if inspect.isclass(obj) and issubclass(obj, BaseException)}
    names |= {cls.__name__ for cls in getattr(litellm, "LITELLM_EXCEPTION_TYPES", [])}
    missing = sorted(names - set(LLM_ERRORS))
    assert not missing, f"add these litellm exceptions to tools/llm_errors.LLM_ERRORS: {missing}"
    for retry, feed_back, description in LLM_ERRORS.values():
        assert isinstance(retry, bool) and isinstance(feed_back, bool) and description and "\n" not in description


# -- keys stay where they belong --------------------------------------------------------------------

def test_the_key_goes_only_into_the_authorization_header(openai_server: FakeOpenAIServer, sleeps: Sleeps) -> None:
    before = dict(os.environ)
    openai_server.add_text("ok")
    openai_server.add_tool_call("add", {"a": 1, "b": 1})
    router = make_router(openai_server, sleeps)
    router.complete("sys", USER)
    router.complete("sys", USER, tools=TOOLS)
    assert dict(os.environ) == before
    assert KEY not in repr(router)
    for request in openai_server.chat_requests:
        assert KEY.encode() not in request.raw
        assert [name for name, value in request.headers.items() if KEY in value] == ["authorization"]


# -- choosing a model -------------------------------------------------------------------------------

def test_a_provider_key_in_the_env_picks_that_provider() -> None:
    dead = f"http://127.0.0.1:{dead_port()}"
    groq = router_from_spec(None, env={"GROQ_API_KEY": "gsk_free"}, ollama_url=dead)
    assert groq is not None and groq.model.startswith("groq/") and groq._api_key == "gsk_free"
    both = router_from_spec("auto", env={"GROQ_API_KEY": "gsk_free", "ANTHROPIC_API_KEY": "sk-ant"}, ollama_url=dead)
    assert both is not None and both.model.startswith("anthropic/")  # a paid key beats the free tier
    google = router_from_spec(None, env={"GOOGLE_API_KEY": "AIza-x"}, ollama_url=dead)
    assert google is not None and google.model.startswith("gemini/") and google._api_key == "AIza-x"


def test_a_local_ollama_is_the_last_resort() -> None:
    with FakeOpenAIServer(ollama_models=("llama3.2:1b", "qwen2.5:0.5b")) as ollama:
        router = router_from_spec(None, env={}, ollama_url=ollama.url)
        assert ollama.requests[0].path == "/api/tags"
        assert router is not None and router.model == "ollama_chat/llama3.2:1b" and router.api_base == ollama.url


def test_nothing_available_means_no_llm(openai_server: FakeOpenAIServer) -> None:
    assert router_from_spec(None, env={}, ollama_url=f"http://127.0.0.1:{dead_port()}") is None
    assert router_from_spec("auto", env={}, ollama_url=openai_server.url) is None  # answers, but no /api/tags
    assert router_from_spec("none", env={"OPENAI_API_KEY": "sk-x"}) is None
    assert router_from_spec("None", env={}) is None


def test_explicit_models_and_mappings(openai_server: FakeOpenAIServer) -> None:
    named = router_from_spec("anthropic/claude-haiku-4-5", env={"ANTHROPIC_API_KEY": "sk-ant-1"})
    assert named is not None and named.model == "anthropic/claude-haiku-4-5" and named._api_key == "sk-ant-1"
    spec = {"model": "fake-model", "api_base": openai_server.base_url, "api_key": "sk-map-1"}
    mapped = router_from_spec(spec, env={})
    assert mapped is not None and mapped.model == "openai/fake-model"
    openai_server.add_text("from the mapping")
    assert mapped.complete("", USER).content == "from the mapping"
    assert openai_server.chat_requests[0].headers["authorization"] == "Bearer sk-map-1"
    keyless = router_from_spec({"model": "local-model", "api_base": openai_server.base_url}, env={})
    assert keyless is not None
    openai_server.add_text("no key needed")
    assert keyless.complete("", USER).content == "no key needed"
    assert openai_server.chat_requests[1].headers["authorization"] == "Bearer no-key"
    by_env = router_from_spec({"model": "openai/m", "api_base": "http://h/v1", "api_key_env": "MY_KEY"},
                              env={"MY_KEY": "sk-env-1"})
    assert by_env is not None and by_env._api_key == "sk-env-1"
    with pytest.raises(SpecError, match="unknown key"):
        router_from_spec({"model": "openai/m", "apikey": "x"}, env={})
    with pytest.raises(SpecError, match="needs a model"):
        router_from_spec({"api_base": "http://h/v1"}, env={})
    with pytest.raises(CredentialError, match="NOPE"):
        router_from_spec({"model": "openai/m", "api_key_env": "NOPE"}, env={})


# -- the fakes themselves ---------------------------------------------------------------------------

def test_fake_server_speaks_sse_and_lists_models(openai_server: FakeOpenAIServer) -> None:
    import litellm

    openai_server.add_text("streamed over server-sent events")
    openai_server.add_tool_call("add", {"a": 4, "b": 5}, call_id="call_s")
    common = {"model": "openai/fake-model", "messages": USER, "api_base": openai_server.base_url, "api_key": KEY,
              "max_retries": 0, "stream": True}
    chunks = list(litellm.completion(**common, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed over server-sent events"
    assert any(getattr(c, "usage", None) and c.usage.prompt_tokens > 0 for c in chunks)
    chunks = list(litellm.completion(**common, tools=TOOLS, _skip_mcp_handler=True))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    args = "".join(tc.function.arguments or "" for tc in deltas)
    assert json.loads(args) == {"a": 4, "b": 5}
    with urllib.request.urlopen(f"{openai_server.base_url}/models", timeout=5) as answer:
        assert [m["id"] for m in json.loads(answer.read())["data"]] == ["fake-model"]


def test_scripted_llm_records_calls_and_runs_dry() -> None:
    call = ToolCallRequest(id="c1", name="add", arguments={"a": 1}, raw_arguments='{"a": 1}')
    scripted = LLMReply(content=None, tool_calls=[call], model="scripted", tokens_in=3, tokens_out=2, cost=0.0,
                        latency=0.0)
    llm = ScriptedLLM(["plain", scripted, CredentialError("bad key")])
    messages = [{"role": "user", "content": "go"}]
    assert llm.complete("sys", messages, stage="intent").content == "plain"
    messages.append({"role": "user", "content": "later mutation"})
    assert llm.complete("sys2", messages, tools=TOOLS).tool_calls == [call]
    with pytest.raises(CredentialError):
        llm.complete("sys3", [])
    with pytest.raises(AssertionError, match="ran out"):
        llm.complete("sys4", [])
    assert [c.system for c in llm.calls] == ["sys", "sys2", "sys3", "sys4"]
    assert len(llm.calls[0].messages) == 1 and llm.calls[1].tools == TOOLS and llm.calls[0].stage == "intent"
    assert llm.totals["calls"] == 2 and llm.totals["tokens_in"] == 3


def test_importing_the_router_does_not_import_litellm() -> None:
    code = "import sys, tools.llm, tools.llm_errors, tests.fakes.scripted_llm; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False"
