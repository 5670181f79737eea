"""The intake conversation: scripted LLM and guided mode reach the same spec; the backend decides
when intake is complete; an HF token is validated through a tool call against a loopback hub."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from agents.intake import IntakeAgent, IntakeState
from tests.fakes.scripted_llm import ScriptedLLM
from mltrainer.spec import Spec
from tests.fakes.hub_server import hub_with_token
from tools.llm import LLMReply, ToolCallRequest
from tools.vault import Vault

HF_TOKEN = "hf_" + "Qx7pLm2Vn9Rt4Ks8Wd3Zb6Yc1Fg5Hj0Ae"


class Script:
    """Answers for ``ask`` in order; records what was asked and said."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, bool]] = []
        self.said: list[str] = []

    def ask(self, question: str, secret: bool) -> str:
        self.asked.append((question, secret))
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)

    def say(self, text: str) -> None:
        self.said.append(text)


def call(name: str, **arguments: Any) -> LLMReply:
    return LLMReply(content=None, tool_calls=[ToolCallRequest(id=f"c-{name}", name=name, arguments=arguments,
                                                              raw_arguments=json.dumps(arguments))],
                    model="scripted/fake", tokens_in=1, tokens_out=1, cost=0.0, latency=0.0)


def token_ref(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        content = message.get("content") or ""
        if "⟨secret:hf_token:" in content:
            start = content.index("⟨secret:hf_token:")
            return content[start:content.index("⟩", start) + 1]
    raise AssertionError("no token reference in the conversation")


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch):
    with hub_with_token(monkeypatch, HF_TOKEN) as server:
        yield server


def test_llm_conversation_collects_and_validates_through_a_tool(tmp_path: Path, hub) -> None:
    llm = ScriptedLLM([
        call("record_request", task="predict whether a customer churns", data_source="data/churn.csv",
             target="churned", runtime="local", hub_repo="alice/churn"),
        "Great. To publish I need a HuggingFace token with write access — please paste it.",
        lambda messages: call("validate_hf_token", token=token_ref(messages), need_write=True),
        call("finish_intake"),
    ])
    script = Script(["I want to predict whether a customer churns from data/churn.csv, column churned, publish to alice/churn",
                     f"here it is: {HF_TOKEN}"])
    vault = Vault(tmp_path / "vault.json")
    state = IntakeAgent(ask=script.ask, say=script.say, vault=vault, job_id="j1", llm=llm).run()
    assert state.done
    assert state.validated["hf_token"]["ok"]
    assert hub.requests[-1]["authorization"] == f"Bearer {HF_TOKEN}"  # the tool got the real value
    for recorded in llm.calls:  # ...and the model never did
        assert HF_TOKEN not in json.dumps(asdict(recorded))
        assert HF_TOKEN[3:15] not in json.dumps(asdict(recorded))
    assert HF_TOKEN not in json.dumps(state.to_dict())
    assert script.asked[1][1] is True  # the answer after "paste it" is read hidden
    spec = Spec.model_validate(state.to_spec())
    assert spec.deploy and spec.deploy.repo_id == "alice/churn" and spec.deploy.token.startswith("⟨secret:hf_token:")


def test_guided_mode_reaches_the_same_spec(tmp_path: Path, hub) -> None:
    script = Script(["predict whether a customer churns", "data/churn.csv", "churned", "alice/churn", HF_TOKEN])
    state = IntakeAgent(ask=script.ask, say=script.say, vault=Vault(tmp_path / "vault.json"), job_id="j1").run()
    assert state.done and state.validated["hf_token"]["ok"]
    assert [secret for _, secret in script.asked] == [False, False, False, False, True]

    llm_script = Script(["predict whether a customer churns", f"token {HF_TOKEN}"])
    llm = ScriptedLLM([
        call("record_request", task="predict whether a customer churns", data_source="data/churn.csv",
             target="churned", hub_repo="alice/churn"),
        "Please paste a write token.",
        lambda messages: call("validate_hf_token", token=token_ref(messages), need_write=True),
        call("finish_intake"),
    ])
    other = IntakeAgent(ask=llm_script.ask, say=llm_script.say, vault=Vault(tmp_path / "vault.json"), job_id="j1",
                        llm=llm).run()
    assert state.to_spec() == other.to_spec()


def test_the_model_cannot_finish_while_something_is_missing(tmp_path: Path, hub) -> None:
    llm = ScriptedLLM([
        call("record_request", task="classify spam"),
        call("finish_intake"),  # data source still missing: refused
        "Where is your data?",
        call("record_request", data_source="sms.csv", hub_repo="alice/spam"),
        call("finish_intake"),  # token missing: refused
        "I need a write token.",
        lambda messages: call("validate_hf_token", token=token_ref(messages), need_write=True),
        call("finish_intake"),  # read-only token failed validation: refused
        "That token is read-only; paste a write token.",
    ])
    hub.add_token(HF_TOKEN, "alice", role="read")
    script = Script(["classify spam", "sms.csv", HF_TOKEN])
    state = IntakeAgent(ask=script.ask, say=script.say, vault=Vault(tmp_path / "vault.json"), job_id="j1", llm=llm)
    with pytest.raises(EOFError):
        state.run()
    assert not state.state.done
    refusals = [m["content"] for m in state.state.conversation if m["role"] == "tool" and "cannot finish" in m["content"]]
    assert len(refusals) == 3
    assert "data_source" in refusals[0] and "hf_token" in refusals[1] and "validated" in refusals[2]
    assert "read-only: pushing needs write access" in state.state.validated["hf_token"]["message"]


def test_forged_reference_ids_resolve_nowhere(tmp_path: Path, hub) -> None:
    vault = Vault(tmp_path / "vault.json")
    real = vault.put("other-job", "hf_token", HF_TOKEN)
    llm = ScriptedLLM([call("validate_hf_token", token=real, need_write=False), "ok",
                       call("validate_hf_token", token="⟨secret:hf_token:99⟩"), "ok"])
    script = Script(["hello", "again"])
    agent = IntakeAgent(ask=script.ask, say=script.say, vault=vault, job_id="j1", llm=llm)
    with pytest.raises(EOFError):
        agent.run()
    tool_answers = [json.loads(m["content"]) for m in agent.state.conversation if m["role"] == "tool"]
    assert len(tool_answers) == 2 and not any(a["ok"] for a in tool_answers)
    assert all(r["authorization"] != f"Bearer {HF_TOKEN}" for r in hub.requests)


def test_rate_limited_means_valid(tmp_path: Path, hub) -> None:
    from tools.validators import HFTokenValidator

    hub.status_override = 429
    outcome = HFTokenValidator().run(token=HF_TOKEN, need_write=True)
    assert outcome.ok and "rate-limiting" in outcome.message


def test_state_round_trips_for_resume() -> None:
    state = IntakeState(task="t", data_source="d.csv", credentials={"hf_token": "⟨secret:hf_token:1⟩"},
                        conversation=[{"role": "user", "content": "hi"}])
    assert IntakeState(**json.loads(json.dumps(state.to_dict()))) == state


@pytest.mark.parametrize("status,ok,words", [(200, True, "works"), (401, False, "rejected this key"),
                                             (429, True, "rate-limiting")])
def test_llm_key_validator_over_the_real_protocol(status: int, ok: bool, words: str) -> None:
    from tests.fakes.openai_server import FakeOpenAIServer
    from tools.validators import LLMKeyValidator

    key = "sk-proj-" + "Ab3" * 20
    with FakeOpenAIServer() as server:
        if status == 200:
            server.add_text("OK")
        else:
            server.add_status(status)
        outcome = LLMKeyValidator().run(model="openai/fake-model", api_key=key, api_base=server.base_url)
    assert outcome.ok is ok and words in outcome.message, outcome.message
    assert key not in outcome.message
