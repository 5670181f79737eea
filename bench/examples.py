"""Every example spec end to end, offline: `python bench/examples.py [name ...]`.

Runs `mltrainer run examples/<name>.yaml` in a scratch data directory and prints, per example, the
wall time, the kept model's test metric and the trivial baseline's on the same held-out split
(from the run's metrics.json). Figures only; nothing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ["churn", "houses", "wine", "sms_spam", "ner", "word_translation", "corpus_lm", "digits_images",
            "daily_sales", "iris_clusters", "shapes_detection", "sms_minilm"]


def run(name: str, home: Path) -> str:
    env = {**os.environ, "MLTRAINER_HOME": str(home)}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "mltrainer", "run", str(REPO / "examples" / f"{name}.yaml"),
                          "--job-id", name, "--json"], env=env, capture_output=True, text=True, cwd=home)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        return f"{name:<17} FAILED ({out.returncode}) after {wall:5.1f}s: {out.stdout.strip().splitlines()[-1][:200]}"
    metrics_file = home / "jobs" / name / "run" / "out" / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    primary = metrics.get("primary_metric", "")
    test, baseline = metrics.get("test") or {}, metrics.get("baseline") or {}
    key = primary if primary in test else next(iter(test), "")
    if not key:  # the tabular template reports its test scores through the export
        detail = json.loads(subprocess.run([sys.executable, "-m", "mltrainer", "show", name, "--json"], env=env,
                                           capture_output=True, text=True).stdout)
        test = detail.get("test_metrics") or {}
        key = "accuracy" if "accuracy" in test else "r2"
    model = test.get(key, float("nan"))
    base = baseline.get(key)
    shown = f"baseline ({baseline.get('name', '-')}) {base:.4f}" if isinstance(base, (int, float)) else "baseline -"
    return f"{name:<17} {wall:6.1f}s   test {key} {model:.4f}   {shown}"


def main() -> None:
    names = sys.argv[1:] or EXAMPLES
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            print(run(name, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
