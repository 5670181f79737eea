"""A fake of the small Modal client surface the Modal runtime uses (:class:`tools.runtimes.modal_runtime.ModalClient`).

There is no Modal emulator, so this fake builds the real app definition (offline) and runs its
``train`` function through ``.local()``, with a folder per Volume standing in for Modal's storage.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

from tools.runtimes.modal_app import AppSpec, BuiltApp, build_app


class FakeModalClient:
    def __init__(self, root: Path, running_polls: int = 1) -> None:
        self.root = root
        self.running_polls = running_polls  # polls answered 'running' before the result
        self.spawned: list[dict[str, Any]] = []
        self.uploads: list[tuple[str, dict[str, Path]]] = []
        self.cancelled: list[str] = []
        self.results: dict[str, Any] = {}
        self.polls: dict[str, int] = {}
        self.built: list[BuiltApp] = []

    def volume(self, name: str) -> Path:
        path = self.root / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def upload(self, volume: str, files: dict[str, Path]) -> None:
        self.uploads.append((volume, dict(files)))
        for remote, local in files.items():
            target = self.volume(volume) / remote
            target.parent.mkdir(parents=True, exist_ok=True)
            if local.is_dir():
                shutil.copytree(local, target, dirs_exist_ok=True)
            else:
                shutil.copy2(local, target)

    def spawn(self, spec: AppSpec, run_dir: str, args: list[str], gpu_count: int) -> str:
        built = build_app(spec)  # the same definition Modal would get
        self.built.append(built)
        call_id = f"fc-{len(self.spawned) + 1:04d}"
        self.spawned.append({"spec": spec, "run_dir": run_dir, "args": list(args), "call_id": call_id})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "executing locally without the mounted Volume": the folder is it
            self.results[call_id] = built.function.local(run_dir, list(args), gpu_count,
                                                         root=str(self.volume(spec.volume_name)))
        return call_id

    def poll(self, call_id: str) -> tuple[str, Any]:
        if call_id not in self.results:
            return "failed", f"NotFoundError: no function call {call_id}"
        self.polls[call_id] = self.polls.get(call_id, 0) + 1
        if self.polls[call_id] <= self.running_polls:
            return "running", None
        return "done", self.results[call_id]

    def read(self, volume: str, path: str) -> bytes | None:
        file = self.volume(volume) / path
        return file.read_bytes() if file.is_file() else None

    def download(self, volume: str, remote_dir: str, local_dir: Path) -> list[str]:
        source = self.volume(volume) / remote_dir
        written = []
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = path.relative_to(source)
            (local_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, local_dir / relative)
            written.append(relative.as_posix())
        return written

    def cancel(self, call_id: str) -> None:
        self.cancelled.append(call_id)
