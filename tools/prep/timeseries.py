"""Time-series forecasting data: a table with a time column and a numeric target becomes sliding
windows (``lags`` past steps in, ``horizon`` future steps out) split by time, never shuffled.

Why windows on disk: the generated training script loads ``X_{split}.npy`` (N, lags, features) and
``y_{split}.npy`` (N, horizon) in one read and needs no date logic of its own, so the time handling
(parsing, sorting, regularising, leakage-free splitting, scaling) is done once, here, and tested;
reading the time axis (parsing, frequency, regular grid, seasonality) lives in :mod:`tools.prep.time_index`.

Layouts:

* one series: a time column, the target, optionally more numeric columns (covariates, used as past
  inputs only; their future values are not assumed known);
* several series in long format (one row per series and time): grouped by a series-id column, named
  with the ``series_id`` hyperparameter or inferred when the time column repeats and exactly the
  repeats are explained by a low-cardinality text column. Each series is regularised and windowed on
  its own; the split cut points are shared times, so every validation/test target of every series is
  later than every training target. The scale is one mean/std for all series (from the training part).

The split cuts the time axis, not the windows: targets before ``val_start`` are training targets,
targets in [``val_start``, ``test_start``) validation, the rest test. A window never straddles a cut
with its targets; a validation/test window may read the preceding history (training rows) as input,
which is what a forecaster sees in production. Gap filling interpolates in time over the whole series
(a gap just before a cut borrows the first value after it; at most ``MAX_FILL_SHARE`` is filled).

Hyperparameters read from ``options.params``: ``lags`` (default 2 × the detected seasonal period,
capped, else 24), ``horizon`` (default 1), ``frequency`` (a pandas alias overriding detection),
``series_id`` (the series column of a long table), ``covariates`` (a list of columns, or false for
none; default every other numeric, non-identifier column). Only ``lags`` and ``horizon`` are spec
hyperparameters today; the other three are honoured when a caller passes them.

Not handled: integer step indexes (0, 1, 2…) and separate year/month columns as the time; a time that
is not a date is refused with a DataError saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DataError, SpecError
from tools.prep.base import (DataOptions, Inspection, Log, Prepared, int_param, pick_column, quiet, split_summary,
                             write_meta)
from tools.prep.time_index import (YEAR_RANGE, _check_frequency, _choose_time, _first_bad, _is_numeric, _iso,
                                   _parse_times, _Regular, _regularise, describe_frequency, detect_frequency,
                                   seasonality_hint)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TASK_TYPE = "time_series_forecasting"

#: Lower-case column names taken for the target before falling back to the last numeric column.
TARGET_NAMES = ("y", "value", "values", "target", "sales", "count", "counts", "demand", "quantity", "volume",
                "amount", "load", "close", "price", "passengers", "sunactivity", "observed")
#: Names that mark an identifier column: never a covariate; a series id when it explains repeated times.
ID_NAMES = ("id", "unique_id", "series_id", "series", "item_id", "store_id", "sku", "ticker", "symbol", "key",
            "index", "row", "row_id", "unnamed: 0")

MAX_FILL_SHARE = 0.20  # refuse to invent more than this share of the target by interpolation
MAX_MISSING_TARGET_SHARE = 0.5  # "missing for most rows"
MAX_SERIES = 10_000  # a series-id column with more groups than this is not a series id
MIN_SERIES_STEPS = 3  # ... nor one whose average group is shorter than this

DEFAULT_LAGS = 24  # lags when no seasonality is found
MAX_DEFAULT_LAGS = 400  # default lags (2 × the seasonal period) are capped here…
DEFAULT_LAGS_TRAIN_SHARE = 4  # …and at a quarter of the training steps, so most steps make a window
MIN_DEFAULT_LAGS = 2
DEFAULT_HORIZON = 1
#: Windows each split needs at the least.
MIN_WINDOWS = {"train": 10, "val": 2, "test": 2}
MAX_WINDOW_BYTES = 4 * 2**30  # refuse window arrays larger than this (set fewer lags or a coarser frequency)
SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------- small helpers
def _int_param(options: DataOptions, name: str, default: int, minimum: int = 1) -> tuple[int, bool]:
    """A positive integer hyperparameter and whether the user set it."""
    given = options.params.get(name) is not None
    return int(int_param(options, name, default, minimum) or default), given

def _shown(value: Any) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 60 else text[:57] + "...'"


# ---------------------------------------------------------------------------- roles
def _is_text(col: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_string_dtype(col) or pd.api.types.is_object_dtype(col)
                or isinstance(col.dtype, pd.CategoricalDtype))


def _choose_series_id(frame: pd.DataFrame, times: pd.Series, time: str, target_hint: str | None,
                      given: str | None, where: str) -> tuple[str | None, str]:
    """The series-id column of a long-format table, or None for one series.

    Inferred only when times repeat: the column with the fewest groups among low-cardinality text (or
    id-named) columns under which no time repeats within a group.
    """
    if given:
        return pick_column(list(frame.columns), given, "series id", where)[0], "named in the spec"
    if not times.dropna().duplicated().any():
        return None, ""
    candidates = []
    for name in frame.columns:
        if name in (time, target_hint):
            continue
        col = frame[name]
        if not (_is_text(col) or name.lower() in ID_NAMES):
            continue
        groups = col.nunique(dropna=True)
        if not 2 <= groups <= min(MAX_SERIES, len(frame) // MIN_SERIES_STEPS):
            continue
        pairs = frame.assign(__t=times)[[name, "__t"]].dropna()
        if not pairs.duplicated().any():
            candidates.append((groups, name))
    if not candidates:
        return None, ""
    groups, name = min(candidates)
    return name, f"inferred: times repeat, and '{name}' splits the rows into {groups} series with no repeated time"


def _numeric(col: pd.Series, name: str, role: str) -> pd.Series:
    """A column as float64; a value that is not a number is a DataError naming it."""
    import pandas as pd

    if _is_numeric(col):
        return col.astype("float64")
    values = pd.to_numeric(col.where(col.isna(), col.astype(str).str.strip()), errors="coerce")
    bad = col.notna() & values.isna()
    if bad.any():
        value, row = _first_bad(col, bad)
        raise DataError(f"The {role} column '{name}' is not numeric: {_shown(value)} in data row {row} is not a number "
                        f"({int(bad.sum())} such values); fix those values or name a numeric {role} column in the spec.")
    return values.astype("float64")


# ---------------------------------------------------------------------------- loading
@dataclass
class _Table:
    """The table reduced to what forecasting needs: parsed time, float target and covariates."""

    frame: pd.DataFrame  # columns: time (datetime64[ns]), target, covariates, series id (if any); sorted
    time: str
    target: str
    series_id: str | None
    covariates: list[str]
    rows: int
    column_names: list[str]
    reasons: dict[str, str]
    ignored: list[str]
    sorted_in_file: bool
    dropped_missing_time: int
    duplicates_explained: int


def _roles_from(inspection: dict[str, Any] | None) -> dict[str, str]:
    """Column roles stored by the dataset stage: a ``roles`` mapping or the report's own keys."""
    if not inspection:
        return {}
    report = inspection.get("report") if isinstance(inspection.get("report"), dict) else inspection
    roles = dict(inspection.get("roles") or report.get("roles") or {})
    for key in ("time", "target", "series_id"):
        if not roles.get(key) and isinstance(report.get(key), str):
            roles[key] = report[key]
    return {k: v for k, v in roles.items() if isinstance(v, str) and v}


def _load(path: Path, options: DataOptions, roles: dict[str, str], log: Log) -> _Table:
    """Read the table, resolve roles and parse time and target; every unusable input is a DataError."""
    import pandas as pd

    from tools.local_data import load_table

    frame, _info = load_table(path)
    where = path.name
    columns = list(frame.columns)
    reasons: dict[str, str] = {}

    time, reasons["time"] = _choose_time(frame, options.time or roles.get("time"), where)
    times, how = _parse_times(frame[time], by_name=True)
    present = frame[time].notna()
    bad = present & times.isna()
    if int(present.sum()) == 0:
        raise DataError(f"The time column '{time}' of {where} is empty; fill it or name the time column in the spec.")
    if bad.any() and how == "numbers":
        value, row = _first_bad(frame[time], bad)
        raise DataError(f"The time column '{time}' holds numbers that are neither whole years ({YEAR_RANGE[0]} to "
                        f"{YEAR_RANGE[1]}) nor epoch timestamps (first: {_shown(value)} in data row {row}); give it "
                        "dates or name the right time column in the spec.")
    if bad.any():
        value, row = _first_bad(frame[time], bad)
        raise DataError(f"The time column '{time}' has {int(bad.sum())} value(s) that do not parse as dates or times "
                        f"(first: {_shown(value)} in data row {row}); fix or remove those rows, or name the right "
                        "time column in the spec.")
    reasons["time"] += f" (read as {how})"

    given_target = options.target or roles.get("target")
    series_given = options.params.get("series_id") or roles.get("series_id")
    series_id, series_reason = _choose_series_id(frame, times, time, given_target, series_given, where)
    if series_id:
        reasons["series_id"] = series_reason

    taken = {time, series_id}
    if given_target:
        target, reasons["target"] = pick_column(columns, given_target, "target", where)
    else:
        numeric = [c for c in columns if c not in taken and _is_numeric(frame[c]) and c.lower() not in ID_NAMES]
        pool = [c for c in columns if c not in taken]
        if not numeric and not any(c.lower() in TARGET_NAMES for c in pool):
            raise DataError(f"{where} has no numeric column to forecast besides the time column '{time}'; "
                            "name the target column in the spec.")
        target, reasons["target"] = pick_column(pool, None, "target", where, TARGET_NAMES,
                                                fallback=numeric[-1] if numeric else None)
        if target.lower() not in TARGET_NAMES:
            reasons["target"] = f"inferred: '{target}' is the last numeric column (set it in the spec to choose another)"
    if target == time:
        raise DataError(f"The column '{time}' cannot be both the time index and the target; name another target "
                        "column in the spec.")
    y = _numeric(frame[target], target, "target")
    if int(y.notna().sum()) == 0:
        raise DataError(f"The target column '{target}' is missing in every row; point the spec at a column with values.")
    missing_share = float(y.isna().mean())
    if missing_share > MAX_MISSING_TARGET_SHARE:
        raise DataError(f"The target column '{target}' is missing for most rows ({int(y.isna().sum())} of {len(y)}); "
                        "supply a more complete series or name another target column.")

    # covariates: the named ones, else every other numeric column that is not an identifier
    ignored: list[str] = []
    given_cov = options.params.get("covariates")
    if given_cov is not None and not isinstance(given_cov, bool):
        names = [given_cov] if isinstance(given_cov, str) else list(given_cov)
        covariates = [pick_column(columns, str(n), "covariate", where)[0] for n in names]
        covariates = [c for c in dict.fromkeys(covariates) if c not in (time, target, series_id)]
    else:
        covariates = []
        for name in columns:
            if name in (time, target, series_id):
                continue
            col = frame[name]
            if given_cov is False or not _is_numeric(col) or name.lower() in ID_NAMES or name.lower().endswith("_id"):
                ignored.append(name)
            elif col.notna().sum() == 0 or col.nunique(dropna=True) < 2:
                ignored.append(name)
            else:
                covariates.append(name)
    data = {time: times}
    data[target] = y
    for name in covariates:
        data[name] = _numeric(frame[name], name, "covariate")
    if series_id:
        data[series_id] = frame[series_id].astype("string").astype(object)
    table = pd.DataFrame(data)

    keep = table[time].notna()
    if series_id:
        keep &= table[series_id].notna()
    dropped = int((~keep).sum())
    if dropped:
        log(f"Dropped {dropped} row(s) without a time{' or series id' if series_id else ''}.", "warning")
        table = table[keep]
    keys = [series_id, time] if series_id else [time]
    if table[time].nunique() < 2:
        raise DataError(f"The time column '{time}' has a single distinct time ({_iso(table[time].iloc[0])}); "
                        "a forecast needs a series of many time steps.")
    duplicated = table.duplicated(keys, keep=False)
    if duplicated.any():
        repeats = int(table.duplicated(keys).sum())
        first = table[duplicated].iloc[0]
        same = table[time] == first[time]
        if series_id:
            same &= table[series_id] == first[series_id]
        scope = f" within series {first[series_id]!r} of '{series_id}'" if series_id else ""
        hint = ("" if series_id else "; a table of several series needs a text column naming each series")
        raise DataError(f"The time column '{time}' has {repeats} duplicate timestamp(s){scope} (first: "
                        f"{_iso(first[time])} appears {int(same.sum())} times); aggregate rows with the same time "
                        f"(sum or mean per {time}){hint}.")
    explained = int(table[time].duplicated().sum()) if series_id else 0
    order = (table.groupby(series_id, sort=False)[time].apply(lambda s: s.is_monotonic_increasing).all()
             if series_id else table[time].is_monotonic_increasing)
    table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    if not order:
        log(f"Rows are not in time order in {where}; sorted them by '{time}'.", "warning")
    return _Table(frame=table, time=time, target=target, series_id=series_id, covariates=covariates,
                  rows=int(len(frame)), column_names=columns, reasons=reasons, ignored=ignored,
                  sorted_in_file=bool(order), dropped_missing_time=dropped, duplicates_explained=explained)


# ---------------------------------------------------------------------------- splitting
def _cut_positions(m: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Where validation and test start on a time axis of ``m`` steps."""
    n_test = max(1, int(round(m * test_fraction)))
    n_val = max(1, int(round(m * val_fraction)))
    return m - n_val - n_test, m - n_test


def _target_starts(times: pd.DatetimeIndex, val_start: Any, test_start: Any, lags: int,
                   horizon: int) -> dict[str, np.ndarray]:
    """Row positions of each window's first target step, per split; no window's targets cross a cut."""
    import numpy as np

    n = len(times)
    c1 = int(times.searchsorted(val_start, side="left"))
    c2 = int(times.searchsorted(test_start, side="left"))
    ranges = {"train": (lags, c1 - horizon), "val": (max(c1, lags), c2 - horizon), "test": (max(c2, lags), n - horizon)}
    return {name: np.arange(lo, hi + 1, dtype="int64") if hi >= lo else np.zeros(0, dtype="int64")
            for name, (lo, hi) in ranges.items()}


def rows_needed(lags: int, horizon: int, val_fraction: float, test_fraction: float) -> int:
    """The fewest time steps one series needs for :data:`MIN_WINDOWS` windows in every split."""
    for m in range(3, 10_000_000):
        c1, c2 = _cut_positions(m, val_fraction, test_fraction)
        counts = {"train": c1 - lags - horizon + 1, "val": c2 - max(c1, lags) - horizon + 1,
                  "test": m - max(c2, lags) - horizon + 1}
        if c1 > 0 and all(counts[s] >= MIN_WINDOWS[s] for s in SPLITS):
            return m
    return 10_000_000


# ---------------------------------------------------------------------------- the shared analysis
@dataclass
class _Analysis:
    table: _Table
    frequency: str
    frequency_how: str
    series: dict[Any, _Regular]  # series key (None for one series) → its regular form
    hint: dict[str, Any] | None
    lags: int
    lags_reason: str
    horizon: int
    val_start: Any
    test_start: Any
    counts: dict[str, int]


def _fractions(options: DataOptions) -> tuple[float, float]:
    val, test = float(options.val_fraction), float(options.test_fraction)
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise SpecError(f"The validation and test fractions ({val}, {test}) must each be above 0 and sum to less "
                        "than 1; fix them in the spec.")
    return val, test


def _analyse(path: Path, options: DataOptions, roles: dict[str, str], log: Log) -> _Analysis:
    """Everything inspect reports and prepare writes from, computed the same way for both."""
    import pandas as pd

    table = _load(path, options, roles, log)
    frame, time, target = table.frame, table.time, table.target
    val_fraction, test_fraction = _fractions(options)
    parts = dict(iter(frame.groupby(table.series_id, sort=True))) if table.series_id else {None: frame}
    longest = max(parts, key=lambda k: len(parts[k]))
    if options.params.get("frequency"):
        frequency, how = _check_frequency(options.params["frequency"]), "named in the spec"
    else:
        frequency, how = detect_frequency(pd.DatetimeIndex(parts[longest][time]))
    series = {key: _regularise(part, time, target, table.covariates, frequency) for key, part in parts.items()}
    steps = sum(len(r.frame) for r in series.values())
    filled = sum(r.filled_target for r in series.values())
    if steps and filled / steps > MAX_FILL_SHARE:
        gaps = sum(r.gaps for r in series.values())
        raise DataError(f"Regularising '{target}' to a {describe_frequency(frequency)} series ({frequency}) would fill "
                        f"{filled} of {steps} steps ({filled / steps:.0%}: {gaps} missing timestamps plus missing "
                        f"values), more than the {MAX_FILL_SHARE:.0%} allowed; supply a more complete series or resample it "
                        "to a coarser frequency.")
    main = series[longest].frame[target].to_numpy()
    hint = seasonality_hint(main, frequency)

    horizon, _ = _int_param(options, "horizon", DEFAULT_HORIZON)
    grid = pd.DatetimeIndex(sorted(set().union(*(r.frame.index for r in series.values()))))
    c1, c2 = _cut_positions(len(grid), val_fraction, test_fraction)
    lags, lags_given = _int_param(options, "lags", DEFAULT_LAGS)
    if lags_given:
        lags_reason = "set in the spec"
    else:
        wanted = 2 * hint["period"] if hint else DEFAULT_LAGS
        why = f"2 × the seasonal period {hint['period']}" if hint else "the default (no seasonality found)"
        cap = min(MAX_DEFAULT_LAGS, max(MIN_DEFAULT_LAGS, c1 // DEFAULT_LAGS_TRAIN_SHARE))
        lags = max(MIN_DEFAULT_LAGS, min(wanted, cap))
        lags_reason = why if lags == wanted else f"{why}, capped at {lags} to leave enough training windows"
    if c1 <= 0:
        counts = {s: 0 for s in SPLITS}
        val_start = test_start = grid[-1]
    else:
        val_start, test_start = grid[c1], grid[c2]
        counts = {s: 0 for s in SPLITS}
        for regular in series.values():
            for split, starts in _target_starts(regular.frame.index, val_start, test_start, lags, horizon).items():
                counts[split] += len(starts)
    short = [s for s in SPLITS if counts[s] < MIN_WINDOWS[s]]
    if short:
        need = rows_needed(lags, horizon, val_fraction, test_fraction)
        have = len(series[longest].frame)
        which = "the longest series has" if table.series_id else "the series has"
        raise DataError(f"Too few time steps for {lags} lags and a horizon of {horizon}: {which} {have} "
                        f"{describe_frequency(frequency)} steps but needs at least {need} to give "
                        f"{MIN_WINDOWS['train']} training and {MIN_WINDOWS['val']} validation and test windows "
                        f"(short: {', '.join(short)}); supply a longer series or set smaller lags or horizon.")
    total = sum(counts.values()) * lags * (1 + len(table.covariates)) * 4
    if total > MAX_WINDOW_BYTES:
        raise DataError(f"The windows would take {total / 2**30:.1f} GiB ({sum(counts.values())} windows of {lags} "
                        "steps); set fewer lags or resample the series to a coarser frequency.")
    return _Analysis(table=table, frequency=frequency, frequency_how=how, series=series, hint=hint, lags=lags,
                     lags_reason=lags_reason, horizon=horizon, val_start=val_start, test_start=test_start,
                     counts=counts)


def _filled(analysis: _Analysis) -> dict[str, int]:
    series = analysis.series.values()
    return {"timestamps": sum(r.gaps for r in series), "target": sum(r.filled_target for r in series),
            "covariates": sum(r.filled_covariates for r in series), "off_grid_rows": sum(r.off_grid for r in series),
            "trimmed_edges": sum(r.trimmed for r in series)}


# ---------------------------------------------------------------------------- the family
class TimeSeriesFamily:
    """Forecasting data: regularised series → time-ordered windows."""

    name = "time_series"

    def inspect(self, path: Path, options: DataOptions, log: Log = quiet) -> Inspection:
        """Check the series can be windowed and split in time; report what was found and inferred."""
        analysis = _analyse(path, options, {}, log)
        table = analysis.table
        frame, time, target = table.frame, table.time, table.target
        y = frame[target]
        filled = _filled(analysis)
        hint = analysis.hint
        words = describe_frequency(analysis.frequency)
        report: dict[str, Any] = {
            "family": "time_series",
            "rows": table.rows,
            "columns": len(table.column_names),
            "column_names": table.column_names,
            "time": time,
            "target": target,
            "series_id": table.series_id,
            "series": len(analysis.series),
            "start": _iso(frame[time].min()),
            "end": _iso(frame[time].max()),
            "frequency": analysis.frequency,
            "frequency_words": words,
            "frequency_how": analysis.frequency_how,
            "regular": filled["timestamps"] == 0 and filled["off_grid_rows"] == 0,
            "gaps": filled["timestamps"],
            "off_grid": filled["off_grid_rows"],
            "duplicates": table.duplicates_explained,
            "missing_values": int(y.isna().sum()),
            "missing_time_rows": table.dropped_missing_time,
            "target_stats": {k: float(getattr(y, k)()) for k in ("mean", "std", "min", "max")},
            "seasonality_hint": hint,
            "sorted_in_file": table.sorted_in_file,
            "covariates": table.covariates,
            "ignored_columns": table.ignored,
            "roles_reason": table.reasons,
            "time_reason": table.reasons["time"],
            "target_reason": table.reasons["target"],
            "steps": sum(len(r.frame) for r in analysis.series.values()),
            "would_fill": filled,
            "lags": analysis.lags,
            "lags_reason": analysis.lags_reason,
            "horizon": analysis.horizon,
            "windows": analysis.counts,
        }
        if report["target_stats"]["std"] != report["target_stats"]["std"]:  # NaN for one value
            report["target_stats"]["std"] = 0.0
        if y.nunique() < 2:
            log(f"The target '{target}' is constant; a forecaster can only learn that constant.", "warning")
        roles = {"time": time, "target": target}
        if table.series_id:
            roles["series_id"] = table.series_id
        season = f", seasonality {hint['period']}" if hint else ""
        many = f" in {len(analysis.series)} series by '{table.series_id}'" if table.series_id else ""
        summary = (f"time series: '{target}' over '{time}', {report['steps']} {words} steps{many} "
                   f"{report['start']}…{report['end']}, {report['gaps']} gaps{season}")
        return Inspection(report=report, roles=roles, task_type=options.task_type or TASK_TYPE,
                          task_type_reason=(f"'{time}' is a time index and '{target}' a numeric series to forecast"
                                            if not options.task_type else f"the spec asks for {options.task_type}"),
                          summary=summary)

    def prepare(self, path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                log: Log = quiet) -> Prepared:
        """Write time-ordered windows scaled with training statistics; see the module docstring."""
        import numpy as np
        import pandas as pd

        analysis = _analyse(path, options, _roles_from(inspection), log)
        table = analysis.table
        target, covariates = table.target, table.covariates
        features = [target, *covariates]
        lags, horizon = analysis.lags, analysis.horizon

        # train-only statistics: every regular row before the validation cut
        train_rows = pd.concat([r.frame[r.frame.index < analysis.val_start] for r in analysis.series.values()])
        means, stds = {}, {}
        for name in features:
            column = train_rows[name].dropna()
            mean = float(column.mean()) if len(column) else 0.0
            std = float(column.std(ddof=0)) if len(column) > 1 else 0.0
            means[name] = mean if np.isfinite(mean) else 0.0
            stds[name] = std if np.isfinite(std) and std > 0 else 1.0

        out_dir.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, dict[str, list[np.ndarray]]] = {s: {"X": [], "y": [], "t": [], "s": []} for s in SPLITS}
        keys = list(analysis.series)
        frames = []
        for number, key in enumerate(keys):
            regular = analysis.series[key]
            frame = regular.frame
            scaled = np.stack([((frame[n] - means[n]) / stds[n]).fillna(0.0).to_numpy("float64") for n in features],
                              axis=1).astype("float32")
            times = frame.index.as_unit("ns")
            starts = _target_starts(times, analysis.val_start, analysis.test_start, lags, horizon)
            for split, positions in starts.items():
                inputs = positions[:, None] - lags + np.arange(lags)[None, :]
                outputs = positions[:, None] + np.arange(horizon)[None, :]
                arrays[split]["X"].append(scaled[inputs])
                arrays[split]["y"].append(scaled[outputs, 0])
                arrays[split]["t"].append(times.asi8[positions].astype("int64"))
                arrays[split]["s"].append(np.full(len(positions), number, dtype="int64"))
            out = frame.reset_index()
            out.insert(1, "filled", regular.filled_mask)
            if table.series_id:
                out.insert(0, table.series_id, key)
            frames.append(out)

        files: dict[str, str] = {}
        splits: dict[str, int] = {}
        for split in SPLITS:
            parts = arrays[split]
            x = np.concatenate(parts["X"]) if parts["X"] else np.zeros((0, lags, len(features)), "float32")
            y = np.concatenate(parts["y"]) if parts["y"] else np.zeros((0, horizon), "float32")
            t = np.concatenate(parts["t"]) if parts["t"] else np.zeros(0, "int64")
            if table.series_id:
                sid = np.concatenate(parts["s"]) if parts["s"] else np.zeros(0, "int64")
                order = np.lexsort((sid, t))  # time first, so a split reads in time order across series
                x, y, t, sid = x[order], y[order], t[order], sid[order]
                np.save(out_dir / f"s_{split}.npy", sid)
                files[f"s_{split}"] = str((out_dir / f"s_{split}.npy").resolve())
            for name, array in (("X", x), ("y", y), ("t", t)):
                file = out_dir / f"{name}_{split}.npy"
                np.save(file, array)
                files[f"{name}_{split}"] = str(file.resolve())
            splits[split] = int(len(y))
        series_path = out_dir / "series.parquet"
        pd.concat(frames, ignore_index=True).to_parquet(series_path, index=False)
        files["series"] = str(series_path.resolve())

        filled = _filled(analysis)
        frequency = analysis.frequency
        split_times = {
            "train_end": _iso(max(r.frame.index[r.frame.index < analysis.val_start].max()
                                  for r in analysis.series.values() if (r.frame.index < analysis.val_start).any())),
            "val_start": _iso(analysis.val_start),
            "val_end": _iso(max(r.frame.index[r.frame.index < analysis.test_start].max()
                                for r in analysis.series.values())),
            "test_start": _iso(analysis.test_start),
        }
        scale = {"mean": means[target], "std": stds[target],
                 "features": {n: {"mean": means[n], "std": stds[n]} for n in features}}
        meta: dict[str, Any] = {
            "family": "time_series",
            "task_type": options.task_type or TASK_TYPE,
            "files": {k: Path(v).name for k, v in files.items()},
            "layout": {
                "X": "float32 (N, lags, features): scaled past values, feature 0 is the target",
                "y": "float32 (N, horizon): scaled future target; original = y * scale.std + scale.mean",
                "t": "int64 ns timestamp of each window's first forecast step",
                **({"s": "int64 index into 'series' of each window's series"} if table.series_id else {}),
                "series.parquet": "the regularised series, unscaled; 'filled' marks interpolated targets",
            },
            "time": table.time,
            "target": target,
            "series_id": table.series_id,
            "series": [str(k) for k in keys] if table.series_id else None,
            "lags": lags,
            "horizon": horizon,
            "frequency": frequency,
            "frequency_words": describe_frequency(frequency),
            "scale": scale,
            "features": features,
            "covariates": covariates,
            "splits": splits,
            "split_times": split_times,
            "seed": options.seed,
            "shuffled": False,
            "filled": filled,
        }
        meta_path = write_meta(out_dir, meta)
        files["meta"] = str(meta_path.resolve())
        report = {
            "splits": splits,
            "seed": options.seed,
            "lags": lags,
            "lags_reason": analysis.lags_reason,
            "horizon": horizon,
            "frequency": frequency,
            "filled": filled,
            "split_times": split_times,
            "features": features,
            "scale": {"mean": means[target], "std": stds[target]},
        }
        json.dumps(report)  # JSON-friendly by construction; fail here rather than in the store
        summary = (f"time series windows {lags}→{horizon} ({describe_frequency(frequency)}), "
                   f"{split_summary(splits)}, split by time at {split_times['val_start']} / {split_times['test_start']}")
        return Prepared(report=report, files=files, summary=summary)


TIME_SERIES = TimeSeriesFamily()
