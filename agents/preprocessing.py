"""Preprocessing: split the rows, fit the transform on the training split, write arrays to disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import DataError

DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
DEFAULT_SEED = 42


class PreprocessingAgent(BaseAgent):
    stage = "preprocessing"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        import numpy as np

        from tools import tabular_transform as tt
        from tools.local_data import load_table
        from tools.splits import split_indices

        hp = context.spec.get("hyperparameters", {})
        seed = int(hp.get("seed", DEFAULT_SEED))
        val_fraction = float(hp.get("val_fraction", DEFAULT_VAL_FRACTION))
        test_fraction = float(hp.get("test_fraction", DEFAULT_TEST_FRACTION))
        target = context.intent["target"]
        task = "classification" if context.task_type == "tabular_classification" else "regression"

        frame, _ = load_table(Path(context.data_paths["source"]))
        if target not in frame.columns:
            raise DataError(f"The target column '{target}' disappeared from the data file; was it edited after the dataset stage?")
        leaks = [c for c in context.data_report.get("leakage_suspects", []) if c in frame.columns]
        for column in leaks:
            self.log(f"dropped column '{column}': it determines the target one-to-one (leakage)", "warning")
        frame = frame.drop(columns=leaks)
        before = len(frame)
        frame = frame[frame[target].notna()].reset_index(drop=True)
        dropped_unlabelled = before - len(frame)

        labels = frame[target].astype(str).to_numpy() if task == "classification" else None
        splits = split_indices(len(frame), val_fraction, test_fraction, seed, labels)
        train = frame.iloc[splits["train"]]
        try:
            spec = tt.fit(train, target, task)
            arrays = {}
            for name, rows in splits.items():
                part = frame.iloc[rows]
                arrays[f"X_{name}"] = tt.apply(spec, part)
                arrays[f"y_{name}"] = tt.encode_target(spec, part[target])
        except tt.TransformError as err:
            raise DataError(str(err)) from err

        out = Path(context.job_dir) / "data"
        out.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            np.save(out / f"{name}.npy", array)
        (out / "transform.json").write_text(json.dumps(spec, indent=2))
        frame.iloc[splits["test"]].to_csv(out / "test_rows.csv", index=False)
        meta = {
            "task": task,
            "target": target,
            "n_features": int(arrays["X_train"].shape[1]),
            "feature_names": spec["feature_names"],
            "splits": {name: int(len(rows)) for name, rows in splits.items()},
            "seed": seed,
        }
        if task == "classification":
            meta["n_classes"] = len(spec["classes"])
            meta["classes"] = spec["classes"]
        (out / "meta.json").write_text(json.dumps(meta, indent=2))

        report = {
            **meta,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "stratified": task == "classification",
            "dropped_columns": {**{c: "leaks the target" for c in leaks}, **spec["dropped"]},
            "dropped_unlabelled_rows": dropped_unlabelled,
            "numeric_columns": [c["name"] for c in spec["numeric"]],
            "categorical_columns": {c["name"]: c["encoding"] for c in spec["categorical"]},
        }
        for column, why in spec["dropped"].items():
            self.log(f"dropped column '{column}': {why}")
        sizes = meta["splits"]
        summary = (
            f"{meta['n_features']} features; train/val/test {sizes['train']}/{sizes['val']}/{sizes['test']}"
            + (f"; dropped {', '.join(spec['dropped'])}" if spec["dropped"] else "")
        )
        return {
            "preprocessing_report": report,
            "data_paths": {"dir": str(out), "transform": str(out / "transform.json"), "test_rows": str(out / "test_rows.csv")},
            "summary": summary,
        }
