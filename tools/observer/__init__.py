"""The training observer: one metric stream, a phase state machine, ETA, advice and alerts.

"Math detects, words explain": every decision is a threshold in :data:`states.THRESHOLDS`; the
narrative only describes what the numbers showed. The same observer watches our own runs (the
training stage) and anyone's logs (``mltrainer watch``). Pure Python: nothing heavy is imported
unless a TensorBoard file is read.
"""

from __future__ import annotations

from tools.observer.observer import Observer
from tools.observer.states import THRESHOLDS, Phase, Thresholds
from tools.observer.stream import Reading, Record, readings

__all__ = ["Observer", "Phase", "Reading", "Record", "THRESHOLDS", "Thresholds", "readings"]
