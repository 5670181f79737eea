"""Overhead: what mltrainer itself costs around the training it runs.

* **Stages** — ``mltrainer run examples/churn.yaml`` (3,000 rows, offline, no LLM) with each stage's
  wall time from the store (``mltrainer show --json``). The training stage is split into the training
  itself (the generated script's own fit loops, from its metrics.json) and the rest (starting Python and
  torch, loading arrays, scoring, writing the model); "our code" is the whole command's wall time minus
  the fit loops: process start-up, every other stage, the store and the events included.
* **Start-up** — ``mltrainer --help``, median of several runs.
* **Checkpoint** — ``Store.checkpoint`` (context JSON + attempt row, one transaction) in-process on a
  scratch store, with the context of the finished churn job: p50 and p95.
* **Resume** — a job paused by ``--until preprocessing``; from launching ``mltrainer resume`` to its
  first ``stage_start`` event (the config stage, read from ``--json`` as it is printed).
* **Memory** — peak resident memory of the orchestrator process (``mltrainer run`` itself) and of the
  largest process it started (the training script), read by the process as it exits.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Goal, Section, Table, cli_env, fmt, log, measured_cli, mltrainer, percentile, show

SPEC = REPO / "examples" / "churn.yaml"
GOALS = {"overhead_s": 5.0, "help_s": 0.3, "checkpoint_p95_ms": 5.0}


def stage_breakdown(home: Path) -> dict[str, Any]:
    job = "overhead"
    ran = measured_cli(["run", str(SPEC), "--job-id", job, "--json"], home)
    detail = show(job, home)
    metrics_file = home / "jobs" / job / "run" / "out" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    fit = sum(float(c.get("time_s", 0.0)) for c in (metrics.get("candidates") or {}).values())
    stages = [(s["stage"], float(s["duration"])) for s in detail["stages"]]
    pipeline = sum(d for _, d in stages)
    return {"wall": ran.seconds, "fit": fit, "stages": stages, "pipeline": pipeline, "script_s": metrics.get("time_s"),
            "self_peak": ran.self_peak_bytes, "children_peak": ran.children_peak_bytes, "job": job,
            "kept": metrics.get("best_model"), "rows": metrics.get("n_train")}


def help_times(home: Path, runs: int) -> list[float]:
    mltrainer(["--help"], home)  # warm the file cache once, as a user's second run would be
    return [mltrainer(["--help"], home).seconds for _ in range(runs)]


def checkpoint_times(context_json: str, runs: int) -> list[float]:
    from mltrainer.store import StageAttempt, Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        store.create_job("bench", context_json)
        times = []
        for i in range(runs):
            attempt = StageAttempt(job_id="bench", stage="training", attempt=i + 1, status="done", started_at=time.time(),
                                   ended_at=time.time(), duration=0.0)
            started = time.perf_counter()
            store.checkpoint("bench", context_json=context_json, status="running", task_type="tabular_classification",
                             current_stage="training", attempt=attempt)
            times.append(time.perf_counter() - started)
        store.close()
    return times


def resume_latency(home: Path, name: str) -> float:
    """Seconds from launching ``mltrainer resume`` to its first stage_start line on stdout."""
    mltrainer(["run", str(SPEC), "--job-id", name, "--until", "preprocessing", "--json"], home)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mltrainer", "resume", name, "--until", "config", "--json"],
                            env=cli_env(home), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if first is None and '"stage_start"' in line and json.loads(line).get("type") == "stage_start":
            first = time.perf_counter() - started
    proc.wait(timeout=600)
    if first is None:
        raise RuntimeError(f"mltrainer resume {name} printed no stage_start event (exit {proc.returncode})")
    return first


#: What each part of "our code" is mostly made of (measured while building this bench).
WHY = {
    "architecture": "the pre-flight plan imports torch in the orchestrator for its matmul speed probe "
                    "(tools/preflight.py), even for tabular jobs",
    "training": "the training script's own Python + torch start-up, data loading and final scoring",
    "outside": "the CLI process's start-up and imports, the store and the events",
    "dataset": "reading and profiling the table",
    "export": "scoring the test split through the export and its TorchScript/ONNX copies (torch and onnx imported "
              "in the orchestrator)",
}


def overhead_cause(job: dict[str, Any], outside: float) -> str:
    """The three largest parts of our code, with what they are."""
    parts = [(stage, seconds - (job["fit"] if stage == "training" else 0.0)) for stage, seconds in job["stages"]]
    parts.append(("outside", outside))
    top = sorted(parts, key=lambda p: -p[1])[:3]
    return "largest parts of our code: " + "; ".join(
        f"{name} {seconds:.2f} s" + (f" ({WHY[name]})" if name in WHY else "") for name, seconds in top) + "."


def run(quick: bool = False) -> Section:
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        home = Path(tmp) / "home"
        log("overhead: a tabular job, stage by stage")
        job = stage_breakdown(home)
        log("overhead: --help")
        helps = help_times(home, 5 if quick else 15)
        log("overhead: checkpoints")
        from mltrainer.store import Store

        store = Store(home / "mltrainer.db")
        context_json = store.require_job(job["job"]).context_json
        store.close()
        checkpoints = checkpoint_times(context_json, 100 if quick else 500)
        log("overhead: resume")
        resumes = [resume_latency(home, f"paused-{i}") for i in range(1 if quick else 3)]

    ours = job["wall"] - job["fit"]
    stage_rows = []
    for stage, seconds in job["stages"]:
        training_part = job["fit"] if stage == "training" else 0.0
        stage_rows.append([stage, fmt(seconds, 2), fmt(seconds - training_part, 2), fmt(training_part, 2)])
    outside = job["wall"] - job["pipeline"]
    stage_rows.append(["(process start-up, store, events: outside the stages)", fmt(outside, 2), fmt(outside, 2), fmt(0.0, 2)])
    stage_rows.append(["**whole `mltrainer run`**", fmt(job["wall"], 2), fmt(ours, 2), fmt(job["fit"], 2)])
    help_median = statistics.median(helps)
    p50, p95 = percentile(checkpoints, 50) * 1000, percentile(checkpoints, 95) * 1000
    resume = statistics.median(resumes)
    size_kb = len(context_json.encode()) / 1024
    figures = [
        ["`mltrainer --help` (median of %d)" % len(helps), f"{help_median:.3f} s", f"best {min(helps):.3f} s"],
        ["checkpoint p50 / p95 (%d saves, %.0f KiB context)" % (len(checkpoints), size_kb), f"{p50:.2f} / {p95:.2f} ms",
         f"max {max(checkpoints) * 1000:.2f} ms"],
        ["`mltrainer resume` → first stage_start (median of %d)" % len(resumes), f"{resume:.2f} s",
         ", ".join(f"{r:.2f}" for r in resumes) + " s"],
        ["peak memory: orchestrator process", f"{job['self_peak'] / 2**20:.0f} MiB", "`mltrainer run` itself (VmHWM)"],
        ["peak memory: training script", f"{job['children_peak'] / 2**20:.0f} MiB", "the largest process it started (VmHWM, sampled every 50 ms)"],
    ]
    goals = [
        Goal(f"pipeline overhead outside training < {GOALS['overhead_s']:g} s for a small table", f"{ours:.2f} s", ours < GOALS["overhead_s"],
             cause=overhead_cause(job, outside)),
        Goal(f"`mltrainer --help` < {GOALS['help_s']:g} s", f"median {help_median:.3f} s", help_median < GOALS["help_s"],
             cause="Python start-up plus the CLI's imports; a shared or busy machine adds to both."),
        Goal(f"checkpoint p95 < {GOALS['checkpoint_p95_ms']:g} ms", f"p95 {p95:.2f} ms", p95 < GOALS["checkpoint_p95_ms"],
             cause="one SQLite transaction (WAL journal) serialising the whole context each time; a large context or a busy disk dominates."),
    ]
    intro = (f"A small offline tabular job (`examples/churn.yaml`: {job['rows']} training rows after the split; kept "
             f"{job['kept']}), start-up, checkpoints, resume and memory. \"Training\" is the generated script's fit "
             "loops only; everything else — both processes' start-up, data stages, architecture, scoring, export, "
             "the store — is \"our code\".")
    tables = [Table("Stages of one job (seconds)", ["stage", "wall", "our code", "training"], stage_rows,
                    note=f"The training script ran {fmt(job['script_s'], 2)} s from its first line to its last "
                         "(after its own imports)."),
              Table("Start-up, checkpoints, resume, memory", ["figure", "value", "detail"], figures)]
    return Section("overhead", "Overhead of the pipeline", intro, tables, goals,
                   extra={"help": helps, "checkpoint_ms": [c * 1000 for c in checkpoints], "resume": resumes,
                          "job": job})


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv).to_json(), indent=2, default=str))
