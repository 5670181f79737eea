"""Where the training script runs: ``local`` (default), ``kaggle`` or ``modal``, one interface.

:func:`launch_training` is what the training agent calls; it turns the agent's command line into a
:class:`~tools.runtimes.base.TrainingRun` and hands it to the job's runtime. Runtimes are built
through :data:`FACTORIES` (runtime name → callable taking the job context), so tests can swap in a
runtime wired to a fake. Heavy SDKs (kagglesdk, modal) are imported only by the runtime that uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.context import JobContext
    from tools.runtimes.base import Runtime


def _local(context: JobContext) -> Runtime:
    from tools.runtimes.local import LocalRuntime

    return LocalRuntime()


def _kaggle(context: JobContext) -> Runtime:
    from tools.runtimes.kaggle import KaggleRuntime, job_credentials

    return KaggleRuntime(credentials=job_credentials(context))


def _modal(context: JobContext) -> Runtime:
    from tools.runtimes.modal_runtime import ModalRuntime, job_client

    return ModalRuntime(client=job_client(context))


#: runtime name → factory(context); replace an entry to run against a fake.
FACTORIES: dict[str, Callable[[JobContext], Runtime]] = {"local": _local, "kaggle": _kaggle, "modal": _modal}


def runtime_name(context: JobContext) -> str:
    """The job's runtime: the spec's ``runtime`` (JobContext.runtime for contexts built without a spec)."""
    return str((context.spec or {}).get("runtime") or context.runtime or "local")


def launch_training(context: JobContext, cmd: Sequence[str], *, cwd: Path, timeout: float,
                    on_line: Callable[[str], None], launch: int = 1, stage: str = "training",
                    log: Callable[[str], None] = lambda message: None, store: Any = None) -> Any:
    """Run the training command on the job's runtime; returns a ProcessResult (returncode, tails, duration).

    Remote runtimes upload ``--data-dir``, run the script there and download what it wrote into the
    local ``--out-dir``, so the stage after training finds the same files as after a local run.
    """
    from orchestrator.errors import UnsupportedError
    from tools.runtimes.base import TrainingRun, parse_command

    name = runtime_name(context)
    if name not in FACTORIES:
        raise UnsupportedError(f"Runtime '{name}' is not available; use one of {', '.join(FACTORIES)}.")
    runtime = FACTORIES[name](context)
    if name == "local":
        return runtime.run(cmd, cwd=cwd, timeout=timeout, on_line=on_line)  # type: ignore[attr-defined]
    options = (context.spec or {}).get("runtime_options") or {}
    script, data_dir, out_dir, args = parse_command(cmd)
    run = TrainingRun(job_id=context.job_id, stage=stage, attempt=max(1, int(context.attempts.get(stage, 1))),
                      launch=launch, script=script, data_dir=data_dir, out_dir=out_dir, args=args,
                      gpu=options.get("gpu"), gpu_count=int(options.get("gpu_count") or 1),
                      internet=bool(options.get("internet")), timeout=float(options.get("timeout") or timeout),
                      source=str(((context.spec or {}).get("data") or {}).get("source") or ""))
    from tools.runtimes.ledger import RunLedger

    own = store is None
    if own:
        from mltrainer import settings
        from mltrainer.store import Store

        store = Store(settings.db_path())
    try:
        return runtime.launch(run, on_line, RunLedger(store, context), log)
    finally:
        if own:
            store.close()


def last_remote_id(job_id: str, stage: str = "training") -> str | None:
    """The runtime's own id of the job's latest remote submission for ``stage`` (None when it ran locally)."""
    from mltrainer import settings
    from mltrainer.store import Store

    store = Store(settings.db_path())
    try:
        runs = [run for run in store.runs(job_id) if run.stage == stage and run.remote_id]
        return str(runs[-1].remote_id) if runs else None
    finally:
        store.close()
