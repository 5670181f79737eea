"""Quality: mltrainer against what a user would pick instead, on datasets that ship inside packages.

Each dataset gets one fixed split (tables: 80/20, stratified for classes, seed 0; series: the last
two seasons held out). On the training part:

* **mltrainer** — ``mltrainer run`` on a CSV of the training part with a spec that sets the task type,
  the target (and for series the time column and ``horizon`` = the held-out length) and the time
  budget; then ``mltrainer predict`` on the test part (tables: the feature columns; series: the
  training history, whose next ``horizon`` steps are the forecast). Offline, no LLM, a fresh
  MLTRAINER_HOME per dataset. Wall time = both commands, start-up included.
* **HGB** — scikit-learn's HistGradientBoosting with defaults on the whole training part (series: on
  lag windows of 2 × the season, forecasting recursively one step at a time).
* **FLAML** — ``AutoML`` with the same time budget (series: its ``ts_forecast`` task).
* **Holt-Winters** (series only) — statsmodels' ExponentialSmoothing, additive damped trend and season.
* **baseline** — the trivial model: majority class, training mean, or seasonal naive (the last season
  repeated).

Metrics: accuracy (classification), R² (regression), MASE (forecasting: test MAE over the in-sample
MAE of the seasonal-naive forecast on the training part — the same scale for every tool).
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.common import Goal, Section, Table, fmt, log, mltrainer, show

#: Seconds of time budget per dataset, for mltrainer and FLAML alike.
BUDGET, QUICK_BUDGET = 60.0, 8.0
TOLERANCE = 0.01  # the goal: within this of the better of HGB and FLAML


@dataclass
class Dataset:
    name: str
    kind: str  # classification | regression | forecasting
    train: Any  # DataFrame
    test: Any
    target: str
    time: str = ""  # series: the time column
    season: int = 1  # series: the seasonal period (MASE scale, seasonal naive, HGB lags)
    source: str = ""

    @property
    def metric(self) -> str:
        return {"classification": "accuracy", "regression": "R²", "forecasting": "MASE"}[self.kind]

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "forecasting"


# ---------------------------------------------------------------------------------------------- datasets
def tabular_sets() -> list[Dataset]:
    from sklearn import datasets as skd
    from sklearn.model_selection import train_test_split

    out = []
    for name, loader, kind in [("breast_cancer", skd.load_breast_cancer, "classification"),
                               ("wine", skd.load_wine, "classification"),
                               ("digits", skd.load_digits, "classification"),
                               ("diabetes", skd.load_diabetes, "regression")]:
        frame = loader(as_frame=True).frame
        strat = frame["target"] if kind == "classification" else None
        train, test = train_test_split(frame, test_size=0.2, random_state=0, stratify=strat)
        out.append(Dataset(name, kind, train.reset_index(drop=True), test.reset_index(drop=True), "target",
                           source=f"sklearn load_{name}"))
    return out


def series_sets() -> list[Dataset]:
    """sunspots (yearly, season 11) and co2 (weekly with gaps → monthly means, forward-filled, season 12)."""
    import pandas as pd
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sun = sm.datasets.sunspots.load_pandas().data
        co2 = sm.datasets.co2.load_pandas().data
    sun = pd.DataFrame({"year": sun["YEAR"].astype(int), "sunactivity": sun["SUNACTIVITY"].astype(float)})
    # statsmodels' own examples resample co2 to months and forward-fill the weeks without a reading
    monthly = co2["co2"].resample("MS").mean().ffill()
    co2 = pd.DataFrame({"month": monthly.index.strftime("%Y-%m-%d"), "co2": monthly.to_numpy()})
    out = []
    for name, frame, target, time_col, season in [("sunspots", sun, "sunactivity", "year", 11),
                                                  ("co2", co2, "co2", "month", 12)]:
        held = 2 * season
        out.append(Dataset(name, "forecasting", frame.iloc[:-held].reset_index(drop=True),
                           frame.iloc[-held:].reset_index(drop=True), target, time_col, season,
                           f"statsmodels {name}"))
    return out


# ---------------------------------------------------------------------------------------------- scoring
def score(data: Dataset, predicted: Any) -> float:
    import numpy as np

    truth = data.test[data.target].to_numpy()
    predicted = np.asarray(predicted)
    if data.kind == "classification":
        return float(np.mean(predicted.astype(str) == truth.astype(str)))
    predicted = predicted.astype(float)
    if data.kind == "regression":
        return float(1 - np.sum((truth - predicted) ** 2) / np.sum((truth - truth.mean()) ** 2))
    return float(np.mean(np.abs(truth - predicted)) / mase_scale(data))


def mase_scale(data: Dataset) -> float:
    import numpy as np

    y = data.train[data.target].to_numpy(float)
    return float(np.mean(np.abs(y[data.season:] - y[:-data.season])))


def features(frame: Any, data: Dataset) -> Any:
    return frame.drop(columns=[data.target])


# ---------------------------------------------------------------------------------------------- tools
def run_mltrainer(data: Dataset, budget: float, work: Path) -> dict[str, Any]:
    """``mltrainer run`` on the training part, ``mltrainer predict`` on the test part."""
    import pandas as pd
    import yaml

    home = work / "home"
    train_csv, spec_path = work / "train.csv", work / "spec.yaml"
    data.train.to_csv(train_csv, index=False)
    spec: dict[str, Any] = {"task": f"predict {data.target}", "data": {"source": str(train_csv), "target": data.target},
                            "budget": {"time": f"{budget:g}s"}}
    if data.kind == "forecasting":
        spec["task_type"] = "time_series_forecasting"
        spec["data"]["time"] = data.time
        spec["hyperparameters"] = {"horizon": len(data.test)}
        predict_input = train_csv  # the history; the forecast is the next `horizon` steps
    else:
        spec["task_type"] = f"tabular_{data.kind}"
        predict_input = work / "test_features.csv"
        features(data.test, data).to_csv(predict_input, index=False)
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    job = f"bench-{data.name}"
    ran = mltrainer(["run", str(spec_path), "--job-id", job, "--json"], home, timeout=budget * 3 + 600)
    output = work / "predictions.csv"
    predicted = mltrainer(["predict", job, "--input", str(predict_input), "--output", str(output)], home)
    frame = pd.read_csv(output)
    if len(frame) != len(data.test):
        raise RuntimeError(f"mltrainer predict wrote {len(frame)} rows for {len(data.test)} test rows")
    detail = show(job, home)
    kept = (detail.get("best_metric") or {}).get("model") or "?"
    training = next((s["duration"] for s in detail["stages"] if s["stage"] == "training"), 0.0)
    return {"score": score(data, frame[data.target].to_numpy()), "seconds": ran.seconds + predicted.seconds,
            "kept": kept, "training_s": training, "split": (detail.get("preprocessing_report") or {}).get("splits")}


def run_hgb(data: Dataset, budget: float, work: Path) -> dict[str, Any]:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    started = time.perf_counter()
    if data.kind == "forecasting":
        from numpy.lib.stride_tricks import sliding_window_view

        y = data.train[data.target].to_numpy(float)
        lags = 2 * data.season
        model = HistGradientBoostingRegressor(random_state=0).fit(sliding_window_view(y[:-1], lags), y[lags:])
        history = list(y[-lags:])
        for _ in range(len(data.test)):  # recursive: each forecast becomes an input of the next
            history.append(float(model.predict(np.array(history[-lags:])[None, :])[0]))
        predicted = history[lags:]
    else:
        cls = HistGradientBoostingClassifier if data.kind == "classification" else HistGradientBoostingRegressor
        model = cls(random_state=0).fit(features(data.train, data), data.train[data.target])
        predicted = model.predict(features(data.test, data))
    return {"score": score(data, predicted), "seconds": time.perf_counter() - started}


def run_flaml(data: Dataset, budget: float, work: Path) -> dict[str, Any]:
    import pandas as pd
    from flaml import AutoML

    automl = AutoML()
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if data.kind == "forecasting":
            def stamps(frame: Any) -> Any:
                column = frame[data.time]
                return pd.to_datetime(column.astype(str), format="%Y") if data.time == "year" else pd.to_datetime(column)

            automl.fit(X_train=pd.DataFrame({"ds": stamps(data.train)}), y_train=data.train[data.target],
                       task="ts_forecast", period=len(data.test), time_budget=budget, verbose=0, seed=0,
                       log_file_name=str(work / "flaml.log"))
            predicted = automl.predict(pd.DataFrame({"ds": stamps(data.test)}))
        else:
            automl.fit(X_train=features(data.train, data), y_train=data.train[data.target], task=data.kind,
                       metric="accuracy" if data.kind == "classification" else "r2", time_budget=budget, verbose=0,
                       seed=0, log_file_name=str(work / "flaml.log"))
            predicted = automl.predict(features(data.test, data))
    return {"score": score(data, predicted), "seconds": time.perf_counter() - started,
            "kept": automl.best_estimator}


def run_holt_winters(data: Dataset, budget: float, work: Path) -> dict[str, Any]:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(data.train[data.target].to_numpy(float), trend="add", damped_trend=True,
                                   seasonal="add", seasonal_periods=data.season).fit()
        predicted = fit.forecast(len(data.test))
    return {"score": score(data, predicted), "seconds": time.perf_counter() - started}


def run_baseline(data: Dataset, budget: float, work: Path) -> dict[str, Any]:
    import numpy as np

    started = time.perf_counter()
    y = data.train[data.target]
    n = len(data.test)
    if data.kind == "classification":
        predicted = np.full(n, y.mode().iloc[0])
    elif data.kind == "regression":
        predicted = np.full(n, float(y.mean()))
    else:  # seasonal naive: the last season, repeated
        last = y.to_numpy(float)[-data.season:]
        predicted = np.resize(last, n)
    return {"score": score(data, predicted), "seconds": time.perf_counter() - started}


TOOLS: dict[str, Callable[[Dataset, float, Path], dict[str, Any]]] = {
    "mltrainer": run_mltrainer, "HGB": run_hgb, "FLAML": run_flaml, "Holt-Winters": run_holt_winters,
    "baseline": run_baseline,
}


# ---------------------------------------------------------------------------------------------- judging
def judge(data: Dataset, results: dict[str, dict[str, Any]]) -> tuple[bool | None, str]:
    """(met, one line): within TOLERANCE of the better of HGB and FLAML, and never worse than HGB."""
    ours, hgb, flaml = (results.get(k, {}).get("score") for k in ("mltrainer", "HGB", "FLAML"))
    if ours is None or hgb is None:
        return None, "not measured"
    sign = 1 if data.higher_is_better else -1
    best = max((s for s in (hgb, flaml) if s is not None), key=lambda s: sign * s)
    gap = sign * (best - ours)  # > 0: ours is worse than the best by that much
    met = gap <= TOLERANCE and sign * (ours - hgb) >= 0
    which = "HGB" if best == hgb else "FLAML"
    return met, f"{data.metric} {ours:.4f} vs best {which} {best:.4f} ({'behind' if gap > 0 else 'ahead'} by {abs(gap):.4f})"


def cause(data: Dataset, results: dict[str, dict[str, Any]]) -> str:
    """What the run itself says about a miss: how much data each side trained on, which model was kept,
    how coarse the test metric is."""
    ours = results.get("mltrainer", {})
    split = ours.get("split") or {}
    if "error" in ours:
        return f"mltrainer failed: {ours['error']}."
    if data.kind == "forecasting":
        hw = results.get("Holt-Winters", {}).get("score")
        return (f"mltrainer kept its {ours.get('kept', '?')} forecaster, trained on {split.get('train', '?')} windows "
                f"(its own validation and test windows come off the training part) and forecasting all "
                f"{len(data.test)} steps at once from one origin; Holt-Winters scored {fmt(hw)} on the same tail. "
                "One origin and a short tail make this figure noisy.")
    step = f"one test row is {1 / len(data.test):.3f} of accuracy; " if data.kind == "classification" else ""
    return (f"{step}mltrainer kept its {ours.get('kept', '?')} and trained on {split.get('train', '?')} of the "
            f"{len(data.train)} training rows (the rest are its validation and test splits, and the kept model is "
            "not refitted on them), while HGB and FLAML fit all of them.")


def run(quick: bool = False) -> Section:
    budget = QUICK_BUDGET if quick else BUDGET
    sets = tabular_sets() + series_sets()
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for data in sets:
        rows[data.name] = {}
        for tool, fn in TOOLS.items():
            if tool == "Holt-Winters" and data.kind != "forecasting":
                continue
            log(f"quality: {data.name} / {tool}")
            with tempfile.TemporaryDirectory(prefix=f"bench-{data.name}-") as tmp:
                try:
                    rows[data.name][tool] = fn(data, budget, Path(tmp))
                except Exception as err:  # noqa: BLE001 - one tool failing must not lose the others' figures
                    rows[data.name][tool] = {"error": f"{type(err).__name__}: {str(err).splitlines()[-1][:160]}"}
                    log(f"quality: {data.name} / {tool} failed: {err}")

    def cell(result: dict[str, Any]) -> str:
        return "error" if "error" in result else fmt(result.get("score"))

    tables, goals, notes = [], [], []
    for kind, title in [(("classification", "regression"), "Tables (accuracy or R², higher is better)"),
                        (("forecasting",), "Forecasting (MASE on the held-out tail, lower is better)")]:
        chosen = [d for d in sets if d.kind in kind]
        tools = [t for t in TOOLS if t != "Holt-Winters" or "forecasting" in kind]
        columns = ["dataset", "train/test", "metric", *tools, "mltrainer kept", "FLAML kept",
                   *[f"{t} s" for t in tools if t != "baseline"], "goal"]
        table_rows = []
        for data in chosen:
            result = rows[data.name]
            met, line = judge(data, result)
            goals.append(Goal(f"{data.name}: mltrainer within {TOLERANCE} of the better of HGB and FLAML, never below HGB",
                              line, met, cause=cause(data, result)))
            table_rows.append([data.name, f"{len(data.train)}/{len(data.test)}", data.metric,
                               *[cell(result.get(t, {})) for t in tools], result.get("mltrainer", {}).get("kept", "–"),
                               result.get("FLAML", {}).get("kept", "–"),
                               *[fmt(result.get(t, {}).get("seconds"), 1) for t in tools if t != "baseline"],
                               "met" if met else ("missed" if met is False else "–")])
        tables.append(Table(title, columns, table_rows))
    for data in sets:
        result = rows[data.name]
        if data.kind == "forecasting" and "score" in result.get("mltrainer", {}):
            others = ", ".join(f"{t} {fmt(result[t].get('score'))}" for t in ("Holt-Winters", "baseline") if t in result)
            notes.append(f"{data.name}: mltrainer MASE {fmt(result['mltrainer']['score'])} against the statsmodels "
                         f"comparator and the seasonal-naive baseline: {others}.")
    for name, result in rows.items():
        for tool, figures in result.items():
            if "error" in figures:
                notes.append(f"{name} / {tool} failed: {figures['error']}")
    intro = (f"One fixed split per dataset; time budget {budget:g} s for mltrainer (a cap: it stops early when "
             f"validation stops improving) and FLAML (which uses all of it). mltrainer runs its whole pipeline "
             "(offline, no LLM) on the training part and holds out its own validation and test rows from it; "
             "HGB and FLAML see the whole training part. Series: every tool forecasts the whole held-out tail "
             "from the end of the training part (FLAML's ts_forecast gets the time column only, as a user would "
             "start). Wall times include mltrainer's start-up and `mltrainer predict`.")
    return Section("quality", "Quality against HGB, FLAML and the trivial baseline", intro, tables, goals, notes,
                   extra={"raw": rows})


if __name__ == "__main__":
    import sys

    section = run(quick="--quick" in sys.argv)
    print(json.dumps(section.to_json(), indent=2, default=str))
