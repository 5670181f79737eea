"""Bare `mltrainer`: an interactive session through the CLI — with a scripted LLM over the real
protocol and in guided mode — that starts the pipeline; an interrupted intake resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from tests.conftest import make_classification_frame
from tests.fakes.hub_server import hub_with_token
from tests.fakes.openai_server import FakeOpenAIServer

runner = CliRunner()
HF_TOKEN = "hf_" + "Zr8Kq2Lm5Nw9Pt3Vx7Bc1Df4Gh6Jk0Ys"


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch):
    with hub_with_token(monkeypatch, HF_TOKEN) as server:
        yield server


def test_llm_session_validates_the_token_and_starts_the_pipeline(tmp_path: Path, hub, monkeypatch) -> None:
    from tools.llm import LLMRouter

    data = tmp_path / "data.csv"
    make_classification_frame(200).to_csv(data, index=False)
    with FakeOpenAIServer() as server:
        server.add_tool_call("record_request", {"task": "predict whether the label is yes", "data_source": str(data),
                                                "target": "label", "runtime": "local", "hub_repo": "alice/labels"})
        server.add_text("To publish I need a HuggingFace token with write access; please paste it.")
        server.add_tool_call("validate_hf_token", {"token": "⟨secret:hf_token:1⟩", "need_write": True})
        server.add_tool_call("finish_intake", {})
        for _ in range(3):  # the intent stage of the pipeline
            server.add_text(json.dumps({"task_type": "tabular_classification", "description": "labels",
                                        "dataset": {"target": "label"}}))
        monkeypatch.setattr("mltrainer.commands.session._router",
                            lambda llm, bus: LLMRouter("openai/fake-model", api_base=server.base_url, bus=bus,
                                                       sleep=lambda s: None))
        answers = f"I want to predict whether the label is yes from {data} and publish it as alice/labels\n{HF_TOKEN}\n"
        result = runner.invoke(app, ["--json", "--save-spec", str(tmp_path / "spec.yaml")], input=answers)
        bodies = [r.raw.decode() for r in server.chat_requests]
    assert result.exit_code == 0, result.output
    assert hub.requests and hub.requests[-1]["authorization"] == f"Bearer {HF_TOKEN}"
    assert all(HF_TOKEN not in body and HF_TOKEN[5:17] not in body for body in bodies)
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert events[-1]["type"] == "pipeline_end" and events[-1]["status"] == "done"
    assert any(e["type"] == "stage_skipped" and e["stage"] == "deploy" and "Hub" in e["reason"] for e in events)
    jobs = json.loads(runner.invoke(app, ["jobs", "--json"]).output)
    assert [j["status"] for j in jobs] == ["done"]
    detail = json.loads(runner.invoke(app, ["show", jobs[0]["id"], "--json"]).output)
    assert detail["llm"]["calls"] == len(bodies) and detail["llm"]["tokens_in"] > 0  # intake + pipeline, totalled
    assert "llm: " in runner.invoke(app, ["show", jobs[0]["id"]]).output
    saved = (tmp_path / "spec.yaml").read_text()
    assert "repo_id: alice/labels" in saved and "⟨secret:" not in saved and HF_TOKEN not in saved


def test_interrupted_intake_is_offered_and_resumed(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    make_classification_frame(200).to_csv(data, index=False)
    first = runner.invoke(app, ["--llm", "none"], input="predict whether the label is yes\n")
    assert first.exit_code == 130, first.output  # input ran out mid-intake: saved, resumable
    jobs = json.loads(runner.invoke(app, ["jobs", "--json"]).output)
    assert [j["status"] for j in jobs] == ["intake"]
    second = runner.invoke(app, ["--llm", "none", "--json"], input=f"r\n{data}\nlabel\n\n")
    assert second.exit_code == 0, second.output
    assert "Previous session found" in second.output
    assert "What model do you want" not in second.output  # the conversation was restored, not restarted
    detail = json.loads(runner.invoke(app, ["show", jobs[0]["id"], "--json"]).output)
    assert detail["status"] == "done"
    assert detail["task"] == "predict whether the label is yes"


def test_new_instead_of_resume_starts_a_fresh_job(tmp_path: Path) -> None:
    runner.invoke(app, ["--llm", "none"], input="predict whether the label is yes\n")
    result = runner.invoke(app, ["--llm", "none"], input="n\npredict the price\n")
    assert "Previous session found" in result.output
    jobs = json.loads(runner.invoke(app, ["jobs", "--json"]).output)
    assert len(jobs) == 2
