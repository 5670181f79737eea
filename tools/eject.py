"""Eject: write a job out as a standalone project that no longer needs mltrainer.

The folder holds the job's generated ``train.py`` (standalone by construction: stdlib, numpy, torch,
safetensors and what its family lists), the prepared data it reads (or, past a size cap, a script
that rebuilds it with mltrainer), the exported model with its ``predict.py``, a pinned
``requirements.txt``, a README with the commands, and ``test_smoke.py`` — ``pytest`` runs
``python train.py --smoke`` on the bundled data, so the project checks itself wherever it goes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError

#: Prepared data larger than this is not copied; a rebuild script is written instead.
DEFAULT_MAX_DATA_BYTES = 500 * 1024**2
#: Spec keys that may hold a vault reference to a credential: never written out.
SECRET_KEYS = {("data", "token"), ("deploy", "token"), ("llm", "api_key")}
SMOKE_TEST = '''"""Smoke test of this ejected project: train.py runs end to end on the bundled data (a tiny run)."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_train_smoke(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(HERE, "train.py"), "--data-dir", os.path.join(HERE, "data"),
           "--out-dir", str(out), "--smoke", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=HERE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model.safetensors").is_file() and (out / "model.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] and metrics["primary_metric"] in metrics["test"]
    assert any(line.startswith("METRIC ") for line in proc.stdout.splitlines())
'''
REBUILD = '''"""Rebuild data/ (the prepared splits train.py reads): it was too large to copy ({size:,} bytes).

Needs mltrainer (pip install mltrainer) and the original data source named in spec.yaml.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

with tempfile.TemporaryDirectory() as home:
    env = {{**__import__("os").environ, "MLTRAINER_HOME": home}}
    subprocess.run([sys.executable, "-m", "mltrainer", "run", str(HERE / "spec.yaml"), "--job-id", "rebuild",
                    "--until", "preprocessing"], check=True, env=env)
    shutil.rmtree(HERE / "data", ignore_errors=True)
    shutil.copytree(Path(home) / "jobs" / "rebuild" / "data", HERE / "data")
print("rebuilt", HERE / "data")
'''


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def clean_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The job's spec without credential references (they mean nothing outside this machine's vault)."""
    out = json.loads(json.dumps(spec, default=str))
    for section, key in SECRET_KEYS:
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return {k: v for k, v in out.items() if v is not None}


def eject(context: Any, dest: Path, *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES) -> dict[str, Any]:
    """Write ``dest`` (new or empty) from a job that got past codegen and preprocessing; what was written."""
    import yaml

    script = Path(context.training_script or "")
    if not context.training_script or not script.is_file():
        raise UsageError(f"Job '{context.job_id}' has no training script yet; run it past the codegen stage "
                         f"('mltrainer resume {context.job_id}') before ejecting it.")
    data_dir = Path(context.data_paths.get("dir") or "")
    if not context.data_paths.get("dir") or not (data_dir / "meta.json").is_file():
        raise UsageError(f"Job '{context.job_id}' has no prepared data yet; run it past preprocessing first.")
    dest = Path(dest).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists and is not an empty folder; choose a new folder to eject into.")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(script, dest / "train.py")
    written = ["train.py"]
    size = folder_size(data_dir)
    spec = clean_spec(context.spec or {})
    (dest / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    written.append("spec.yaml")
    if size <= max_data_bytes:
        shutil.copytree(data_dir, dest / "data")
        data_note = f"`data/` holds the prepared splits ({size:,} bytes) exactly as mltrainer wrote them."
        written.append("data/")
    else:
        (dest / "rebuild_data.py").write_text(REBUILD.format(size=size))
        data_note = (f"The prepared data ({size:,} bytes) was too large to copy: `python rebuild_data.py` rebuilds "
                     "`data/` with mltrainer from the source in spec.yaml.")
        written.append("rebuild_data.py")
    export = Path(context.artifacts.get("export_dir") or "")
    if context.artifacts.get("export_dir") and (export / "predict.py").is_file():
        shutil.copytree(export, dest / "model")
        written.append("model/")
    (dest / "requirements.txt").write_text(requirements(script.parent / "requirements.txt", dest / "model" / "requirements.txt"))
    (dest / "test_smoke.py").write_text(SMOKE_TEST)
    (dest / "README.md").write_text(readme(context, data_note, (dest / "model").is_dir(), size <= max_data_bytes))
    written += ["requirements.txt", "test_smoke.py", "README.md"]
    (dest / "eject.json").write_text(json.dumps({"job_id": context.job_id, "task_type": context.task_type,
                                                 "files": written, "data_bytes": size}, indent=2))
    return {"dir": str(dest), "files": written, "data_copied": size <= max_data_bytes, "data_bytes": size}


def requirements(training: Path, model: Path) -> str:
    """train.py's requirements (torch pinned), then what model/predict.py needs beyond them, then pytest."""
    import re

    lines = (training.read_text() if training.is_file() else
             "# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\nsafetensors\n").splitlines()
    name = lambda line: re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower()  # noqa: E731
    have = {name(line) for line in lines if line.strip() and not line.startswith("#")}
    extra = [line for line in (model.read_text().splitlines() if model.is_file() else [])
             if line.strip() and not line.startswith("#") and name(line) not in have]
    return "\n".join(lines + (["# model/predict.py"] + extra if extra else []) + ["# the smoke test", "pytest"]) + "\n"


def readme(context: Any, data_note: str, has_model: bool, has_data: bool) -> str:
    test = context.test_metrics or {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, (int, float)) and k != "latency_ms_per_row")
    rebuild = "" if has_data else "python rebuild_data.py            # first: recreate data/ (needs mltrainer)\n"
    model = ("\n## Predict with the trained model\n\n`model/` is the job's export (weights, predict.py, model card):\n\n"
             "```bash\npython model/predict.py --input INPUT --output predictions.csv\n```\n") if has_model else ""
    return f"""# {context.job_id}

{context.raw_prompt}

Ejected from mltrainer: a standalone {(context.task_type or 'model').replace('_', ' ')} project{f" (test {shown})" if shown else ""}.
Nothing here imports mltrainer. {data_note}

## Commands

```bash
python -m venv .venv && . .venv/bin/activate
pip install -r requirements.txt      # torch is pinned (==2.13.0): a range could pull another build
{rebuild}python train.py --data-dir data --out-dir out           # train (see --help for every setting)
python train.py --data-dir data --out-dir out --resume  # continue after an interruption
python train.py --data-dir data --out-dir smoke --smoke # a tiny run, to check the setup
pytest -q test_smoke.py                                 # the same smoke run as a test
```

`train.py` prints `METRIC {{json}}` lines while it trains and writes `out/model.safetensors`,
`out/model.json` and `out/metrics.json` (validation and test scores, and a trivial baseline).
{model}
## Files

- `train.py` — the training script mltrainer generated for this job (settings are its argparse defaults)
- `data/` — prepared train/validation/test splits and `meta.json` describing them
- `spec.yaml` — the job's spec (credential references removed)
- `requirements.txt`, `test_smoke.py`, `eject.json`
"""
