"""Dataset: load the data, check the target, decide classification vs regression, write the report."""

from __future__ import annotations

import difflib
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import DataError

TARGET_NAMES = ("target", "label", "labels", "class", "y", "outcome")
MIN_ROWS = 20
#: An integer target with at most this many distinct values is treated as classes.
MAX_CLASSES_FOR_INT_TARGET = 20


def pick_target(columns: list[str], given: str | None, file_name: str) -> tuple[str, str]:
    """The target column and how it was chosen; unknown names get the closest suggestions."""
    if given:
        if given in columns:
            return given, "named in the spec"
        by_lower = {c.lower(): c for c in columns}
        if given.lower() in by_lower:
            return by_lower[given.lower()], f"named in the spec as '{given}' (matched ignoring case)"
        close = difflib.get_close_matches(given, columns, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"columns are: {', '.join(columns[:12])}"
        raise DataError(f"The target column '{given}' is not in {file_name}; {hint}")
    for name in columns:
        if name.lower() in TARGET_NAMES:
            return name, f"inferred: the column is called '{name}'"
    return columns[-1], f"inferred: the last column, '{columns[-1]}' (set data.target to choose another)"


def decide_task(series: Any) -> tuple[str, str]:
    import pandas as pd

    values = series.dropna()
    unique = values.nunique()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "tabular_classification", "the target holds categories"
    whole = bool((values % 1 == 0).all())
    if whole and unique <= MAX_CLASSES_FOR_INT_TARGET:
        return "tabular_classification", f"the target has {unique} whole-number values"
    return "tabular_regression", f"the target is numeric with {unique} distinct values"


class DatasetAgent(BaseAgent):
    stage = "dataset"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        from tools.local_data import describe, load_table
        from tools.sources import fetch, hash_file

        fetched = fetch(str(context.spec["data"]["source"]))  # cached by content hash; a resume reuses it
        source = fetched.path
        frame, info = load_table(source)
        info["fetch"] = fetched.info
        columns = [str(c) for c in frame.columns]
        target, target_reason = pick_target(columns, context.intent.get("target"), source.name)
        if frame.shape[1] < 2:
            raise DataError(f"{source.name} has only the target column; add feature columns to learn from.")
        y = frame[target]
        missing_target = int(y.isna().sum())
        if missing_target > 0.5 * len(frame):
            raise DataError(
                f"The target '{target}' is empty in {missing_target} of {len(frame)} rows; label most rows first."
            )
        labelled = len(frame) - missing_target
        if labelled < MIN_ROWS:
            raise DataError(f"{source.name} has {labelled} labelled rows; at least {MIN_ROWS} are needed to train and test.")
        task_type = context.task_type
        reason = "from the request"
        if task_type is None:
            task_type, reason = decide_task(y)
        if task_type == "tabular_classification":
            classes = y.dropna().unique()
            if len(classes) < 2:
                only = classes[0] if len(classes) else "nothing"
                raise DataError(
                    f"The target '{target}' has only one value ({only!r}); a classifier needs at least two classes."
                )
        else:
            import pandas as pd

            numeric = pd.to_numeric(y.dropna(), errors="coerce")
            if numeric.isna().any():
                bad = y.dropna()[numeric.isna()].iloc[0]
                raise DataError(
                    f"The target '{target}' must be numeric for regression but holds {bad!r}; "
                    "set task_type: tabular_classification or clean the column."
                )
        report = describe(frame, target)
        report.update(
            {
                "source": str(source),
                "sha256": fetched.info.get("sha256") or hash_file(source),
                "file": info,
                "target_reason": target_reason,
                "task_type": task_type,
                "task_type_reason": reason,
            }
        )
        self.log(f"{report['rows']} rows × {report['columns']} columns; target '{target}' ({target_reason})")
        summary = f"{report['rows']} rows, {report['columns']} columns, target '{target}', {task_type.replace('_', ' ')}"
        return {
            "data_report": report,
            "data_paths": {"source": str(source)},
            "task_type": task_type,
            "intent": {"target": target},
            "summary": summary,
        }
