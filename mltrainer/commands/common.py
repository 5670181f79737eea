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
    path.write_text(traceback.format_exc())
    return str(path)


def open_store() -> Store:
    from mltrainer import settings
    from mltrainer.store import Store

    return Store(settings.db_path())


def run_pipeline(store: Store, context: JobContext, *, json_mode: bool, resumed: bool, create: bool) -> int:
    """Run (or resume) a job with a live renderer; returns the exit status."""
    from mltrainer.renderer import render_events
    from orchestrator.events import EventBus
    from orchestrator.orchestrator import Orchestrator

    bus = EventBus()
    orchestrator = Orchestrator(store, bus)
    if create:
        orchestrator.create(context)
    thread, _ = render_events(bus, json_mode)
    try:
        final = orchestrator.run(context, resumed=resumed)
    finally:
        bus.close()
        thread.join(timeout=10)
        sys.stdout.flush()
    if final.status == "done":
        return EXIT_DONE
    if final.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_FAILED
