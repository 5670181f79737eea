"""`mltrainer eject JOB_ID DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

from mltrainer.commands.common import friendly, open_store


@friendly
def eject(
    job_id: str = typer.Argument(..., help="The job to write out (it must be past codegen)."),
    directory: Path = typer.Argument(..., help="A new (or empty) folder for the standalone project."),
    max_data_mb: float = typer.Option(500.0, "--max-data-mb",
                                      help="Copy the prepared data up to this size; past it, write a rebuild script."),
) -> None:
    """Write a job out as ordinary code: train.py, data, model, requirements, README and a smoke test."""
    from mltrainer.renderer import print_message
    from orchestrator.context import JobContext
    from tools.eject import eject as write_project

    store = open_store()
    try:
        context = JobContext.from_json(store.require_job(job_id).context_json)
    finally:
        store.close()
    result = write_project(context, directory, max_data_bytes=int(max_data_mb * 1024**2))
    print_message(f"Ejected '{job_id}' to {result['dir']}: {', '.join(result['files'])}. "
                  f"Check it with: cd {result['dir']} && pytest -q test_smoke.py")
