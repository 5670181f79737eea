"""The cost ledger of a job: remote GPU time (from the runtime_runs rows) plus LLM tokens and cost
(from the event log), and the ``budget.cost`` check that stops a job before it spends past it.

Prices are estimates from the runtimes' published on-demand rates; Kaggle's notebooks are free.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from orchestrator.errors import BudgetExceeded

if TYPE_CHECKING:
    from mltrainer.store import RuntimeRun, Store
    from orchestrator.context import JobContext
    from tools.runtimes.base import TrainingRun

#: US dollars per GPU-hour (Modal's on-demand prices, 2025; Kaggle's free quota costs nothing).
GPU_RATES: dict[str, dict[str, float]] = {
    "modal": {"T4": 0.59, "L4": 0.80, "A10G": 1.10, "L40S": 1.95, "A100": 2.10, "A100-40GB": 2.10,
              "A100-80GB": 2.50, "H100": 3.95, "H200": 4.54, "B200": 6.25, "none": 0.0},
    "kaggle": {"T4": 0.0, "P100": 0.0, "none": 0.0},
}
#: US dollars per hour for the container around the GPU (CPU cores and memory), where charged.
CONTAINER_RATES: dict[str, float] = {"modal": 0.10}
#: The GPU a runtime gets when the spec names none.
DEFAULT_GPU: dict[str, str] = {"kaggle": "T4", "modal": "T4"}


def hourly_rate(runtime: str, gpu: str | None, gpu_count: int = 1) -> float:
    """Estimated US dollars per hour of ``runtime`` with ``gpu_count`` × ``gpu`` (0 for unknown/local)."""
    gpu = gpu or DEFAULT_GPU.get(runtime, "none")
    per_gpu = GPU_RATES.get(runtime, {}).get(gpu, 0.0)
    return per_gpu * max(1, gpu_count) + CONTAINER_RATES.get(runtime, 0.0)


def llm_usage(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Calls, tokens and cost of a job's LLM responses, from its event log."""
    usage: dict[str, Any] = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost": 0.0, "models": []}
    for event in events:
        if event.get("type") != "llm_response":
            continue
        usage["calls"] += 1
        usage["tokens_in"] += int(event.get("tokens_in") or 0)
        usage["tokens_out"] += int(event.get("tokens_out") or 0)
        usage["cost"] += float(event.get("cost") or 0.0)
        if event.get("model") not in usage["models"]:
            usage["models"].append(event.get("model"))
    return usage


def _row(run: RuntimeRun) -> dict[str, Any]:
    return {"name": run.name, "stage": run.stage, "attempt": run.attempt, "runtime": run.runtime,
            "remote_id": run.remote_id, "status": run.status, "gpu": run.gpu, "gpu_count": run.gpu_count,
            "minutes": round(run.seconds / 60.0, 2), "cost_usd": round(run.cost_usd, 4),
            "detail": json.loads(run.detail_json or "{}")}


def job_ledger(store: Store, job_id: str) -> dict[str, Any]:
    """What a job has used: each remote run, GPU minutes, runtime and LLM cost, and their total."""
    runs = [_row(r) for r in store.runs(job_id)]
    llm = llm_usage(store.events(job_id))
    compute = [r for r in runs if r["runtime"] != "hub"]
    gpu_minutes = sum(r["minutes"] * max(1, r["gpu_count"]) for r in compute if r["gpu"] not in (None, "none"))
    runtime_cost = sum(r["cost_usd"] for r in compute)
    return {"runs": runs, "gpu_minutes": round(gpu_minutes, 2), "runtime_cost": round(runtime_cost, 4),
            "llm": llm, "total_cost": round(runtime_cost + llm["cost"], 4)}


def budget_of(context: JobContext) -> float | None:
    cost = (context.spec.get("budget") or {}).get("cost")
    return None if cost is None else float(cost)


def check_budget(store: Store, context: JobContext, stage: str = "") -> None:
    """Stop before ``stage`` when the job has already spent its ``budget.cost`` (the orchestrator calls this)."""
    budget = budget_of(context)
    if budget is None:
        return
    spent = job_ledger(store, context.job_id)["total_cost"]
    if spent > 0 and spent >= budget:  # stages that spend nothing (no LLM, local) still run at $0
        raise BudgetExceeded(
            f"Job {context.job_id} has spent ${spent:.2f} of its ${budget:.2f} budget.cost, so {stage or 'it'} did "
            f"not start; raise the budget with 'mltrainer resume {context.job_id} --budget-cost AMOUNT'.")


class RunLedger:
    """The store's runtime_runs rows as the remote driver needs them, for one job."""

    def __init__(self, store: Store, context: JobContext) -> None:
        self.store = store
        self.context = context

    def find(self, name: str) -> RuntimeRun | None:
        return self.store.find_run(name)

    def find_open(self, run: TrainingRun, runtime: str) -> RuntimeRun | None:
        """An earlier attempt's submission of the same stage and launch that never finished (its attempt
        failed on a network error while it ran): the new attempt reattaches to it instead of paying twice."""
        for row in reversed(self.store.runs(run.job_id)):
            if (row.stage == run.stage and row.runtime == runtime and row.status == "submitted" and row.remote_id
                    and json.loads(row.detail_json or "{}").get("launch", 1) == run.launch):
                return row
        return None

    def record(self, run: TrainingRun, runtime: str, remote_id: str) -> None:
        """Save an accepted submission (a cancelled one of the same name is replaced by the new one)."""
        from mltrainer.store import RuntimeRun

        gpu = run.gpu or DEFAULT_GPU.get(runtime)
        if self.find(run.name) is not None:
            self.store.update_run(run.name, remote_id=remote_id, status="submitted", seconds=0.0, cost_usd=0.0,
                                  detail={"replaced": True})
            return
        self.store.record_run(RuntimeRun(
            job_id=run.job_id, stage=run.stage, attempt=run.attempt, runtime=runtime, name=run.name,
            remote_id=remote_id, status="submitted", gpu=gpu, gpu_count=0 if gpu in (None, "none") else run.gpu_count,
            detail_json=json.dumps({"launch": run.launch, "args": list(run.args)})))

    def finish(self, name: str, status: str, seconds: float, rate: float, **detail: Any) -> None:
        self.store.update_run(name, status=status, seconds=max(0.0, seconds), cost_usd=rate * max(0.0, seconds) / 3600.0,
                              detail={k: v for k, v in detail.items() if v})

    def check_budget(self, run: TrainingRun, upper_bound: float, what: str) -> None:
        """Refuse a submission whose worst-case cost (rate × time limit) would pass ``budget.cost``."""
        budget = budget_of(self.context)
        if budget is None:
            return
        spent = job_ledger(self.store, self.context.job_id)["total_cost"]
        if spent + upper_bound > budget:
            raise BudgetExceeded(
                f"Training on {what} may cost up to ${upper_bound:.2f} ({run.timeout / 3600:.1f} h at most), which "
                f"with ${spent:.2f} already spent passes the ${budget:.2f} budget.cost; lower budget.time or raise "
                f"the budget with 'mltrainer resume {run.job_id} --budget-cost AMOUNT'.")
