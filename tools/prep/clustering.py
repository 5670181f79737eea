"""Clustering: a table without a target — the tabular transform on every column, random split.

A column named in ``data.target`` is not a feature: it is kept aside as reference labels so the
clusters can be scored against it (adjusted Rand index) without the model ever seeing it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.errors import DataError
from tools.prep.base import DataOptions, Inspection, Log, Prepared, pick_column, quiet, require_rows, split_summary, write_meta


class Clustering:
    name = "clustering"

    def inspect(self, path: Path, options: DataOptions, log: Log = quiet) -> Inspection:
        from tools.local_data import describe, load_table

        frame, info = load_table(path)
        roles: dict[str, str] = {}
        if options.target:
            roles["reference"], _ = pick_column(list(frame.columns), options.target, "reference label", path.name)
        require_rows(len(frame), "rows", path.name)
        if frame.shape[1] - len(roles) < 1:
            raise DataError(f"{path.name} has no feature columns left to cluster on; add columns that describe each row.")
        report = describe(frame, roles.get("reference"))
        report.update({"family": self.name, "file": info})
        if roles:
            report["reference_labels"] = roles["reference"]
        summary = f"{report['rows']} rows, {report['columns']} columns, clustering" + (
            f" (reference labels '{roles['reference']}' kept out of the features)" if roles else "")
        return Inspection(report, roles, "clustering", "from the request", summary)

    def prepare(self, path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                log: Log = quiet) -> Prepared:
        import numpy as np

        from tools import tabular_transform as tt
        from tools.local_data import load_table
        from tools.splits import split_indices

        reference = inspection.get("roles", {}).get("reference")
        frame, _ = load_table(path)
        features = frame.drop(columns=[reference]) if reference else frame
        splits = split_indices(len(frame), options.val_fraction, options.test_fraction, options.seed)
        try:
            spec = tt.fit(features.iloc[splits["train"]], None, "clustering")
            arrays = {f"X_{name}": tt.apply(spec, features.iloc[rows]) for name, rows in splits.items()}
        except tt.TransformError as err:
            raise DataError(str(err)) from err
        if reference:
            for name, rows in splits.items():
                arrays[f"labels_{name}"] = frame[reference].iloc[rows].astype(str).to_numpy(dtype=object).astype("U")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            np.save(out_dir / f"{name}.npy", array)
        (out_dir / "transform.json").write_text(json.dumps(spec, indent=2))
        meta: dict[str, Any] = {
            "family": self.name,
            "task_type": "clustering",
            "task": "clustering",
            "n_features": int(arrays["X_train"].shape[1]),
            "feature_names": spec["feature_names"],
            "files": {name: {"X": f"X_{name}.npy", **({"labels": f"labels_{name}.npy"} if reference else {})}
                      for name in splits},
            "reference_labels": reference,
            "splits": {name: int(len(rows)) for name, rows in splits.items()},
            "seed": options.seed,
        }
        meta_path = write_meta(out_dir, meta)
        for column, why in spec["dropped"].items():
            log(f"dropped column '{column}': {why}")
        report = {**{k: v for k, v in meta.items() if k != "files"}, "dropped_columns": spec["dropped"],
                  "val_fraction": options.val_fraction, "test_fraction": options.test_fraction}
        summary = f"{meta['n_features']} features; {split_summary(meta['splits'])}"
        return Prepared(report, {"dir": str(out_dir), "meta": str(meta_path), "transform": str(out_dir / "transform.json")},
                        summary)


CLUSTERING = Clustering()
