"""`mltrainer jobs` and `mltrainer show JOB_ID`."""

from __future__ import annotations

import json
from typing import Any

import typer

from mltrainer.commands.common import friendly, open_store


def _best(context: dict[str, Any]) -> str:
    best = context.get("best_metric") or {}
    test = context.get("test_metrics") or {}
    if test:
        key = "accuracy" if "accuracy" in test else "r2" if "r2" in test else next(iter(test))
        return f"test {key} {test[key]:.4f}"
    if best:
        return f"val {best.get('name')} {float(best.get('value', 0)):.4f}"
    return ""


@friendly
def jobs(json_mode: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List jobs, newest first."""
    from mltrainer.renderer import print_jobs

    store = open_store()
    try:
        rows = []
        for job in store.list_jobs():
            context = json.loads(job.context_json)
            rows.append({"id": job.id, "status": job.status, "task_type": job.task_type,
                         "stage": job.current_stage, "best": _best(context), "updated_at": job.updated_at,
                         "failure": job.failure_reason})
    finally:
        store.close()
    if json_mode:
        print(json.dumps(rows, indent=2))
    else:
        print_jobs(rows)


def job_detail(store: Any, job_id: str) -> dict[str, Any]:
    from orchestrator.plan import STAGES

    job = store.require_job(job_id)
    context = json.loads(job.context_json)
    attempts = store.attempts(job_id)
    stages = []
    for stage in STAGES:
        mine = [a for a in attempts if a.stage == stage]
        result = context.get("stage_results", {}).get(stage, {})
        last = mine[-1] if mine else None
        status = result.get("status") or (last.status if last else "pending")
        note = result.get("summary") or result.get("reason") or (last.error_message if last and last.status == "failed" else "") or ""
        stages.append({
            "stage": stage,
            "status": status,
            "attempts": len([a for a in mine if a.status in ("done", "failed", "interrupted")]),
            "duration": sum(a.duration for a in mine),
            "note": note or "",
            "attempt_log": [{"attempt": a.attempt, "status": a.status, "duration": a.duration,
                             "started_at": a.started_at, "error": a.error_message} for a in mine],
        })
    llm = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost": 0.0, "models": []}
    events = store.events(job_id)
    for event in events:
        if event.get("type") == "llm_response":
            llm["calls"] += 1
            llm["tokens_in"] += int(event.get("tokens_in", 0))
            llm["tokens_out"] += int(event.get("tokens_out", 0))
            llm["cost"] += float(event.get("cost", 0.0))
            if event.get("model") not in llm["models"]:
                llm["models"].append(event.get("model"))
    from tools.runtimes.ledger import job_ledger

    return {
        "id": job.id,
        "training_watch": training_watch(context, events),
        "llm": llm,
        "ledger": job_ledger(store, job_id),  # remote GPU minutes and cost, LLM tokens and cost
        "status": job.status,
        "task_type": job.task_type,
        "task": context.get("raw_prompt"),
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "stages": stages,
        "errors": context.get("errors", []),
        "best_metric": context.get("best_metric"),
        "test_metrics": context.get("test_metrics"),
        "artifacts": context.get("artifacts", {}),
        "deployed_urls": context.get("deployed_urls", []),
        "failure": context.get("failure") or None,
        "data_report": context.get("data_report") or {},
        "preprocessing_report": context.get("preprocessing_report") or {},
        "data_paths": context.get("data_paths") or {},
        "config": context.get("config") or {},
        "architecture": context.get("architecture") or {},
        "codegen": context.get("codegen") or {},
        "compression": context.get("compression") or {},
    }


def training_watch(context: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, str]:
    """The training observer's record in a few lines: the kept model's curve, phases, advice acted on."""
    from tools.observer.report import advice_lines, curve_line, phases_line

    out: dict[str, str] = {}
    curve = curve_line(context.get("training_metrics") or [], (context.get("best_metric") or {}).get("model"))
    if curve:
        out["curve"] = curve
    phases = phases_line(events)
    if phases:
        out["phases"] = phases
    for i, line in enumerate(advice_lines(events)[-3:], 1):
        out[f"advice {i}"] = line
    return out


@friendly
def show(
    job_id: str = typer.Argument(..., help="The job to describe."),
    json_mode: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show a job's stages with attempts and timings, metrics, artifacts and any failure."""
    from mltrainer.renderer import print_job

    store = open_store()
    try:
        detail = job_detail(store, job_id)
    finally:
        store.close()
    if json_mode:
        print(json.dumps(detail, indent=2, default=str))
    else:
        print_job(detail)
