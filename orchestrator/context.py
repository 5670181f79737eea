"""JobContext: the whole state of one job, as plain data that round-trips through JSON.

Code reads it; an LLM never sees it wholesale — an agent picks what goes into its prompt.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class JobContext:
    """Everything a job knows; saved to the store after every stage attempt."""

    job_id: str
    raw_prompt: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    spec_path: str | None = None
    job_dir: str = ""
    conversation: list[dict[str, Any]] = field(default_factory=list)
    intake: dict[str, Any] = field(default_factory=dict)
    task_type: str | None = None
    intent: dict[str, Any] = field(default_factory=dict)
    data_report: dict[str, Any] = field(default_factory=dict)
    data_paths: dict[str, str] = field(default_factory=dict)
    preprocessing_report: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, Any] = field(default_factory=dict)
    training_script: str | None = None
    codegen: dict[str, Any] = field(default_factory=dict)  # template or LLM, and each gated attempt
    runtime: str = "local"
    runtime_job_id: str | None = None
    training_metrics: list[dict[str, Any]] = field(default_factory=list)
    training_logs: list[str] = field(default_factory=list)
    best_metric: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    deployed_urls: list[str] = field(default_factory=list)
    status: str = "pending"
    current_stage: str | None = None
    stage_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_feedback: dict[str, list[str]] = field(default_factory=dict)
    failure: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    schema_version: int = SCHEMA_VERSION
    compression: dict[str, Any] = field(default_factory=dict)  # export: compressed variants and their gate

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobContext:
        """Rebuild a context; unknown keys (from a newer version) are kept out, not fatal."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> JobContext:
        return cls.from_dict(json.loads(text))

    def snapshot(self) -> JobContext:
        """A deep copy handed to agents, so only the orchestrator ever changes the real context."""
        return JobContext.from_json(self.to_json())

    # -- merging -------------------------------------------------------------------------------
    def merge(self, result: dict[str, Any]) -> None:
        """Apply a stage's result; dict fields are updated key by key, others replaced."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(result) - known)
        if unknown:
            raise ValueError(f"stage result has keys that JobContext lacks: {', '.join(unknown)}")
        for key, value in result.items():
            current = getattr(self, key)
            if isinstance(current, dict) and isinstance(value, dict):
                current.update(value)
            else:
                setattr(self, key, value)

    def completed(self, stage: str) -> bool:
        return stage in self.stage_results
