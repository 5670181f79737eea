"""The default runtime: this machine, through :func:`tools.process.run_streaming`.

A local child dies with mltrainer (PDEATHSIG) and resumes from its own checkpoint, so there is no
submission to record or reattach to: :meth:`LocalRuntime.launch` is the child process itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tools.runtimes.base import Runtime


class LocalRuntime(Runtime):
    name = "local"

    def run(self, cmd: Sequence[str], *, cwd: Path, timeout: float, on_line: Callable[[str], None]) -> Any:
        from tools.process import run_streaming

        return run_streaming(cmd, cwd=cwd, timeout=timeout, on_line=on_line)
