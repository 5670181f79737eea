"""A loopback fake of the HuggingFace Hub endpoints we call, selected with HF_ENDPOINT (or passed as
``endpoint=``), speaking what huggingface_hub 1.x sends:

- ``GET /api/whoami-v2`` — the token's user, orgs and role;
- ``POST /api/repos/create`` ``{"name", "organization", "visibility", "type", "sdk"}`` → ``{"url"}``, 409
  (with the url, as the Hub does) when it exists;
- ``POST /api/validate-yaml`` — the README front matter must parse, and a model-index must be well formed;
- ``POST /api/{type}s/{repo}/preupload/{rev}`` → every file "regular" (base64 inline in the commit, no LFS),
  with the oid of the file already there so unchanged files are skipped by the client;
- ``POST /api/{type}s/{repo}/commit/{rev}`` NDJSON (header + file/deletedFile lines), applied whole or
  not at all → ``{"commitUrl": "{endpoint}/{repo}/commit/{oid}", "commitOid"}``;
- ``GET /api/{type}s/{repo}[/revision/{rev}]`` — repo info (sha, siblings, private);
- ``HEAD``/``GET /[spaces/]{repo}/resolve/{rev}/{path}`` with X-Repo-Commit, ETag and Content-Length.

Failures answer 4xx (huggingface_hub retries 5xx for about 20 s). ``on_commit`` runs once a commit's
body has arrived, before it is applied; ``drop_commits`` then throws that many away unanswered, as an
upload cut short by a dying client would be.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import QuietJSONHandler, loopback

REPO_PATH = re.compile(r"^/api/(models|spaces|datasets)/([^/]+/[^/]+)(?:/(preupload|commit|revision|tree)/(.+))?$")
RESOLVE_PATH = re.compile(r"^/(?:(spaces|datasets)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    repo_type: str  # model | space | dataset
    private: bool
    sdk: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)  # oldest first: {oid, summary, files}

    @property
    def head(self) -> str:
        return self.commits[-1]["oid"]

    def commit(self, summary: str, files: dict[str, bytes]) -> str:
        oid = hashlib.sha1(json.dumps([self.repo_id, len(self.commits), summary,
                                       sorted((p, git_blob_sha(d)) for p, d in files.items())]).encode()).hexdigest()
        self.files = dict(files)
        self.commits.append({"oid": oid, "summary": summary, "files": dict(files)})
        return oid


class FakeHub:
    """Tokens map to whoami bodies; ``status_override`` forces an HTTP status (e.g. 429)."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.status_override: int | None = None
        self.url = ""
        self.repos: dict[tuple[str, str], Repo] = {}
        self.on_commit: Callable[[], None] | None = None
        self.drop_commits = 0
        self.fail_commits_with: int | None = None  # answer commits with this 4xx status

    def add_token(self, token: str, username: str, role: str = "write", orgs: tuple[str, ...] = ()) -> None:
        self.tokens[token] = {"type": "user", "name": username, "orgs": [{"name": o} for o in orgs],
                              "auth": {"type": "access_token", "accessToken": {"displayName": "t", "role": role}}}

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.repos.get((repo_type, repo_id))


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietJSONHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            self.send_json(status, body)

        def _user(self) -> dict[str, Any] | None:
            return hub.tokens.get(self.headers.get("Authorization", "").removeprefix("Bearer "))

        def _record(self, body: Any = None) -> None:
            hub.requests.append({"method": self.command, "path": self.path,
                                 "authorization": self.headers.get("Authorization", ""), "body": body})

        def _read(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _can_write(self, repo_id: str) -> bool:
            user = self._user()
            if user is None or user["auth"]["accessToken"]["role"] != "write":
                return False
            namespace = repo_id.split("/")[0]
            return namespace == user["name"] or namespace in [o["name"] for o in user["orgs"]]

        def _can_read(self, repo: Repo) -> bool:
            user = self._user()
            return not repo.private or (user is not None and repo.repo_id.split("/")[0] in
                                        [user["name"], *[o["name"] for o in user["orgs"]]])

        # -- GET / HEAD ------------------------------------------------------------------------------
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._record()
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            if hub.status_override:
                return self._send(hub.status_override, {"error": "forced"})
            if path == "/api/whoami-v2":
                user = self._user()
                if user is None:
                    return self._send(401, {"error": "Invalid credentials in Authorization header"})
                return self._send(200, user)
            match = REPO_PATH.match(path)
            if match and match.group(3) in (None, "revision"):
                repo = hub.repo(match.group(2), match.group(1)[:-1])
                if repo is None or not self._can_read(repo):
                    return self._send(404, {"error": "Repository not found"})
                return self._send(200, {"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.head,
                                        "private": repo.private, "siblings": [{"rfilename": p} for p in sorted(repo.files)]})
            return self._resolve(path, body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._record()
            self._resolve(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path), body=False)

        def _resolve(self, path: str, body: bool) -> None:
            match = RESOLVE_PATH.match(path)
            repo = hub.repo(match.group(2), (match.group(1) or "models")[:-1]) if match else None
            if repo is None or not self._can_read(repo):
                return self._send(404, {"error": "Repository not found"})
            revision, name = match.group(3), match.group(4)  # type: ignore[union-attr]
            commit = next((c for c in repo.commits if c["oid"] == revision), None) if revision != "main" else repo.commits[-1]
            if commit is None or name not in commit["files"]:
                return self._send(404, {"error": "Entry not found"})
            data = commit["files"][name]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{git_blob_sha(data)}"')
            self.send_header("X-Repo-Commit", commit["oid"])
            self.end_headers()
            if body:
                self.wfile.write(data)
            return None

        # -- POST ------------------------------------------------------------------------------------
        def do_POST(self) -> None:  # noqa: N802
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            raw = self._read()
            if path.endswith("/commit/main") or "/commit/" in path:
                self._record({"bytes": len(raw)})
            else:
                self._record(json.loads(raw or b"{}"))
            if hub.status_override:
                return self._send(hub.status_override, {"error": "forced"})
            if path == "/api/repos/create":
                return self._create(json.loads(raw or b"{}"))
            if path == "/api/validate-yaml":
                return self._validate(json.loads(raw or b"{}"))
            match = REPO_PATH.match(path)
            if match and match.group(3) in ("preupload", "commit"):
                repo = hub.repo(match.group(2), match.group(1)[:-1])
                if repo is None:
                    return self._send(404, {"error": "Repository not found"})
                if not self._can_write(repo.repo_id):
                    return self._send(403, {"error": "You don't have the rights to write to this repo"})
                if match.group(3) == "preupload":
                    files = json.loads(raw or b"{}").get("files") or []
                    return self._send(200, {"files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                         "oid": git_blob_sha(repo.files[f["path"]]) if f["path"] in repo.files else None}
                        for f in files]})
                return self._commit(repo, raw)
            return self._send(404, {"error": "not found"})

        def _create(self, body: dict[str, Any]) -> None:
            repo_id = f"{body.get('organization') or (self._user() or {}).get('name')}/{body.get('name')}"
            repo_type = str(body.get("type") or "model")
            if not self._can_write(repo_id):
                return self._send(403 if self._user() else 401, {"error": "You don't have the rights to create this repo"})
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            url = f"{hub.url}/{prefix}{repo_id}"
            if (repo_type, repo_id) in hub.repos:
                return self._send(409, {"error": "You already created this repo", "url": url})
            repo = Repo(repo_id, repo_type, private=body.get("visibility", "private") != "public"
                        if "visibility" in body else bool(body.get("private", True)), sdk=body.get("sdk"))
            repo.commit("initial commit", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
            hub.repos[(repo_type, repo_id)] = repo
            return self._send(200, {"url": url, "name": repo_id, "id": repo_id})

        def _validate(self, body: dict[str, Any]) -> None:
            import yaml

            text = str(body.get("content") or "")
            if not text.startswith("---\n") or "\n---\n" not in text[4:]:
                return self._send(200, {"warnings": [{"message": "empty or missing yaml metadata"}]})
            try:
                meta = yaml.safe_load(text[4:text.index("\n---\n", 4)])
            except yaml.YAMLError as err:
                return self._send(400, {"errors": [{"message": f"invalid YAML: {err}"}]})
            problems = []
            for entry in (meta or {}).get("model-index") or []:
                for result in entry.get("results") or []:
                    if not (result.get("task") or {}).get("type"):
                        problems.append("model-index result without task.type")
                    dataset = result.get("dataset") or {}
                    if not dataset.get("name") or not dataset.get("type"):
                        problems.append("model-index result without dataset name and type")
                    if not all("type" in m and "value" in m for m in result.get("metrics") or []):
                        problems.append("model-index metric without type and value")
            if problems:
                return self._send(400, {"errors": [{"message": p} for p in problems]})
            return self._send(200, {"warnings": []})

        def _commit(self, repo: Repo, raw: bytes) -> None:
            if hub.on_commit is not None:
                hub.on_commit()
            if hub.drop_commits:
                hub.drop_commits -= 1
                self.close_connection = True  # the upload was cut: nothing applied, nothing answered
                return None
            if hub.fail_commits_with:
                return self._send(hub.fail_commits_with, {"error": "forced commit failure"})
            files = dict(repo.files)
            summary = ""
            for line in raw.decode("utf-8").splitlines():
                item = json.loads(line)
                value = item.get("value") or {}
                if item.get("key") == "header":
                    summary = str(value.get("summary") or "")
                elif item.get("key") == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif item.get("key") == "deletedFile":
                    files.pop(value["path"], None)
                elif item.get("key") == "lfsFile":
                    return self._send(400, {"error": "this fake takes no LFS files"})
            oid = repo.commit(summary, files)
            prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
            return self._send(200, {"commitUrl": f"{hub.url}/{prefix}{repo.repo_id}/commit/{oid}", "commitOid": oid,
                                    "success": True})

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
