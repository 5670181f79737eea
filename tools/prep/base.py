"""The contract every data family keeps: ``inspect`` for the dataset stage, ``prepare`` for preprocessing.

A family turns one fetched source (a file or a folder) into a data report and, later, into
train/validation/test splits on disk that the generated training script loads in one read
(``.npy``, parquet or safetensors) plus a ``meta.json`` that says what each file holds. Every
problem with the data is a :class:`DataError` whose text is one sentence naming the problem and
what to do; nothing here prints or asks.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import DataError, SpecError

#: ``log(message, level)``: a line for the live view (level: info | warning).
Log = Callable[..., None]

DEFAULT_SEED = 42
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
MIN_ROWS = 20  # fewer labelled examples than this cannot be split into train, validation and test


def quiet(message: str, level: str = "info") -> None:
    """A ``Log`` that drops everything (tests, library use)."""


@dataclass(frozen=True)
class DataOptions:
    """What the user said about the data (spec ``data`` section and preprocessing hyperparameters)."""

    task_type: str
    target: str | None = None  # label / value / target-text column
    text: str | None = None  # text column (text tasks; the source side for summarization/translation)
    time: str | None = None  # time index column (time series)
    image: str | None = None  # image path column (a CSV of paths and labels)
    seed: int = DEFAULT_SEED
    val_fraction: float = DEFAULT_VAL_FRACTION
    test_fraction: float = DEFAULT_TEST_FRACTION
    #: Preprocessing hyperparameters from the spec: tokenizer, backbone, vocab_size, max_length,
    #: max_target_length, block_size, image_size, lags, horizon. Absent keys take the family's default.
    params: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str, default: Any) -> Any:
        value = self.params.get(name)
        return default if value is None else value


@dataclass
class Inspection:
    """The dataset stage's findings."""

    report: dict[str, Any]  # the data report (JSON-friendly): rows, columns, family-specific keys
    roles: dict[str, str]  # resolved column roles, e.g. {"target": "label", "text": "review"}
    task_type: str
    task_type_reason: str
    summary: str  # one line for the live view


@dataclass
class Prepared:
    """The preprocessing stage's output: what was written and how."""

    report: dict[str, Any]  # must hold "splits": {train, val, test} sizes and "seed"
    files: dict[str, str]  # a name → absolute path of what later stages read (always includes "meta")
    summary: str  # one line for the live view


class Family(Protocol):
    """One data family (tabular, text, image, time series…)."""

    name: str

    def inspect(self, path: Path, options: DataOptions, log: Log = quiet) -> Inspection:
        """Load and check the data; raise DataError for anything unusable."""
        ...

    def prepare(self, path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                log: Log = quiet) -> Prepared:
        """Write the splits under ``out_dir``; ``inspection`` is the stored data report (with roles)."""
        ...


# ---------------------------------------------------------------------------- shared helpers
def pick_column(columns: Sequence[str], given: str | None, role: str, where: str,
                candidates: Sequence[str] = (), fallback: str | None = None) -> tuple[str, str]:
    """The column for ``role`` and how it was chosen; an unknown name gets the closest suggestions.

    ``given`` is what the user wrote (case is forgiven); otherwise the first column whose lower-case
    name is in ``candidates``; otherwise ``fallback`` (stated as such); otherwise a DataError.
    """
    columns = [str(c) for c in columns]
    if given:
        if given in columns:
            return given, "named in the spec"
        by_lower = {c.lower(): c for c in columns}
        if given.lower() in by_lower:
            return by_lower[given.lower()], f"named in the spec as '{given}' (matched ignoring case)"
        close = difflib.get_close_matches(given, columns, n=3, cutoff=0.5)
        hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                else f"columns are: {', '.join(columns[:12])}")
        raise DataError(f"The {role} column '{given}' is not in {where}; {hint}")
    for name in columns:
        if name.lower() in candidates:
            return name, f"inferred: the column is called '{name}'"
    if fallback is not None:
        return fallback, f"inferred: '{fallback}' (set it in the spec to choose another)"
    raise DataError(f"Cannot tell which column of {where} holds the {role}; name it in the spec's data section.")


def write_meta(out_dir: Path, meta: dict[str, Any]) -> Path:
    """Write ``meta.json`` (what each split file holds, sizes, seed) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "meta.json"
    path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return path


def split_summary(sizes: dict[str, int]) -> str:
    return f"train/val/test {sizes['train']}/{sizes['val']}/{sizes['test']}"


def require_rows(count: int, what: str, where: str, minimum: int = MIN_ROWS) -> None:
    if count < minimum:
        raise DataError(f"{where} has {count} {what}; at least {minimum} are needed to train, validate and test.")


def int_param(options: DataOptions, name: str, default: int | None, minimum: int = 1) -> int | None:
    """A whole-number preprocessing hyperparameter (``default`` when unset); anything else is a spec mistake."""
    value = options.param(name, default)
    if value is None:
        return None
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise SpecError(f"The hyperparameter {name} must be a whole number, not {value!r}; fix it in the spec.") from None
    if number < minimum:
        raise SpecError(f"The hyperparameter {name} is {number}; it must be at least {minimum}.")
    return number
