"""Codegen: render the standalone train.py and its requirements into the job folder, then gate it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import TrainingError

TEMPLATES = Path(__file__).resolve().parent.parent / "tools" / "templates"
TEMPLATE_KEYS = (
    "task", "model", "epochs", "batch_size", "lr", "weight_decay", "hidden", "layers", "dropout", "patience",
    "seed", "gbdt_rounds", "gbdt_lr", "gbdt_max_leaves", "gbdt_min_leaf", "gbdt_l2", "time_budget",
)
REQUIREMENTS = "# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\nsafetensors\n"


def render_training_script(family: str, cfg: dict[str, Any], job_id: str) -> str:
    """Fill the family's template with the resolved config (values only, never secrets)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES / family)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    values = {key: cfg[key] for key in TEMPLATE_KEYS}
    values["job_id"] = job_id
    return env.get_template("train.py.j2").render(cfg=values)


def gate(source: str) -> None:
    """A script must at least parse and compile before anything runs it."""
    try:
        tree = ast.parse(source)
        compile(tree, "train.py", "exec")
    except SyntaxError as err:
        raise TrainingError(f"The generated train.py does not parse (line {err.lineno}: {err.msg}).") from err


class CodegenAgent(BaseAgent):
    stage = "codegen"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        source = render_training_script("tabular", context.config, context.job_id)
        gate(source)
        run_dir = Path(context.job_dir) / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        script = run_dir / "train.py"
        script.write_text(source)
        (run_dir / "requirements.txt").write_text(REQUIREMENTS)
        lines = source.count("\n")
        return {
            "training_script": str(script),
            "artifacts": {"training_script": str(script), "requirements": str(run_dir / "requirements.txt")},
            "summary": f"train.py ({lines} lines) from the tabular template",
        }
