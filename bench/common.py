"""Shared plumbing of the benchmark parts: the sealed CLI environment, the machine description and
the result shapes (a part returns a :class:`Section`; ``bench/run.py`` turns sections into markdown).

Why a sealed environment: every figure must come from the same offline, LLM-free setup a user gets
on a fresh machine — no cached jobs in ``~/.mltrainer``, no Hub or telemetry calls, no price-map fetch.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_OFFLINE": "1"}


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `mltrainer` child: its own MLTRAINER_HOME and HOME, offline, no crash hooks."""
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env["MLTRAINER_HOME"] = str(home)
    env["HOME"] = str(home / "user-home")
    (home / "user-home").mkdir(parents=True, exist_ok=True)
    env["PYTHONPATH"] = str(REPO)
    env.pop("MLTRAINER_CRASH_AT", None)
    env.update(extra)
    return env


@dataclass
class Ran:
    """One finished child process: its output, exit status and wall time; with ``measured_cli`` also the
    peak resident memory of the CLI process itself and of the largest process it started."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    self_peak_bytes: int = 0
    children_peak_bytes: int = 0


def mltrainer(args: list[str], home: Path, *, timeout: float = 1800, cwd: Path | None = None,
              check: bool = True, **extra_env: str) -> Ran:
    """Run the CLI (``python -m mltrainer ARGS``) sealed in ``home``; raises with its last lines on failure."""
    return run_child([sys.executable, "-m", "mltrainer", *args], cli_env(home, **extra_env), timeout=timeout,
                     cwd=cwd or REPO, check=check)


def run_child(command: list[str], env: dict[str, str] | None = None, *, timeout: float = 1800,
              cwd: Path | None = None, check: bool = True) -> Ran:
    """A child process, timed."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"{' '.join(command[:4])} ran past {timeout:.0f}s") from None
    ran = Ran(proc.returncode, out, err, time.perf_counter() - started)
    if check and proc.returncode != 0:
        tail = "\n".join((out + "\n" + err).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(str(c) for c in command[:5])} failed ({proc.returncode}):\n{tail}")
    return ran


#: Peak resident memory of one process: VmHWM, the high-water mark of its own address space. Not ru_maxrss,
#: which Linux carries over exec from the process it was forked from (here: the large bench process).
HWM = r"""
def hwm(pid="self"):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
"""

#: Runs the CLI in this very process, with a thread sampling its children's high-water marks every 50 ms,
#: then writes its own peak and the largest child's to a file.
_MEASURED = HWM + r"""
import json, os, sys, threading, time
import psutil
sys.argv = ["mltrainer", *sys.argv[2:]]
out = os.environ["BENCH_RUSAGE_FILE"]
kids, done = {}, threading.Event()
def watch():
    me = psutil.Process()
    while not done.is_set():
        for child in me.children(recursive=True):
            kids[child.pid] = max(kids.get(child.pid, 0), hwm(child.pid))
        time.sleep(0.05)
threading.Thread(target=watch, daemon=True).start()
code = 0
try:
    from mltrainer.app import main
    main()
except SystemExit as exit:
    code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
finally:
    done.set()
    open(out, "w").write(json.dumps({"self": hwm(), "children": max(kids.values(), default=0)}))
sys.exit(code)
"""


def measured_cli(args: list[str], home: Path, *, timeout: float = 1800, check: bool = True, **extra_env: str) -> Ran:
    """Like :func:`mltrainer`, with the peak memory (VmHWM) of the orchestrator process itself and of the
    largest process it started (the training script; sampled every 50 ms, so a peak in its last moments
    can be missed)."""
    rusage = home / f"rusage-{time.monotonic_ns()}.json"
    env = cli_env(home, BENCH_RUSAGE_FILE=str(rusage), **extra_env)
    ran = run_child([sys.executable, "-c", _MEASURED, "--", *args], env, timeout=timeout, cwd=REPO, check=check)
    if rusage.exists():
        figures = json.loads(rusage.read_text())
        ran.self_peak_bytes, ran.children_peak_bytes = int(figures["self"]), int(figures["children"])
    return ran


def events(stdout: str) -> list[dict[str, Any]]:
    """The JSON event lines of a ``--json`` run (other lines skipped)."""
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def show(job_id: str, home: Path) -> dict[str, Any]:
    """``mltrainer show JOB --json``: stages with durations, metrics, LLM usage."""
    return json.loads(mltrainer(["show", job_id, "--json"], home).stdout)


# ---------------------------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the numbers were measured on: CPU, memory, OS and the versions that matter."""
    cpus = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "cpu": f"{_cpu_model()}, {cpus} logical CPUs ({usable} usable)",
        "ram": f"{_ram_bytes() / 2**30:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "scikit-learn": _version("scikit-learn"),
        "flaml": _version("flaml"),
        "lightgbm": _version("lightgbm"),
        "statsmodels": _version("statsmodels"),
        "load average at start": f"{load:.2f}",
    }


# ---------------------------------------------------------------------------------------------- results
@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass
class Goal:
    """One goal of the issue, judged on this run: ``met`` is None when it could not be measured."""

    goal: str
    measured: str
    met: bool | None
    cause: str = ""  # why it was missed, in one or two sentences


@dataclass
class Section:
    part: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # raw figures, kept in the results JSON only
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        tables = [Table(**t) for t in data.get("tables", [])]
        goals = [Goal(**g) for g in data.get("goals", [])]
        rest = {k: v for k, v in data.items() if k not in ("tables", "goals")}
        return cls(**rest, tables=tables, goals=goals)


def fmt(value: Any, digits: int = 4) -> str:
    """A cell: floats to ``digits`` decimals, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def log(message: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
