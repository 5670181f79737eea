"""Image models: a small CNN from scratch (or a pixel MLP) for image classification and regression.

The nets live in :mod:`tools.models.image_nets` (pure torch); the architecture summary builds them
here, the training script gets their source inlined, and the export ships the file next to
predict.py, so all three use the same code. Pretrained image backbones are not wired in (timm is
not installed), so asking for one is refused at the config stage.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, TrainingError, UnsupportedError
from tools.models.base import check_choices, merge_locked

NETS = Path(__file__).resolve().parent / "image_nets.py"
#: The catalogue (the nets are in image_nets.py; named here too so config needs no torch import).
ARCHS = {"cnn": "small CNN from scratch", "mlp": "multilayer perceptron on flattened pixels"}
TASKS = {"image_classification": "classification", "image_regression": "regression"}
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "linear", "constant", "plateau")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Rules by training-set size: (upper bound on rows, settings). First row whose bound holds wins.
#: Small sets get more epochs (each is cheap) and more dropout; big ones a wider CNN.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (2_000, {"epochs": 40, "patience": 10, "batch_size": 64, "hidden": 32, "dropout": 0.2}),
    (20_000, {"epochs": 25, "patience": 6, "batch_size": 128, "hidden": 32, "dropout": 0.1}),
    (200_000, {"epochs": 12, "patience": 4, "batch_size": 128, "hidden": 64, "dropout": 0.1}),
    (math.inf, {"epochs": 6, "patience": 3, "batch_size": 256, "hidden": 64, "dropout": 0.1}),
)
#: Per-arch settings on top of the size rules.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"lr": 2e-3, "weight_decay": 5e-4},
    "mlp": {"lr": 1e-3, "weight_decay": 1e-4, "hidden": 256, "layers": 2},
}
#: Random flips/crops help photos; they hurt tiny glyphs (digits, letters), so they start at this side.
AUGMENT_MIN_SIZE = 24
TEMPLATE_KEYS = (
    "task", "task_type", "arch", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler",
    "warmup_ratio", "grad_accum_steps", "clip_norm", "patience", "seed", "precision", "hidden", "layers",
    "dropout", "augment", "time_budget",
)
EXPORT_REQUIREMENTS = "torch==2.13.0\nnumpy\nsafetensors\nPillow\n"


def cnn_stages(image_size: int) -> int:
    """Stages (each followed by a 2×2 pool) so the last map is about 4×4: 8px → 2, 32px → 4, 64px+ → 5."""
    return int(min(5, max(2, round(math.log2(max(image_size, 4))) - 1)))


def resolve_config(task_type: str, meta: dict[str, Any], locked: dict[str, Any],
                   time_budget: float | None) -> dict[str, Any]:
    """Data-driven defaults (rows, image size, channels), then the user's locked values on top."""
    if locked.get("backbone"):
        raise UnsupportedError(f"Pretrained image backbones such as '{locked['backbone']}' are not supported by this "
                               "version (timm is not installed and timm/transformers image backbones are not wired in); "
                               "remove 'backbone' from the spec to train a small CNN from scratch.")
    arch = locked.get("arch") or locked.get("model") or "cnn"
    arch = "cnn" if arch == "auto" else arch
    if arch not in ARCHS:
        raise SpecError(f"Image models come as {', '.join(ARCHS)}, not {arch!r}; set 'arch' to one of them in the spec.")
    rows = int(meta["splits"]["train"])
    size = int(meta.get("image_size") or meta["shape"][-1])
    defaults: dict[str, Any] = dict(next(rule for bound, rule in SIZE_RULES if rows <= bound))
    defaults["layers"] = cnn_stages(size)
    defaults.update(ARCH_DEFAULTS[arch])
    defaults.update(task_type=task_type, task=TASKS[task_type], arch=arch, model=arch,
                    augment=size >= AUGMENT_MIN_SIZE and arch == "cnn", image_size=size)
    user = {k: v for k, v in locked.items() if k not in ("arch", "model", "image_size")}  # resolved above
    if "lr_scheduler" in user:  # the spec's name for it
        user["scheduler"] = user.pop("lr_scheduler")
    config = merge_locked(defaults, user, time_budget)
    config["locked"] = sorted(k for k in locked if k not in ("val_fraction", "test_fraction"))
    check_choices(config, (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("precision", PRECISIONS)), "image models")
    return config


def model_spec(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """What ``image_nets.build_model`` takes (the same dict train.py writes into model.json)."""
    regression = config["task"] == "regression"
    spec = {"arch": config["arch"], "task": config["task"], "channels": int(meta["shape"][0]),
            "image_size": int(meta["shape"][-1]), "n_outputs": 1 if regression else int(meta["n_classes"]),
            "hidden": int(config["hidden"]), "layers": int(config["layers"]), "dropout": float(config["dropout"]),
            "mean": list(meta["mean"]), "std": list(meta["std"])}
    if regression:
        spec.update(target_mean=float(meta.get("target_mean", 0.0)), target_std=float(meta.get("target_std", 1.0)))
    return spec


def nets_source() -> str:
    """image_nets.py without its imports (train.py imports torch and nn at its top), to inline."""
    lines = NETS.read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("import ", "from "))).strip() + "\n"


class ImageModels:
    name = "image"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        if task_type not in TASKS:
            raise UnsupportedError(f"The image models train {' and '.join(t.replace('_', ' ') for t in TASKS)}, "
                                   f"not {task_type.replace('_', ' ')}.")
        return resolve_config(task_type, meta, locked, time_budget)

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        import torch

        from tools.model_summary import summarize
        from tools.models.image_nets import ARCHS as KINDS
        from tools.models.image_nets import build_model, cnn_widths

        spec = model_spec(config, meta)
        torch.manual_seed(0)
        model = build_model(spec)
        channels, size = spec["channels"], spec["image_size"]
        summary = summarize(model, torch.zeros(2, channels, size, size))
        candidate: dict[str, Any] = {
            "name": spec["arch"], "kind": KINDS[spec["arch"]], "input": [channels, size, size],
            "output": spec["n_outputs"], "hidden": spec["hidden"], "layers": spec["layers"],
            "dropout": spec["dropout"], "parameters": summary["total_parameters"], "summary": summary,
        }
        if spec["arch"] == "cnn":
            candidate["widths"] = cnn_widths(spec["hidden"], spec["layers"])
        primary = "accuracy" if config["task"] == "classification" else "R²"
        selection = (f"{spec['arch']} (asked for in the spec)" if "arch" in config.get("locked", [])
                     or "model" in config.get("locked", []) else f"{spec['arch']} (the default for {size}×{size} images)")
        selection += f"; best epoch kept on validation {primary}"
        shape = f"{channels}×{size}×{size}"
        return {"family": self.name, "candidates": [candidate], "selection": selection,
                "summary": f"{spec['arch']} on {shape} images, {summary['total_parameters']:,} params; "
                           f"keep best val {primary}"}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        from tools.lab.pipeline import template_hook

        values = {**{key: config[key] for key in TEMPLATE_KEYS}, "job_id": job_id, "nets_source": nets_source()}
        return template_hook(self.name, values, config, architecture)

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        import numpy as np

        from tools.metrics import classification_metrics, regression_metrics
        from tools.models.base import stage_export

        from tools.lab.byo import custom_nets

        nets = custom_nets(run_out) or NETS  # a custom model (tools/lab) ships its own nets file under this name
        module = stage_export(staging, "image", data_dir, ("meta.json",), {NETS.name: nets}, EXPORT_REQUIREMENTS)
        meta = json.loads((data_dir / "meta.json").read_text())
        predictor = module.Predictor.load(str(staging))
        X = np.load(data_dir / "X_test.npy")
        y = np.load(data_dir / "y_test.npy")
        predictions = predictor.predict(X)
        import torch

        from tools.models.base import export_formats

        batch = torch.from_numpy(np.ascontiguousarray(X[:8])).float()  # checked on another batch (other size too)
        formats = export_formats(predictor.model, batch[:4], batch.flip(0)[:7], staging, ("pixels",), ("outputs",))
        (staging / "torchscript.json").write_text(json.dumps(formats["torchscript"], indent=2))
        if len(predictions) != len(y):
            raise TrainingError("The exported predict.py returned a different number of predictions than images.")
        if TASKS[task_type] == "classification":
            classes = meta["classes"]
            return classification_metrics(np.asarray([classes[int(i)] for i in y]), np.asarray(predictions))
        return regression_metrics(y, np.asarray(predictions, dtype=np.float64))


IMAGE_MODELS = ImageModels()
