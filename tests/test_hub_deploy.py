"""Publishing to the HuggingFace Hub against a loopback fake that speaks huggingface_hub's protocol:
one commit with a model card that validates, a download-back check, an optional Gradio Space that
starts and answers, a failed push that keeps the export and succeeds on resume, and a CLI killed in
the middle of the upload whose resume leaves one repo with every file."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from orchestrator.context import JobContext
from orchestrator.plan import skip_reason
from tests.conftest import MLTRAINER, cli_env, make_classification_frame, write_spec
from tests.fakes.hub_server import FakeHub, fake_hub

runner = CliRunner()
TOKEN = "hf_" + "Zq8xW3kLmN5pRt7vYb2cDf4gHj6kLm9nPq"
HYPER = {"epochs": 3, "patience": 3, "gbdt_rounds": 15}


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    import huggingface_hub.constants

    with fake_hub() as server:
        server.add_token(TOKEN, "alice", role="write")
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once, at import
        yield server


def hub_spec(tmp_path: Path, deploy: str) -> Path:
    make_classification_frame(240).to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, hyper=HYPER, extra=f"deploy: {deploy}\n")


def events_of(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def export_files(export: Path) -> dict[str, bytes]:
    return {p.relative_to(export).as_posix(): p.read_bytes() for p in export.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_skipped_with_a_reason_without_a_token_or_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    context = JobContext(job_id="s", task_type="tabular_classification",
                         spec={"deploy": {"target": "hub", "repo_id": "alice/x"}})
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert "no HuggingFace write token" in (skip_reason("deploy", context) or "")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" in (skip_reason("deploy", context) or "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert skip_reason("deploy", context) is None


def test_publishes_model_card_and_space(tmp_path: Path, sealed_home: Path, hub: FakeHub,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import ModelCard

    from tests.test_leaks import assert_no_leaks, planted_text, sinks

    spec = hub_spec(tmp_path, "{target: hub, repo_id: alice/churn-model, private: true, space: true}")
    spec.write_text(spec.read_text().replace("task: predict whether the label is yes",
                                             "task: " + json.dumps("predict whether the label is yes. " + planted_text())))
    result = runner.invoke(app, ["run", str(spec), "--job-id", "hb", "--json"])
    assert result.exit_code == 0, result.output
    end = events_of(result.output)[-1]
    model_url, space_url = f"{hub.url}/alice/churn-model", f"{hub.url}/spaces/alice/churn-model-demo"
    assert end["status"] == "done" and end["deployed_urls"] == [model_url, space_url]

    repo = hub.repo("alice/churn-model")
    assert repo is not None and repo.private and len(repo.commits) == 2  # the repo's first commit + ours: one push
    export = sealed_home / "jobs" / "hb" / "export"
    pushed = {k: v for k, v in repo.files.items() if k != ".gitattributes"}
    local = export_files(export)
    assert set(pushed) == set(local)
    assert all(pushed[name] == data for name, data in local.items() if name != "README.md")  # the export, untouched

    card = ModelCard(pushed["README.md"].decode())
    assert card.data.library_name == "mltrainer" and card.data.pipeline_tag == "tabular-classification"
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    context = JobContext.from_json(sqlite3.connect(sealed_home / "mltrainer.db").execute(
        "select context_json from jobs where id='hb'").fetchone()[0])
    assert metrics["accuracy"] == pytest.approx(context.test_metrics["accuracy"], abs=1e-6)
    text = card.text
    assert "95% confidence intervals" in text and "bootstrap over the" in text
    assert context.data_report["sha256"] in text  # the data's content hash
    assert "Search history" in text and "gbdt" in text and "mlp" in text
    assert "predict whether the label is yes" in text and "gbdt_rounds: 15" in text  # the exact spec
    assert "⟨secret:" in text  # the task as stored: planted keys are reference ids
    assert context.deployed_urls == [model_url, space_url] and context.artifacts["hub_commit"] == repo.head
    assert "downloaded back intact" in context.stage_results["deploy"]["summary"]
    assert "one test row" in context.stage_results["deploy"]["summary"]

    space = hub.repo("alice/churn-model-demo", "space")
    assert space is not None and space.sdk == "gradio" and space.private
    assert {"app.py", "requirements.txt", "space.json", "README.md", "model/predict.py"} <= set(space.files)
    everything = b"".join(d for r in hub.repos.values() for c in r.commits for d in c["files"].values())
    assert TOKEN.encode() not in everything and TOKEN[3:15].encode() not in everything
    assert_no_leaks(sinks(sealed_home, result.output, everything.decode("latin-1")))  # planted secrets neither
    with sqlite3.connect(sealed_home / "mltrainer.db") as conn:
        assert conn.execute("select runtime, status, remote_id from runtime_runs where job_id='hb' order by id").fetchall() \
            == [("hub", "done", repo.head), ("hub", "done", space.head)]

    # The Space app starts locally and answers a prediction through its HTTP API.
    folder = tmp_path / "space"
    for name, data in space.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    import importlib.util

    spec_ = importlib.util.spec_from_file_location("space_app_under_test", folder / "app.py")
    module = importlib.util.module_from_spec(spec_)  # type: ignore[arg-type]
    spec_.loader.exec_module(module)  # type: ignore[union-attr]
    info = json.loads((folder / "space.json").read_text())
    module.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        from gradio_client import Client

        client = Client(module.demo.local_url, verbose=False)
        answer = client.predict({"headers": info["columns"], "data": info["example"][:1]}, api_name="/predict")
    finally:
        module.demo.close()
    assert answer["headers"][-1] == "label" or "label" in answer["headers"]
    assert answer["data"][0][answer["headers"].index("label")] in ("yes", "no")


def test_a_failed_push_keeps_the_export_and_resume_publishes(tmp_path: Path, sealed_home: Path, hub: FakeHub) -> None:
    from tools.hub_publish import publish

    spec = hub_spec(tmp_path, "hf://alice/retry-model")
    hub.fail_commits_with = 403
    failed = runner.invoke(app, ["run", str(spec), "--job-id", "hf", "--json"])
    assert failed.exit_code == 1
    end = events_of(failed.output)[-1]
    assert "refused the upload for alice/retry-model (403)" in end["reason"]
    export = sealed_home / "jobs" / "hf" / "export"
    assert (export / "predict.py").exists() and (export / "model.safetensors").exists()  # nothing thrown away
    assert len(hub.repo("alice/retry-model").commits) == 1  # created, nothing committed

    hub.fail_commits_with = None
    resumed = runner.invoke(app, ["resume", "hf", "--json"])
    assert resumed.exit_code == 0, resumed.output
    repo = hub.repo("alice/retry-model")
    assert len(hub.repos) == 1 and len(repo.commits) == 2
    head = repo.head

    # Pushing the same export again (a resume after a push whose answer was lost) changes nothing.
    context = JobContext.from_json(sqlite3.connect(sealed_home / "mltrainer.db").execute(
        "select context_json from jobs where id='hf'").fetchone()[0])
    again = publish(context, export, token=TOKEN)
    assert again.commit == head and len(repo.commits) == 2


def test_a_read_only_token_is_refused_before_anything_is_created(tmp_path: Path, hub: FakeHub) -> None:
    from orchestrator.errors import CredentialError
    from tools.hub_publish import publish

    hub.add_token(TOKEN, "alice", role="read")
    context = JobContext(job_id="ro", job_dir=str(tmp_path), spec={"deploy": {"target": "hub", "repo_id": "ro-model"}})
    with pytest.raises(CredentialError, match="token of alice is read-only; publishing needs a write token"):
        publish(context, tmp_path, token=TOKEN)
    assert hub.repos == {}


def test_sigkill_mid_upload_then_resume_leaves_one_complete_repo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    spec = hub_spec(tmp_path, "{target: hub, repo_id: alice/crash-model}")
    with fake_hub() as hub:
        hub.add_token(TOKEN, "alice")
        env = dict(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HUB_OFFLINE="0")
        proc = subprocess.Popen([*MLTRAINER, "run", str(spec), "--job-id", "hc", "--json"], env=cli_env(home, **env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        hub.on_commit = lambda: os.kill(proc.pid, signal.SIGKILL)  # dies with its upload in flight…
        hub.drop_commits = 1  # …so the Hub never applies it
        proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL
        assert len(hub.repo("alice/crash-model").commits) == 1
        hub.on_commit = None
        resumed = subprocess.run([*MLTRAINER, "resume", "hc", "--json"], env=cli_env(home, **env),
                                 capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert list(hub.repos) == [("model", "alice/crash-model")]
    repo = hub.repo("alice/crash-model")
    assert len(repo.commits) == 2
    local = export_files(home / "jobs" / "hc" / "export")
    assert set(repo.files) - {".gitattributes"} == set(local)
    assert all(repo.files[n] == d for n, d in local.items() if n != "README.md")
    assert events_of(resumed.stdout)[-1]["deployed_urls"] == [f"{hub.url}/alice/crash-model"]


def test_the_closing_line_says_where_the_model_is_live() -> None:
    from rich.console import Console

    from mltrainer.renderer import LiveRenderer
    from orchestrator.events import PipelineEnd

    buffer = io.StringIO()
    renderer = LiveRenderer(Console(file=buffer, width=200, force_terminal=False, color_system=None))
    with renderer:
        renderer.handle(PipelineEnd(job_id="j", status="done", duration=3.0, export_dir="/x/export",
                                    deployed_urls=("https://huggingface.co/alice/m", "file:///tmp/m")))
    assert "Model live at: https://huggingface.co/alice/m" in buffer.getvalue()
    assert "file:///tmp/m" not in buffer.getvalue().split("Model live at:")[1]
