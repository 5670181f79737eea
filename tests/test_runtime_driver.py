"""The remote driver every runtime shares, with a scripted in-memory runtime: names, polling backoff,
a run that outlives its limit is cancelled, Ctrl-C cancels it too, and the cost ledger with the
budget.cost check before a stage."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mltrainer import settings
from mltrainer.store import Store
from orchestrator.context import JobContext
from orchestrator.errors import BudgetExceeded, StageTimeout
from tools.runtimes.base import RemoteStatus, Runtime, TrainingRun, parse_command, slug, submission_name
from tools.runtimes.ledger import RunLedger, check_budget, hourly_rate, job_ledger


class Scripted(Runtime):
    """States answered in order (the last repeats); a clock that the sleeps advance."""

    name = "modal"

    def __init__(self, states: list[str], interrupt_at: int | None = None) -> None:
        self.now = 1000.0
        super().__init__(sleep=self._sleep, clock=lambda: self.now)
        self.states = states
        self.sleeps: list[float] = []
        self.cancelled: list[str] = []
        self.polls = 0
        self.interrupt_at = interrupt_at

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def submit(self, run: TrainingRun) -> str:
        return "call-1"

    def status(self, run: TrainingRun, remote_id: str) -> RemoteStatus:
        self.polls += 1
        if self.polls == self.interrupt_at:
            raise KeyboardInterrupt
        return RemoteStatus(self.states[min(self.polls, len(self.states)) - 1])

    def logs(self, run: TrainingRun, remote_id: str, final: bool) -> list[tuple[str, str]]:
        return [("stdout", f"line {i}") for i in range(self.polls)]

    def fetch(self, run: TrainingRun, remote_id: str) -> list[str]:
        return []

    def cancel(self, run: TrainingRun, remote_id: str) -> str:
        self.cancelled.append(remote_id)
        return "cancelled"


@pytest.fixture()
def ledger(tmp_path: Path) -> RunLedger:
    store = Store(settings.db_path())
    context = JobContext(job_id="d", job_dir=str(tmp_path), spec={})
    store.create_job("d", context.to_json())
    yield RunLedger(store, context)
    store.close()


def run_of(tmp_path: Path, timeout: float = 600.0) -> TrainingRun:
    return TrainingRun(job_id="d", stage="training", attempt=1, script=tmp_path / "train.py", data_dir=tmp_path,
                       out_dir=tmp_path / "out", timeout=timeout)


def test_names_and_commands() -> None:
    assert submission_name("job-1", "training", 2) == "mltrainer-job-1-training-2"
    assert submission_name("job-1", "training", 2, launch=3) == "mltrainer-job-1-training-2-3"
    long = slug("mltrainer-" + "x" * 80 + "-training-1", 50)
    assert len(long) == 50 and long == slug("mltrainer-" + "x" * 80 + "-training-1", 50)
    script, data, out, rest = parse_command(["py", "/r/train.py", "--data-dir", "/d", "--resume", "--out-dir", "/o",
                                             "--batch-size", "8"])
    assert (script, data, out, rest) == (Path("/r/train.py"), Path("/d"), Path("/o"), ("--resume", "--batch-size", "8"))


def test_polls_with_backoff_and_streams_each_line_once(tmp_path: Path, ledger: RunLedger) -> None:
    runtime = Scripted(["queued", "running", "running", "done"])
    lines: list[str] = []
    result = runtime.launch(run_of(tmp_path), lines.append, ledger)
    assert result.returncode == 0
    assert runtime.sleeps == [10.0, 15.0, 22.5]
    assert lines == ["line 0", "line 1", "line 2", "line 3"]
    [row] = ledger.store.runs("d")
    assert row.status == "done" and row.seconds == pytest.approx(47.5)
    assert row.cost_usd == pytest.approx(hourly_rate("modal", None) * 47.5 / 3600)


def test_a_run_past_its_limit_is_cancelled(tmp_path: Path, ledger: RunLedger) -> None:
    runtime = Scripted(["running"])
    with pytest.raises(StageTimeout, match="passed its 60s limit"):
        runtime.launch(run_of(tmp_path, timeout=60.0), lambda line: None, ledger)
    assert runtime.cancelled == ["call-1"]
    assert [r.status for r in ledger.store.runs("d")] == ["cancelled"]


def test_ctrl_c_cancels_the_remote_run(tmp_path: Path, ledger: RunLedger) -> None:
    runtime = Scripted(["running"], interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        runtime.launch(run_of(tmp_path), lambda line: None, ledger)
    assert runtime.cancelled == ["call-1"] and ledger.store.runs("d")[0].status == "cancelled"
    # a cancelled submission is not reattached to: the next launch of the same name submits afresh
    again = Scripted(["done"])
    assert again.launch(run_of(tmp_path), lambda line: None, ledger).returncode == 0 and again.polls == 1
    assert [r.status for r in ledger.store.runs("d")] == ["done"]


def test_ledger_sums_llm_and_gpu_and_the_budget_stops_before_a_stage(tmp_path: Path, ledger: RunLedger) -> None:
    store, context = ledger.store, ledger.context
    Scripted(["done"]).launch(run_of(tmp_path), lambda line: None, ledger)
    for cost in (0.02, 0.03):
        store.append_event("d", {"type": "llm_response", "model": "openai/x", "tokens_in": 100, "tokens_out": 20,
                                 "cost": cost})
    totals = job_ledger(store, "d")
    assert totals["llm"]["calls"] == 2 and totals["llm"]["tokens_in"] == 200
    assert totals["total_cost"] == pytest.approx(0.05 + totals["runtime_cost"])
    check_budget(store, context, "export")  # no budget: never stops
    context.spec = {"budget": {"cost": 1.0}}
    check_budget(store, context, "export")  # under it
    context.spec = {"budget": {"cost": 0.05}}
    with pytest.raises(BudgetExceeded, match=r"has spent \$0\.05 of its \$0\.05 budget\.cost, so export did not start"):
        check_budget(store, context, "export")


def test_the_observer_stopping_a_run_cancels_it_but_a_network_error_does_not(tmp_path: Path, ledger: RunLedger) -> None:
    from orchestrator.errors import TransientError

    class Diverged(Exception):
        pass

    def observer(line: str) -> None:
        if line == "line 1":
            raise Diverged("loss is nan")

    runtime = Scripted(["running"])
    with pytest.raises(Diverged):
        runtime.launch(run_of(tmp_path), observer, ledger)
    assert runtime.cancelled == ["call-1"] and ledger.store.runs("d")[0].status == "cancelled"

    class Flaky(Scripted):
        def status(self, run: TrainingRun, remote_id: str) -> RemoteStatus:
            raise TransientError("Kaggle answered 503")

    flaky = Flaky(["running"])
    with pytest.raises(TransientError):
        flaky.launch(run_of(tmp_path), lambda line: None, ledger)
    assert flaky.cancelled == [] and ledger.store.runs("d")[0].status == "submitted"
    retry = Scripted(["done"])  # the stage's next attempt finds the run still going and reattaches to it
    retry.submit = lambda run: pytest.fail("must not submit again")  # type: ignore[method-assign]
    assert retry.launch(replace(run_of(tmp_path), attempt=2), lambda line: None, ledger).returncode == 0
    assert [(r.attempt, r.status) for r in ledger.store.runs("d")] == [(1, "done")]
