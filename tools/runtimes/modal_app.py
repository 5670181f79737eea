"""The Modal app a training script runs in, defined in code (``modal`` is imported only in :func:`build_app`).

One function, ``train``: its image holds the script's own requirements (pinned to the versions the
script was checked with here), its GPU comes from ``runtime_options`` (``T4`` … ``H100``, ``H100:2``
for several), its timeout from the run's limit, and a Volume mounted at ``/vol`` carries the data
in and the outputs and logs back. The function is built inside :func:`make_train_function`, so Modal
pickles it by value (``serialized=True``) and the container needs nothing of mltrainer installed;
the same function runs here through ``.local()`` in the tests, with a folder standing in for the Volume.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

VOLUME_ROOT = "/vol"
FUNCTION_NAME = "train"
MAX_TIMEOUT = 24 * 3600  # Modal's longest function timeout
#: import name → pip distribution, where they differ.
PIP_NAMES = {"PIL": "pillow", "sklearn": "scikit-learn", "yaml": "pyyaml", "cv2": "opencv-python-headless",
             "skimage": "scikit-image"}


@dataclass(frozen=True)
class AppSpec:
    """Everything the Modal app is built from; equal specs build the same app."""

    app_name: str
    volume_name: str
    gpu: str | None
    gpu_count: int
    timeout: int
    requirements: tuple[str, ...]
    python_version: str = f"{sys.version_info.major}.{sys.version_info.minor}"

    @property
    def gpu_argument(self) -> str | None:
        """Modal's ``gpu=``: None for CPU, ``"T4"``, or ``"H100:2"`` for several."""
        if self.gpu in (None, "none"):
            return None
        return self.gpu if self.gpu_count <= 1 else f"{self.gpu}:{self.gpu_count}"


def script_requirements(script_text: str) -> tuple[str, ...]:
    """The pip requirements of a script's imports, pinned to the versions installed here.

    torch's local build tag (``+cpu``) is dropped, so the image gets PyPI's CUDA build of the same version.
    """
    from importlib import metadata

    names: set[str] = set()
    for node in ast.walk(ast.parse(script_text)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    pinned = []
    for name in sorted(names - set(sys.stdlib_module_names) - {"__future__"}):
        dist = PIP_NAMES.get(name, name)
        try:
            version = metadata.version(dist).split("+", 1)[0]
        except metadata.PackageNotFoundError:
            pinned.append(dist)
            continue
        pinned.append(f"{dist}=={version}")
    return tuple(pinned)


def make_train_function(volume_name: str) -> Callable[..., dict[str, Any]]:
    """The function Modal runs; every import is inside it, so it travels pickled by value."""

    def train(run_dir: str, args: list[str], gpu_count: int = 1, root: str = VOLUME_ROOT) -> dict[str, Any]:
        """Run ``<root>/<run_dir>/train.py`` on ``data/`` into ``out/``; stdout and stderr go to files
        in the same folder (committed to the Volume as they grow, so the caller can stream them)."""
        import os
        import subprocess
        import sys
        import threading
        import time
        from pathlib import Path

        import modal

        base = Path(root) / run_dir
        (base / "out").mkdir(parents=True, exist_ok=True)
        script = (base / "train.py").read_text()
        launcher = [sys.executable, "-u"]
        if gpu_count > 1 and "LOCAL_RANK" in script:  # the script can spread over several GPUs
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpu_count}"]
        cmd = [*launcher, str(base / "train.py"), "--data-dir", str(base / "data"), "--out-dir", str(base / "out"),
               *args]
        volume = None if modal.is_local() else modal.Volume.from_name(volume_name)
        stop = threading.Event()

        def commit_now_and_then() -> None:
            while volume is not None and not stop.wait(15.0):
                try:
                    volume.commit()
                except Exception:  # noqa: BLE001 - a failed interim commit only delays the logs
                    pass

        committer = threading.Thread(target=commit_now_and_then, daemon=True)
        committer.start()
        started = time.time()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(base / "stdout.txt", "w") as out, open(base / "stderr.txt", "w") as err:
            code = subprocess.call(cmd, cwd=str(base), stdout=out, stderr=err, env=env)
        stop.set()
        if volume is not None:
            volume.commit()
        return {"returncode": code, "seconds": time.time() - started}

    train.__name__ = train.__qualname__ = FUNCTION_NAME
    return train


@dataclass
class BuiltApp:
    app: Any
    function: Any
    spec: AppSpec


def build_app(spec: AppSpec) -> BuiltApp:
    """Define the app (image, GPU, Volume, timeout) — offline: nothing is sent until it runs."""
    import modal

    image = modal.Image.debian_slim(python_version=spec.python_version)
    if spec.requirements:
        image = image.pip_install(*spec.requirements)
    volume = modal.Volume.from_name(spec.volume_name, create_if_missing=True)
    app = modal.App(spec.app_name)
    function = app.function(image=image, gpu=spec.gpu_argument, timeout=max(60, min(MAX_TIMEOUT, int(spec.timeout))),
                            volumes={VOLUME_ROOT: volume}, serialized=True, include_source=False,
                            name=FUNCTION_NAME)(make_train_function(spec.volume_name))
    return BuiltApp(app, function, spec)
