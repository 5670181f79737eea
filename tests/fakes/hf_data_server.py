"""A loopback fake of the HuggingFace Hub's dataset endpoints, as huggingface_hub speaks them.

Routes (the real paths, selected with ``HF_ENDPOINT``):

- ``GET /api/datasets/{repo}`` (and ``/revision/{rev}``): the repo's info (sha, siblings with sizes,
  cardData, private, gated), what ``HfApi.dataset_info`` reads;
- ``GET /api/datasets/{repo}/refs``: branches and the ``refs/convert/parquet`` convert ref;
- ``GET /api/datasets/{repo}/tree/{rev}[/{path}]``: the file listing of a revision;
- ``HEAD|GET /datasets/{repo}/resolve/{rev}/{path}``: a file. Like the Hub, LFS files (parquet here)
  answer 302 to a CDN URL (on ``localhost`` rather than ``127.0.0.1``, so the client sees another
  host) with ``X-Linked-Etag``/``X-Linked-Size``; small files answer 200 with ``X-Repo-Commit`` and
  ``ETag``. Every request is logged in ``requests``; :meth:`FakeHfData.data_requests` picks downloads.

Errors look like the Hub's: ``X-Error-Code`` (``RepoNotFound``, ``GatedRepo``, ``RevisionNotFound``,
``EntryNotFound``) plus a JSON ``{"error": …}`` body. An anonymous request for a missing or private
repo gets 401 (the Hub does not tell them apart), an authenticated one 404.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import QuietJSONHandler, loopback

CONVERT_REF = "refs/convert/parquet"


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class FakeDatasetRepo:
    """One dataset repo: files on main, optional parquet conversion, access rules."""

    repo_id: str
    files: dict[str, bytes]
    card: dict[str, Any] | None = None
    private: bool = False
    gated: str | bool = False
    converted: dict[str, bytes] | None = None  # files on refs/convert/parquet
    sha: str = ""
    convert_sha: str = ""

    def __post_init__(self) -> None:
        self.sha = self.sha or _sha(self.repo_id + "main" + str(sorted(self.files)))
        self.convert_sha = self.convert_sha or _sha(self.repo_id + CONVERT_REF)

    def files_at(self, revision: str) -> dict[str, bytes] | None:
        if revision in ("main", self.sha):
            return {".gitattributes": b"*.parquet filter=lfs\n", "README.md": b"---\n---\n", **self.files}
        if self.converted is not None and revision in (CONVERT_REF, self.convert_sha):
            return self.converted
        return None

    def commit_for(self, revision: str) -> str:
        return self.sha if revision in ("main", self.sha) else self.convert_sha


@dataclass
class FakeHfData:
    """Repos by id; tokens → the private/gated repos they may read (``None``: all)."""

    repos: dict[str, FakeDatasetRepo] = field(default_factory=dict)
    tokens: dict[str, set[str] | None] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    status_override: int | None = None
    url: str = ""

    def add_repo(self, repo_id: str, files: dict[str, bytes], **kwargs: Any) -> FakeDatasetRepo:
        self.repos[repo_id] = FakeDatasetRepo(repo_id, files, **kwargs)
        return self.repos[repo_id]

    def add_token(self, token: str, repos: set[str] | None = None) -> None:
        self.tokens[token] = repos

    def data_requests(self) -> list[dict[str, Any]]:
        """File downloads (resolve and CDN), as opposed to metadata calls."""
        return [r for r in self.requests if "/resolve/" in r["path"] or r["path"].startswith("/cdn/")]


def _lfs(path: str) -> bool:
    return path.endswith(".parquet")


def _entry(path: str, data: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": path}
    if _lfs(path):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


def _handler(hub: FakeHfData) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietJSONHandler):
        def _error(self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None) -> None:
            headers = {"X-Error-Message": message, **(extra or {})}
            if code:
                headers["X-Error-Code"] = code
            self.send_json(status, {"error": message}, headers=headers)

        def _token(self) -> tuple[str | None, bool]:
            """(token, valid): no header → (None, True)."""
            value = self.headers.get("Authorization", "")
            if not value.startswith("Bearer "):
                return None, True
            token = value.removeprefix("Bearer ")
            return token, token in hub.tokens

        def _may_read(self, repo: FakeDatasetRepo, token: str | None) -> bool:
            allowed = hub.tokens.get(token or "", set())
            return token is not None and (allowed is None or repo.repo_id in allowed)

        def _route(self, head: bool) -> None:
            parts = urllib.parse.urlsplit(self.path)
            hub.requests.append({"method": self.command, "path": parts.path, "query": parts.query,
                                 "authorization": self.headers.get("Authorization", "")})
            if hub.status_override:
                return self._error(hub.status_override, None, "forced")
            segments = [urllib.parse.unquote(s) for s in parts.path.strip("/").split("/")]
            if segments[0] == "cdn" and len(segments) == 2:
                return self._cdn(segments[1], head)
            token, valid = self._token()
            if not valid:
                return self._error(401, None, "Invalid credentials in Authorization header")
            api = segments[:2] == ["api", "datasets"]
            if not api and segments[0] != "datasets":
                return self._error(404, None, "Sorry, we can't find the page you are looking for.")
            rest = segments[2:] if api else segments[1:]
            repo = hub.repos.get("/".join(rest[:2]))
            if repo is None or (repo.private and not self._may_read(repo, token)):
                return self._error(401 if token is None else 404, "RepoNotFound", "Repository not found")
            tail = rest[2:]
            if not api:
                if len(tail) < 3 or tail[0] != "resolve":
                    return self._error(404, None, "Not found")
                return self._resolve(repo, token, tail[1], "/".join(tail[2:]), head)
            if not tail:
                return self._info(repo, "main")
            if tail[0] == "revision" and len(tail) >= 2:
                return self._info(repo, "/".join(tail[1:]))
            if tail == ["refs"]:
                converts = [{"name": "parquet", "ref": CONVERT_REF, "targetCommit": repo.convert_sha}] \
                    if repo.converted is not None else []
                return self.send_json(200, {"branches": [{"name": "main", "ref": "refs/heads/main",
                                                          "targetCommit": repo.sha}],
                                            "converts": converts, "tags": []})
            if tail[0] == "tree" and len(tail) >= 2:
                return self._tree(repo, tail[1], "/".join(tail[2:]), "recursive=True" in parts.query
                                  or "recursive=true" in parts.query)
            return self._error(404, None, "Not found")

        def _info(self, repo: FakeDatasetRepo, revision: str) -> None:
            files = repo.files_at(revision)
            if files is None:
                return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
            siblings = []
            for path, data in files.items():
                sibling: dict[str, Any] = {"rfilename": path, "size": len(data),
                                           "blobId": hashlib.sha1(data).hexdigest()}
                if _lfs(path):
                    sibling["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
                siblings.append(sibling)
            owner = repo.repo_id.split("/")[0]
            self.send_json(200, {
                "_id": repo.sha[:24], "id": repo.repo_id, "author": owner, "sha": repo.commit_for(revision),
                "lastModified": "2024-05-01T12:00:00.000Z", "createdAt": "2024-01-01T00:00:00.000Z",
                "private": repo.private, "gated": repo.gated, "disabled": False, "downloads": 7, "likes": 1,
                "tags": ["format:parquet"], "cardData": repo.card, "siblings": siblings,
                "usedStorage": sum(len(d) for d in files.values()),
            })

        def _tree(self, repo: FakeDatasetRepo, revision: str, path: str, recursive: bool) -> None:
            files = repo.files_at(revision)
            if files is None:
                return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
            prefix = path.strip("/") + "/" if path.strip("/") else ""
            entries: list[dict[str, Any]] = []
            folders: set[str] = set()
            for name, data in sorted(files.items()):
                if not name.startswith(prefix):
                    continue
                inner = name[len(prefix):].split("/")
                for depth in range(1, len(inner)):
                    folders.add(prefix + "/".join(inner[:depth]))
                if recursive or len(inner) == 1:
                    entries.append(_entry(name, data))
            for folder in sorted(folders):
                if recursive or "/" not in folder[len(prefix):]:
                    entries.append({"type": "directory", "oid": _sha(folder), "size": 0, "path": folder})
            if prefix and not entries:
                return self._error(404, "EntryNotFound", f"{path} does not exist on {revision}")
            self.send_json(200, entries)

        def _resolve(self, repo: FakeDatasetRepo, token: str | None, revision: str, path: str, head: bool) -> None:
            files = repo.files_at(revision)
            if files is None:
                return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
            commit = {"X-Repo-Commit": repo.commit_for(revision)}
            if repo.gated and not self._may_read(repo, token):
                return self._error(401 if token is None else 403, "GatedRepo",
                                   "Access to this dataset is restricted.", commit)
            if path not in files:
                return self._error(404, "EntryNotFound", "Entry not found", commit)
            data = files[path]
            if _lfs(path):
                digest = hashlib.sha256(data).hexdigest()
                self.send_response(302)
                # another host name for the same server, as the Hub's CDN is another host than the Hub
                cdn = hub.url.replace("127.0.0.1", "localhost")
                self.send_header("Location", f"{cdn}/cdn/{digest}?X-Amz-Signature=fake")
                self.send_header("X-Repo-Commit", commit["X-Repo-Commit"])
                self.send_header("X-Linked-Etag", f'"{digest}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            self._body(data, {"X-Repo-Commit": commit["X-Repo-Commit"],
                              "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}, head)
            return None

        def _cdn(self, digest: str, head: bool) -> None:
            for repo in hub.repos.values():
                for files in (repo.files, repo.converted or {}):
                    for data in files.values():
                        if hashlib.sha256(data).hexdigest() == digest:
                            return self._body(data, {"ETag": f'"{digest}"'}, head)
            return self._error(404, None, "NoSuchKey")

        def _body(self, data: bytes, headers: dict[str, str], head: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._route(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._route(head=True)

    return Handler


@contextmanager
def fake_hf_data() -> Iterator[FakeHfData]:
    hub = FakeHfData()
    with loopback(_handler(hub)) as url:
        hub.url = url
        yield hub


def card_configs(configs: dict[str, dict[str, str]], default: str | None = None) -> dict[str, Any]:
    """cardData for ``configs: [{config_name, data_files: [{split, path}]}]`` as the Hub returns it."""
    return {"configs": [{"config_name": name, **({"default": True} if name == default else {}),
                         "data_files": [{"split": split, "path": path} for split, path in splits.items()]}
                        for name, splits in configs.items()]}
