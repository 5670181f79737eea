"""End to end through the CLI: run, jobs, show, predict; bad data fails clearly and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from tests.conftest import make_classification_frame, make_regression_frame, write_spec

runner = CliRunner()


def show_json(job_id: str) -> dict:
    result = runner.invoke(app, ["show", job_id, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_classification_job_end_to_end(tmp_path: Path) -> None:
    frame = make_classification_frame(400)
    frame.iloc[:360].to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, extra="deploy: {target: local, path: published}\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "clf"])
    assert result.exit_code == 0, result.output
    assert ">> training" in result.output and "✓" in result.output
    detail = show_json("clf")
    assert detail["status"] == "done"
    assert [s["status"] for s in detail["stages"]] == ["done"] * 9
    assert all(s["attempts"] == 1 for s in detail["stages"])
    assert detail["test_metrics"]["accuracy"] > 0.65
    export = Path(detail["artifacts"]["export_dir"])
    for name in ("model.safetensors", "model.json", "transform.json", "transform.py", "predict.py", "config.json", "README.md"):
        assert (export / name).exists(), name
    card = (export / "README.md").read_text()
    assert "accuracy" in card and "Trivial baseline (majority class)" in card
    assert "![loss per epoch](loss_curve.png)" in card and "mlp val in" in card
    assert (export / "loss_curve.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    run = json.loads((export.parent / "run" / "out" / "metrics.json").read_text())
    assert run["baseline"]["name"] == "majority class" and run["test"]["accuracy"] > run["baseline"]["accuracy"]
    search = detail["architecture"]["search"]  # both candidates and their validation scores are on record
    assert set(search) == {"gbdt", "mlp"} and detail["architecture"]["kept"] in search
    assert all("accuracy" in scores for scores in search.values())
    assert detail["architecture"]["plan"]["candidates"] and detail["codegen"]["origin"] == "template"
    assert (tmp_path / "published" / "predict.py").exists()
    assert detail["deployed_urls"] == [(tmp_path / "published").resolve().as_uri()]

    new_rows = frame.iloc[360:].drop(columns=["label"])
    new_rows.to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(app, ["predict", "clf", "--input", str(tmp_path / "new.csv"), "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == len(new_rows)
    assert set(out["label"]) <= {"yes", "no"}
    accuracy = (out["label"].to_numpy() == frame.iloc[360:]["label"].to_numpy()).mean()
    assert accuracy > 0.6

    listing = runner.invoke(app, ["jobs"])
    assert "clf" in listing.output and "done" in listing.output
    text = runner.invoke(app, ["show", "clf"])
    assert "training" in text.output and "export_dir" in text.output


def test_regression_job_and_predict_missing_column(tmp_path: Path) -> None:
    frame = make_regression_frame(400)
    frame.to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, target="value", task="predict the value")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "reg", "--json"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert events[0]["type"] == "pipeline_start" and events[-1]["type"] == "pipeline_end"
    assert any(e["type"] == "training_metric" for e in events)
    detail = show_json("reg")
    assert detail["task_type"] == "tabular_regression"
    assert detail["test_metrics"]["r2"] > 0.8

    frame.drop(columns=["value", "kind"]).to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(app, ["predict", "reg", "--input", str(tmp_path / "bad.csv"), "--output", str(tmp_path / "o.csv")])
    assert result.exit_code == 1
    assert "missing 1 column(s) the model needs: 'kind'" in result.output
    assert "Traceback" not in result.output


def _bad_data(tmp_path: Path, case: str) -> tuple[Path, str]:
    """Write a broken data file for ``case``; returns (spec, expected words)."""
    data = tmp_path / "data.csv"
    frame = make_classification_frame(120)
    spec = write_spec(tmp_path)
    if case == "missing file":
        return spec, "does not exist"
    if case == "missing target":
        frame.rename(columns={"label": "Labels"}).to_csv(data, index=False)
        return spec, "The target column 'label' is not in data.csv; did you mean 'Labels'?"
    if case == "one class":
        frame.assign(label="yes").to_csv(data, index=False)
        return spec, "has only one value ('yes')"
    if case == "empty file":
        data.write_bytes(b"")
        return spec, "is empty (0 bytes)"
    if case == "header only":
        data.write_text("row_id,x1,x2,color,label\n")
        return spec, "has a header but no data rows"
    if case == "non-utf8":
        data.write_bytes(b"a,label\n\x81\x8d\x90,1\n" * 30)
        return spec, "is not UTF-8 text (invalid byte 0x81"
    if case == "binary junk":
        data.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
        return spec, "contains binary bytes"
    raise AssertionError(case)


def test_fixing_the_data_then_resume_completes(tmp_path: Path) -> None:
    spec, _ = _bad_data(tmp_path, "missing target")
    assert runner.invoke(app, ["run", str(spec), "--job-id", "fixme"]).exit_code == 1
    make_classification_frame(200).to_csv(tmp_path / "data.csv", index=False)
    result = runner.invoke(app, ["resume", "fixme"])
    assert result.exit_code == 0, result.output
    detail = show_json("fixme")
    assert detail["status"] == "done"
    intent = next(s for s in detail["stages"] if s["stage"] == "intent")
    assert intent["attempts"] == 1  # the completed stage did not run again
    text = runner.invoke(app, ["show", "fixme"])  # a skipped deploy stage renders too
    assert text.exit_code == 0 and "skipped" in text.output, text.output
    result = runner.invoke(app, ["resume", "fixme"])
    assert result.exit_code == 2 and "already done" in result.output


def test_unknown_job_and_unfinished_predict(tmp_path: Path) -> None:
    result = runner.invoke(app, ["show", "nope"])
    assert result.exit_code == 2 and "no job named 'nope'" in result.output
    spec, _ = _bad_data(tmp_path, "one class")
    runner.invoke(app, ["run", str(spec), "--job-id", "half"])
    (tmp_path / "in.csv").write_text("x1\n1\n")
    result = runner.invoke(app, ["predict", "half", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "has no exported model yet" in result.output


def test_llm_finetuning_without_a_base_model_prepares_its_data_then_stops_clearly(tmp_path: Path) -> None:
    """LLM fine-tuning data is fetched, checked and split; with no base model named, config stops in one sentence."""
    rows = [{"instruction": f"Add {i} and {i + 1}.", "output": f"The sum is {2 * i + 1}."} for i in range(40)]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = write_spec(tmp_path, data="pairs.jsonl", target=None, task="fine-tune an LLM on these instructions",
                      extra="task_type: llm_finetuning\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "ft"])
    assert result.exit_code == 1
    assert "LLM fine-tuning needs a base model; set hyperparameters.backbone" in result.output
    detail = show_json("ft")
    assert detail["failure"]["stage"] == "config" and detail["failure"]["error_type"] == "SpecError"
    assert [s["status"] for s in detail["stages"][:3]] == ["done", "done", "done"]
    assert detail["data_report"]["family"] == "lm" and detail["data_report"]["format"] == "instruction"


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "Usage" in result.output and "resume" in result.output


def test_an_internal_bug_is_one_sentence_with_the_traceback_in_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr("mltrainer.renderer.print_jobs", broken)
    result = runner.invoke(app, ["jobs"])
    assert result.exit_code == 1
    assert "Internal error (RuntimeError: renderer exploded); the traceback is in" in result.output
    assert "Traceback" not in result.output
    log = Path(result.output.split("the traceback is in ")[1].strip().rstrip("."))
    assert "renderer exploded" in log.read_text()


def test_an_existing_job_id_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    from tools.vault import Vault

    make_classification_frame(100).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, task="predict whether the label is yes")
    runner.invoke(app, ["run", str(spec), "--job-id", "twice", "--json"])
    before = Vault().refs("twice")
    spec.write_text(spec.read_text() + "# token hf_" + "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bD1fH3j" + "\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "twice"])
    assert result.exit_code == 2 and "already exists" in result.output
    assert Vault().refs("twice") == before


def test_bundled_and_url_sources_run_end_to_end(tmp_path: Path) -> None:
    from tests.fakes.file_server import file_server

    spec = tmp_path / "spec.yaml"
    spec.write_text("task: classify the wine cultivar\ndata:\n  source: sklearn://wine\n"
                    "hyperparameters: {epochs: 3, patience: 2, gbdt_rounds: 10}\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "wine"])
    assert result.exit_code == 0, result.output
    detail = show_json("wine")
    assert detail["task_type"] == "tabular_classification" and detail["test_metrics"]["accuracy"] > 0.8

    frame = make_regression_frame(300)
    with file_server() as server:
        url = server.add("/exports/values.csv", frame.to_csv(index=False).encode(), content_type="text/csv", etag='"v1"')
        spec.write_text(f"task: predict the value\ndata:\n  source: {url}\n  target: value\n"
                        "hyperparameters: {epochs: 3, patience: 2, gbdt_rounds: 10}\n")
        result = runner.invoke(app, ["run", str(spec), "--job-id", "remote"])
        assert result.exit_code == 0, result.output
        assert server.full_downloads("/exports/values.csv") == 1
    detail = show_json("remote")
    assert detail["test_metrics"]["r2"] > 0.5


def test_unknown_source_scheme_is_a_spec_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: x\ndata:\n  source: s3://bucket/data.csv\n")
    result = runner.invoke(app, ["run", str(spec)])
    assert result.exit_code == 2 and "'s3://' is not available" in result.output


def test_the_data_report_flags_leakage_and_the_column_is_dropped(tmp_path: Path) -> None:
    frame = make_classification_frame(300)
    frame["label_code"] = frame["label"].map({"yes": 1, "no": 0})  # a relabelled copy of the target
    frame["constant"] = 7
    frame["notes"] = [f"free text note number {i} about this row, long enough to be text" for i in range(len(frame))]
    frame.to_csv(tmp_path / "data.csv", index=False)
    result = runner.invoke(app, ["run", str(write_spec(tmp_path)), "--job-id", "leak"])
    assert result.exit_code == 0, result.output
    assert "dropped column 'label_code'" in result.output
    from mltrainer import settings
    from mltrainer.store import Store

    context = json.loads(Store(settings.db_path()).require_job("leak").context_json)
    report = context["data_report"]
    assert report["leakage_suspects"] == ["label_code"]
    assert report["constant_columns"] == ["constant"] and "row_id" in report["id_like_columns"]
    assert "notes" in report["text_length"]
    assert context["preprocessing_report"]["dropped_columns"]["label_code"] == "leaks the target"
    assert show_json("leak")["test_metrics"]["accuracy"] < 0.99  # the copy did not make it in
