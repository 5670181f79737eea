"""The universal intent: one validated description of the job that every later stage reads.

Whoever produces it — the deterministic rules, an LLM, or both — hands over an ``Intent``; a value
the user set explicitly is listed in ``locked`` (as a field path such as ``hyperparameters.epochs``)
and no later stage may override it. ``reasons`` says, per field path, why a value was chosen.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mltrainer.spec import HYPERPARAMETERS, REPO_ID, STR_CHOICES, normalise_task_type
from mltrainer.spec import check_hyperparameters as _check
from orchestrator.plan import TASK_TYPES

TaskTypeName = Literal[tuple(TASK_TYPES)]  # type: ignore[valid-type]

#: Hyperparameters beyond the tabular spec table that non-tabular families need: (type, low, high).
EXTRA_HYPERPARAMETERS: dict[str, tuple[type, float | None, float | None]] = {}
#: Hyperparameters whose value is a word from a fixed list.
CHOICE_HYPERPARAMETERS: dict[str, tuple[str, ...]] = dict(STR_CHOICES)
ALL_HYPERPARAMETERS: dict[str, tuple[type, float | None, float | None]] = {
    **HYPERPARAMETERS,
    **EXTRA_HYPERPARAMETERS,
    **{name: (str, None, None) for name in CHOICE_HYPERPARAMETERS},
}
#: Top-level fields a model sometimes puts under hyperparameters; they are moved up, not rejected.
HOISTED_KEYS = ("precision",)


def check_hyperparameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's check over the wider intent table; numeric strings like '3e-4' are accepted."""
    return _check(values, ALL_HYPERPARAMETERS, CHOICE_HYPERPARAMETERS, numeric_strings=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRef(_Strict):
    """Where the data is and which columns play which role; every part may still be unknown."""

    source: Optional[str] = Field(None, description="path, URL, hf://name or kaggle://owner/name")
    target: Optional[str] = Field(None, description="the column to predict; must be an existing column")
    text_column: Optional[str] = None
    image_column: Optional[str] = None
    time_column: Optional[str] = None
    features: Optional[list[str]] = Field(None, description="input columns, only when the user listed them")


class Peft(_Strict):
    """Parameter-efficient fine-tuning of a pretrained model."""

    method: Literal["lora", "qlora", "none"] = "lora"
    r: Optional[int] = Field(None, ge=1, le=1024, description="LoRA rank")
    alpha: Optional[float] = Field(None, gt=0, le=4096)


class Architecture(_Strict):
    description: Optional[str] = Field(None, description="free text, e.g. 'small CNN' or 'lstm'")
    backbone: Optional[str] = Field(None, description="a pretrained model name, e.g. resnet50 or org/model")


class Deploy(_Strict):
    target: Literal["none", "local", "hub"] = "none"
    repo_id: Optional[str] = Field(None, description="hub: user/name")
    path: Optional[str] = Field(None, description="local: folder the export is copied to")
    private: bool = True

    @model_validator(mode="after")
    def _hub_needs_repo(self) -> Deploy:
        if self.target == "hub" and not (self.repo_id and REPO_ID.match(self.repo_id)):
            raise ValueError("a hub deploy needs repo_id like 'user/name'")
        return self


class Intent(_Strict):
    """What the user wants, validated; see the module docstring for ``locked`` and ``reasons``."""

    task_type: Optional[TaskTypeName] = Field(  # type: ignore[valid-type]
        None, description="null for a table when only the target column can tell classification from regression"
    )
    description: str = Field("", description="the request in one sentence")
    dataset: DatasetRef = Field(default_factory=DatasetRef)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    peft: Optional[Peft] = None
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "auto"
    architecture: Optional[Architecture] = None
    deploy: Deploy = Field(default_factory=Deploy)
    runtime: Literal["local", "kaggle", "modal"] = "local"
    expertise: Literal["beginner", "intermediate", "expert"] = "intermediate"
    time_budget: Optional[float] = Field(None, gt=0, description="seconds of training at most")
    locked: list[str] = Field(default_factory=list, description="field paths the user set explicitly")
    reasons: dict[str, str] = Field(default_factory=dict, description="field path → one sentence why")

    @model_validator(mode="before")
    @classmethod
    def _hoist(cls, data: Any) -> Any:
        """Move keys like ``hyperparameters.precision`` up to the top-level field they belong to."""
        if isinstance(data, dict) and isinstance(data.get("hyperparameters"), dict):
            hyper = dict(data["hyperparameters"])
            for key in HOISTED_KEYS:
                if key in hyper:
                    value = hyper.pop(key)
                    data = {**data, key: data.get(key, value)}
            data = {**data, "hyperparameters": hyper}
        return data

    @field_validator("task_type", mode="before")
    @classmethod
    def _task_type(cls, value: Any) -> Any:
        return normalise_task_type(value)

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_hyperparameters(value)

    @field_validator("locked")
    @classmethod
    def _locked(cls, value: list[str]) -> list[str]:
        for path in value:
            check_path(path)
        return sorted(set(value))

    # -- prompt ------------------------------------------------------------------------------
    @classmethod
    def json_schema_for_prompt(cls) -> str:
        """The schema as compact JSON for an LLM: no titles, no ``locked`` (only the user locks)."""
        schema = cls.model_json_schema()
        schema.pop("description", None)  # the class docstring speaks to programmers, not the model
        schema["properties"].pop("locked", None)
        schema["properties"]["hyperparameters"]["description"] = "keys (only these): " + ", ".join(
            _describe_hyperparameter(k) for k in ALL_HYPERPARAMETERS
        )
        return json.dumps(_strip_titles(schema), separators=(",", ":"))

    # -- locked values -----------------------------------------------------------------------
    def get(self, path: str) -> Any:
        """The value at a field path such as ``dataset.target`` (None when a parent is unset)."""
        node: Any = self.model_dump(mode="json")
        for part in path.split("."):
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node

    def locked_values(self) -> dict[str, Any]:
        """Every locked path with its value, for merging over another proposal."""
        return {path: self.get(path) for path in self.locked}

    def with_values(self, values: Mapping[str, Any], *, lock: bool = True, reason: str | None = None) -> Intent:
        """A copy with ``values`` (path → value) set, optionally locked; validated again."""
        data = self.model_dump(mode="json")
        for path, value in values.items():
            _set_path(data, check_path(path), value)
        if lock:
            data["locked"] = sorted(set(data["locked"]) | set(values))
        if reason:
            data["reasons"] = {**data["reasons"], **{path: reason for path in values}}
        return Intent.model_validate(data)


def _describe_hyperparameter(key: str) -> str:
    kind, low, high = ALL_HYPERPARAMETERS[key]
    if kind is str:
        return f"{key} ({'|'.join(CHOICE_HYPERPARAMETERS[key])})" if key in CHOICE_HYPERPARAMETERS else f"{key} (text)"
    show = (lambda x: str(int(x))) if kind is int else (lambda x: f"{x:g}")
    return f"{key} ({kind.__name__} {show(low)}..{show(high)})"


def _strip_titles(node: Any) -> Any:
    """Drop what only costs tokens: titles, null defaults, and ``anyOf [X, null]`` wrappers."""
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    if not isinstance(node, dict):
        return node
    options = node.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other.get("type"), str):
            node = {**{k: v for k, v in node.items() if k != "anyOf"}, **other, "type": [other["type"], "null"]}
    return {
        k: _strip_titles(v)
        for k, v in node.items()
        if k not in ("title", "additionalProperties") and not (k == "default" and v is None)
    }


#: Sub-models whose fields can be locked one by one (``dataset.target``); others lock whole.
_SUB_MODELS: dict[str, type[BaseModel]] = {"dataset": DatasetRef, "peft": Peft, "architecture": Architecture, "deploy": Deploy}


def check_path(path: str) -> str:
    """A lockable field path, or ValueError naming the closest valid one."""
    head, _, rest = path.partition(".")
    if head not in Intent.model_fields or head in ("locked", "reasons"):
        close = difflib.get_close_matches(head, list(Intent.model_fields), n=1)
        raise ValueError(f"'{path}' is not an intent field" + (f" (did you mean '{close[0]}'?)" if close else ""))
    if not rest:
        return path
    if head == "hyperparameters":
        if rest not in ALL_HYPERPARAMETERS:
            raise ValueError(f"'{path}': unknown hyperparameter '{rest}'")
        return path
    model = _SUB_MODELS.get(head)
    if model is None or rest not in model.model_fields:
        raise ValueError(f"'{path}' is not an intent field")
    return path


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def merge_locked(proposal: Intent, user: Intent, *, fill_only: Iterable[str] = ()) -> Intent:
    """``proposal`` with every value the user locked put back, and the user's locks kept.

    Paths in ``fill_only`` (values the rules read from the request text) only fill a gap (unset
    or still the default): a proposal that read the same sentence and set a value keeps it, but
    the path stays locked.
    """
    soft = set(fill_only)
    blank = Intent()  # a proposal still at the default has not decided, so the gap is filled
    values = {p: v for p, v in user.locked_values().items() if p not in soft or proposal.get(p) in (None, blank.get(p))}
    merged = proposal.with_values(values, lock=False)
    data = merged.model_dump(mode="json")
    data["locked"] = sorted(set(user.locked))
    data["reasons"] = {**data["reasons"], **{p: user.reasons[p] for p in values if p in user.reasons}}
    return Intent.model_validate(data)


def intent_from_dict(data: Mapping[str, Any]) -> Intent:
    """Rebuild an Intent from ``context.intent`` (which also carries the pipeline's flat keys)."""
    return Intent.model_validate({k: v for k, v in data.items() if k in Intent.model_fields})


def describe_errors(err: Exception, limit: int = 5) -> str:
    """A validation error as short 'path: problem' clauses — readable by a person and by a model."""
    if not isinstance(err, ValidationError):
        return str(err)
    parts = []
    for item in err.errors()[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    more = len(err.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
