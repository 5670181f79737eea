"""The Kaggle runtime against a loopback fake that really runs the pushed kernel: data uploaded once
as a private dataset, the kernel pushed without secrets, metrics streamed, outputs fetched, and a
job SIGKILLed right after the push reattaches on resume instead of pushing again."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from orchestrator.retry import POLICIES
from tests.conftest import MLTRAINER, cli_env, make_classification_frame, write_spec
from tests.fakes.kaggle_kernel_server import FakeKaggleKernels, fake_kaggle_kernels
from tools.runtimes import FACTORIES
from tools.runtimes.base import TrainingRun
from tools.runtimes.kaggle import KaggleRuntime, pack_data, parse_log

runner = CliRunner()
USER, KEY = "alice", "0123456789abcdef0123456789abcdef"
HYPER = {"epochs": 3, "patience": 3, "gbdt_rounds": 15}


def kaggle_spec(tmp_path: Path, extra: str = "") -> Path:
    make_classification_frame(240).to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, hyper=HYPER, extra="runtime: kaggle\nruntime_options: {gpu: T4}\n" + extra)


def rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_parse_log_splits_streams_and_joins_chunks() -> None:
    log = json.dumps([{"stream_name": "stdout", "data": "METRIC {\"epoch\""}, {"stream_name": "stderr", "data": "warn\n"},
                      {"stream_name": "stdout", "data": ": 1}\nlast"}])
    assert parse_log(log) == [("stderr", "warn"), ("stdout", 'METRIC {"epoch": 1}'), ("stdout", "last")]
    assert parse_log("plain\ntext") == [("stdout", "plain"), ("stdout", "text")]
    assert parse_log(None) == []


def test_kernel_metadata_attaches_kaggle_data_and_picks_the_accelerator(tmp_path: Path) -> None:
    from tools.runtimes.kaggle import kernel_metadata, kernel_source

    run = TrainingRun(job_id="j", stage="training", attempt=2, script=tmp_path / "train.py", data_dir=tmp_path,
                      out_dir=tmp_path / "out", args=("--resume",), gpu="P100", timeout=5400,
                      source="kaggle://acme/churn/train.csv")
    meta = kernel_metadata(run, USER, "mltrainer-j-training-2", f"{USER}/mltrainer-data-ab")
    assert meta["dataset_sources"] == [f"{USER}/mltrainer-data-ab", "acme/churn"]  # the raw data, attached
    assert (meta["machine_shape"], meta["enable_gpu"], meta["is_private"], meta["session_timeout_seconds"]) == \
        ("NvidiaTeslaP100", True, True, 5400)
    cpu = kernel_metadata(TrainingRun(**{**run.__dict__, "gpu": "none", "source": "kaggle://c/titanic"}), USER, "k", "d")
    assert cpu["enable_gpu"] is False and cpu["machine_shape"] is None and cpu["competition_sources"] == ["titanic"]
    source = kernel_source(run, "alice/d", "print('hi')\n")
    compile(source, "kernel.py", "exec")  # the bootstrap is valid Python with the script and args inside
    assert "print('hi')" in source and "['--resume']" in source


def test_data_archive_is_reproducible_and_uploaded_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "meta.json").write_text("{}")
    (data / "sub" / "x.npy").write_bytes(b"\x00" * 10)
    first, second = pack_data(data, tmp_path / "a.tar"), pack_data(data, tmp_path / "b.tar")
    assert first == second  # same data, same bytes: the dataset name (from the hash) is stable
    sleeps: list[float] = []
    run = TrainingRun(job_id="j", stage="training", attempt=1, script=tmp_path / "train.py", data_dir=data,
                      out_dir=tmp_path / "run" / "out")
    with fake_kaggle_kernels(tmp_path) as fake:
        fake.add_legacy_key(USER, KEY)
        fake.dataset_states = ["BLOBS_RECEIVED"]  # not ready at the first look
        runtime = KaggleRuntime(credentials={"kaggle_username": USER, "kaggle_key": KEY}, endpoint=fake.url,
                                sleep=sleeps.append)
        ref = runtime.upload_data(run)
        assert runtime.upload_data(run) == ref
    creates = [r for r in fake.requests if r["path"].endswith("/CreateDataset")]
    assert len(creates) == 1 and creates[0]["body"]["isPrivate"] is True
    assert ref == f"{USER}/mltrainer-data-{first[:16]}"
    assert sleeps == [15.0]


def test_a_kaggle_job_runs_end_to_end(tmp_path: Path, sealed_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_leaks import assert_no_leaks, planted_text, sinks

    spec = kaggle_spec(tmp_path)
    spec.write_text(spec.read_text().replace("task: predict whether the label is yes",
                                             "task: " + json.dumps("predict whether the label is yes. " + planted_text())))
    sleeps: list[float] = []
    with fake_kaggle_kernels(tmp_path) as fake:
        fake.add_token("KGAT_" + "a1b2c3d4e5" * 3, USER)  # a token only: the user name comes from the API
        fake.status_script = ["QUEUED", "RUNNING"]
        monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_" + "a1b2c3d4e5" * 3)
        monkeypatch.setattr("tools.runtimes.FACTORIES", {
            **FACTORIES, "kaggle": lambda context: KaggleRuntime(credentials={}, endpoint=fake.url, sleep=sleeps.append)})
        result = runner.invoke(app, ["run", str(spec), "--job-id", "kg", "--json"])
        shown = runner.invoke(app, ["show", "kg", "--json"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    metrics = [e for e in events if e["type"] == "training_metric"]
    assert metrics and {m["model"] for m in metrics} >= {"mlp"}  # the kernel's METRIC lines reached the observer
    assert events[-1]["type"] == "pipeline_end" and events[-1]["status"] == "done"
    out = sealed_home / "jobs" / "kg" / "run" / "out"
    assert (out / "model.safetensors").exists() and json.loads((out / "metrics.json").read_text())["best_model"]
    assert (sealed_home / "jobs" / "kg" / "export" / "predict.py").exists()

    assert len(fake.saves) == 1
    save = fake.saves[0]
    assert save["slug"].startswith(f"{USER}/mltrainer-kg-training-1")
    assert (save["enableGpu"], save.get("machineShape"), save["isPrivate"], save["enableInternet"]) == \
        (True, "NvidiaTeslaT4", True, False)
    assert save["datasetDataSources"][0].startswith(f"{USER}/mltrainer-data-")
    assert sleeps == [15.0, 22.5]  # backoff while QUEUED and RUNNING; no real sleep
    pushed = json.dumps(fake.saves) + "".join(p.read_text() for p in (out.parent / "kaggle").rglob("*") if
                                               p.suffix in (".py", ".json"))
    assert "KGAT_" not in pushed and "a1b2c3d4e5" not in pushed  # no credential in the kernel or its metadata
    uploaded = [f.decode("latin-1") for d in fake.datasets.values() for f in d["files"].values()]
    assert_no_leaks(sinks(sealed_home, result.output, pushed, *uploaded))  # nor a secret planted in the task

    db = sealed_home / "mltrainer.db"
    [(runtime, status, remote_id, gpu)] = rows(db, "select runtime, status, remote_id, gpu from runtime_runs where job_id='kg'")
    assert (runtime, status, gpu) == ("kaggle", "done", "T4") and remote_id == save["slug"]
    ledger = json.loads(shown.output)["ledger"]
    assert ledger["runs"][0]["remote_id"] == remote_id and ledger["total_cost"] == 0.0  # Kaggle's GPUs are free
    [(context_json,)] = rows(db, "select context_json from jobs where id='kg'")
    context = json.loads(context_json)
    assert (context["runtime"], context["runtime_job_id"]) == ("kaggle", remote_id)  # in the job's context too


def test_sigkill_right_after_the_push_reattaches_on_resume(tmp_path: Path) -> None:
    spec = kaggle_spec(tmp_path)
    home = tmp_path / "home"
    with fake_kaggle_kernels(tmp_path) as fake:
        fake.add_legacy_key(USER, KEY)
        env = dict(MLTRAINER_KAGGLE_ENDPOINT=fake.url, KAGGLE_USERNAME=USER, KAGGLE_KEY=KEY)
        crashed = subprocess.run([*MLTRAINER, "run", str(spec), "--job-id", "kc", "--json"], capture_output=True,
                                 text=True, timeout=300, env=cli_env(home, MLTRAINER_CRASH_AT="after_submit:training", **env))
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
        assert len(fake.saves) == 1
        resumed = subprocess.run([*MLTRAINER, "resume", "kc", "--json"], capture_output=True, text=True, timeout=300,
                                 env=cli_env(home, **env))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert len(fake.saves) == 1, "the resumed job must reattach, not push the kernel again"
    assert sum(r["path"].endswith("/CreateDataset") for r in fake.requests) == 1
    assert "reattaching to kaggle run" in resumed.stdout
    db = home / "mltrainer.db"
    assert rows(db, "select status from jobs where id='kc'") == [("done",)]
    assert rows(db, "select count(*), min(status) from runtime_runs where job_id='kc'") == [(1, "done")]


def test_a_failing_kernel_fails_the_stage_with_its_error(tmp_path: Path, sealed_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    make_classification_frame(120).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, hyper=HYPER, extra="runtime: kaggle\n")
    with fake_kaggle_kernels(tmp_path) as fake:
        fake.add_legacy_key(USER, KEY)
        original = FakeKaggleKernels.run_kernel

        def broken(self: FakeKaggleKernels, kernel: object) -> None:
            kernel.request["text"] = "import sys\nprint('Traceback: CUDA error: device-side assert', file=sys.stderr)\nsys.exit(3)\n"  # type: ignore[attr-defined]
            original(self, kernel)  # type: ignore[arg-type]

        monkeypatch.setattr(FakeKaggleKernels, "run_kernel", broken)
        monkeypatch.setattr("tools.runtimes.FACTORIES", {**FACTORIES, "kaggle": lambda context: KaggleRuntime(
            credentials={"kaggle_username": USER, "kaggle_key": KEY}, endpoint=fake.url, sleep=lambda s: None)})
        monkeypatch.setitem(POLICIES, "training", replace(POLICIES["training"], base_delay=0.0))  # no real wait
        result = runner.invoke(app, ["run", str(spec), "--job-id", "kf", "--json"])
    assert result.exit_code == 1
    end = json.loads(result.output.strip().splitlines()[-1])
    assert end["status"] == "failed" and "device-side assert" in end["reason"]
    assert len(fake.saves) == 2  # the retry is a new attempt, so a new, differently named kernel
    assert fake.saves[0]["slug"] != fake.saves[1]["slug"]
