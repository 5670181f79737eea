"""A loopback fake of the HuggingFace Hub endpoints we call, selected with HF_ENDPOINT."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
