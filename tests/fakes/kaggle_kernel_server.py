"""A loopback fake of the Kaggle calls the Kaggle runtime makes, as kagglesdk speaks them, that really
runs the pushed kernel (a local Python child in a scratch ``/kaggle/working``).

- ``POST /v1/security.OAuthService/IntrospectToken`` ``{"token"}`` → ``{"active", "username"}``
- ``POST /v1/datasets.DatasetApiService/GetDatasetStatus`` → ``{"status": "READY"}`` or 404
- ``POST /v1/blobs.BlobApiService/StartBlobUpload`` → ``{"token", "createUrl"}``; ``PUT /upload/<token>`` the bytes
- ``POST /v1/datasets.DatasetApiService/CreateDataset`` ``{"ownerSlug", "slug", "files": [{"token"}]}``
- ``POST /v1/kernels.KernelsApiService/SaveKernel`` → ``{"ref", "url", "versionNumber", "kernelId"}``; the kernel
  runs right away with its attached datasets under ``MLTRAINER_KAGGLE_INPUT``
- ``POST …/GetKernelSessionStatus`` → ``{"status": "QUEUED" | "RUNNING" | "COMPLETE" | "ERROR"}``
  (``status_script`` lists the states answered before the real one, to exercise polling)
- ``POST …/ListKernelSessionOutput`` → ``{"files": [{"fileName", "url"}], "log"}``; ``GET /outputs/…`` a file

Auth is the validator fake's (:class:`tests.fakes.kaggle_server.FakeKaggle`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.fakes.kaggle_server import FakeKaggle
from tests.fakes.loopback import QuietJSONHandler, loopback

RPC = "/v1/"


@dataclass
class Kernel:
    """One pushed kernel version and what its run left behind."""

    owner: str
    slug: str
    request: dict[str, Any]
    returncode: int | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, bytes] = field(default_factory=dict)
    polls: int = 0


class FakeKaggleKernels(FakeKaggle):
    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir
        self.blobs: dict[str, bytes] = {}
        self.blob_names: dict[str, str] = {}
        self.datasets: dict[tuple[str, str], dict[str, Any]] = {}
        self.kernels: dict[tuple[str, str], Kernel] = {}
        self.saves: list[dict[str, Any]] = []  # every SaveKernel body, in order
        self.status_script: list[str] = []  # states answered before the real one, per kernel
        self.dataset_states: list[str] = []  # states GetDatasetStatus answers before READY

    def run_kernel(self, kernel: Kernel) -> None:
        """Run the kernel's source as Kaggle would: cwd /kaggle/working, datasets under /kaggle/input."""
        root = Path(tempfile.mkdtemp(prefix=f"kernel-{kernel.slug}-", dir=self.workdir))
        inputs, working = root / "input", root / "working"
        working.mkdir(parents=True)
        for ref in kernel.request.get("datasetDataSources") or []:
            owner, slug = ref.split("/", 1)
            dataset = self.datasets.get((owner, slug))
            if dataset is None:
                continue
            for name, data in dataset["files"].items():
                (inputs / slug).mkdir(parents=True, exist_ok=True)
                (inputs / slug / name).write_bytes(data)
        (root / "kernel.py").write_text(kernel.request["text"])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "MLTRAINER_CRASH"))}
        env.update(MLTRAINER_KAGGLE_INPUT=str(inputs), PYTHONUNBUFFERED="1")
        done = subprocess.run([sys.executable, str(root / "kernel.py")], cwd=working, env=env, capture_output=True,
                              text=True, timeout=600)
        kernel.returncode = done.returncode
        kernel.log = ([{"stream_name": "stdout", "time": 1.0, "data": line + "\n"} for line in done.stdout.splitlines()]
                      + [{"stream_name": "stderr", "time": 2.0, "data": line + "\n"} for line in done.stderr.splitlines()])
        kernel.outputs = {path.relative_to(working).as_posix(): path.read_bytes()
                          for path in sorted(working.rglob("*")) if path.is_file()}


def _handler(fake: FakeKaggleKernels) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietJSONHandler):
        def _send(self, status: int, body: Any) -> None:
            self.send_json(status, body, content_type="application/json; charset=utf-8")

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"code": status, "message": message})

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
            path = urllib.parse.urlsplit(self.path).path
            token = path.removeprefix("/upload/")
            if not path.startswith("/upload/") or token not in fake.blob_names:
                return self._error(404, "Not found")
            fake.blobs[token] = self._body()
            return self._send(200, {})

        def do_GET(self) -> None:  # noqa: N802
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            fake.requests.append({"method": "GET", "path": path})
            parts = path.removeprefix("/outputs/").split("/", 2)
            kernel = fake.kernels.get((parts[0], parts[1])) if path.startswith("/outputs/") and len(parts) == 3 else None
            if kernel is None or parts[2] not in kernel.outputs:
                return self._error(404, "Not found")
            data = kernel.outputs[parts[2]]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None

        def do_POST(self) -> None:  # noqa: N802
            raw = self._body()
            path = urllib.parse.urlsplit(self.path).path
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            entry = {"method": "POST", "path": path, "authorization": self.headers.get("Authorization", ""),
                     "body": body, "raw": raw.decode("utf-8", "replace")}
            fake.requests.append(entry)
            if not path.startswith(RPC):
                return self._error(404, "Not found")
            if fake.status_override:
                return self._error(fake.status_override, "Forced")
            user = fake.user_for(entry["authorization"])
            if user is None:
                return self._error(401, "Unauthenticated")
            method = path.rsplit("/", 1)[-1]
            handler = getattr(self, f"rpc_{method}", None)
            if handler is None:
                return self._error(404, f"No fake for {method}")
            return handler(user, body)

        # -- RPCs ----------------------------------------------------------------------------------
        def rpc_IntrospectToken(self, user: str, body: dict[str, Any]) -> None:  # noqa: N802
            self._send(200, {"active": True, "username": user})

        def rpc_GetDatasetStatus(self, user: str, body: dict[str, Any]) -> None:  # noqa: N802
            key = (body.get("ownerSlug", ""), body.get("datasetSlug", ""))
            if key not in fake.datasets:
                return self._error(404, "Dataset not found")
            state = fake.dataset_states.pop(0) if fake.dataset_states else "READY"
            return self._send(200, {"status": state})

        def rpc_StartBlobUpload(self, user: str, body: dict[str, Any]) -> None:  # noqa: N802
            token = f"blob-{len(fake.blob_names) + 1}"
            fake.blob_names[token] = str(body.get("name", "file"))
            self._send(200, {"token": token, "createUrl": f"{fake.url}/upload/{token}"})

        def rpc_CreateDataset(self, user: str, body: dict[str, Any]) -> None:  # noqa: N802
            owner, slug = body.get("ownerSlug", ""), body.get("slug", "")
            if owner != user:
                return self._error(403, "Cannot create datasets for another user")
            if (owner, slug) in fake.datasets:
                return self._send(200, {"status": "error", "error": "The requested title is already in use."})
            tokens = [f.get("token") for f in body.get("files") or []]
            if not tokens or any(t not in fake.blobs for t in tokens):
                return self._send(200, {"status": "error", "error": "Blob upload is incomplete."})
            fake.datasets[(owner, slug)] = {"request": body, "files": {fake.blob_names[t]: fake.blobs[t] for t in tokens}}
            return self._send(200, {"ref": f"{owner}/{slug}", "url": f"https://www.kaggle.com/datasets/{owner}/{slug}",
                                    "status": "ok"})

        def rpc_SaveKernel(self, user: str, body: dict[str, Any]) -> None:  # noqa: N802
            owner, _, slug = str(body.get("slug", "")).partition("/")
            if owner != user or not slug:
                return self._error(403, "Cannot push a kernel for another user")
            missing = [d for d in body.get("datasetDataSources") or [] if tuple(d.split("/", 1)) not in fake.datasets]
            fake.saves.append(body)
            kernel = Kernel(owner, slug, body)
            fake.kernels[(owner, slug)] = kernel
            if missing:
                return self._send(200, {"ref": f"/code/{owner}/{slug}", "invalidDatasetSources": missing})
            fake.run_kernel(kernel)
            return self._send(200, {"ref": f"/code/{owner}/{slug}", "url": f"https://www.kaggle.com/code/{owner}/{slug}",
                                    "versionNumber": sum(1 for s in fake.saves if s.get("slug") == body.get("slug")),
                                    "kernelId": 1000 + len(fake.saves)})

        def _kernel(self, body: dict[str, Any]) -> Kernel | None:
            return fake.kernels.get((body.get("userName", ""), body.get("kernelSlug", "")))

        def rpc_GetKernelSessionStatus(self, user: str, body: dict[str, Any]) -> None:  # noqa: N802
            kernel = self._kernel(body)
            if kernel is None:
                return self._error(404, "Kernel not found")
            kernel.polls += 1
            if kernel.polls <= len(fake.status_script):
                return self._send(200, {"status": fake.status_script[kernel.polls - 1]})
            if kernel.returncode == 0:
                return self._send(200, {"status": "COMPLETE"})
            return self._send(200, {"status": "ERROR", "failureMessage": f"Your notebook hit an error (exit {kernel.returncode})."})

        def rpc_ListKernelSessionOutput(self, user: str, body: dict[str, Any]) -> None:  # noqa: N802
            kernel = self._kernel(body)
            if kernel is None:
                return self._error(404, "Kernel not found")
            files = [{"fileName": name, "url": f"{fake.url}/outputs/{kernel.owner}/{kernel.slug}/{urllib.parse.quote(name)}"}
                     for name in kernel.outputs]
            return self._send(200, {"files": files, "log": json.dumps(kernel.log)})

    return Handler


@contextmanager
def fake_kaggle_kernels(workdir: Path) -> Iterator[FakeKaggleKernels]:
    fake = FakeKaggleKernels(workdir)
    with loopback(_handler(fake), poll_interval=0.05) as url:
        fake.url = url
        yield fake
