"""The runtime interface: where the generated train.py runs, and the one loop that drives a remote run.

A remote runtime (Kaggle, Modal) answers five calls — ``submit`` (upload the data and start the
script; returns the runtime's id for it), ``status``, ``logs`` (output lines so far), ``fetch`` (copy
the outputs into the local ``--out-dir``) and ``cancel``. :func:`drive` strings them together the
same way for every runtime: it records the submission in the store the moment the runtime accepts
it and before the first poll, so a job resumed after a crash finds the record and reattaches
instead of submitting (and paying for) the same work again. Sleeping and the clock are injected,
so tests never wait.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from orchestrator.errors import StageTimeout, UsageError

if TYPE_CHECKING:
    from tools.process import ProcessResult
    from tools.runtimes.ledger import RunLedger

#: Same switch as the orchestrator's fault injection: ``MLTRAINER_CRASH_AT=after_submit:training``.
CRASH_ENV = "MLTRAINER_CRASH_AT"
#: States a remote run ends in; anything else is still queued or running.
TERMINAL = ("done", "failed", "cancelled")
#: A remote run may wait this long in the runtime's queue on top of its own time limit.
QUEUE_ALLOWANCE = 3600.0
TAIL = 200


class _ObserverStop(Exception):
    """Carries what ``on_line`` raised (the observer stopping a run) out of the poll loop."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def crash_point(point: str, stage: str) -> None:
    """SIGKILL this process at ``point:stage`` when the crash tests ask for it (as a power cut would)."""
    if os.environ.get(CRASH_ENV) == f"{point}:{stage}":
        os.kill(os.getpid(), signal.SIGKILL)


def submission_name(job_id: str, stage: str, attempt: int, launch: int = 1) -> str:
    """The deterministic name of a submission: the same job, stage, attempt and launch give the same name.

    ``launch`` counts the runs inside one stage attempt (an out-of-memory retry runs again)."""
    return f"mltrainer-{job_id}-{stage}-{attempt}" + (f"-{launch}" if launch > 1 else "")


def slug(name: str, limit: int = 50) -> str:
    """A runtime-safe form of a name (lowercase letters, digits, '-'); long names keep a hash of the rest."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{text[:limit - 9].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class Poll:
    """Backoff between status calls: ``first`` seconds, times ``factor`` after each, at most ``cap``."""

    first: float = 10.0
    factor: float = 1.5
    cap: float = 60.0


@dataclass(frozen=True)
class TrainingRun:
    """One run of the training script, described for a runtime (paths are local)."""

    job_id: str
    stage: str
    attempt: int
    script: Path
    data_dir: Path
    out_dir: Path
    args: tuple[str, ...] = ()  # the script's arguments after --data-dir/--out-dir (--resume, --batch-size…)
    launch: int = 1
    gpu: str | None = None
    gpu_count: int = 1
    internet: bool = False
    timeout: float = 4 * 3600.0
    source: str = ""  # where the data came from (a kaggle:// source is attached to the kernel)

    @property
    def name(self) -> str:
        return submission_name(self.job_id, self.stage, self.attempt, self.launch)


def parse_command(cmd: Sequence[str]) -> tuple[Path, Path, Path, tuple[str, ...]]:
    """``[python, train.py, --data-dir D, --out-dir O, *rest]`` → (script, data dir, out dir, rest)."""
    parts = list(cmd)
    script = next((Path(p) for p in parts[1:] if p.endswith(".py")), None)
    if script is None:
        raise UsageError("The training command names no .py script; a remote runtime needs one.")
    rest: list[str] = []
    dirs: dict[str, Path] = {}
    items = iter(parts[parts.index(str(script)) + 1:])
    for item in items:
        if item in ("--data-dir", "--out-dir"):
            dirs[item] = Path(next(items))
        else:
            rest.append(item)
    if set(dirs) != {"--data-dir", "--out-dir"}:
        raise UsageError("The training command lacks --data-dir or --out-dir; a remote runtime needs both.")
    return script, dirs["--data-dir"], dirs["--out-dir"], tuple(rest)


@dataclass
class RemoteStatus:
    state: str  # queued | running | done | failed | cancelled
    message: str = ""
    returncode: int | None = None
    seconds: float | None = None  # how long the runtime ran it, when it says


class Runtime:
    """Where a training script runs. Remote runtimes implement the five calls; :meth:`launch` drives them."""

    name: ClassVar[str] = ""
    poll: Poll = Poll()

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 poll: Poll | None = None) -> None:
        self.sleep = sleep
        self.clock = clock  # wall-clock seconds: a reattached run's start comes from the store
        if poll is not None:
            self.poll = poll

    # -- the remote protocol ---------------------------------------------------------------------
    def submit(self, run: TrainingRun) -> str:
        """Upload what the run needs and start it; returns the runtime's id for it."""
        raise NotImplementedError

    def status(self, run: TrainingRun, remote_id: str) -> RemoteStatus:
        raise NotImplementedError

    def logs(self, run: TrainingRun, remote_id: str, final: bool) -> list[tuple[str, str]]:
        """Every output line so far as (stream, line), stream 'stdout' or 'stderr'; ``final``: the run ended."""
        raise NotImplementedError

    def fetch(self, run: TrainingRun, remote_id: str) -> list[str]:
        """Copy the run's outputs into ``run.out_dir``; returns the files written (relative names)."""
        raise NotImplementedError

    def cancel(self, run: TrainingRun, remote_id: str) -> str:
        """Stop the run; returns what happened, in words."""
        raise NotImplementedError

    def hourly_rate(self, run: TrainingRun) -> float:
        """US dollars per hour for this run's hardware (an estimate; 0 where the runtime is free)."""
        from tools.runtimes.ledger import hourly_rate

        return hourly_rate(self.name, run.gpu, run.gpu_count)

    def describe(self, run: TrainingRun) -> str:
        """The hardware in words, for logs and the ledger."""
        gpu = run.gpu or "none"
        return f"{self.name} ({'CPU' if gpu == 'none' else f'{run.gpu_count}× {gpu}'})"

    # -- driving a run -----------------------------------------------------------------------------
    def launch(self, run: TrainingRun, on_line: Callable[[str], None], ledger: RunLedger,
               log: Callable[[str], None] = lambda message: None) -> ProcessResult:
        return drive(self, run, on_line, ledger, log)


def drive(runtime: Runtime, run: TrainingRun, on_line: Callable[[str], None], ledger: RunLedger,
          log: Callable[[str], None] = lambda message: None) -> ProcessResult:
    """Submit (or reattach to) ``run``, stream its output to ``on_line``, fetch its outputs.

    The store gets the submission right after ``submit`` returns and before anything else, so a
    crash at any later point leaves a record that the next attempt of the same name reattaches to.
    Returns a ProcessResult like a local child's, so the training agent treats both alike.
    """
    from tools.process import ProcessResult

    existing = ledger.find(run.name)
    if existing is None or not existing.remote_id or existing.status == "cancelled":
        existing = ledger.find_open(run, runtime.name)
    if existing is not None:
        if existing.name != run.name:  # an earlier attempt's run: its name locates its files remotely
            run = replace(run, attempt=existing.attempt)
        remote_id, started = str(existing.remote_id), existing.created_at
        log(f"reattaching to {runtime.name} run {remote_id} (submitted as {run.name}); not submitting again")
    else:
        ledger.check_budget(run, runtime.hourly_rate(run) * run.timeout / 3600.0, runtime.describe(run))
        remote_id = runtime.submit(run)
        ledger.record(run, runtime.name, remote_id)  # before the first poll: a crash from here on reattaches
        crash_point("after_submit", run.stage)
        started = runtime.clock()
        log(f"submitted {run.name} to {runtime.describe(run)} as {remote_id}")
    stdout: deque[str] = deque(maxlen=TAIL)
    stderr: deque[str] = deque(maxlen=TAIL)
    seen = {"stdout": 0, "stderr": 0}  # each stream only grows, so its new lines are those past the count

    def read(final: bool) -> None:
        counts = {"stdout": 0, "stderr": 0}
        for stream, line in runtime.logs(run, remote_id, final):
            stream = "stderr" if stream == "stderr" else "stdout"
            counts[stream] += 1
            if counts[stream] <= seen[stream]:
                continue
            (stderr if stream == "stderr" else stdout).append(line)
            if stream == "stdout":
                try:
                    on_line(line)
                except Exception as err:  # the observer stops a diverging run by raising here
                    raise _ObserverStop(err) from err
        for stream, count in counts.items():
            seen[stream] = max(seen[stream], count)

    delay = runtime.poll.first
    deadline = started + run.timeout + QUEUE_ALLOWANCE
    try:
        while True:
            status = runtime.status(run, remote_id)
            if status.state != "queued":
                read(final=status.state in TERMINAL)
            if status.state in TERMINAL:
                break
            if runtime.clock() > deadline:
                said = runtime.cancel(run, remote_id)
                ledger.finish(run.name, "cancelled", runtime.clock() - started, runtime.hourly_rate(run))
                raise StageTimeout(f"The {runtime.name} run {remote_id} passed its {run.timeout:.0f}s limit and was "
                                   f"stopped ({said}); raise budget.time or runtime_options.timeout.")
            runtime.sleep(delay)
            delay = min(runtime.poll.cap, delay * runtime.poll.factor)
    except BaseException as err:
        if not isinstance(err, (KeyboardInterrupt, _ObserverStop)):
            raise  # a network error while polling: the run goes on, and the next attempt reattaches to it
        said = runtime.cancel(run, remote_id)
        ledger.finish(run.name, "cancelled", runtime.clock() - started, runtime.hourly_rate(run))
        cause = err.error if isinstance(err, _ObserverStop) else err
        log(f"stopped {runtime.name} run {remote_id} ({type(cause).__name__}): {said}")
        if isinstance(err, _ObserverStop):
            raise err.error from None
        raise
    seconds = status.seconds if status.seconds is not None else max(0.0, runtime.clock() - started)
    files: list[str] = []
    if status.state == "done":
        files = runtime.fetch(run, remote_id)
        log(f"fetched {len(files)} output files from {runtime.name} into {run.out_dir}")
    ledger.finish(run.name, status.state, seconds, runtime.hourly_rate(run), files=files, message=status.message)
    code = status.returncode if status.returncode is not None else (0 if status.state == "done" else 1)
    if code != 0 and status.message and not any(line.strip() for line in stderr):
        stderr.append(status.message)  # the script's own last error line says more, when there is one
    return ProcessResult(code, list(stdout), list(stderr), seconds)
