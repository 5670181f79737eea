"""Training: run train.py in a child process, stream its metric lines live, collect its results."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import TrainingError
from tools.observer.live import DivergenceStop, LiveWatch
from tools.observer.notify import Webhook
from tools.observer.observer import LR_FACTOR
from tools.observer.states import THRESHOLDS

DEFAULT_TIMEOUT = 4 * 3600.0
CURVES_FILE = "training_curves.png"  # in the job folder: loss per epoch of every model and split
#: How a divergence error starts: the retry counts these to lower the learning rate deterministically.
DIVERGED = "Training diverged"
#: The templates' own NaN watchdogs say this when they stop; treated like the observer's verdict.
TEMPLATE_DIVERGED = re.compile(r"diverged|(loss|gradient norm) became (nan|-?inf)", re.I)


#: How a child says it ran out of memory (CUDA, the CPU allocator, Python).
OOM_MARKERS = ("out of memory", "outofmemoryerror", "memoryerror", "can't allocate memory", "cannot allocate memory")
MAX_OOM_RETRIES = 4


def out_of_memory(stderr_tail: list[str]) -> bool:
    text = "\n".join(stderr_tail[-20:]).lower()
    return any(marker in text for marker in OOM_MARKERS)


def lowered_lr(lr: Any, previous_errors: list[str]) -> tuple[float | None, bool]:
    """(the learning rate for this attempt, whether it was lowered): ×LR_FACTOR per earlier divergence."""
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        return None, False
    times = sum(1 for error in previous_errors if error.startswith(DIVERGED))
    return float(lr) * LR_FACTOR ** times, times > 0


def diverged_message(reason: str, lr: float | None) -> str:
    """The error the retry policy feeds back: why, and what the next attempt does about it."""
    fix = (f"the retry restarts from scratch with lr {lr * LR_FACTOR:g} (×{LR_FACTOR:g})" if lr
           else "the retry restarts from scratch (no learning rate in the config to lower)")
    return f"{DIVERGED} ({reason.rstrip('.')}); stopped the run, and {fix}."


def plot_curves(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Loss per epoch of every model and split as a PNG (tools/plot.py); None without two points."""
    from tools.plot import line_chart, loss_series

    series = loss_series(rows)
    if not any(len(points) >= 2 for points in series.values()):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    line_chart(series, path)
    return path


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
        previous = self.previous_errors(context)
        lr, lowered = lowered_lr(context.config.get("lr"), previous)
        if previous and previous[-1].startswith(DIVERGED):
            # the checkpoint holds the diverged weights: the lower rate starts from scratch
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.mkdir(parents=True)
            self.log(f"the last attempt diverged: restarting from scratch with lr {lr:g}" if lr else
                     "the last attempt diverged: restarting from scratch", "warning")
        cmd = [sys.executable, str(script), "--data-dir", context.data_paths["dir"], "--out-dir", str(out_dir)]
        if lowered and lr:
            cmd += ["--lr", f"{lr:g}"]
        resumed = (out_dir / "checkpoint.json").exists()
        if resumed:
            cmd.append("--resume")
            self.log("continuing from the checkpoint in run/out")
        budget = float(context.config.get("time_budget") or 0)
        timeout = budget * 1.5 + 120 if budget else DEFAULT_TIMEOUT
        watch = self._watch(context, out_dir)
        try:
            result, rebatched = self._train(context, cmd, script, timeout, watch)
        except DivergenceStop as stop:
            plot_curves(watch.rows, Path(context.job_dir) / CURVES_FILE)
            reason = stop.reason.removesuffix(": training diverged")
            raise TrainingError(diverged_message(f"{stop.model}: {reason[:1].lower()}{reason[1:]}", lr)) from None
        finally:
            watch.stop()
        if result.returncode != 0:
            last = next((l for l in reversed(result.stderr_tail) if l.strip()), f"exit status {result.returncode}")
            if TEMPLATE_DIVERGED.search(last):  # the script's own NaN watchdog: the same lower-lr retry
                raise TrainingError(diverged_message(last.strip().removeprefix("error: ")[:300], lr))
            raise TrainingError(f"train.py failed: {last.strip()[:400]}")
        watch.finish()
        metrics_file = out_dir / "metrics.json"
        if not metrics_file.exists():
            raise TrainingError("train.py finished without writing metrics.json; check its output in run/out.")
        final = json.loads(metrics_file.read_text())
        best = {"name": final["primary_metric"], "value": final["best_val"], "model": final["best_model"], "split": "val"}
        summary = f"kept {final['best_model']}: val {final['primary_metric']} {final['best_val']:.4f}" + (" (resumed)" if resumed else "")
        if lowered and lr:
            summary += f"; lr lowered to {lr:g} after divergence"
        if watch.stopped:
            summary += f"; auto-stopped {', '.join(watch.stopped)} (no gain likely)"
        search = {name: {k: v for k, v in (row.get("val") or row).items() if isinstance(v, (int, float))}
                  for name, row in (final.get("candidates") or {}).items() if isinstance(row, dict)}
        config: dict[str, Any] = dict(rebatched)
        if lowered and lr:
            config["lr"] = lr
        curves = plot_curves(context.training_metrics + watch.rows, Path(context.job_dir) / CURVES_FILE)
        from tools.runtimes import last_remote_id, runtime_name

        runtime = runtime_name(context)
        return {
            "runtime": runtime,
            **({"runtime_job_id": last_remote_id(context.job_id, self.stage)} if runtime != "local" else {}),
            **({"config": config} if config else {}),
            # every candidate tried and its validation scores: the search history behind the kept model
            **({"architecture": {"search": search, "kept": final["best_model"]}} if search else {}),
            "training_metrics": context.training_metrics + watch.rows,
            "training_logs": result.stdout_tail[-50:] + result.stderr_tail[-50:],
            "best_metric": best,
            "artifacts": {"run_dir": str(out_dir), "weights": str(out_dir / "model.safetensors"),
                          **({"training_curves": str(curves)} if curves else {})},
            "summary": summary,
        }

    def _watch(self, context: JobContext, out_dir: Path) -> LiveWatch:
        """The observer for this attempt, set up from the spec's ``monitor`` section."""
        monitor = context.spec.get("monitor") or {}
        thresholds = dataclasses.replace(THRESHOLDS, stall_seconds=float(monitor.get("stall_timeout") or 600.0),
                                         cooldown=float(monitor.get("cooldown") or 300.0))
        url = os.environ.get(monitor["webhook_env"], "") if monitor.get("webhook_env") else monitor.get("webhook")
        if url and url.startswith("⟨secret:"):  # the spec's URL, kept in the vault (mltrainer run put it there)
            from tools.vault import Vault

            url = Vault().get(context.job_id, url) or ""
        webhook = None
        if url:
            try:
                webhook = Webhook(url, cooldown=thresholds.cooldown)
            except ValueError:
                self.log("monitor webhook ignored: it is not an http(s) URL", "warning")
        patience = context.config.get("patience")
        return LiveWatch(self.emit, out_dir=out_dir, auto_stop=bool(monitor.get("auto_stop", True)),
                         patience=int(patience) if isinstance(patience, (int, float)) else None,
                         webhook=webhook, thresholds=thresholds, log=self.log)

    def _train(self, context: JobContext, cmd: list[str], script: Path, timeout: float,
               watch: LiveWatch) -> tuple[Any, dict[str, Any]]:
        """Launch; on out-of-memory halve the batch (same effective batch) and continue from the checkpoint."""
        watch.start()
        result = self._launch(context, cmd, cwd=script.parent, timeout=timeout, on_line=watch)
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
            result = self._launch(context, retry, cwd=script.parent, timeout=timeout, on_line=watch)
        if rebatched:
            rebatched.update(batch_size=batch, grad_accum_steps=accum)
        return result, rebatched

    # -- where the script runs ---------------------------------------------------------------
    def _launch(self, context: JobContext, cmd: list[str], *, cwd: Path, timeout: float,
                on_line: Callable[[str], None]) -> Any:
        """Run ``cmd`` on the job's runtime (local, kaggle or modal) and stream its output lines to
        ``on_line``; returns a ProcessResult. Remote runs leave their outputs in the same --out-dir.

        Each call inside one stage attempt is numbered, so every remote submission gets a
        deterministic name (job id + attempt + launch) that a resumed job reattaches to."""
        from tools.runtimes import launch_training

        attempt = int(context.attempts.get(self.stage, 1))
        counts = self.__dict__.setdefault("_launches", {})
        counts[attempt] = counts.get(attempt, 0) + 1
        return launch_training(context, cmd, cwd=cwd, timeout=timeout, on_line=on_line, launch=counts[attempt],
                               stage=self.stage, log=self.log)
