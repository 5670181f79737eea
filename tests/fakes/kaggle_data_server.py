"""A loopback fake of Kaggle's download calls, as kagglesdk (and the ``kaggle`` CLI) make them.

- ``POST /v1/datasets.DatasetApiService/DownloadDataset`` ``{"ownerSlug", "datasetSlug", "fileName"?}``
- ``POST /v1/competitions.CompetitionApiService/DownloadDataFiles`` ``{"competitionName"}``
- ``POST /v1/competitions.CompetitionApiService/DownloadDataFile`` ``{"competitionName", "fileName"}``

Like Kaggle, a successful call answers 302 to a signed storage URL (here ``/blobs/…`` on ``localhost``
rather than ``127.0.0.1``, so the client treats it as another host and drops the Authorization
header); errors are JSON ``{"code": N, "message": …}`` with that status. Auth is the validator fake's
(:class:`tests.fakes.kaggle_server.FakeKaggle`): Bearer access tokens or Basic ``username:key``.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.kaggle_server import FakeKaggle
from tests.fakes.loopback import QuietJSONHandler, loopback

DATASET_DOWNLOAD = "/v1/datasets.DatasetApiService/DownloadDataset"
COMPETITION_FILES = "/v1/competitions.CompetitionApiService/DownloadDataFiles"
COMPETITION_FILE = "/v1/competitions.CompetitionApiService/DownloadDataFile"
RULES_MESSAGE = "You must accept this competition's rules before you'll be able to download files."


def zip_of(files: dict[str, bytes]) -> bytes:
    """A deterministic zip (fixed timestamps), as Kaggle bundles a dataset's files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


@dataclass
class Bundle:
    """A dataset or a competition: its files, or a prebuilt ``archive`` served instead of zipping them."""

    files: dict[str, bytes]
    archive: bytes | None = None
    readers: set[str] | None = None  # users allowed (a private dataset); None: everyone
    accepted: set[str] = field(default_factory=set)  # competitions: users who accepted the rules


class FakeKaggleData(FakeKaggle):
    """Datasets by (owner, slug) and competitions by name; ``blobs`` are the signed URLs handed out."""

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[tuple[str, str], Bundle] = {}
        self.competitions: dict[str, Bundle] = {}
        self.blobs: dict[str, tuple[bytes, str]] = {}

    def add_dataset(self, owner: str, slug: str, files: dict[str, bytes], **kwargs: Any) -> Bundle:
        self.datasets[(owner, slug)] = Bundle(files, **kwargs)
        return self.datasets[(owner, slug)]

    def add_competition(self, name: str, files: dict[str, bytes], **kwargs: Any) -> Bundle:
        self.competitions[name] = Bundle(files, **kwargs)
        return self.competitions[name]

    def downloads(self) -> list[dict[str, Any]]:
        """Download calls and blob fetches: every request but the validator's list call."""
        return [r for r in self.requests if r["path"] != "/v1/datasets.DatasetApiService/ListDatasets"]


def _handler(fake: FakeKaggleData) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietJSONHandler):
        def _error(self, status: int, message: str) -> None:
            self.send_json(status, {"code": status, "message": message}, content_type="application/json; charset=utf-8")

        def _record(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            entry = {"method": self.command, "path": urllib.parse.urlsplit(self.path).path,
                     "authorization": self.headers.get("Authorization", ""), "body": body}
            fake.requests.append(entry)
            return entry

        def _redirect(self, name: str, data: bytes, content_type: str) -> None:
            blob = f"{len(fake.blobs)}/{name}"
            fake.blobs[blob] = (data, content_type)
            self.send_response(302)
            host = fake.url.replace("127.0.0.1", "localhost")
            self.send_header("Location", f"{host}/blobs/{blob}?X-Goog-Signature=fake&X-Goog-Expires=30")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            entry = self._record()
            blob = entry["path"].removeprefix("/blobs/")
            if not entry["path"].startswith("/blobs/") or blob not in fake.blobs:
                return self._error(404, "Not found")
            data, content_type = fake.blobs[blob]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Disposition", f'attachment; filename="{blob.rsplit("/", 1)[-1]}"')
            self.end_headers()
            self.wfile.write(data)
            return None

        def do_POST(self) -> None:  # noqa: N802
            entry = self._record()
            body = entry["body"] if isinstance(entry["body"], dict) else {}
            if entry["path"] not in (DATASET_DOWNLOAD, COMPETITION_FILES, COMPETITION_FILE):
                return self._error(404, "Not found")
            if fake.status_override:
                return self._error(fake.status_override, "Forced")
            user = fake.user_for(entry["authorization"])
            if user is None:
                return self._error(401, "Unauthenticated")
            if entry["path"] == DATASET_DOWNLOAD:
                slug = str(body.get("datasetSlug", ""))
                bundle = fake.datasets.get((str(body.get("ownerSlug", "")), slug))
                if bundle is None or (bundle.readers is not None and user not in bundle.readers):
                    return self._error(404, "Dataset not found")  # Kaggle hides private datasets
            else:
                slug = str(body.get("competitionName", ""))
                bundle = fake.competitions.get(slug)
                if bundle is None:
                    return self._error(404, "Competition not found")
                if user not in bundle.accepted:
                    return self._error(403, RULES_MESSAGE)
            wanted = body.get("fileName")
            if wanted:
                if wanted not in bundle.files:
                    return self._error(404, f"File {wanted} not found")
                name = str(wanted).rsplit("/", 1)[-1]
                return self._redirect(name, bundle.files[wanted], "text/csv" if name.endswith(".csv") else
                                      "application/octet-stream")
            return self._redirect(f"{slug}.zip", bundle.archive or zip_of(bundle.files), "application/zip")

    return Handler


@contextmanager
def fake_kaggle_data() -> Iterator[FakeKaggleData]:
    fake = FakeKaggleData()
    with loopback(_handler(fake), poll_interval=0.05) as url:
        fake.url = url
        yield fake
