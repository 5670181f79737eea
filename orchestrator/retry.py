"""Retry policies per stage, as a table, and the backoff arithmetic."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int  # total tries, the first included
    base_delay: float  # seconds before the second try
    backoff: float  # multiplier per further try
    cap: float  # longest wait
    jitter: float  # +/- fraction of the wait, so parallel jobs do not retry in lockstep
    feed_errors: bool  # show earlier errors to the next attempt

    def delay(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Wait after the ``failed_attempt``-th try (1-based)."""
        wait = min(self.cap, self.base_delay * self.backoff ** (failed_attempt - 1))
        if self.jitter and rng is not None:
            wait *= 1 + rng.uniform(-self.jitter, self.jitter)
        return max(0.0, wait)


POLICIES: dict[str, RetryPolicy] = {
    "intent": RetryPolicy(attempts=3, base_delay=1.0, backoff=2.0, cap=20.0, jitter=0.1, feed_errors=True),
    "dataset": RetryPolicy(attempts=3, base_delay=2.0, backoff=2.0, cap=60.0, jitter=0.2, feed_errors=False),
    "preprocessing": RetryPolicy(attempts=2, base_delay=0.5, backoff=2.0, cap=10.0, jitter=0.0, feed_errors=True),
    "config": RetryPolicy(attempts=3, base_delay=1.0, backoff=2.0, cap=20.0, jitter=0.1, feed_errors=True),
    "architecture": RetryPolicy(attempts=3, base_delay=1.0, backoff=2.0, cap=20.0, jitter=0.1, feed_errors=True),
    "codegen": RetryPolicy(attempts=3, base_delay=1.0, backoff=2.0, cap=20.0, jitter=0.1, feed_errors=True),
    "training": RetryPolicy(attempts=2, base_delay=5.0, backoff=2.0, cap=60.0, jitter=0.1, feed_errors=True),
    "export": RetryPolicy(attempts=2, base_delay=0.5, backoff=2.0, cap=10.0, jitter=0.0, feed_errors=True),
    "deploy": RetryPolicy(attempts=4, base_delay=2.0, backoff=2.0, cap=60.0, jitter=0.2, feed_errors=False),
}
