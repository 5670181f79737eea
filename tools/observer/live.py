"""The training stage's line sink: METRIC lines → the observer → events, and the two actions.

On DIVERGING it raises :class:`DivergenceStop` from ``on_line``, which makes
:func:`tools.process.run_streaming` kill the child's process group at once. On a confirmed
plateau/overfit (and ``monitor.auto_stop``) it writes ``out_dir/STOP`` naming the model: every
template checks that file once per epoch and finishes as if early-stopped (best weights kept,
test metrics and metrics.json written). A ticker thread checks for stalls and samples memory.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import TrainingError
from orchestrator.events import ResourceAlert, TrainingAdvice, TrainingMetric, TrainingPhase
from tools.observer.observer import Observer
from tools.observer.resources import cuda_usage, group_pids, group_rss
from tools.observer.states import THRESHOLDS, Phase, Thresholds
from tools.observer.stream import RUN, parse_metric_json, readings

STOP_FILE = "STOP"
METRICS_LOG = "metrics.jsonl"  # every METRIC line with its arrival time, in out_dir
MAX_METRIC_ROWS = 5000
CUDA_EVERY = 30.0  # seconds between nvidia-smi probes
#: What a webhook hears about: phase changes to these, every advice and every alert.
NOTIFY_PHASES = (Phase.DIVERGING.value, Phase.STALLED.value, Phase.PLATEAU.value, Phase.OVERFITTING_RISK.value,
                 Phase.CONVERGED.value, Phase.DONE.value)


class DivergenceStop(TrainingError):
    """The observer saw the run diverge; raised from on_line so the child is killed at once."""

    def __init__(self, model: str, reason: str, epoch: float | None) -> None:
        super().__init__(reason)
        self.model, self.reason, self.epoch = model, reason, epoch


class LiveWatch:
    """Callable line sink with ``attach(proc)`` (called by run_streaming once the child runs)."""

    def __init__(self, emit: Callable[[Any], None], *, out_dir: Path, auto_stop: bool = True,
                 patience: int | None = None, webhook: Any = None, thresholds: Thresholds = THRESHOLDS,
                 clock: Callable[[], float] = time.time, tick_every: float = 5.0,
                 rss: Callable[[int], int | None] = group_rss, log: Callable[[str], None] = lambda m: None) -> None:
        self.emit_event = emit
        self.out_dir = Path(out_dir)
        self.auto_stop = auto_stop
        self.webhook = webhook
        self.clock = clock
        self.tick_every = tick_every
        self.rss_probe = rss
        self.log = log
        self.observer = Observer(thresholds, patience=patience, clock=clock, started=clock())
        self.rows: list[dict[str, Any]] = []
        self.stopped: dict[str, str] = {}  # model → why auto-stop asked it to stop
        self.pgid: int | None = None
        self._lock = threading.RLock()
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None
        self._last_cuda = 0.0
        (self.out_dir / STOP_FILE).unlink(missing_ok=True)  # a stale request must not stop the new run

    # -- the line sink -----------------------------------------------------------------------
    def __call__(self, line: str) -> None:
        if not line.startswith("METRIC "):
            return
        now = self.clock()
        records = parse_metric_json(line, now)
        if records:  # the run's own log, for `mltrainer watch JOB_ID --follow` from another terminal
            with open(self.out_dir / METRICS_LOG, "a") as log:
                log.write(json.dumps({**json.loads(line[len("METRIC "):]), "time": round(now, 3)}) + "\n")
        with self._lock:
            for reading in readings(records):
                events = self.observer.feed(reading)
                if reading.split != RUN:
                    self._metric(reading, now)
                    if reading.split == self.observer.machine(reading.model).driver_split:
                        events += self._sample_memory(now, reading.epoch)
                for event in events:
                    self._publish(event)
                self._act(reading.model)

    def _metric(self, reading: Any, now: float) -> None:
        values = {k: v for k, v in reading.values.items() if k != "initial_loss"}
        epoch = int(reading.epoch or 0)
        total = int(self.observer.totals.get(reading.model, {}).get("total_epochs", 0))
        if len(self.rows) < MAX_METRIC_ROWS:
            self.rows.append({"model": reading.model or "model", "epoch": epoch, "split": reading.split, **values})
        eta = self.observer.eta(reading.model, now)
        self.emit_event(TrainingMetric(
            model=reading.model or "model", epoch=epoch, total_epochs=total, split=reading.split, metrics=values,
            eta_seconds=eta.seconds if eta else None, eta_low=eta.low if eta else None,
            eta_high=eta.high if eta else None, phase=self.observer.phase(reading.model).value))

    def _act(self, model: str) -> None:
        diverged = self.observer.diverged(model)
        if diverged is not None:
            raise DivergenceStop(model, diverged.narrative, diverged.epoch)
        advice = self.observer.advice.get(model)
        if (self.auto_stop and advice is not None and advice.action == "stop" and advice.confirmed
                and model not in self.stopped):
            (self.out_dir / STOP_FILE).write_text(model)
            self.stopped[model] = advice.message
            self._publish(TrainingAdvice(model=model, action="stop", message=advice.message,
                                         probability=advice.probability, saved_seconds=advice.saved_seconds,
                                         keep=advice.keep, confirmed=True, acted=True, time=self.clock()))
            self.log(f"auto-stop: asked {model} to stop and keep its best checkpoint (monitor.auto_stop)")

    def _publish(self, event: Any) -> None:
        self.emit_event(event)
        if self.webhook is None:
            return
        if isinstance(event, TrainingPhase) and event.phase in NOTIFY_PHASES:
            self.webhook.send(f"phase:{event.phase}", f"[{event.model}] {event.phase}: {event.narrative}",
                              {"model": event.model, "phase": event.phase})
        elif isinstance(event, TrainingAdvice):
            self.webhook.send(f"advice:{event.action}:{event.acted}", f"[{event.model}] advice: {event.message}",
                              {"model": event.model, "action": event.action, "acted": event.acted})
        elif isinstance(event, ResourceAlert):
            self.webhook.send(f"alert:{event.kind}", f"resource alert: {event.message}", {"alert": event.kind})

    # -- the child process -------------------------------------------------------------------
    def attach(self, proc: Any) -> None:
        """run_streaming hands over the child: its process group is what memory is measured on."""
        self.pgid = int(proc.pid)

    def start(self) -> None:
        """Start the ticker (stall checks, CUDA memory) for the life of one launch."""
        self._done.clear()
        self._ticker = threading.Thread(target=self._tick_loop, name="observer-ticker", daemon=True)
        self._ticker.start()

    def _tick_loop(self) -> None:
        while not self._done.wait(self.tick_every):
            self.tick()

    def tick(self) -> None:
        now = self.clock()
        with self._lock:
            events = self.observer.tick(now)
            if self.pgid is not None and now - self._last_cuda >= CUDA_EVERY:
                self._last_cuda = now
                usage = cuda_usage(group_pids(self.pgid))
                if usage is not None:
                    events += self.observer.sample_cuda(usage[0], usage[1], now)
            for event in events:
                self._publish(event)

    def _sample_memory(self, now: float, epoch: float | None) -> list[Any]:
        if self.pgid is None:
            return []
        nbytes = self.rss_probe(self.pgid)
        return self.observer.sample_rss(nbytes, now, epoch) if nbytes else []

    def stop(self) -> None:
        """Stop the ticker (the launch is over, however it ended)."""
        self._done.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
            self._ticker = None
        self.pgid = None

    def finish(self) -> None:
        """The run ended normally: every model gets its final phase (CONVERGED or DONE)."""
        with self._lock:
            with open(self.out_dir / METRICS_LOG, "a") as log:  # so `mltrainer watch` knows it ended
                log.write(json.dumps({"split": RUN, "finished": 1, "time": round(self.clock(), 3)}) + "\n")
            for event in self.observer.finish():
                self._publish(event)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            out = self.observer.summary()
            for model, why in self.stopped.items():
                out.setdefault(model, {})["auto_stopped"] = why
            return out
