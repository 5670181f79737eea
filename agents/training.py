"""Training: run train.py in a child process, stream its metric lines live, collect its results."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import TrainingError
from orchestrator.events import TrainingMetric

DEFAULT_TIMEOUT = 4 * 3600.0
MAX_METRIC_ROWS = 5000


#: How a child says it ran out of memory (CUDA, the CPU allocator, Python).
OOM_MARKERS = ("out of memory", "outofmemoryerror", "memoryerror", "can't allocate memory", "cannot allocate memory")
MAX_OOM_RETRIES = 4


def out_of_memory(stderr_tail: list[str]) -> bool:
    text = "\n".join(stderr_tail[-20:]).lower()
    return any(marker in text for marker in OOM_MARKERS)


def parse_metric_line(line: str) -> dict[str, Any] | None:
    """``METRIC {json}`` → dict; anything else (or broken JSON) → None."""
    if not line.startswith("METRIC "):
        return None
    try:
        data = json.loads(line[len("METRIC "):])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


class TrainingAgent(BaseAgent):
    stage = "training"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        script = Path(context.training_script or "")
        if not script.exists():
            raise TrainingError(f"The training script {script} is missing; run the codegen stage again.")
        out_dir = Path(context.job_dir) / "run" / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(script), "--data-dir", context.data_paths["dir"], "--out-dir", str(out_dir)]
        resumed = (out_dir / "checkpoint.json").exists()
        if resumed:
            cmd.append("--resume")
            self.log("continuing from the checkpoint in run/out")
        budget = float(context.config.get("time_budget") or 0)
        timeout = budget * 1.5 + 120 if budget else DEFAULT_TIMEOUT

        metrics: list[dict[str, Any]] = []
        model_started: dict[str, tuple[float, int]] = {}

        def on_line(line: str) -> None:
            data = parse_metric_line(line)
            if data is None:
                return
            name = str(data.get("model", "model"))
            epoch = int(data.get("epoch", 0))
            total = int(data.get("total_epochs", 0) or 0)
            now = time.monotonic()
            start_time, start_epoch = model_started.setdefault(name, (now, epoch))
            eta = None
            if total and epoch > start_epoch:
                eta = (now - start_time) / (epoch - start_epoch) * max(0, total - epoch)
            values = {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and k not in ("epoch", "total_epochs")}
            if len(metrics) < MAX_METRIC_ROWS:
                metrics.append({"model": name, "epoch": epoch, "split": data.get("split", "val"), **values})
            self.emit(TrainingMetric(model=name, epoch=epoch, total_epochs=total, split=str(data.get("split", "val")),
                                     metrics=values, eta_seconds=eta))

        result = self._launch(context, cmd, cwd=script.parent, timeout=timeout, on_line=on_line)
        batch, accum = int(context.config.get("batch_size") or 0), int(context.config.get("grad_accum_steps") or 0)
        rebatched: dict[str, Any] = {}
        while (result.returncode != 0 and out_of_memory(result.stderr_tail) and accum and batch > 1
               and len(rebatched.get("oom_retries", [])) < MAX_OOM_RETRIES):
            # Same effective batch (batch × accumulation), so the optimisation is unchanged; the
            # checkpoint carries the progress, so nothing already trained is lost.
            batch, accum = batch // 2, accum * 2
            rebatched.setdefault("oom_retries", []).append({"batch_size": batch, "grad_accum_steps": accum})
            self.log(f"out of memory: retrying with batch {batch} × {accum} accumulation steps (same effective "
                     "batch), from the last checkpoint", "warning")
            retry = [c for c in cmd if c != "--resume"] + ["--resume", "--rebatch", "--batch-size", str(batch),
                                                           "--grad-accum-steps", str(accum)]
            result = self._launch(context, retry, cwd=script.parent, timeout=timeout, on_line=on_line)
        if rebatched:
            rebatched.update(batch_size=batch, grad_accum_steps=accum)
        if result.returncode != 0:
            last = next((l for l in reversed(result.stderr_tail) if l.strip()), f"exit status {result.returncode}")
            raise TrainingError(f"train.py failed: {last.strip()[:400]}")
        metrics_file = out_dir / "metrics.json"
        if not metrics_file.exists():
            raise TrainingError("train.py finished without writing metrics.json; check its output in run/out.")
        final = json.loads(metrics_file.read_text())
        best = {"name": final["primary_metric"], "value": final["best_val"], "model": final["best_model"], "split": "val"}
        summary = f"kept {final['best_model']}: val {final['primary_metric']} {final['best_val']:.4f}" + (" (resumed)" if resumed else "")
        search = {name: {k: v for k, v in (row.get("val") or row).items() if isinstance(v, (int, float))}
                  for name, row in (final.get("candidates") or {}).items() if isinstance(row, dict)}
        return {
            **({"config": rebatched} if rebatched else {}),
            # every candidate tried and its validation scores: the search history behind the kept model
            **({"architecture": {"search": search, "kept": final["best_model"]}} if search else {}),
            "training_metrics": context.training_metrics + metrics,
            "training_logs": result.stdout_tail[-50:] + result.stderr_tail[-50:],
            "best_metric": best,
            "artifacts": {"run_dir": str(out_dir), "weights": str(out_dir / "model.safetensors")},
            "summary": summary,
        }

    # -- where the script runs ---------------------------------------------------------------
    def _launch(self, context: JobContext, cmd: list[str], *, cwd: Path, timeout: float,
                on_line: Callable[[str], None]) -> Any:
        """Run ``cmd`` and stream its output lines to ``on_line``; returns a ProcessResult."""
        from tools.process import run_streaming

        return run_streaming(cmd, cwd=cwd, timeout=timeout, on_line=on_line)
