"""The contract between the model stages (config, architecture, codegen, training, export) and one
task family's model code.

A family provides a :class:`ModelFamily` (registered in ``tools/models/__init__.py``) and a template
folder ``tools/templates/<family>/`` with ``train.py.j2`` and ``predict.py``.

The generated ``train.py`` (one file, top to bottom; flat argparse with help and defaults; a
docstring with a tiny CPU smoke command) keeps this interface, which the training stage relies on:

``python train.py --data-dir DIR --out-dir OUT [--resume] [--smoke] [--device auto|cpu|cuda] [--epochs N] [--time-budget S] [--seed N]``

- reads only what preprocessing wrote in ``DIR`` (``meta.json`` says what each file holds);
- prints ``METRIC {json}`` lines on stdout: ``{"model": name, "epoch": e, "total_epochs": E,
  "split": "train" | "val", <metric>: value, ...}`` — at least one ``val`` line per epoch;
- writes ``OUT/checkpoint.json`` (config + loop state, atomically) and its weights every epoch;
  ``--resume`` continues from them, the epoch counter carrying on (a killed run continues);
- finishes with ``OUT/model.safetensors``, ``OUT/model.json`` (``{"kind", "family", "task_type",
  "architecture": {...}}`` — everything ``predict.py`` needs to rebuild the model) and
  ``OUT/metrics.json``: ``{"primary_metric", "higher_is_better", "best_val", "best_model",
  "test": {metric: value}, "baseline": {"name": ..., metric: value}, "epochs_run"}`` where ``test``
  and ``baseline`` are measured on the held-out test split (the baseline is the trivial one:
  majority class, mean, seasonal naive, unigram LM…);
- on bad input prints one ``error: …`` line on stderr and exits 2; never reads the environment for
  secrets (it runs with a scrubbed one).

The exported ``predict.py`` defines ``Predictor.load(folder)`` and ``Predictor.predict(inputs)``
plus ``predict_file(folder, input_path, output_path) -> int`` (rows written) and a CLI
``python predict.py --input FILE --output FILE``; it imports torch only if the family needs it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

#: Hyperparameters every torch family resolves (the tabular family has its own table).
COMMON_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 0.01,
    "optimizer": "adamw",
    "scheduler": "cosine",
    "warmup_ratio": 0.05,
    "grad_accum_steps": 1,
    "clip_norm": 1.0,
    "patience": 5,
    "seed": 42,
    "precision": "auto",  # bf16 autocast on CUDA when supported, fp32 on CPU
    "time_budget": 0.0,
}


class ModelFamily(Protocol):
    """Model-side code of one task family."""

    name: str  # the template folder under tools/templates/

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        """Every hyperparameter resolved: data-driven defaults, then the user's locked values."""
        ...

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        """{"family", "candidates": [{"name", "kind", "parameters", ...}], "selection", "summary"}."""
        ...

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        """The values ``train.py.j2`` is rendered with (``cfg``); never a secret."""
        ...

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        """Copy what ``predict.py`` needs into ``staging`` (the template's predict.py included),
        then measure the test split through ``staging/predict.py``; returns the test metrics."""
        ...


def read_meta(data_dir: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((Path(data_dir) / "meta.json").read_text())
    return meta


def merge_locked(defaults: dict[str, Any], locked: dict[str, Any], time_budget: float | None) -> dict[str, Any]:
    """Defaults, then the user's values on top (never the split fractions: preprocessing used them)."""
    config = {**COMMON_DEFAULTS, **defaults}
    config.update({k: v for k, v in locked.items() if k not in ("val_fraction", "test_fraction")})
    if time_budget:
        config["time_budget"] = float(time_budget)
    config["locked"] = sorted(k for k in locked if k not in ("val_fraction", "test_fraction"))
    return config

def check_choices(config: dict[str, Any], choices: tuple[tuple[str, tuple[str, ...]], ...], models: str) -> None:
    """Each (key, allowed) of ``choices`` must hold one of its values; else a SpecError naming the key."""
    from orchestrator.errors import SpecError

    for key, allowed in choices:
        if config[key] not in allowed:
            raise SpecError(f"hyperparameter '{key}' must be one of {', '.join(allowed)} for {models}, "
                            f"got {config[key]!r}; change it in the spec.")


def load_predict_module(export_dir: Path) -> ModuleType:
    """Import an export's predict.py by path (works from any working directory)."""
    from orchestrator.errors import TrainingError

    path = Path(export_dir) / "predict.py"
    spec = importlib.util.spec_from_file_location(f"mltrainer_export_{abs(hash(str(export_dir)))}", path)
    if spec is None or spec.loader is None:
        raise TrainingError(f"{path} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module



#: A traced model must reproduce the eager outputs to this tolerance to be shipped.
TRACE_TOLERANCE = 1e-4


def export_torchscript(model: Any, example: Any, path: Path, check: Any = None) -> dict[str, Any]:
    """Trace ``model`` on ``example`` into ``path`` and check the reloaded copy against eager torch on
    ``check`` — other inputs than the traced ones, so a trace that baked in data-dependent values is caught.

    Returns what happened, for config.json: the file and the largest output difference, or the
    reason no TorchScript file was shipped (a model whose forward cannot be traced still exports).
    """
    import torch

    import warnings

    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings: the check below decides, not the warnings
            traced = torch.jit.trace(model, example)
            traced.save(str(path))
            reloaded = torch.jit.load(str(path))
            probe = _as_tuple(example if check is None else check)
            expected, got = model(*probe), reloaded(*probe)
        diff = float((expected.float() - got.float()).abs().max())
    except Exception as err:  # noqa: BLE001 - tracing fails in many ways; the export stays valid without it
        path.unlink(missing_ok=True)
        return {"torchscript": None, "reason": f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"}
    if not diff <= TRACE_TOLERANCE:
        path.unlink(missing_ok=True)
        return {"torchscript": None, "reason": f"traced outputs differ from eager torch by {diff:.2e}"}
    return {"torchscript": path.name, "max_abs_diff": diff}


#: An ONNX graph must reproduce torch's outputs to within this (absolute, plus the same share of the
#: output's scale) on inputs other than the exported ones to be shipped.
ONNX_TOLERANCE = 1e-4
ONNX_OPSET = 18


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _onnx_compare(model: Any, path: Path, check: tuple[Any, ...], input_names: tuple[str, ...]) -> float:
    """Largest difference between onnxruntime and eager torch on ``check``, relative to the output scale."""
    import numpy as np
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: tensor.detach().cpu().numpy() for name, tensor in zip(input_names, check)}
    got = session.run(None, feeds)
    with torch.no_grad():
        expected = [t.detach().float().cpu().numpy() for t in _as_tuple(model(*check))]
    if len(got) != len(expected):
        raise ValueError(f"onnxruntime returned {len(got)} outputs, torch {len(expected)}")
    worst = 0.0
    for e, g in zip(expected, got):
        if e.shape != g.shape:
            raise ValueError(f"onnxruntime output shape {g.shape} differs from torch {e.shape}")
        scale = 1.0 + float(np.abs(e).max()) if e.size else 1.0
        worst = max(worst, float(np.abs(e - g.astype(np.float32)).max()) / scale if e.size else 0.0)
    return worst


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """The exporters talk on the terminal the live view draws on: the TorchScript-based one dumps its whole
    graph on stdout when it fails (torch enables its ONNX log whatever ``verbose`` says) and the dynamo one
    logs missing torchvision ops. Silence both for the call, without touching stdout itself."""
    import logging

    import torch

    logger = logging.getLogger("torch.onnx")
    level, log = logger.level, torch._C._jit_onnx_log
    logger.setLevel(logging.ERROR)
    torch._C._jit_onnx_log = lambda *args, **kwargs: None
    try:
        yield
    finally:
        torch._C._jit_onnx_log = log
        logger.setLevel(level)


def export_onnx(model: Any, example: Any, path: Path, check: Any = None, input_names: tuple[str, ...] = ("input",),
                output_names: tuple[str, ...] = ("output",), dynamic_axes: dict[str, dict[int, str]] | None = None) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` and run it with onnxruntime against eager torch on ``check``
    (other inputs than the exported ones, another batch size where given) — kept only when close.

    The TorchScript-based exporter goes first (fast, needs nothing else); the dynamo exporter
    (torch.export + onnxscript) is the fallback for models it cannot trace. The batch axis (0) of
    every input and output is dynamic unless ``dynamic_axes`` says otherwise. Returns what happened,
    for the export report: the file, exporter and largest difference, or the reason none was shipped.
    """
    import warnings

    import torch

    example, probe = _as_tuple(example), _as_tuple(example if check is None else check)
    axes = dynamic_axes if dynamic_axes is not None else {n: {0: "batch"} for n in (*input_names, *output_names)}
    model.eval()
    try:
        import onnxruntime  # noqa: F401 - the check below needs it; no check, no file
    except ImportError:
        return {"onnx": None, "reason": "onnxruntime is not installed, so an ONNX file could not be checked"}
    failures: list[str] = []
    for exporter in ("torchscript", "dynamo"):
        path.unlink(missing_ok=True)
        try:
            with torch.no_grad(), warnings.catch_warnings(), _quiet_exporters():
                warnings.simplefilter("ignore")
                if exporter == "torchscript":
                    torch.onnx.export(model, example, str(path), input_names=list(input_names),
                                      output_names=list(output_names), dynamic_axes=axes, opset_version=ONNX_OPSET,
                                      dynamo=False, verbose=False)
                else:
                    shapes = tuple({axis: torch.export.Dim.AUTO for axis in axes.get(name, {})}
                                   for name in input_names)
                    torch.onnx.export(model, example, str(path), input_names=list(input_names),
                                      output_names=list(output_names), dynamic_shapes=shapes,
                                      opset_version=ONNX_OPSET, dynamo=True, external_data=False, verbose=False)
            diff = _onnx_compare(model, path, probe, input_names)
        except Exception as err:  # noqa: BLE001 - exporters fail in many ways; the export stays valid without ONNX
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            failures.append(f"{exporter} exporter: {type(err).__name__}: {first}")
            continue
        if diff <= ONNX_TOLERANCE:
            return {"onnx": path.name, "exporter": exporter, "opset": ONNX_OPSET, "max_rel_diff": diff,
                    "inputs": list(input_names), "outputs": list(output_names)}
        failures.append(f"{exporter} exporter: onnxruntime outputs differ from torch by {diff:.2e} (relative)")
    path.unlink(missing_ok=True)
    for leftover in path.parent.glob(path.name + ".data"):
        leftover.unlink()
    return {"onnx": None, "reason": "; ".join(failures)}


def export_formats(model: Any, example: Any, check: Any, staging: Path, input_names: tuple[str, ...] = ("input",),
                   output_names: tuple[str, ...] = ("output",), dynamic_axes: dict[str, dict[int, str]] | None = None,
                   torchscript: bool = True) -> dict[str, Any]:
    """TorchScript and ONNX beside the safetensors weights, each checked against eager torch on ``check``;
    writes ``exports.json`` (which formats were written, and why any was not) and returns it."""
    report: dict[str, Any] = {"formats": ["safetensors"]}
    if torchscript:
        report["torchscript"] = export_torchscript(model, example, staging / "model.torchscript.pt", check=check)
        if report["torchscript"].get("torchscript"):
            report["formats"].append("torchscript")
    report["onnx"] = export_onnx(model, example, staging / "model.onnx", check=check, input_names=input_names,
                                 output_names=output_names, dynamic_axes=dynamic_axes)
    if report["onnx"].get("onnx"):
        report["formats"].append("onnx")
    (staging / "exports.json").write_text(json.dumps(report, indent=2))
    return report


def export_checked(model: Any, inputs: Any, staging: Path, input_names: tuple[str, ...] = ("input",),
                   output_names: tuple[str, ...] = ("output",)) -> dict[str, Any]:
    """:func:`export_formats` on real rows: traced/exported on the first four of ``inputs`` (a numpy array
    of model inputs), checked on the others reversed — other values and another batch size."""
    import numpy as np
    import torch

    rows = torch.from_numpy(np.ascontiguousarray(np.asarray(inputs)[:8]))
    check = rows.flip(0)[:7] if len(rows) > 1 else rows
    return export_formats(model, rows[:4], check, staging, input_names, output_names)


TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def stage_export(staging: Path, template: str, data_dir: Path, data_files: tuple[str, ...] = (),
                 extra: dict[str, Path] | None = None, requirements: str = "") -> ModuleType:
    """Fill an export folder the way every family does — the data files predict.py reads (meta.json,
    tokenizer.json…), extra files by destination name (nets, transform), the family's predict.py and
    requirements.txt — then import that predict.py, which is what the test split is scored through."""
    import shutil

    for name in data_files:
        shutil.copy2(Path(data_dir) / name, staging / name)
    for name, source in (extra or {}).items():
        shutil.copy2(source, staging / name)
    shutil.copy2(TEMPLATES / template / "predict.py", staging / "predict.py")
    (staging / "requirements.txt").write_text(requirements)
    return load_predict_module(staging)
