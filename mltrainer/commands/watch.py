"""`mltrainer watch LOG_OR_DIR [--follow]`: the training observer on any run's log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import typer

from mltrainer.commands.common import friendly

POLL_SECONDS = 2.0


@friendly
def watch(
    path: Path = typer.Argument(..., help="A training log or run folder (or a job id): our METRIC lines/metrics.jsonl, a HuggingFace "
                                          "Trainer log or trainer_state.json, Lightning metrics.csv, an MMEngine log, "
                                          "TensorBoard event files."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep reading as the log grows; Ctrl-C stops."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="The run's epochs, when the log does not say."),
    steps: Optional[float] = typer.Option(None, "--steps", help="The run's optimisation steps, when the log does not say."),
    patience: Optional[int] = typer.Option(None, "--patience", help="The run's early-stopping patience, if it has one."),
    json_mode: bool = typer.Option(False, "--json", help="Print events as JSON lines."),
) -> None:
    """Watch training: phase transitions, ETA with an interval, early-stop advice and alerts."""
    from orchestrator.errors import UsageError
    from orchestrator.events import event_to_dict
    from tools.observer.watch import LogWatch, describe

    if not path.exists() and "/" not in str(path):  # a job id: its run folder (metrics.jsonl)
        from mltrainer import settings

        if (settings.job_dir(str(path)) / "run" / "out").exists():
            path = settings.job_dir(str(path)) / "run" / "out"
    try:
        log = LogWatch(path, total_epochs=epochs, total_steps=steps, patience=patience, follow=follow)
    except FileNotFoundError as err:
        raise UsageError(f"{err}; pass a log file or a run folder.") from None

    def show(pairs: list[tuple[Any, Any]]) -> None:
        for event, eta in pairs:
            if json_mode:
                print(json.dumps({**event_to_dict(event), **({"eta": eta.__dict__} if eta else {})}, default=str))
            else:
                print(describe(event, eta))  # plain lines: a log to read, grep or pipe

    show(log.poll())
    if not json_mode:
        print(f"({log.kind} log: {path})")
    try:
        while follow and not log.complete():
            time.sleep(POLL_SECONDS)
            show(log.poll())
    except KeyboardInterrupt:
        pass
    show([(event, None) for event in log.close()])
    if json_mode:
        return
    for line in log.status():
        print(line)
