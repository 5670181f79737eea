"""A loopback fake of the Kaggle public API call the validator makes, as kagglesdk speaks it.

kagglesdk calls every RPC as ``POST {base}/v1/{service}/{method}`` with a JSON body (camelCase
fields); on production ``base`` is ``https://api.kaggle.com``. A legacy key goes as HTTP Basic
``username:key``, a ``KGAT_…`` access token as ``Bearer``. Errors come back as JSON
``{"code": N, "message": …}`` with that HTTP status, which the SDK turns into ``HTTPError``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import QuietJSONHandler, loopback

LIST_DATASETS_PATH = "/v1/datasets.DatasetApiService/ListDatasets"


def dataset_entry(owner: str) -> dict[str, Any]:
    """One ApiDataset as the list call returns it (a subset of the real fields, same names)."""
    return {
        "id": 3405, "ref": f"{owner}/customer-churn", "title": "Customer Churn", "subtitle": "Telco churn table",
        "creatorName": owner.title(), "creatorUrl": owner, "ownerName": owner.title(), "ownerRef": owner,
        "totalBytes": 977501, "url": f"https://www.kaggle.com/datasets/{owner}/customer-churn",
        "lastUpdated": "2024-05-01T12:30:00.000Z", "downloadCount": 1520, "isPrivate": False,
        "isFeatured": False, "licenseName": "CC0: Public Domain", "kernelCount": 12, "topicCount": 0,
        "viewCount": 9001, "voteCount": 42, "currentVersionNumber": 2, "usabilityRating": 0.88,
        "tags": [{"ref": "business", "name": "business", "fullPath": "subject > people and society > business"}],
        "files": [], "versions": [],
    }


class FakeKaggle:
    """Legacy keys and access tokens map to user names; ``status_override`` forces a status (401, 429…)."""

    def __init__(self) -> None:
        self.legacy: dict[tuple[str, str], str] = {}
        self.tokens: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.status_override: int | None = None
        self.url = ""

    def add_legacy_key(self, username: str, key: str) -> None:
        self.legacy[(username, key)] = username

    def add_token(self, token: str, username: str) -> None:
        self.tokens[token] = username

    def user_for(self, authorization: str) -> str | None:
        scheme, _, value = authorization.partition(" ")
        if scheme == "Bearer":
            return self.tokens.get(value)
        if scheme == "Basic":
            try:
                username, _, key = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return self.legacy.get((username, key))
        return None


def _handler(fake: FakeKaggle) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietJSONHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            self.send_json(status, body, content_type="application/json; charset=utf-8",
                           headers={"Retry-After": "30"} if status == 429 else None)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"code": status, "message": message})

        def _record(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode("utf-8", "replace")
            entry = {"method": self.command, "path": self.path, "authorization": self.headers.get("Authorization", ""),
                     "content_type": self.headers.get("Content-Type", ""), "body": body}
            fake.requests.append(entry)
            return entry

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._record()
            self._error(404 if self.path != LIST_DATASETS_PATH else 405, "Not found")

        def do_POST(self) -> None:  # noqa: N802
            entry = self._record()
            if self.path != LIST_DATASETS_PATH:
                return self._error(404, "Not found")
            if fake.status_override:
                return self._error(fake.status_override, "Too many requests" if fake.status_override == 429 else "Forced")
            user = fake.user_for(entry["authorization"])
            if user is None:
                return self._error(401, "Unauthenticated")
            body = entry["body"] if isinstance(entry["body"], dict) else {}
            page_size = int(body.get("pageSize") or 20)
            return self._send(200, {"datasets": [dataset_entry(user)][:page_size], "nextPageToken": "CAE"})

    return Handler


@contextmanager
def fake_kaggle() -> Iterator[FakeKaggle]:
    fake = FakeKaggle()
    with loopback(_handler(fake), poll_interval=0.05) as url:
        fake.url = url
        yield fake
