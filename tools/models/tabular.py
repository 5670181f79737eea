"""Tabular models: a histogram GBDT and a torch MLP, trained side by side, the better kept on validation.

Exports need no torch: predict.py runs both model kinds in numpy and uses the fitted transform.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from orchestrator.errors import TrainingError
from tools.models.base import stage_export

TOOLS = Path(__file__).resolve().parent.parent
#: Rules by training-set size: (upper bound on rows, settings). First row whose bound holds wins.
#: Measured with bench/tabular_quality.py: small tables want a narrower, more regularised MLP.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (1_000, {"hidden": 128, "layers": 2, "dropout": 0.2, "epochs": 300, "patience": 30}),
    (50_000, {"hidden": 256, "layers": 2, "dropout": 0.1, "epochs": 200, "patience": 20}),
    (500_000, {"hidden": 256, "layers": 3, "dropout": 0.1, "epochs": 60, "patience": 10}),
    (math.inf, {"hidden": 512, "layers": 3, "dropout": 0.1, "epochs": 20, "patience": 5}),
)
BASE: dict[str, Any] = {
    "model": "auto",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "seed": 42,
    # 0.1 with early stopping matched 0.05 on every bench table at half the time.
    "gbdt_rounds": 500,
    "gbdt_lr": 0.1,
    "gbdt_max_leaves": 31,
    "gbdt_l2": 1.0,
}
TEMPLATE_KEYS = (
    "task", "model", "epochs", "batch_size", "lr", "weight_decay", "hidden", "layers", "dropout", "patience",
    "seed", "gbdt_rounds", "gbdt_lr", "gbdt_max_leaves", "gbdt_min_leaf", "gbdt_l2", "time_budget",
)
EXPORT_REQUIREMENTS = "numpy\npandas\nsafetensors\n"


def batch_size_for(rows: int) -> int:
    """About 16 steps an epoch, a power of two between 32 and 256."""
    target = min(256, max(32, rows / 16))
    return int(2 ** round(math.log2(target)))


def min_leaf_for(rows: int) -> int:
    """HGB's 20 rows a leaf, scaled down only for tables under 100 rows so trees can still split.

    bench/tabular_quality.py (GBDT alone, 5 split seeds): 20 rows a leaf beat the earlier rows // 50
    (3-7 on these tables) on diabetes (R² 0.38 vs 0.32), wine (0.989 vs 0.978) and breast cancer
    (0.965 vs 0.963): small leaves overfit small tables."""
    return int(min(20, max(3, rows // 5)))


def resolve_config(rows: int, locked: dict[str, Any], time_budget: float | None) -> dict[str, Any]:
    config = dict(BASE)
    config.update(next(rule for bound, rule in SIZE_RULES if rows <= bound))
    config["batch_size"] = batch_size_for(rows)
    config["gbdt_min_leaf"] = min_leaf_for(rows)
    config["time_budget"] = float(time_budget) if time_budget else 0.0
    config.update({k: v for k, v in locked.items() if k not in ("val_fraction", "test_fraction")})
    return config


def mlp_parameters(n_in: int, hidden: int, layers: int, n_out: int) -> int:
    """Exact parameter count of the Linear stack the template builds."""
    sizes = [n_in] + [hidden] * layers + [n_out]
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))



class Tabular:
    name = "tabular"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        config = resolve_config(int(meta["splits"]["train"]), locked, time_budget)
        config["task"] = "classification" if task_type == "tabular_classification" else "regression"
        config["locked"] = sorted(k for k in locked if k not in ("val_fraction", "test_fraction"))
        return config

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        n_in = int(meta["n_features"])
        n_out = int(meta.get("n_classes", 1)) if config["task"] == "classification" else 1
        choice = config.get("model", "auto")
        candidates: list[dict[str, Any]] = []
        if choice in ("auto", "gbdt"):
            candidates.append({
                "name": "gbdt",
                "kind": "gradient-boosted trees (histogram, leaf-wise)",
                "max_rounds": config["gbdt_rounds"],
                "max_leaves": config["gbdt_max_leaves"],
                "min_leaf": config["gbdt_min_leaf"],
                "trees_per_round": n_out if n_out > 2 else 1,
            })
        if choice in ("auto", "mlp"):
            candidates.append({
                "name": "mlp",
                "kind": "multilayer perceptron (Linear-ReLU-Dropout)",
                "input": n_in,
                "hidden": config["hidden"],
                "layers": config["layers"],
                "output": n_out,
                "parameters": mlp_parameters(n_in, config["hidden"], config["layers"], n_out),
            })
        selection = "best validation " + ("accuracy" if config["task"] == "classification" else "R²")
        names = " + ".join(c["name"] for c in candidates)
        mlp = next((c for c in candidates if c["name"] == "mlp"), None)
        summary = f"{names}" + (f"; mlp {mlp['parameters']:,} params" if mlp else "") + f"; keep {selection}"
        return {"family": "tabular", "candidates": candidates, "selection": selection, "summary": summary}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        from tools.lab.pipeline import template_hook

        return template_hook(self.name, {**{key: config[key] for key in TEMPLATE_KEYS}, "job_id": job_id}, config,
                             architecture)

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        import json

        import pandas as pd

        from tools.metrics import classification_metrics, regression_metrics

        from tools.lab.byo import custom_nets

        extra, requirements = {"transform.py": TOOLS / "tabular_transform.py"}, EXPORT_REQUIREMENTS
        nets = custom_nets(run_out)
        if nets is not None:  # a custom model (tools/lab): predict.py runs it with torch
            extra["custom_nets.py"], requirements = nets, "torch==2.13.0\n" + EXPORT_REQUIREMENTS
        predict = stage_export(staging, "tabular", data_dir, ("transform.json",), extra, requirements)
        target = json.loads((data_dir / "meta.json").read_text())["target"]
        test_rows = pd.read_csv(data_dir / "test_rows.csv")
        predictions = predict.predict_frame(staging, test_rows.drop(columns=[target]))
        if len(predictions) != len(test_rows):
            raise TrainingError("The exported predict.py returned a different number of rows than it was given.")
        export_model_formats(predict, staging, data_dir)
        if task_type == "tabular_classification":
            return classification_metrics(test_rows[target].to_numpy(), predictions[target].to_numpy())
        return regression_metrics(test_rows[target].to_numpy(), predictions[target].to_numpy())


def export_model_formats(predict: Any, staging: Path, data_dir: Path) -> dict[str, Any]:
    """TorchScript + ONNX of the kept MLP (input: transformed features, output: raw scores — logits, or the
    target for regression), rebuilt in torch from the exported weights and checked against predict.py's
    numpy forward first; a GBDT is not a torch model, so exports.json says why it has neither."""
    import json

    import numpy as np

    from tools.models.base import export_checked

    model = predict.load_model(str(staging))
    X = np.load(data_dir / "X_test.npy").astype(np.float32)[:8]
    if model.kind != "mlp":
        reason = ("a gradient-boosted tree ensemble is not a torch model; predict.py runs it in numpy"
                  if model.kind == "gbdt" else "a custom model ships as custom_nets.py + safetensors only")
        report = {"formats": ["safetensors"], "torchscript": {"torchscript": None, "reason": reason},
                  "onnx": {"onnx": None, "reason": reason}}
        (staging / "exports.json").write_text(json.dumps(report, indent=2))
        return report
    import torch

    layers: list[Any] = []
    names = model.architecture["weights"]
    for i, name in enumerate(names):
        weight = torch.from_numpy(np.asarray(model.tensors[f"{name}.weight"], dtype=np.float32))
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(torch.from_numpy(np.asarray(model.tensors[f"{name}.bias"], dtype=np.float32)))
        layers += [linear] + ([torch.nn.ReLU()] if i < len(names) - 1 else [])
    net = torch.nn.Sequential(*layers).eval()
    with torch.no_grad():
        rebuilt = net(torch.from_numpy(X)).double().numpy()
    if not np.allclose(rebuilt, predict._mlp_raw(model, X), rtol=1e-4, atol=1e-4):
        raise TrainingError("The MLP rebuilt in torch for ONNX/TorchScript does not match predict.py's forward.")
    report = export_checked(net, X, staging, ("features",), ("scores",))
    report["input"] = "transformed features: transform.py applies transform.json to raw rows first"
    (staging / "exports.json").write_text(json.dumps(report, indent=2))
    return report


TABULAR = Tabular()
