"""The forecaster family: a CLI run end to end beats the seasonal naive on test MASE and predicts the
next steps; train.py resumes its epoch counter; the summary is measured; predict.py refuses bad
history in one sentence; several series train and forecast per series."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agents.codegen import render_training_script
from mltrainer.app import app
from orchestrator.errors import SpecError
from tools.models import model_family_for
from tools.models.base import load_predict_module
from tools.models.timeseries import FORECASTER, plan_candidates
from tools.prep.base import DataOptions
from tools.prep.time_index import seasonality_hint
from tools.prep.timeseries import TIME_SERIES

runner = CliRunner()
TASK = "time_series_forecasting"
FAST = {"epochs": 2, "patience": 2, "lr": 0.01}


def sales(n: int = 300, seed: int = 0, level: float = 100.0) -> pd.DataFrame:
    """Daily series: trend + weekly cycle + small noise (the seasonal naive misses the trend)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = level + 0.8 * t + 12 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1.0, n)
    dates = pd.date_range("2022-01-01", periods=n, freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame({"date": dates, "sales": y.round(2)})


def prepare(tmp: Path, frame: pd.DataFrame, **params: Any) -> tuple[Path, dict[str, Any]]:
    path = tmp / "series.csv"
    frame.to_csv(path, index=False)
    opts = DataOptions(task_type=TASK, time="date", target="sales", params=params)
    inspection = TIME_SERIES.inspect(path, opts)
    data = tmp / "data"
    TIME_SERIES.prepare(path, opts, {**inspection.report, "roles": inspection.roles}, data)
    return data, json.loads((data / "meta.json").read_text())


def render(data: Path, meta: dict[str, Any], locked: dict[str, Any], script: Path) -> dict[str, Any]:
    config = FORECASTER.config(TASK, meta, locked, None)
    architecture = FORECASTER.architecture(TASK, config, meta)
    script.write_text(render_training_script(FORECASTER.name, FORECASTER.template_values(TASK, config, architecture, "t")))
    return architecture


def train(script: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(script), "--data-dir", str(data), "--out-dir", str(out), "--device", "cpu", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def metric_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line[7:]) for line in stdout.splitlines() if line.startswith("METRIC ")]


def test_cli_run_beats_seasonal_naive_and_predicts(tmp_path: Path) -> None:
    sales(300).to_csv(tmp_path / "sales.csv", index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: forecast the next two days of sales\ntask_type: time_series_forecasting\n"
                    "data: {source: sales.csv, time: date, target: sales}\n"
                    "hyperparameters: {lags: 14, horizon: 2, arch: linear, epochs: 3, patience: 3, lr: 0.01}\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "fc"])
    assert result.exit_code == 0, result.output
    detail = json.loads(runner.invoke(app, ["show", "fc", "--json"]).output)
    assert detail["status"] == "done"
    assert [s["status"] for s in detail["stages"]] == ["done"] * 8 + ["skipped"]
    metrics = json.loads((Path(detail["artifacts"]["run_dir"]) / "metrics.json").read_text())
    assert metrics["primary_metric"] == "mase" and metrics["higher_is_better"] is False
    assert metrics["season"] == 7 and metrics["baseline"]["name"] == "seasonal naive (season 7)"
    assert metrics["test"]["mase"] < metrics["baseline"]["mase"]
    assert detail["test_metrics"]["mase"] == pytest.approx(metrics["test"]["mase"], rel=1e-5)  # export = train.py
    export = Path(detail["artifacts"]["export_dir"])
    for name in ("predict.py", "model.safetensors", "model.json", "meta.json", "forecaster_nets.py", "README.md"):
        assert (export / name).exists(), name
    history = sales(320).iloc[-20:]
    history.to_csv(tmp_path / "history.csv", index=False)
    out = tmp_path / "forecast.csv"
    result = runner.invoke(app, ["predict", "fc", "--input", str(tmp_path / "history.csv"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    forecast = pd.read_csv(out)
    assert list(forecast["date"]) == ["2022-11-17", "2022-11-18"] and list(forecast["step"]) == [1, 2]
    truth = 100 + 0.8 * np.array([320, 321]) + 12 * np.sin(2 * np.pi * np.array([320, 321]) / 7)
    assert np.abs(forecast["sales"].to_numpy() - truth).max() < 10


def test_resume_continues_the_epoch_counter(tmp_path: Path) -> None:
    data, meta = prepare(tmp_path, sales(200), lags=14)
    script = tmp_path / "train.py"
    render(data, meta, dict(FAST), script)
    out = tmp_path / "out"
    first = train(script, data, out, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    assert {(m["model"], m["epoch"]) for m in metric_lines(first.stdout) if m["split"] == "train"} == {("linear", 1), ("mlp", 1)}
    second = train(script, data, out, "--resume", "--epochs", "3")
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stdout
    epochs = [(m["model"], m["epoch"]) for m in metric_lines(second.stdout) if m["split"] == "train"]
    assert epochs == [("linear", 2), ("linear", 3), ("mlp", 2), ("mlp", 3)]
    state = json.loads((out / "checkpoint.json").read_text())
    assert state["phase"] == "done" and state["candidates"]["linear"]["epoch"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and set(metrics["candidates"]) == {"linear", "mlp"}
    assert set(metrics["test"]) == {"mae", "rmse", "smape", "mase"}


def test_config_architecture_and_season(tmp_path: Path) -> None:
    data, meta = prepare(tmp_path, sales(200), lags=14)
    family = model_family_for(TASK)
    assert family is FORECASTER
    config = family.config(TASK, meta, {"lr_scheduler": "plateau", "d_model": 32, "epochs": 4}, 60)
    assert (config["lr_scheduler"], config["hidden"], config["epochs"], config["time_budget"]) == ("plateau", 32, 4, 60.0)
    assert config["task_type"] == TASK and "scheduler" not in config
    with pytest.raises(SpecError, match="not in the catalogue"):
        family.config(TASK, meta, {"arch": "transformer"}, None)
    architecture = family.architecture(TASK, config, meta)
    assert [c["name"] for c in architecture["candidates"]] == ["linear", "mlp"]
    for candidate in architecture["candidates"]:
        summary = candidate["summary"]
        assert candidate["parameters"] == summary["total_parameters"] > 0
        assert summary["output_shape"][1:] == [1] and all("output_shape" in layer for layer in summary["layers"])
    assert plan_candidates("auto", 5_000, 28) == ["linear", "mlp", "lstm"] and plan_candidates("lstm", 10, 5) == ["lstm"]
    # train.py's season detection is the data report's hint, computed on the training part only
    script = tmp_path / "train.py"
    render(data, meta, {}, script)
    namespace: dict[str, Any] = {"__name__": "train_module"}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    values = pd.read_parquet(data / "series.parquet")["sales"].to_numpy()
    assert namespace["detect_season"]([values], "D")[0] == seasonality_hint(values, "D")["period"] == 7
    assert namespace["detect_season"]([np.arange(50.0)], "D")[0] == 1


def test_predict_refuses_bad_history_and_forecasts_each_series(tmp_path: Path) -> None:
    frames = [sales(160, seed=1, level=100).assign(store="a"), sales(160, seed=2, level=300).assign(store="b")]
    data, meta = prepare(tmp_path, pd.concat(frames), lags=14, horizon=3)
    assert meta["series_id"] == "store"
    script = tmp_path / "train.py"
    render(data, meta, {"arch": "lstm", "hidden": 8, "layers": 1}, script)
    result = train(script, data, tmp_path / "out", "--smoke")
    assert result.returncode == 0, result.stderr
    staging = tmp_path / "export"
    staging.mkdir()
    for name in ("model.safetensors", "model.json"):
        (staging / name).write_bytes((tmp_path / "out" / name).read_bytes())
    test = FORECASTER.export(TASK, tmp_path / "out", data, staging)
    assert test["mase"] == pytest.approx(json.loads((tmp_path / "out" / "metrics.json").read_text())["test"]["mase"], rel=1e-5)
    predict = load_predict_module(staging)
    predictor = predict.Predictor.load(str(staging))
    history = pd.concat([f.iloc[-20:] for f in frames])
    rows = predictor.predict(history)
    assert [(r["store"], r["step"]) for r in rows] == [(s, k) for s in "ab" for k in (1, 2, 3)]
    assert rows[0]["date"] == "2022-06-10"
    cases = {
        "too few": (history.iloc[:5], "needs at least the 14 most recent steps"),
        "no target": (history.drop(columns=["sales"]), "missing the column(s) 'sales'"),
        "bad time": (history.assign(date="soon"), "value(s) that are not dates"),
        "text target": (history.assign(sales="many"), "must be numeric"),
        "repeated time": (pd.concat([frames[0].iloc[-20:], frames[0].iloc[-1:]]), "appears more than once"),
    }
    for name, (frame, words) in cases.items():
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            predictor.predict(frame)
    bad = tmp_path / "bad.csv"
    history.iloc[:3].to_csv(bad, index=False)
    cli = subprocess.run([sys.executable, str(staging / "predict.py"), "--input", str(bad), "--output",
                          str(tmp_path / "o.csv")], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and cli.stderr.startswith("error: The model needs") and "Traceback" not in cli.stderr
