"""Gates every training script passes before it is accepted, templated or LLM-written: it parses,
its imports resolve, it holds no credential, and a smoke run on a few batches succeeds with a finite
loss. Each failure is one sentence, fed back to the next attempt."""

from __future__ import annotations

import ast
import importlib.util
import math
import shutil
import sys
from pathlib import Path

from orchestrator.errors import TrainingError

SMOKE_TIMEOUT = 240.0
#: Modules a script may import even if this interpreter lacks them (none: what it imports must run here).
ALLOWED_MISSING: frozenset[str] = frozenset()


def check_syntax(source: str) -> ast.Module:
    try:
        tree = ast.parse(source)
        compile(tree, "train.py", "exec")
    except SyntaxError as err:
        raise TrainingError(f"The script does not parse (line {err.lineno}: {err.msg}).") from None
    return tree


def check_imports(tree: ast.Module) -> None:
    """Every absolute import must resolve here, the same interpreter that will run it."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    for name in sorted(names - ALLOWED_MISSING):
        if importlib.util.find_spec(name) is None:
            raise TrainingError(f"The script imports '{name}', which is not installed; use only the standard "
                                "library, numpy, torch and safetensors.")


def check_secrets(source: str, known: list[str] | None = None) -> None:
    from tools.vault import secret_kinds

    found = secret_kinds(source, known)
    if found:
        raise TrainingError(f"The script contains what looks like a credential ({found[0]}); "
                            "scripts never hold secrets.")


def smoke_run(source: str, data_dir: Path, work_dir: Path, timeout: float = SMOKE_TIMEOUT) -> dict[str, float]:
    """Run the script with ``--smoke`` in a scratch folder (own process group, scrubbed env, timeout).

    Returns the last METRIC values; raises TrainingError with the script's last error line."""
    from agents.training import parse_metric_line
    from tools.process import run_streaming

    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    script = work_dir / "train.py"
    script.write_text(source)
    seen: list[dict[str, float]] = []

    def on_line(line: str) -> None:
        data = parse_metric_line(line)
        if data is not None:
            seen.append({k: float(v) for k, v in data.items() if isinstance(v, (int, float))})

    result = run_streaming([sys.executable, str(script), "--data-dir", str(data_dir), "--out-dir",
                            str(work_dir / "out"), "--smoke"], cwd=work_dir, timeout=timeout, on_line=on_line)
    if result.returncode != 0:
        last = next((line for line in reversed(result.stderr_tail) if line.strip()), f"exit status {result.returncode}")
        raise TrainingError(f"The smoke run failed: {last.strip()[:300]}")
    if not seen:
        raise TrainingError("The smoke run printed no METRIC line; keep the script's METRIC output.")
    losses = [v for row in seen for k, v in row.items() if "loss" in k]
    if any(not math.isfinite(v) for v in losses):
        raise TrainingError("The smoke run's loss is not finite (NaN or Inf); check the model and the learning rate.")
    return seen[-1]


def check_script(source: str, data_dir: Path, work_dir: Path, known_secrets: list[str] | None = None) -> dict[str, float]:
    """All gates in order; returns the smoke run's last metrics."""
    tree = check_syntax(source)
    check_imports(tree)
    check_secrets(source, known_secrets)
    return smoke_run(source, data_dir, work_dir)
