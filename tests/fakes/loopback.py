"""What every loopback fake shares: a threaded server on 127.0.0.1 and a quiet JSON handler."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietJSONHandler(BaseHTTPRequestHandler):
    """A handler that keeps test output clean and answers JSON in one call."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_json(self, status: int, body: Any, *, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def loopback(handler: type[BaseHTTPRequestHandler], poll_interval: float = 0.02) -> Iterator[str]:
    """Serve ``handler`` on an ephemeral loopback port; yields the base URL, stops on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
