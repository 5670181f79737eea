"""
ETA coverage of the training observer on our own tiny training runs.

Renders the tabular template (GBDT and MLP candidates, with and without an early stop in reach),
runs each in a child process and feeds its METRIC lines to tools/observer as they arrive — as
the training stage does. At every reading but the last of each model, the observer's ETA interval
is checked against the time the model's last reading actually came. Prints, per run, the checks
and how many intervals held the true finish, then the overall coverage (goal: ≥ 80%).
Figures only; no asserts.

    python bench/eta_coverage.py [--rows 20000] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import jinja2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.observer import Observer  # noqa: E402
from tools.observer.stream import parse_metric_json, readings  # noqa: E402
from tools.process import run_streaming  # noqa: E402

BASE = {"task": "classification", "model": "mlp", "epochs": 20, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4,
        "hidden": 128, "layers": 2, "dropout": 0.1, "patience": 50, "seed": 0, "gbdt_rounds": 60, "gbdt_lr": 0.1,
        "gbdt_max_leaves": 15, "gbdt_min_leaf": 5, "gbdt_l2": 1.0, "time_budget": 0.0, "job_id": "eta-bench"}
#: (name, template overrides): full schedules, an early stop in reach, a GBDT then an MLP.
RUNS = [
    ("mlp, full 20 epochs", {}),
    ("mlp, wide, full 12 epochs", {"hidden": 256, "epochs": 12}),
    ("mlp, patience 3 of 40 epochs", {"epochs": 40, "patience": 3, "lr": 3e-3}),
    ("gbdt 60 rounds then mlp", {"model": "auto", "epochs": 10}),
]


def write_data(folder: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 16)).astype(np.float32)
    logit = X[:, 0] - X[:, 1] ** 2 + 0.5 * X[:, 2] * X[:, 3] + 0.3 * rng.normal(size=rows)
    y = (logit > np.median(logit)).astype(np.int64)
    cuts = {"train": slice(0, int(0.7 * rows)), "val": slice(int(0.7 * rows), int(0.85 * rows)),
            "test": slice(int(0.85 * rows), rows)}
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in cuts.items():
        np.save(folder / f"X_{split}.npy", X[part])
        np.save(folder / f"y_{split}.npy", y[part])
    (folder / "meta.json").write_text(json.dumps({"task": "classification", "n_classes": 2,
                                                  "feature_names": [f"f{i}" for i in range(16)]}))


def one_run(work: Path, data: Path, overrides: dict, seed: int) -> list[tuple[str, float, float, float]]:
    """(model, true seconds left, low, high) at every reading that has an ETA, but each model's last."""
    cfg = {**BASE, **overrides, "seed": seed}
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined, keep_trailing_newline=True)
    script = work / "train.py"
    script.write_text(env.from_string((ROOT / "tools/templates/tabular/train.py.j2").read_text()).render(cfg=cfg))
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    observer = Observer(patience=int(cfg["patience"]))
    seen: list[tuple[str, float, object]] = []

    def on_line(line: str) -> None:
        if not line.startswith("METRIC "):
            return
        now = time.time()
        for reading in readings(parse_metric_json(line, now)):
            observer.feed(reading)
            if reading.split != "run":
                seen.append((reading.model, now, observer.eta(reading.model, now)))

    result = run_streaming([sys.executable, str(script), "--data-dir", str(data), "--out-dir", str(out),
                            "--device", "cpu"], cwd=work, timeout=600, on_line=on_line)
    if result.returncode != 0:
        raise SystemExit(f"run failed: {result.stderr_tail[-3:]}")
    finish = {model: when for model, when, _ in seen}
    return [(model, finish[model] - when, eta.low, eta.high) for model, when, eta in seen  # type: ignore[attr-defined]
            if eta is not None and finish[model] > when]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000, help="rows of the synthetic table (bigger: longer epochs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    total = held = 0
    misses: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_data(data, args.rows, 0)
        for name, overrides in RUNS:
            for seed in args.seeds:
                work = Path(tmp) / f"{name.replace(' ', '_').replace(',', '')}_{seed}"
                work.mkdir()
                started = time.time()
                checks = one_run(work, data, overrides, seed)
                inside = [low <= true <= high for _, true, low, high in checks]
                total += len(checks)
                held += sum(inside)
                for (model, true, low, high), ok in zip(checks, inside):
                    if not ok:
                        misses.append(f"{name} seed {seed} {model}: true {true:.2f}s outside [{low:.2f}, {high:.2f}]")
                print(f"{name:<32} seed {seed}: {sum(inside):>3}/{len(checks):<3} intervals held the finish "
                      f"({time.time() - started:.1f}s run)", flush=True)
    print(f"\ncoverage: {held}/{total} = {held / max(1, total):.1%} (goal ≥ 80%)")
    for line in misses[:15]:
        print("  miss:", line)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
