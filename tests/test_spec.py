"""Bad specs: one clear sentence, exit status 2, no traceback, and nothing in the store lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from mltrainer.spec import load_spec, parse_duration
from orchestrator.errors import SpecError

runner = CliRunner()

BAD_SPECS = [
    ("task: x\ndata: {source: d.csv, targt: y}\n", "unknown key 'data.targt' (did you mean 'target'?)"),
    ("task: x\ndata: {source: d.csv}\ncolour: blue\n", "unknown key 'colour'"),
    ("tsk: x\ndata: {source: d.csv}\n", "unknown key 'tsk' (did you mean 'task'?)"),
    ("data: {source: d.csv}\n", "required key 'task' is missing"),
    ("task: x\ndata: {source: d.csv}\nhyperparameters: {epoch: 3}\n", "unknown hyperparameter 'epoch' (did you mean 'epochs'?)"),
    ("task: x\ndata: {source: d.csv}\nhyperparameters: {lr: -1}\n", "'lr'=-1 is outside"),
    ("task: x\ndata: {source: d.csv}\ntask_type: tabular_clasification\n", "did you mean 'tabular_classification'?"),
    ("task: x\ndata: {source: d.csv}\nbudget: {time: soon}\n", "'soon' is not a duration"),
    ("task: x\ndata: {source: d.csv}\nruntime: mars\n", "runtime 'mars' is not available"),
    ("task: [unclosed\n", "is not valid YAML at line"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("", "is empty"),
    ("   \n\n", "is empty"),
]


@pytest.mark.parametrize("text,expected", BAD_SPECS)
def test_bad_spec_is_one_sentence(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and "Traceback" not in message


def test_non_utf8_spec(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"task: caf\xe9 \x81\ndata: {source: d.csv}\n")
    with pytest.raises(SpecError, match=r"not UTF-8 text \(invalid byte 0xe9 at offset 9\)"):
        load_spec(path)


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400), (30, 30)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def _existing_job(tmp_path: Path) -> None:
    from mltrainer import settings
    from mltrainer.store import Store

    store = Store(settings.db_path())
    store.create_job("keep-me", '{"job_id": "keep-me"}')
    store.close()


@pytest.mark.parametrize("text,expected", BAD_SPECS[:4] + [("", "is empty")])
def test_cli_exit_2_without_traceback_and_store_intact(tmp_path: Path, text: str, expected: str) -> None:
    _existing_job(tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert len([l for l in result.output.splitlines() if l.strip()]) == 1
    listing = runner.invoke(app, ["jobs", "--json"])
    assert [j["id"] for j in __import__("json").loads(listing.output)] == ["keep-me"]


def test_cli_missing_spec_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_cli_non_utf8_spec_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"task: \xff\xfe\n")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "not UTF-8" in result.output


def test_bad_job_id(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("task: x\ndata: {source: d.csv}\n")
    result = runner.invoke(app, ["run", str(path), "--job-id", "../escape"])
    assert result.exit_code == 2 and "--job-id" in result.output


def test_sources_resolve_relative_to_the_spec_and_bare_hub_ids(tmp_path: Path) -> None:
    from mltrainer.spec import Spec, resolve_source

    (tmp_path / "data").mkdir()
    spec_path = tmp_path / "spec.yaml"

    def resolved(source: str) -> str:
        return resolve_source(Spec.model_validate({"task": "t", "data": {"source": source}}), spec_path)

    assert resolved("data/churn.csv") == str(tmp_path / "data" / "churn.csv")
    assert resolved("data/images") == str(tmp_path / "data" / "images")  # a local folder's child, even if missing
    assert resolved("stanfordnlp/imdb") == "hf://stanfordnlp/imdb"
    assert resolved("acme/sms:en@train") == "hf://acme/sms:en@train"
    assert resolved("acme/table.csv") == str(tmp_path / "acme" / "table.csv")  # a file name, not a Hub id
    assert resolved("kaggle://owner/set") == "kaggle://owner/set"
    with pytest.raises(SpecError, match="scheme 's3://' is not available"):
        resolved("s3://bucket/key.csv")


def test_data_cap_accepts_sizes_and_refuses_nonsense(tmp_path: Path) -> None:
    from mltrainer.spec import Spec

    def cap(value: object) -> int | None:
        return Spec.model_validate({"task": "t", "data": {"source": "x.csv", "max_bytes": value}}).data.max_bytes

    assert cap("500MB") == 500_000_000 and cap("2GiB") == 2 * 2**30 and cap(1024) == 1024 and cap("8 kb") == 8000
    path = tmp_path / "spec.yaml"
    path.write_text("task: t\ndata:\n  source: x.csv\n  max_bytes: lots\n")
    with pytest.raises(SpecError, match="'data.max_bytes' is invalid: 'lots' is not a size"):
        load_spec(path)
