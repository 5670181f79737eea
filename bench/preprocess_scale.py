"""Dataset + preprocessing cost on a wide table: `python bench/preprocess_scale.py [--rows 100000] [--cols 50]`.

Writes a CSV (numeric and categorical columns, some missing values), then runs the dataset and
preprocessing stages exactly as a job does, each in a fresh child process so the peak resident
memory (VmHWM) is the stage's own. Prints wall time per stage and peak memory, also as a multiple of
the CSV size above the libraries every job process loads (numpy, pandas, pyarrow). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from orchestrator.context import JobContext
from agents.dataset import DatasetAgent
from agents.preprocessing import PreprocessingAgent
state = json.loads(open({state!r}).read()) if {stage!r} == "preprocessing" else None
context = JobContext.from_dict(state) if state else JobContext(
    job_id="bench", job_dir={job_dir!r}, spec={{"data": {{"source": {csv!r}, "target": "target"}}}},
    task_type="tabular_classification", intent={{"target": "target"}})
import pandas, numpy, pyarrow  # the baseline: what any job process has loaded before touching data
baseline = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
agent = DatasetAgent() if {stage!r} == "dataset" else PreprocessingAgent()
started = time.perf_counter()
result = agent.run(context)
elapsed = time.perf_counter() - started
result.pop("summary", None)
context.merge(result)
open({state!r}, "w").write(context.to_json())
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (possibly large) parent that forked us
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"seconds": elapsed, "peak_bytes": peak, "baseline_bytes": baseline}}))
"""


def make_csv(path: Path, rows: int, cols: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n_cat = cols // 5
    data = {f"num_{i}": rng.normal(size=rows).round(4) for i in range(cols - n_cat - 1)}
    for i in range(n_cat):
        data[f"cat_{i}"] = rng.choice([f"v{j}" for j in range(4 + 6 * i)], rows)
    frame = pd.DataFrame(data)
    frame.loc[rng.random(rows) < 0.02, "num_0"] = np.nan
    logit = frame["num_0"].fillna(0) + 0.5 * frame["num_1"] - 0.3 * (frame["cat_0"] == "v1")
    frame["target"] = np.where(logit + rng.normal(0, 1, rows) > 0, "yes", "no")
    frame.to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cols", type=int, default=50, help="columns including the target")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        csv = root / "wide.csv"
        started = time.perf_counter()
        make_csv(csv, args.rows, args.cols)
        size = csv.stat().st_size
        print(f"table: {args.rows:,} rows × {args.cols} columns, {size / 1e6:.1f} MB CSV "
              f"(written in {time.perf_counter() - started:.1f}s)", flush=True)
        env = {**os.environ, "MLTRAINER_HOME": str(root / "home")}
        for stage in ("dataset", "preprocessing"):
            code = CHILD.format(repo=str(REPO), state=str(root / "state.json"), stage=stage,
                                job_dir=str(root / "job"), csv=str(csv))
            wall = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - wall
            if out.returncode != 0:
                sys.exit(f"{stage} failed:\n{out.stderr[-2000:]}")
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            peak, base = figures["peak_bytes"], figures["baseline_bytes"]
            print(f"{stage:<14} stage {figures['seconds']:6.2f}s  (process {wall:5.2f}s incl. imports)  "
                  f"peak RSS {peak / 1e6:6.1f} MB; above the {base / 1e6:.0f} MB of loaded libraries: "
                  f"{(peak - base) / 1e6:6.1f} MB = {(peak - base) / size:4.1f}× the CSV")


if __name__ == "__main__":
    main()
