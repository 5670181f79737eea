"""LLM-written code (a described block, a custom optimizer) is checked in a child process, never in
ours: the same static gates as codegen (parse, imports, no credential), then a check script that
runs it on known inputs and prints one ``RESULT {json}`` or ``GATE <reason>`` line."""

from __future__ import annotations

import ast
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.errors import StageTimeout, TrainingError

CHECK_TIMEOUT = 120.0


def static_gates(source: str, class_name: str, known_secrets: list[str] | None = None) -> ast.Module:
    """Parse, imports resolve here, no credential, and the class the prompt asked for is defined."""
    from tools.script_gates import check_imports, check_secrets, check_syntax

    tree = check_syntax(source)
    check_imports(tree)
    check_secrets(source, known_secrets)
    if not any(isinstance(node, ast.ClassDef) and node.name == class_name for node in tree.body):
        raise TrainingError(f"The code defines no top-level class {class_name}; name the class exactly {class_name}.")
    return tree


def run_check(check_script: str, source: str, args: dict[str, Any], timeout: float = CHECK_TIMEOUT) -> dict[str, Any]:
    """Run ``check_script`` on ``source`` (saved as candidate.py) with ``args`` (args.json) in a scratch
    folder; returns its RESULT, raises TrainingError with its GATE reason or last error line."""
    from tools.process import run_streaming

    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mltrainer-gate-") as folder:
        work = Path(folder)
        (work / "candidate.py").write_text(source)
        (work / "args.json").write_text(json.dumps(args))
        (work / "check.py").write_text(check_script)
        try:
            result = run_streaming([sys.executable, str(work / "check.py")], cwd=work, timeout=timeout,
                                   on_line=lines.append)
        except StageTimeout:
            raise TrainingError(f"The check ran past {timeout:.0f}s; the code is too slow or never returns.") from None
    for line in reversed(lines):
        if line.startswith("GATE "):
            raise TrainingError(line[5:].strip())
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    last = next((line for line in reversed(result.stderr_tail) if line.strip()), f"exit status {result.returncode}")
    raise TrainingError(f"The check crashed: {last.strip()[:300]}")


#: Preamble of every check script: load candidate.py as a module and report one-line failures.
CHECK_PREAMBLE = '''
import json, math, sys, types
import torch

args = json.load(open("args.json"))
source = open("candidate.py").read()


def gate(reason):
    print("GATE " + " ".join(str(reason).split())[:400], flush=True)
    sys.exit(1)


def describe(err):
    text = str(err).strip().splitlines()[0][:240] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


module = types.ModuleType("candidate")
sys.modules["candidate"] = module
try:
    exec(compile(source, "candidate.py", "exec"), module.__dict__)
except Exception as err:
    gate(f"importing the code failed ({describe(err)})")
cls = getattr(module, args["class"], None)
if cls is None:
    gate(f"the code defines no {args['class']}")
torch.manual_seed(0)
'''
