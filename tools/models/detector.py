"""Object detection: a small CenterNet-style detector trained from scratch on the prepared images and
boxes, scored by mAP@0.5 against a trivial baseline (the training set's mean box, majority class).

The nets, targets, decoding and mAP live in :mod:`tools.models.detector_nets` (torch + numpy); the
architecture summary builds the model here, the training script gets the source inlined, and the
export ships the file next to predict.py, so all of them share one implementation. Pretrained
detection backbones are refused (no detection weights are available offline in this version).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, TrainingError, UnsupportedError
from tools.models.base import check_choices, merge_locked

NETS = Path(__file__).resolve().parent / "detector_nets.py"
ARCHS = {"centernet": "CenterNet-style detector from scratch"}
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "linear", "constant", "plateau")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Rules by training images: (upper bound, settings). First row whose bound holds wins. Detection
#: needs more epochs than classification (the heatmaps sharpen slowly), small sets most of all.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (500, {"epochs": 60, "patience": 15, "batch_size": 16, "hidden": 24, "dropout": 0.0}),
    (5_000, {"epochs": 40, "patience": 10, "batch_size": 32, "hidden": 32, "dropout": 0.0}),
    (math.inf, {"epochs": 20, "patience": 5, "batch_size": 32, "hidden": 48, "dropout": 0.0}),
)
DEFAULTS: dict[str, Any] = {"lr": 2e-3, "weight_decay": 1e-4, "scheduler": "cosine", "warmup_ratio": 0.05,
                            "clip_norm": 5.0, "augment": True, "compile": "off"}
TEMPLATE_KEYS = (
    "task_type", "arch", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler", "warmup_ratio",
    "grad_accum_steps", "clip_norm", "patience", "seed", "precision", "hidden", "layers", "dropout", "augment",
    "time_budget", "compile",
)
EXPORT_REQUIREMENTS = "# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\nsafetensors\nPillow\n"


def resolve_config(task_type: str, meta: dict[str, Any], locked: dict[str, Any],
                   time_budget: float | None) -> dict[str, Any]:
    """Data-driven defaults (images, image size), then the user's locked values on top."""
    from tools.models.detector_nets import default_layers

    if locked.get("backbone"):
        raise UnsupportedError(f"Pretrained detection backbones such as '{locked['backbone']}' are not available in "
                               "this version (no detection weights can be had offline); remove 'backbone' from the "
                               "spec to train the small CenterNet-style detector from scratch.")
    arch = locked.get("arch") or "centernet"
    arch = "centernet" if arch == "auto" else arch
    if arch not in ARCHS:
        raise SpecError(f"Object detection comes as {', '.join(ARCHS)}, not {arch!r}; set 'arch' to it or remove it.")
    rows = int(meta["splits"]["train"])
    size = int(meta.get("image_size") or meta["shape"][-1])
    defaults: dict[str, Any] = {**DEFAULTS, **next(rule for bound, rule in SIZE_RULES if rows <= bound)}
    defaults.update(task_type=task_type, arch=arch, model=arch, layers=default_layers(size), image_size=size)
    user = {k: v for k, v in locked.items() if k not in ("arch", "model", "image_size")}
    if "lr_scheduler" in user:  # the spec's name for it
        user["scheduler"] = user.pop("lr_scheduler")
    config = merge_locked(defaults, user, time_budget)
    config["locked"] = sorted(k for k in locked if k not in ("val_fraction", "test_fraction"))
    check_choices(config, (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("precision", PRECISIONS)), "the detector")
    if size // (2 ** int(config["layers"])) < 2:
        raise SpecError(f"layers={config['layers']} downsamples {size}×{size} images below 2×2 cells; "
                        f"use at most {default_layers(size)} or a larger image_size.")
    return config


def model_spec(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """What ``detector_nets.build_model`` takes (the same dict train.py writes into model.json)."""
    return {"arch": config["arch"], "channels": int(meta["shape"][0]), "image_size": int(meta["shape"][-1]),
            "n_classes": int(meta["n_classes"]), "hidden": int(config["hidden"]), "layers": int(config["layers"]),
            "dropout": float(config["dropout"]), "mean": list(meta["mean"]), "std": list(meta["std"])}


def nets_source() -> str:
    """detector_nets.py without its imports (train.py imports them at its top), to inline."""
    lines = NETS.read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("import ", "from "))).strip() + "\n"


class Detector:
    name = "detector"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        if task_type != "object_detection":
            raise UnsupportedError(f"The detector trains object detection, not {task_type.replace('_', ' ')}.")
        return resolve_config(task_type, meta, locked, time_budget)

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        import torch

        from tools.model_summary import summarize
        from tools.models.detector_nets import ARCHS as KINDS
        from tools.models.detector_nets import build_model, detector_widths, output_side

        spec = model_spec(config, meta)
        torch.manual_seed(0)
        model = build_model(spec)
        channels, size = spec["channels"], spec["image_size"]
        summary = summarize(model, torch.zeros(2, channels, size, size))
        stride = 2 ** spec["layers"]
        side = output_side(size, stride)
        candidate: dict[str, Any] = {
            "name": spec["arch"], "kind": KINDS[spec["arch"]], "input": [channels, size, size],
            "output": [spec["n_classes"] + 4, side, side], "stride": stride, "hidden": spec["hidden"],
            "layers": spec["layers"], "widths": detector_widths(spec["hidden"], spec["layers"]),
            "parameters": summary["total_parameters"], "summary": summary,
        }
        selection = f"{spec['arch']}; best epoch kept on validation mAP@0.5"
        return {"family": self.name, "candidates": [candidate], "selection": selection,
                "summary": f"{spec['arch']} on {channels}×{size}×{size} images → {side}×{side} cells "
                           f"(stride {stride}), {summary['total_parameters']:,} params; keep best val mAP@0.5"}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        values = {key: config.get(key) for key in TEMPLATE_KEYS}
        values["compile"] = values["compile"] or "off"
        return {**values, "job_id": job_id, "nets_source": nets_source()}

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        import numpy as np

        from tools.models.base import export_formats, stage_export
        from tools.models.detector_nets import mean_average_precision

        module = stage_export(staging, "detector", data_dir, ("meta.json",), {NETS.name: NETS}, EXPORT_REQUIREMENTS)
        meta = json.loads((data_dir / "meta.json").read_text())
        predictor = module.Predictor.load(str(staging))
        X = np.load(data_dir / "X_test.npy")
        records = json.loads((data_dir / "boxes_test.json").read_text())
        found = predictor.predict_arrays(X, min_score=0.01, labels_as_ids=True)
        if len(found) != len(records):
            raise TrainingError("The exported predict.py returned a different number of results than images.")
        predictions = [(np.asarray([d["box"] for d in dets], dtype=np.float64).reshape(-1, 4),
                        np.asarray([d["score"] for d in dets]), np.asarray([d["label"] for d in dets]))
                       for dets in found]
        result = mean_average_precision(predictions, records, int(meta["n_classes"]))
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(X[:8])).float()
        export_formats(predictor.model, batch[:4], batch.flip(0)[:7], staging, input_names=("pixels",), output_names=("maps",))
        return {"map50": result["map50"]}


DETECTOR = Detector()
