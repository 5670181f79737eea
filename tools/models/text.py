"""Text classification models: a bag-of-embeddings MLP and a small from-scratch Transformer encoder,
trained side by side on the prepared token ids; the better on validation macro-F1 is kept.

Why both by default: on a few hundred or thousand texts the bag of embeddings is usually as good or
better and costs seconds; with more data word order starts to pay and the Transformer wins. Training
both in one run (bow first, it is fast) lets the validation split decide instead of a size rule.
``arch: transformer`` or ``arch: bow`` in the spec trains only that one.

The exported predict.py needs torch, tokenizers and safetensors: it rebuilds the net from the same
``text_classifier_nets.py`` the training script inlines.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, TrainingError
from tools.models.base import merge_locked

NETS_FILE = Path(__file__).resolve().parent / "text_classifier_nets.py"
ARCHES = ("auto", "bow", "transformer")
PRIMARY_METRIC = "macro_f1"  # accuracy flatters imbalanced classes (spam/ham is 70/30)

#: Rules by training-set size: (upper bound on train rows, settings). First row whose bound holds wins.
#: Small data: a narrow, well-regularised model and many cheap epochs; large data: fewer, longer epochs.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (2_000, {"d_model": 64, "n_heads": 4, "layers": 2, "hidden": 128, "dropout": 0.2, "epochs": 30,
             "patience": 8, "lr": 2e-3, "weight_decay": 0.01}),
    (20_000, {"d_model": 96, "n_heads": 4, "layers": 2, "hidden": 192, "dropout": 0.1, "epochs": 15,
              "patience": 5, "lr": 1e-3, "weight_decay": 0.01}),
    (math.inf, {"d_model": 128, "n_heads": 4, "layers": 2, "hidden": 256, "dropout": 0.1, "epochs": 6,
                "patience": 3, "lr": 5e-4, "weight_decay": 0.01}),
)
BASE: dict[str, Any] = {"arch": "auto", "warmup_ratio": 0.05, "clip_norm": 1.0, "grad_accum_steps": 1}
#: Keys the template is rendered with (besides nets_source and job_id).
TEMPLATE_KEYS = (
    "arch", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler", "warmup_ratio",
    "grad_accum_steps", "clip_norm", "patience", "seed", "precision", "d_model", "n_heads", "layers", "hidden",
    "dropout", "time_budget",
)
EXPORT_REQUIREMENTS = "# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\nsafetensors\ntokenizers\n"
NETS_IMPORTS = ("import torch", "import torch.nn as nn")  # what train.py.j2 imports itself
SUMMARY_BATCH = 2  # rows in the dummy batch the architecture summary is measured on


def batch_size_for(rows: int) -> int:
    """About 16 steps an epoch, a power of two between 16 and 128 (small batches regularise small data)."""
    target = min(128, max(16, rows / 16))
    return int(2 ** round(math.log2(target)))


def resolve_config(meta: dict[str, Any], locked: dict[str, Any], time_budget: float | None) -> dict[str, Any]:
    """Size rules from the training rows, then the user's values on top; checks the few cross-key rules."""
    rows = int(meta["splits"]["train"])
    defaults = {**BASE, **next(rule for bound, rule in SIZE_RULES if rows <= bound), "batch_size": batch_size_for(rows)}
    config = merge_locked(defaults, locked, time_budget)
    if "lr_scheduler" in config:  # the spec's name for it
        config["scheduler"] = config.pop("lr_scheduler")
    if config["arch"] not in ARCHES:
        raise SpecError(f"The text classifier arch '{config['arch']}' is not known; use one of {', '.join(ARCHES)}.")
    if config["d_model"] % config["n_heads"]:
        raise SpecError(f"d_model {config['d_model']} must be a multiple of n_heads {config['n_heads']} "
                        "for the Transformer; change one of them in the spec.")
    return config


def net_arguments(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of the nets (text_classifier_nets.NET_KEYS) from the config and meta.json."""
    tokenizer = meta.get("tokenizer", {})
    return {"vocab_size": int(tokenizer["vocab_size"]), "n_classes": len(meta["classes"]),
            "max_length": int(meta["max_length"]), "pad_id": int(tokenizer.get("pad_id", 0)),
            "d_model": int(config["d_model"]), "n_heads": int(config["n_heads"]), "layers": int(config["layers"]),
            "hidden": int(config["hidden"]), "dropout": float(config["dropout"])}


def nets_source() -> str:
    """The nets module without its torch imports (the training script already has them at the top)."""
    import re

    kept = "\n".join(line for line in NETS_FILE.read_text().splitlines() if line not in NETS_IMPORTS)
    return re.sub(r"\n{4,}", "\n\n\n", kept).strip() + "\n"


def roc_auc(y_true: Any, score: Any) -> float:
    """Binary ROC-AUC as the rank statistic (ties get half credit); 0.5 when one class is missing."""
    import numpy as np

    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return 0.5
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0  # average 1-based rank of the tie group
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class TextClassifier:
    name = "text_classifier"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        from tools.models import text_pretrained

        if text_pretrained.backbone_of(locked, meta):  # a named backbone: its pretrained encoder, fine-tuned
            config = text_pretrained.resolve_config(meta, locked, time_budget)
        else:
            config = resolve_config(meta, locked, time_budget)
        config["task_type"] = task_type
        return config

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        import torch

        from tools.model_summary import summarize
        from tools.models.text_classifier_nets import NETS, build_net

        if config["arch"] == "pretrained":
            from tools.models import text_pretrained

            return text_pretrained.architecture(config, meta)
        kwargs = net_arguments(config, meta)
        names = ["bow", "transformer"] if config["arch"] == "auto" else [config["arch"]]
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(0, kwargs["vocab_size"], (SUMMARY_BATCH, kwargs["max_length"]), generator=generator)
        ids[ids == kwargs["pad_id"]] = (kwargs["pad_id"] + 1) % kwargs["vocab_size"]
        ids[1, kwargs["max_length"] // 2:] = kwargs["pad_id"]  # a padded row, as in the data
        candidates = []
        for name in names:
            torch.manual_seed(0)
            summary = summarize(build_net(name, **kwargs), ids)
            sizes = {k: kwargs[k] for k in ("d_model", "hidden", "dropout")}
            if name == "transformer":
                sizes.update(n_heads=kwargs["n_heads"], layers=kwargs["layers"])
            candidates.append({"name": name, "kind": NETS[name][1], "parameters": summary["total_parameters"],
                               "vocab_size": kwargs["vocab_size"], "max_length": kwargs["max_length"],
                               "n_classes": kwargs["n_classes"], **sizes, "summary": summary})
        selection = "best validation macro-F1 (ties: lower validation loss)"
        shown = " + ".join(f"{c['name']} {c['parameters']:,} params" for c in candidates)
        return {"family": self.name, "candidates": candidates, "selection": selection,
                "summary": f"{shown}; keep {selection}" if len(candidates) > 1 else shown}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        from tools.lab.pipeline import template_hook

        if config["arch"] == "pretrained":  # train.py.j2 includes pretrained.py.j2 for it
            from tools.models import text_pretrained

            return text_pretrained.template_values(config, job_id)
        values = {**{key: config[key] for key in TEMPLATE_KEYS}, "job_id": job_id, "nets_source": nets_source()}
        return template_hook(self.name, values, config, architecture)

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        import numpy as np
        import pandas as pd

        from tools.lab.byo import custom_nets
        from tools.metrics import classification_metrics
        from tools.models.base import stage_export

        from tools.models.text_pretrained import export_files

        nets, requirements = export_files(run_out) or (custom_nets(run_out) or NETS_FILE, EXPORT_REQUIREMENTS)
        module = stage_export(staging, "text_classifier", data_dir, ("tokenizer.json", "meta.json"),
                              {NETS_FILE.name: nets}, requirements)
        classes = json.loads((data_dir / "meta.json").read_text())["classes"]
        test = pd.read_parquet(data_dir / "test.parquet")
        predictor = module.Predictor.load(str(staging))
        proba = predictor.predict_proba(test["text"].tolist())
        if len(proba) != len(test):
            raise TrainingError("The exported predict.py returned a different number of rows than it was given.")
        from tools.models.base import export_checked

        export_checked(predictor.model, predictor.encode(test["text"].tolist()[:8]), staging, ("ids",), ("logits",))
        predicted = [classes[i] for i in np.asarray(proba).argmax(axis=1)]
        metrics = classification_metrics(test["label"].astype(str).to_numpy(), np.asarray(predicted, dtype=str))
        if len(classes) == 2:
            metrics["roc_auc"] = roc_auc(test["label_id"].to_numpy() == 1, np.asarray(proba)[:, 1])
        return metrics


TEXT_CLASSIFIER = TextClassifier()
