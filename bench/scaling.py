"""Scaling: time and peak memory of the dataset and preprocessing stages and of one training epoch
at 10k, 100k and 1M rows of a mixed table (numeric and categorical columns, some missing values).

The stages run exactly as a job runs them, each in a fresh process (bench/preprocess_scale.py's
child), so each peak resident memory is the stage's own; "above libraries" subtracts what every job
process has loaded before touching data (numpy, pandas, pyarrow) and is compared with the CSV's size.
The epoch is the generated tabular script (``--model mlp --epochs 1``, the size rules' MLP) on the
prepared arrays: its wall time from launch (start-up included) and its peak memory (VmHWM, sampled every 20 ms).

Goals: preprocessing time grows linearly in rows (the growth exponent between the two largest
sizes, log(t2/t1)/log(n2/n1), at most 1.15), and its memory above the libraries stays within a small
multiple (5×) of the CSV at the largest size (at small sizes the stage's fixed import cost dominates).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

from bench.common import HWM, REPO, Goal, Section, Table, cli_env, log, run_child
from bench.preprocess_scale import CHILD, make_csv

ROWS, QUICK_ROWS = (10_000, 100_000, 1_000_000), (2_000, 20_000, 60_000)
COLUMNS = 20  # including the target; 1M rows make a ~150 MB CSV
MAX_EXPONENT, MAX_MEMORY_MULTIPLE = 1.15, 5.0

#: Runs a command, sampling its VmHWM (peak resident memory) every 20 ms, and prints the last reading.
PEAK = HWM + r"""
import json, subprocess, sys, time
proc = subprocess.Popen(sys.argv[1:])
peak = 0
while proc.poll() is None:
    peak = max(peak, hwm(proc.pid))
    time.sleep(0.02)
print(json.dumps({"code": proc.returncode, "peak": peak}))
"""


def stage(name: str, root: Path, csv: Path) -> dict[str, float]:
    code = CHILD.format(repo=str(REPO), state=str(root / "state.json"), stage=name, job_dir=str(root / "job"),
                        csv=str(csv))
    ran = run_child([sys.executable, "-c", code], cli_env(root / "home"), timeout=3600)
    figures = json.loads(ran.stdout.strip().splitlines()[-1])
    return {"seconds": figures["seconds"], "process_s": ran.seconds, "peak": figures["peak_bytes"],
            "baseline": figures["baseline_bytes"]}


def epoch(root: Path) -> dict[str, float]:
    from agents.codegen import render_training_script
    from tools.models.tabular import TABULAR

    data_dir = root / "job" / "data"
    meta = json.loads((data_dir / "meta.json").read_text())
    config = TABULAR.config("tabular_classification", meta, {"model": "mlp", "epochs": 1}, None)
    script = root / "train.py"
    script.write_text(render_training_script("tabular", TABULAR.template_values("tabular_classification", config, {},
                                                                                 "bench")))
    ran = run_child([sys.executable, "-c", PEAK, sys.executable, str(script), "--data-dir", str(data_dir),
                     "--out-dir", str(root / "out"), "--device", "cpu"], cli_env(root / "home"), timeout=3600)
    figures = json.loads(ran.stdout.strip().splitlines()[-1])
    if figures["code"] != 0:
        raise RuntimeError(f"the training script failed on {data_dir}")
    rates = [json.loads(line[7:]).get("samples_per_sec") for line in ran.stdout.splitlines() if line.startswith("METRIC ")]
    return {"seconds": ran.seconds, "peak": figures["peak"], "rate": next((r for r in rates if r), 0.0),
            "train_rows": meta["splits"]["train"]}


def measure(rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{rows}-") as tmp:
        root = Path(tmp)
        csv = root / "table.csv"
        started = time.perf_counter()
        make_csv(csv, rows, COLUMNS)
        out: dict[str, float] = {"rows": rows, "csv_bytes": csv.stat().st_size, "write_s": time.perf_counter() - started}
        for name in ("dataset", "preprocessing"):
            log(f"scaling: {rows:,} rows / {name}")
            for key, value in stage(name, root, csv).items():
                out[f"{name}_{key}"] = value
        log(f"scaling: {rows:,} rows / one epoch")
        for key, value in epoch(root).items():
            out[f"epoch_{key}"] = value
    return out


def exponent(a: dict[str, float], b: dict[str, float], key: str) -> float:
    return math.log(max(b[key], 1e-9) / max(a[key], 1e-9)) / math.log(b["rows"] / a["rows"])


def run(quick: bool = False) -> Section:
    results = [measure(n) for n in (QUICK_ROWS if quick else ROWS)]
    mib = 2**20
    rows = []
    for r in results:
        above = r["preprocessing_peak"] - r["preprocessing_baseline"]
        rows.append([f"{r['rows']:,}", f"{r['csv_bytes'] / mib:,.1f}",
                     f"{r['dataset_seconds']:.2f}", f"{r['dataset_peak'] / mib:,.0f}",
                     f"{r['preprocessing_seconds']:.2f}", f"{r['preprocessing_peak'] / mib:,.0f}",
                     f"{above / r['csv_bytes']:.1f}×",
                     f"{r['epoch_seconds']:.1f}", f"{r['epoch_peak'] / mib:,.0f}", f"{r['epoch_rate']:,.0f}"])
    a, b = results[-2], results[-1]
    growth = {name: exponent(a, b, f"{name}_seconds") for name in ("dataset", "preprocessing")}
    growth["epoch"] = exponent(a, b, "epoch_seconds")
    # judged at the largest size: at small sizes the fixed cost of the stage's own imports dominates the ratio
    multiple = (b["preprocessing_peak"] - b["preprocessing_baseline"]) / b["csv_bytes"]
    dataset_multiple = (b["dataset_peak"] - b["dataset_baseline"]) / b["csv_bytes"]
    marginal = (b["preprocessing_peak"] - a["preprocessing_peak"]) / (b["csv_bytes"] - a["csv_bytes"])
    goals = [
        Goal(f"preprocessing time linear in rows (growth exponent {a['rows']:,}→{b['rows']:,} rows ≤ {MAX_EXPONENT})",
             f"exponent {growth['preprocessing']:.2f} (dataset stage {growth['dataset']:.2f}, one epoch {growth['epoch']:.2f})",
             growth["preprocessing"] <= MAX_EXPONENT,
             cause="a step of the preprocessing stage grows faster than the rows (a sort, a per-row Python loop "
                   "or repeated copies); profile tools/prep/tabular.py at the larger size."),
        Goal(f"preprocessing memory within {MAX_MEMORY_MULTIPLE:g}× the CSV (above the loaded libraries, at "
             f"{b['rows']:,} rows)",
             f"{multiple:.1f}× (each extra CSV byte costs {marginal:.1f} bytes); dataset stage {dataset_multiple:.1f}×",
             multiple <= MAX_MEMORY_MULTIPLE,
             cause="the stage holds several full copies of the table at once (raw frame, encoded frame, arrays)."),
    ]
    intro = (f"A {COLUMNS}-column table ({COLUMNS - COLUMNS // 5 - 1} numeric, {COLUMNS // 5} categorical "
             "features, a binary target). " + __doc__.split("\n\n")[1].replace("\n", " "))
    table = Table("Time (s) and peak memory (MiB) per stage",
                  ["rows", "CSV MiB", "dataset s", "dataset MiB", "preprocessing s", "preprocessing MiB",
                   "prep. above libs / CSV", "one epoch s", "epoch MiB", "first epoch samples/s"], rows,
                  note=f"Growth exponents between {a['rows']:,} and {b['rows']:,} rows (1.0 = linear): "
                       + ", ".join(f"{k} {v:.2f}" for k, v in growth.items()) + ".")
    return Section("scaling", "Scaling with rows", intro, [table], goals, extra={"results": results})


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv).to_json(), indent=2, default=str))
