"""Token classification (NER, POS, chunking): a transformer encoder and a BiLSTM tagger from scratch.

Catalogue: ``transformer`` (embedding + learned positions + ``nn.TransformerEncoder`` + per-token
linear head) and ``bilstm`` (embedding + bidirectional LSTM + linear head). Up to
:data:`AUTO_MAX_ROWS` training sentences both are trained (they are cheap) and the better on
validation is kept; above it the transformer is picked by size (it parallelises over positions).
The primary metric is seqeval-style entity F1 (exact spans from BIO/BIOES tags); tags without
chunk prefixes (POS) are scored by token accuracy. Each word is tagged by its first sub-token.
Pretrained encoders are wired for text classification only, so a ``backbone`` is refused at the config stage.

The networks and the scoring live in ``token_tagger_nets.py``: inlined into train.py, measured by
the architecture summary and shipped next to the exported predict.py — one code path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, TrainingError, UnsupportedError
from tools.models.base import merge_locked

NETS = Path(__file__).resolve().parent / "token_tagger_nets.py"
ARCHS = ("transformer", "bilstm")
#: Up to this many training sentences ``arch: auto`` trains both candidates and keeps the better on val.
AUTO_MAX_ROWS = 20_000
#: Rules by training sentences: (upper bound, settings). First row whose bound holds wins. Small
#: corpora want narrow, regularised models and more epochs; big ones a wider model and fewer passes.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (2_000, {"d_model": 64, "n_heads": 4, "layers": 2, "hidden": 128, "dropout": 0.2, "epochs": 30, "patience": 6, "lr": 2e-3}),
    (20_000, {"d_model": 128, "n_heads": 4, "layers": 2, "hidden": 256, "dropout": 0.1, "epochs": 20, "patience": 5, "lr": 1e-3}),
    (math.inf, {"d_model": 256, "n_heads": 8, "layers": 3, "hidden": 512, "dropout": 0.1, "epochs": 10, "patience": 3, "lr": 5e-4}),
)
TEMPLATE_KEYS = (
    "arch", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler", "warmup_ratio", "grad_accum_steps",
    "clip_norm", "patience", "seed", "precision", "d_model", "n_heads", "layers", "hidden", "dropout", "time_budget",
)
EXPORT_REQUIREMENTS = "# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\nsafetensors\ntokenizers\n"
KINDS = {
    "transformer": "transformer encoder tagger (embedding + positions + nn.TransformerEncoder + linear head)",
    "bilstm": "BiLSTM tagger (embedding + bidirectional LSTM + linear head)",
}


def batch_size_for(rows: int) -> int:
    """About 20 steps an epoch, a power of two between 16 and 64 sentences."""
    target = min(64, max(16, rows / 20))
    return int(2 ** round(math.log2(target)))


def primary_metric(labels: list[str]) -> str:
    """Entity F1 when the tags carry chunk prefixes (B-/I-/E-), else token accuracy (POS tags)."""
    prefixed = any(len(t) > 2 and t[1] in "-_" and t[0].upper() in "BIE" for t in labels)
    return "f1" if prefixed else "accuracy"


def nets_body() -> str:
    """The nets module without its import lines (the template imports the same names up top)."""
    lines = NETS.read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("import ", "from "))).strip() + "\n"


def resolve_config(meta: dict[str, Any], locked: dict[str, Any], time_budget: float | None) -> dict[str, Any]:
    backbone = locked.get("backbone") or (meta.get("tokenizer") or {}).get("backbone")
    if backbone:  # refused rather than silently trained from scratch on the backbone's tokenizer
        raise UnsupportedError(f"Pretrained token-classification backbones such as '{backbone}' are not supported by "
                               "this version (pretrained encoders are wired for text classification only); remove "
                               "hyperparameters.backbone to train a tagger from scratch.")
    rows = int(meta["splits"]["train"])
    defaults: dict[str, Any] = dict(next(rule for bound, rule in SIZE_RULES if rows <= bound))
    defaults.update(batch_size=batch_size_for(rows), arch="auto" if rows <= AUTO_MAX_ROWS else "transformer",
                    warmup_ratio=0.05, weight_decay=0.01)
    config = merge_locked(defaults, locked, time_budget)
    if "lr_scheduler" in locked:  # the spec's name for it
        config["scheduler"] = locked["lr_scheduler"]
    if config["arch"] not in ("auto", *ARCHS):
        raise SpecError(f"The hyperparameter arch is {config['arch']!r}; a token tagger is one of auto, {', '.join(ARCHS)}.")
    if config["arch"] in ("auto", "transformer") and int(config["d_model"]) % int(config["n_heads"]):
        raise SpecError(f"d_model {config['d_model']} must be divisible by n_heads {config['n_heads']} for the transformer tagger.")
    return config


class TokenTagger:
    name = "token_tagger"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        config = resolve_config(meta, locked, time_budget)
        config["task_type"] = task_type
        config["primary_metric"] = primary_metric(list(meta.get("labels", [])))
        return config

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        import torch

        from tools.model_summary import summarize
        from tools.models import token_tagger_nets as nets

        labels = list(meta["labels"])
        tok = meta["tokenizer"]
        max_length, pad_id = int(meta["max_length"]), int(tok.get("pad_id", 0))
        plan = list(ARCHS) if config["arch"] == "auto" else [config["arch"]]
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(0, int(tok["vocab_size"]), (2, max_length), generator=generator)
        ids[ids == pad_id] = (pad_id + 1) % int(tok["vocab_size"])
        ids[1, max_length // 2:] = pad_id  # a padded row, like the data
        candidates = []
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # the fused eval path would skip the per-layer hooks
        try:
            for name in plan:
                arch = {"vocab_size": int(tok["vocab_size"]), "n_labels": len(labels), "max_length": max_length,
                        "pad_id": pad_id, "d_model": config["d_model"], "layers": config["layers"],
                        "hidden": config["hidden"], "dropout": config["dropout"]}
                if name == "transformer":
                    arch["n_heads"] = config["n_heads"]
                torch.manual_seed(config["seed"])
                summary = summarize(nets.build_model(name, **arch), ids)
                candidates.append({"name": name, "kind": KINDS[name], "parameters": summary["total_parameters"],
                                   **{k: v for k, v in arch.items() if k not in ("vocab_size", "n_labels", "pad_id")},
                                   "summary": summary})
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        metric = "entity F1 (exact spans)" if primary_metric(labels) == "f1" else "token accuracy"
        if config["arch"] == "auto":
            selection = f"train both, keep the better validation {metric}"
        elif "arch" in config.get("locked", []):
            selection = f"{config['arch']} as the spec asks; validation {metric} for the best epoch"
        else:
            selection = (f"{config['arch']} picked by size ({meta['splits']['train']:,} training sentences > "
                         f"{AUTO_MAX_ROWS:,}); validation {metric} for the best epoch")
        sizes = ", ".join(f"{c['name']} {c['parameters']:,} params" for c in candidates)
        return {"family": self.name, "candidates": candidates, "selection": selection,
                "summary": f"{sizes}; {len(labels)} tags, max_length {max_length}; {selection}"}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        from tools.lab.pipeline import template_hook

        values = {**{key: config[key] for key in TEMPLATE_KEYS}, "nets_source": nets_body(), "job_id": job_id}
        return template_hook(self.name, values, config, architecture)

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        from tools.models.base import stage_export

        predict = stage_export(staging, "token_tagger", data_dir, ("tokenizer.json", "meta.json"), {NETS.name: NETS},
                              EXPORT_REQUIREMENTS)
        rows = [json.loads(line) for line in (data_dir / "test.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
        predictor = predict.Predictor.load(str(staging))
        predicted = predictor.predict([row["words"] for row in rows])
        if len(predicted) != len(rows):
            raise TrainingError("The exported predict.py returned a different number of sentences than it was given.")
        scores: dict[str, float] = predict.score([row["tags"] for row in rows], [p["tags"] for p in predicted])
        return scores


TOKEN_TAGGER = TokenTagger()
