"""
Forecast with an exported mltrainer time-series model (linear / MLP / LSTM forecaster).

This file ships in the export folder next to model.safetensors, model.json (architecture, scale,
frequency, lags, horizon), meta.json (the prepared data's description) and forecaster_nets.py
(the network code train.py used).

    python predict.py --input history.csv --output forecast.csv

Input: a CSV (or parquet/JSON) with the time column, the target and the covariates the model was
trained with, holding at least the `lags` most recent steps (per series, with the series-id column,
when the model was trained on several series). Rows may come in any order; a few missing steps
inside the window are interpolated like the training data was.
Output: one row per future step: [series id,] time, forecast of the target, step (1..horizon).

From Python (any working directory):

    spec = importlib.util.spec_from_file_location("predict", "export/predict.py")
    predict = importlib.util.module_from_spec(spec); spec.loader.exec_module(predict)
    rows = predict.Predictor.load("export").predict(frame)   # list of dicts
"""

import argparse
import importlib.util
import json
import os
import sys
import warnings

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_FILL_SHARE = 0.20  # refuse to invent more than this share of a window's target values
YEAR_RANGE = (1678, 2261)  # whole numbers in this range are years (as preprocessing read them)


def _load_nets(folder: str):
    """Import the export's forecaster_nets.py by path, so it works from any working directory."""
    path = os.path.join(os.path.abspath(folder), "forecaster_nets.py")
    name = f"_mltrainer_forecaster_nets_{abs(hash(path))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _parse_times(col: pd.Series, name: str) -> pd.Series:
    """Naive datetimes the way preprocessing read them: datetimes, whole years, or date text."""
    if pd.api.types.is_datetime64_any_dtype(col):
        parsed = pd.to_datetime(col, utc=True)
    elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        values = pd.to_numeric(col, errors="coerce")
        if not ((values == values.round()) & values.between(*YEAR_RANGE)).all():
            raise ValueError(f"The time column '{name}' holds numbers that are not whole years; give it dates.")
        return pd.Series(pd.to_datetime(values.astype("int64").astype(str), format="%Y"), index=col.index)
    else:
        text = col.where(col.isna(), col.astype(str).str.strip())
        parsed = None
        for kwargs in ({}, {"dayfirst": True}, {"format": "mixed"}):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    attempt = pd.to_datetime(text, errors="coerce", utc=True, **kwargs)
                except (ValueError, TypeError, OverflowError):
                    continue
            if parsed is None or attempt.notna().sum() > parsed.notna().sum():
                parsed = attempt
        if parsed is None:
            parsed = pd.Series(pd.NaT, index=col.index, dtype="datetime64[ns, UTC]")
    bad = parsed.isna()
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise ValueError(f"The time column '{name}' has {int(bad.sum())} value(s) that are not dates "
                         f"(first: {col.iloc[first]!r} in row {first + 1}).")
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")


def _stamp(t: pd.Timestamp) -> str:
    return t.date().isoformat() if t == t.normalize() else t.isoformat()


class Predictor:
    """An exported forecaster: model.json's description, the network and the scaling."""

    def __init__(self, folder: str, info: dict, model: torch.nn.Module):
        self.folder, self.info, self.model = folder, info, model
        self.lags, self.horizon = int(info["lags"]), int(info["horizon"])
        self.features = list(info["features"])
        scale = info["scale"]
        stats = scale.get("features") or {self.features[0]: {"mean": scale["mean"], "std": scale["std"]}}
        self.mean = np.array([float(stats[f]["mean"]) for f in self.features])
        self.std = np.array([float(stats[f]["std"]) for f in self.features])

    @classmethod
    def load(cls, folder: str = HERE) -> "Predictor":
        for name in ("model.json", "model.safetensors", "forecaster_nets.py"):
            if not os.path.isfile(os.path.join(folder, name)):
                raise ValueError(f"The export folder {folder} has no {name}; export the job again.")
        with open(os.path.join(folder, "model.json")) as f:
            info = json.load(f)
        if info.get("family") != "forecaster":
            raise ValueError(f"{folder}/model.json is not a forecaster (family {info.get('family')!r}).")
        nets = _load_nets(folder)
        model = nets.build_model(**info["architecture"])
        model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
        model.eval()
        return cls(folder, info, model)

    @torch.no_grad()
    def predict_windows(self, X: np.ndarray) -> np.ndarray:
        """Scaled windows (N, lags, features), as preprocessing wrote them → forecasts (N, horizon) in original units."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3 or X.shape[1:] != (self.lags, len(self.features)):
            raise ValueError(f"Expected windows of shape (N, {self.lags}, {len(self.features)}), got {X.shape}.")
        out = [self.model(torch.from_numpy(X[s:s + 8192])).float().numpy() for s in range(0, len(X), 8192)]
        scaled = np.concatenate(out) if out else np.zeros((0, self.horizon), np.float32)
        return scaled.astype(np.float64) * self.std[0] + self.mean[0]

    def _window(self, part: pd.DataFrame, label: str) -> tuple[np.ndarray, pd.Timestamp]:
        """The last `lags` steps of one series on the model's frequency grid, scaled: (lags, features)."""
        time, freq = self.info["time"], self.info["frequency"]
        part = part.sort_values(time)
        if part[time].duplicated().any():
            dup = part.loc[part[time].duplicated(), time].iloc[0]
            raise ValueError(f"The time {_stamp(dup)}{label} appears more than once; give one row per time step.")
        last = part[time].iloc[-1]
        grid = pd.date_range(end=last, periods=self.lags, freq=freq)
        if len(grid) != self.lags or grid[-1] != last:
            raise ValueError(f"The last time {_stamp(last)}{label} is not on the model's frequency ({freq}); "
                             "give times like the training data's.")
        values = part.set_index(time)[self.features].reindex(grid)
        missing = int(values[self.features[0]].isna().sum())
        if missing > MAX_FILL_SHARE * self.lags:
            have = self.lags - missing
            raise ValueError(f"The model needs the {self.lags} most recent {freq} steps up to {_stamp(last)}{label}, "
                             f"but only {have} of them have a value for '{self.features[0]}'; give at least "
                             f"{self.lags} consecutive rows.")
        values = values.interpolate(method="time", limit_direction="both").ffill().bfill()
        if values.isna().any().any():
            column = values.columns[values.isna().any()][0]
            raise ValueError(f"The covariate '{column}'{label} has no values in the last {self.lags} steps.")
        return ((values.to_numpy(np.float64) - self.mean) / self.std).astype(np.float32), last

    def predict(self, inputs) -> list:
        """History rows (DataFrame or list of dicts) → one dict per future step (and series)."""
        frame = inputs if isinstance(inputs, pd.DataFrame) else pd.DataFrame(list(inputs))
        time, target, sid = self.info["time"], self.info["target"], self.info.get("series_id")
        needed = [time, *self.features]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            covariates = f" and the covariate(s) {', '.join(repr(c) for c in self.features[1:])}" if len(self.features) > 1 else ""
            raise ValueError(f"The input is missing the column(s) {', '.join(repr(c) for c in missing)}; it needs the time "
                             f"column '{time}', the target '{target}'{covariates}.")
        if len(frame) == 0:
            raise ValueError(f"The input has no rows; give at least the {self.lags} most recent steps.")
        frame = frame.copy()
        frame[time] = _parse_times(frame[time], time)
        for name in self.features:
            values = pd.to_numeric(frame[name], errors="coerce")
            bad = values.isna() & frame[name].notna()
            if bad.any():
                first = int(bad.to_numpy().nonzero()[0][0])
                raise ValueError(f"The column '{name}' must be numeric, but row {first + 1} holds {frame[name].iloc[first]!r}.")
            frame[name] = values.astype("float64")
        groups = list(frame.groupby(frame[sid].astype(str), sort=True)) if sid and sid in frame.columns else [(None, frame)]
        windows, lasts = [], []
        for key, part in groups:
            label = f" (series {key!r})" if key is not None else ""
            if len(part) < self.lags * (1 - MAX_FILL_SHARE):
                raise ValueError(f"The model needs at least the {self.lags} most recent steps{label}, but the input has "
                                 f"{len(part)} row(s).")
            window, last = self._window(part, label)
            windows.append(window)
            lasts.append(last)
        forecasts = self.predict_windows(np.stack(windows))
        rows = []
        for (key, _), last, values in zip(groups, lasts, forecasts):
            future = pd.date_range(start=last, periods=self.horizon + 1, freq=self.info["frequency"])[1:]
            for step, (when, value) in enumerate(zip(future, values), 1):
                row = {sid: key} if key is not None else {}
                row.update({time: _stamp(when), target: float(value), "step": step})
                rows.append(row)
        return rows


def read_input(path: str) -> pd.DataFrame:
    if not os.path.isfile(path):
        raise ValueError(f"The input {path} does not exist.")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".parquet":
            return pd.read_parquet(path)
        if ext in (".json", ".jsonl"):
            return pd.read_json(path, lines=ext == ".jsonl")
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise ValueError(f"The input {os.path.basename(path)} cannot be read as a table ({str(err).splitlines()[0]}).") from None


def predict_file(folder: str, input_path: str, output_path: str) -> int:
    """Forecast from a history file; writes one CSV row per future step and returns how many."""
    rows = Predictor.load(folder).predict(read_input(input_path))
    pd.DataFrame(rows).to_csv(output_path, index=False)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="Forecast with an exported mltrainer time-series model.")
    parser.add_argument("--input", required=True, help="CSV with the time column, the target (and covariates): the recent history")
    parser.add_argument("--output", required=True, help="CSV file to write the forecasts to")
    parser.add_argument("--model-dir", default=HERE, help="export folder (default: this script's folder)")
    args = parser.parse_args()
    try:
        written = predict_file(args.model_dir, args.input, args.output)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {written} forecasts to {args.output}")


if __name__ == "__main__":
    main()
