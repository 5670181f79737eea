"""The fitted tabular transform: impute, encode, scale — fitted on the training split only.

This file is copied verbatim into every export folder as ``transform.py`` next to
``transform.json``, so it depends on numpy and pandas alone and keeps its own error class.
The same code prepares training data and scores new rows, so the two can never drift apart.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

VERSION = 1
MISSING = "__missing__"
ONE_HOT_MAX = 12  # categories up to this count are one-hot encoded, more are ordinal
ID_NAME = re.compile(r"(^|_)(id|uuid|guid|index|key)$|^(id|uuid|guid)(_|$)|^passengerid$|^rownum", re.I)


class TransformError(ValueError):
    """The rows do not fit the fitted transform (missing columns, unseen target…)."""


def _plain(value: Any) -> Any:
    """A JSON-friendly Python scalar for a pandas/numpy value."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return value
    return value


def _as_category(series: pd.Series) -> pd.Series:
    return series.astype("object").where(series.notna(), MISSING).map(str)


def column_kind(series: pd.Series, n_rows: int) -> tuple[str, str]:
    """Classify a feature column: numeric, categorical or drop (with the reason)."""
    non_null = series.dropna()
    if len(non_null) == 0:
        return "drop", "all values are missing"
    nunique = non_null.nunique()
    if nunique <= 1:
        return "drop", "constant"
    if pd.api.types.is_bool_dtype(series):
        return "numeric", ""
    if pd.api.types.is_numeric_dtype(series):
        is_int = pd.api.types.is_integer_dtype(series) or bool(np.all(np.mod(non_null, 1) == 0))
        if is_int and nunique == len(non_null) and ID_NAME.search(str(series.name) or ""):
            return "drop", "looks like a row id"
        if is_int and nunique == len(non_null) and non_null.is_monotonic_increasing and n_rows > 20:
            return "drop", "looks like a row id (unique and increasing)"
        return "numeric", ""
    # text-like
    as_num = pd.to_numeric(non_null, errors="coerce")
    if as_num.notna().mean() > 0.98:
        return "numeric", ""
    ratio = nunique / max(1, len(non_null))
    if ID_NAME.search(str(series.name) or "") and ratio > 0.9:
        return "drop", "looks like a row id"
    if nunique > 50 and ratio > 0.5:
        return "drop", "free text or an identifier (almost every value is different)"
    return "categorical", ""


def fit(frame: pd.DataFrame, target: str | None, task: str) -> dict[str, Any]:
    """Learn the transform from training rows; returns a JSON-serialisable spec.

    ``target`` None (clustering) fits the features alone."""
    spec: dict[str, Any] = {
        "version": VERSION,
        "task": task,
        "target": target,
        "dropped": {},
        "numeric": [],
        "categorical": [],
        "feature_names": [],
    }
    y = frame[target] if target is not None else None
    if y is None:
        pass
    elif task == "classification":
        labels = sorted({_plain(v) for v in y.dropna().unique()}, key=lambda v: (str(type(v)), v))
        spec["classes"] = labels
    else:
        values = pd.to_numeric(y, errors="coerce").astype(float)
        std = float(values.std()) if len(values) > 1 else 1.0
        spec["target_mean"] = float(values.mean())
        spec["target_std"] = std if std > 0 and math.isfinite(std) else 1.0
    n_rows = len(frame)
    for name in frame.columns:
        if name == target:
            continue
        col = frame[name]
        kind, reason = column_kind(col, n_rows)
        if kind == "drop":
            spec["dropped"][str(name)] = reason
        elif kind == "numeric":
            values = pd.to_numeric(col, errors="coerce").astype(float)
            median = float(values.median())
            mean = float(values.mean())
            std = float(values.std()) if values.notna().sum() > 1 else 1.0
            spec["numeric"].append(
                {
                    "name": str(name),
                    "median": median,
                    "mean": mean,
                    "std": std if std > 0 and math.isfinite(std) else 1.0,
                    "missing_indicator": bool(values.isna().any()),
                }
            )
        else:
            counts = _as_category(col).value_counts()
            categories = [str(c) for c in counts.index]
            encoding = "onehot" if len(categories) <= ONE_HOT_MAX else "ordinal"
            spec["categorical"].append(
                {"name": str(name), "encoding": encoding, "categories": categories, "most_frequent": categories[0]}
            )
    names: list[str] = []
    for num in spec["numeric"]:
        names.append(num["name"])
        if num["missing_indicator"]:
            names.append(f"{num['name']}__missing")
    for cat in spec["categorical"]:
        if cat["encoding"] == "onehot":
            names.extend(f"{cat['name']}={c}" for c in cat["categories"])
        else:
            names.append(cat["name"])
    if not names:
        raise TransformError(
            "No usable feature columns are left after dropping ids, constants and empty columns; "
            "add columns that describe each row."
        )
    spec["feature_names"] = names
    return spec


def input_columns(spec: dict[str, Any]) -> list[str]:
    return [c["name"] for c in spec["numeric"]] + [c["name"] for c in spec["categorical"]]


def apply(spec: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Turn raw rows into the float32 feature matrix the model was trained on."""
    missing = [c for c in input_columns(spec) if c not in frame.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:8]) + (" …" if len(missing) > 8 else "")
        raise TransformError(f"The input is missing {len(missing)} column(s) the model needs: {shown}.")
    # Filled column by column into one float32 matrix: no float64 blocks to stack afterwards.
    out = np.zeros((len(frame), len(spec["feature_names"])), dtype=np.float32)
    col = 0
    for num in spec["numeric"]:
        values = pd.to_numeric(frame[num["name"]], errors="coerce").astype(float).to_numpy()
        miss = np.isnan(values)
        out[:, col] = (np.where(miss, num["median"], values) - num["mean"]) / num["std"]
        col += 1
        if num["missing_indicator"]:
            out[:, col] = miss
            col += 1
    for cat in spec["categorical"]:
        values = _as_category(frame[cat["name"]]).to_numpy()
        index = {c: i for i, c in enumerate(cat["categories"])}
        codes = np.array([index.get(v, -1) for v in values], dtype=np.int64)
        if cat["encoding"] == "onehot":
            known = np.nonzero(codes >= 0)[0]
            out[known, col + codes[known]] = 1.0
            col += len(cat["categories"])
        else:
            codes = np.where(codes < 0, index[cat["most_frequent"]], codes)
            out[:, col] = codes / max(1, len(cat["categories"]) - 1)
            col += 1
    return out


def encode_target(spec: dict[str, Any], series: pd.Series) -> np.ndarray:
    """Class index (int64) for classification, standardised value (float32) for regression."""
    if spec["task"] == "classification":
        index = {str(c): i for i, c in enumerate(spec["classes"])}
        keys = series.map(lambda v: str(_plain(v)))
        unknown = sorted(set(keys) - set(index))
        if unknown:
            raise TransformError(f"Target values never seen in training: {', '.join(unknown[:5])}.")
        return keys.map(index).to_numpy(dtype=np.int64)
    values = pd.to_numeric(series, errors="coerce").astype(float).to_numpy()
    return ((values - spec["target_mean"]) / spec["target_std"]).astype(np.float32)


def decode_target(spec: dict[str, Any], predictions: np.ndarray) -> np.ndarray:
    """Back to the user's labels (classification) or units (regression)."""
    if spec["task"] == "classification":
        classes = np.array(spec["classes"], dtype=object)
        return classes[np.asarray(predictions, dtype=np.int64)]
    return np.asarray(predictions, dtype=np.float64) * spec["target_std"] + spec["target_mean"]
