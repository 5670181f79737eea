"""`mltrainer run SPEC` and `mltrainer resume JOB_ID`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mltrainer.commands.common import friendly, open_store, run_pipeline


def check_stage(stage: str | None) -> None:
    """``--until`` must name a pipeline stage."""
    from orchestrator.errors import SpecError
    from orchestrator.plan import STAGES

    if stage is not None and stage not in STAGES:
        raise SpecError(f"--until '{stage}' is not a stage; choose one of {', '.join(STAGES)}.")


@friendly
def run(
    spec: Path = typer.Argument(..., help="YAML spec file describing the job."),
    job_id: Optional[str] = typer.Option(None, "--job-id", help="Name for the job (default: generated)."),
    json_mode: bool = typer.Option(False, "--json", help="Print events as JSON lines instead of the live view."),
    until: Optional[str] = typer.Option(None, "--until", metavar="STAGE",
                                        help="Stop after this stage (e.g. preprocessing); resume continues."),
) -> None:
    """Run a job from a spec file, non-interactively (never prompts)."""
    import time

    from mltrainer import settings
    from mltrainer.spec import load_spec, resolve_source
    from orchestrator.context import JobContext
    from orchestrator.errors import SpecError
    from orchestrator.errors import UsageError
    from orchestrator.orchestrator import new_job_id
    from tools.vault import Vault, redact

    if job_id is not None and not settings.JOB_ID_PATTERN.match(job_id):
        raise SpecError(f"--job-id '{job_id}' may use letters, digits, '.', '_' and '-' only (at most 64).")
    store = open_store()
    if job_id is not None and store.get_job(job_id) is not None:
        store.close()
        raise UsageError(f"A job named '{job_id}' already exists; pick another --job-id or run 'mltrainer resume {job_id}'.")
    check_stage(until)
    name = job_id or new_job_id()
    vault = Vault()
    try:
        parsed, _text = load_spec(spec, redact_text=lambda text: redact(text, vault, name)[0])
        source = resolve_source(parsed, spec)
    except SpecError:
        store.close()
        vault.forget(name)  # no job was created, so the vault keeps nothing for it
        raise
    spec_dict = parsed.model_dump(mode="json")
    spec_dict["data"]["source"] = source
    monitor = spec_dict.get("monitor") or {}
    if monitor.get("webhook") and not str(monitor["webhook"]).startswith("⟨secret:"):
        # a webhook URL is a credential (Slack, Discord and Telegram put the token in it): the job
        # keeps only its vault reference, so it never reaches the store, events or a model card
        monitor["webhook"] = vault.put(name, "webhook_url", monitor["webhook"])
    context = JobContext(
        job_id=name,
        raw_prompt=parsed.task,
        spec=spec_dict,
        spec_path=str(spec.resolve()),
        job_dir=str(settings.job_dir(name)),
        runtime=parsed.runtime,
        task_type=parsed.task_type,
        created_at=time.time(),
    )
    try:
        code = run_pipeline(store, context, json_mode=json_mode, resumed=False, create=True, until=until)
    finally:
        store.close()
    raise typer.Exit(code)


@friendly
def resume(
    job_id: str = typer.Argument(..., help="The job to continue (see `mltrainer jobs`)."),
    json_mode: bool = typer.Option(False, "--json", help="Print events as JSON lines instead of the live view."),
    until: Optional[str] = typer.Option(None, "--until", metavar="STAGE", help="Stop after this stage."),
    budget_cost: Optional[str] = typer.Option(None, "--budget-cost", metavar="USD",
                                              help="New budget.cost (e.g. 5 or $5) for a job the budget stopped."),
) -> None:
    """Continue a failed, interrupted or paused job at the first stage that has not completed."""
    from orchestrator.context import JobContext
    from orchestrator.errors import SpecError, UsageError

    check_stage(until)
    store = open_store()
    try:
        context = JobContext.from_json(store.require_job(job_id).context_json)
        if context.status == "done":
            raise UsageError(f"Job '{job_id}' is already done; 'mltrainer show {job_id}' shows its results.")
        if budget_cost is not None:
            from mltrainer.spec import parse_money

            try:
                context.spec.setdefault("budget", {})["cost"] = parse_money(budget_cost)
            except ValueError as err:
                raise SpecError(f"--budget-cost: {err}.") from None
        code = run_pipeline(store, context, json_mode=json_mode, resumed=True, create=False, until=until)
    finally:
        store.close()
    raise typer.Exit(code)
