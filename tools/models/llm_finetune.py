"""LLM fine-tuning: a pretrained causal LM (a Hugging Face id or a local folder) with LoRA adapters
through peft; QLoRA (4/8-bit base weights) only where bitsandbytes and a CUDA GPU are available.

The baseline is the un-tuned base model: its loss and perplexity on the same encoded test examples.
The architecture summary is measured by a real forward pass of the model built on the ``meta``
device from its config (shapes and parameter counts without loading — or downloading — any weights),
with the LoRA adapter attached, so the trainable parameters shown are the ones that will train.
The example encoding and loss code live in :mod:`tools.models.llm_finetune_nets`, inlined into the
training script and shipped with predict.py.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, TrainingError, UnsupportedError
from tools.models.base import merge_locked

NETS = Path(__file__).resolve().parent / "llm_finetune_nets.py"
SCHEDULERS = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Rules by training examples: (upper bound, settings). First row whose bound holds wins.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (500, {"epochs": 5, "batch_size": 8, "patience": 2}),
    (5_000, {"epochs": 3, "batch_size": 8, "patience": 2}),
    (math.inf, {"epochs": 1, "batch_size": 16, "patience": 1}),
)
DEFAULTS: dict[str, Any] = {
    "lr": 2e-4, "weight_decay": 0.0, "scheduler": "cosine", "warmup_ratio": 0.05, "clip_norm": 1.0,
    "lora_r": 8, "lora_alpha": 16.0, "lora_dropout": 0.05, "target_modules": "auto", "quantize": "none",
    "merge": "auto", "compile": "off",
}
#: merge: auto writes merged/ (a copy of the base weights with the adapter folded in) up to this size.
MERGE_AUTO_MAX_PARAMETERS = 500_000_000
#: Tokens per example by default: about a token per 3 characters of the longest usual example, as a
#: power of two in this range (the script also caps it at the model's context length).
MAX_LENGTH_RANGE = (32, 1024)
CHARS_PER_TOKEN = 3
TEMPLATE_KEYS = (
    "backbone", "epochs", "batch_size", "lr", "weight_decay", "scheduler", "warmup_ratio", "grad_accum_steps",
    "clip_norm", "patience", "seed", "precision", "max_length", "lora_r", "lora_alpha", "lora_dropout",
    "target_modules", "quantize", "compile", "time_budget",
)
EXPORT_REQUIREMENTS = ("# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\n"
                       "transformers\npeft\nsafetensors\ntokenizers\n")
SUMMARY_TOKENS = 16


def quantization_available() -> str | None:
    """None when QLoRA can run here, else why not (one clause)."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is available"
    return None


def resolve_backbone(locked: dict[str, Any], meta: dict[str, Any]) -> str:
    backbone = locked.get("backbone") or meta.get("backbone")
    if not backbone:
        raise SpecError("LLM fine-tuning needs a base model; set hyperparameters.backbone to a Hugging Face model id "
                        "or a local model folder.")
    path = Path(str(backbone)).expanduser()
    return str(path.resolve()) if path.is_dir() else str(backbone)


def default_max_length(meta: dict[str, Any]) -> int:
    low, high = MAX_LENGTH_RANGE
    tokens = int(meta.get("characters_p95") or 512) / CHARS_PER_TOKEN + 8
    return int(min(high, max(low, 2 ** math.ceil(math.log2(max(tokens, 1))))))


def resolve_config(meta: dict[str, Any], locked: dict[str, Any], time_budget: float | None) -> dict[str, Any]:
    rows = int(meta["splits"]["train"])
    defaults: dict[str, Any] = {**DEFAULTS, **next(rule for bound, rule in SIZE_RULES if rows <= bound)}
    defaults.update(backbone=resolve_backbone(locked, meta), max_length=default_max_length(meta), model="lora",
                    task_type="llm_finetuning")
    user = {k: v for k, v in locked.items() if k not in ("backbone", "model")}
    if "lr_scheduler" in user:
        user["scheduler"] = user.pop("lr_scheduler")
    config = merge_locked(defaults, user, time_budget)
    config["locked"] = sorted(k for k in locked if k not in ("val_fraction", "test_fraction"))
    if config["scheduler"] not in SCHEDULERS:
        raise SpecError(f"hyperparameter 'lr_scheduler' must be one of {', '.join(SCHEDULERS)} for LLM fine-tuning, "
                        f"got {config['scheduler']!r}; change it in the spec.")
    if config["precision"] not in PRECISIONS:
        raise SpecError(f"hyperparameter 'precision' must be one of {', '.join(PRECISIONS)}, got {config['precision']!r}.")
    if config["quantize"] != "none":
        missing = quantization_available()
        if missing:  # the run still happens, on full-precision weights; the reason is recorded and shown
            config["quantize_note"] = (f"QLoRA ({config['quantize']}) was asked for but {missing}, so LoRA trains on "
                                       "full-precision base weights")
            config["quantize"] = "none"
    return config


def load_meta_model(backbone: str) -> Any:
    """The causal LM built from its config on the meta device (no weights read); UnsupportedError when
    the config itself cannot be had (not a local folder, not cached, offline)."""
    import warnings

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = AutoConfig.from_pretrained(backbone)
    except Exception as err:  # noqa: BLE001 - OSError, ValueError, HTTP errors: one sentence either way
        where = "the folder has no config.json" if Path(backbone).is_dir() else \
            "it is neither a local folder nor in the Hugging Face cache, and the Hub cannot be reached (or has no such model)"
        raise UnsupportedError(f"The base model '{backbone}' cannot be loaded: {where} ({type(err).__name__}); point "
                               "hyperparameters.backbone at a local model folder or a reachable model id.") from None
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return AutoModelForCausalLM.from_config(config)
    except ValueError as err:
        raise UnsupportedError(f"'{backbone}' is not a causal language model transformers can load "
                               f"({str(err).splitlines()[0][:160]}); choose a decoder model (GPT-2, Llama, Qwen…).") from None


def nets_source() -> str:
    """llm_finetune_nets.py without its imports (train.py imports them at its top), to inline."""
    lines = NETS.read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("import ", "from "))).strip() + "\n"


class LLMFinetune:
    name = "llm_lora"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        return resolve_config(meta, locked, time_budget)

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        import warnings

        import torch
        from peft import LoraConfig, get_peft_model

        from tools.model_summary import summarize
        from tools.models.llm_finetune_nets import IGNORE  # noqa: F401 - the nets import cleanly

        base = load_meta_model(config["backbone"])
        base_parameters = sum(p.numel() for p in base.parameters())
        model_type = getattr(base.config, "model_type", "")
        spec = config["target_modules"]
        if spec == "auto":
            from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS_BY_TYPE

            modules: Any = list(DEFAULTS_BY_TYPE.get(model_type) or []) or "all-linear"
        else:
            modules = spec if spec == "all-linear" else [m.strip() for m in str(spec).split(",") if m.strip()]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = get_peft_model(base, LoraConfig(r=int(config["lora_r"]), lora_alpha=float(config["lora_alpha"]),
                                                        lora_dropout=float(config["lora_dropout"]),
                                                        target_modules=modules, task_type="CAUSAL_LM"))
        except ValueError as err:
            raise SpecError(f"LoRA target_modules {spec!r} do not match modules of '{config['backbone']}' "
                            f"({str(err).splitlines()[0][:160]}); use auto, all-linear or names of its linear layers.") from None
        ids = torch.zeros(2, min(SUMMARY_TOKENS, int(config["max_length"])), dtype=torch.long, device="meta")
        summary = summarize(model, ids)
        trainable = summary["trainable_parameters"]
        merge = config["merge"] == "yes" or (config["merge"] == "auto" and base_parameters <= MERGE_AUTO_MAX_PARAMETERS)
        candidate = {
            "name": "lora", "kind": f"LoRA r={config['lora_r']} on {model_type or 'causal LM'} '{config['backbone']}'",
            "backbone": config["backbone"], "model_type": model_type, "base_parameters": int(base_parameters),
            "parameters": summary["total_parameters"], "trainable_parameters": trainable,
            "target_modules": modules, "quantize": config["quantize"], "merge": merge, "summary": summary,
        }
        notes = [config["quantize_note"]] if config.get("quantize_note") else []
        share = 100 * trainable / max(1, summary["total_parameters"])
        return {"family": self.name, "candidates": [candidate], "selection": "best epoch on validation loss",
                "notes": notes, "summary": f"LoRA on {config['backbone']}: {trainable:,} trainable of "
                                           f"{summary['total_parameters']:,} params ({share:.2f}%); keep best val loss"}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        candidates = architecture.get("candidates") or [{}]
        merge = bool(candidates[0].get("merge", config.get("merge") == "yes"))
        return {**{key: config[key] for key in TEMPLATE_KEYS}, "merge": merge, "job_id": job_id,
                "nets_source": nets_source()}

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        from tools.models.base import stage_export

        for folder in ("adapter", "tokenizer", "merged"):
            if (run_out / folder).is_dir():
                shutil.copytree(run_out / folder, staging / folder)
        if not (staging / "adapter").is_dir():
            raise TrainingError(f"Training did not leave the LoRA adapter in {run_out / 'adapter'}; run training again.")
        module = stage_export(staging, "llm_lora", data_dir, ("meta.json",), {NETS.name: NETS}, EXPORT_REQUIREMENTS)
        predictor = module.Predictor.load(str(staging))
        records = module.read_records(str(data_dir / "test.jsonl"))
        result = predictor.evaluate(records)
        formats = ["safetensors (LoRA adapter)"] + (["safetensors (merged)"] if (staging / "merged").is_dir() else [])
        reason = ("not attempted for a causal LM: generation is a loop over a growing cache that predict.py runs "
                  "with transformers; the merged/ folder is what ONNX converters (optimum) start from")
        (staging / "exports.json").write_text(json.dumps(
            {"formats": formats, "onnx": {"onnx": None, "reason": reason},
             "torchscript": {"torchscript": None, "reason": reason}}, indent=2))
        return {"loss": result["loss"], "perplexity": result["perplexity"]}


LLM_FINETUNE = LLMFinetune()
