"""Shared plumbing of the commands: error handling, the store, running a pipeline."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from orchestrator.errors import MltrainerError

if TYPE_CHECKING:
    from mltrainer.store import Store
    from orchestrator.context import JobContext

F = TypeVar("F", bound=Callable[..., Any])

EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def friendly(func: F) -> F:
    """Turn our errors into one printed sentence and the right exit status — never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MltrainerError as err:
            from mltrainer.renderer import print_error

            print_error(str(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as err:  # a bug of ours: one sentence on screen, the traceback in a file
            from mltrainer.renderer import print_error

            print_error(f"Internal error ({type(err).__name__}: {err}); the traceback is in {_save_traceback()}.")
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper  # type: ignore[return-value]


def _save_traceback() -> str:
    import time
    import traceback

    from mltrainer import settings

    folder = settings.home() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / time.strftime("crash-%Y%m%d-%H%M%S.log")
    from tools.vault import mask

    path.write_text(mask(traceback.format_exc()))  # a traceback can quote a secret: mask it
    return str(path)


def open_store() -> Store:
    from mltrainer import settings
    from mltrainer.store import Store

    return Store(settings.db_path())


def job_router(context: JobContext, bus: Any) -> Any:
    """The job's LLM from its spec (rebuilt on every resume), or None: the deterministic floor.

    A spec's api_key is stored as a vault reference; it turns back into the key only here, in
    memory. An LLM that cannot be set up never fails the job: it runs without one, and says so.
    """
    from orchestrator.errors import MltrainerError
    from orchestrator.events import AgentLog
    from tools.llm import router_from_spec

    llm = context.spec.get("llm", "none")
    try:
        if isinstance(llm, dict) and str(llm.get("api_key", "")).startswith("⟨secret:"):
            from tools.vault import Vault

            key = Vault().get(context.job_id, llm["api_key"])
            if key is None:
                raise MltrainerError("the spec's llm.api_key is not in the vault any more")
            llm = {**llm, "api_key": key}
        return router_from_spec(None if llm == "auto" else llm, bus=bus)
    except MltrainerError as err:
        bus.emit(AgentLog(stage="intent", level="warning",
                          message=f"No LLM for this job ({err}); using the deterministic policy."))
        return None


def run_pipeline(store: Store, context: JobContext, *, json_mode: bool, resumed: bool, create: bool,
                 until: str | None = None) -> int:
    """Run (or resume) a job with a live renderer; returns the exit status."""
    from mltrainer.renderer import render_events
    from orchestrator.events import EventBus
    from orchestrator.orchestrator import Orchestrator

    from agents.registry import default_agents

    bus = EventBus()
    orchestrator = Orchestrator(store, bus, default_agents(bus, llm=job_router(context, bus)))
    if create:
        orchestrator.create(context)
    thread, _ = render_events(bus, json_mode)
    try:
        final = orchestrator.run(context, resumed=resumed, until=until)
    finally:
        bus.close()
        thread.join(timeout=10)
        sys.stdout.flush()
    if final.status in ("done", "paused"):
        return EXIT_DONE
    if final.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_FAILED
