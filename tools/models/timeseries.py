"""Time-series forecasting models: linear, MLP and LSTM forecasters on the windows that
:mod:`tools.prep.timeseries` wrote, the one with the lowest validation MASE kept, always measured
against the seasonal-naive baseline (the value one season ago; the last value when there is none).

Why these three: on the window sizes a CPU handles, a linear map of the window (NLinear/DLinear)
is the strong, hard-to-beat default; an MLP adds interactions (a covariate that scales the level);
an LSTM only pays off with many windows, so it is planned only then. Every network starts as the
seasonal-naive forecaster (see :mod:`tools.models.forecaster_nets`), so a short run cannot end
worse than the baseline on validation.

Metrics (train.py, export) are in the target's original units: mae, rmse, smape (%) and mase, the
MAE divided by the in-sample seasonal-naive MAE of the training part. The season is detected by
train.py on the training part (the data report's hint uses the whole series, test included).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, TrainingError
from tools.models.base import merge_locked

NETS = Path(__file__).resolve().parent / "forecaster_nets.py"
ARCH_NAMES = ("linear", "mlp", "lstm")

#: Rules by training windows: (upper bound, settings). First row whose bound holds wins.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (2_000, {"hidden": 64, "layers": 2, "dropout": 0.1, "epochs": 80, "patience": 15}),
    (50_000, {"hidden": 128, "layers": 2, "dropout": 0.1, "epochs": 40, "patience": 8}),
    (1_000_000, {"hidden": 256, "layers": 2, "dropout": 0.1, "epochs": 15, "patience": 4}),
    (math.inf, {"hidden": 256, "layers": 2, "dropout": 0.0, "epochs": 6, "patience": 2}),
)
#: The LSTM joins the "auto" plan when there are at least this many training windows (fewer: the
#: linear and MLP paths win and the LSTM only costs time)…
LSTM_MIN_WINDOWS = 2_000
#: …and one epoch is at most this many window steps (windows × lags) — a few seconds on a CPU core.
LSTM_MAX_STEPS_PER_EPOCH = 5_000_000
BASE: dict[str, Any] = {
    "arch": "auto",
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.0,  # the seasonal-naive start needs no warmup
    "loss": "mae",  # matches MAE/MASE, robust to outliers (promotions, spikes)
    "season": 0,  # 0 = detected by train.py on the training part; 1 = none
    "instance_norm": True,
}
TEMPLATE_KEYS = (
    "arch", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "lr_scheduler", "warmup_ratio",
    "grad_accum_steps", "clip_norm", "patience", "hidden", "layers", "dropout", "loss", "season", "instance_norm",
    "seed", "precision", "time_budget",
)
#: Spec keys with no meaning for a forecaster; kept in the config but listed as ignored.
NOT_USED = ("n_heads", "n_clusters", "gbdt_rounds", "gbdt_lr", "gbdt_max_leaves", "gbdt_min_leaf", "gbdt_l2")
EXPORT_REQUIREMENTS = "# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\npandas\nsafetensors\n"
#: Windows scored through predict.py's raw-rows path during export (the rest go through its array path).
EXPORT_ROW_CHECKS = 8


def batch_size_for(windows: int) -> int:
    """About 20 steps an epoch, a power of two between 32 and 1024."""
    target = min(1024, max(32, windows / 20))
    return int(2 ** round(math.log2(target)))


def plan_candidates(arch: str, windows: int, lags: int) -> list[str]:
    """Which catalogue entries to train: the named one, or linear + mlp (+ lstm on enough data)."""
    if arch != "auto":
        return [arch]
    plan = ["linear", "mlp"]
    if windows >= LSTM_MIN_WINDOWS and windows * lags <= LSTM_MAX_STEPS_PER_EPOCH:
        plan.append("lstm")
    return plan


def forecast_metrics(y: Any, pred: Any, scale: float) -> dict[str, float]:
    """mae, rmse, smape (%), mase in original units; the same formulas as train.py's."""
    import numpy as np

    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    err = np.abs(y - pred)
    den = np.abs(y) + np.abs(pred)
    smape = np.where(den > 0, 2 * err / np.where(den > 0, den, 1), 0.0)
    mae = float(err.mean())
    return {"mae": mae, "rmse": float(np.sqrt(np.mean((y - pred) ** 2))), "smape": float(100 * smape.mean()),
            "mase": mae / scale}


def nets_source() -> str:
    return NETS.read_text()


class Forecaster:
    name = "forecaster"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        """Size rules from the number of training windows, then the spec's values."""
        windows = int(meta["splits"]["train"])
        defaults = {**BASE, **next(rule for bound, rule in SIZE_RULES if windows <= bound),
                    "batch_size": batch_size_for(windows)}
        locked = dict(locked)
        if "lr_scheduler" not in locked and "scheduler" in locked:
            locked["lr_scheduler"] = locked.pop("scheduler")
        if "hidden" not in locked and "d_model" in locked:  # the LSTM state / MLP width is this family's d_model
            locked["hidden"] = locked["d_model"]
        if "arch" not in locked and locked.get("model") in ARCH_NAMES:
            locked["arch"] = locked["model"]
        config = merge_locked(defaults, locked, time_budget)
        config.pop("scheduler", None)
        arch = str(config["arch"]).lower()
        if arch not in ("auto", *ARCH_NAMES):
            raise SpecError(f"The forecaster arch {config['arch']!r} is not in the catalogue; choose auto, "
                            f"{', '.join(ARCH_NAMES)}.")
        config["arch"] = arch
        if config["precision"] not in ("auto", "fp32", "bf16", "fp16"):
            raise SpecError(f"The precision {config['precision']!r} is not auto, fp32, bf16 or fp16; fix the spec.")
        config["task_type"] = task_type
        config["lags"], config["horizon"] = int(meta["lags"]), int(meta["horizon"])
        config["n_features"] = len(meta["features"])
        config["frequency"] = meta.get("frequency")
        config["train_windows"] = windows
        config["ignored"] = sorted(k for k in locked if k in NOT_USED)
        return config

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        """The planned candidates, each summarised by a real forward pass on a batch shaped like the data."""
        import torch

        from tools.model_summary import summarize
        from tools.models import forecaster_nets

        lags, horizon, n_features = int(meta["lags"]), int(meta["horizon"]), len(meta["features"])
        plan = plan_candidates(config["arch"], int(meta["splits"]["train"]), lags)
        batch = torch.zeros(min(int(config["batch_size"]), 64), lags, n_features)
        season = int(config.get("season") or 0) or 1  # the real season is detected by train.py; init only
        candidates = []
        for name in plan:
            model = forecaster_nets.build_model(name, lags, n_features, horizon, season, bool(config["instance_norm"]),
                                                int(config["hidden"]), int(config["layers"]), float(config["dropout"]))
            summary = summarize(model, batch)
            candidates.append({"name": name, "kind": forecaster_nets.ARCHS[name],
                               "parameters": summary["total_parameters"], "input": [lags, n_features],
                               "output": [horizon], "summary": summary})
        selection = "lowest validation MASE, reported next to the seasonal-naive baseline"
        sizes = ", ".join(f"{c['name']} {c['parameters']:,}" for c in candidates)
        summary = (f"{' + '.join(plan)} on {lags}×{n_features} windows → {horizon} step(s); params {sizes}; "
                   "keep lowest val MASE vs seasonal naive")
        return {"family": self.name, "candidates": candidates, "selection": selection, "summary": summary}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        plan = [c["name"] for c in architecture.get("candidates", [])] or ["linear", "mlp"]
        from tools.lab.pipeline import template_hook

        values = {**{key: config[key] for key in TEMPLATE_KEYS}, "candidates": plan, "job_id": job_id,
                  "nets_source": nets_source()}
        return template_hook(self.name, values, config, architecture)

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        """Ship predict.py, the nets and meta.json; score the test windows through the export."""
        import numpy as np

        from tools.models.base import stage_export

        module = stage_export(staging, "forecaster", data_dir, ("meta.json",), {NETS.name: NETS}, EXPORT_REQUIREMENTS)
        predictor = module.Predictor.load(str(staging))
        X = np.load(data_dir / "X_test.npy")
        y = np.load(data_dir / "y_test.npy").astype(np.float64)
        meta = json.loads((data_dir / "meta.json").read_text())
        truth = y * float(meta["scale"]["std"]) + float(meta["scale"]["mean"])
        pred = predictor.predict_windows(X)
        if pred.shape != truth.shape:
            raise TrainingError(f"The exported predict.py returned forecasts of shape {pred.shape} for {truth.shape}.")
        self._check_rows_path(predictor, data_dir, meta, pred)
        from tools.models.base import export_checked

        export_checked(predictor.model, X.astype(np.float32), staging, ("windows",), ("forecast",))
        return forecast_metrics(truth, pred, float(predictor.info["mase_scale"]))

    @staticmethod
    def _check_rows_path(predictor: Any, data_dir: Path, meta: dict[str, Any], pred: Any) -> None:
        """A few test windows rebuilt as raw rows must forecast what the array path did."""
        import numpy as np
        import pandas as pd

        frame = pd.read_parquet(data_dir / "series.parquet")
        times = np.load(data_dir / "t_test.npy")
        sid = meta.get("series_id")
        series_index = np.load(data_dir / "s_test.npy") if sid else np.zeros(len(times), np.int64)
        lags = int(meta["lags"])
        columns = [meta["time"], *meta["features"]]
        for i in np.linspace(0, len(times) - 1, min(EXPORT_ROW_CHECKS, len(times))).astype(int):
            part = frame[frame[sid].astype(str) == meta["series"][series_index[i]]] if sid else frame
            stamps = pd.DatetimeIndex(part[meta["time"]]).as_unit("ns").asi8
            at = int(np.searchsorted(stamps, times[i]))
            rows = part.iloc[max(0, at - lags):at][columns]
            got = [r[meta["target"]] for r in predictor.predict(rows)]
            if not np.allclose(got, pred[i], rtol=1e-4, atol=1e-4 * float(meta["scale"]["std"])):
                raise TrainingError("The exported predict.py forecasts raw rows differently from the prepared windows "
                                    f"(test window {i}: {got} vs {list(pred[i])}).")


FORECASTER = Forecaster()
