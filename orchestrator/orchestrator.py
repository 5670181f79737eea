"""The orchestrator: runs a job's plan stage by stage, checkpointing after every attempt.

Resume loads the saved context and starts at the first stage without a result, so a completed
stage never runs twice. A failing stage is retried per its policy with its earlier errors fed
back; an error no retry can fix ends the job at once, with its state kept for ``resume``.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.context import JobContext
from orchestrator.errors import JobLocked, classify, describe
from orchestrator.events import (
    EventBus,
    PipelineEnd,
    PipelineStart,
    StageEnd,
    StageFailed,
    StageRetry,
    StageSkipped,
    StageStart,
    event_to_dict,
)
from orchestrator.plan import STAGES, skip_reason
from orchestrator.retry import POLICIES, RetryPolicy

if TYPE_CHECKING:
    from agents.base import BaseAgent
    from mltrainer.store import Store

#: Fault injection for the crash tests: ``MLTRAINER_CRASH_AT=after_checkpoint:dataset`` makes the
#: process SIGKILL itself at that point, exactly as a power cut or OOM-kill would.
CRASH_ENV = "MLTRAINER_CRASH_AT"


def _crash_point(point: str, stage: str) -> None:
    if os.environ.get(CRASH_ENV) == f"{point}:{stage}":
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def job_lock(job_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the job folder so two processes never run one job."""
    job_dir.mkdir(parents=True, exist_ok=True)
    with open(job_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobLocked(
                f"Job '{job_dir.name}' is running in another process; wait for it or stop that process first."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def new_job_id() -> str:
    return time.strftime("job-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


class Orchestrator:
    """Runs jobs; agents, sleeping and randomness are injected so tests neither wait nor guess."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        agents: Mapping[str, BaseAgent] | None = None,
        *,
        policies: Mapping[str, RetryPolicy] = POLICIES,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        if agents is None:
            from agents.registry import default_agents

            agents = default_agents(bus)
        self.agents = dict(agents)
        self.policies = policies
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._job_id: str | None = None
        bus.subscribe(self._persist_event)

    def _persist_event(self, event: Any) -> None:
        if self._job_id is not None:
            self.store.append_event(self._job_id, event_to_dict(event))

    # -- lifecycle ---------------------------------------------------------------------------
    def create(self, context: JobContext) -> JobContext:
        now = time.time()
        context.created_at = context.created_at or now
        context.updated_at = now
        self.store.create_job(context.job_id, context.to_json(), context.task_type)
        return context

    def load(self, job_id: str) -> JobContext:
        job = self.store.require_job(job_id)
        return JobContext.from_json(job.context_json)

    def run(self, context: JobContext, *, resumed: bool = False, until: str | None = None) -> JobContext:
        """Run every stage not completed yet; returns the context in its final state.

        ``until`` stops after that stage with status ``paused`` (e.g. prepare the data only);
        ``resume`` later carries on from the next stage.
        """
        if until is not None and until not in STAGES:
            raise ValueError(f"unknown stage {until!r}")
        with job_lock(Path(context.job_dir)):
            return self._run_locked(context, resumed, until)

    def _run_locked(self, context: JobContext, resumed: bool, until: str | None = None) -> JobContext:
        self._job_id = context.job_id
        started = time.time()
        context.status = "running"
        context.failure = {}
        self._save(context, None)
        self.bus.emit(PipelineStart(job_id=context.job_id, stages=STAGES, resumed=resumed))
        try:
            for stage in STAGES:
                if context.completed(stage):
                    continue
                reason = skip_reason(stage, context)
                if reason is not None:
                    self._skip(context, stage, reason)
                    continue
                if not self._run_stage(context, stage):
                    break
                if stage == until:
                    context.status = "paused"
                    context.current_stage = None
                    self._save(context, None)
                    break
            else:
                context.status = "done"
                context.current_stage = None
                self._save(context, None)
        except KeyboardInterrupt:
            context.status = "interrupted"
            self._save(context, None)
            self.bus.emit(
                PipelineEnd(job_id=context.job_id, status="interrupted", duration=time.time() - started,
                            reason="stopped by the user")
            )
            return context
        self.bus.emit(
            PipelineEnd(
                job_id=context.job_id,
                status=context.status,
                duration=time.time() - started,
                reason=context.failure.get("error", "") or (f"stopped after {until} as asked" if context.status == "paused" else ""),
                export_dir=context.artifacts.get("export_dir", ""),
                deployed_urls=tuple(context.deployed_urls),
            )
        )
        return context

    # -- stages ------------------------------------------------------------------------------
    def _skip(self, context: JobContext, stage: str, reason: str) -> None:
        from mltrainer.store import StageAttempt

        now = time.time()
        context.stage_results[stage] = {"status": "skipped", "reason": reason, "finished_at": now}
        self._save(context, StageAttempt(job_id=context.job_id, stage=stage, attempt=0, status="skipped",
                                         started_at=now, ended_at=now, duration=0.0, error_message=reason))
        self.bus.emit(StageSkipped(stage=stage, reason=reason))

    def _run_stage(self, context: JobContext, stage: str) -> bool:
        """Run one stage with its retry policy; False when the job has failed."""
        from mltrainer.store import StageAttempt

        agent = self.agents[stage]
        policy = self.policies[stage]
        tries = 0  # a resumed job gets a fresh retry budget: the user may have fixed the cause
        while True:
            tries += 1
            attempt = context.attempts.get(stage, 0) + 1
            context.attempts[stage] = attempt
            context.current_stage = stage
            _crash_point("before_stage", stage)
            self.bus.emit(StageStart(stage=stage, attempt=attempt))
            started = time.time()
            try:
                if (context.spec.get("budget") or {}).get("cost") is not None:
                    from tools.runtimes.ledger import check_budget

                    check_budget(self.store, context, stage)  # BudgetExceeded: stop here, state kept
                result = dict(agent.run(context.snapshot()))
                summary = str(result.pop("summary", ""))
                context.merge(result)
            except KeyboardInterrupt:
                ended = time.time()
                self._save(context, StageAttempt(job_id=context.job_id, stage=stage, attempt=attempt,
                                                 status="interrupted", started_at=started, ended_at=ended,
                                                 duration=ended - started))
                raise
            except Exception as error:  # every failure is recorded; classify() decides what happens
                ended = time.time()
                kind = classify(error)
                message = describe(error)
                context.errors.append({"stage": stage, "attempt": attempt, "error_type": type(error).__name__,
                                       "message": message, "time": ended})
                if kind.feed_back and policy.feed_errors:
                    context.error_feedback.setdefault(stage, []).append(message)
                final = not kind.retryable or tries >= policy.attempts
                if final:
                    context.status = "failed"
                    context.failure = {"stage": stage, "attempt": attempt, "error": message,
                                       "error_type": type(error).__name__}
                _crash_point("before_checkpoint", stage)
                self._save(context, StageAttempt(job_id=context.job_id, stage=stage, attempt=attempt,
                                                 status="failed", started_at=started, ended_at=ended,
                                                 duration=ended - started, error_type=type(error).__name__,
                                                 error_message=message))
                self.bus.emit(StageFailed(stage=stage, attempt=attempt, error=message,
                                          error_type=type(error).__name__, final=final))
                if final:
                    return False
                delay = policy.delay(tries, self.rng)
                self.bus.emit(StageRetry(stage=stage, next_attempt=attempt + 1, delay=delay, error=message))
                self.sleep(delay)
                continue
            ended = time.time()
            context.stage_results[stage] = {"status": "done", "attempt": attempt, "duration": ended - started,
                                            "summary": summary, "finished_at": ended}
            _crash_point("before_checkpoint", stage)
            self._save(context, StageAttempt(job_id=context.job_id, stage=stage, attempt=attempt, status="done",
                                             started_at=started, ended_at=ended, duration=ended - started))
            _crash_point("after_checkpoint", stage)
            self.bus.emit(StageEnd(stage=stage, attempt=attempt, duration=ended - started, summary=summary))
            return True

    def _save(self, context: JobContext, attempt: Any) -> None:
        context.updated_at = time.time()
        self.store.checkpoint(
            context.job_id,
            context_json=context.to_json(),
            status=context.status,
            task_type=context.task_type,
            current_stage=context.current_stage,
            failure_reason=context.failure.get("error"),
            attempt=attempt,
        )
