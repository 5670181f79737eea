"""The renderer draws what the events say; --help stays light; generated code gets no secrets."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from mltrainer.renderer import JsonRenderer, LiveRenderer
from orchestrator.events import (
    EVENT_TYPES,
    DataReport,
    PipelineEnd,
    PipelineStart,
    StageEnd,
    StageFailed,
    StageRetry,
    StageSkipped,
    StageStart,
    TrainingMetric,
    event_to_dict,
)
from tests.conftest import REPO

EVENTS = [
    PipelineStart(job_id="j", stages=("intent",)),
    StageStart(stage="dataset", attempt=1),
    DataReport(stage="dataset", title="Data: churn.csv", rows=(("size", "300 rows × 11 columns"), ("classes", "no 74%, yes 26%"))),
    StageEnd(stage="dataset", attempt=1, duration=4.8, summary="300 rows"),
    StageStart(stage="training", attempt=1),
    TrainingMetric(model="mlp", epoch=3, total_epochs=10, split="val", metrics={"loss": 0.5, "accuracy": 0.8}, eta_seconds=7.0),
    StageFailed(stage="training", attempt=1, error="train.py failed: CUDA OOM", error_type="TrainingError", final=False),
    StageRetry(stage="training", next_attempt=2, delay=5.0, error="train.py failed: CUDA OOM"),
    StageSkipped(stage="deploy", reason="no deploy target in the spec"),
    PipelineEnd(job_id="j", status="failed", duration=12.0, reason="boom"),
]


def test_live_renderer_lines() -> None:
    buffer = io.StringIO()
    renderer = LiveRenderer(Console(file=buffer, width=120, force_terminal=False, color_system=None))
    with renderer:
        for event in EVENTS:
            renderer.handle(event)
    text = buffer.getvalue()
    assert ">> dataset       ✓ 4.8s  300 rows" in text
    assert "Data: churn.csv" in text and "classes  no 74%, yes 26%" in text  # the compact report table
    assert ">> training      ✗ attempt 1 failed: train.py failed: CUDA OOM" in text
    assert "retrying training (attempt 2) in 5.0s" in text
    assert ">> deploy        – skipped (no deploy target in the spec)" in text
    assert "Job j failed: boom" in text and "mltrainer resume j" in text


def test_json_renderer_is_json_lines_for_every_event_type() -> None:
    buffer = io.StringIO()
    renderer = JsonRenderer(buffer)
    for event in EVENTS:
        renderer.handle(event)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [line["type"] for line in lines] == [e.type for e in EVENTS]
    assert lines[5]["metrics"] == {"loss": 0.5, "accuracy": 0.8}
    assert lines[2]["rows"][0] == ["size", "300 rows × 11 columns"]


def test_every_event_type_is_frozen_and_tagged() -> None:
    tags = set()
    for cls in EVENT_TYPES:
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        tags.add(cls.__dataclass_fields__["type"].default)  # type: ignore[attr-defined]
    assert len(tags) == len(EVENT_TYPES)  # one tag per class, no two classes sharing one
    import dataclasses

    import orchestrator.events as events_module

    defined = {obj for obj in vars(events_module).values()
               if isinstance(obj, type) and dataclasses.is_dataclass(obj) and "type" in obj.__dataclass_fields__}
    assert defined == set(EVENT_TYPES), "every event class must be in the Event union"
    assert event_to_dict(EVENTS[1])["type"] == "stage_start"


def test_only_the_renderer_imports_rich() -> None:
    for path in [*REPO.glob("mltrainer/**/*.py"), *REPO.glob("orchestrator/*.py"), *REPO.glob("agents/*.py"), *REPO.glob("tools/**/*.py")]:
        if path.name == "renderer.py":
            continue
        source = path.read_text()
        assert "import rich" not in source and "from rich" not in source, path
        assert "prompt_toolkit" not in source, path


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mltrainer.app import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'pandas', 'numpy', 'litellm', 'datasets', 'sqlmodel', 'alembic', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == ""


def test_generated_code_runs_with_a_scrubbed_environment(tmp_path: Path, monkeypatch) -> None:
    from tools.process import run_streaming

    monkeypatch.setenv("HF_TOKEN", "hf_plantedsecretvalue1234567890")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-secret")
    lines: list[str] = []
    result = run_streaming([sys.executable, "-c", "import os; print(sorted(os.environ))"], cwd=tmp_path,
                           timeout=60, on_line=lines.append)
    assert result.returncode == 0
    assert "HF_TOKEN" not in lines[0] and "OPENAI_API_KEY" not in lines[0]
    assert "PATH" in lines[0]


def test_generated_code_has_a_memory_limit(tmp_path: Path) -> None:
    from tools.process import memory_limit, run_streaming

    lines: list[str] = []
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_DATA)[0])"
    assert run_streaming([sys.executable, "-c", code], cwd=tmp_path, timeout=60, on_line=lines.append).returncode == 0
    limit = memory_limit()
    assert limit is not None and int(lines[0]) == limit  # a runaway script fails, not the machine
    lines.clear()
    grab = f"x = bytearray({limit} + 2**30)"  # more than allowed: MemoryError in the child only
    result = run_streaming([sys.executable, "-c", grab], cwd=tmp_path, timeout=60, on_line=lines.append)
    assert result.returncode != 0 and "MemoryError" in "\n".join(result.stderr_tail)


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    import os

    import pytest

    from orchestrator.errors import StageTimeout
    from tools.process import run_streaming

    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(StageTimeout):
        run_streaming([sys.executable, "-c", script], cwd=tmp_path, timeout=2, on_line=lambda line: None)
    grandchild = int(pid_file.read_text())

    def alive() -> bool:
        try:
            return Path(f"/proc/{grandchild}/stat").read_text().split()[2] != "Z"  # a zombie is dead
        except OSError:
            return False

    import time

    deadline = time.monotonic() + 5  # SIGKILL is delivered asynchronously
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive():
        os.kill(grandchild, 9)
        raise AssertionError("a timeout must leave no orphans")


def test_training_progress_shows_metrics_and_eta() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=140, force_terminal=True, color_system=None)
    renderer = LiveRenderer(console)
    renderer.handle(StageStart(stage="training", attempt=1))
    renderer.handle(TrainingMetric(model="mlp", epoch=3, total_epochs=10, split="val",
                                   metrics={"loss": 0.5, "accuracy": 0.8}, eta_seconds=75.0))
    console.print(renderer.progress)
    text = buffer.getvalue()
    assert "mlp" in text and "3/10" in text and "accuracy 0.8000" in text and "ETA 1m15s" in text
