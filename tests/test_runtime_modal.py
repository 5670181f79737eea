"""The Modal runtime through its interface: the app definition builds offline, the real ``train``
function runs via ``.local()`` behind a fake of the client surface, metrics stream from the Volume's
log files, outputs come back, a crash right after the spawn reattaches, and budget.cost stops a job
before a run that could pass it (and ``resume --budget-cost`` carries on)."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mltrainer import settings
from mltrainer.app import app
from mltrainer.store import Store
from orchestrator.context import JobContext
from orchestrator.errors import BudgetExceeded
from tests.conftest import REPO, make_classification_frame, write_spec
from tests.fakes.modal_client import FakeModalClient
from tools.runtimes import FACTORIES, launch_training
from tools.runtimes.modal_app import VOLUME_ROOT, AppSpec, build_app, script_requirements
from tools.runtimes.modal_runtime import ModalRuntime

runner = CliRunner()

TOY_SCRIPT = textwrap.dedent('''
    import argparse, json, pathlib, sys
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir"); p.add_argument("--out-dir"); p.add_argument("--resume", action="store_true")
    a = p.parse_args()
    rows = json.loads((pathlib.Path(a.data_dir) / "meta.json").read_text())["rows"]
    for epoch in (1, 2):
        print("METRIC " + json.dumps({"model": "toy", "epoch": epoch, "total_epochs": 2, "loss": 1.0 / epoch}))
    print("a warning", file=sys.stderr)
    out = pathlib.Path(a.out_dir); (out / "sub").mkdir(parents=True, exist_ok=True)
    (out / "model.json").write_text(json.dumps({"rows": rows})); (out / "sub" / "w.bin").write_bytes(b"w")
''')


def toy_job(tmp_path: Path, **spec: object) -> tuple[JobContext, list[str], Store]:
    """A job row in the store and a toy script + data folder, without running the pipeline."""
    job_dir = settings.job_dir("toy")
    (job_dir / "run").mkdir(parents=True)
    (job_dir / "data").mkdir()
    (job_dir / "data" / "meta.json").write_text(json.dumps({"rows": 7}))
    script = job_dir / "run" / "train.py"
    script.write_text(TOY_SCRIPT)
    context = JobContext(job_id="toy", job_dir=str(job_dir), attempts={"training": 1},
                         spec={"runtime": "modal", "data": {"source": "x.csv"}, **spec})
    store = Store(settings.db_path())
    store.create_job("toy", context.to_json())
    cmd = ["python", str(script), "--data-dir", str(job_dir / "data"), "--out-dir", str(job_dir / "run" / "out")]
    return context, cmd, store


def test_spec_runtime_options_and_cost_budget(tmp_path: Path) -> None:
    from mltrainer.spec import load_spec
    from orchestrator.errors import SpecError

    path = tmp_path / "spec.yaml"
    path.write_text("task: x\ndata: {source: d.csv}\nruntime: modal\nruntime_options: {gpu: H100, gpu_count: 2, "
                    "timeout: 2h}\nbudget: {cost: $7.50}\n")
    spec, _ = load_spec(path)
    assert (spec.runtime_options.gpu, spec.runtime_options.gpu_count, spec.runtime_options.timeout) == ("H100", 2, 7200.0)
    assert spec.budget.cost == 7.5
    path.write_text("task: x\ndata: {source: d.csv}\nruntime: kaggle\nruntime_options: {gpu: H100}\n")
    with pytest.raises(SpecError, match="'H100' is not offered by kaggle; choose one of T4, P100, none"):
        load_spec(path)
    path.write_text("task: x\ndata: {source: d.csv}\nruntime: colab\n")
    with pytest.raises(SpecError, match="runtime 'colab' is not available; use one of local, kaggle, modal"):
        load_spec(path)


def test_the_app_definition_builds_offline() -> None:
    script = (REPO / "tools" / "templates" / "tabular" / "train.py.j2").read_text()
    imports = "\n".join(line for line in script.splitlines() if line.startswith(("import ", "from ")))
    requirements = script_requirements(imports)
    assert any(r.startswith("torch==") and "+" not in r for r in requirements)  # PyPI's CUDA build, same version
    assert any(r.startswith("numpy==") for r in requirements) and any(r.startswith("safetensors") for r in requirements)
    built = build_app(AppSpec(app_name="mltrainer-j", volume_name="mltrainer-j", gpu="A100", gpu_count=2,
                              timeout=5400, requirements=requirements))
    assert built.app.name == "mltrainer-j"
    assert built.function._spec_.gpus == "A100:2"
    assert list(built.function._spec_.volumes) == [VOLUME_ROOT]
    cpu = build_app(AppSpec("a", "v", gpu="none", gpu_count=1, timeout=10, requirements=()))
    assert cpu.function._spec_.gpus is None


def test_a_run_streams_metrics_and_fetches_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context, cmd, store = toy_job(tmp_path, runtime_options={"gpu": "H100"})
    fake = FakeModalClient(tmp_path / "modal", running_polls=2)
    sleeps: list[float] = []
    lines: list[str] = []
    monkeypatch.setitem(FACTORIES, "modal", lambda ctx: ModalRuntime(client=fake, sleep=sleeps.append))
    result = launch_training(context, cmd, cwd=tmp_path, timeout=600, on_line=lines.append, store=store)
    assert result.returncode == 0 and result.stderr_tail == ["a warning"]
    assert [l for l in lines if l.startswith("METRIC")] == [l for l in result.stdout_tail if l.startswith("METRIC")]
    assert len([l for l in lines if l.startswith("METRIC")]) == 2  # each line once, though read at every poll
    out = Path(context.job_dir) / "run" / "out"
    assert json.loads((out / "model.json").read_text()) == {"rows": 7} and (out / "sub" / "w.bin").read_bytes() == b"w"
    [spawn] = fake.spawned
    assert spawn["spec"].gpu == "H100" and spawn["run_dir"] == "mltrainer-toy-training-1" and spawn["spec"].timeout == 600
    assert sleeps == [5.0, 7.5]
    [run] = store.runs("toy")
    assert (run.runtime, run.status, run.remote_id, run.gpu) == ("modal", "done", "fc-0001", "H100")
    assert run.cost_usd > 0  # an H100 is not free
    store.close()


def test_a_crash_after_the_spawn_reattaches_instead_of_spawning_again(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    context, cmd, store = toy_job(tmp_path)
    fake = FakeModalClient(tmp_path / "modal")

    class Killed(BaseException):
        pass

    def crash(point: str, stage: str) -> None:
        if point == "after_submit":
            raise Killed  # stands in for the SIGKILL of MLTRAINER_CRASH_AT=after_submit:training
    monkeypatch.setattr("tools.runtimes.base.crash_point", crash)
    monkeypatch.setitem(FACTORIES, "modal", lambda ctx: ModalRuntime(client=fake, sleep=lambda s: None))
    with pytest.raises(Killed):
        launch_training(context, cmd, cwd=tmp_path, timeout=600, on_line=lambda l: None, store=store)
    assert [r.status for r in store.runs("toy")] == ["submitted"]  # recorded before the first poll
    logs: list[str] = []
    result = launch_training(context, cmd, cwd=tmp_path, timeout=600, on_line=lambda l: None, store=store,
                             log=logs.append)
    assert result.returncode == 0 and len(fake.spawned) == 1
    assert any("reattaching to modal run fc-0001" in m for m in logs)
    assert [r.status for r in store.runs("toy")] == ["done"]
    store.close()


def test_budget_cost_refuses_a_run_that_could_pass_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context, cmd, store = toy_job(tmp_path, budget={"cost": 0.05})
    fake = FakeModalClient(tmp_path / "modal")
    monkeypatch.setitem(FACTORIES, "modal", lambda ctx: ModalRuntime(client=fake, sleep=lambda s: None))
    with pytest.raises(BudgetExceeded, match=r"may cost up to \$0\.69 .* passes the \$0\.05 budget\.cost"):
        launch_training(context, cmd, cwd=tmp_path, timeout=3600, on_line=lambda l: None, store=store)
    assert fake.spawned == [] and store.runs("toy") == []
    store.close()


def test_a_job_stopped_by_its_budget_resumes_with_a_higher_one(tmp_path: Path, sealed_home: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    make_classification_frame(160).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, hyper={"epochs": 2, "patience": 2, "gbdt_rounds": 10},
                      extra="runtime: modal\nbudget: {time: 60s, cost: $0.01}\n")
    fake = FakeModalClient(tmp_path / "modal")
    monkeypatch.setitem(FACTORIES, "modal", lambda ctx: ModalRuntime(client=fake, sleep=lambda s: None))
    stopped = runner.invoke(app, ["run", str(spec), "--job-id", "mb", "--json"])
    assert stopped.exit_code == 1 and fake.spawned == []
    end = json.loads(stopped.output.strip().splitlines()[-1])
    assert "budget.cost" in end["reason"] and "--budget-cost" in end["reason"]
    with sqlite3.connect(sealed_home / "mltrainer.db") as conn:
        assert conn.execute("select status, current_stage from jobs").fetchone() == ("failed", "training")
    resumed = runner.invoke(app, ["resume", "mb", "--json", "--budget-cost", "5"])
    assert resumed.exit_code == 0, resumed.output
    assert len(fake.spawned) == 1 and fake.spawned[0]["spec"].timeout == 210  # budget.time 60 s × 1.5 + 120
    events = [json.loads(l) for l in resumed.output.splitlines() if l.startswith("{")]
    assert any(e["type"] == "training_metric" for e in events)  # streamed from the Volume into the observer
    out = sealed_home / "jobs" / "mb" / "run" / "out"
    assert (out / "model.safetensors").exists() and (out / "metrics.json").exists()  # fetched back
    assert (sealed_home / "jobs" / "mb" / "export" / "predict.py").exists()
    shown = json.loads(runner.invoke(app, ["show", "mb", "--json"]).output)
    assert shown["ledger"]["runs"][0]["gpu"] == "T4" and 0 < shown["ledger"]["total_cost"] < 5
