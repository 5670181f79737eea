"""The time-series family: roles and frequency inferred, gaps filled and counted, windows split in
time with no leakage, train-only scaling, deterministic output, one-sentence errors for bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.errors import DataError, SpecError
from tools.prep import family_for
from tools.prep.base import DataOptions
from tools.prep.timeseries import TIME_SERIES, describe_frequency, detect_frequency, rows_needed

TASK = "time_series_forecasting"
DAY = 86_400 * 10**9


def options(**kwargs) -> DataOptions:
    params = kwargs.pop("params", {})
    return DataOptions(task_type=TASK, params=params, **kwargs)


def daily_frame(n: int = 3 * 365, seed: int = 0) -> pd.DataFrame:
    """Daily sales with a trend and a weekly cycle, plus a temperature covariate."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    sales = 100 + 0.05 * steps + 8 * np.sin(2 * np.pi * steps / 7) + rng.normal(0, 0.5, n)
    dates = pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame({"date": dates, "temp": rng.normal(15, 5, n).round(2), "sales": sales})


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "series.csv") -> Path:
    path = tmp_path / name
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def run(path: Path, opts: DataOptions, out: Path):
    inspection = TIME_SERIES.inspect(path, opts)
    prepared = TIME_SERIES.prepare(path, opts, {**inspection.report, "roles": inspection.roles}, out)
    return inspection, prepared


def load_split(prepared, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.load(prepared.files[f"{kind}_{split}"]) for kind in ("X", "y", "t"))


# ---------------------------------------------------------------------------- inspection
def test_registered_for_the_task_type() -> None:
    assert family_for(TASK) is TIME_SERIES
    assert TIME_SERIES.name == "time_series"


def test_daily_series_roles_frequency_and_seasonality(tmp_path: Path) -> None:
    path = write(tmp_path, daily_frame())
    inspection = TIME_SERIES.inspect(path, options())
    report = inspection.report
    assert inspection.roles == {"time": "date", "target": "sales"}
    assert inspection.task_type == TASK
    assert report["family"] == "time_series"
    assert (report["rows"], report["columns"]) == (1095, 3)
    assert report["frequency"] == "D" and report["frequency_words"] == "daily"
    assert report["regular"] is True and report["gaps"] == 0 and report["duplicates"] == 0
    assert report["sorted_in_file"] is True
    assert report["start"] == "2020-01-01" and report["end"] == "2022-12-30"
    assert report["covariates"] == ["temp"]
    assert report["missing_values"] == 0
    assert set(report["target_stats"]) == {"mean", "std", "min", "max"}
    assert report["seasonality_hint"]["period"] == 7
    assert report["lags"] == 14 and "seasonal period 7" in report["lags_reason"]
    assert "called 'date'" in report["roles_reason"]["time"]
    assert "called 'sales'" in report["roles_reason"]["target"]
    json.dumps(report)  # the report is stored as JSON


def test_monthly_series_and_last_numeric_target(tmp_path: Path) -> None:
    months = pd.date_range("1949-01-01", periods=144, freq="MS")
    steps = np.arange(144)
    riders = 120 + 2 * steps + 30 * np.sin(2 * np.pi * steps / 12)
    path = write(tmp_path, pd.DataFrame({"Month": months.strftime("%Y-%m"), "riders": riders}))
    report = TIME_SERIES.inspect(path, options()).report
    assert report["time"] == "Month" and report["target"] == "riders"
    assert "last numeric column" in report["roles_reason"]["target"]
    assert report["frequency"] == "MS" and report["frequency_words"] == "monthly"
    assert report["seasonality_hint"]["period"] == 12
    assert report["lags"] == 24


def test_sunspots_layout_of_integer_years(tmp_path: Path) -> None:
    years = np.arange(1700, 2009)
    rng = np.random.default_rng(3)
    activity = 50 + 40 * np.sin(2 * np.pi * (years - 1700) / 11) + rng.normal(0, 5, len(years))
    path = write(tmp_path, pd.DataFrame({"YEAR": years.astype(float), "SUNACTIVITY": activity.round(1)}))
    inspection, prepared = run(path, options(), tmp_path / "out")
    report = inspection.report
    assert inspection.roles == {"time": "YEAR", "target": "SUNACTIVITY"}
    assert "years" in report["roles_reason"]["time"]
    assert report["frequency"] == "YS-JAN" and report["frequency_words"] == "yearly"
    assert report["start"] == "1700-01-01" and report["end"] == "2008-01-01"
    assert report["seasonality_hint"]["period"] == 11
    _, _, t = load_split(prepared, "test")
    assert pd.DatetimeIndex(t).is_year_start.all()


def test_time_column_found_by_values_when_not_named(tmp_path: Path) -> None:
    frame = daily_frame(200).rename(columns={"date": "when"})
    report = TIME_SERIES.inspect(write(tmp_path, frame), options()).report
    assert report["time"] == "when" and "parse as times" in report["roles_reason"]["time"]


@pytest.mark.parametrize(("times", "expected", "words"), [
    (pd.date_range("2021-01-01", periods=50, freq="h"), "h", "hourly"),
    (pd.date_range("2021-01-03", periods=50, freq="W-SUN"), "W-SUN", "weekly"),
    (pd.date_range("2021-01-01", periods=50, freq="15min"), "15min", "every 15 minutes"),
    (pd.date_range("2000-01-01", periods=40, freq="QS"), "QS-JAN", "quarterly"),
    (pd.date_range("2000-01-01", periods=40, freq="MS").delete([5, 9]), "MS", "monthly"),
    (pd.bdate_range("2021-01-01", periods=80).delete([10, 30]), "B", "business-daily"),
    (pd.date_range("2021-01-01", periods=40, freq="D").delete([3, 4, 20]), "D", "daily"),
])
def test_frequency_detection(times: pd.DatetimeIndex, expected: str, words: str) -> None:
    alias, _how = detect_frequency(times)
    assert alias == expected
    assert describe_frequency(alias) == words


# ---------------------------------------------------------------------------- preparation
def test_windows_shapes_dtypes_and_contents(tmp_path: Path) -> None:
    path = write(tmp_path, daily_frame(400))
    _, prepared = run(path, options(params={"lags": 10, "horizon": 3}), tmp_path / "out")
    meta = json.loads(Path(prepared.files["meta"]).read_text())
    assert meta["features"] == ["sales", "temp"] and meta["lags"] == 10 and meta["horizon"] == 3
    series = pd.read_parquet(prepared.files["series"]).set_index("date")
    scale = meta["scale"]["features"]
    for split in ("train", "val", "test"):
        x, y, t = load_split(prepared, split)
        n = prepared.report["splits"][split]
        assert x.shape == (n, 10, 2) and x.dtype == np.float32
        assert y.shape == (n, 3) and y.dtype == np.float32
        assert t.shape == (n,) and t.dtype == np.int64
        assert meta["splits"][split] == n
        # the last window: inputs are the 10 steps before t, targets the 3 steps from t
        at = series.index.get_loc(pd.Timestamp(t[-1]))
        past = series.iloc[at - 10:at]
        np.testing.assert_allclose(x[-1, :, 0], (past["sales"] - scale["sales"]["mean"]) / scale["sales"]["std"],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(x[-1, :, 1], (past["temp"] - scale["temp"]["mean"]) / scale["temp"]["std"],
                                   rtol=1e-5, atol=1e-5)
        future = series["sales"].iloc[at:at + 3].to_numpy()
        np.testing.assert_allclose(y[-1] * meta["scale"]["std"] + meta["scale"]["mean"], future, rtol=1e-5)
    assert set(prepared.files) >= {"meta", "series", "X_train", "y_val", "t_test"}
    assert prepared.report["seed"] == 42 and prepared.report["lags"] == 10 and prepared.report["horizon"] == 3
    assert prepared.report["frequency"] == "D"


def test_split_is_time_ordered_without_leakage(tmp_path: Path) -> None:
    horizon = 4
    _, prepared = run(write(tmp_path, daily_frame(500)), options(params={"lags": 7, "horizon": horizon}),
                      tmp_path / "out")
    t = {split: load_split(prepared, split)[2] for split in ("train", "val", "test")}
    last_target = {split: t[split].max() + (horizon - 1) * DAY for split in t}
    # no training target at or after the first validation target; the same for validation vs test
    assert last_target["train"] < t["val"].min()
    assert last_target["val"] < t["test"].min()
    for split in t:
        assert (np.diff(t[split]) > 0).all()  # each split in time order, never shuffled
    times = prepared.report["split_times"]
    assert pd.Timestamp(t["val"].min()) == pd.Timestamp(times["val_start"])
    assert pd.Timestamp(last_target["train"]) == pd.Timestamp(times["train_end"])
    assert pd.Timestamp(last_target["val"]) == pd.Timestamp(times["val_end"])
    # the first validation window reads training history as its input (allowed: it is the past)
    meta = json.loads(Path(prepared.files["meta"]).read_text())
    series = pd.read_parquet(prepared.files["series"]).set_index("date")["sales"]
    history = series[series.index < pd.Timestamp(times["val_start"])].iloc[-7:]
    x_val = load_split(prepared, "val")[0]
    np.testing.assert_allclose(x_val[0, :, 0] * meta["scale"]["std"] + meta["scale"]["mean"], history, rtol=1e-5)
    assert meta["shuffled"] is False and meta["seed"] == 42


def test_scaling_uses_training_part_only(tmp_path: Path) -> None:
    _, prepared = run(write(tmp_path, daily_frame(600)), options(params={"lags": 7}), tmp_path / "out")
    meta = json.loads(Path(prepared.files["meta"]).read_text())
    series = pd.read_parquet(prepared.files["series"])
    train = series[series["date"] < pd.Timestamp(meta["split_times"]["val_start"])]
    assert meta["scale"]["mean"] == pytest.approx(train["sales"].mean())
    assert meta["scale"]["std"] == pytest.approx(train["sales"].std(ddof=0))
    assert meta["scale"]["mean"] < series["sales"].mean()  # the trend: later data is higher
    x_train = load_split(prepared, "train")[0]
    assert abs(float(x_train[:, :, 0].mean())) < 0.1  # scaled by its own statistics


def test_prepare_is_deterministic(tmp_path: Path) -> None:
    path = write(tmp_path, daily_frame(300))
    _, first = run(path, options(), tmp_path / "a")
    _, second = run(path, options(), tmp_path / "b")
    for name in ("X_train", "y_val", "t_test", "meta"):
        assert Path(first.files[name]).read_bytes() == Path(second.files[name]).read_bytes()
    assert first.report == second.report


def test_shuffled_file_is_sorted_first(tmp_path: Path) -> None:
    frame = daily_frame(300)
    ordered = write(tmp_path, frame, "ordered.csv")
    shuffled = write(tmp_path, frame.sample(frac=1.0, random_state=7), "shuffled.csv")
    inspection, prepared = run(shuffled, options(), tmp_path / "shuffled")
    assert inspection.report["sorted_in_file"] is False
    assert inspection.report["start"] == "2020-01-01"
    _, reference = run(ordered, options(), tmp_path / "ordered")
    for name in ("X_train", "y_train", "t_val", "X_test"):
        assert np.array_equal(np.load(prepared.files[name]), np.load(reference.files[name]))
    assert pd.read_parquet(prepared.files["series"])["date"].is_monotonic_increasing


def test_gaps_are_filled_and_counted(tmp_path: Path) -> None:
    n = 300
    dates = pd.date_range("2021-01-01", periods=n, freq="D")
    frame = pd.DataFrame({"ds": dates, "y": np.arange(n, dtype=float) * 2.0, "x": np.arange(n, dtype=float)})
    frame.loc[[40, 41, 42], "y"] = np.nan
    frame.loc[[50], "x"] = np.nan
    frame = frame.drop(index=[100, 101, 200, 250])
    path = write(tmp_path, frame, "gappy.parquet")
    inspection, prepared = run(path, options(params={"lags": 5}), tmp_path / "out")
    report = inspection.report
    assert report["gaps"] == 4 and report["regular"] is False and report["missing_values"] == 3
    assert prepared.report["filled"]["timestamps"] == 4
    assert prepared.report["filled"]["target"] == 7
    assert prepared.report["filled"]["covariates"] == 5  # one missing value plus four missing timestamps
    series = pd.read_parquet(prepared.files["series"])
    assert len(series) == n and int(series["filled"].sum()) == 7
    np.testing.assert_allclose(series["y"], np.arange(n) * 2.0)  # interpolation in time restores the line
    assert series.loc[series["ds"] == pd.Timestamp("2021-04-11"), "x"].item() == 99.0  # carried forward


def test_too_many_gaps_are_refused(tmp_path: Path) -> None:
    frame = daily_frame(400)
    frame = frame[(np.arange(400) % 10) >= 3]  # 30% of the days missing
    with pytest.raises(DataError, match=r"would fill .*more than the 20% allowed"):
        TIME_SERIES.inspect(write(tmp_path, frame), options())


def test_multi_series_long_format(tmp_path: Path) -> None:
    rows = []
    for store, length, level in (("north", 220, 10.0), ("south", 180, 50.0), ("east", 200, 90.0)):
        dates = pd.date_range("2022-01-01", periods=length, freq="D")
        rows += [{"store": store, "date": d.strftime("%Y-%m-%d"), "sales": level + i} for i, d in enumerate(dates)]
    path = write(tmp_path, pd.DataFrame(rows).sample(frac=1.0, random_state=1))
    inspection, prepared = run(path, options(params={"lags": 7, "horizon": 2}), tmp_path / "out")
    assert inspection.roles == {"time": "date", "target": "sales", "series_id": "store"}
    assert inspection.report["series"] == 3 and inspection.report["duplicates"] > 0
    assert "store" in inspection.report["roles_reason"]["series_id"]
    t_train, t_val = load_split(prepared, "train")[2], load_split(prepared, "val")[2]
    assert t_train.max() + DAY < t_val.min()  # across every series
    meta = json.loads(Path(prepared.files["meta"]).read_text())
    assert meta["series"] == ["east", "north", "south"]
    s_val = np.load(prepared.files["s_val"])
    assert len(s_val) == len(t_val) and set(s_val) <= {0, 1, 2}
    # a window never mixes series: targets step by one day from the series' own values
    series = pd.read_parquet(prepared.files["series"])
    y_val = load_split(prepared, "val")[1] * meta["scale"]["std"] + meta["scale"]["mean"]
    np.testing.assert_allclose(y_val[:, 1] - y_val[:, 0], 1.0, atol=1e-3)
    assert len(series) == 600


def test_explicit_roles_and_parameters(tmp_path: Path) -> None:
    path = write(tmp_path, daily_frame(200))
    inspection = TIME_SERIES.inspect(path, options(time="DATE", target="temp", params={"lags": 3, "horizon": 2}))
    assert inspection.roles == {"time": "date", "target": "temp"}
    assert inspection.report["covariates"] == ["sales"]
    assert (inspection.report["lags"], inspection.report["horizon"]) == (3, 2)
    with pytest.raises(DataError, match=r"target column 'salse' is not in .*did you mean 'sales'"):
        TIME_SERIES.inspect(path, options(target="salse"))
    with pytest.raises(SpecError, match="lags must be a whole number"):
        TIME_SERIES.inspect(path, options(params={"lags": "many"}))
    weekly = TIME_SERIES.inspect(path, options(params={"frequency": "W-SUN"})).report
    assert weekly["frequency"] == "W-SUN"


# ---------------------------------------------------------------------------- bad data
def test_duplicate_timestamps(tmp_path: Path) -> None:
    frame = daily_frame(100)
    frame = pd.concat([frame, frame.iloc[[4, 4, 9]]], ignore_index=True)
    with pytest.raises(DataError) as caught:
        TIME_SERIES.inspect(write(tmp_path, frame), options())
    message = str(caught.value)
    assert "3 duplicate timestamp(s)" in message
    assert "first: 2020-01-05 appears 3 times" in message
    assert "aggregate rows with the same time" in message and "column naming each series" in message


def test_time_column_that_does_not_parse(tmp_path: Path) -> None:
    frame = daily_frame(100)
    frame.loc[6, "date"] = "not a date"
    with pytest.raises(DataError, match=r"'date' has 1 value\(s\) that do not parse .*'not a date' in data row 7"):
        TIME_SERIES.inspect(write(tmp_path, frame), options())


def test_target_not_numeric(tmp_path: Path) -> None:
    frame = daily_frame(100).astype({"sales": object})
    frame.loc[3, "sales"] = "lots"
    with pytest.raises(DataError, match=r"target column 'sales' is not numeric: 'lots' in data row 4"):
        TIME_SERIES.inspect(write(tmp_path, frame), options())


def test_too_few_rows_for_the_windows(tmp_path: Path) -> None:
    need = rows_needed(14, 1, 0.15, 0.15)
    with pytest.raises(DataError, match=rf"has 30 daily steps but needs at least {need} "):
        TIME_SERIES.inspect(write(tmp_path, daily_frame(30)), options(params={"lags": 14}))
    assert TIME_SERIES.inspect(write(tmp_path, daily_frame(need)), options(params={"lags": 14})).report["lags"] == 14


def test_target_missing(tmp_path: Path) -> None:
    frame = daily_frame(100)
    frame["sales"] = np.nan
    with pytest.raises(DataError, match="missing in every row"):
        TIME_SERIES.inspect(write(tmp_path, frame), options(target="sales"))
    frame = daily_frame(100)
    frame.loc[frame.index % 3 != 0, "sales"] = np.nan
    with pytest.raises(DataError, match="missing for most rows"):
        TIME_SERIES.inspect(write(tmp_path, frame), options())


def test_single_row_and_constant_time(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="single distinct time"):
        TIME_SERIES.inspect(write(tmp_path, pd.DataFrame({"date": ["2020-01-01"], "y": [1.0]})), options())
    constant = pd.DataFrame({"date": ["2020-01-01"] * 50, "y": np.arange(50.0)})
    with pytest.raises(DataError, match="single distinct time"):
        TIME_SERIES.inspect(write(tmp_path, constant), options())


def test_no_time_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(50) * 0.5, "b": np.arange(50.0)})
    with pytest.raises(DataError, match="holds dates or times"):
        TIME_SERIES.inspect(write(tmp_path, frame), options())
