"""A loopback fake of the HuggingFace Hub endpoints we call, selected with HF_ENDPOINT."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import QuietJSONHandler, loopback


class FakeHub:
    """Tokens map to whoami bodies; ``status_override`` forces an HTTP status (e.g. 429)."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.status_override: int | None = None
        self.url = ""

    def add_token(self, token: str, username: str, role: str = "write") -> None:
        self.tokens[token] = {"type": "user", "name": username, "orgs": [],
                              "auth": {"type": "access_token", "accessToken": {"displayName": "t", "role": role}}}


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietJSONHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            self.send_json(status, body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            auth = self.headers.get("Authorization", "")
            hub.requests.append({"path": self.path, "authorization": auth})
            if self.path != "/api/whoami-v2":
                return self._send(404, {"error": "not found"})
            if hub.status_override:
                return self._send(hub.status_override, {"error": "forced"})
            token = auth.removeprefix("Bearer ")
            if token not in hub.tokens:
                return self._send(401, {"error": "Invalid credentials in Authorization header"})
            return self._send(200, hub.tokens[token])

    return Handler


@contextmanager
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    with loopback(_handler(hub)) as url:
        hub.url = url
        yield hub


@contextmanager
def hub_with_token(monkeypatch: Any, token: str, username: str = "alice", role: str = "write") -> Iterator[FakeHub]:
    """A fake hub that knows one token, with HF_ENDPOINT pointed at it for the test's duration."""
    with fake_hub() as hub:
        hub.add_token(token, username, role=role)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub
