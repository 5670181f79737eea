"""
Assign rows to the clusters of an exported mltrainer clustering model, with numpy only.

This file ships in the export folder next to model.safetensors, model.json, transform.json and
transform.py. Raw rows (the training table's columns; a reference-label column is ignored) are
turned into features by transform.apply, passed through the encoder when the model has one (a
numpy forward pass, no torch), and each row gets the index of its nearest centroid.

    python predict.py --input rows.csv --output clusters.csv

From Python (any working directory):

    spec = importlib.util.spec_from_file_location("predict", "export/predict.py")
    predict = importlib.util.module_from_spec(spec); spec.loader.exec_module(predict)
    clusters = predict.Predictor.load("export").predict(df)   # a list of ints
"""

import argparse
import importlib.util
import json
import os
import sys
from types import ModuleType

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_transform(export_dir: str) -> ModuleType:
    """Import the export's transform.py by path, so it works from any working directory."""
    path = os.path.join(os.path.abspath(export_dir), "transform.py")
    name = f"_mltrainer_transform_{abs(hash(path))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Predictor:
    """An exported clustering model: the fitted transform, the optional encoder and the centroids."""

    def __init__(self, folder: str, info: dict, tensors: dict, spec: dict, transform: ModuleType):
        self.folder, self.info, self.spec, self.transform = folder, info, spec, transform
        arch = info["architecture"]
        self.centroids = tensors[arch["centroids"]].astype(np.float64)
        self.encoder = [(tensors[f"{n}.weight"].astype(np.float64), tensors[f"{n}.bias"].astype(np.float64))
                        for n in arch.get("encoder", [])]
        self.n_features = int(info["n_features"])
        self.n_clusters = len(self.centroids)

    @classmethod
    def load(cls, folder: str = HERE) -> "Predictor":
        """Read model.json, model.safetensors, transform.json and transform.py from an export folder."""
        with open(os.path.join(folder, "model.json")) as f:
            info = json.load(f)
        if info.get("family") != "clustering":
            raise ValueError(f"{folder} holds a {info.get('family')!r} model, not a clustering one.")
        with open(os.path.join(folder, "transform.json")) as f:
            spec = json.load(f)
        return cls(folder, info, load_file(os.path.join(folder, "model.safetensors")), spec, _load_transform(folder))

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Features → the space the centroids live in (the encoder: Linear, ReLU between, none after the last)."""
        h = np.asarray(X, dtype=np.float64)
        for i, (w, b) in enumerate(self.encoder):
            h = h @ w.T + b
            if i < len(self.encoder) - 1:
                h = np.maximum(h, 0.0)
        return h

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        """Cluster index (int64) of each row of already transformed features."""
        X = np.asarray(X, dtype=np.float32)  # the model was trained on float32 features
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"Expected a 2-D feature array with {self.n_features} columns, got shape {X.shape}.")
        if not np.isfinite(X).all():
            raise ValueError("The feature array holds NaN or infinite values; pass raw rows to predict() instead.")
        z = self.embed(X)
        out = np.empty(len(z), np.int64)
        for s in range(0, len(z), 65536):  # chunks bound the [rows, k] distance matrix
            c = self.centroids
            d = (z[s:s + 65536] ** 2).sum(1)[:, None] - 2.0 * z[s:s + 65536] @ c.T + (c * c).sum(1)[None, :]
            out[s:s + 65536] = d.argmin(1)
        return out

    def predict(self, inputs) -> list:
        """Raw rows (a DataFrame, a list of dicts or one dict) → one cluster index per row."""
        if isinstance(inputs, dict):
            inputs = [inputs]
        if isinstance(inputs, list):
            if not all(isinstance(row, dict) for row in inputs):
                raise ValueError("Give the rows as a DataFrame or as dicts of column name → value.")
            inputs = pd.DataFrame(inputs)
        if not isinstance(inputs, pd.DataFrame):
            raise ValueError(f"Give the rows as a DataFrame or as dicts of column name → value, not {type(inputs).__name__}.")
        if len(inputs) == 0:
            raise ValueError("The input has no rows to assign to clusters.")
        X = self.transform.apply(self.spec, inputs)  # TransformError (a ValueError) names missing columns
        return [int(c) for c in self.predict_features(X)]


def predict_frame(export_dir: str, df: pd.DataFrame) -> pd.DataFrame:
    """Raw rows in, one row with its `cluster` out per input row."""
    clusters = Predictor.load(str(export_dir)).predict(df)
    return pd.DataFrame({"cluster": clusters}, index=df.index)


def predict_file(folder: str, input_path: str, output_path: str) -> int:
    """Read a CSV of raw rows, write a CSV with a `cluster` column; returns the rows written."""
    if not os.path.isfile(input_path):
        raise ValueError(f"The input file {input_path} does not exist.")
    try:
        df = pd.read_csv(input_path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{os.path.basename(input_path)} is not a readable CSV table ({str(err).splitlines()[0]}).") from None
    out = predict_frame(folder, df)
    out.to_csv(output_path, index=False)
    return len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="Assign rows to the clusters of an exported mltrainer model.")
    parser.add_argument("--input", required=True, help="CSV file with the raw feature columns")
    parser.add_argument("--output", required=True, help="CSV file to write the `cluster` column to")
    parser.add_argument("--model-dir", default=HERE, help="export folder (default: this script's folder)")
    args = parser.parse_args()
    try:
        n = predict_file(args.model_dir, args.input, args.output)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {n} cluster assignments to {args.output}")


if __name__ == "__main__":
    main()
