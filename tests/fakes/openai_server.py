"""A small OpenAI-compatible server on 127.0.0.1, so LLM code is tested over the real protocol.

It answers ``POST /v1/chat/completions`` from a queue of scripted replies (text, tool calls, HTTP
errors; SSE chunks when the request asks for ``stream: true``), ``GET /v1/models`` and, when given
Ollama model names, ``GET /api/tags``. Every request is recorded (raw bytes, parsed JSON, headers)
so tests can check what left the process — for example that an API key went only into a header.

    with FakeOpenAIServer() as server:
        server.add_text("hello")
        router = LLMRouter("openai/fake-model", api_base=server.base_url, api_key="sk-test")
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

#: What OpenAI answers per status: (message, type, code). litellm maps some errors by their text (a 401
#: is an AuthenticationError only when it says "Incorrect API key provided"), so the text matters.
#: ``{key}`` is the masked key from the request, ``{model}`` the requested model.
ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided: {key}. You can find your API key at "
          "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "permission_error", None),
    404: ("The model `{model}` does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    429: ("Rate limit reached for requests per min. Please try again in 1s.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def mask_key(key: str) -> str:
    """OpenAI's way of echoing a key: the first three and last four characters."""
    return f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 7 else "***"


@dataclass
class Reply:
    """One scripted answer: a 200 with content and/or tool calls, or an HTTP error status."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"id", "name", "arguments": str}
    status: int = 200
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] | None = None  # overrides the estimate
    delay: float = 0.0  # seconds to wait before answering (timeout tests)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    json: Any


def _estimate_tokens(text: str) -> int:
    """About four characters a token, like OpenAI's rule of thumb; never zero."""
    return max(1, (len(text) + 3) // 4)


class FakeOpenAIServer:
    """ThreadingHTTPServer in a daemon thread on an ephemeral port; use as a context manager."""

    def __init__(self, *, models: tuple[str, ...] = ("fake-model",), ollama_models: tuple[str, ...] = ()) -> None:
        self.models = models
        self.ollama_models = ollama_models
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._call_ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``api_base``."""
        return f"{self.url}/v1"

    # -- scripting -------------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def add_text(self, text: str, **kw: Any) -> None:
        self.script(Reply(content=text, **kw))

    def add_tool_call(self, name: str, arguments: dict[str, Any] | str, *, call_id: str | None = None,
                      content: str | None = None, **kw: Any) -> None:
        """A reply calling one tool; ``arguments`` as a string is sent verbatim (even if not JSON)."""
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call = {"id": call_id or f"call_{next(self._call_ids)}", "name": name, "arguments": raw}
        self.script(Reply(content=content, tool_calls=[call], **kw))

    def add_status(self, status: int, error: str = "", headers: dict[str, str] | None = None) -> None:
        """An HTTP error; without ``error`` the body says what OpenAI says for that status."""
        self.script(Reply(status=status, error=error, headers=dict(headers or {})))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    # -- used by the handler ---------------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next(self) -> tuple[Reply | None, int]:
        with self._lock:
            self._counter += 1
            return (self._replies.popleft() if self._replies else None), self._counter


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout tests) is expected; anything else is printed as usual."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer  # set on the subclass made per server
    server_version = "FakeOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        return

    def _read(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body)
        self.fake._record(request)
        return request

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._read()
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.fake.models]
            self._send_json(200, {"object": "list", "data": data})
        elif path == "/api/tags" and self.fake.ollama_models:
            models = [{"name": m, "model": m, "modified_at": "2024-01-01T00:00:00Z", "size": 1}
                      for m in self.fake.ollama_models]
            self._send_json(200, {"models": models})
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found_error"}})

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        request = self._read()
        if not request.path.split("?")[0].rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": "no such route", "type": "not_found_error"}})
            return
        reply, number = self.fake._next()
        if reply is None:
            reply = Reply(status=400, error="fake server: no scripted reply left")
        if reply.delay:
            time.sleep(reply.delay)
        body = request.json if isinstance(request.json, dict) else {}
        model = str(body.get("model") or "fake-model")
        if reply.status != 200:
            text, kind, code = ERRORS.get(reply.status, (f"Error {reply.status}.", "api_error", None))
            key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            message = reply.error or text.format(key=mask_key(key), model=model)
            error = {"message": message, "type": kind, "param": None, "code": code}
            self._send_json(reply.status, {"error": error}, reply.headers)
            return
        usage = reply.usage or self._usage(body, reply)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(reply, model, number, usage if include_usage else None)
        else:
            self._send_json(200, self._completion(reply, model, number, usage), reply.headers)

    @staticmethod
    def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
        prompt = _estimate_tokens(json.dumps(body.get("messages", [])) + json.dumps(body.get("tools") or ""))
        calls = "".join(c["name"] + c["arguments"] for c in reply.tool_calls)
        completion = _estimate_tokens((reply.content or "") + calls)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @staticmethod
    def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
        return [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in reply.tool_calls]

    def _completion(self, reply: Reply, model: str, number: int, usage: dict[str, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = self._tool_calls(reply)
        return {
            "id": f"chatcmpl-fake{number}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
            "usage": usage,
        }

    def _stream(self, reply: Reply, model: str, number: int, usage: dict[str, int] | None) -> None:
        """Server-sent events the way OpenAI sends them; the connection closes after ``[DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        base = {"id": f"chatcmpl-fake{number}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "system_fingerprint": "fp_fake"}

        def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            self.wfile.write(f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode())
            self.wfile.flush()

        def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]

        send(delta({"role": "assistant", "content": "" if reply.content is not None else None}))
        for piece in _pieces(reply.content or ""):
            send(delta({"content": piece}))
        for index, call in enumerate(reply.tool_calls):
            head = {"index": index, "id": call["id"], "type": "function",
                    "function": {"name": call["name"], "arguments": ""}}
            send(delta({"tool_calls": [head]}))
            for piece in _pieces(call["arguments"]):
                send(delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        send(delta({}, "tool_calls" if reply.tool_calls else "stop"))
        if usage is not None:
            send([], usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _pieces(text: str, size: int = 5) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start:start + size]


@contextmanager
def fake_openai_server(**kw: Any) -> Iterator[FakeOpenAIServer]:
    """Context-manager form for code that is not a pytest test."""
    server = FakeOpenAIServer(**kw).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """Pytest fixture: import it into a test module (``from tests.fakes.openai_server import openai_server``)."""
    with fake_openai_server() as server:
        yield server
