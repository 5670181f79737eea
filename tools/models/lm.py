"""Text generation: a small language model trained from scratch on the prepared token blocks.

Catalogue: ``gpt`` (decoder-only transformer, pre-LayerNorm, tied head; the default) and ``bigram``
(one table of next-token logits: a sanity floor). The networks live in ``lm_nets.py``: inlined into
the generated train.py, copied next to the exported predict.py, and built here for the summary, so
all three run the same code. The trivial baseline is a unigram LM (add-one smoothing) on the
training tokens; the model has to beat its test perplexity.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, TrainingError
from tools.models.base import merge_locked

NETS_FILE = Path(__file__).resolve().parent / "lm_nets.py"
ARCHES = ("gpt", "bigram")
#: Model size by training tokens: (upper bound, settings). First row whose bound holds wins. A small
#: corpus wants a small, well-regularised model (it overfits within a few hundred steps otherwise).
#: threads: CPU threads (0 = torch's default); the smallest model is overhead-bound, and on 2 busy
#: cores two threads made its steps 10x slower than one (measured on the example corpus).
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (50_000, {"d_model": 64, "n_heads": 4, "layers": 2, "dropout": 0.2, "batch_size": 32, "lr": 3e-3, "threads": 1}),
    (1_000_000, {"d_model": 128, "n_heads": 4, "layers": 3, "dropout": 0.1, "batch_size": 32, "lr": 2e-3, "threads": 0}),
    (20_000_000, {"d_model": 192, "n_heads": 6, "layers": 4, "dropout": 0.1, "batch_size": 64, "lr": 1e-3, "threads": 0}),
    (math.inf, {"d_model": 192, "n_heads": 6, "layers": 4, "dropout": 0.0, "batch_size": 64, "lr": 1e-3, "threads": 0}),
)
#: Optimizer steps a default run aims for; epochs = this / steps per epoch, clamped to EPOCH_BOUNDS.
TARGET_STEPS = 600
EPOCH_BOUNDS = (2, 100)
#: Early stopping waits about this many optimizer steps without improvement, as epochs clamped to
#: PATIENCE_BOUNDS: a tiny corpus has a few steps an epoch and a noisy val loss.
PATIENCE_STEPS = 60
PATIENCE_BOUNDS = (3, 10)
BASE: dict[str, Any] = {
    "arch": "gpt",
    "weight_decay": 0.1,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.05,
    "sample_tokens": 32,  # tokens generated for the per-epoch sample
}
TEMPLATE_KEYS = (
    "arch", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "lr_scheduler", "warmup_ratio",
    "grad_accum_steps", "clip_norm", "patience", "seed", "precision", "d_model", "n_heads", "layers", "dropout",
    "time_budget", "sample_tokens", "threads",
)
EXPORT_REQUIREMENTS = "# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\nsafetensors\ntokenizers\n"


def steps_per_epoch(train_tokens: int, batch_size: int, block_size: int, accum: int = 1) -> int:
    """Optimizer steps that see about as many tokens as the training split holds (one pass)."""
    return max(1, math.ceil(train_tokens / (batch_size * block_size * max(1, accum))))


def epochs_for(steps: int) -> int:
    low, high = EPOCH_BOUNDS
    return int(min(high, max(low, round(TARGET_STEPS / steps))))


def patience_for(steps: int) -> int:
    low, high = PATIENCE_BOUNDS
    return int(min(high, max(low, math.ceil(PATIENCE_STEPS / steps))))


def heads_for(d_model: int, wanted: int) -> int:
    """The largest head count <= ``wanted`` that divides ``d_model``."""
    return next(h for h in range(max(1, min(wanted, d_model)), 0, -1) if d_model % h == 0)


def nets_source() -> str:
    """lm_nets.py without its module docstring and imports (the template imports math, torch, nn and F
    itself, at the top), to inline into train.py."""
    text = NETS_FILE.read_text()
    lines = text.splitlines()
    drop: set[int] = set()
    for index, node in enumerate(ast.parse(text).body):
        docstring = index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if docstring or isinstance(node, (ast.Import, ast.ImportFrom)):
            drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    return "\n".join(line for i, line in enumerate(lines) if i not in drop).strip("\n") + "\n"


def resolve_config(meta: dict[str, Any], locked: dict[str, Any], time_budget: float | None) -> dict[str, Any]:
    train_tokens = int(meta["tokens"]["train"])
    rule = next(settings for bound, settings in SIZE_RULES if train_tokens <= bound)
    config = merge_locked({**BASE, **rule}, locked, time_budget)
    config.pop("scheduler", None)  # COMMON_DEFAULTS' spelling; the spec key (and the template's) is lr_scheduler
    if config["arch"] not in ARCHES:
        raise SpecError(f"arch '{config['arch']}' is not a language model this version trains; use one of {', '.join(ARCHES)}.")
    if "n_heads" not in locked:
        config["n_heads"] = heads_for(int(config["d_model"]), int(config["n_heads"]))
    elif int(config["d_model"]) % int(config["n_heads"]):
        raise SpecError(f"d_model {config['d_model']} is not a multiple of n_heads {config['n_heads']}; "
                        "pick values where it is (e.g. d_model 128 with n_heads 4).")
    block = int(meta["block_size"])
    config["steps_per_epoch"] = steps_per_epoch(train_tokens, int(config["batch_size"]), block, int(config["grad_accum_steps"]))
    if "epochs" not in locked:
        config["epochs"] = epochs_for(config["steps_per_epoch"])
    if "patience" not in locked:
        config["patience"] = patience_for(config["steps_per_epoch"])
    config["block_size"] = block
    config["vocab_size"] = int(meta["vocab_size"])
    return config


class LanguageModel:
    name = "lm"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        config = resolve_config(meta, locked, time_budget)
        config["task_type"] = task_type
        return config

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        import importlib.util

        import torch

        from tools.model_summary import summarize

        spec = importlib.util.spec_from_file_location("mltrainer_lm_nets", NETS_FILE)
        assert spec is not None and spec.loader is not None
        nets = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(nets)
        vocab, block = int(meta["vocab_size"]), int(meta["block_size"])
        arch = architecture_dict(config, vocab, block)
        torch.manual_seed(0)
        model = nets.build_model(arch)
        summary = summarize(model, torch.zeros(2, block, dtype=torch.long))
        kind = ("decoder-only transformer (pre-LayerNorm, causal SDPA, tied head)" if arch["name"] == "gpt"
                else "bigram logit table")
        candidate = {"name": arch["name"], "kind": kind, "parameters": summary["total_parameters"],
                     "summary": summary, **{k: v for k, v in arch.items() if k != "name"}}
        sizes = (f"d_model {arch['d_model']}, {arch['layers']} layers, {arch['n_heads']} heads, "
                 if arch["name"] == "gpt" else "")
        return {
            "family": "lm",
            "candidates": [candidate],
            "selection": "lowest validation loss (the best epoch's weights)",
            "summary": (f"{arch['name']}: {sizes}context {block}, vocab {vocab}; "
                        f"{summary['total_parameters']:,} params; keep lowest val loss"),
        }

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        from tools.lab.pipeline import template_hook

        values = {**{key: config[key] for key in TEMPLATE_KEYS}, "job_id": job_id, "nets_source": nets_source()}
        return template_hook(self.name, values, config, architecture)

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        import numpy as np

        from tools.models.base import stage_export

        module = stage_export(staging, "lm", data_dir, ("tokenizer.json", "meta.json"), {NETS_FILE.name: NETS_FILE},
                              EXPORT_REQUIREMENTS)
        blocks = np.load(data_dir / "blocks_test.npy", mmap_mode="r", allow_pickle=False)
        predictor = module.Predictor.load(str(staging))
        try:
            return dict(predictor.evaluate(blocks))
        except ValueError as err:
            raise TrainingError(f"The exported predict.py could not score the test split: {err}") from None


def architecture_dict(config: dict[str, Any], vocab: int, block: int) -> dict[str, Any]:
    """What model.json's "architecture" holds: enough for lm_nets.build_model."""
    arch: dict[str, Any] = {"name": config["arch"], "vocab_size": vocab, "block_size": block}
    if config["arch"] == "gpt":
        arch.update(d_model=int(config["d_model"]), n_heads=int(config["n_heads"]), layers=int(config["layers"]),
                    dropout=float(config["dropout"]))
    return arch


LANGUAGE_MODEL = LanguageModel()
