"""Compression with a quality gate, run by the export stage after the family's export.

Each method makes a variant of the exported model:

- ``int8``: the linear layers' weights as int8 codes with one scale per output channel; at
  inference, models that run in torch get torch's dynamic int8 quantization of their ``nn.Linear``
  layers (int8 matmuls, activations quantized on the fly); numpy models (tabular) run the
  dequantised weights.
- ``ternary`` (BitNet b1.58 style): linear weights in {-1, 0, +1} × a per-output-channel scale
  (mean |W|), zero where |W| ≤ ``sparsity_threshold`` × scale; first a short calibration fine-tune
  on the training split with the straight-through estimator (the forward pass uses the ternary
  weights, the gradient updates the float ones), for families with a calibration adapter below.

Every variant is scored on the test split through its own predict.py, with its size (bytes of the
packed weights) and CPU latency per row (scoring the test split, loading included, measured the
same way as the full model's), and **rolled back** — its folder removed — when the primary metric
falls below ``retention`` × the uncompressed score (for a lower-is-better metric: above it by the
same margin). The kept variants stay in ``export/compressed/<method>/``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

METHODS = ("int8", "ternary")
DEFAULTS: dict[str, Any] = {"methods": list(METHODS), "retention": 0.95, "sparsity_threshold": 0.5,
                            "calibration_steps": 100}
CALIBRATION_LR = 1e-3
#: Latency: the best of this many scorings of the test split, while they take under REPEAT_BELOW_S in all
#: (the first pays one-off costs such as imports and kernel selection).
TIMING_RUNS = 3
REPEAT_BELOW_S = 5.0
CALIBRATION_BATCH = 32
#: Metrics where lower is better, for a family whose metrics.json does not say.
LOWER_IS_BETTER = ("loss", "perplexity", "rmse", "mae", "mse", "mape", "smape", "log_loss", "cer", "wer")
RUNTIME = Path(__file__).resolve().parent / "compressed_runtime.py"
#: Files of the full export a variant does not copy (it gets its own card and weights).
NOT_COPIED = {"README.md", "loss_curve.png", "model.safetensors", "compressed", "config.json", "exports.json",
              "model.onnx", "model.onnx.data", "model.torchscript.pt", "torchscript.json"}
SHIM = '''"""
Predict with the {method}-compressed variant of an mltrainer export.

predict_float.py is the model family's own predict code; this file loads it and applies the runtime
named in compression.json ({runtime}) through compressed.py. Same functions and CLI:

    python predict.py --input INPUT --output predictions.csv
"""

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(file: str):
    path = os.path.join(HERE, file)
    spec = importlib.util.spec_from_file_location(f"_mltrainer_{{file[:-3]}}_{{abs(hash(path))}}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_float = _load("predict_float.py")
_load("compressed.py").install(_float, HERE)
globals().update({{k: v for k, v in vars(_float).items() if not k.startswith("__")}})

if __name__ == "__main__":
    _float.main()
'''


def options_from_spec(section: Any) -> dict[str, Any] | None:
    """The spec's ``compress:`` section with defaults filled in; None when there is none."""
    if not section:
        return None
    given = {k: v for k, v in dict(section).items() if v is not None} if isinstance(section, dict) else {}
    return {**DEFAULTS, **given}


def gate_floor(base: float, retention: float, higher_is_better: bool) -> float:
    """The score a variant must reach: retention × base, written so it also holds for negative
    scores (R²) and lower-is-better metrics."""
    margin = (1.0 - retention) * abs(base)
    return base - margin if higher_is_better else base + margin


def passes(value: float, floor: float, higher_is_better: bool) -> bool:
    return value >= floor - 1e-12 if higher_is_better else value <= floor + 1e-12


# ---------------------------------------------------------------------------- adapters
@dataclass
class Adapter:
    """How one family's exported model is seen as a torch module, and its calibration data."""

    module: torch.nn.Module  # state_dict keys are the model.safetensors keys
    linear_weights: list[str]  # model.safetensors keys of the linear layers' weights
    batches: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]] | None  # (step, size) → inputs, targets
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    has_runtime_model: bool  # the family's Predictor holds this module (int8 runtime possible)


def tabular_mlp(tensors: dict[str, np.ndarray], names: list[str]) -> torch.nn.Module:
    """The exported tabular MLP in torch (Linear → ReLU …; dropout is off at inference), with the
    keys of its model.safetensors, so calibrated weights go straight back."""
    import torch

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(
                torch.nn.Linear(tensors[f"{n}.weight"].shape[1], tensors[f"{n}.weight"].shape[0]) for n in names)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i < len(self.layers) - 1:
                    x = torch.relu(x)
            return x

    model = MLP()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
    return model


def adapter_for(family: str, task_type: str, staging: Path, data_dir: Path) -> tuple[Adapter | None, str]:
    """The family's adapter, or None and the reason compression does not apply."""
    import numpy as np
    import torch
    from safetensors.numpy import load_file

    from tools.models.base import load_predict_module

    info = json.loads((staging / "model.json").read_text())
    tensors = dict(load_file(str(staging / "model.safetensors")))
    if family == "tabular":
        if info.get("kind") == "gbdt":
            return None, "the kept model is gradient-boosted trees, which have no linear layers"
        names = list((info.get("architecture") or {}).get("weights") or [])
        if info.get("kind") != "mlp" or not names or any(f"{n}.weight" not in tensors for n in names):
            return None, f"the kept tabular model ({info.get('kind')}) is not the template's MLP"
        module = tabular_mlp(tensors, names)
        X = torch.from_numpy(np.load(data_dir / "X_train.npy").astype(np.float32))
        y_np = np.load(data_dir / "y_train.npy")
        if task_type == "tabular_regression":
            y = torch.from_numpy(y_np.astype(np.float32))
            variance = float(y.var()) or 1.0
            loss = lambda out, target: torch.nn.functional.mse_loss(out[:, 0], target) / variance  # noqa: E731
        else:
            y = torch.from_numpy(y_np.astype(np.int64))
            loss = torch.nn.functional.cross_entropy
        return Adapter(module, [f"{n}.weight" for n in names], _sampler(X, y), loss, False), ""
    predict = load_predict_module(staging)
    predictor_class = getattr(predict, "Predictor", None)
    if predictor_class is None:
        return None, f"the {family} model runs in numpy without linear layers"
    predictor = predictor_class.load(str(staging))
    module = getattr(predictor, "model", None)
    if not isinstance(module, torch.nn.Module):
        return None, f"the {family} predictor exposes no torch model"
    module = module.cpu().float()
    names = [f"{name}.weight" for name, sub in module.named_modules()
             if isinstance(sub, torch.nn.Linear) and f"{name}.weight" in tensors]
    if not names:
        return None, f"the {family} model has no linear layers"
    batches, loss = None, None
    if family == "text_classifier" and (data_dir / "ids_train.npy").exists():
        ids = torch.from_numpy(np.load(data_dir / "ids_train.npy").astype(np.int64))
        labels = torch.from_numpy(np.load(data_dir / "y_train.npy").astype(np.int64))
        batches, loss = _sampler(ids, labels), torch.nn.functional.cross_entropy
    return Adapter(module, names, batches, loss, True), ""


def _sampler(X: torch.Tensor, y: torch.Tensor) -> Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]:
    import torch

    generator = torch.Generator().manual_seed(0)

    def batch(step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(X), (min(size, len(X)),), generator=generator)
        return X[index], y[index]

    return batch


# ---------------------------------------------------------------------------- methods
def calibrate_ternary(adapter: Adapter, threshold: float, steps: int) -> dict[str, float]:
    """Fine-tune with the linear weights ternary in the forward pass (straight-through gradients)."""
    import torch
    from torch.nn.utils import parametrize

    class TernarySTE(torch.nn.Module):
        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            rows = weight.reshape(weight.shape[0], -1)
            scale = rows.abs().mean(dim=1, keepdim=True).clamp_min(1e-12)
            ternary = torch.where(rows.abs() > threshold * scale, torch.sign(rows), torch.zeros_like(rows)) * scale
            return weight + (ternary.reshape(weight.shape) - weight).detach()

    assert adapter.batches is not None and adapter.loss is not None
    model = adapter.module
    modules = dict(model.named_modules())
    linears = [modules[name.removesuffix(".weight")] for name in adapter.linear_weights]
    for linear in linears:
        parametrize.register_parametrization(linear, "weight", TernarySTE())
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=CALIBRATION_LR)
    model.train()
    first = last = float("nan")
    try:
        for step in range(steps):
            inputs, targets = adapter.batches(step, CALIBRATION_BATCH)
            loss = adapter.loss(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last = float(loss.detach())
            first = last if step == 0 else first
    finally:
        for linear in linears:  # the float (latent) weights stay; they are ternarised when packed
            parametrize.remove_parametrizations(linear, "weight", leave_parametrized=False)
        model.eval()
    return {"steps": steps, "first_loss": first, "last_loss": last}


def copy_export(staging: Path, folder: Path) -> None:
    """A fresh ``folder`` with the full export's files a variant shares (not its weights, card, formats)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in staging.iterdir():
        if path.name not in NOT_COPIED and path.is_file():
            shutil.copy2(path, folder / path.name)


def make_variant(method: str, adapter: Adapter, options: dict[str, Any], staging: Path, folder: Path) -> dict[str, Any]:
    """Write ``folder``: the full export's files, packed + dequantised weights, compression.json."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    runtime = _file_module(RUNTIME)

    copy_export(staging, folder)
    shutil.copy2(RUNTIME, folder / "compressed.py")
    original = dict(load_file(str(staging / "model.safetensors")))
    details: dict[str, Any] = {}
    state = original
    if method == "ternary" and adapter.batches is not None and int(options["calibration_steps"]) > 0:
        details["calibration"] = calibrate_ternary(adapter, float(options["sparsity_threshold"]),
                                                   int(options["calibration_steps"]))
        calibrated = {k: v.detach().cpu().numpy() for k, v in adapter.module.state_dict().items()}
        state = {k: calibrated[k].astype(v.dtype) if k in calibrated else v for k, v in original.items()}
    elif method == "ternary":
        details["calibration"] = {"steps": 0, "reason": "no training-split adapter for this family"
                                  if adapter.batches is None else "calibration_steps is 0"}
    packed = runtime.pack(state, method, adapter.linear_weights, float(options["sparsity_threshold"]))
    save_file({k: np.ascontiguousarray(v) for k, v in packed.items()}, str(folder / runtime.PACKED))
    save_file(runtime.unpack_state(packed), str(folder / "model.safetensors"))
    if method == "ternary":
        trits = [runtime.ternary_codes(state[k], float(options["sparsity_threshold"]))[0] for k in adapter.linear_weights]
        details["zeros"] = float(sum(int((t == 0).sum()) for t in trits) / max(1, sum(t.size for t in trits)))
    use_runtime = method == "int8" and adapter.has_runtime_model
    info = {"method": method, "runtime": runtime.DYNAMIC_INT8 if use_runtime else "dequantised",
            "linear_weights": adapter.linear_weights, "packed": runtime.PACKED,
            **({"sparsity_threshold": float(options["sparsity_threshold"])} if method == "ternary" else {}), **details}
    (folder / runtime.INFO).write_text(json.dumps(info, indent=2))
    return info


def score_variant(family: Any, task_type: str, run_out: Path, data_dir: Path, folder: Path,
                  runtime_hook: bool) -> tuple[dict[str, float], float]:
    """The family's own export scoring, on the variant folder (its predict.py, with the variant's
    runtime installed exactly as the shipped predict.py installs it); the test metrics and seconds."""
    import tools.models.base as base

    original = base.load_predict_module
    formats = getattr(base, "export_formats", None)

    def load(export_dir: Path) -> Any:
        module = original(export_dir)
        if runtime_hook and Path(export_dir).resolve() == folder.resolve():
            _file_module(folder / "compressed.py").install(module, str(folder))
        return module

    def safetensors_only(model: Any, example: Any, check: Any, staging: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        reason = "compressed variants ship safetensors weights only (the full model one folder up has the other formats)"
        report = {"formats": ["safetensors"], "torchscript": {"torchscript": None, "reason": reason},
                  "onnx": {"onnx": None, "reason": reason}}
        (Path(staging) / "exports.json").write_text(json.dumps(report, indent=2))
        return report

    # Families look both up in tools.models.base when they run: stage_export imports the variant's
    # predict.py through load_predict_module (the runtime goes in there), and the TorchScript/ONNX
    # exports (slow, and they would trace full-precision graphs) are left to the full model.
    base.load_predict_module = load
    if formats is not None:
        base.export_formats = safetensors_only  # type: ignore[attr-defined]
    timings: list[float] = []
    try:
        while not timings or (len(timings) < TIMING_RUNS and sum(timings) < REPEAT_BELOW_S):
            started = time.perf_counter()
            metrics = family.export(task_type, run_out, data_dir, folder)
            timings.append(time.perf_counter() - started)
    finally:
        base.load_predict_module = original
        if formats is not None:
            base.export_formats = formats  # type: ignore[attr-defined]
    return metrics, min(timings)


def _file_module(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_mltrainer_{path.stem}_{abs(hash(str(path)))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_shim(folder: Path, method: str, runtime: str) -> None:
    """predict.py that loads the family's predict code (now predict_float.py) with the runtime installed."""
    (folder / "predict.py").replace(folder / "predict_float.py")
    (folder / "predict.py").write_text(SHIM.format(method=method, runtime=runtime))


def variant_card(method: str, row: dict[str, Any], full: dict[str, Any], metric: str) -> str:
    return (f"# {method} variant\n\nCompressed from the model one folder up by mltrainer: linear-layer weights "
            f"{'as int8 codes' if method == 'int8' else 'ternary (1.58-bit)'} with one scale per output channel "
            f"(`compression.json`).\n\n| | full | {method} |\n|---|---|---|\n"
            f"| test {metric} | {full['metric']:.4f} | {row['metric']:.4f} |\n"
            f"| weights (bytes) | {full['size_bytes']:,} | {row['size_bytes']:,} |\n"
            f"| CPU latency per row (ms) | {full['latency_ms_per_row']:.3f} | {row['latency_ms_per_row']:.3f} |\n\n"
            "```bash\npython predict.py --input INPUT --output predictions.csv\n```\n\n"
            "`model.packed.safetensors` is the compact form; `model.safetensors` holds the same weights "
            "dequantised so predict.py runs unchanged — `python compressed.py` rebuilds it from the packed file.\n")


def compress_export(family: Any, task_type: str, run_out: Path, data_dir: Path, staging: Path,
                    test_metrics: dict[str, float], latency_ms: float, n_test: int, options: dict[str, Any],
                    log: Callable[[str, str], None] = lambda message, level="info": None) -> dict[str, Any]:
    """Make, score and gate every requested variant under ``staging/compressed/``; the report."""
    run_metrics = json.loads((run_out / "metrics.json").read_text()) if (run_out / "metrics.json").exists() else {}
    numeric = {k: float(v) for k, v in test_metrics.items() if isinstance(v, (int, float))}
    metric = run_metrics.get("primary_metric")
    if metric not in numeric:
        metric = next(iter(numeric), None)
        higher = metric is not None and not any(word in metric.lower() for word in LOWER_IS_BETTER)
    else:
        higher = bool(run_metrics.get("higher_is_better", True))
    retention = float(options["retention"])
    full = {"size_bytes": (staging / "model.safetensors").stat().st_size, "latency_ms_per_row": latency_ms,
            "metric": numeric.get(metric, float("nan")) if metric else float("nan")}
    report: dict[str, Any] = {"metric": metric, "higher_is_better": higher, "retention": retention,
                              "settings": {k: options[k] for k in DEFAULTS}, "full": full, "variants": []}
    if metric is None:
        report["skipped"] = "the export reported no test metric to gate on"
        return report
    adapter, reason = adapter_for(family.name, task_type, staging, data_dir)
    if adapter is None:
        report["skipped"] = reason
        log(f"compression skipped: {reason}", "info")
        return report
    floor = gate_floor(full["metric"], retention, higher)
    report["floor"] = floor
    n_test = max(1, int(n_test))
    # the full model scored again from a scratch copy, so its latency is measured like the variants'
    scratch = staging / "compressed" / "_full"
    copy_export(staging, scratch)
    shutil.copy2(staging / "model.safetensors", scratch / "model.safetensors")
    try:
        full["latency_ms_per_row"] = score_variant(family, task_type, run_out, data_dir, scratch, False)[1] * 1000 / n_test
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    root = staging / "compressed"
    for method in options["methods"]:
        folder = root / method
        info = make_variant(method, adapter, options, staging, folder)
        hook = info["runtime"] != "dequantised"
        metrics, seconds = score_variant(family, task_type, run_out, data_dir, folder, hook)
        if hook:
            write_shim(folder, method, info["runtime"])
        value = float(metrics.get(metric, float("nan")))
        row = {"method": method, "size_bytes": (folder / "model.packed.safetensors").stat().st_size,
               "latency_ms_per_row": seconds * 1000 / n_test, "metric": value,
               "test_metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
               "runtime": info["runtime"], **{k: info[k] for k in ("calibration", "zeros") if k in info}}
        row["size_ratio"] = row["size_bytes"] / max(1, full["size_bytes"])
        row["kept"] = passes(value, floor, higher)
        if row["kept"]:
            row["path"] = f"compressed/{method}"
            (folder / "README.md").write_text(variant_card(method, row, full, metric))
            log(f"{method}: test {metric} {value:.4f} (full {full['metric']:.4f}), {row['size_bytes']:,} bytes "
                f"({row['size_ratio']:.0%} of full): kept in compressed/{method}", "info")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            row["reason"] = (f"test {metric} {value:.4f} is {'below' if higher else 'above'} the gate "
                             f"{floor:.4f} ({retention:g} × {full['metric']:.4f}): rolled back")
            log(f"{method}: {row['reason']}", "warning")
        report["variants"].append(row)
    if root.exists() and not any(root.iterdir()):
        root.rmdir()
    report["kept"] = [row["method"] for row in report["variants"] if row["kept"]]
    return report


def card_section(report: dict[str, Any]) -> str:
    """The model card's compression table ('' without a report)."""
    if not report:
        return ""
    if report.get("skipped"):
        return f"\n## Compression\n\nSkipped: {report['skipped']}.\n"
    metric, full = report["metric"], report["full"]
    rows = [f"| full | {full['size_bytes']:,} | {full['latency_ms_per_row']:.3f} | {full['metric']:.4f} | exported |"]
    for row in report["variants"]:
        outcome = f"kept in `{row['path']}/`" if row["kept"] else "rolled back"
        rows.append(f"| {row['method']} | {row['size_bytes']:,} | {row['latency_ms_per_row']:.3f} | "
                    f"{row['metric']:.4f} | {outcome} |")
    return (f"\n## Compression\n\nEach variant is kept only if its test {metric} stays within "
            f"{report['retention']:g} of the full model's (gate {report['floor']:.4f}).\n\n"
            f"| variant | weights (bytes) | CPU ms per row | test {metric} | outcome |\n|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
