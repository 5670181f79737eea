"""ETA with a confidence interval: EMA-smoothed time per epoch (or step) times what is left.

The interval is z·σ·√remaining (the noise of independent epochs) plus a drift share of the
estimate (speed changes: other jobs, thermal throttling, longer sequences). When an early stop is
likely (the run's own patience is running out) the lower end moves to that stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tools.observer.states import THRESHOLDS, Thresholds


@dataclass(frozen=True)
class Eta:
    seconds: float  # the point estimate
    low: float
    high: float
    unit: str  # epoch | step: what the schedule counts
    remaining: float  # units left in the schedule
    early_stop: bool = False  # the estimate assumes the run stops early


class EtaEstimator:
    """Time per unit of progress, smoothed; ``estimate`` turns it into seconds left."""

    def __init__(self, thresholds: Thresholds = THRESHOLDS) -> None:
        self.t = thresholds
        self.mean: float | None = None  # seconds per unit (EMA)
        self.var = 0.0  # EMA variance of seconds per unit
        self.samples = 0
        self.last: tuple[float, float] | None = None  # (progress, time) of the latest reading

    def update(self, progress: float, when: float) -> None:
        if self.last is not None and progress > self.last[0] and when >= self.last[1]:
            per_unit = (when - self.last[1]) / (progress - self.last[0])
            if self.mean is None:
                self.mean = per_unit
            else:
                diff = per_unit - self.mean
                incr = self.t.eta_alpha * diff
                self.mean += incr
                self.var = (1 - self.t.eta_alpha) * (self.var + diff * incr)
            self.samples += 1
        if self.last is None or progress > self.last[0]:  # a second split at the same point keeps the first time
            self.last = (progress, when)

    def estimate(self, total: float, unit: str, *, stop_within: float | None = None,
                 likely_stop: bool = False, now: float | None = None) -> Eta | None:
        """Seconds until ``total`` units are done (from ``now``, else from the latest reading).

        ``stop_within``: units until the run's own early stopping would end it if nothing
        improves; ``likely_stop``: the observer thinks it will (plateau, overfitting).
        """
        if self.mean is None or self.last is None:
            return None
        remaining = max(0.0, total - self.last[0])
        center = remaining * self.mean
        half = self.t.eta_z * math.sqrt(max(self.var, 0.0)) * math.sqrt(remaining) + self.t.eta_drift * center
        low, high = max(0.0, center - half), center + half
        early = False
        if stop_within is not None and 0 <= stop_within < remaining:
            stop = stop_within * self.mean
            low = min(low, max(0.0, stop * (1 - self.t.eta_drift) - self.t.eta_z * math.sqrt(max(self.var, 0.0))))
            if likely_stop:
                center, early = stop, True
        since = max(0.0, (now - self.last[1])) if now is not None else 0.0
        return Eta(max(0.0, center - since), max(0.0, low - since), max(0.0, high - since), unit, remaining, early)
