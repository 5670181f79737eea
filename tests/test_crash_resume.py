"""SIGKILL the real CLI at points inside the pipeline; `mltrainer resume` must finish each job
with no completed stage run twice and an intact database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from orchestrator.plan import STAGES
from tests.conftest import MLTRAINER, cli_env, make_classification_frame, write_spec

CRASH_POINTS = [
    "after_checkpoint:dataset",  # a stage finished and was saved
    "before_checkpoint:preprocessing",  # a stage finished but its result was never saved
    "before_checkpoint:training",  # the model is trained, the checkpoint not written
    "after_checkpoint:codegen",
    "before_stage:export",
]


def _attempts(db: Path, job_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select stage, status from stage_attempts where job_id=? order by id", (job_id,)).fetchall()


def _events(db: Path, job_id: str) -> list[dict]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select payload_json from events where job_id=? order by id", (job_id,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def _check_finished(home: Path, job_id: str) -> list[dict]:
    db = home / "mltrainer.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        status = conn.execute("select status from jobs where id=?", (job_id,)).fetchone()[0]
    assert status == "done"
    done = [stage for stage, state in _attempts(db, job_id) if state == "done"]
    assert sorted(done) == sorted(s for s in STAGES if s != "deploy"), done  # each completed exactly once
    return _events(db, job_id)


def _started_after_resume(events: list[dict]) -> list[str]:
    starts = [i for i, e in enumerate(events) if e["type"] == "pipeline_start"]
    assert len(starts) == 2, "expected the first run and one resume"
    return [e["stage"] for e in events[starts[1]:] if e["type"] == "stage_start"]


@pytest.fixture()
def job_spec(tmp_path: Path) -> Path:
    make_classification_frame(300).to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, hyper={"epochs": 4, "patience": 4, "gbdt_rounds": 20})


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_then_resume(tmp_path: Path, job_spec: Path, point: str) -> None:
    home = tmp_path / "home"
    crashed = subprocess.run([*MLTRAINER, "run", str(job_spec), "--job-id", "j", "--json"],
                             env=cli_env(home, MLTRAINER_CRASH_AT=point), capture_output=True, text=True, timeout=300)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = subprocess.run([*MLTRAINER, "resume", "j", "--json"], env=cli_env(home),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    events = _check_finished(home, "j")
    kind, stage = point.split(":")
    rerun = _started_after_resume(events)
    first = rerun[0]
    if kind == "after_checkpoint":
        assert first == STAGES[STAGES.index(stage) + 1]  # the saved stage is not run again
    else:
        assert first == stage  # the unsaved stage runs again, and nothing before it
    assert all(STAGES.index(s) >= STAGES.index(first) for s in rerun)


def test_sigkill_during_training_resumes_from_the_epoch_checkpoint(tmp_path: Path) -> None:
    make_classification_frame(1500, seed=3).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, hyper={"epochs": 12, "patience": 12, "gbdt_rounds": 20, "batch_size": 16, "hidden": 256})
    home = tmp_path / "home"
    proc = subprocess.Popen([*MLTRAINER, "run", str(spec), "--job-id", "t", "--json"], env=cli_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = home / "jobs" / "t" / "run" / "out" / "checkpoint.json"
    deadline = time.monotonic() + 240
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            state = json.loads(checkpoint.read_text())
        except (OSError, ValueError):
            state = {}
        epoch = state.get("candidates", {}).get("mlp", {}).get("epoch", 0)
        if epoch >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = epoch
            break
        time.sleep(0.05)  # polling a real child process, not a test delay
    proc.wait(timeout=30)
    assert killed_at is not None, "training finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)  # let the trainer notice its parent died (PDEATHSIG) before resuming
    resumed = subprocess.run([*MLTRAINER, "resume", "t", "--json"], env=cli_env(home), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    events = _check_finished(home, "t")
    assert _started_after_resume(events)[0] == "training"
    after = events[[i for i, e in enumerate(events) if e["type"] == "pipeline_start"][1]:]
    metrics = [e for e in after if e["type"] == "training_metric"]
    assert metrics and all(m["model"] == "mlp" for m in metrics), "the finished GBDT must not be retrained"
    assert min(m["epoch"] for m in metrics) > killed_at - 1 >= 1  # continued, did not restart at epoch 1


def test_ctrl_c_during_training_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    make_classification_frame(1500, seed=4).to_csv(tmp_path / "data.csv", index=False)
    # no auto-stop and a long patience: the MLP is still training when the signal comes, even on a busy machine
    spec = write_spec(tmp_path, hyper={"epochs": 30, "patience": 30, "gbdt_rounds": 20, "batch_size": 16},
                      extra="monitor:\n  auto_stop: false\n")
    home = tmp_path / "home"
    # Ctrl-C as a terminal sends it: SIGINT handled the default way, even when this test itself runs as a
    # background job (a non-interactive shell starts those with SIGINT ignored, and children inherit that)
    proc = subprocess.Popen([*MLTRAINER, "run", str(spec), "--job-id", "c"], env=cli_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    chunks: list[str] = []  # drained while polling, so the child never blocks on a full pipe
    reader = threading.Thread(target=lambda: chunks.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    checkpoint = home / "jobs" / "c" / "run" / "out" / "checkpoint.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(checkpoint.read_text()).get("candidates", {}).get("mlp", {}).get("epoch", 0) >= 1:
                proc.send_signal(signal.SIGINT)
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    output = "".join(chunks)
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    assert "mltrainer resume c" in output
    with sqlite3.connect(home / "mltrainer.db") as conn:
        assert conn.execute("select status from jobs where id='c'").fetchone()[0] == "interrupted"
    resumed = subprocess.run([*MLTRAINER, "resume", "c", "--json"], env=cli_env(home), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    _check_finished(home, "c")


def test_sigkill_during_language_model_training_continues_the_epoch_counter(tmp_path: Path) -> None:
    """The same guarantee for a torch family other than tabular: the resumed run starts past epoch 1."""
    from tests.conftest import REPO

    (tmp_path / "corpus.txt").write_text((REPO / "examples" / "data" / "corpus.txt").read_text())
    (tmp_path / "spec.yaml").write_text(
        "task: write like this corpus\ntask_type: text_generation\ndata:\n  source: corpus.txt\n"
        "hyperparameters: {block_size: 32, d_model: 32, n_heads: 2, layers: 1, epochs: 40, patience: 40}\n")
    home = tmp_path / "home"
    proc = subprocess.Popen([*MLTRAINER, "run", str(tmp_path / "spec.yaml"), "--job-id", "lm", "--json"],
                            env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed_at = None
    assert proc.stdout is not None
    for line in proc.stdout:  # events arrive as they happen; kill once epoch 3 is reported
        event = json.loads(line)
        if event["type"] == "training_metric" and event["split"] == "val" and event["epoch"] >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = event["epoch"]
            break
    proc.wait(timeout=30)
    assert killed_at is not None, "training finished before it could be killed"
    time.sleep(0.5)  # let the trainer notice its parent died (PDEATHSIG) before resuming
    resumed = subprocess.run([*MLTRAINER, "resume", "lm", "--json"], env=cli_env(home), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    events = _check_finished(home, "lm")
    after = events[[i for i, e in enumerate(events) if e["type"] == "pipeline_start"][1]:]
    epochs = [e["epoch"] for e in after if e["type"] == "training_metric"]
    assert epochs and min(epochs) >= killed_at > 1  # continued from its checkpoint, not from epoch 1
