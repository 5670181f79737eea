"""Early-termination advice: is a gain worth waiting for still likely?

The last ``advice_window`` evaluations are fitted with a line; the residuals give the noise. The
chance that one of the next evaluations beats the best by more than δ is one minus the chance
that none does, each judged on the trend's projection plus that noise. Advice says what stopping
saves and which checkpoint to keep; it is *confirmed* (strong enough to act on) only in PLATEAU or
OVERFITTING_RISK, after ``stop_patience`` evaluations without a new best, when the chance is
below ``stop_probability`` and stopping saves at least ``min_saving`` evaluations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tools.observer.states import THRESHOLDS, Phase, Series, Thresholds


@dataclass(frozen=True)
class Advice:
    action: str  # stop | lower_lr
    message: str
    probability: float | None  # of a gain > δ in the rest of the run
    saved_seconds: float | None
    saved_evals: float | None
    keep: str  # the checkpoint to keep
    confirmed: bool  # strong enough to act on (monitor.auto_stop)


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def gain_probability(xs: list[float], costs: list[float], best: float, horizon: int, delta: float,
                     window: int = THRESHOLDS.advice_window) -> float | None:
    """P(one of the next ``horizon`` evaluations has cost < best - δ·|best|); None with < 3 points."""
    x, y = xs[-window:], costs[-window:]
    n = len(x)
    if n < 3 or horizon <= 0:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx if sxx > 0 else 0.0
    fit = [my + slope * (a - mx) for a in x]
    noise = math.sqrt(sum((b - f) ** 2 for b, f in zip(y, fit)) / max(1, n - 2))
    noise = max(noise, 1e-4 * abs(best), 1e-12)
    dx = (x[-1] - x[0]) / (n - 1) if n > 1 and x[-1] > x[0] else 1.0
    target = best - delta * abs(best)
    none = 1.0
    for k in range(1, horizon + 1):
        projected = fit[-1] + slope * dx * k
        none *= 1.0 - _phi((target - projected) / noise)
    return 1.0 - none


def advise_stop(series: Series, phase: Phase, split: str, *, remaining_evals: float | None,
                seconds_per_eval: float | None, patience: int | None, unit: str,
                thresholds: Thresholds = THRESHOLDS) -> Advice | None:
    """Advice to stop when no new best came for a while and a δ gain is unlikely; else None."""
    t = thresholds
    if series.since_best < t.advice_patience or (remaining_evals is not None and remaining_evals < 1):
        return None
    horizon = int(min(remaining_evals, t.advice_window)) if remaining_evals is not None else t.advice_window
    p = gain_probability(series.xs, series.costs, series.best, horizon, t.min_gain, t.advice_window)
    if p is None or p >= t.advise_probability:
        return None
    saved = remaining_evals
    if patience is not None and saved is not None:
        saved = min(saved, max(0.0, patience - series.since_best))  # the run would stop itself by then
    if saved is not None and saved < 1:
        return None  # it stops on its own now: nothing to advise
    seconds = saved * seconds_per_eval if saved is not None and seconds_per_eval is not None else None
    confirmed = (phase in (Phase.PLATEAU, Phase.OVERFITTING_RISK) and series.since_best >= t.stop_patience
                 and p < t.stop_probability and saved is not None and saved >= t.min_saving)
    keep = f"the best checkpoint ({unit} {series.best_x:g}, {split} {series.metric} {series.value(series.best):.4g})"
    saving = ""
    if saved is not None:
        saving = f" Stopping now saves {saved:g} {unit}{'s' if saved != 1 else ''}"
        saving += f" (~{_seconds(seconds)})." if seconds is not None else "."
    message = (f"No new best {split} {series.metric} for {series.since_best} evaluations; P(gain > {t.min_gain:.0%}) "
               f"≈ {p:.0%}.{saving} Keep {keep}.")
    return Advice("stop", message, p, seconds, saved, keep, confirmed)


def advise_lower_lr(series: Series | None, split: str, unit: str, factor: float) -> Advice:
    """On DIVERGING: stop now and restart from scratch with a lower learning rate."""
    keep = "nothing: restart from scratch"
    if series is not None and series.costs and series.best < math.inf:
        keep = f"nothing: restart from scratch (the best so far was {unit} {series.best_x:g})"
    return Advice("lower_lr", f"Stop now and restart with the learning rate ×{factor:g}; keep {keep}.",
                  None, None, None, keep, True)


def _seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
