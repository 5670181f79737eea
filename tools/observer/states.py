"""The training phase state machine: documented thresholds in, phases with a narrative out.

Per evaluation of the watched split (val when the run has one, else train) the machine smooths
the relative improvement per epoch with an EMA and counts evaluations without a new best; it
checks every loss for NaN/Inf, explosions and gradient-norm spikes. A transition is an event with
one line saying which numbers caused it. All numbers it decides with are in :class:`Thresholds`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from tools.observer.stream import Reading


class Phase(str, Enum):
    INITIALIZING = "initializing"  # no evaluation yet
    WARMUP = "warmup"  # first evaluation(s), or the learning rate is still rising
    LEARNING_FAST = "learning_fast"  # smoothed improvement ≥ fast_rate per epoch
    STABLE_CONVERGENCE = "stable_convergence"  # improving, slower than fast_rate
    PLATEAU = "plateau"  # improvement < plateau_rate for a while, or no new best for a while
    OVERFITTING_RISK = "overfitting_risk"  # val loss rising above its best while train loss does not rise
    DIVERGING = "diverging"  # NaN/Inf, an explosion, a gradient spike, or far worse than untrained
    STALLED = "stalled"  # no new metrics for too long
    CONVERGED = "converged"  # finished after the curve flattened (CONVERGED/DONE)
    DONE = "done"  # finished while still learning (more epochs would likely help) or otherwise


TERMINAL = (Phase.CONVERGED, Phase.DONE)


@dataclass(frozen=True)
class Thresholds:
    """Every number the observer decides with, in one table (the README's Monitoring section)."""

    # phases: an evaluation = one reading of the watched split (val if the run has one, else train)
    ema_alpha: float = 0.5  # weight of the newest per-epoch improvement in the smoothed rate
    warmup_evals: int = 1  # the first N evaluations are WARMUP (there is no rate yet); so is one where lr rose
    fast_rate: float = 0.05  # smoothed improvement ≥ 5%/epoch: LEARNING_FAST
    fast_reenter: float = 0.10  # ... but back to LEARNING_FAST from a slower phase only at ≥ 10% (no flapping on noise)
    plateau_rate: float = 0.005  # smoothed improvement < 0.5%/epoch ...
    plateau_patience: int = 3  # ... for N evaluations in a row, or no new best for N evaluations: PLATEAU
    min_delta: float = 0.001  # a new best beats the old one by at least this fraction
    overfit_rise: float = 0.03  # val loss ≥ 3% above its best ...
    overfit_patience: int = 2  # ... and rising N evaluations in a row while train loss did not rise: OVERFITTING_RISK
    untrained_ratio: float = 3.0  # loss > 3× the untrained model's (else the first reading's), never below it: DIVERGING
    explode_ratio: float = 4.0  # loss > 4× its best ...
    jump_ratio: float = 2.0  # ... and > 2× the previous reading: DIVERGING
    grad_spike_ratio: float = 10.0  # gradient norm > 10× its EMA while the train loss rose: DIVERGING
    stall_seconds: float = 600.0  # no new metric for this long (before the first: 5× as long) ...
    stall_factor: float = 5.0  # ... and for 5× the usual gap between readings: STALLED
    # early-termination advice (tools/observer/advice.py)
    advice_patience: int = 3  # no new best for N evaluations before advising to stop
    stop_patience: int = 4  # ... and N before acting on it (monitor.auto_stop), in PLATEAU or OVERFITTING_RISK
    min_gain: float = 0.01  # δ: a gain worth waiting for, as a fraction of the best
    advise_probability: float = 0.2  # advise stopping when P(gain > δ in the rest of the run) is below this
    stop_probability: float = 0.05  # act on it only below this
    min_saving: int = 2  # act only when stopping saves at least this many evaluations
    advice_window: int = 6  # evaluations the trend and the noise are fitted on
    # ETA (tools/observer/eta.py)
    eta_alpha: float = 0.3  # EMA weight of the newest time per epoch (or step)
    eta_z: float = 1.64  # interval half-width in standard deviations (≈90% for normal noise)
    eta_drift: float = 0.15  # plus this fraction of the estimate: speed drifts (other jobs, thermal, data)
    # resources (tools/observer/resources.py)
    leak_growth: float = 0.25  # RSS ≥ 25% above its baseline ...
    leak_window: int = 5  # ... and never falling over the last N samples: leak suspected
    leak_skip: int = 1  # samples before the baseline (the first epoch allocates what it keeps)
    cuda_risk: float = 0.92  # CUDA memory used / total above this: OOM risk
    throughput_drop: float = 0.5  # throughput below (1 - this) × its EMA ...
    throughput_patience: int = 2  # ... N readings in a row (one slow epoch is noise): a drop
    cooldown: float = 300.0  # seconds before an alert of the same kind may repeat


THRESHOLDS = Thresholds()

#: Metric names (substrings, lower case) where higher is better; anything else is minimised.
HIGHER_IS_BETTER = ("accuracy", "acc", "f1", "precision", "recall", "r2", "auc", "map", "bleu", "rouge", "silhouette",
                    "ari", "nmi", "iou", "dice", "top1", "top5")
LOWER_IS_BETTER = ("loss", "rmse", "mae", "mse", "mase", "smape", "perplexity", "wer", "cer", "davies")
NOT_SCORES = ("initial_loss", "best_loss", "lr", "grad_norm", "samples_per_sec", "k", "iterations")


def higher_is_better(name: str) -> bool:
    low = name.lower()
    return not any(word in low for word in LOWER_IS_BETTER) and any(word in low for word in HIGHER_IS_BETTER)


def pick_score(values: dict[str, float]) -> str | None:
    """The number a split is judged by: its loss, else its first known quality metric."""
    if "loss" in values:
        return "loss"
    names = [k for k in values if k not in NOT_SCORES]
    for name in names:
        if higher_is_better(name):
            return name
    for name in names:
        if any(word in name.lower() for word in LOWER_IS_BETTER):
            return name
    return None


def headline(values: dict[str, float]) -> tuple[str, float] | None:
    """The metric a person reads first: a quality metric (accuracy, F1, R²…), else the loss."""
    for name, value in values.items():
        if name not in NOT_SCORES and higher_is_better(name):
            return name, value
    return ("loss", values["loss"]) if "loss" in values else None


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


@dataclass
class Series:
    """One split's score over time, in 'cost' form (lower is better) plus the counters phases use."""

    metric: str
    sign: float  # +1: the metric is a cost; -1: higher is better (cost = -value)
    xs: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    best: float = math.inf
    best_x: float = 0.0
    since_best: int = 0
    rate: float | None = None  # EMA of the relative improvement per epoch (or per evaluation)
    slow: int = 0  # evaluations in a row with rate < plateau_rate
    rising: int = 0  # evaluations in a row where the cost rose
    reference: float | None = None  # the untrained model's loss (initial_loss), else the first reading
    went_below_reference: bool = False
    grad_ema: float | None = None
    new_best: bool = False

    def value(self, cost: float) -> float:
        return cost * self.sign

    @property
    def last(self) -> float:
        return self.costs[-1]


@dataclass(frozen=True)
class Transition:
    model: str
    previous: Phase
    phase: Phase
    epoch: float | None
    step: float | None
    time: float | None
    narrative: str


class PhaseMachine:
    """The phase of one model's training, advanced by its readings, the clock and the end of the run."""

    def __init__(self, model: str = "", thresholds: Thresholds = THRESHOLDS, started: float | None = None) -> None:
        self.model = model
        self.t = thresholds
        self.phase = Phase.INITIALIZING
        self.series: dict[str, Series] = {}
        self.started = started
        self.last_time: float | None = None
        self.gap_ema: float | None = None
        self.last_lr: float | None = None
        self.lr_rising = False
        self.last_reading: Reading | None = None
        self.history: list[Transition] = []
        self.per_epoch = True  # rates per epoch; False when the log has steps only (then per evaluation)
        self.diverged_at: tuple[float, float] = (-math.inf, -math.inf)
        self.readings = 0

    # -- which split decides -------------------------------------------------------------------
    @property
    def driver(self) -> Series | None:
        return self.series.get("val") or self.series.get("train")

    @property
    def driver_split(self) -> str | None:
        return "val" if "val" in self.series else "train" if "train" in self.series else None

    def _position(self, reading: Reading) -> tuple[float, float]:
        """Where a reading sits in the run: (epoch, step), else its count."""
        if reading.epoch is not None or reading.step is not None:
            return (reading.epoch if reading.epoch is not None else -math.inf,
                    reading.step if reading.step is not None else -math.inf)
        return (float(self.readings), float(self.readings))

    def _x(self, reading: Reading, series: Series) -> float:
        if reading.epoch is not None:
            return float(reading.epoch)
        self.per_epoch = False
        return float(len(series.xs) + 1)

    # -- updates -------------------------------------------------------------------------------
    def update(self, reading: Reading) -> Transition | None:
        """Feed one reading; returns the transition it caused, if any."""
        if reading.split not in ("train", "val"):
            return None
        if reading.time is not None:
            if self.last_time is not None and reading.time > self.last_time:
                gap = reading.time - self.last_time
                self.gap_ema = gap if self.gap_ema is None else self.t.ema_alpha * gap + (1 - self.t.ema_alpha) * self.gap_ema
            self.last_time = reading.time
        lr = reading.values.get("lr")
        if lr is not None and math.isfinite(lr):
            self.lr_rising = self.last_lr is not None and lr > self.last_lr * (1 + 1e-9)
            self.last_lr = lr
        self.last_reading = reading
        self.readings += 1
        reason = self._update_series(reading)
        if reason:
            self.diverged_at = self._position(reading)
            return self._go(Phase.DIVERGING, reading, reason)
        if reading.split != self.driver_split:
            return None
        target = self._target(reading)
        if target is None:
            return None
        return self._go(target, reading, self._narrative(target, reading))

    def _update_series(self, reading: Reading) -> str:
        """Update the reading's series; the divergence reason, or ''."""
        where = self._where(reading)
        for name in ("loss", "grad_norm"):
            value = reading.values.get(name)
            if value is not None and not math.isfinite(value):
                label = "gradient norm" if name == "grad_norm" else f"{reading.split} loss"
                return f"The {label} became {value} {where}: training diverged"
        metric = pick_score(reading.values)
        if metric is None:
            return ""
        s = self.series.get(reading.split)
        if s is None or s.metric != metric:
            s = self.series[reading.split] = Series(metric, -1.0 if higher_is_better(metric) else 1.0)
        value = reading.values[metric]
        if not math.isfinite(value):
            return f"The {reading.split} {metric} became {value} {where}: training diverged"
        cost, x, t = value * s.sign, self._x(reading, s), self.t
        prev = s.costs[-1] if s.costs else None
        reason = ""
        if s.sign > 0:  # divergence rules are for losses (costs ≥ 0), not for accuracy-like metrics
            initial = reading.values.get("initial_loss")
            if s.reference is None:
                s.reference = initial if initial is not None and math.isfinite(initial) and initial > 0 else cost
            if cost < s.reference:
                s.went_below_reference = True
            if not s.went_below_reference and s.reference > 0 and cost > t.untrained_ratio * s.reference:
                what = "the untrained model's" if initial is not None else "its first reading's"
                reason = (f"The {reading.split} {metric} is {cost / s.reference:.1f}× {what} ({_fmt(cost)} vs "
                          f"{_fmt(s.reference)}) {where} and never improved on it: training diverged")
            elif prev is not None and s.best > 0 and cost > t.explode_ratio * s.best and cost > t.jump_ratio * prev:
                reason = (f"The {reading.split} {metric} jumped to {_fmt(cost)} {where} ({cost / s.best:.1f}× its best, "
                          f"{cost / prev:.1f}× the previous reading): training diverged")
            grad = reading.values.get("grad_norm")
            if grad is not None and grad > 0:
                if (not reason and s.grad_ema and prev is not None and grad > t.grad_spike_ratio * s.grad_ema
                        and cost > prev):
                    reason = (f"The gradient norm spiked to {_fmt(grad)} ({grad / s.grad_ema:.0f}× its average) {where} "
                              f"as the {reading.split} loss rose: training diverged")
                s.grad_ema = grad if s.grad_ema is None else t.ema_alpha * grad + (1 - t.ema_alpha) * s.grad_ema
        if prev is not None:
            step = (x - s.xs[-1]) if self.per_epoch and x > s.xs[-1] else 1.0
            r = (prev - cost) / max(abs(prev), 1e-12) / step
            s.rate = r if s.rate is None else t.ema_alpha * r + (1 - t.ema_alpha) * s.rate
            s.slow = s.slow + 1 if s.rate < t.plateau_rate else 0
            s.rising = s.rising + 1 if cost > prev else 0
        s.new_best = not s.costs or cost < s.best - t.min_delta * abs(s.best)
        if s.new_best:
            s.best, s.best_x, s.since_best = cost, x, 0
        else:
            s.since_best += 1
        s.xs.append(x)
        s.costs.append(cost)
        return reason

    def _target(self, reading: Reading) -> Phase | None:
        d, t = self.driver, self.t
        if d is None or d.metric not in reading.values:
            return None
        if self.phase == Phase.DIVERGING and not (d.new_best and self._position(reading) > self.diverged_at):
            return None  # stays diverging until the curve makes a new best again, after the divergence
        if self.lr_rising:
            return Phase.WARMUP
        if len(d.costs) <= t.warmup_evals:  # no rate yet (a val split that starts late keeps the train verdict)
            return Phase.WARMUP if self.phase in (Phase.INITIALIZING, Phase.WARMUP, Phase.STALLED) else None
        if self._overfitting(d):
            return Phase.OVERFITTING_RISK
        if d.slow >= t.plateau_patience or d.since_best >= t.plateau_patience:
            return Phase.PLATEAU
        fast = t.fast_rate if self.phase in (Phase.INITIALIZING, Phase.WARMUP, Phase.LEARNING_FAST) else t.fast_reenter
        if d.rate is not None and d.rate >= fast:
            return Phase.LEARNING_FAST
        return Phase.STABLE_CONVERGENCE

    def _overfitting(self, d: Series) -> bool:
        if self.driver_split != "val" or d.sign < 0 or d.rising < self.t.overfit_patience:
            return False
        if d.last < d.best * (1 + self.t.overfit_rise):
            return False
        train = self.series.get("train")
        return train is None or train.rising == 0

    def _go(self, phase: Phase, reading: Reading | None, narrative: str) -> Transition | None:
        if phase == self.phase:
            return None
        tr = Transition(self.model, self.phase, phase, reading.epoch if reading else None,
                        reading.step if reading else None, reading.time if reading else None, narrative)
        self.phase = phase
        self.history.append(tr)
        return tr

    def tick(self, now: float) -> Transition | None:
        """STALLED when no reading came for max(stall_seconds, stall_factor × the usual gap)."""
        if self.phase in TERMINAL or self.phase == Phase.STALLED:
            return None
        last = self.last_time if self.last_time is not None else self.started
        if last is None:
            return None
        usual = self.gap_ema
        if usual is None and self.last_time is not None and self.started is not None:
            usual = self.last_time - self.started  # one reading so far: the first epoch (and start-up) took this
        # before any reading, start-up (imports, data loading, a long first epoch) gets stall_factor × the limit
        limit = (max(self.t.stall_seconds, self.t.stall_factor * usual) if usual is not None
                 else self.t.stall_seconds * (1 if self.last_time is not None else self.t.stall_factor))
        quiet = now - last
        if quiet <= limit:
            return None
        usual = f" (readings came every ~{_duration(self.gap_ema)})" if self.gap_ema else ""
        tr = Transition(self.model, self.phase, Phase.STALLED, None, None, now,
                        f"No new metrics for {_duration(quiet)}{usual}: the run may be hung or starved")
        self.phase = Phase.STALLED
        self.history.append(tr)
        return tr

    def finish(self, total: float | None = None) -> Transition | None:
        """The run ended normally: CONVERGED when the curve had flattened, else DONE."""
        if self.phase in TERMINAL:
            return None
        d = self.driver
        flat = self.phase in (Phase.STABLE_CONVERGENCE, Phase.PLATEAU, Phase.OVERFITTING_RISK)
        target = Phase.CONVERGED if flat else Phase.DONE
        reading = self.last_reading
        where = self._where(reading, total) if reading else "at the end"
        if d is None:
            return self._go(target, reading, f"Finished {where} without a loss to judge")
        best = f"best {self.driver_split} {d.metric} {_fmt(d.value(d.best))} at {self._unit()} {d.best_x:g}"
        if flat:
            text = f"Finished {where}: {best}; the curve had flattened"
        elif self.phase == Phase.LEARNING_FAST and d.rate is not None:
            text = f"Finished {where} while still improving {d.rate:.1%}/{self._unit()}: {best}; more epochs would likely help"
        elif self.phase == Phase.DIVERGING:
            text = f"Finished {where} while diverging: {best}"
        else:
            text = f"Finished {where}: {best}"
        return self._go(target, reading, text)

    # -- words -----------------------------------------------------------------------------------
    def _unit(self) -> str:
        return "epoch" if self.per_epoch else "eval"

    def _where(self, reading: Reading | None, total: float | None = None) -> str:
        if reading is None:
            return ""
        if reading.epoch is not None:
            of = f"/{total:g}" if total else ""
            return f"at epoch {reading.epoch:g}{of}"
        if reading.step is not None:
            return f"at step {reading.step:g}"
        return ""

    def _narrative(self, phase: Phase, reading: Reading) -> str:
        d = self.driver
        assert d is not None
        split, unit = self.driver_split, self._unit()
        now = f"{split} {d.metric} {_fmt(reading.values[d.metric])}"
        rate = f"{d.rate:.1%}/{unit}" if d.rate is not None else ""
        head = headline(reading.values)
        if phase == Phase.WARMUP:
            if self.lr_rising:
                return f"Learning rate warming up (lr {_fmt(self.last_lr or 0)}); {now}"
            return f"First evaluation {self._where(reading)}: {now}"
        if phase == Phase.LEARNING_FAST:
            return f"Learning fast: {split} {d.metric} improving {rate} (now {_fmt(reading.values[d.metric])})"
        if phase == Phase.STABLE_CONVERGENCE:
            prev = d.costs[-2] if len(d.costs) > 1 else None
            trend = (f", up {d.last / prev - 1:.0%} on the previous evaluation" if d.rising and prev
                     else ", still improving")
            return f"Learning velocity dropped to {rate}; {now}{trend}"
        if phase == Phase.PLATEAU:
            shown = f"{split} {head[0]} plateaued at {_fmt(head[1])}" if head else f"{now} plateaued"
            why = (f"no new best for {d.since_best} evaluations" if d.since_best >= self.t.plateau_patience
                   else f"learning velocity dropped to {rate}")
            return f"{why[0].upper()}{why[1:]}; {shown}"
        if phase == Phase.OVERFITTING_RISK:
            rise = d.last / d.best - 1 if d.best else 0.0
            train = self.series.get("train")
            tail = (f" while train {train.metric} kept falling ({_fmt(train.value(train.last))})" if train
                    else " (no train loss in the log to confirm overfitting)")
            return (f"Val {d.metric} rose {rise:.0%} above its best ({_fmt(d.value(d.best))} at {unit} {d.best_x:g}) "
                    f"for {d.rising} evaluations{tail}")
        return now


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
