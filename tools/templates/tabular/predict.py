"""
Predict with an exported mltrainer tabular model (GBDT or MLP) using numpy only (a custom model,
kind "custom", is rebuilt from custom_nets.py and needs torch).

This file ships in the export folder next to model.safetensors, model.json, transform.json and
transform.py. Raw rows are turned into features by transform.apply, the model runs in numpy
(no torch), and class indices are mapped back to labels by transform.decode_target.

    python predict.py --input rows.csv --output preds.csv

From Python (any working directory):

    spec = importlib.util.spec_from_file_location("predict", "export/predict.py")
    predict = importlib.util.module_from_spec(spec); spec.loader.exec_module(predict)
    preds = predict.predict_frame("export", df)
"""

import argparse
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Model:
    """An exported model: its model.json description plus its tensors."""

    kind: str  # "gbdt" | "mlp" | "custom" (a model of the user's own: custom_nets.py, run with torch)
    task: str  # "classification" | "regression"
    n_classes: int | None
    n_features: int
    architecture: dict
    tensors: dict[str, np.ndarray] = field(repr=False)
    folder: str = ""


def load_model(export_dir: str = HERE) -> Model:
    """Read model.json and model.safetensors from an export folder."""
    with open(os.path.join(export_dir, "model.json")) as f:
        info = json.load(f)
    if info.get("kind") not in ("gbdt", "mlp", "custom"):
        raise ValueError(f"unknown model kind {info.get('kind')!r} in model.json")
    tensors = load_file(os.path.join(export_dir, "model.safetensors"))
    return Model(info["kind"], info["task"], info.get("n_classes"), int(info["n_features"]), info["architecture"], tensors,
                 os.path.abspath(export_dir))


def _gbdt_raw(m: Model, X: np.ndarray) -> np.ndarray:
    """Sum of leaf values per output; trees are traversed for all rows and trees at once, one depth level per step."""
    t = m.tensors
    feature, threshold, left, right, value = t["feature"], t["threshold"], t["left"], t["right"], t["value"]
    roots, base = t["tree_offsets"], t["base_score"].astype(np.float64)
    K = len(base)  # trees are stored round-major: tree i adds to output i % K
    raw = np.empty((len(X), K), np.float64)
    chunk = max(1, 2_000_000 // max(1, len(roots)))
    for s in range(0, len(X), chunk):
        x = X[s:s + chunk]
        node = np.repeat(roots[None, :], len(x), axis=0)
        rows = np.arange(len(x))[:, None]
        while True:
            f = feature[node]
            inner = f >= 0
            if not inner.any():
                break
            go_left = x[rows, np.maximum(f, 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        leaf = value[node].astype(np.float64)
        raw[s:s + chunk] = base[None, :] + leaf.reshape(len(x), -1, K).sum(axis=1)
    return raw


def _mlp_raw(m: Model, X: np.ndarray) -> np.ndarray:
    """Linear -> ReLU for each hidden layer, then a linear output layer (dropout is inactive at inference)."""
    h = X.astype(np.float64)
    names = m.architecture["weights"]
    for i, name in enumerate(names):
        h = h @ m.tensors[f"{name}.weight"].astype(np.float64).T + m.tensors[f"{name}.bias"].astype(np.float64)
        if i < len(names) - 1:
            h = np.maximum(h, 0.0)
    return h


def _custom_raw(m: Model, X: np.ndarray) -> np.ndarray:
    """A custom model (the spec's architecture:): rebuilt from custom_nets.py and run with torch."""
    import torch

    nets = _load_module(m.folder, "custom_nets.py", "_mltrainer_custom_nets")
    net = nets.build_custom(int(m.architecture["n_in"]), int(m.architecture["n_out"]))
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in m.tensors.items()})
    net.eval()
    with torch.no_grad():
        out = torch.cat([net(torch.from_numpy(X[s:s + 65536])).float() for s in range(0, len(X), 65536)])
    return out.double().numpy() * float(m.architecture.get("y_sd", 1.0)) + float(m.architecture.get("y_mu", 0.0))


def predict_arrays(model: Model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Predict on transformed features: (class indices int64 or float values, probabilities [n, K] or None)."""
    X = np.asarray(X, dtype=np.float32)  # thresholds were chosen on float32 features
    if X.ndim != 2 or X.shape[1] != model.n_features:
        raise ValueError(f"expected a 2-D array with {model.n_features} columns, got shape {X.shape}")
    raw = {"gbdt": _gbdt_raw, "custom": _custom_raw}.get(model.kind, _mlp_raw)(model, X)
    if model.task == "regression":
        return raw[:, 0], None
    if raw.shape[1] == 1:  # binary GBDT: a single logit
        p1 = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        proba = np.stack([1.0 - p1, p1], axis=1)
    else:
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        proba = e / e.sum(axis=1, keepdims=True)
    return proba.argmax(axis=1).astype(np.int64), proba


def _load_transform(export_dir: str) -> ModuleType:
    """Import the export's transform.py by path, so it works from any working directory."""
    return _load_module(export_dir, "transform.py", "_mltrainer_transform")


def _load_module(export_dir: str, file_name: str, prefix: str) -> ModuleType:
    """Import one of the export's files by path (cached per folder)."""
    path = os.path.join(os.path.abspath(export_dir), file_name)
    name = f"{prefix}_{abs(hash(path))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def predict_frame(export_dir: str, df: pd.DataFrame) -> pd.DataFrame:
    """Raw rows in, one prediction row per input row out (plus proba_<label> columns for classification)."""
    transform = _load_transform(export_dir)
    with open(os.path.join(export_dir, "transform.json")) as f:
        spec = json.load(f)
    model = load_model(export_dir)
    X = transform.apply(spec, df)
    pred, proba = predict_arrays(model, X)
    out = pd.DataFrame(index=df.index)
    out[spec["target"]] = np.asarray(transform.decode_target(spec, pred))
    if proba is not None:
        labels = np.asarray(transform.decode_target(spec, np.arange(proba.shape[1], dtype=np.int64)))
        for k, label in enumerate(labels):
            out[f"proba_{label}"] = proba[:, k]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Predict with an exported mltrainer tabular model.")
    parser.add_argument("--input", required=True, help="CSV file with the raw feature columns")
    parser.add_argument("--output", required=True, help="CSV file to write the predictions to")
    parser.add_argument("--model-dir", default=HERE, help="export folder (default: this script's folder)")
    args = parser.parse_args()
    df = pd.read_csv(args.input)
    predict_frame(args.model_dir, df).to_csv(args.output, index=False)
    print(f"wrote {len(df)} predictions to {args.output}")


if __name__ == "__main__":
    main()
