"""Reading and understanding a time axis: which column holds the time, how its values parse
(dates, years, epoch numbers), which frequency the times follow, how a series goes onto that regular
grid, and a seasonality hint from autocorrelation.

Split out of :mod:`tools.prep.timeseries`, which keeps loading, windowing and splitting by time; this
module knows nothing about windows or splits. Public names stay importable from ``tools.prep.timeseries``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DataError, SpecError
from tools.prep.base import pick_column

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Lower-case column names taken for the time index, in order of preference.
TIME_NAMES = ("ds", "date", "datetime", "timestamp", "time", "date_time", "period", "month", "year", "week",
              "day", "dt")

PARSE_SHARE = 0.95  # a column is a time column when at least this share of its values parse as datetimes
PARSE_SAMPLE = 500  # values tried per column while guessing the time column
YEAR_RANGE = (1678, 2261)  # plain integer years that fit a nanosecond timestamp
#: (lowest, highest) median magnitude → unit of numeric epoch timestamps (only for a time column by name).
EPOCH_UNITS = ((1e8, 1e11, "s"), (1e11, 1e14, "ms"), (1e14, 1e17, "us"), (1e17, 1e19, "ns"))

#: Frequency base → candidate seasonal periods (in steps); bases not here get an autocorrelation scan.
SEASONAL_CANDIDATES: dict[str, tuple[int, ...]] = {
    "min": (60, 1440), "h": (24, 168), "D": (7, 365), "B": (5, 260), "W": (52,),
    "MS": (12,), "ME": (12,), "SMS": (24,), "SME": (24,), "QS": (4,), "QE": (4,),
}
SCAN_MAX_LAG = 60  # the scan looks for the strongest autocorrelation peak up to this lag
MIN_AUTOCORRELATION = 0.2  # a peak weaker than this is no seasonality hint

#: Frequency base → (unit in words, adjective for one unit).
FREQUENCY_WORDS: dict[str, tuple[str, str]] = {
    "ns": ("nanosecond", "every nanosecond"), "us": ("microsecond", "every microsecond"),
    "ms": ("millisecond", "every millisecond"), "s": ("second", "every second"), "min": ("minute", "every minute"),
    "h": ("hour", "hourly"), "D": ("day", "daily"), "B": ("business day", "business-daily"),
    "W": ("week", "weekly"), "SMS": ("half-month", "semi-monthly"), "SME": ("half-month", "semi-monthly"),
    "MS": ("month", "monthly"), "ME": ("month", "monthly"), "BMS": ("business month", "monthly"),
    "BME": ("business month", "monthly"), "QS": ("quarter", "quarterly"), "QE": ("quarter", "quarterly"),
    "BQS": ("quarter", "quarterly"), "BQE": ("quarter", "quarterly"), "YS": ("year", "yearly"),
    "YE": ("year", "yearly"), "BYS": ("year", "yearly"), "BYE": ("year", "yearly"),
}


# ---------------------------------------------------------------------------- parsing times
def _freq_parts(alias: str) -> tuple[int, str]:
    """'7D' → (7, 'D'); 'W-SUN' → (1, 'W'); 'QS-OCT' → (1, 'QS')."""
    match = re.match(r"^(\d*)([A-Za-z]+)(?:-[A-Za-z]+)?$", alias)
    if not match:
        return 1, alias
    return int(match.group(1) or 1), match.group(2)


def describe_frequency(alias: str) -> str:
    """A pandas offset alias in words: 'D' → 'daily', '15min' → 'every 15 minutes'."""
    n, base = _freq_parts(alias)
    unit, adjective = FREQUENCY_WORDS.get(base, (alias, f"every {alias}"))
    if unit == alias:
        return f"every {alias}"
    return adjective if n == 1 else f"every {n} {unit}s"


def _iso(stamp: Any) -> str:
    import pandas as pd

    stamp = pd.Timestamp(stamp)
    return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()


def _to_ns(values: pd.Series) -> pd.Series:
    """Naive nanosecond datetimes (tz-aware values are converted to UTC first)."""
    import pandas as pd

    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        return values.astype("datetime64[ns]")
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError) as err:
        raise DataError(f"Some times lie outside the years 1678 to 2261 that can be handled ({err}); "
                        "shift or drop those rows.") from err


def _parse_times(col: pd.Series, by_name: bool) -> tuple[pd.Series, str]:
    """Datetimes for a column (NaT where a value does not parse) and how they were read.

    Plain integers are years when every value is a whole number in :data:`YEAR_RANGE` (the sunspots
    layout); large integers are epoch timestamps only for a column chosen by name.
    """
    import pandas as pd

    empty = pd.Series(pd.NaT, index=col.index, dtype="datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(col):
        return _to_ns(col), "datetimes"
    if pd.api.types.is_bool_dtype(col):
        return empty, "booleans"
    if pd.api.types.is_numeric_dtype(col):
        values = pd.to_numeric(col, errors="coerce").astype("float64")
        present = values.dropna()
        if present.empty:
            return empty, "numbers"
        if (present == present.round()).all() and present.between(*YEAR_RANGE).all():
            out = empty.copy()
            years = present.to_numpy().astype("int64") - 1970
            out[present.index] = years.astype("datetime64[Y]").astype("datetime64[ns]")
            return out, "years"
        if by_name:
            magnitude = float(present.abs().median())
            for low, high, unit in EPOCH_UNITS:
                if low <= magnitude < high:
                    parsed = pd.to_datetime(values, unit=unit, errors="coerce")
                    return _to_ns(parsed), f"epoch {unit}"
        return empty, "numbers"
    text = col.where(col.isna(), col.astype(str).str.strip())
    best, best_count, how = empty, -1, "text"
    attempts: list[dict[str, Any]] = [{}, {"dayfirst": True}, {"format": "mixed"}]
    for kwargs in attempts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(text, errors="coerce", utc=True, **kwargs)
            except (ValueError, TypeError, OverflowError):
                continue
        count = int(parsed.notna().sum())
        if count > best_count:
            best, best_count, how = parsed, count, "text dates" + (" (day first)" if kwargs.get("dayfirst") else "")
        if best_count == int(text.notna().sum()):
            break
    if best_count <= 0:
        return empty, "text"
    return _to_ns(best), how


def _parse_share(col: pd.Series, by_name: bool) -> float:
    """The share of a column's (sampled) values that parse as times: used to guess the time column."""
    sample = col.dropna().head(PARSE_SAMPLE)
    if sample.empty:
        return 0.0
    parsed, _ = _parse_times(sample, by_name)
    if parsed.nunique() < 2:
        return 0.0
    if not by_name and _is_numeric(sample) and sample.nunique() < PARSE_SHARE * len(sample):
        return 0.0  # a numeric column passes for years only when its values are (nearly) all distinct
    return float(parsed.notna().mean())


def _first_bad(col: pd.Series, bad: pd.Series) -> tuple[Any, int]:
    """The first offending value and its 1-based data row."""
    position = int(bad.to_numpy().nonzero()[0][0])
    return col.iloc[position], position + 1


def _is_numeric(col: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col))


# ---------------------------------------------------------------------------- the time column
def _choose_time(frame: pd.DataFrame, given: str | None, where: str) -> tuple[str, str]:
    """The time column: as named, else by name, else the first column whose values parse as times."""
    columns = list(frame.columns)
    if given:
        return pick_column(columns, given, "time", where)
    named = [c for c in columns if c.lower() in TIME_NAMES]
    named.sort(key=lambda c: TIME_NAMES.index(c.lower()))
    for name in named:
        if _parse_share(frame[name], by_name=True) >= PARSE_SHARE:
            return name, f"inferred: the column is called '{name}' and holds times"
    for name in columns:
        if name not in named and _parse_share(frame[name], by_name=False) >= PARSE_SHARE:
            return name, f"inferred: '{name}' is the first column whose values parse as times"
    if named:  # the name says time but the values do not: report them rather than guess on
        return named[0], f"inferred: the column is called '{named[0]}'"
    raise DataError(f"No column of {where} holds dates or times (none named like {', '.join(TIME_NAMES[:6])} and none "
                    "that parses as datetimes); name the time column in the spec's data section.")


# ---------------------------------------------------------------------------- frequency, regularity, seasonality
def detect_frequency(times: pd.DatetimeIndex) -> tuple[str, str]:
    """A pandas offset alias for sorted unique times and how it was found.

    ``pd.infer_freq`` when the series is perfectly regular; otherwise calendar anchors (year starts,
    month starts or ends, weekdays only) with their modal step; otherwise the modal difference.
    """
    import numpy as np
    import pandas as pd

    times = pd.DatetimeIndex(times).as_unit("ns")
    if len(times) >= 3:
        with pd.option_context("future.infer_freq_returns_offset", True):
            inferred = pd.infer_freq(times)
        if inferred is not None:
            return inferred.freqstr, "inferred from the regular time index"
    diffs = np.diff(times.asi8)
    values, counts = np.unique(diffs, return_counts=True)
    modal = int(values[counts.argmax()])
    midnight = bool((times == times.normalize()).all())
    months = np.asarray(times.year * 12 + times.month)
    if midnight and ((times.month == 1) & (times.day == 1)).all():
        step = _modal_positive(np.diff(months) // 12)
        return (f"{step}YS" if step > 1 else "YS"), "year starts, modal step"
    if midnight and (times.day == 1).all():
        step = _modal_positive(np.diff(months))
        if step % 3 == 0 and (np.asarray(times.month) % 3 == 1).all():
            return (f"{step // 3}QS" if step > 3 else "QS"), "quarter starts, modal step"
        return (f"{step}MS" if step > 1 else "MS"), "month starts, modal step"
    if midnight and times.is_month_end.all():
        step = _modal_positive(np.diff(months))
        return (f"{step}ME" if step > 1 else "ME"), "month ends, modal step"
    day = 86_400 * 10**9
    if modal == day and (times.day_of_week < 5).all() and (diffs == 3 * day).any():
        return "B", "weekdays only, modal step of one day"
    delta = pd.Timedelta(modal)
    if modal % day == 0:
        return (f"{modal // day}D" if modal > day else "D"), "the most common difference between times"
    from pandas.tseries.frequencies import to_offset

    return to_offset(delta).freqstr, "the most common difference between times"


def _modal_positive(steps: np.ndarray) -> int:
    import numpy as np

    steps = steps[steps > 0]
    if steps.size == 0:
        return 1
    values, counts = np.unique(steps, return_counts=True)
    return int(values[counts.argmax()])


def _check_frequency(alias: str) -> str:
    """A user-given frequency as a pandas alias (SpecError when pandas does not know it)."""
    from pandas.tseries.frequencies import to_offset

    try:
        return to_offset(str(alias)).freqstr
    except (ValueError, TypeError) as err:
        raise SpecError(f"The frequency {alias!r} is not a pandas offset alias (such as D, h, W-SUN, MS, YS); "
                        f"fix the hyperparameter frequency ({str(err).splitlines()[0][:80]}).") from err


@dataclass
class _Regular:
    """One series on a regular grid, with what regularising it took."""

    frame: pd.DataFrame  # DatetimeIndex on the grid; target interpolated; covariates forward-filled
    filled_mask: np.ndarray  # True where the target was invented
    gaps: int  # grid times with no row
    off_grid: int  # rows whose time is not on the grid (averaged into their period)
    filled_target: int
    filled_covariates: int
    trimmed: int  # leading/trailing steps without a target, dropped


def _regularise(part: pd.DataFrame, time: str, target: str, covariates: list[str], freq: str) -> _Regular:
    """Put one series on the ``freq`` grid: reindex (or average off-grid rows into their period),
    interpolate the target in time, forward-fill covariates; edges without a target are dropped."""
    import numpy as np
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    values = part.set_index(time)[[target, *covariates]]
    index = pd.DatetimeIndex(values.index)
    grid = pd.date_range(index[0], index[-1], freq=freq)
    on_grid = index.isin(grid)
    off_grid = int((~on_grid).sum())
    if off_grid == 0:
        regular = values.reindex(grid)
        gaps = int(len(grid) - len(index))
    else:
        offset = to_offset(freq)
        kwargs = {"origin": "start"} if isinstance(offset, pd.tseries.offsets.Tick) or offset.rule_code == "D" else {}
        resampler = values.resample(freq, **kwargs)
        regular = resampler.mean()
        gaps = int((resampler.size() == 0).sum())
    regular.index = pd.DatetimeIndex(regular.index).as_unit("ns")
    regular.index.name = time
    y = regular[target]
    present = y.notna().to_numpy()
    first, last = int(present.argmax()), len(present) - int(present[::-1].argmax())
    trimmed = len(regular) - (last - first)
    regular = regular.iloc[first:last]
    filled_mask = regular[target].isna().to_numpy()
    if filled_mask.any():
        regular[target] = regular[target].interpolate(method="time")
    filled_cov = int(regular[covariates].isna().sum().sum()) if covariates else 0
    if covariates:
        regular[covariates] = regular[covariates].ffill()
    return _Regular(frame=regular, filled_mask=np.asarray(filled_mask, dtype=bool), gaps=gaps, off_grid=off_grid,
                    filled_target=int(filled_mask.sum()), filled_covariates=filled_cov, trimmed=trimmed)


def _autocorrelation(values: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of the linearly detrended series for lags 0..max_lag (a trend hides seasonality)."""
    import numpy as np

    x = np.asarray(values, dtype="float64")
    steps = np.arange(len(x), dtype="float64")
    slope, intercept = np.polyfit(steps, x, 1)
    x = x - (slope * steps + intercept)
    denominator = float(np.dot(x, x))
    if denominator <= 0:
        return np.zeros(max_lag + 1)
    return np.array([1.0] + [float(np.dot(x[:-k], x[k:])) / denominator for k in range(1, max_lag + 1)])


def seasonality_hint(values: np.ndarray, freq: str) -> dict[str, Any] | None:
    """The strongest seasonal period among the frequency's candidates (or, for other frequencies, the
    strongest autocorrelation peak up to :data:`SCAN_MAX_LAG`) that at least two cycles of data cover.

    A period counts only where the autocorrelation peaks (higher than at the neighbouring lags), so a
    smooth series, correlated at every short lag, gets no hint.
    """
    n_mult, base = _freq_parts(freq)
    n = len(values)
    candidates = SEASONAL_CANDIDATES.get(base, ()) if n_mult == 1 else ()
    if candidates:
        periods = [p for p in candidates if 2 * p + 1 <= n]
        how = "candidate periods for this frequency"
    else:
        periods = list(range(2, min(SCAN_MAX_LAG, (n - 1) // 2) + 1))
        how = "scan of autocorrelation peaks"
    if not periods:
        return None
    acf = _autocorrelation(values, min(max(periods) + 1, n - 1))
    best: tuple[float, int] | None = None
    for p in periods:
        if p + 1 >= len(acf):
            continue
        r = acf[p]
        if r >= acf[p - 1] and r >= acf[p + 1] and r >= MIN_AUTOCORRELATION and (best is None or r > best[0]):
            best = (float(r), p)
    if best is None:
        return None
    return {"period": best[1], "autocorrelation": round(best[0], 3), "how": how}
