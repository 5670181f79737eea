"""Start-up and checkpoint figures: `python bench/startup.py`.

Prints the wall time of `mltrainer --help` (best and median of several runs) and the p50/p95 of
one checkpoint (context JSON + attempt row, one transaction) on a scratch store. Figures only.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def help_times(runs: int = 7) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mltrainer", "--help"], check=True, stdout=subprocess.DEVNULL, cwd=REPO)
        times.append(time.perf_counter() - started)
    return times


def checkpoint_times(n: int = 300) -> list[float]:
    from mltrainer.store import StageAttempt, Store
    from orchestrator.context import JobContext

    store = Store(Path(tempfile.mkdtemp()) / "bench.db")
    context = JobContext(job_id="bench", training_metrics=[{"epoch": i, "loss": 1 / (i + 1)} for i in range(200)])
    store.create_job("bench", context.to_json())
    times = []
    for i in range(n):
        started = time.perf_counter()
        store.checkpoint("bench", context_json=context.to_json(), status="running", task_type=None,
                         current_stage="training",
                         attempt=StageAttempt(job_id="bench", stage="training", attempt=i, status="done",
                                              started_at=0, ended_at=0, duration=0))
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    helps = help_times()
    print(f"mltrainer --help: best {min(helps):.3f}s, median {statistics.median(helps):.3f}s (goal < 0.3s)")
    cps = sorted(checkpoint_times())
    p50, p95 = cps[len(cps) // 2], cps[int(len(cps) * 0.95)]
    print(f"checkpoint: p50 {p50 * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms (goal p95 < 5 ms)")


if __name__ == "__main__":
    main()
