"""The job store: SQLite through sqlmodel, schema owned by the alembic migrations in ``migrations/``.

One row per job holds the whole JobContext as JSON; an append-only log keeps every stage attempt
and every event. A checkpoint (context + attempt row) is one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import event as sa_event
from sqlmodel import Field, Session, SQLModel, create_engine, select

from orchestrator.errors import UsageError


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    id: str = Field(primary_key=True)
    status: str = "pending"
    task_type: Optional[str] = None
    current_stage: Optional[str] = None
    created_at: float = 0.0
    updated_at: float = 0.0
    context_json: str = "{}"
    failure_reason: Optional[str] = None


class StageAttempt(SQLModel, table=True):
    __tablename__ = "stage_attempts"

    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True)
    stage: str
    attempt: int
    status: str  # done | failed | skipped | interrupted
    started_at: float
    ended_at: float
    duration: float
    error_type: Optional[str] = None
    error_message: Optional[str] = None


class EventRow(SQLModel, table=True):
    __tablename__ = "events"

    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True)
    time: float
    type: str
    stage: Optional[str] = None
    payload_json: str = "{}"


class RuntimeRun(SQLModel, table=True):
    """One remote submission, written the moment it is accepted (migration 0004 says why)."""

    __tablename__ = "runtime_runs"

    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True)
    stage: str
    attempt: int
    runtime: str  # kaggle | modal | hub
    name: str = Field(unique=True)  # deterministic from job id + stage + attempt
    remote_id: Optional[str] = None  # the runtime's own id: kernel ref, function call id, commit oid
    status: str = "submitted"  # submitted | running | done | failed | cancelled
    gpu: Optional[str] = None
    gpu_count: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    seconds: float = 0.0  # wall time the runtime ran it
    cost_usd: float = 0.0  # the runtime's price for those seconds (an estimate)
    detail_json: str = "{}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def migrate(engine: Any, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with alembic, on a connection we pass in."""
    from alembic import command
    from alembic.config import Config

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


class Store:
    """All reads and writes of jobs, attempts and events."""

    def __init__(self, path: Path, *, upgrade: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.engine = create_engine(
            f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 10}
        )
        sa_event.listen(self.engine, "connect", _sqlite_pragmas)
        if upgrade:
            migrate(self.engine)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    # -- jobs --------------------------------------------------------------------------------
    def create_job(self, job_id: str, context_json: str, task_type: str | None = None) -> None:
        now = time.time()
        with self._session() as s:
            if s.get(Job, job_id) is not None:
                raise UsageError(
                    f"A job named '{job_id}' already exists; pick another --job-id or run "
                    f"'mltrainer resume {job_id}'."
                )
            s.add(Job(id=job_id, task_type=task_type, created_at=now, updated_at=now, context_json=context_json))
            s.commit()

    def get_job(self, job_id: str) -> Job | None:
        with self._session() as s:
            return s.get(Job, job_id)

    def require_job(self, job_id: str) -> Job:
        job = self.get_job(job_id)
        if job is None:
            raise UsageError(f"There is no job named '{job_id}'; 'mltrainer jobs' lists the jobs.")
        return job

    def list_jobs(self) -> list[Job]:
        with self._session() as s:
            return list(s.exec(select(Job).order_by(Job.created_at.desc())))  # type: ignore[attr-defined]

    def checkpoint(
        self,
        job_id: str,
        *,
        context_json: str,
        status: str,
        task_type: str | None,
        current_stage: str | None,
        failure_reason: str | None = None,
        attempt: StageAttempt | None = None,
    ) -> None:
        """Save the context and (optionally) the attempt that produced it, atomically."""
        with self._session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise UsageError(f"There is no job named '{job_id}'.")
            job.context_json = context_json
            job.status = status
            job.task_type = task_type
            job.current_stage = current_stage
            job.failure_reason = failure_reason
            job.updated_at = time.time()
            s.add(job)
            if attempt is not None:
                s.add(attempt)
            s.commit()

    # -- logs --------------------------------------------------------------------------------
    def attempts(self, job_id: str) -> list[StageAttempt]:
        with self._session() as s:
            q = select(StageAttempt).where(StageAttempt.job_id == job_id).order_by(StageAttempt.id)  # type: ignore[arg-type]
            return list(s.exec(q))

    def append_event(self, job_id: str, payload: dict[str, Any]) -> None:
        with self._session() as s:
            s.add(
                EventRow(
                    job_id=job_id,
                    time=float(payload.get("time", time.time())),
                    type=str(payload.get("type")),
                    stage=payload.get("stage"),
                    payload_json=json.dumps(payload, default=str),
                )
            )
            s.commit()

    def events(self, job_id: str) -> list[dict[str, Any]]:
        with self._session() as s:
            q = select(EventRow).where(EventRow.job_id == job_id).order_by(EventRow.id)  # type: ignore[arg-type]
            return [json.loads(r.payload_json) for r in s.exec(q)]

    # -- remote submissions (runtime_runs) ----------------------------------------------------
    def record_run(self, run: RuntimeRun) -> RuntimeRun:
        """Save a submission the moment the runtime accepted it: committed (in the WAL, safe from a
        killed process) when this returns."""
        now = time.time()
        run.created_at = run.created_at or now
        run.updated_at = now
        with self._session() as s:
            s.add(run)
            s.commit()
            s.refresh(run)
        return run

    def find_run(self, name: str) -> RuntimeRun | None:
        with self._session() as s:
            return s.exec(select(RuntimeRun).where(RuntimeRun.name == name)).first()

    def update_run(self, name: str, **values: Any) -> RuntimeRun:
        """Change fields of a submission (status, seconds, cost…); ``detail`` merges into detail_json."""
        with self._session() as s:
            run = s.exec(select(RuntimeRun).where(RuntimeRun.name == name)).first()
            if run is None:
                raise UsageError(f"There is no runtime submission named '{name}'.")
            detail = values.pop("detail", None)
            if detail:
                run.detail_json = json.dumps({**json.loads(run.detail_json or "{}"), **detail}, default=str)
            for key, value in values.items():
                setattr(run, key, value)
            run.updated_at = time.time()
            s.add(run)
            s.commit()
            s.refresh(run)
            return run

    def runs(self, job_id: str) -> list[RuntimeRun]:
        with self._session() as s:
            q = select(RuntimeRun).where(RuntimeRun.job_id == job_id).order_by(RuntimeRun.id)  # type: ignore[arg-type]
            return list(s.exec(q))

    def integrity_check(self) -> str:
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA integrity_check").scalar())

    def close(self) -> None:
        self.engine.dispose()
