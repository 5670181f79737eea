"""The store: migrations from empty and from the first schema, pragmas, atomic checkpoints."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from mltrainer import settings
from mltrainer.store import StageAttempt, Store, migrate


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}


def test_migrates_an_empty_database_to_head(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    assert {"jobs", "stage_attempts", "events", "runtime_runs", "alembic_version"} <= tables(store.path)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("select version_num from alembic_version").fetchone()[0] == "0004"
        columns = {r[1] for r in conn.execute("pragma table_info(jobs)")}
    assert "failure_reason" in columns
    assert store.integrity_check() == "ok"


def test_upgrades_from_the_first_schema_keeping_jobs(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine, "0001")
    engine.dispose()
    assert "events" not in tables(path)
    with sqlite3.connect(path) as conn:
        conn.execute("insert into jobs (id, status, created_at, updated_at, context_json) values ('old', 'done', 1, 2, '{\"job_id\": \"old\"}')")
    store = Store(path)
    job = store.require_job("old")
    assert job.status == "done" and job.failure_reason is None
    store.append_event("old", {"type": "pipeline_start", "time": 3.0})
    assert store.events("old") == [{"type": "pipeline_start", "time": 3.0}]
    assert "runtime_runs" in tables(path) and store.runs("old") == []


def test_runtime_runs_are_unique_by_name_and_updatable(tmp_path: Path) -> None:
    from mltrainer.store import RuntimeRun

    store = Store(tmp_path / "db.sqlite")
    store.create_job("a", "{}")
    store.record_run(RuntimeRun(job_id="a", stage="training", attempt=1, runtime="modal", name="n1", remote_id="fc-1"))
    with pytest.raises(Exception):  # the same submission name twice: the second is refused
        store.record_run(RuntimeRun(job_id="a", stage="training", attempt=1, runtime="modal", name="n1"))
    store.update_run("n1", status="done", seconds=90.0, detail={"files": 3})
    store.update_run("n1", detail={"message": "ok"})
    [run] = store.runs("a")
    assert (run.status, run.seconds, run.remote_id) == ("done", 90.0, "fc-1")
    assert json.loads(run.detail_json) == {"files": 3, "message": "ok"}
    assert store.find_run("n1") is not None and store.find_run("n2") is None


def test_pragmas(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("pragma foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("pragma busy_timeout").scalar() == 10000


def test_checkpoint_is_one_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.create_job("a", '{"v": 1}')
    broken = StageAttempt(job_id="no-such-job", stage="x", attempt=1, status="done",
                          started_at=0, ended_at=0, duration=0)  # violates the foreign key
    with pytest.raises(Exception):
        store.checkpoint("a", context_json='{"v": 2}', status="running", task_type=None,
                         current_stage="x", attempt=broken)
    assert store.require_job("a").context_json == '{"v": 1}'
    assert store.attempts("a") == []


def test_duplicate_job_id_is_a_usage_error(tmp_path: Path) -> None:
    from orchestrator.errors import UsageError

    store = Store(tmp_path / "db.sqlite")
    store.create_job("a", "{}")
    with pytest.raises(UsageError, match="already exists"):
        store.create_job("a", "{}")


def test_home_is_sealed_by_mltrainer_home(sealed_home: Path) -> None:
    assert settings.home() == sealed_home
    assert settings.db_path().parent == sealed_home
    assert settings.job_dir("x") == sealed_home / "jobs" / "x"
