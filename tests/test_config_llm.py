"""The config stage with an LLM: its proposal is validated and merged over the rules and under the
user's locked values; an unusable reply is sent back once, then the rules stand."""

from __future__ import annotations

import json
from pathlib import Path

from agents.config import ConfigAgent
from orchestrator.context import JobContext
from tests.fakes.scripted_llm import ScriptedLLM

MARKER = "private-marker-7f3a"


def _context(tmp_path: Path) -> JobContext:
    data = tmp_path / MARKER / "data"
    data.mkdir(parents=True)
    (data / "meta.json").write_text(json.dumps({"splits": {"train": 500, "val": 100, "test": 100},
                                                "n_features": 6, "n_classes": 2, "classes": ["no", "yes"]}))
    return JobContext(job_id="cfg", raw_prompt="predict churn", task_type="tabular_classification",
                      spec={"hyperparameters": {"epochs": 7}}, data_paths={"dir": str(data)},
                      data_report={"family": "tabular", "note": MARKER}, job_dir=str(tmp_path / MARKER))


def test_a_valid_proposal_is_merged_under_the_locked_values(tmp_path: Path) -> None:
    llm = ScriptedLLM([json.dumps({"hyperparameters": {"lr": 0.005, "epochs": 50, "dropout": 0.3},
                                   "reasons": {"lr": "small table"}})])
    config = ConfigAgent(llm=llm).run(_context(tmp_path))["config"]
    assert (config["lr"], config["dropout"], config["epochs"]) == (0.005, 0.3, 7)  # epochs stays the user's
    assert config["policy"] == "llm" and config["locked"] == ["epochs"]
    sent = llm.calls[0].messages[0]["content"]
    assert '"splits": {"train": 500' in sent and MARKER not in sent  # sizes only: no paths, no context
    assert "Locked by the user: [\"epochs\"]" in sent


def test_unusable_replies_are_fed_back_then_the_rules_stand(tmp_path: Path) -> None:
    rules = ConfigAgent().run(_context(tmp_path))["config"]
    llm = ScriptedLLM(['{"hyperparameters": {"lr": "fast"}}', '{"hyperparameters": {"model": "gbdt"}}'])
    config = ConfigAgent(llm=llm).run(_context(tmp_path / "again"))["config"]
    assert config["policy"] == "rules" and config["lr"] == rules["lr"] and config["model"] == rules["model"]
    retry = llm.calls[1].messages[-1]["content"]
    assert "Your previous reply failed: hyperparameter 'lr' must be a number, not 'fast'" in retry
    assert "Do not repeat it." in retry
