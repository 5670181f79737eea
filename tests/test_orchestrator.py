"""The orchestrator with scripted agents: retries with error feedback, failure, resume, interrupt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.base import BaseAgent
from mltrainer.store import Store
from orchestrator.context import JobContext
from orchestrator.errors import ClientError, CredentialError, DataError, TransientError
from orchestrator.events import EventBus
from orchestrator.orchestrator import Orchestrator
from orchestrator.plan import STAGES
from orchestrator.retry import POLICIES, RetryPolicy


class ScriptedAgent(BaseAgent):
    """Raises the queued errors in turn, then returns ``result``; records what each attempt saw."""

    def __init__(self, stage: str, errors: list[BaseException] | None = None, result: dict[str, Any] | None = None):
        super().__init__(None)
        self.stage = stage  # type: ignore[misc]
        self.errors = list(errors or [])
        self.result = result if result is not None else {"artifacts": {stage: "ok"}}
        self.seen_feedback: list[list[str]] = []
        self.calls = 0

    def _execute(self, context: JobContext) -> dict[str, Any]:
        self.calls += 1
        self.seen_feedback.append(self.previous_errors(context))
        context.artifacts["mutated_by_agent"] = "yes"  # must not leak: agents get a snapshot
        if self.errors:
            raise self.errors.pop(0)
        return dict(self.result)


def make(tmp_path: Path, agents: dict[str, BaseAgent], policies: dict[str, RetryPolicy] | None = None):
    store = Store(tmp_path / "db.sqlite")
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(events.append)
    sleeps: list[float] = []
    orch = Orchestrator(store, bus, agents, policies=policies or POLICIES, sleep=sleeps.append)
    return orch, store, events, sleeps


def all_agents(**overrides: BaseAgent) -> dict[str, BaseAgent]:
    agents: dict[str, BaseAgent] = {s: ScriptedAgent(s) for s in STAGES}
    agents.update(overrides)
    return agents


def new_context(tmp_path: Path, job_id: str = "job") -> JobContext:
    return JobContext(job_id=job_id, job_dir=str(tmp_path / job_id), spec={"deploy": {"target": "local"}})


def test_third_attempt_sees_the_first_two_errors(tmp_path: Path) -> None:
    flaky = ScriptedAgent("codegen", errors=[RuntimeError("first failure"), ValueError("second failure")])
    orch, store, events, sleeps = make(tmp_path, all_agents(codegen=flaky))
    context = orch.create(new_context(tmp_path))
    final = orch.run(context)
    assert final.status == "done"
    assert flaky.calls == 3
    assert flaky.seen_feedback[0] == []
    assert flaky.seen_feedback[1] == ["RuntimeError: first failure"]
    assert flaky.seen_feedback[2] == ["RuntimeError: first failure", "ValueError: second failure"]
    policy = POLICIES["codegen"]
    assert len(sleeps) == 2
    assert sleeps[0] == pytest.approx(policy.base_delay, rel=policy.jitter + 1e-9)
    assert sleeps[1] == pytest.approx(policy.base_delay * policy.backoff, rel=policy.jitter + 1e-9)
    retries = [e for e in events if e.type == "stage_retry"]
    assert [r.next_attempt for r in retries] == [2, 3]
    rows = [a for a in store.attempts("job") if a.stage == "codegen"]
    assert [(a.attempt, a.status) for a in rows] == [(1, "failed"), (2, "failed"), (3, "done")]
    assert "mutated_by_agent" not in final.artifacts


def test_error_feedback_text_asks_not_to_repeat(tmp_path: Path) -> None:
    agent = ScriptedAgent("codegen")
    context = JobContext(job_id="a", error_feedback={"codegen": ["boom"]})
    text = agent.error_feedback_text(context)
    assert "Attempt 1 failed with: boom" in text and "Do not repeat" in text
    assert agent.error_feedback_text(JobContext(job_id="b")) == ""


def test_non_retryable_error_fails_at_once_and_keeps_state(tmp_path: Path) -> None:
    bad = ScriptedAgent("dataset", errors=[DataError("The target column 'y' is not in d.csv; did you mean 'Y'?")])
    orch, store, events, sleeps = make(tmp_path, all_agents(dataset=bad))
    final = orch.run(orch.create(new_context(tmp_path)))
    assert final.status == "failed"
    assert bad.calls == 1 and sleeps == []
    assert final.failure["stage"] == "dataset"
    assert "did you mean" in final.failure["error"]
    assert "intent" in final.stage_results and "dataset" not in final.stage_results
    saved = JobContext.from_json(store.require_job("job").context_json)
    assert saved.status == "failed" and saved.stage_results.keys() == final.stage_results.keys()
    assert store.require_job("job").failure_reason == final.failure["error"]


def test_retries_run_out_then_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    policy = {**POLICIES, "training": RetryPolicy(2, 1.0, 2.0, 10.0, 0.0, True)}
    trainer = ScriptedAgent("training", errors=[TransientError("net down"), TransientError("net down")])
    agents = all_agents(training=trainer)
    orch, store, events, _ = make(tmp_path, agents, policy)
    final = orch.run(orch.create(new_context(tmp_path)))
    assert final.status == "failed" and trainer.calls == 2
    calls_before = {s: a.calls for s, a in agents.items()}  # type: ignore[attr-defined]

    orch2 = Orchestrator(store, EventBus(), agents, policies=policy, sleep=lambda s: None)
    resumed = orch2.run(orch2.load("job"), resumed=True)
    assert resumed.status == "done"
    for stage in STAGES:
        expected = calls_before[stage] + (1 if stage in ("training", "export", "deploy") else 0)
        assert agents[stage].calls == expected, stage  # type: ignore[attr-defined]
    done = [a for a in store.attempts("job") if a.status == "done"]
    assert sorted(a.stage for a in done) == sorted(STAGES)


def test_skipped_stage_is_recorded(tmp_path: Path) -> None:
    orch, store, events, _ = make(tmp_path, all_agents())
    context = new_context(tmp_path)
    context.spec = {"deploy": None}
    final = orch.run(orch.create(context))
    assert final.stage_results["deploy"]["status"] == "skipped"
    assert any(e.type == "stage_skipped" and e.stage == "deploy" for e in events)
    assert orch.agents["deploy"].calls == 0  # type: ignore[attr-defined]


def test_ctrl_c_leaves_a_resumable_job(tmp_path: Path) -> None:
    stopper = ScriptedAgent("config", errors=[KeyboardInterrupt()])
    agents = all_agents(config=stopper)
    orch, store, events, _ = make(tmp_path, agents)
    final = orch.run(orch.create(new_context(tmp_path)))
    assert final.status == "interrupted"
    assert store.require_job("job").status == "interrupted"
    assert events[-1].type == "pipeline_end" and events[-1].status == "interrupted"
    resumed = orch.run(orch.load("job"), resumed=True)
    assert resumed.status == "done"
    assert agents["intent"].calls == 1  # type: ignore[attr-defined]


def test_events_are_persisted_in_the_store(tmp_path: Path) -> None:
    orch, store, _, _ = make(tmp_path, all_agents())
    orch.run(orch.create(new_context(tmp_path)))
    kinds = [e["type"] for e in store.events("job")]
    assert kinds[0] == "pipeline_start" and kinds[-1] == "pipeline_end"
    assert kinds.count("stage_end") == len(STAGES)


def test_a_second_process_cannot_run_the_same_job(tmp_path: Path) -> None:
    from orchestrator.errors import JobLocked
    from orchestrator.orchestrator import job_lock

    with job_lock(tmp_path / "job"):
        with pytest.raises(JobLocked):
            with job_lock(tmp_path / "job"):
                pass


@pytest.mark.parametrize("error,retried", [
    (ClientError("HTTP 403 from the Hub; the token cannot write."), False),
    (CredentialError("The token is invalid."), False),
    (DataError("Column 'y' is missing."), False),
    (TransientError("HTTP 503"), True),
    (ConnectionError("reset by peer"), True),
    (RuntimeError("an unexpected bug"), True),
])
def test_error_table_decides_what_is_retried(tmp_path: Path, error: Exception, retried: bool) -> None:
    agent = ScriptedAgent("deploy", errors=[error])
    orch, _, _, sleeps = make(tmp_path, all_agents(deploy=agent))
    final = orch.run(orch.create(new_context(tmp_path)))
    assert agent.calls == (2 if retried else 1)
    assert final.status == ("done" if retried else "failed")
    assert len(sleeps) == (1 if retried else 0)
