"""Model families as a table: task type → the module with its config rules, architecture catalogue,
template values and export. Imported lazily (torch is slow to load)."""

from __future__ import annotations

import importlib

from orchestrator.errors import UnsupportedError
from tools.models.base import ModelFamily

#: task type → "module:attribute" of its ModelFamily. A task type missing here is prepared but not
#: trained by this version (the config stage says so in one sentence).
MODEL_FAMILIES: dict[str, str] = {
    "tabular_classification": "tools.models.tabular:TABULAR",
    "tabular_regression": "tools.models.tabular:TABULAR",
    "clustering": "tools.models.clustering:CLUSTERING",
    "text_classification": "tools.models.text:TEXT_CLASSIFIER",
    "token_classification": "tools.models.tokens:TOKEN_TAGGER",
    "summarization": "tools.models.seq2seq:SEQ2SEQ",
    "translation": "tools.models.seq2seq:SEQ2SEQ",
    "text_generation": "tools.models.lm:LANGUAGE_MODEL",
    "image_classification": "tools.models.image:IMAGE_MODELS",
    "image_regression": "tools.models.image:IMAGE_MODELS",
    "time_series_forecasting": "tools.models.timeseries:FORECASTER",
    "object_detection": "tools.models.detector:DETECTOR",
    "llm_finetuning": "tools.models.llm_finetune:LLM_FINETUNE",
}


def model_family_for(task_type: str) -> ModelFamily:
    target = MODEL_FAMILIES.get(task_type)
    if target is None:
        trainable = ", ".join(sorted(t.replace("_", " ") for t in MODEL_FAMILIES))
        raise UnsupportedError(f"Training {task_type.replace('_', ' ')} models is not supported by this version yet "
                               f"({trainable} are)")
    module_name, attribute = target.split(":")
    family: ModelFamily = getattr(importlib.import_module(module_name), attribute)
    return family
