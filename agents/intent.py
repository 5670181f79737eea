"""Intent: what kind of model does the user want? Rules here; an LLM may refine it later."""

from __future__ import annotations

import re
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import UnsupportedError
from orchestrator.plan import TASK_TYPES

#: (pattern over the lower-cased request, task type) — first match wins.
KEYWORD_RULES: tuple[tuple[str, str], ...] = (
    (r"\bfine[- ]?tun\w*\b.*\b(llm|language model|llama|mistral|gpt|qwen|gemma|phi)\b|\blora\b|\bqlora\b", "llm_finetuning"),
    (r"\bsummar(y|ize|ise|ization|isation)\b", "summarization"),
    (r"\btranslat\w*\b", "translation"),
    (r"\b(ner|named entit\w*|pos tag\w*|token classification)\b", "token_classification"),
    (r"\b(detect\w*|bounding box\w*|object detection)\b", "object_detection"),
    (r"\b(forecast\w*|time[- ]series|next \d+ (days|weeks|months|hours))\b", "time_series_forecasting"),
    (r"\b(cluster\w*|segment\w* (customers|users)|group similar)\b", "clustering"),
    (r"\b(generate|generation|write like|language model)\b", "text_generation"),
    (r"\b(image|photo|picture|pixel)s?\b.*\b(regress\w*|predict (the )?(age|count|number|value))\b", "image_regression"),
    (r"\b(image|photo|picture|x-ray|mnist|cifar)s?\b", "image_classification"),
    (r"\b(sentiment|spam|review|tweet|sms|email|text|document)s?\b", "text_classification"),
    (r"\b(regress\w*|how much|how many|price|amount|value of|estimate the|predict the (price|number|amount|value))\b", "tabular_regression"),
    (r"\b(classif\w*|whether|which class|categor\w*|churn|fraud|survive\w*|detect if|is it)\b", "tabular_classification"),
)
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".json", ".jsonl", ".xlsx")


def infer_task_type(text: str, source: str) -> tuple[str | None, str]:
    """Task type from the request's words and the data's file type, with the reason."""
    lowered = text.lower()
    tabular_data = source.lower().endswith(TABLE_SUFFIXES)
    for pattern, task_type in KEYWORD_RULES:
        match = re.search(pattern, lowered)
        if match:
            family = TASK_TYPES[task_type].family
            if tabular_data and family == "text" and task_type == "text_classification":
                # "predict spam from sms.csv" is still a table; the dataset stage looks at the columns.
                return None, f"the request mentions text ('{task_type}') but the data is a table"
            return task_type, f"the request says '{match.group(0)}'"
    if tabular_data:
        return None, "the data is a table; the target column decides classification or regression"
    return None, "no rule matched"


class IntentAgent(BaseAgent):
    stage = "intent"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        spec = context.spec
        data = spec.get("data", {})
        source = str(context.data_paths.get("source") or data.get("source", ""))
        if spec.get("task_type"):
            task_type, reason = spec["task_type"], "given in the spec"
        else:
            task_type, reason = infer_task_type(context.raw_prompt, source)
        if task_type is not None and not TASK_TYPES[task_type].supported:
            raise UnsupportedError(
                f"{task_type.replace('_', ' ')} is not supported by this version yet; "
                "tabular classification and regression are."
            )
        intent = {
            "task": context.raw_prompt,
            "task_type": task_type,
            "task_type_reason": reason,
            "family": TASK_TYPES[task_type].family if task_type else "tabular",
            "target": data.get("target"),
            "source": source,
            "hyperparameters": dict(spec.get("hyperparameters", {})),
            "time_budget": (spec.get("budget") or {}).get("time"),
            "deploy": spec.get("deploy"),
            "policy": "rules",
        }
        summary = f"{task_type or 'tabular (decided from the target column)'} — {reason}"
        return {"intent": intent, "task_type": task_type, "summary": summary}
