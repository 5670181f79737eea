"""One metric stream from many log formats: (step, epoch, split, metric, value, time) records.

Adapters read our ``METRIC {json}`` lines (and metrics.jsonl), HuggingFace Trainer console logs
and ``trainer_state.json``, PyTorch Lightning ``metrics.csv``, MMEngine/MMDetection text logs and
TensorBoard event files. Names are normalised (``eval_loss`` → split val, metric loss;
``learning_rate`` → lr), so the observer never needs to know where a number came from.

Run-level facts travel as records of split ``run``: ``total_epochs``, ``total_steps`` (the
schedule, for the ETA) and ``finished`` (the log says training ended).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import time as _time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN = "run"  # the split of run-level records
#: Split words as they appear in metric names, and what they mean.
SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "eval": "val", "evaluation": "val", "dev": "val", "test": "test"}
#: Metric names that mean the same thing, as one name.
ALIASES = {"learning_rate": "lr", "learning-rate": "lr", "acc": "accuracy", "grad-norm": "grad_norm",
           "gradient_norm": "grad_norm", "samples_per_second": "samples_per_sec", "samples/sec": "samples_per_sec"}
#: Keys of our METRIC lines that are coordinates, not metrics.
COORDINATES = ("model", "epoch", "total_epochs", "split", "step", "total_steps")


@dataclass(frozen=True)
class Record:
    """One number of a training run; any coordinate a log lacks is None."""

    step: float | None
    epoch: float | None
    split: str  # train | val | test | run
    metric: str
    value: float
    time: float | None = None  # seconds (wall clock of the log, or arrival time when following)
    model: str = ""  # one run may train several candidates (our tabular: gbdt, then mlp)


@dataclass
class Reading:
    """Every metric of one split at one point of one model: what a METRIC line or an eval says."""

    model: str
    split: str
    step: float | None
    epoch: float | None
    time: float | None
    values: dict[str, float] = field(default_factory=dict)

    @property
    def loss(self) -> float | None:
        return self.values.get("loss")


def readings(records: Iterable[Record]) -> Iterator[Reading]:
    """Group consecutive records of one (model, split, step, epoch) into readings."""
    current: Reading | None = None
    for r in records:
        key = (r.model, r.split, r.step, r.epoch)
        if current is None or (current.model, current.split, current.step, current.epoch) != key:
            if current is not None:
                yield current
            current = Reading(r.model, r.split, r.step, r.epoch, r.time)
        current.values[r.metric] = r.value
        if r.time is not None:
            current.time = r.time
    if current is not None:
        yield current


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", ""))
        except ValueError:
            return None
    return None


def split_name(name: str, default: str = "train") -> tuple[str, str]:
    """'eval_loss' → (val, loss); 'train/loss' → (train, loss); 'Loss/val' → (val, loss); 'loss' → (default, loss)."""
    parts = [p for p in name.split("/") if p]
    for i, part in enumerate(parts):
        if part.lower() in SPLIT_WORDS and len(parts) > 1:
            rest = "/".join(parts[:i] + parts[i + 1:])
            return SPLIT_WORDS[part.lower()], _metric(rest)
    leaf = parts[-1] if parts else name
    prefix = "/".join(parts[:-1])
    pieces = re.split(r"[_\-.]", leaf, maxsplit=1)
    if len(pieces) == 2 and pieces[0].lower() in SPLIT_WORDS and pieces[1]:
        return SPLIT_WORDS[pieces[0].lower()], _metric("/".join(filter(None, [prefix, pieces[1]])))
    tail = re.split(r"[_\-.](?=[^_\-.]+$)", leaf)
    if len(tail) == 2 and tail[1].lower() in SPLIT_WORDS and tail[0]:
        return SPLIT_WORDS[tail[1].lower()], _metric("/".join(filter(None, [prefix, tail[0]])))
    return default, _metric(name)


def _metric(name: str) -> str:
    name = re.sub(r"[_\-](epoch|step)$", "", name)  # Lightning's train_loss_epoch / _step
    return ALIASES.get(name.lower(), name.lower() if name.lower() in ("loss", "lr", "accuracy", "grad_norm") else name)


# -- our own METRIC lines / metrics.jsonl ------------------------------------------------------
def parse_metric_json(line: str, now: float | None = None) -> list[Record]:
    """``METRIC {json}`` (or a bare JSON object line) → records; anything else → []."""
    text = line.strip()
    if text.startswith("METRIC "):
        text = text[len("METRIC "):]
    if not text.startswith("{"):
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
    model = str(data.get("model", ""))
    step, epoch = _number(data.get("step")), _number(data.get("epoch"))
    when = _number(data.get("time")) if "time" in data else now
    split = str(data.get("split") or "val")
    out = [Record(step, epoch, split, k, float(v), when, model) for k, v in data.items()
           if k not in COORDINATES and k != "time" and isinstance(v, (int, float)) and not isinstance(v, bool)]
    for key in ("total_epochs", "total_steps"):
        total = _number(data.get(key))
        if total:
            out.append(Record(step, epoch, RUN, key, total, when, model))
    return out


# -- HuggingFace Trainer ---------------------------------------------------------------------
TQDM = re.compile(r"(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<")
HF_TOTALS = (("total_epochs", re.compile(r"Num Epochs = ([\d,]+)")),
             ("total_steps", re.compile(r"Total optimization steps = ([\d,]+)")))
HF_SUMMARY = ("train_runtime", "train_samples_per_second")


def _hf_row(data: dict[str, Any], when: float | None) -> list[Record]:
    """One Trainer log dict (console line or log_history entry) → records."""
    step, epoch = _number(data.get("step")), _number(data.get("epoch"))
    if any(k in data for k in HF_SUMMARY):  # the end-of-training summary: averages, not a reading
        return [Record(step, epoch, RUN, "finished", 1.0, when)]
    out = []
    for key, raw in data.items():
        value = _number(raw)
        if key in ("epoch", "step", "total_flos") or value is None:
            continue
        split, metric = split_name(key)
        if metric in ("runtime", "steps_per_second"):
            continue
        out.append(Record(step, epoch, split, metric, value, when))
    return out


class HFLogParser:
    """A Trainer console log: the header's schedule, tqdm progress (step, elapsed) and log dicts."""

    def __init__(self) -> None:
        self.total_steps: float | None = None
        self.elapsed: float | None = None
        self.step: float | None = None

    def feed(self, line: str) -> list[Record]:
        out: list[Record] = []
        for part in line.split("\r"):
            out += self._part(part)
        return out

    def _part(self, text: str) -> list[Record]:
        out = []
        for key, pattern in HF_TOTALS:
            m = pattern.search(text)
            if m:
                value = float(m.group(1).replace(",", ""))
                if key == "total_steps":
                    self.total_steps = value
                out.append(Record(None, None, RUN, key, value, self.elapsed))
        for m in TQDM.finditer(text):  # eval bars have other totals: only the training bar counts
            total = float(m.group(2))
            if self.total_steps is None or total == self.total_steps:
                self.total_steps = total
                self.step = float(m.group(1))
                self.elapsed = int(m.group(3) or 0) * 3600 + int(m.group(4)) * 60 + int(m.group(5))
        start, end = text.find("{"), text.rfind("}")
        if start >= 0 and end > start:
            try:
                data = ast.literal_eval(text[start:end + 1])
            except (ValueError, SyntaxError):
                data = None
            if isinstance(data, dict) and data and all(isinstance(k, str) for k in data):
                if "step" not in data and self.step is not None:
                    data = {**data, "step": self.step}
                out += _hf_row(data, self.elapsed)
        return out


def read_trainer_state(path: Path) -> list[Record]:
    """``trainer_state.json``: log_history plus the schedule (max_steps, num_train_epochs)."""
    state = json.loads(path.read_text())
    out = []
    for key, name in (("max_steps", "total_steps"), ("num_train_epochs", "total_epochs")):
        if _number(state.get(key)):
            out.append(Record(None, None, RUN, name, float(state[key]), None))
    for row in state.get("log_history") or []:
        if isinstance(row, dict):
            out += _hf_row(row, None)
    return out


# -- PyTorch Lightning CSVLogger -------------------------------------------------------------
def read_lightning_csv(path: Path) -> list[Record]:
    """``metrics.csv``: sparse rows of epoch, step and metrics; X_step is dropped when X_epoch exists."""
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    columns = set(rows[0]) if rows else set()
    out = []
    for row in rows:
        step, epoch = _number(row.get("step")), _number(row.get("epoch"))
        when = _number(row.get("time") or row.get("timestamp") or "")
        for key, raw in row.items():
            value = _number(raw) if raw not in (None, "") else None
            if key in ("step", "epoch", "time", "timestamp") or value is None:
                continue
            if key.endswith("_step") and key[: -len("_step")] + "_epoch" in columns:
                continue
            split, metric = split_name(key)
            out.append(Record(step, epoch, split, metric, value, when))
    hparams = path.parent / "hparams.yaml"
    if hparams.exists():
        m = re.search(r"^\s*(?:max_epochs|epochs|num_epochs):\s*(\d+)", hparams.read_text(), re.M)
        if m:
            out.insert(0, Record(None, None, RUN, "total_epochs", float(m.group(1)), None))
    return out


# -- MMEngine / MMDetection text logs ----------------------------------------------------------
MM_STAMP = re.compile(r"^(\d{4})[/-](\d\d)[/-](\d\d) (\d\d):(\d\d):(\d\d)")
MM_WHERE = re.compile(r"(Epoch|Iter)\s*(?:\((train|val|test)\))?\s*\[\s*(\d+)\s*(?:/\s*(\d+))?\s*\]"
                      r"(?:\s*\[\s*(\d+)\s*(?:/\s*(\d+))?\s*\])?")
MM_PAIR = re.compile(r"([A-Za-z][\w/.]*): (-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|inf|-inf)(?![\d:])")
MM_SKIP = ("eta", "time", "data_time", "memory", "epoch", "iter")
MM_TOTALS = (("total_epochs", re.compile(r"max_epochs\s*=\s*(\d+)")), ("total_steps", re.compile(r"max_iters\s*=\s*(\d+)")))


class MMEngineParser:
    """``Epoch(train) [e][i/n] lr: … loss: …`` and ``Epoch(val) [e][n/n] coco/bbox_mAP: …`` lines."""

    def __init__(self) -> None:
        self.step: float | None = None
        self.per_epoch: float | None = None

    def feed(self, line: str) -> list[Record]:
        out: list[Record] = []
        for key, pattern in MM_TOTALS:
            m = pattern.search(line)
            if m:
                out.append(Record(None, None, RUN, key, float(m.group(1)), None))
        where = MM_WHERE.search(line)
        if not where:
            return out
        stamp = MM_STAMP.match(line)
        when = _time.mktime(tuple(int(g) for g in stamp.groups()) + (0, 0, -1)) if stamp else None  # type: ignore[arg-type]
        unit, split, first, first_total, inner, size = where.groups()
        split = split or "train"
        pairs = {k: float(v) for k, v in MM_PAIR.findall(line[where.end():])}
        if unit == "Epoch" and split == "train" and inner and size:
            self.per_epoch = float(size)
            epoch = int(first) - 1 + int(inner) / int(size)
            self.step = float((int(first) - 1) * int(size) + int(inner))
        elif unit == "Epoch":
            epoch = float(first)
            if self.per_epoch:
                self.step = max(self.step or 0, int(first) * self.per_epoch)
        else:  # an iteration-based loop: Iter(train) [  50/1000]
            epoch = None
            if split == "train":
                self.step = float(first)
                if first_total:
                    out.append(Record(None, None, RUN, "total_steps", float(first_total), when))
        if "memory" in pairs:  # MB of CUDA memory: a resource reading
            out.append(Record(self.step, epoch, RUN, "cuda_memory_mb", pairs["memory"], when))
        for key, value in pairs.items():
            if key not in MM_SKIP:
                out.append(Record(self.step, epoch, split, _metric(key), value, when))
        return out


# -- TensorBoard -----------------------------------------------------------------------------
def read_tensorboard(path: Path) -> list[Record]:
    """Scalars of every event file under ``path`` (a file or a run folder), through tensorboard's reader.

    A folder name train/validation (Keras' layout) gives the split of tags that name none;
    ``train/epoch`` (HuggingFace's callback) maps steps to epochs; ``epoch_*`` tags count epochs.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # heavy: only here

    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if "tfevents" in p.name and p.is_file())
    raw: list[tuple[float, float, str, str, float, str]] = []
    epochs: dict[float, float] = {}
    for file in files:
        folder = file.parent.name.lower()
        default = SPLIT_WORDS.get(folder, "train")
        acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            split, metric = split_name(tag, default)
            for ev in acc.Scalars(tag):
                if metric == "epoch":
                    epochs[float(ev.step)] = float(ev.value)
                    continue
                raw.append((float(ev.step), float(ev.wall_time), split, metric, float(ev.value), tag))
    out = []
    for step, wall, split, metric, value, tag in sorted(raw, key=lambda r: (r[0], r[2] != "train", r[1])):
        epoch = epochs.get(step)
        if metric.startswith("epoch_"):  # Keras: one point per epoch, step = epoch index
            metric, epoch = metric[len("epoch_"):], step + 1
        out.append(Record(step, epoch, split, _metric(metric), value, wall))
    return out


# -- choosing an adapter ---------------------------------------------------------------------
def sniff(text: str) -> str | None:
    """Guess a text log's format from its first lines; None when it is none we read."""
    head = text[:20000]
    if re.search(r"^(METRIC )?\{\"", head, re.M) and ('"split"' in head or '"epoch"' in head):
        return "metric_jsonl"
    if re.search(r"(Epoch|Iter)\s*\((train|val|test)\)|mmengine|Epoch \[\d+\]\[\d+", head):
        return "mmengine"
    if re.search(r"\{'(loss|eval_|train_runtime|learning_rate|epoch)|Running training|Total optimization steps", head):
        return "hf_log"
    return None


def find_sources(path: Path) -> list[tuple[str, Path]]:
    """The log sources under a file or run folder, best first (TensorBoard first: it has times)."""
    if path.is_file():
        name = path.name
        if "tfevents" in name:
            return [("tensorboard", path)]
        if name == "trainer_state.json":
            return [("hf_state", path)]
        if name.endswith(".csv"):
            return [("lightning_csv", path)]
        kind = sniff(path.read_text(errors="replace"))
        return [(kind, path)] if kind else []
    found: list[tuple[str, Path]] = []
    if any("tfevents" in p.name for p in path.rglob("*")):
        found.append(("tensorboard", path))
    states = sorted(path.rglob("trainer_state.json"), key=lambda p: p.stat().st_mtime)
    if states:
        found.append(("hf_state", states[-1]))
    for csv_file in sorted(path.rglob("metrics.csv")):
        found.append(("lightning_csv", csv_file))
    for pattern in ("*.log", "*.jsonl", "*.txt"):
        for file in sorted(path.rglob(pattern)):
            kind = sniff(file.read_text(errors="replace"))
            if kind:
                found.append((kind, file))
    return found


def read_source(kind: str, path: Path) -> list[Record]:
    """Every record of one source (a whole file or folder, read now)."""
    if kind == "tensorboard":
        return read_tensorboard(path)
    if kind == "hf_state":
        return read_trainer_state(path)
    if kind == "lightning_csv":
        return read_lightning_csv(path)
    text = path.read_text(errors="replace")
    if kind == "metric_jsonl":
        return [r for line in text.splitlines() for r in parse_metric_json(line)]
    parser: Any = MMEngineParser() if kind == "mmengine" else HFLogParser()
    return [r for line in text.split("\n") for r in parser.feed(line)]


def read_path(path: Path) -> tuple[str, list[Record]]:
    """The best source under ``path`` and its records; schedule records of the others are added."""
    sources = find_sources(path)
    if not sources:
        raise FileNotFoundError(f"no training log found in {path}")
    kind, best = sources[0]
    records = read_source(kind, best)
    have = {r.metric for r in records if r.split == RUN}
    for other_kind, other in sources[1:]:
        if other_kind in ("hf_state", "lightning_csv"):  # their schedule completes a TensorBoard run
            extra = [r for r in read_source(other_kind, other) if r.split == RUN and r.metric not in have]
            records = extra + records
            have |= {r.metric for r in extra}
    return kind, records
