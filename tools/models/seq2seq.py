"""Summarization and translation: a small encoder-decoder transformer trained from scratch on the
tokenizer preprocessing fitted to the data.

Pretrained seq2seq backbones (T5, BART, Marian) need the transformers library, which this version
does not use, so a ``backbone`` is refused at the config stage rather than silently ignored.
The network and the metrics live in ``seq2seq_nets.py``: summarised here, inlined into train.py and
shipped with the export, so all three run the same code.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, TrainingError, UnsupportedError
from tools.models.base import merge_locked

NETS = Path(__file__).resolve().parent / "seq2seq_nets.py"
#: The architecture catalogue (spec key ``arch``).
CATALOGUE = {"transformer": "encoder-decoder transformer (pre-norm, shared tied embeddings, sinusoidal positions)"}
#: Rules by training pairs: (upper bound on pairs, settings). First row whose bound holds wins.
#: Small data wants a narrow model and many epochs; large data a wider one and fewer passes.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (2_000, {"d_model": 64, "n_heads": 4, "layers": 2, "hidden": 256, "dropout": 0.1, "epochs": 60, "patience": 10,
             "lr": 2e-3}),
    (50_000, {"d_model": 128, "n_heads": 4, "layers": 2, "hidden": 512, "dropout": 0.1, "epochs": 30, "patience": 6,
              "lr": 1e-3}),
    (math.inf, {"d_model": 128, "n_heads": 4, "layers": 3, "hidden": 512, "dropout": 0.1, "epochs": 10, "patience": 3,
                "lr": 7e-4}),
)
BASE: dict[str, Any] = {
    "arch": "transformer",
    "label_smoothing": 0.1,
    "beam": 1,  # greedy; 2..4 turns on beam search for the final val/test scores and predict.py
    "max_val_decode": 512,  # val rows decoded each epoch for the task metric (loss uses all rows)
    "warmup_ratio": 0.05,
}
TEMPLATE_KEYS = (
    "task_type", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler", "warmup_ratio",
    "grad_accum_steps", "clip_norm", "patience", "seed", "d_model", "n_heads", "layers", "hidden", "dropout",
    "label_smoothing", "beam", "max_val_decode", "time_budget", "precision",
)
#: Exact torch pin, as the training requirements: a range lets pip pull a different (CUDA) build.
EXPORT_REQUIREMENTS = "torch==2.13.0\nsafetensors\ntokenizers\n"


def batch_size_for(rows: int) -> int:
    """About 16 steps an epoch, a power of two between 16 and 128."""
    target = min(128, max(16, rows / 16))
    return int(2 ** round(math.log2(target)))


def heads_for(d_model: int, wanted: int) -> int:
    """The largest head count <= ``wanted`` that divides d_model."""
    return next(h for h in range(max(1, wanted), 0, -1) if d_model % h == 0)


def nets_source() -> str:
    """seq2seq_nets.py without its module docstring and imports (train.py imports the same modules
    at its top), for inlining into train.py."""
    source = NETS.read_text()
    if source.startswith('"""'):
        source = source[source.index('"""', 3) + 3:]
    lines = [line for line in source.splitlines() if not line.startswith(("import ", "from "))]
    return "\n".join(lines).strip("\n")


def dummy_batch(meta: dict[str, Any], config: dict[str, Any], batch: int = 2) -> tuple[Any, Any]:
    """Source and decoder-input ids shaped like the prepared data (widths from meta.json)."""
    import torch

    vocab = int(meta["tokenizer"]["vocab_size"])
    g = torch.Generator().manual_seed(int(config.get("seed", 0)))
    src = torch.randint(min(7, vocab - 1), vocab, (batch, int(meta["max_length"])), generator=g)
    tgt = torch.randint(min(7, vocab - 1), vocab, (batch, int(meta["max_target_length"]) - 1), generator=g)
    tgt[:, 0] = int(meta["tokenizer"].get("bos_id", 0))
    return src, tgt


def architecture_of(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The settings train.py builds its model from (see build_model in seq2seq_nets.py)."""
    return {"vocab_size": int(meta["tokenizer"]["vocab_size"]), "d_model": int(config["d_model"]),
            "n_heads": int(config["n_heads"]), "layers": int(config["layers"]), "hidden": int(config["hidden"]),
            "dropout": float(config["dropout"]),
            "max_positions": max(int(meta["max_length"]), int(meta["max_target_length"])),
            "pad_id": int(meta["tokenizer"].get("pad_id", 0))}


class Seq2Seq:
    name = "seq2seq"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        backbone = locked.get("backbone") or (meta.get("tokenizer") or {}).get("backbone")
        if backbone:
            raise UnsupportedError(f"Pretrained seq2seq backbones such as '{backbone}' are not supported by this "
                                   "version (they need the transformers library); remove hyperparameters.backbone "
                                   "to train a small transformer from scratch on your data.")
        arch = locked.get("arch", "transformer")
        if arch not in CATALOGUE:
            raise SpecError(f"The hyperparameter arch is '{arch}', but the {task_type.replace('_', ' ')} catalogue "
                            f"has only {', '.join(CATALOGUE)}; fix it in the spec.")
        rows = int(meta["splits"]["train"])
        defaults = {**BASE, **next(rule for bound, rule in SIZE_RULES if rows <= bound),
                    "batch_size": batch_size_for(rows)}
        config = merge_locked(defaults, locked, time_budget)
        if "lr_scheduler" in locked:  # the spec's name for the schedule
            config["scheduler"] = locked["lr_scheduler"]
        config.pop("lr_scheduler", None)
        if config["d_model"] % config["n_heads"]:
            if "n_heads" in locked and "d_model" in locked:
                raise SpecError(f"d_model {config['d_model']} is not divisible by n_heads {config['n_heads']}; "
                                "change one of them in the spec.")
            if "n_heads" in locked:  # keep the user's heads, widen the model to the next multiple
                config["d_model"] = int(math.ceil(config["d_model"] / config["n_heads"]) * config["n_heads"])
            else:
                config["n_heads"] = heads_for(config["d_model"], config["n_heads"])
        config["task_type"] = task_type
        return config

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        from tools.model_summary import summarize
        from tools.models.seq2seq_nets import build_model

        arch = architecture_of(config, meta)
        model = build_model(arch)
        summary = summarize(model, *dummy_batch(meta, config))
        primary = "rougeL" if task_type == "summarization" else "bleu"
        candidate = {"name": "transformer", "kind": CATALOGUE["transformer"], "parameters": summary["total_parameters"],
                     **{k: arch[k] for k in ("vocab_size", "d_model", "n_heads", "layers", "hidden", "max_positions")},
                     "decoder_layers": arch["layers"],
                     "decoding": "greedy" if int(config.get("beam", 1)) <= 1 else f"beam {config['beam']}",
                     "summary": summary}
        selection = f"best validation {primary} (greedy decoding each epoch), ties broken by validation loss"
        line = (f"transformer {arch['layers']}+{arch['layers']} layers, d_model {arch['d_model']}, "
                f"{arch['n_heads']} heads, vocab {arch['vocab_size']}: {summary['total_parameters']:,} params; "
                f"keep the best val {primary}")
        return {"family": "seq2seq", "candidates": [candidate], "selection": selection, "summary": line}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        from tools.lab.pipeline import template_hook

        values = {**{key: config[key] for key in TEMPLATE_KEYS}, "job_id": job_id, "nets_source": nets_source()}
        return template_hook(self.name, values, config, architecture)

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        import pandas as pd

        from tools.models.seq2seq_nets import task_metrics
        from tools.models.base import stage_export

        module = stage_export(staging, "seq2seq", data_dir, ("tokenizer.json", "meta.json"), {NETS.name: NETS},
                              EXPORT_REQUIREMENTS)
        predictor = module.Predictor.load(staging)
        test = pd.read_parquet(data_dir / "test.parquet")
        sources, targets = test["source"].astype(str).tolist(), test["target"].astype(str).tolist()
        outputs = predictor.predict(sources)
        if len(outputs) != len(sources):
            raise TrainingError("The exported predict.py returned a different number of outputs than it was given.")
        return {k: float(v) for k, v in task_metrics(task_type, outputs, targets).items()}


SEQ2SEQ = Seq2Seq()
