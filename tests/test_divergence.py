"""The training stage acts on the observer: a diverging run is stopped at once and retried from
scratch with a lower learning rate (observer verdict or the template's own NaN watchdog alike);
a confirmed plateau stops the run through out_dir/STOP, which every template honours."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from agents.training import DIVERGED, TrainingAgent, lowered_lr
from mltrainer.app import app
from orchestrator.context import JobContext
from orchestrator.errors import TrainingError
from orchestrator.events import EventBus, TrainingAdvice, TrainingPhase
from orchestrator.retry import POLICIES
from tests.conftest import make_classification_frame, write_spec
from tools.process import run_streaming

runner = CliRunner()


def test_too_high_learning_rate_diverges_stops_and_the_retry_succeeds(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(POLICIES, "training", replace(POLICIES["training"], base_delay=0.0, jitter=0.0))
    make_classification_frame(400).to_csv(tmp_path / "data.csv", index=False)
    # AdamW at lr 1.0 on this MLP: the first epoch's val loss is ~10× the untrained model's
    spec = write_spec(tmp_path, hyper={"model": "mlp", "epochs": 6, "patience": 3, "lr": 1.0})
    result = runner.invoke(app, ["run", str(spec), "--job-id", "hot"])
    assert result.exit_code == 0, result.output
    assert "DIVERGING" in result.output and "retrying training (attempt 2)" in result.output

    detail = json.loads(runner.invoke(app, ["show", "hot", "--json"]).output)
    assert detail["status"] == "done"
    training = next(s for s in detail["stages"] if s["stage"] == "training")
    assert training["attempts"] == 2 and [a["status"] for a in training["attempt_log"]] == ["failed", "done"]
    [error] = detail["errors"]
    assert error["stage"] == "training" and error["message"].startswith(f"{DIVERGED} (mlp: the val loss is ")
    assert "untrained model's" in error["message"] and "restarts from scratch with lr 0.1 (×0.1)" in error["message"]
    assert "lr lowered to 0.1 after divergence" in training["note"] and detail["config"]["lr"] == pytest.approx(0.1)
    run_out = Path(detail["artifacts"]["run_dir"])
    assert json.loads((run_out / "checkpoint.json").read_text())["config"]["lr"] == pytest.approx(0.1)  # from scratch
    assert detail["test_metrics"]["accuracy"] > 0.65
    assert Path(detail["artifacts"]["training_curves"]).read_bytes().startswith(b"\x89PNG")
    watch = detail["training_watch"]
    assert watch["phases"].startswith("attempt 1: mlp diverging; attempt 2: mlp warmup")
    assert "val loss" in watch["curve"] and any(c in watch["curve"] for c in "▁▂▃▄▅▆▇█")

    text = runner.invoke(app, ["show", "hot"]).output
    flat = " ".join(text.split())
    assert "training attempt 1: Training diverged (mlp:" in flat and "phases: attempt 1: mlp diverging" in flat
    assert "curve: mlp val loss" in flat
    # the run's own log, read back by `mltrainer watch JOB_ID`: the retry's run, start to finish
    watched = runner.invoke(app, ["watch", "hot"])
    assert watched.exit_code == 0, watched.output
    lines = watched.output.splitlines()
    assert lines[0].startswith("[epoch 1] mlp WARMUP: First evaluation at epoch 1: val loss")
    assert "(metric_jsonl log:" in watched.output and "ETA" in watched.output
    assert lines[-1].startswith(("mlp: CONVERGED — Finished at epoch", "mlp: DONE — Finished at epoch"))


# -- the agent with stand-in scripts (fast, no data) --------------------------------------------
FAKE = '''
import argparse, json, math, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--data-dir"); p.add_argument("--out-dir"); p.add_argument("--resume", action="store_true")
p.add_argument("--lr", type=float, default={lr})
a = p.parse_args()
with open(os.path.join(a.out_dir, "calls.jsonl"), "a") as f:
    f.write(json.dumps(vars(a)) + "\\n")
MODE = {mode!r}
best, epochs = None, {epochs}
for e in range(1, epochs + 1):
    if MODE == "watchdog" and a.lr > 0.05 and e == 2:
        print("error: training diverged: the loss became nan at epoch 2, batch 3; lower --lr", file=sys.stderr)
        sys.exit(2)
    loss = {{"explode": [1.0, 0.8, 50.0], "flat": [1.0, 0.6, 0.45] + [0.4] * 100}}.get(MODE, [1.0 / e] * 200)[e - 1]
    print("METRIC " + json.dumps({{"model": "net", "epoch": e, "total_epochs": epochs, "split": "val", "loss": loss}}), flush=True)
    if MODE == "explode" and e == 3:
        time.sleep(60)  # a stuck, diverged run: the observer must not wait for it
    stop = os.path.join(a.out_dir, "STOP")
    if os.path.isfile(stop) and open(stop).read().strip() in ("", "net"):
        os.remove(stop)
        break
    time.sleep({pause})
json.dump({{"primary_metric": "loss", "best_val": 0.4, "best_model": "net", "epochs_run": e}},
          open(os.path.join(a.out_dir, "metrics.json"), "w"))
'''


def agent_context(tmp_path: Path, mode: str, *, lr: float = 0.5, epochs: int = 6, pause: float = 0.0,
                  spec: dict[str, Any] | None = None) -> JobContext:
    run = tmp_path / "job" / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "train.py").write_text(FAKE.format(lr=lr, mode=mode, epochs=epochs, pause=pause))
    (tmp_path / "data").mkdir(exist_ok=True)
    return JobContext(job_id="d", job_dir=str(tmp_path / "job"), training_script=str(run / "train.py"),
                      data_paths={"dir": str(tmp_path / "data")}, config={"lr": lr, "patience": 50}, spec=spec or {})


def calls(tmp_path: Path) -> list[dict]:
    return [json.loads(l) for l in (tmp_path / "job" / "run" / "out" / "calls.jsonl").read_text().splitlines()]


def test_the_templates_nan_watchdog_gets_the_same_lower_lr_retry(tmp_path: Path) -> None:
    context = agent_context(tmp_path, "watchdog")
    with pytest.raises(TrainingError) as err:
        TrainingAgent().run(context)
    message = str(err.value)
    assert message.startswith(DIVERGED) and "the loss became nan at epoch 2" in message
    assert "restarts from scratch with lr 0.05 (×0.1)" in message
    (tmp_path / "job" / "run" / "out" / "checkpoint.json").write_text("{}")  # what the diverged run left
    context.error_feedback["training"] = [message]  # what the orchestrator feeds the retry
    result = TrainingAgent().run(context)
    made = calls(tmp_path)  # the out folder was wiped: only the retry's call is on record
    assert len(made) == 1 and made[0]["lr"] == pytest.approx(0.05) and made[0]["resume"] is False
    assert result["config"]["lr"] == pytest.approx(0.05) and "lr lowered to 0.05" in result["summary"]


def test_the_observer_kills_a_diverging_run_at_once(tmp_path: Path) -> None:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append)
    started = time.monotonic()
    with pytest.raises(TrainingError) as err:
        TrainingAgent(bus).run(agent_context(tmp_path, "explode"))
    assert time.monotonic() - started < 30  # the child slept 60 s after its exploding epoch
    assert str(err.value).startswith(f"{DIVERGED} (net: the val loss jumped to 50 at epoch 3")
    phases = [e.phase for e in seen if isinstance(e, TrainingPhase)]
    assert phases == ["warmup", "learning_fast", "diverging"]
    assert [e.action for e in seen if isinstance(e, TrainingAdvice)] == ["lower_lr"]
    assert (tmp_path / "job" / "training_curves.png").exists()


def test_auto_stop_on_a_confirmed_plateau_and_monitor_switch(tmp_path: Path) -> None:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append)
    result = TrainingAgent(bus).run(agent_context(tmp_path / "on", "flat", epochs=60, pause=0.05))
    final = json.loads((tmp_path / "on" / "job" / "run" / "out" / "metrics.json").read_text())
    assert final["epochs_run"] < 60 and "auto-stopped net" in result["summary"]
    acted = [e for e in seen if isinstance(e, TrainingAdvice) and e.acted]
    assert len(acted) == 1 and acted[0].keep.startswith("the best checkpoint (epoch 4")
    assert [e.phase for e in seen if isinstance(e, TrainingPhase)][-1] == "converged"
    off = agent_context(tmp_path / "off", "flat", epochs=20, spec={"monitor": {"auto_stop": False}})
    TrainingAgent().run(off)
    assert json.loads((tmp_path / "off" / "job" / "run" / "out" / "metrics.json").read_text())["epochs_run"] == 20


def test_lowered_lr_counts_earlier_divergences() -> None:
    assert lowered_lr(1e-3, []) == (1e-3, False)
    assert lowered_lr(1e-3, ["train.py failed: boom", f"{DIVERGED} (x); …"]) == (pytest.approx(1e-4), True)
    assert lowered_lr(1.0, [f"{DIVERGED} a", f"{DIVERGED} b"])[0] == pytest.approx(0.01)
    assert lowered_lr(None, [f"{DIVERGED} a"]) == (None, False)


def test_run_streaming_hands_the_child_to_attach_and_kills_it_when_on_line_raises(tmp_path: Path) -> None:
    class Sink:
        pid = 0

        def attach(self, proc: Any) -> None:
            Sink.pid = proc.pid

        def __call__(self, line: str) -> None:
            if line == "go":
                raise RuntimeError("stop it")

    script = "import time; print('go', flush=True); time.sleep(60)"
    with pytest.raises(RuntimeError):
        run_streaming([sys.executable, "-c", script], cwd=tmp_path, timeout=60, on_line=Sink())
    assert Sink.pid > 0
    with pytest.raises(ProcessLookupError):
        os.killpg(Sink.pid, 0)


def test_the_tabular_template_honours_the_stop_file(tmp_path: Path) -> None:
    from sklearn.datasets import make_classification

    from tests.test_tabular_template import Run, render, write_data

    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    data = write_data(tmp_path / "data", "classification", X, y, n_classes=2)
    script = tmp_path / "train.py"
    script.write_text(render(model="auto", epochs=30, patience=30, gbdt_rounds=20, gbdt_patience=100))
    out = tmp_path / "out"
    out.mkdir()
    (out / "STOP").write_text("mlp")  # a request for the MLP: the GBDT trained first ignores it
    run = Run(script, data, out)
    assert run.epochs("gbdt")[-1] == 20  # all its rounds
    assert run.epochs("mlp") == [1] and not (out / "STOP").exists()  # honoured once, after the first epoch
    assert run.result["candidates"]["mlp"]["epochs"] == 1 and (out / "metrics.json").exists()
    assert run.result["test"]["accuracy"] > 0.5
    first = [m for m in run.metrics if m["model"] == "mlp"][0]
    assert 0.5 < first["initial_loss"] < 0.9  # the untrained net's val loss (≈ ln 2): the divergence yardstick
    assert np.isfinite(first["loss"])
