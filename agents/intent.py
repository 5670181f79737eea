"""Intent: what kind of model does the user want?

With an LLM, the model proposes a full ``Intent`` from the request and the column names; a reply
that is not valid JSON or breaks the schema is sent back with its error (up to three tries). The
deterministic rules are the floor: they decide alone without an LLM, and take over when the LLM's
tries are spent. Either way, every value the user set (spec, or stated outright) is put back over
the proposal and locked, so no later stage overrides it.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from agents.intent_rules import KEYWORD_RULES, TABLE_SUFFIXES, infer_task_type, parse_rules, spec_locks
from orchestrator.context import JobContext
from orchestrator.intent import Intent, describe_errors, merge_locked
from orchestrator.plan import TASK_TYPES
from tools.llm import LLMClient

__all__ = ["KEYWORD_RULES", "TABLE_SUFFIXES", "IntentAgent", "LLMClient", "infer_task_type", "parse_reply"]

#: Tries the agent gives the LLM before the rules decide.
MAX_LLM_TRIES = 3
#: Column names beyond this many are left out of the prompt (wide tables would swamp it).
MAX_COLUMNS_IN_PROMPT = 200
#: How much of a failed reply is echoed back to the model with its error.
ECHO_LIMIT = 1500
#: Locked paths whose values stay out of the prompt: local paths say nothing the model needs.
PRIVATE_PATHS = ("dataset.source",)
FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
COLUMN_FIELDS = ("target", "text_column", "image_column", "time_column")
#: ``intent["policy"]`` when the LLM's tries were spent and the rules decided.
FALLBACK = "rules (LLM fallback)"


class ReplyError(ValueError):
    """An LLM reply the agent cannot use; the message is what the model is told on the next try."""


def peek_columns(source: str | None) -> list[str] | None:
    """The header of a local table, cheaply and never raising: the dataset stage owns real errors."""
    if not source or "://" in source:
        return None
    path = Path(source)
    try:
        if not path.is_file():
            return None
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv", ".txt"):
            with open(path, encoding="utf-8", newline="") as handle:
                line = handle.readline(1 << 20)
            if "\x00" in line:
                return None
            delimiter = "\t" if suffix == ".tsv" or ("\t" in line and "," not in line) else ","
            names = next(csv.reader([line], delimiter=delimiter), [])
        elif suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            names = list(pq.read_schema(path).names)
        elif suffix == ".jsonl":
            with open(path, encoding="utf-8") as handle:
                first = json.loads(handle.readline(1 << 20) or "{}")
            names = list(first) if isinstance(first, dict) else []
        else:
            return None
    except Exception:  # noqa: BLE001 - a header we cannot read just means no column hints
        return None
    names = [str(n).strip() for n in names if str(n).strip()]
    return names or None


def extract_json(text: str | None) -> dict[str, Any]:
    """The one JSON object in a reply, tolerating ```json fences and words around it."""
    if not text or not text.strip():
        raise ReplyError("the reply was empty; answer with one JSON object")
    fenced = FENCE.search(text)
    body = (fenced.group(1) if fenced else text).strip()
    if not body.startswith("{"):
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end < start:
            raise ReplyError("the reply holds no JSON object; answer with one JSON object and nothing else")
        body = body[start : end + 1]
    try:
        data = json.loads(body)
    except json.JSONDecodeError as err:
        raise ReplyError(f"the reply is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(data, dict):
        raise ReplyError(f"the reply is a JSON {type(data).__name__}, not an object")
    return data


def parse_reply(text: str | None, columns: list[str] | None = None) -> Intent:
    """A reply as a validated Intent; ReplyError says what is wrong in words the model can act on."""
    data = extract_json(text)
    data.pop("locked", None)  # only the user locks values
    try:
        intent = Intent.model_validate(data)
    except ValueError as err:
        raise ReplyError(f"the JSON does not fit the schema: {describe_errors(err)}") from None
    if columns:
        known = {c.lower() for c in columns}
        named = [(f"dataset.{f}", getattr(intent.dataset, f)) for f in COLUMN_FIELDS]
        named += [("dataset.features", c) for c in intent.dataset.features or []]
        for path, name in named:
            if name is not None and name.lower() not in known:
                shown = ", ".join(columns[:30]) + (", …" if len(columns) > 30 else "")
                raise ReplyError(f"{path} '{name}' is not a column of the data; the columns are: {shown}")
    return intent


def _prompt_value(path: str, value: Any) -> str | None:
    if path in PRIVATE_PATHS:
        return None
    if path == "deploy" and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k in ("target", "repo_id")}
    return f"{path} = {json.dumps(value)}"


class IntentAgent(BaseAgent):
    stage = "intent"

    def __init__(self, bus: Any = None, llm: LLMClient | None = None) -> None:
        super().__init__(bus)
        self.llm = llm

    def _execute(self, context: JobContext) -> dict[str, Any]:
        spec = context.spec or {}
        source = str(context.data_paths.get("source") or (spec.get("data") or {}).get("source") or "") or None
        columns = peek_columns(source)
        floor = parse_rules(context.raw_prompt, source=source, columns=columns, spec=spec)
        if self.llm is None:
            intent, policy = floor, "rules"
        else:
            intent, policy = self._ask_llm(context, floor, source, columns)
        task_type = intent.task_type
        reason = intent.reasons.get("task_type") or "proposed by the LLM"
        summary = f"{task_type or 'tabular (decided from the target column)'} — {reason}"
        if policy == FALLBACK:
            summary += " (the LLM's replies were unusable, so the rules decided)"
        return {"intent": self.pipeline_intent(context, intent, source, policy), "task_type": task_type,
                "summary": summary}

    # -- the shape later stages read ---------------------------------------------------------
    @staticmethod
    def pipeline_intent(context: JobContext, intent: Intent, source: str | None, policy: str) -> dict[str, Any]:
        """The full intent plus the flat keys the later stages read (target, source, family…)."""
        data = intent.model_dump(mode="json")
        data.update(
            task=context.raw_prompt,
            task_type_reason=intent.reasons.get("task_type", ""),
            family=TASK_TYPES[intent.task_type].family if intent.task_type else "tabular",
            target=intent.dataset.target,
            source=intent.dataset.source or source or "",
            policy=policy,
        )
        return data

    # -- with an LLM -------------------------------------------------------------------------
    def system_prompt(self) -> str:
        """The prompt file, the task types in words, and the schema the answer must follow."""
        import prompts

        kinds = "\n".join(f"- {t.name}: {t.description}" for t in TASK_TYPES.values())
        return f"{prompts.load('intent').strip()}\n\nTask types:\n{kinds}\n\nJSON schema:\n{Intent.json_schema_for_prompt()}"

    def request_message(self, context: JobContext, floor: Intent, source: str | None, columns: list[str] | None) -> str:
        """Only what the model needs: the request, the file's name, its columns, the user's fixed values."""
        parts = []
        feedback = self.error_feedback_text(context)
        if feedback:
            parts.append(f"Earlier attempts of this stage failed.\n{feedback}")
        parts.append(f"Request: {context.raw_prompt.strip()}")
        if source:
            parts.append(f"Data file: {Path(source).name if '://' not in source else source}")
        if columns:
            shown = columns[:MAX_COLUMNS_IN_PROMPT]
            more = f" (and {len(columns) - len(shown)} more)" if len(columns) > len(shown) else ""
            parts.append(f"Columns ({len(columns)}): {', '.join(shown)}{more}")
        from_spec = set(spec_locks(context.spec, source))
        values = floor.locked_values()
        fixed = [line for p, v in values.items() if p in from_spec and (line := _prompt_value(p, v))]
        stated = [line for p, v in values.items() if p not in from_spec and (line := _prompt_value(p, v))]
        if fixed:
            parts.append("Set by the user (kept whatever you answer):\n" + "\n".join(fixed))
        if stated:
            parts.append("Read from the request by simple rules (correct them if they misread it):\n" + "\n".join(stated))
        parts.append("Answer with one JSON object that follows the schema.")
        return "\n\n".join(parts)

    def _ask_llm(self, context: JobContext, floor: Intent, source: str | None,
                 columns: list[str] | None) -> tuple[Intent, str]:
        """The LLM's proposal with the user's values over it, or the rules when its tries are spent."""
        assert self.llm is not None
        system = self.system_prompt()
        messages: list[dict[str, Any]] = [{"role": "user", "content": self.request_message(context, floor, source, columns)}]
        problem = ""
        for attempt in range(1, MAX_LLM_TRIES + 1):
            try:
                reply = self.llm.complete(system, messages, response_format={"type": "json_object"}, stage=self.stage)
            except Exception as err:  # noqa: BLE001 - any client failure: the rules still answer
                problem = f"the LLM call failed ({type(err).__name__}: {err})"
                self.log(f"{problem}; using the rules", level="warning")
                break
            text = getattr(reply, "content", None)
            try:
                proposal = parse_reply(text, columns)
                merged = self._merge(proposal, floor, context, source)
            except ValueError as err:  # ReplyError, or a proposal the user's values cannot sit on
                problem = str(err) if isinstance(err, ReplyError) else describe_errors(err)
                self.log(f"LLM reply {attempt}/{MAX_LLM_TRIES} unusable: {problem}", level="warning")
                messages = [
                    *messages,
                    {"role": "assistant", "content": (text or "(an empty reply)")[:ECHO_LIMIT]},
                    {"role": "user", "content": f"Your previous reply failed: {problem}. Do not repeat it. "
                                                "Answer with one corrected JSON object."},
                ]
                continue
            return merged, "llm"
        why = f"the LLM gave no usable intent ({problem}); the deterministic rules decided instead"
        return floor.model_copy(update={"reasons": {**floor.reasons, "policy": why}}), FALLBACK

    @staticmethod
    def _merge(proposal: Intent, floor: Intent, context: JobContext, source: str | None) -> Intent:
        """Spec values always win; values the request states fill what the proposal left open."""
        from_spec = set(spec_locks(context.spec, source))
        merged = merge_locked(proposal, floor, fill_only=set(floor.locked) - from_spec)
        reasons = {**merged.reasons, "policy": "proposed by the LLM; values the user set are kept"}
        if not merged.description:
            merged = merged.model_copy(update={"description": context.raw_prompt.strip()})
        return merged.model_copy(update={"reasons": reasons})
