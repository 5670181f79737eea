"""Codegen: render the standalone train.py and its requirements into the job folder, then gate it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import TrainingError

TEMPLATES = Path(__file__).resolve().parent.parent / "tools" / "templates"
REQUIREMENTS = "# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\nsafetensors\n"


def render_training_script(family: str, values: dict[str, Any]) -> str:
    """Fill the family's template with resolved values (values only, never secrets)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES / family)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
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
        from tools.models import model_family_for

        task_type = context.task_type or "tabular_classification"
        family = model_family_for(task_type)
        values = family.template_values(task_type, context.config, context.architecture, context.job_id)
        source = render_training_script(family.name, values)
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
            "summary": f"train.py ({lines} lines) from the {family.name} template",
        }
