"""Deterministic train/validation/test splits (stratified for classification)."""

from __future__ import annotations

import numpy as np

from orchestrator.errors import DataError


def split_indices(
    n_rows: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Row indices per split; the same inputs always give the same split."""
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n_rows)
        n_test = max(1, int(round(n_rows * test_fraction)))
        n_val = max(1, int(round(n_rows * val_fraction)))
        return {
            "test": np.sort(order[:n_test]),
            "val": np.sort(order[n_test : n_test + n_val]),
            "train": np.sort(order[n_test + n_val :]),
        }
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    values, counts = np.unique(labels, return_counts=True)
    too_small = [str(v) for v, c in zip(values, counts) if c < 3]
    if too_small:
        raise DataError(
            f"Class {', '.join(repr(v) for v in too_small[:5])} has fewer than 3 rows, so it cannot appear in the "
            "train, validation and test splits; add rows for it or remove it."
        )
    for value in values:
        rows = rng.permutation(np.flatnonzero(labels == value))
        n_test = max(1, int(round(len(rows) * test_fraction)))
        n_val = max(1, int(round(len(rows) * val_fraction)))
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test : n_test + n_val])
        parts["train"].append(rows[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}
