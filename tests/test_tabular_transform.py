"""The fitted transform: what it drops, how it encodes, and how it treats unseen data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tools import tabular_transform as tt
from tools.splits import split_indices
from orchestrator.errors import DataError


def frame() -> pd.DataFrame:
    n = 60
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "PassengerId": np.arange(1, n + 1),
        "age": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(1, 80, n)),
        "constant": 5,
        "empty": np.nan,
        "city": rng.choice(["a", "b", "c"], n),
        "zip": [f"z{i % 20}" for i in range(n)],
        "name": [f"person number {i}" for i in range(n)] ,
        "survived": rng.choice([0, 1], n),
    })


def test_fit_drops_ids_constants_and_empty_columns() -> None:
    spec = tt.fit(frame(), "survived", "classification")
    assert set(spec["dropped"]) == {"PassengerId", "constant", "empty", "name"}
    assert [c["name"] for c in spec["numeric"]] == ["age"]
    encodings = {c["name"]: c["encoding"] for c in spec["categorical"]}
    assert encodings == {"city": "onehot", "zip": "ordinal"}
    assert spec["classes"] == [0, 1]
    assert "age__missing" in spec["feature_names"]


def test_apply_handles_unseen_categories_and_missing_values() -> None:
    data = frame()
    spec = tt.fit(data, "survived", "classification")
    new = data.head(3).copy()
    new.loc[0, "city"] = "never-seen"
    new.loc[1, "age"] = np.nan
    X = tt.apply(spec, new)
    assert X.shape == (3, len(spec["feature_names"]))
    assert X.dtype == np.float32 and np.isfinite(X).all()
    city = [i for i, n in enumerate(spec["feature_names"]) if n.startswith("city=")]
    assert X[0, city].sum() == 0  # unseen → no one-hot column set
    assert X[1, spec["feature_names"].index("age__missing")] == 1


def test_apply_names_missing_columns() -> None:
    spec = tt.fit(frame(), "survived", "classification")
    with pytest.raises(tt.TransformError, match="missing 1 column\\(s\\) the model needs: 'city'"):
        tt.apply(spec, frame().drop(columns=["city"]))


def test_regression_target_round_trips() -> None:
    data = frame().assign(fare=np.linspace(5, 500, 60))
    spec = tt.fit(data.drop(columns=["survived"]), "fare", "regression")
    encoded = tt.encode_target(spec, data["fare"])
    assert abs(float(encoded.mean())) < 1e-5
    np.testing.assert_allclose(tt.decode_target(spec, encoded), data["fare"], rtol=1e-5)


def test_classification_labels_round_trip() -> None:
    data = frame().assign(survived=lambda d: np.where(d["survived"] == 1, "yes", "no"))
    spec = tt.fit(data, "survived", "classification")
    idx = tt.encode_target(spec, data["survived"])
    assert list(tt.decode_target(spec, idx)) == list(data["survived"])


def test_stratified_split_is_deterministic_and_complete() -> None:
    labels = np.array(["a"] * 70 + ["b"] * 30)
    one = split_indices(100, 0.15, 0.15, 7, labels)
    two = split_indices(100, 0.15, 0.15, 7, labels)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])
    together = np.sort(np.concatenate(list(one.values())))
    np.testing.assert_array_equal(together, np.arange(100))
    assert (labels[one["test"]] == "b").sum() in (4, 5)  # stratified: ~30% of the test split


def test_a_class_too_small_to_stratify_is_a_data_error() -> None:
    labels = np.array(["a"] * 50 + ["rare"])
    with pytest.raises(DataError, match="Class 'rare' has fewer than 3 rows"):
        split_indices(51, 0.15, 0.15, 0, labels)
