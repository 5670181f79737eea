"""Run generated code in a child process: own process group, scrubbed env, timeout, no orphans."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import StageTimeout

#: Only these variables reach generated code; tokens and keys never do.
ENV_ALLOW = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "PYTHONPATH", "VIRTUAL_ENV",
             "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SYSTEMROOT")
PR_SET_PDEATHSIG = 1


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOW}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


#: Share of physical memory a child's data segment may use; the machine (and the orchestrator that
#: records the failure) stays responsive when generated code runs away with memory.
MEMORY_SHARE = 0.85


def memory_limit() -> int | None:
    """Bytes of heap a child may allocate (RLIMIT_DATA), or None where the size is unknown."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * MEMORY_SHARE)
    except (ValueError, OSError, AttributeError):
        return None


def _child_setup() -> None:  # pragma: no cover - runs in the child
    os.setsid()
    limit = memory_limit()
    if limit is not None:
        try:  # private writable memory only: CUDA's address-space reservations are not counted
            import resource

            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass
    try:  # die with the parent (Linux): a SIGKILLed orchestrator leaves no trainer behind
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@dataclass
class ProcessResult:
    returncode: int
    stdout_tail: list[str]
    stderr_tail: list[str]
    duration: float


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_streaming(
    cmd: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    on_line: Callable[[str], None],
    env: dict[str, str] | None = None,
    tail: int = 200,
) -> ProcessResult:
    """Run ``cmd``, calling ``on_line`` for each stdout line as it arrives.

    A timeout or a KeyboardInterrupt kills the whole process group before returning/raising; so
    does any exception ``on_line`` raises (the training observer stops a diverging run that way).
    An ``on_line`` with an ``attach`` method gets the child (a Popen) once it runs, e.g. to
    measure its process group's memory.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env if env is not None else scrubbed_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, bufsize=1, preexec_fn=_child_setup,
    )
    stdout_tail: deque[str] = deque(maxlen=tail)
    stderr_tail: deque[str] = deque(maxlen=tail)
    attach = getattr(on_line, "attach", None)

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_tail.append(line.rstrip("\n"))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    timer = threading.Timer(timeout, lambda: _kill_group(proc))
    timer.daemon = True
    timer.start()
    try:
        if callable(attach):
            attach(proc)
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            stdout_tail.append(line)
            on_line(line)
        proc.wait()
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        timer.cancel()
        reader.join(timeout=5)
    duration = time.monotonic() - started
    if proc.returncode < 0 and duration >= timeout:
        raise StageTimeout(f"The training script ran past its {timeout:.0f}s limit and was stopped; raise budget.time or lower epochs.")
    return ProcessResult(proc.returncode, list(stdout_tail), list(stderr_tail), duration)
