"""The spec file: YAML validated by pydantic; every error names the bad key in one sentence."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import SpecError
from orchestrator.plan import TASK_TYPES

#: Hyperparameters a spec may lock, with their type and allowed range (inclusive).
HYPERPARAMETERS: dict[str, tuple[type, float | None, float | None]] = {
    "model": (str, None, None),  # auto | mlp | gbdt
    "epochs": (int, 1, 100000),
    "batch_size": (int, 1, 1 << 20),
    "lr": (float, 1e-8, 10.0),
    "weight_decay": (float, 0.0, 10.0),
    "hidden": (int, 1, 1 << 16),
    "layers": (int, 1, 64),
    "dropout": (float, 0.0, 0.95),
    "patience": (int, 1, 100000),
    "seed": (int, 0, 2**31 - 1),
    "split_seed": (int, 0, 2**31 - 1),  # the train/val/test split's seed when it should differ from seed
    "gbdt_rounds": (int, 1, 100000),
    "gbdt_lr": (float, 1e-5, 1.0),
    "gbdt_max_leaves": (int, 2, 4096),
    "gbdt_min_leaf": (int, 1, 100000),
    "gbdt_l2": (float, 0.0, 1e6),
    "val_fraction": (float, 0.05, 0.5),
    "test_fraction": (float, 0.05, 0.5),
    # preprocessing of text, image and time-series data (tools/prep/)
    "tokenizer": (str, None, None),  # auto | bpe | wordpiece | char
    "backbone": (str, None, None),  # a pretrained model id or folder whose tokenizer is used
    "vocab_size": (int, 16, 1_000_000),
    "max_length": (int, 4, 65_536),
    "max_target_length": (int, 4, 65_536),
    "block_size": (int, 4, 65_536),
    "image_size": (int, 4, 4096),
    "lags": (int, 1, 100_000),
    "horizon": (int, 1, 100_000),
    # training of the torch families (tools/models/)
    "optimizer": (str, None, None),  # adamw | adam | sgd
    "lr_scheduler": (str, None, None),  # cosine | linear | constant | plateau
    "warmup_ratio": (float, 0.0, 0.5),
    "grad_accum_steps": (int, 1, 4096),
    "clip_norm": (float, 0.0, 1000.0),  # 0 = no clipping
    "precision": (str, None, None),  # auto | fp32 | bf16 | fp16
    "d_model": (int, 4, 8192),
    "n_heads": (int, 1, 128),
    "n_clusters": (int, 2, 100_000),
    "arch": (str, None, None),  # a candidate of the family's catalogue (e.g. cnn, lstm, kmeans)
    "compile": (str, None, None),  # off | on | auto (torch.compile; auto = on CUDA only)
    "freeze_backbone": (str, None, None),  # no | yes: a pretrained encoder as a fixed feature extractor
    # PEFT (LLM fine-tuning with LoRA through peft)
    "lora_r": (int, 1, 4096),
    "lora_alpha": (float, 0.01, 1e5),
    "lora_dropout": (float, 0.0, 0.9),
    "target_modules": (str, None, None),  # auto | all-linear | comma-separated module names (q_proj,v_proj)
    "quantize": (str, None, None),  # none | 4bit | 8bit (QLoRA: needs bitsandbytes and CUDA)
    "merge": (str, None, None),  # auto | yes | no: also save the adapter merged into the base weights
}
MODEL_CHOICES = ("auto", "mlp", "gbdt")
#: str hyperparameters limited to a fixed set; other str hyperparameters take any non-empty text.
STR_CHOICES: dict[str, tuple[str, ...]] = {
    "model": MODEL_CHOICES, "tokenizer": ("auto", "bpe", "wordpiece", "char"),
    "optimizer": ("adamw", "adam", "sgd"), "lr_scheduler": ("cosine", "linear", "constant", "plateau"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "compile": ("off", "on", "auto"), "freeze_backbone": ("no", "yes"), "quantize": ("none", "4bit", "8bit"),
    "merge": ("auto", "yes", "no"),
}
#: The words YAML 1.1 turns into booleans, by the boolean (for str hyperparameters with such choices).
YAML_BOOL_WORDS: dict[bool, tuple[str, ...]] = {True: ("yes", "on", "true"), False: ("no", "off", "false")}
RUNTIMES = ("local", "kaggle", "modal")
#: GPU types each remote runtime offers (spec ``runtime_options.gpu``); "none" runs on CPU.
GPU_CHOICES: dict[str, tuple[str, ...]] = {
    "kaggle": ("T4", "P100", "none"),
    "modal": ("T4", "L4", "A10G", "L40S", "A100", "A100-40GB", "A100-80GB", "H100", "H200", "B200", "none"),
}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)?\s*$", re.I)
UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """'90s', '10m', '1.5h' or a number of seconds → seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = DURATION.match(str(value))
        if not match:
            raise ValueError(f"'{value}' is not a duration; write e.g. 90s, 10m or 1h")
        seconds = float(match.group(1)) * UNITS[(match.group(2) or "").lower() or None]
    if seconds <= 0:
        raise ValueError("a time budget must be positive")
    return seconds


def normalise_task_type(value: Any) -> Any:
    """'Tabular Classification' → 'tabular_classification'; unknown names get a close-match hint."""
    if value is None or not isinstance(value, str):
        return value
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    if key in ("", "none", "null", "unknown"):
        return None
    if key not in TASK_TYPES:
        close = difflib.get_close_matches(key, TASK_TYPES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f"; choose one of {', '.join(TASK_TYPES)}"
        raise ValueError(f"'{value}' is not a task type{hint}")
    return key


def check_hyperparameters(
    values: Mapping[str, Any],
    table: Mapping[str, tuple[type, float | None, float | None]] = HYPERPARAMETERS,
    choices: Mapping[str, tuple[str, ...]] | None = None,
    *,
    numeric_strings: bool = False,
) -> dict[str, Any]:
    """Validate names, types and ranges against a table; one sentence per problem.

    The spec and the intent schema share this, so a value means the same wherever it is set.
    ``numeric_strings`` accepts '3e-4' (an LLM's habit); a spec file's YAML already types numbers.
    """
    choices = STR_CHOICES if choices is None else choices
    clean: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in table:
            close = difflib.get_close_matches(key, table, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known: {', '.join(table)}"
            raise ValueError(f"unknown hyperparameter '{key}'{hint}")
        kind, low, high = table[key]
        if kind is str:
            allowed = choices.get(key)
            if allowed is None:
                if not isinstance(raw, str) or not raw.strip():
                    raise ValueError(f"hyperparameter '{key}' must be a non-empty text, not {raw!r}")
                clean[key] = raw.strip()
                continue
            if isinstance(raw, bool):  # YAML 1.1 reads yes/no/on/off as booleans: back to the word the key takes
                raw = next((w for w in allowed if w in YAML_BOOL_WORDS[raw]), raw)
            if raw not in allowed:
                raise ValueError(f"hyperparameter '{key}' must be one of {', '.join(allowed)}, not {raw!r}")
            clean[key] = raw
            continue
        if numeric_strings and isinstance(raw, str):
            try:
                raw = float(raw.strip())
            except ValueError:
                raise ValueError(f"hyperparameter '{key}' must be a number, not {raw!r}") from None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ValueError(f"hyperparameter '{key}' must be a number, not {raw!r}")
        if kind is int and float(raw) != int(raw):
            raise ValueError(f"hyperparameter '{key}' must be a whole number, not {raw!r}")
        number = kind(raw)
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValueError(f"hyperparameter '{key}'={raw} is outside {low}..{high}")
        clean[key] = number
    if clean.get("val_fraction", 0.15) + clean.get("test_fraction", 0.15) >= 0.8:
        raise ValueError("val_fraction + test_fraction must leave at least 20% of rows for training")
    return clean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.I)
SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
              "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(value: Any) -> int:
    """'500MB', '2GiB', '1.5g' or a number of bytes → bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        size = float(value)
    else:
        match = SIZE.match(str(value))
        if not match:
            raise ValueError(f"'{value}' is not a size; write e.g. 500MB, 2GB or 1GiB")
        unit = (match.group(2) or "").lower().removesuffix("b")
        size = float(match.group(1)) * SIZE_UNITS[unit]
    if size < 1:
        raise ValueError("a size cap must be at least 1 byte")
    return int(size)


class DataSpec(_Strict):
    source: str = Field(min_length=1)
    target: str | None = None  # the column to predict (label, value, or target text)
    text: str | None = None  # text column (for summarization/translation: the source side)
    image: str | None = None  # image path column of a table
    time: str | None = None  # time index column of a series
    max_bytes: int | None = None  # refuse data larger than this (download or local), e.g. 500MB
    token: str | None = None  # a vault reference for a private Hub/Kaggle dataset, never the token

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int | None:
        return None if value is None else parse_size(value)


def parse_money(value: Any) -> float:
    """'$5', '5 USD', '2.50' or a number → US dollars."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        amount = float(value)
    else:
        match = re.match(r"^\s*\$?\s*(\d+(?:\.\d+)?)\s*(usd|\$)?\s*$", str(value), re.I)
        if not match:
            raise ValueError(f"'{value}' is not an amount; write e.g. 5, $5 or 5 USD")
        amount = float(match.group(1))
    if amount < 0:
        raise ValueError("a cost budget cannot be negative")
    return amount


class BudgetSpec(_Strict):
    time: float | None = None
    cost: float | None = None  # US dollars for remote GPU time plus LLM calls; the job stops before passing it

    @field_validator("time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("cost", mode="before")
    @classmethod
    def _money(cls, value: Any) -> float | None:
        return None if value is None else parse_money(value)


class RuntimeOptions(_Strict):
    """Where a remote runtime runs the script: GPU type and count, internet, wall-clock limit."""

    gpu: str | None = None  # default: T4 on kaggle and modal
    gpu_count: int = Field(1, ge=1, le=8)  # >1 launches with torchrun when the script supports it
    internet: bool = False  # kaggle: give the kernel internet access
    timeout: float | None = None  # wall-clock limit of one remote run (default: from budget.time)

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


class DeploySpec(_Strict):
    target: Literal["local", "hub"] = "local"
    path: str | None = None  # local: the folder the export is copied to
    repo_id: str | None = None  # hub: user/name (or just name: the token's user is used)
    private: bool = True
    token: str | None = None  # hub: a vault reference id, never the token itself
    space: bool = False  # hub: also publish a Gradio demo Space (repo_id + "-demo")

    @model_validator(mode="after")
    def _hub_needs_repo(self) -> DeploySpec:
        if self.target == "hub":
            if not self.repo_id or not REPO_ID.match(self.repo_id):
                raise ValueError("a hub deploy needs repo_id like 'user/name'")
        return self


class CompressSpec(_Strict):
    """Compression after training (tools/compress.py): each method's variant is kept only if its test
    metric stays at or above ``retention`` × the uncompressed model's."""

    methods: list[Literal["int8", "ternary"]] = Field(default_factory=lambda: ["int8", "ternary"], min_length=1)
    retention: float = Field(0.95, gt=0.0, le=1.0)
    sparsity_threshold: float = Field(0.5, ge=0.0, le=100.0)  # ternary: |W| <= this × mean|W| becomes 0
    calibration_steps: int = Field(100, ge=0, le=100_000)  # ternary: straight-through fine-tune steps

    @field_validator("methods")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


MODULE_TARGET = re.compile(r"^.+\.py:[A-Za-z_]\w*$")


def _module_target(value: str | None, where: str) -> str | None:
    if value is not None and not MODULE_TARGET.match(value.strip()):
        raise ValueError(f"{where} '{value}' must be FILE.py:ClassName, e.g. models/net.py:MyNet")
    return value.strip() if value is not None else None


class LayerSpec(_Strict):
    """One entry of architecture.layers: a torch.nn layer, a user block or a block described in words."""

    type: str | None = None  # a torch.nn class name: Linear, Conv2d, ReLU, LSTM…
    module_path: str | None = None  # a user block: FILE.py:ClassName
    describe: str | None = None  # a block in words; the LLM writes it and the gates check it
    params: dict[str, Any] = Field(default_factory=dict)  # constructor arguments (in-sizes are inferred)
    name: str | None = None  # attribute name in the generated module

    @model_validator(mode="after")
    def _one_kind(self) -> LayerSpec:
        given = [k for k in ("type", "module_path", "describe") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("each layer needs exactly one of type, module_path or describe")
        _module_target(self.module_path, "module_path")
        return self


class ArchitectureSpec(_Strict):
    """A model of the user's own (tools/lab): a module's class, or a declarative layer list."""

    module: str | None = None  # FILE.py:ClassName (relative to the spec file)
    kwargs: dict[str, Any] = Field(default_factory=dict)  # constructor arguments of the module's class
    layers: list[LayerSpec] | None = None
    input_shape: list[int] | None = None  # without the batch; checked against the data

    @model_validator(mode="after")
    def _module_or_layers(self) -> ArchitectureSpec:
        if bool(self.module) == bool(self.layers):
            raise ValueError("give either module (FILE.py:ClassName) or layers (a list), not both or neither")
        _module_target(self.module, "module")
        if self.input_shape is not None and (not self.input_shape or any(s < 1 for s in self.input_shape)):
            raise ValueError("input_shape must list positive sizes, e.g. [3, 32, 32]")
        return self


class ParamGroupSpec(_Strict):
    """Parameters whose name matches ``match`` (a regex, searched) get this lr and weight decay."""

    match: str = Field(min_length=1)
    name: str | None = None
    lr: float | None = Field(None, gt=0.0, le=10.0)
    weight_decay: float | None = Field(None, ge=0.0, le=10.0)
    params: dict[str, Any] = Field(default_factory=dict)  # other per-group options (momentum, betas…)

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"'{value}' is not a regular expression ({err})") from None
        return value


class GrokfastSpec(_Strict):
    """Grokfast EMA gradient filter: grad += lamb × EMA_alpha(grad)."""

    alpha: float = Field(0.98, ge=0.0, lt=1.0)
    lamb: float = Field(2.0, ge=0.0, le=100.0)


class OptimizerSpec(_Strict):
    """A torch optimizer by name (or a registered or described custom one) with param groups."""

    name: str | None = None  # AdamW, SGD, RMSprop… or a registered custom optimizer's name
    params: dict[str, Any] = Field(default_factory=dict)  # constructor arguments (lr: use hyperparameters)
    param_groups: list[ParamGroupSpec] = Field(default_factory=list)
    decay_norms_and_biases: bool = False  # default: norms and biases get no weight decay
    grokfast: Union[GrokfastSpec, None] = None
    describe: str | None = None  # a custom optimizer in words: the LLM writes it, checks accept it, name registers it

    @field_validator("grokfast", mode="before")
    @classmethod
    def _grokfast(cls, value: Any) -> Any:
        return {} if value is True else (None if value is False else value)

    @model_validator(mode="after")
    def _consistent(self) -> OptimizerSpec:
        for key in ("lr", "weight_decay"):
            if key in self.params:
                raise ValueError(f"set {key} under hyperparameters (or per param group), not optimizer.params")
        if self.describe and not self.name:
            raise ValueError("a described optimizer needs a name to be registered under")
        return self


class MonitorSpec(_Strict):
    """The training observer (tools/observer): what it may do on its own and whom it tells."""

    auto_stop: bool = True  # stop on a confirmed plateau/overfit, keeping the best checkpoint
    webhook: str | None = None  # a URL that gets a JSON POST per alert (Slack, Discord, Telegram, any)
    webhook_env: str | None = None  # or: the environment variable holding that URL (keeps a tokened URL out of the job)
    stall_timeout: float = 600.0  # seconds without a new metric before the run is reported STALLED
    cooldown: float = 300.0  # seconds before an alert (or notification) of the same kind repeats

    @field_validator("stall_timeout", "cooldown", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "⟨secret:")):  # or its vault reference
            raise ValueError("a webhook must be an http:// or https:// URL")
        return value


class Spec(_Strict):
    task: str = Field(min_length=1)
    task_type: str | None = None
    data: DataSpec
    runtime: str = "local"
    runtime_options: RuntimeOptions = Field(default_factory=RuntimeOptions)
    deploy: Union[DeploySpec, None] = None
    llm: Union[str, dict[str, Any]] = "none"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    compress: Union[CompressSpec, None] = None
    architecture: Union[ArchitectureSpec, None] = None  # a model of your own (tools/lab)
    optimizer: Union[OptimizerSpec, None] = None  # optimizer, param groups, Grokfast (tools/lab)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)  # the training observer (tools/observer)

    @field_validator("compress", mode="before")
    @classmethod
    def _compress(cls, value: Any) -> Any:
        if value in (None, False, "none"):
            return None
        if value is True:
            return {}
        if isinstance(value, str):  # compress: int8
            return {"methods": [value]}
        if isinstance(value, list):  # compress: [int8, ternary]
            return {"methods": value}
        return value

    @field_validator("task_type")
    @classmethod
    def _task_type(cls, value: str | None) -> str | None:
        return normalise_task_type(value)

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str) -> str:
        if value not in RUNTIMES:
            raise ValueError(f"runtime '{value}' is not available; use one of {', '.join(RUNTIMES)}")
        return value

    @model_validator(mode="after")
    def _gpu_fits_runtime(self) -> Spec:
        gpu = self.runtime_options.gpu
        if gpu is not None and self.runtime in GPU_CHOICES and gpu not in GPU_CHOICES[self.runtime]:
            raise ValueError(f"runtime_options.gpu '{gpu}' is not offered by {self.runtime}; choose one of "
                             f"{', '.join(GPU_CHOICES[self.runtime])}")
        if gpu is not None and self.runtime == "local":
            raise ValueError("runtime_options.gpu applies to kaggle and modal; the local runtime uses this machine")
        return self

    @field_validator("deploy", mode="before")
    @classmethod
    def _deploy(cls, value: Any) -> Any:
        if value in (None, "none", False):
            return None
        if value == "local":
            return {"target": "local"}
        if isinstance(value, str) and value.startswith("hf://"):
            return {"target": "hub", "repo_id": value.removeprefix("hf://")}
        return value

    @field_validator("llm")
    @classmethod
    def _llm(cls, value: Any) -> Any:
        if value in (None, "none", False):
            return "none"
        if isinstance(value, str):
            if value != "auto" and "/" not in value:
                raise ValueError(f"'{value}' is not a model id; write provider/model (e.g. openai/gpt-4o-mini), auto or none")
            return value
        unknown = sorted(set(value) - {"model", "api_base", "api_key", "api_key_env"})
        if unknown:
            raise ValueError(f"unknown llm key '{unknown[0]}'; allowed: model, api_base, api_key, api_key_env")
        if not value.get("model"):
            raise ValueError("an llm mapping needs 'model'")
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_hyperparameters(value)


def _sentence(path: Path, err: ValidationError) -> str:
    # An unknown key usually explains a "missing" one (a typo), so report it first.
    first = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = tuple(p for p in first["loc"] if not str(p).startswith(("function-", "DeploySpec")))
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        parent_fields = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), parent_fields, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f"; allowed here: {', '.join(parent_fields)}"
        return f"{path.name}: unknown key '{key}'{hint}; remove or rename it."
    if kind == "missing":
        return f"{path.name}: required key '{key}' is missing; add it."
    message = first["msg"].removeprefix("Value error, ")
    return f"{path.name}: '{key}' is invalid: {message}."


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Spec
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def load_spec(path: Path, redact_text: Callable[[str], str] | None = None) -> tuple[Spec, str]:
    """Read and validate a spec file; returns the spec and its text. Raises SpecError.

    ``redact_text`` swaps secrets in the text for vault reference ids before anything parses it,
    so the spec that is stored and logged never holds a credential.
    """
    import yaml

    if not path.exists():
        raise SpecError(f"The spec file {path} does not exist; check the path.")
    if path.is_dir():
        raise SpecError(f"{path} is a folder; pass the path of a YAML spec file.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            f"{path.name} is not UTF-8 text (invalid byte 0x{raw[err.start]:02x} at offset {err.start}); save it as UTF-8."
        ) from None
    if not text.strip():
        raise SpecError(f"{path.name} is empty; it needs at least 'task' and 'data.source'.")
    if redact_text is not None:
        text = redact_text(text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise SpecError(f"{path.name} is not valid YAML{where} ({problem}); fix the syntax.") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path.name} must be a YAML mapping with keys like 'task' and 'data', not a {type(data).__name__}.")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_sentence(path, err)) from None
    return spec, text


#: Source schemes this version fetches (tools/sources.py); anything else is refused up front.
FETCHABLE_SCHEMES = ("sklearn", "http", "https", "file", "hf", "kaggle")


def resolve_source(spec: Spec, spec_path: Path) -> str:
    """Local sources are relative to the spec file, as a user reading the spec expects."""
    source = spec.data.source
    if "://" in source:
        scheme = source.split("://", 1)[0].lower()
        if scheme not in FETCHABLE_SCHEMES:
            raise SpecError(
                f"{spec_path.name}: 'data.source' scheme '{scheme}://' is not available in this version; "
                f"use a local path or one of {', '.join(s + '://' for s in FETCHABLE_SCHEMES)}."
            )
        return source
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = (spec_path.parent / path).resolve()
    owner_folder = spec_path.parent / source.split("/", 1)[0]
    if (not path.exists() and not owner_folder.exists() and HUB_ID.match(source)
            and not source.lower().endswith(DATA_SUFFIXES)):
        return f"hf://{source}"  # a bare Hub id such as 'stanfordnlp/imdb', as datasets.load_dataset takes
    return str(path)


#: owner/name with no file suffix: read as a HuggingFace dataset id when no such local path exists.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*(:[\w.-]+)?(@[\w.-]+)?$")
DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".parquet", ".pq", ".zip", ".gz", ".tar", ".conll", ".xlsx")
