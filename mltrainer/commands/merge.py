"""`mltrainer merge JOB_A JOB_B … --method linear|slerp|ties|dare`."""

from __future__ import annotations

from typing import Optional

import typer

from mltrainer.commands.common import friendly, open_store


@friendly
def merge(
    jobs: list[str] = typer.Argument(..., help="Two or more finished jobs of one architecture and the same prepared data."),
    method: str = typer.Option("linear", "--method", "-m", help="linear, slerp, ties or dare."),
    job_id: Optional[str] = typer.Option(None, "--job-id", help="Name of the merged job (default: FIRST-METHOD)."),
    base: Optional[str] = typer.Option(None, "--base", help="ties/dare: the job (or export folder) the models were "
                                                             "fine-tuned from; default: the first job."),
    weights: Optional[str] = typer.Option(None, "--weights", help="linear/ties/dare: one weight per job, e.g. 0.7,0.3."),
    t: float = typer.Option(0.5, "--t", help="slerp: 0 = the first model, 1 = the second."),
    density: float = typer.Option(0.5, "--density", help="ties: share of each task vector kept; dare: keep probability."),
    scale: float = typer.Option(1.0, "--scale", help="ties/dare: multiplier of the merged task vector."),
    seed: int = typer.Option(0, "--seed", help="dare: seed of the drop masks."),
    json_mode: bool = typer.Option(False, "--json", help="Print the new job's test metrics as JSON."),
) -> None:
    """Merge trained models weight by weight into a new job, scored on their shared test split."""
    import json

    from mltrainer.renderer import print_message
    from orchestrator.errors import UsageError
    from tools.merge import merge_jobs

    parsed = None
    if weights:
        try:
            parsed = [float(w) for w in weights.split(",")]
        except ValueError:
            raise UsageError(f"--weights '{weights}' must be numbers separated by commas, e.g. 0.7,0.3.") from None
    store = open_store()
    try:
        context = merge_jobs(store, jobs, method, new_id=job_id, base=base, weights=parsed, t=t, density=density,
                             scale=scale, seed=seed)
    finally:
        store.close()
    metrics = {k: v for k, v in context.test_metrics.items() if isinstance(v, (int, float))}
    if json_mode:
        print(json.dumps({"job_id": context.job_id, "method": method, "export_dir": context.artifacts["export_dir"],
                          "test_metrics": metrics}, indent=2))
        return
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "latency_ms_per_row")
    print_message(f"Merged {', '.join(jobs)} by {method} into job '{context.job_id}': test {shown}. "
                  f"Export: {context.artifacts['export_dir']}")
