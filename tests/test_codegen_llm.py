"""The LLM may edit the training script, but only a script that passes every gate runs: a broken
edit is shown to the next attempt, and when no edit passes the template trains the model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agents.codegen import extract_code
from agents.registry import default_agents
from mltrainer.store import Store
from orchestrator.context import JobContext
from orchestrator.errors import TrainingError
from orchestrator.events import EventBus
from orchestrator.orchestrator import Orchestrator
from tests.conftest import make_classification_frame
from tests.fakes.scripted_llm import ScriptedLLM
from tools.script_gates import check_imports, check_secrets, check_syntax

INTENT = json.dumps({"task_type": "tabular_classification", "dataset": {"target": "label"},
                     "architecture": {"description": "use a custom block between the MLP layers"},
                     "reasons": {"task_type": "yes/no labels"}})
CONFIG = json.dumps({"hyperparameters": {}})  # the config stage asks too; keep the rules' values


def script_in(messages: list[dict[str, Any]]) -> str:
    return extract_code(messages[-1]["content"].split("The script:", 1)[1])


def syntax_error(messages: list[dict[str, Any]]) -> str:
    return "```python\n" + script_in(messages).replace("def die(", "def die((", 1) + "```"


def shape_error(messages: list[dict[str, Any]]) -> str:
    # parses and imports fine; only running it shows the mistake
    script = script_in(messages).replace("import torch.nn as nn\n", "import torch.nn as nn\n\n"
                                          "CUSTOM = torch.zeros(2, 3) @ torch.zeros(4, 5)  # custom block\n", 1)
    return "Here you go:\n```python\n" + script + "```"


def good_edit(messages: list[dict[str, Any]]) -> str:
    script = script_in(messages).replace("import torch.nn as nn\n", "import torch.nn as nn\n\n"
                                          "CUSTOM_BLOCK = 'a custom block, as asked'\n", 1)
    return "```python\n" + script + "```"


def run_job(tmp_path: Path, llm: ScriptedLLM) -> JobContext:
    make_classification_frame(240).to_csv(tmp_path / "data.csv", index=False)
    spec = {"task": "predict the label", "task_type": None, "data": {"source": str(tmp_path / "data.csv"), "target": "label"},
            "runtime": "local", "deploy": None, "llm": "scripted", "budget": {"time": None},
            "hyperparameters": {"epochs": 3, "patience": 2, "gbdt_rounds": 20}}
    context = JobContext(job_id="llmcode", raw_prompt=spec["task"], spec=spec, job_dir=str(tmp_path / "job"))
    store = Store(tmp_path / "store.db")
    bus = EventBus()
    orchestrator = Orchestrator(store, bus, default_agents(bus, llm=llm), sleep=lambda s: None)
    orchestrator.create(context)
    try:
        return orchestrator.run(context)
    finally:
        store.close()


def test_two_broken_edits_are_fed_back_and_the_third_is_used(tmp_path: Path) -> None:
    llm = ScriptedLLM([INTENT, CONFIG, syntax_error, shape_error, good_edit])
    final = run_job(tmp_path, llm)
    assert final.status == "done", final.failure
    codegen = final.codegen
    assert codegen["origin"] == "llm" and codegen["request"] == "use a custom block between the MLP layers"
    errors = [a["error"] for a in codegen["attempts"]]
    assert errors[0].startswith("The script does not parse (line") and "smoke run failed" in errors[1]
    assert "mat1 and mat2 shapes cannot be multiplied" in errors[1] and errors[2] is None
    third = llm.calls[4].messages[-1]["content"]
    assert f"Attempt 1 failed with: {errors[0]}" in third and f"Attempt 2 failed with: {errors[1]}" in third
    assert "Do not repeat these mistakes." in third
    assert "CUSTOM_BLOCK = 'a custom block, as asked'" in Path(final.training_script or "").read_text()
    assert final.test_metrics["accuracy"] > 0.6  # the edited script trained and exported the model


def test_when_no_edit_passes_the_template_trains(tmp_path: Path) -> None:
    llm = ScriptedLLM([INTENT, CONFIG, "I cannot do that.", syntax_error, shape_error])
    final = run_job(tmp_path, llm)
    assert final.status == "done", final.failure
    assert final.codegen["origin"] == "template" and len(final.codegen["attempts"]) == 3
    assert all(a["error"] for a in final.codegen["attempts"])
    script = Path(final.training_script or "").read_text()
    assert "CUSTOM" not in script and final.stage_results["codegen"]["summary"].endswith("(the LLM's edits failed the gates)")


def test_without_a_request_the_llm_is_not_asked_to_edit(tmp_path: Path) -> None:
    plain = json.dumps({"task_type": "tabular_classification", "dataset": {"target": "label"}})
    llm = ScriptedLLM([plain, CONFIG])
    final = run_job(tmp_path, llm)
    assert final.status == "done" and final.codegen["origin"] == "template"
    assert [call.stage for call in llm.calls] == ["intent", "config"]


def test_gates_name_what_is_wrong() -> None:
    with pytest.raises(TrainingError, match=r"does not parse \(line 1"):
        check_syntax("def f(:\n  pass\n")
    with pytest.raises(TrainingError, match="imports 'surely_not_a_module', which is not installed"):
        check_imports(check_syntax("import os\nimport surely_not_a_module.sub\n"))
    with pytest.raises(TrainingError, match="looks like a credential"):
        check_secrets('OPENAI = "sk-proj-' + "a1B2c3D4" * 5 + '"\n')
    with pytest.raises(TrainingError, match="looks like a credential"):
        check_secrets("TOKEN_VALUE = 'plainvalue42'\n", known=["plainvalue42"])
    assert re.search(r"```", extract_code("no fences here")) is None
