"""Codegen: render the family's train.py template; with an LLM and a request for something custom,
let the LLM edit it. Every script passes the gates (parse, imports, no secrets, smoke run) before it
is accepted; a failed gate is shown to the next LLM attempt, and when the LLM's attempts are spent
the template is used, so a job never fails for want of a working LLM."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import MltrainerError, TrainingError
from tools.llm import LLMClient

TEMPLATES = Path(__file__).resolve().parent.parent / "tools" / "templates"
REQUIREMENTS = "# Exact torch pin: a range lets pip pull a different (CUDA) build.\ntorch==2.13.0\nnumpy\nsafetensors\n"
#: What each family's train.py imports beyond torch, numpy and safetensors.
EXTRA_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "seq2seq": ("tokenizers", "pandas", "pyarrow"),
    "forecaster": ("pandas", "pyarrow"),
    "llm_lora": ("transformers", "peft", "tokenizers"),
}


#: Libraries a script may import that a requirements file must then name (a pretrained text backbone
#: pulls in transformers, an LLM edit may add pandas...).
OPTIONAL_IMPORTS = ("transformers", "peft", "tokenizers", "pandas", "pyarrow")


def requirements_for(family: str, source: str = "") -> str:
    """torch + numpy + safetensors, the family's extras, and any optional library the script imports."""
    import ast

    names = list(EXTRA_REQUIREMENTS.get(family, ()))
    if source:
        imported = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
        names += [name for name in OPTIONAL_IMPORTS if name in imported and name not in names]
    return REQUIREMENTS + "".join(f"{name}\n" for name in names)
#: LLM edits tried within one codegen attempt before falling back to the template.
MAX_LLM_EDITS = 3
CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


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
    from tools.script_gates import check_syntax

    check_syntax(source)


def custom_request(context: JobContext) -> str:
    """What the user asked to change in the model or loop, in their words ('' when nothing)."""
    architecture = context.intent.get("architecture") or {}
    return str(architecture.get("description") or "").strip()


def extract_code(text: str | None) -> str:
    """The script from a reply: the longest ```python block, or the whole reply if it has none."""
    blocks = CODE_BLOCK.findall(text or "")
    return max(blocks, key=len) if blocks else (text or "")


class CodegenAgent(BaseAgent):
    stage = "codegen"

    def __init__(self, bus: Any = None, llm: LLMClient | None = None) -> None:
        super().__init__(bus)
        self.llm = llm

    def _execute(self, context: JobContext) -> dict[str, Any]:
        from tools.models import model_family_for

        task_type = context.task_type or "tabular_classification"
        family = model_family_for(task_type)
        values = family.template_values(task_type, context.config, context.architecture, context.job_id)
        template = render_training_script(family.name, values)
        gate(template)
        source, origin, attempts = template, "template", []
        request = custom_request(context)
        if self.llm is not None and request:
            source, origin, attempts = self._edit_with_llm(context, template, request)
        run_dir = Path(context.job_dir) / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        script = run_dir / "train.py"
        script.write_text(source)
        (run_dir / "requirements.txt").write_text(requirements_for(family.name, source))
        lines = source.count("\n")
        how = (f"edited by the LLM ({len(attempts)} attempt{'s' if len(attempts) != 1 else ''})" if origin == "llm"
               else f"from the {family.name} template" + (" (the LLM's edits failed the gates)" if attempts else ""))
        return {
            "training_script": str(script),
            "codegen": {"origin": origin, "request": request, "attempts": attempts, "family": family.name},
            "artifacts": {"training_script": str(script), "requirements": str(run_dir / "requirements.txt")},
            "summary": f"train.py ({lines} lines) {how}",
        }

    def _edit_with_llm(self, context: JobContext, template: str, request: str) -> tuple[str, str, list[dict[str, Any]]]:
        """Up to MAX_LLM_EDITS edits, each gated; every failure goes into the next prompt."""
        import prompts
        from tools.script_gates import check_script
        from tools.vault import Vault

        assert self.llm is not None
        known = Vault().values(context.job_id)
        work = Path(context.job_dir) / "run" / "gate"
        attempts: list[dict[str, Any]] = []
        for number in range(1, MAX_LLM_EDITS + 1):
            message = self._prompt(context, template, request, attempts)
            try:
                reply = self.llm.complete(prompts.load("codegen"), [{"role": "user", "content": message}],
                                          stage=self.stage)
            except MltrainerError as err:  # the provider failed: the template is the floor
                attempts.append({"attempt": number, "error": f"the LLM call failed: {err}"})
                break
            source = extract_code(reply.content)
            try:
                check_script(source, Path(context.data_paths["dir"]), work, known)
            except TrainingError as err:
                attempts.append({"attempt": number, "error": str(err)})
                self.log(f"LLM edit {number} rejected: {err}", "warning")
                continue
            attempts.append({"attempt": number, "error": None})
            return source, "llm", attempts
        self.log("using the template: the LLM's edits did not pass the gates", "warning")
        return template, "template", attempts

    def _prompt(self, context: JobContext, template: str, request: str, attempts: list[dict[str, Any]]) -> str:
        """The request, earlier failures (smolagents-style) and the script; nothing else from the job."""
        parts = [f"Request: {request}"]
        failures = [a for a in attempts if a["error"]] + [{"attempt": f"stage {i}", "error": e}
                                                           for i, e in enumerate(self.previous_errors(context), 1)]
        if failures:
            lines = "\n".join(f"Attempt {a['attempt']} failed with: {a['error']}" for a in failures)
            parts.append(f"Earlier attempts failed.\n{lines}\nDo not repeat these mistakes.")
        parts.append(f"The script:\n```python\n{template}```")
        return "\n\n".join(parts)
