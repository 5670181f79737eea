"""Typed events: frozen dataclasses with a ``type`` tag, one union alias, and a thread-safe bus.

Stages, the training reader thread and the orchestrator emit; the renderer and the store consume.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Union


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class PipelineStart:
    job_id: str
    stages: tuple[str, ...]
    resumed: bool = False
    time: float = field(default_factory=_now)
    type: Literal["pipeline_start"] = "pipeline_start"


@dataclass(frozen=True)
class PipelineEnd:
    job_id: str
    status: str  # done | failed | interrupted | paused
    duration: float
    reason: str = ""
    export_dir: str = ""
    deployed_urls: tuple[str, ...] = ()  # where the deploy stage published the model
    time: float = field(default_factory=_now)
    type: Literal["pipeline_end"] = "pipeline_end"


@dataclass(frozen=True)
class StageStart:
    stage: str
    attempt: int
    time: float = field(default_factory=_now)
    type: Literal["stage_start"] = "stage_start"


@dataclass(frozen=True)
class StageEnd:
    stage: str
    attempt: int
    duration: float
    summary: str = ""
    time: float = field(default_factory=_now)
    type: Literal["stage_end"] = "stage_end"


@dataclass(frozen=True)
class StageFailed:
    stage: str
    attempt: int
    error: str
    error_type: str
    final: bool
    time: float = field(default_factory=_now)
    type: Literal["stage_failed"] = "stage_failed"


@dataclass(frozen=True)
class StageSkipped:
    stage: str
    reason: str
    time: float = field(default_factory=_now)
    type: Literal["stage_skipped"] = "stage_skipped"


@dataclass(frozen=True)
class StageRetry:
    stage: str
    next_attempt: int
    delay: float
    error: str
    time: float = field(default_factory=_now)
    type: Literal["stage_retry"] = "stage_retry"


@dataclass(frozen=True)
class LLMCall:
    stage: str
    model: str
    messages: int
    time: float = field(default_factory=_now)
    type: Literal["llm_call"] = "llm_call"


@dataclass(frozen=True)
class LLMResponse:
    stage: str
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    latency: float
    time: float = field(default_factory=_now)
    type: Literal["llm_response"] = "llm_response"


@dataclass(frozen=True)
class ToolCall:
    stage: str
    tool: str
    arguments: dict[str, Any]
    time: float = field(default_factory=_now)
    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True)
class ToolResult:
    stage: str
    tool: str
    ok: bool
    summary: str
    time: float = field(default_factory=_now)
    type: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True)
class AgentLog:
    stage: str
    message: str
    level: Literal["info", "warning"] = "info"
    time: float = field(default_factory=_now)
    type: Literal["agent_log"] = "agent_log"


@dataclass(frozen=True)
class TrainingMetric:
    model: str
    epoch: int
    total_epochs: int
    split: str
    metrics: dict[str, float]
    eta_seconds: float | None = None
    eta_low: float | None = None  # the ETA's confidence interval (tools/observer/eta.py)
    eta_high: float | None = None
    phase: str = ""  # the observer's phase of this model (tools/observer/states.py)
    time: float = field(default_factory=_now)
    type: Literal["training_metric"] = "training_metric"


@dataclass(frozen=True)
class TrainingPhase:
    """The training observer moved a model to a new phase; the narrative names the numbers why."""

    model: str
    phase: str  # initializing | warmup | learning_fast | stable_convergence | plateau | overfitting_risk | diverging | stalled | converged | done
    previous: str
    narrative: str
    epoch: float | None = None
    step: float | None = None
    time: float = field(default_factory=_now)
    type: Literal["training_phase"] = "training_phase"


@dataclass(frozen=True)
class TrainingAdvice:
    """Early-termination advice (stop: gains unlikely; lower_lr: diverging) and whether it was acted on."""

    model: str
    action: str  # stop | lower_lr
    message: str
    probability: float | None = None  # of a gain worth waiting for in the rest of the run
    saved_seconds: float | None = None  # compute that stopping saves
    keep: str = ""  # the checkpoint to keep
    confirmed: bool = False  # strong enough to act on
    acted: bool = False  # the training stage stopped the run on it
    time: float = field(default_factory=_now)
    type: Literal["training_advice"] = "training_advice"


@dataclass(frozen=True)
class ResourceAlert:
    """Memory growth (leak suspicion), CUDA memory near full, a throughput drop; rate-limited by a cooldown."""

    kind: str  # memory_leak | cuda_memory | throughput
    message: str
    value: float | None = None
    model: str = ""
    time: float = field(default_factory=_now)
    type: Literal["resource_alert"] = "resource_alert"


@dataclass(frozen=True)
class DataReport:
    """The data report in a few lines (label, value), shown as a compact table."""

    stage: str
    title: str
    rows: tuple[tuple[str, str], ...]
    time: float = field(default_factory=_now)
    type: Literal["data_report"] = "data_report"


Event = Union[
    PipelineStart,
    PipelineEnd,
    StageStart,
    StageEnd,
    StageFailed,
    StageSkipped,
    StageRetry,
    LLMCall,
    LLMResponse,
    ToolCall,
    ToolResult,
    AgentLog,
    TrainingMetric,
    DataReport,
    TrainingPhase,
    TrainingAdvice,
    ResourceAlert,
]

EVENT_TYPES: tuple[type, ...] = Event.__args__  # type: ignore[attr-defined]


def event_to_dict(event: Event) -> dict[str, Any]:
    """Plain dict of an event, ``type`` first, for JSON lines and the store."""
    data = asdict(event)
    return {"type": data.pop("type"), **data}


class EventBus:
    """Thread-safe fan-out: synchronous sinks (the store) plus a queue drained by a renderer."""

    _CLOSED = object()

    def __init__(self) -> None:
        self._sinks: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self.queue: queue.Queue[Any] = queue.Queue()

    def subscribe(self, sink: Callable[[Event], None]) -> None:
        with self._lock:
            self._sinks.append(sink)

    def emit(self, event: Event) -> None:
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            sink(event)
        self.queue.put(event)

    def close(self) -> None:
        self.queue.put(self._CLOSED)

    def drain(self, handle: Callable[[Event], None]) -> None:
        """Feed queued events to ``handle`` until ``close()``; used by renderer threads."""
        while True:
            item = self.queue.get()
            if item is self._CLOSED:
                return
            handle(item)
