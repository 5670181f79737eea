"""A loopback file server for testing downloads: ranges, validators, dropped connections, forced statuses."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import loopback

CHUNK = 64 * 1024


@dataclass
class Resource:
    """What one path serves.

    ``length`` is how the body's size is announced: ``"exact"`` (Content-Length), ``"omit"`` (no
    length, the connection close ends the body), ``"chunked"`` (chunked encoding) or ``"lie"`` (a
    tiny Content-Length next to a chunked body, which HTTP clients must ignore).
    """

    body: bytes
    content_type: str | None = "application/octet-stream"
    disposition: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    ranges: bool = True
    length: str = "exact"
    drop_after: int | None = None  # close the connection after this many body bytes, once
    status: int | None = None  # force this status instead of serving the body
    dropped: bool = field(default=False, init=False)


class FileServer:
    """Registered resources by path, plus a log of every request (path, headers, status answered)."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._lock = threading.Lock()

    def add(self, path: str, body: bytes, **options: Any) -> str:
        """Serve ``body`` at ``path``; returns the full URL."""
        self.resources[path] = Resource(body, **options)
        return self.url + path

    def log(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path]

    def count(self, path: str) -> int:
        return len(self.log(path))

    def full_downloads(self, path: str) -> int:
        """How many requests for ``path`` were answered with the whole body (200)."""
        return sum(1 for r in self.log(path) if r["status"] == 200)


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _record(self, status: int) -> None:
            with server._lock:
                server.requests.append({"path": self.path, "headers": dict(self.headers.items()), "status": status})

        def _plain(self, status: int, text: str = "") -> None:
            self._record(status)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            res = server.resources.get(self.path)
            if res is None:
                return self._plain(404, "not found")
            if res.status is not None:
                return self._plain(res.status, "forced")
            if (res.etag and self.headers.get("If-None-Match") == res.etag) or (
                res.last_modified and self.headers.get("If-Modified-Since") == res.last_modified
            ):
                return self._plain(304)
            body, status, start = res.body, 200, 0
            wanted = self.headers.get("Range", "")
            if_range = self.headers.get("If-Range")
            if res.ranges and wanted.startswith("bytes=") and if_range in (None, res.etag, res.last_modified):
                start = int(wanted[6:].split("-")[0])
                if start >= len(res.body):
                    self._record(416)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(res.body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, status = res.body[start:], 206
            self._record(status)
            self.send_response(status)
            for name, value in (("Content-Type", res.content_type), ("Content-Disposition", res.disposition),
                                ("ETag", res.etag), ("Last-Modified", res.last_modified)):
                if value:
                    self.send_header(name, value)
            if res.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(res.body) - 1}/{len(res.body)}")
            chunked = res.length in ("chunked", "lie")
            if res.length == "exact":
                self.send_header("Content-Length", str(len(body)))
            elif res.length == "lie":
                self.send_header("Content-Length", "10")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            if res.length != "exact" or res.drop_after is not None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if res.drop_after is not None and not res.dropped:
                res.dropped = True
                body = body[: res.drop_after]
                chunked = False  # a raw cut, as when the peer vanishes mid-body
            for offset in range(0, len(body), CHUNK):
                piece = body[offset: offset + CHUNK]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")

    return Handler


@contextmanager
def file_server() -> Iterator[FileServer]:
    """Start the server on 127.0.0.1 with an ephemeral port; stop it on exit."""
    state = FileServer()
    with loopback(_handler(state)) as url:
        state.url = url
        yield state
