"""Tables: pick the target, decide classification vs regression, impute/encode/scale, stratified split.

The fitted transform (``transform.json`` + ``tools/tabular_transform.py``) is saved for inference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.errors import DataError
from tools.prep.base import DataOptions, Inspection, Log, Prepared, pick_column, quiet, require_rows, split_summary, write_meta

TARGET_NAMES = ("target", "label", "labels", "class", "y", "outcome")
#: An integer target with at most this many distinct values is treated as classes.
MAX_CLASSES_FOR_INT_TARGET = 20
#: More than this share of rows without a label means the data is not ready to learn from.
MAX_UNLABELLED_SHARE = 0.5


def decide_task(series: Any) -> tuple[str, str]:
    """Classification or regression, read off the target's values (with the reason)."""
    import pandas as pd

    values = series.dropna()
    unique = values.nunique()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "tabular_classification", "the target holds categories"
    whole = bool((values % 1 == 0).all())
    if whole and unique <= MAX_CLASSES_FOR_INT_TARGET:
        return "tabular_classification", f"the target has {unique} whole-number values"
    return "tabular_regression", f"the target is numeric with {unique} distinct values"


def check_target(frame: Any, target: str, task_type: str, where: str) -> None:
    """Refuse targets no model can learn: mostly unlabelled, too few rows, one class, non-numeric regression."""
    import pandas as pd

    y = frame[target]
    missing = int(y.isna().sum())
    if missing > MAX_UNLABELLED_SHARE * len(frame):
        raise DataError(f"The target '{target}' is empty in {missing} of {len(frame)} rows; label most rows first.")
    require_rows(len(frame) - missing, "labelled rows", where)
    if task_type == "tabular_classification":
        classes = y.dropna().unique()
        if len(classes) < 2:
            only = classes[0] if len(classes) else "nothing"
            raise DataError(f"The target '{target}' has only one value ({only!r}); a classifier needs at least two classes.")
    elif task_type == "tabular_regression":
        numeric = pd.to_numeric(y.dropna(), errors="coerce")
        if numeric.isna().any():
            bad = y.dropna()[numeric.isna()].iloc[0]
            raise DataError(
                f"The target '{target}' must be numeric for regression but holds {bad!r}; "
                "set task_type: tabular_classification or clean the column."
            )


#: A column averaging at least this many characters, with at most this many other feature columns,
#: makes an unlabelled request a text task rather than a table.
FREE_TEXT_CHARS = 40
FREE_TEXT_MAX_OTHER_COLUMNS = 3


def free_text_column(report: dict[str, Any], target: str) -> tuple[str, float] | None:
    """The table's prose column and its mean length, when prose is what the table is about."""
    lengths = report.get("text_length") or {}
    others = [c for c in report.get("column_info", []) if c["name"] not in (target, *lengths)]
    long = [(name, float(stats["mean_chars"])) for name, stats in lengths.items()
            if stats["mean_chars"] >= FREE_TEXT_CHARS]
    if long and len(others) <= FREE_TEXT_MAX_OTHER_COLUMNS:
        return max(long, key=lambda item: item[1])
    return None


class Tabular:
    name = "tabular"

    def inspect(self, path: Path, options: DataOptions, log: Log = quiet) -> Inspection:
        from tools.local_data import describe, load_table

        frame, info = load_table(path)
        columns = [str(c) for c in frame.columns]
        target, target_reason = pick_column(columns, options.target, "target", path.name, TARGET_NAMES, columns[-1])
        if frame.shape[1] < 2:
            raise DataError(f"{path.name} has only the target column; add feature columns to learn from.")
        task_type, reason = options.task_type, "from the request"
        report = describe(frame, target)
        if not task_type.startswith("tabular_"):
            task_type, reason = decide_task(frame[target])
            prose = free_text_column(report, target)
            if prose and task_type == "tabular_classification":
                # Labels next to a column of prose is a text-classification set, not a table.
                column, chars = prose
                return Inspection(report, {"target": target}, "text_classification",
                                  f"the column '{column}' holds free text ({chars:.0f} characters on average)", "")
        check_target(frame, target, task_type, path.name)
        report.update({"family": self.name, "file": info, "target_reason": target_reason})
        summary = f"{report['rows']} rows, {report['columns']} columns, target '{target}', {task_type.replace('_', ' ')}"
        return Inspection(report, {"target": target}, task_type, reason, summary)

    def prepare(self, path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                log: Log = quiet) -> Prepared:
        import numpy as np

        from tools import tabular_transform as tt
        from tools.local_data import load_table
        from tools.splits import split_indices

        target = inspection["roles"]["target"]
        task = "classification" if options.task_type == "tabular_classification" else "regression"
        frame, _ = load_table(path)
        if target not in frame.columns:
            raise DataError(f"The target column '{target}' disappeared from the data file; was it edited after the dataset stage?")
        leaks = [c for c in inspection.get("leakage_suspects", []) if c in frame.columns]
        for column in leaks:
            log(f"dropped column '{column}': it determines the target one-to-one (leakage)", "warning")
        frame = frame.drop(columns=leaks)
        before = len(frame)
        frame = frame[frame[target].notna()].reset_index(drop=True)
        dropped_unlabelled = before - len(frame)

        labels = frame[target].astype(str).to_numpy() if task == "classification" else None
        splits = split_indices(len(frame), options.val_fraction, options.test_fraction, options.seed, labels)
        try:
            spec = tt.fit(frame.iloc[splits["train"]], target, task)
            arrays = {}
            for name, rows in splits.items():
                part = frame.iloc[rows]
                arrays[f"X_{name}"] = tt.apply(spec, part)
                arrays[f"y_{name}"] = tt.encode_target(spec, part[target])
        except tt.TransformError as err:
            raise DataError(str(err)) from err

        out_dir.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            np.save(out_dir / f"{name}.npy", array)
        (out_dir / "transform.json").write_text(json.dumps(spec, indent=2))
        frame.iloc[splits["test"]].to_csv(out_dir / "test_rows.csv", index=False)
        meta: dict[str, Any] = {
            "family": self.name,
            "task_type": options.task_type,
            "task": task,
            "target": target,
            "n_features": int(arrays["X_train"].shape[1]),
            "feature_names": spec["feature_names"],
            "files": {name: {"X": f"X_{name}.npy", "y": f"y_{name}.npy"} for name in splits},
            "splits": {name: int(len(rows)) for name, rows in splits.items()},
            "seed": options.seed,
        }
        if task == "classification":
            meta["n_classes"] = len(spec["classes"])
            meta["classes"] = spec["classes"]
        meta_path = write_meta(out_dir, meta)
        for column, why in spec["dropped"].items():
            log(f"dropped column '{column}': {why}")
        report = {
            **{k: v for k, v in meta.items() if k != "files"},
            "val_fraction": options.val_fraction,
            "test_fraction": options.test_fraction,
            "stratified": task == "classification",
            "dropped_columns": {**{c: "leaks the target" for c in leaks}, **spec["dropped"]},
            "dropped_unlabelled_rows": dropped_unlabelled,
            "numeric_columns": [c["name"] for c in spec["numeric"]],
            "categorical_columns": {c["name"]: c["encoding"] for c in spec["categorical"]},
        }
        summary = f"{meta['n_features']} features; {split_summary(meta['splits'])}" + (
            f"; dropped {', '.join(spec['dropped'])}" if spec["dropped"] else "")
        files = {"dir": str(out_dir), "meta": str(meta_path), "transform": str(out_dir / "transform.json"),
                 "test_rows": str(out_dir / "test_rows.csv")}
        return Prepared(report, files, summary)


TABULAR = Tabular()
