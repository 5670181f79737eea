"""``mltrainer watch``: the observer on any log file or run folder, once or following it.

Each poll re-reads the source and feeds the records past those already seen, so a growing text
log, a rewritten CSV or new TensorBoard events all work the same way. Records without a time
(HF console dicts, Lightning CSV) are stamped with their arrival time when following; in a one-off
read they have none, and the ETA then needs a log with times (tqdm bars, MMEngine, TensorBoard).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.events import TrainingAdvice, TrainingPhase
from tools.observer.eta import Eta
from tools.observer.observer import Observer
from tools.observer.states import THRESHOLDS, TERMINAL, Thresholds
from tools.observer.stream import RUN, Record, find_sources, read_path, readings


class LogWatch:
    def __init__(self, path: Path, *, total_epochs: float | None = None, total_steps: float | None = None,
                 patience: int | None = None, thresholds: Thresholds = THRESHOLDS,
                 clock: Callable[[], float] = time.time, follow: bool = False) -> None:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        if not find_sources(path):
            what = "is in no log format watch reads" if path.is_file() else "holds no training log"
            raise FileNotFoundError(f"{path} {what} (METRIC lines/metrics.jsonl, HuggingFace Trainer, Lightning "
                                    "metrics.csv, MMEngine, TensorBoard)")
        self.path = path
        self.clock = clock
        self.follow = follow
        self.observer = Observer(thresholds, patience=patience, clock=clock)
        self.seen = 0
        self.kind = ""
        self.finished = False
        self.overrides = [Record(None, None, RUN, key, float(value), None)
                          for key, value in (("total_epochs", total_epochs), ("total_steps", total_steps)) if value]
        self.last_time: float | None = None

    def poll(self) -> list[tuple[Any, Eta | None]]:
        """Read the source again; the events its new records caused, each with the ETA at that point."""
        self.kind, records = read_path(self.path)
        new = records[self.seen:]
        self.seen = len(records)
        if self.follow:
            now = self.clock()
            new = [r if r.time is not None else dataclasses.replace(r, time=now) for r in new]
        # schedule the user gave wins over the log's
        new = [r for r in new if not (r.split == RUN and any(o.metric == r.metric for o in self.overrides))]
        if self.overrides:
            new, self.overrides = self.overrides + new, []
        self.finished = self.finished or any(r.split == RUN and r.metric == "finished" for r in new)
        times = [r.time for r in new if r.time is not None]
        if times:
            self.last_time = max(times + ([self.last_time] if self.last_time is not None else []))
        out: list[tuple[Any, Eta | None]] = []
        for reading in readings(new):
            events = self.observer.feed(reading)
            eta = self.observer.eta(reading.model) if events and reading.split != RUN else None
            out += [(event, eta) for event in events]
        if self.follow:
            out += [(event, None) for event in self.observer.tick(self.clock())]
        return out

    def complete(self) -> bool:
        """The log says training ended, or every model reached its schedule."""
        if self.finished:
            return True
        ob = self.observer
        if not ob.machines:
            return False
        for model in ob.machines:
            total = (ob.totals.get(model) or ob.totals.get("", {}))
            progress = ob.progress.get(model)
            unit = ob.units.get(model, "epoch")
            limit = total.get("total_steps" if unit == "step" else "total_epochs")
            if limit is None or progress is None or progress < limit - 1e-9:
                return False
        return True

    def close(self) -> list[Any]:
        """At the end of a one-off read (or a finished run): final phases when the run is complete."""
        return self.observer.finish() if self.complete() else []

    def status(self) -> list[str]:
        """One line per model: where the log ends, the phase and the ETA (as of the log's last entry)."""
        lines = []
        ob = self.observer
        for model, m in ob.machines.items():
            label = f"{model}: " if model else ""
            if m.phase in TERMINAL:
                tr = m.history[-1]
                lines.append(f"{label}{m.phase.value.upper()} — {tr.narrative}")
                continue
            eta = ob.eta(model, self.clock() if self.follow else None)
            where = self._where(model)
            lines.append(f"{label}{m.phase.value.upper()} {where}; {format_eta(eta)}")
        return lines

    def _where(self, model: str) -> str:
        ob = self.observer
        unit = ob.units.get(model, "epoch")
        progress = ob.progress.get(model)
        total = (ob.totals.get(model) or ob.totals.get("", {})).get("total_steps" if unit == "step" else "total_epochs")
        if progress is None:
            return "(no progress yet)"
        return f"at {unit} {progress:g}" + (f"/{total:g}" if total else "")


def format_eta(eta: Eta | None) -> str:
    if eta is None:
        return "ETA unknown (the log needs times and a schedule: pass --epochs or --steps)"
    tail = ", assuming the run stops early" if eta.early_stop else ""
    return (f"ETA {seconds(eta.seconds)} (90% interval {seconds(eta.low)}–{seconds(eta.high)}; "
            f"{eta.remaining:g} {eta.unit}s left{tail})")


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.0f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def describe(event: Any, eta: Eta | None = None) -> str:
    """One printed line per event."""
    if isinstance(event, TrainingPhase):
        where = (f"epoch {event.epoch:g}" if event.epoch is not None else
                 f"step {event.step:g}" if event.step is not None else "")
        model = f"{event.model} " if event.model else ""
        line = f"[{where}] {model}{event.phase.upper()}: {event.narrative}" if where else \
            f"{model}{event.phase.upper()}: {event.narrative}"
        if eta is not None and event.phase not in ("converged", "done", "diverging"):
            line += f" — {format_eta(eta)}"
        return line
    if isinstance(event, TrainingAdvice):
        return f"advice ({event.action}): {event.message}"
    return f"alert ({getattr(event, 'kind', '?')}): {getattr(event, 'message', '')}"
