"""
Quality bench for the tabular training template against scikit-learn's HistGradientBoosting.

For a handful of small public/synthetic tables, split 64/16/20 (stratified for classification),
scale the features on train, render tools/templates/tabular/train.py.j2 with the recommended
defaults, run it (--model auto) in a subprocess and print the test metric (accuracy or R²) of
HGB with default settings (fit on train, and on train+val), of our GBDT and MLP candidates and of
the kept model, plus the kept (best-on-val) boosting round and MLP epoch and the wall times
(per candidate inside the script, whole subprocess, HGB fit). Figures are means over the split
seeds; picks lists which candidate --model auto kept per seed. Figures only; no asserts.

    python bench/tabular_quality.py [--seeds 0 1 2] [--datasets wine digits]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jinja2
import numpy as np
from sklearn import datasets as skd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "tools", "templates", "tabular", "train.py.j2")


def recommended_cfg(task: str, n_train: int) -> dict:
    """The config stage's values for this many training rows (tools/models/tabular.py's rules)."""
    sys.path.insert(0, ROOT)
    from tools.models.tabular import resolve_config

    return {**resolve_config(n_train, {}, None), "task": task, "job_id": "bench", "gbdt_patience": 30}


def mixed_table(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Numeric + one-hot categorical features with interactions, binary target."""
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, 6))
    a, b = rng.integers(0, 5, n), rng.integers(0, 3, n)
    logit = num[:, 0] - num[:, 1] ** 2 + np.array([-1.5, -0.5, 0, 0.5, 1.5])[a] + 1.5 * num[:, 2] * (b == 1) + 0.5 * rng.normal(size=n)
    X = np.concatenate([num, np.eye(5)[a], np.eye(3)[b]], axis=1)
    return X, (logit > np.median(logit)).astype(np.int64)


def load_datasets() -> dict:
    d = {}
    for name, fn in [("breast_cancer", skd.load_breast_cancer), ("wine", skd.load_wine), ("digits", skd.load_digits)]:
        X, y = fn(return_X_y=True)
        d[name] = ("classification", X, y)
    d["diabetes"] = ("regression", *skd.load_diabetes(return_X_y=True))
    d["make_cls_4000x20"] = ("classification", *skd.make_classification(4000, 20, n_informative=8, n_redundant=4, n_classes=3, random_state=0))
    d["make_reg_2000x20"] = ("regression", *skd.make_regression(2000, 20, n_informative=10, noise=10.0, random_state=0))
    d["friedman1_2000"] = ("regression", *skd.make_friedman1(2000, 10, noise=1.0, random_state=0))
    d["mixed_3000"] = ("classification", *mixed_table())
    return d


def split(task: str, X: np.ndarray, y: np.ndarray, seed: int) -> dict:
    strat = y if task == "classification" else None
    Xa, Xte, ya, yte = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=strat)
    strat = ya if task == "classification" else None
    Xtr, Xva, ytr, yva = train_test_split(Xa, ya, test_size=0.2, random_state=seed, stratify=strat)
    sc = StandardScaler().fit(Xtr)
    ydt = np.int64 if task == "classification" else np.float32
    return {"X_train": sc.transform(Xtr).astype(np.float32), "X_val": sc.transform(Xva).astype(np.float32),
            "X_test": sc.transform(Xte).astype(np.float32), "y_train": ytr.astype(ydt), "y_val": yva.astype(ydt),
            "y_test": yte.astype(ydt)}


def hgb_score(task: str, s: dict, with_val: bool) -> tuple[float, float]:
    X, y = s["X_train"], s["y_train"]
    if with_val:
        X, y = np.concatenate([X, s["X_val"]]), np.concatenate([y, s["y_val"]])
    t0 = time.time()
    m = (HistGradientBoostingClassifier() if task == "classification" else HistGradientBoostingRegressor()).fit(X, y)
    return float(m.score(s["X_test"], s["y_test"])), time.time() - t0


def run_ours(task: str, s: dict, n_classes: int | None, work: str, overrides: dict) -> tuple[dict, float]:
    data_dir, out_dir = os.path.join(work, "data"), os.path.join(work, "out")
    os.makedirs(data_dir, exist_ok=True)
    for k, v in s.items():
        np.save(os.path.join(data_dir, f"{k}.npy"), v)
    meta = {"task": task, "feature_names": [f"f{i}" for i in range(s["X_train"].shape[1])]}
    if n_classes:
        meta["n_classes"] = n_classes
    with open(os.path.join(data_dir, "meta.json"), "w") as f:
        json.dump(meta, f)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    with open(TEMPLATE) as f:
        src = env.from_string(f.read()).render(cfg={**recommended_cfg(task, len(s["X_train"])), **overrides})
    script = os.path.join(work, "train.py")
    with open(script, "w") as f:
        f.write(src)
    t0 = time.time()
    proc = subprocess.run([sys.executable, script, "--data-dir", data_dir, "--out-dir", out_dir, "--device", "cpu"],
                          capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    with open(os.path.join(out_dir, "metrics.json")) as f:
        return json.load(f), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds; figures are means")
    parser.add_argument("--datasets", nargs="*", help="subset of dataset names")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override a recommended cfg value")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    all_sets = load_datasets()
    names = args.datasets or list(all_sets)
    head = (f"{'dataset':17} {'rows':>5} {'metric':8} {'HGB':>6} {'HGB+val':>7} {'gbdt':>6} {'mlp':>6} {'kept':>6} "
            f"{'kept-HGB':>8} {'picks':>14} {'rounds':>6} {'epochs':>6} {'gbdt s':>6} {'mlp s':>6} {'wall s':>6} {'HGB s':>5}")
    print(head)
    print("-" * len(head), flush=True)
    for name in names:
        task, X, y = all_sets[name]
        K = int(len(np.unique(y))) if task == "classification" else None
        primary = "accuracy" if task == "classification" else "r2"
        rows = []
        for seed in args.seeds:
            s = split(task, X, y, seed)
            h, ht = hgb_score(task, s, with_val=False)
            hv, _ = hgb_score(task, s, with_val=True)
            with tempfile.TemporaryDirectory() as work:
                m, wall = run_ours(task, s, K, work, overrides)
            nan = {"test": {primary: float("nan")}, "rounds": float("nan"), "epochs": float("nan"), "time_s": float("nan")}
            gbdt, mlp = m["candidates"].get("gbdt", nan), m["candidates"].get("mlp", nan)  # --set model=... trains one
            rows.append([h, hv, gbdt["test"][primary], mlp["test"][primary], m["test"][primary],
                         gbdt["rounds"], mlp["epochs"], gbdt["time_s"], mlp["time_s"], wall, ht, m["best_model"]])
        r = np.array([row[:-1] for row in rows], dtype=float).mean(axis=0)
        picks = "/".join(row[-1] for row in rows)
        print(f"{name:17} {len(X):5d} {primary:8} {r[0]:6.4f} {r[1]:7.4f} {r[2]:6.4f} {r[3]:6.4f} {r[4]:6.4f} "
              f"{100 * (r[4] - r[0]):+8.2f} {picks:>14} {r[5]:6.0f} {r[6]:6.0f} {r[7]:6.1f} {r[8]:6.1f} {r[9]:6.1f} {r[10]:5.2f}",
              flush=True)


if __name__ == "__main__":
    main()
