"""Planted secrets of every format, in every context, must reach no sink: LLM request bodies,
SQLite rows, logs, the event stream and every file under the job folder (scripts and exports
included). Only the vault file may hold them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from tests.conftest import make_classification_frame
from tests.fakes.hub_server import fake_hub
from tests.fakes.openai_server import FakeOpenAIServer
from tests.test_vault import CONTEXTS, KAGGLE_HEX, TOKENS

runner = CliRunner()
SECRETS = [secret for _, secret in TOKENS] + [KAGGLE_HEX]


def fragments(secret: str, size: int = 12) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


def sinks(home: Path, *extra: str) -> dict[str, str]:
    """Every place a secret must not be, as text keyed by where it came from."""
    found: dict[str, str] = {f"extra[{i}]": text for i, text in enumerate(extra)}
    with sqlite3.connect(home / "mltrainer.db") as conn:
        found["sqlite"] = "\n".join(conn.iterdump())
    for path in home.rglob("*"):
        if path.is_file() and path.name != "vault.json" and not path.name.startswith("mltrainer.db"):
            found[str(path.relative_to(home))] = path.read_bytes().decode("utf-8", errors="replace")
    return found


def assert_no_leaks(places: dict[str, str]) -> None:
    for where, text in places.items():
        for secret in SECRETS:
            assert secret not in text, f"a raw secret reached {where}"
            leaked = [f for f in fragments(secret) if f in text]
            assert not leaked, f"a 12-character fragment {leaked[0]!r} of a secret reached {where}"


def planted_text() -> str:
    """Each secret in a different context from the redaction tests, cycling through them."""
    lines = []
    for i, secret in enumerate(SECRETS):
        context = CONTEXTS[i % len(CONTEXTS)].replace("{s}", secret)
        lines.append(context.replace("\n", " "))
    lines.append(f'kaggle.json: {{"username": "alice", "key": "{KAGGLE_HEX}"}}')
    return " | ".join(lines)


def test_secrets_in_a_spec_file_reach_no_sink(tmp_path: Path, sealed_home: Path) -> None:
    make_classification_frame(200).to_csv(tmp_path / "data.csv", index=False)
    openai_key = next(s for k, s in TOKENS if k == "openai_api_key")
    with FakeOpenAIServer() as server:
        intent = {"task_type": "tabular_classification", "description": "churn", "dataset": {"target": "label"}}
        for _ in range(4):
            server.add_text(json.dumps(intent))
        task = "predict whether the label is yes. " + planted_text()
        (tmp_path / "spec.yaml").write_text(
            "# my hf token, for later: " + SECRETS[0] + "\n"
            + f"task: {json.dumps(task)}\n"
            + "data:\n  source: data.csv\n  target: label\n"
            + f"llm:\n  model: openai/fake-model\n  api_base: {server.base_url}\n  api_key: {openai_key}\n"
            + "hyperparameters: {epochs: 3, patience: 2, gbdt_rounds: 10}\n"
        )
        result = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--job-id", "leaky", "--json"])
        bodies = [r.raw.decode("utf-8", errors="replace") for r in server.chat_requests]
    assert result.exit_code == 0, result.output
    assert bodies, "the intent agent should have asked the LLM"
    assert any("predict whether the label is yes" in b for b in bodies)
    assert any("⟨secret:" in b for b in bodies)  # the model sees reference ids, never values
    assert_no_leaks(sinks(sealed_home, result.output, *bodies))
    vault = json.loads((sealed_home / "vault.json").read_text())
    stored = json.dumps(vault)
    assert all(secret in stored for secret in SECRETS)


def test_secrets_typed_in_a_guided_session_reach_no_sink(tmp_path: Path, sealed_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    make_classification_frame(200).to_csv(tmp_path / "data.csv", index=False)
    hf_token = SECRETS[0]
    with fake_hub() as hub:
        hub.add_token(hf_token, "alice", role="write")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        answers = [
            "predict whether the label is yes. " + planted_text(),
            str(tmp_path / "data.csv"),
            "label",
            "alice/leaky-model",
            hf_token,
        ]
        result = runner.invoke(app, ["--llm", "none", "--json", "--save-spec", str(tmp_path / "saved.yaml")],
                               input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    saved = (tmp_path / "saved.yaml").read_text()
    assert "alice/leaky-model" in saved
    assert_no_leaks(sinks(sealed_home, result.output, saved))


def test_secrets_pasted_into_an_llm_session_reach_no_sink(tmp_path: Path, sealed_home: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.llm import LLMRouter

    data = tmp_path / "data.csv"
    make_classification_frame(200).to_csv(data, index=False)
    with FakeOpenAIServer() as server:
        server.add_text("Thanks. Where is the data?")
        server.add_tool_call("record_request", {"task": "predict whether the label is yes", "data_source": str(data),
                                                "target": "label"})
        server.add_tool_call("finish_intake", {})
        for _ in range(3):
            server.add_text(json.dumps({"task_type": "tabular_classification", "dataset": {"target": "label"}}))
        monkeypatch.setattr("mltrainer.commands.session._router",
                            lambda llm, bus: LLMRouter("openai/fake-model", api_base=server.base_url, bus=bus,
                                                       sleep=lambda s: None))
        answers = ["predict whether the label is yes; my keys: " + planted_text(), f"it is in {data}"]
        result = runner.invoke(app, ["--json"], input="\n".join(answers) + "\n")
        bodies = [r.raw.decode("utf-8", errors="replace") for r in server.chat_requests]
    assert result.exit_code == 0, result.output
    assert len(bodies) >= 3 and any("⟨secret:" in b for b in bodies)
    assert_no_leaks(sinks(sealed_home, result.output, *bodies))
