"""The observer: readings in; phase changes, ETA, advice and resource alerts out, per model.

One :class:`PhaseMachine` and one :class:`EtaEstimator` per model (our tabular runs train GBDT,
then an MLP); a new model's first reading ends the previous one. What comes out is events
(orchestrator/events.py), so the training stage emits them and ``mltrainer watch`` prints them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.events import ResourceAlert, TrainingAdvice, TrainingPhase
from tools.observer.advice import Advice, advise_lower_lr, advise_stop
from tools.observer.eta import Eta, EtaEstimator
from tools.observer.resources import MB, Alert, ResourceWatch
from tools.observer.states import THRESHOLDS, Phase, PhaseMachine, Thresholds, Transition
from tools.observer.stream import RUN, Reading, Record, readings

#: The learning-rate factor a diverged run is restarted with (the training stage's retry uses it).
LR_FACTOR = 0.1


class Observer:
    def __init__(self, thresholds: Thresholds = THRESHOLDS, *, patience: int | None = None,
                 clock: Callable[[], float] = time.time, started: float | None = None) -> None:
        self.t = thresholds
        self.patience = patience  # the run's own early-stopping patience, when known (ours: config)
        self.clock = clock
        self.started = started
        self.machines: dict[str, PhaseMachine] = {}
        self.etas: dict[str, EtaEstimator] = {}
        self.units: dict[str, str] = {}
        self.totals: dict[str, dict[str, float]] = {}
        self.progress: dict[str, float] = {}
        self.advised: dict[str, tuple[float, int]] = {}  # model → (best x of the episode, 1 advised / 2 confirmed)
        self.advice: dict[str, Advice] = {}
        self.resources = ResourceWatch(thresholds)
        self.latest: str | None = None
        self._rss_model: str | None = None

    # -- input -------------------------------------------------------------------------------
    def machine(self, model: str) -> PhaseMachine:
        if model not in self.machines:
            self.machines[model] = PhaseMachine(model, self.t, self.started)
        return self.machines[model]

    def feed_records(self, records: Iterable[Record]) -> list[Any]:
        events: list[Any] = []
        for reading in readings(records):
            events += self.feed(reading)
        return events

    def feed(self, reading: Reading) -> list[Any]:
        """One reading; the events it caused (phase changes, advice, alerts)."""
        model = reading.model
        if reading.split == RUN:
            return self._run_facts(reading)
        events: list[Any] = []
        idle = self.machines.get("")
        if model and idle is not None and idle.last_reading is None:
            del self.machines[""]  # the placeholder that watched for a silent start
        if self.latest is not None and model != self.latest:
            events += self.finish(self.latest)  # our templates train candidates one after another
        self.latest = model
        m = self.machine(model)
        tr = m.update(reading)
        if tr is not None:
            events.append(self._phase_event(tr))
            if tr.phase == Phase.DIVERGING:
                advice = advise_lower_lr(m.driver, m.driver_split or "val", self._unit(model), LR_FACTOR)
                self.advice[model] = advice
                events.append(self._advice_event(model, advice, tr.time))
        when = reading.time
        unit, progress, _ = self._where(model, reading)  # any split moves the run along (HF evals are rare)
        if progress is not None and self.units.get(model) != unit:  # e.g. the schedule turned out to count steps
            self.units[model] = unit
            self.etas.pop(model, None)
            self.progress.pop(model, None)
        if progress is not None and progress >= self.progress.get(model, -math.inf):
            self.progress[model] = progress
            if when is not None:
                self.etas.setdefault(model, EtaEstimator(self.t)).update(progress, when)
        if reading.split == m.driver_split and m.phase not in (Phase.DIVERGING, Phase.STALLED):
            events += self._maybe_advise(model, m, when)
        speed = reading.values.get("samples_per_sec")
        if speed is not None and math.isfinite(speed) and speed > 0:
            events += self._alert(self.resources.sample_throughput(speed, self._now(when)), model)
        return events

    def _run_facts(self, reading: Reading) -> list[Any]:
        events: list[Any] = []
        for key, value in reading.values.items():
            if key in ("total_epochs", "total_steps"):
                self.totals.setdefault(reading.model, {})[key] = value
            elif key == "finished":
                events += self.finish(reading.model if reading.model in self.machines else self.latest)
            elif key == "cuda_memory_mb":
                self.resources.sample_cuda(value * MB, None, self._now(reading.time))
        return events

    def sample_rss(self, nbytes: float, now: float | None = None, epoch: float | None = None) -> list[Any]:
        if self.latest != self._rss_model:  # a new candidate (GBDT, then a torch MLP) sets a new baseline
            self.resources.rss.clear()
            self._rss_model = self.latest
        return self._alert(self.resources.sample_rss(nbytes, self._now(now), epoch), self.latest or "")

    def sample_cuda(self, used: float, total: float | None, now: float | None = None) -> list[Any]:
        return self._alert(self.resources.sample_cuda(used, total, self._now(now)), self.latest or "")

    def tick(self, now: float | None = None) -> list[Any]:
        """Clock-driven checks (STALLED); call it every few seconds while a run is live."""
        now = self._now(now)
        events = []
        for m in list(self.machines.values()) or ([self.machine("")] if self.started is not None else []):
            tr = m.tick(now)
            if tr is not None:
                events.append(self._phase_event(tr))
        return events

    def finish(self, model: str | None = None) -> list[Any]:
        """The run (or one model of it) ended normally: CONVERGED or DONE."""
        names = [model] if model is not None else list(self.machines)
        events = []
        for name in names:
            m = self.machines.get(name)
            if m is None or m.last_reading is None:
                continue
            total = self.totals.get(name, self.totals.get("", {})).get("total_epochs")
            tr = m.finish(total)
            if tr is not None:
                events.append(self._phase_event(tr))
        return events

    # -- questions ---------------------------------------------------------------------------
    def phase(self, model: str) -> Phase:
        m = self.machines.get(model)
        return m.phase if m else Phase.INITIALIZING

    def diverged(self, model: str) -> Transition | None:
        """The transition that made ``model`` DIVERGING, while it still is."""
        m = self.machines.get(model)
        if m is None or m.phase != Phase.DIVERGING:
            return None
        return next((tr for tr in reversed(m.history) if tr.phase == Phase.DIVERGING), None)

    def eta(self, model: str, now: float | None = None) -> Eta | None:
        """Seconds left for ``model``'s schedule with an interval; None without a schedule or two readings."""
        est, m = self.etas.get(model), self.machines.get(model)
        if est is None or m is None or m.last_reading is None:
            return None
        unit, _, total = self._where(model, m.last_reading)
        if total is None or unit != self.units.get(model):
            return None
        d, spacing = m.driver, self._spacing(model)
        stop_within = None
        if self.patience is not None and d is not None:
            stop_within = max(0, self.patience - d.since_best) * spacing
        likely = m.phase in (Phase.PLATEAU, Phase.OVERFITTING_RISK)
        return est.estimate(total, unit, stop_within=stop_within, likely_stop=likely, now=now)

    def summary(self) -> dict[str, Any]:
        """Per model: the phase history and the best of its watched split (for the job record)."""
        out: dict[str, Any] = {}
        for name, m in self.machines.items():
            d = m.driver
            out[name] = {
                "phase": m.phase.value,
                "phases": [{"phase": tr.phase.value, "epoch": tr.epoch, "step": tr.step, "narrative": tr.narrative}
                           for tr in m.history],
                **({"best": {"split": m.driver_split, "metric": d.metric, "value": d.value(d.best), "at": d.best_x}}
                   if d is not None and d.costs else {}),
            }
        return out

    # -- helpers -----------------------------------------------------------------------------
    def _now(self, when: float | None) -> float:
        return when if when is not None else self.clock()

    def _unit(self, model: str) -> str:
        return self.units.get(model, "epoch")

    def _where(self, model: str, reading: Reading) -> tuple[str, float | None, float | None]:
        """(unit, progress, total): steps when the schedule counts steps, else epochs."""
        totals = self.totals.get(model) or self.totals.get("", {})
        if reading.step is not None and totals.get("total_steps"):
            return "step", reading.step, totals["total_steps"]
        if reading.epoch is not None:
            return "epoch", reading.epoch, totals.get("total_epochs")
        if reading.step is not None:
            return "step", reading.step, totals.get("total_steps")
        return "epoch", None, None

    def _spacing(self, model: str) -> float:
        """Progress units between two evaluations of the watched split (1 epoch for ours)."""
        m = self.machines[model]
        d = m.driver
        if d is None or len(d.xs) < 2 or not m.per_epoch:
            return 1.0
        unit = self.units.get(model, "epoch")
        if unit == "epoch":
            return max(1e-9, (d.xs[-1] - d.xs[0]) / (len(d.xs) - 1))
        return 1.0

    def _maybe_advise(self, model: str, m: PhaseMachine, when: float | None) -> list[Any]:
        d = m.driver
        if d is None or not d.costs:
            return []
        if d.new_best:
            self.advised.pop(model, None)
            self.advice.pop(model, None)
            return []
        unit, progress, total = self._where(model, m.last_reading) if m.last_reading else ("epoch", None, None)
        spacing = self._spacing(model)
        remaining = (max(0.0, total - progress) / spacing) if total is not None and progress is not None else None
        est = self.etas.get(model)
        per_eval = est.mean * spacing if est is not None and est.mean is not None else None
        advice = advise_stop(d, m.phase, m.driver_split or "val", remaining_evals=remaining, seconds_per_eval=per_eval,
                             patience=self.patience, unit=unit, thresholds=self.t)
        if advice is None:
            return []
        level = 2 if advice.confirmed else 1
        episode, done = self.advised.get(model, (d.best_x, 0))
        if episode == d.best_x and done >= level:
            return []
        self.advised[model] = (d.best_x, level)
        self.advice[model] = advice
        return [self._advice_event(model, advice, when)]

    def _phase_event(self, tr: Transition) -> TrainingPhase:
        return TrainingPhase(model=tr.model, phase=tr.phase.value, previous=tr.previous.value, narrative=tr.narrative,
                             epoch=tr.epoch, step=tr.step, time=self._now(tr.time))

    def _advice_event(self, model: str, advice: Advice, when: float | None) -> TrainingAdvice:
        return TrainingAdvice(model=model, action=advice.action, message=advice.message, probability=advice.probability,
                              saved_seconds=advice.saved_seconds, keep=advice.keep, confirmed=advice.confirmed,
                              time=self._now(when))

    def _alert(self, alert: Alert | None, model: str) -> list[Any]:
        if alert is None:
            return []
        return [ResourceAlert(kind=alert.kind, message=alert.message, value=alert.value, model=model, time=alert.time)]
