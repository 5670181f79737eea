from dataclasses import MISSING, fields

from orchestrator.context import JobContext

# A non-default value for every field; a new field without an entry here fails the test below.
SAMPLE = {
    "job_id": "job-1",
    "raw_prompt": "predict whether ✓ survives",
    "spec": {"task": "x", "data": {"source": "/d.csv", "target": "y"}, "hyperparameters": {"lr": 0.01}},
    "spec_path": "/tmp/spec.yaml",
    "job_dir": "/tmp/jobs/job-1",
    "conversation": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    "intake": {"task": "x", "credentials": {"hf_token": "⟨secret:hf_token:1⟩"}, "done": True},
    "task_type": "tabular_classification",
    "intent": {"target": "y", "family": "tabular"},
    "data_report": {"rows": 10, "column_info": [{"name": "a", "missing": 0}]},
    "data_paths": {"source": "/d.csv", "dir": "/tmp/data"},
    "preprocessing_report": {"splits": {"train": 7, "val": 2, "test": 1}},
    "config": {"lr": 0.001, "epochs": 3, "locked": ["lr"]},
    "architecture": {"candidates": [{"name": "mlp", "parameters": 1234}]},
    "training_script": "/tmp/run/train.py",
    "codegen": {"origin": "llm", "attempts": [{"attempt": 1, "error": "does not parse"}, {"attempt": 2, "error": None}]},
    "runtime": "kaggle",
    "runtime_job_id": "kernel-42",
    "training_metrics": [{"model": "mlp", "epoch": 1, "loss": 0.5}],
    "training_logs": ["METRIC {}", "done"],
    "best_metric": {"name": "accuracy", "value": 0.9},
    "test_metrics": {"accuracy": 0.88, "macro_f1": 0.87},
    "artifacts": {"export_dir": "/tmp/export"},
    "deployed_urls": ["file:///tmp/model"],
    "status": "failed",
    "current_stage": "training",
    "stage_results": {"intent": {"status": "done", "duration": 0.1}},
    "attempts": {"intent": 1, "training": 2},
    "errors": [{"stage": "training", "attempt": 1, "message": "boom"}],
    "error_feedback": {"training": ["boom"]},
    "failure": {"stage": "training", "error": "boom"},
    "created_at": 1.5,
    "updated_at": 2.5,
    "schema_version": 99,
    "compression": {"kept": ["int8"], "retention": 0.95},
}


def _default(f):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def test_round_trip_covers_every_field() -> None:
    names = {f.name for f in fields(JobContext)}
    assert names == set(SAMPLE), f"SAMPLE must cover every JobContext field: {names ^ set(SAMPLE)}"
    for f in fields(JobContext):
        assert SAMPLE[f.name] != _default(f), f"{f.name} sample equals its default, so the test proves nothing"
    context = JobContext(**SAMPLE)
    again = JobContext.from_json(context.to_json())
    assert again == context
    for f in fields(JobContext):
        assert getattr(again, f.name) == SAMPLE[f.name]


def test_unknown_keys_from_a_newer_version_are_ignored() -> None:
    data = JobContext(job_id="a").to_dict() | {"field_from_the_future": 1}
    assert JobContext.from_dict(data) == JobContext(job_id="a")


def test_merge_updates_dicts_and_replaces_others() -> None:
    context = JobContext(job_id="a", artifacts={"one": "1"}, task_type="x")
    context.merge({"artifacts": {"two": "2"}, "task_type": "y"})
    assert context.artifacts == {"one": "1", "two": "2"}
    assert context.task_type == "y"


def test_merge_rejects_keys_the_context_lacks() -> None:
    context = JobContext(job_id="a")
    try:
        context.merge({"no_such_field": 1})
    except ValueError as err:
        assert "no_such_field" in str(err)
    else:
        raise AssertionError("merge accepted an unknown key")


def test_snapshot_is_independent() -> None:
    context = JobContext(job_id="a", artifacts={"k": "v"})
    copy = context.snapshot()
    copy.artifacts["k"] = "changed"
    assert context.artifacts == {"k": "v"}
