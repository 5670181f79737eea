"""Every kind of bad data ends the same way: exit 1, one sentence naming the problem and the fix,
the job failed at the dataset or preprocessing stage with the exact error class and no retries
burned — and, once the data is fixed, ``mltrainer resume`` carries on."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from orchestrator.retry import POLICIES
from tests.conftest import make_classification_frame, write_spec

runner = CliRunner()


@dataclass
class Case:
    spec: Path
    stage: str  # where the job must fail
    error_type: str  # the exact error class
    phrase: str  # words the one sentence must contain
    fix: Callable[[], None]  # repair the data (the stored spec stays as it was)
    attempts: int = 1  # not retryable: one attempt only
    env: dict[str, str] = field(default_factory=dict)  # environment the resume runs with


def _table(tmp: Path, frame: pd.DataFrame, **spec: object) -> tuple[Path, Path]:
    data = tmp / "data.csv"
    frame.to_csv(data, index=False)
    return data, write_spec(tmp, **spec)  # type: ignore[arg-type]


def _good(data: Path) -> Callable[[], None]:
    return lambda: make_classification_frame(120).to_csv(data, index=False)


# ---------------------------------------------------------------------------------------- tables
def missing_file(tmp: Path) -> Case:
    spec = write_spec(tmp)
    return Case(spec, "dataset", "DataError", "does not exist; check the path", _good(tmp / "data.csv"))


def empty_file(tmp: Path) -> Case:
    data, spec = _table(tmp, make_classification_frame(120))
    data.write_bytes(b"")
    return Case(spec, "dataset", "DataError", "is empty (0 bytes)", _good(data))


def header_only(tmp: Path) -> Case:
    data, spec = _table(tmp, make_classification_frame(120))
    data.write_text("row_id,x1,x2,color,label\n")
    return Case(spec, "dataset", "DataError", "has a header but no data rows", _good(data))


def binary_junk(tmp: Path) -> Case:
    data, spec = _table(tmp, make_classification_frame(120))
    data.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    return Case(spec, "dataset", "DataError", "contains binary bytes", _good(data))


def mixed_encodings(tmp: Path) -> Case:
    data, spec = _table(tmp, make_classification_frame(120))
    text = data.read_text()
    head, tail = text[: len(text) // 2], text[len(text) // 2:]
    data.write_bytes(head.replace("red", "réd").encode("utf-8") + tail.replace("red", "réd").encode("cp1252"))
    return Case(spec, "dataset", "DataError", "mixes text encodings", _good(data))


def missing_target(tmp: Path) -> Case:
    data, spec = _table(tmp, make_classification_frame(120).rename(columns={"label": "Labels"}))
    return Case(spec, "dataset", "DataError", "The target column 'label' is not in data.csv; did you mean 'Labels'?",
                _good(data))


def one_class(tmp: Path) -> Case:
    data, spec = _table(tmp, make_classification_frame(120).assign(label="yes"))
    return Case(spec, "dataset", "DataError", "has only one value ('yes')", _good(data))


def single_row_class(tmp: Path) -> Case:
    frame = make_classification_frame(120)
    frame.loc[5, "label"] = "maybe"
    data, spec = _table(tmp, frame)
    return Case(spec, "preprocessing", "DataError", "Class 'maybe' has fewer than 3 rows", _good(data))


def all_nan_target(tmp: Path) -> Case:
    data, spec = _table(tmp, make_classification_frame(120).assign(label=np.nan))
    return Case(spec, "dataset", "DataError", "is empty in 120 of 120 rows", _good(data))


def only_feature_all_nan(tmp: Path) -> Case:
    frame = pd.DataFrame({"x": [np.nan] * 120, "label": ["yes", "no"] * 60})
    data, spec = _table(tmp, frame)
    return Case(spec, "preprocessing", "DataError", "No usable feature columns are left", _good(data))


def labels_mostly_missing(tmp: Path) -> Case:
    frame = make_classification_frame(120)
    frame.loc[frame.index[:90], "label"] = np.nan
    data, spec = _table(tmp, frame)
    return Case(spec, "dataset", "DataError", "is empty in 90 of 120 rows; label most rows first", _good(data))


def over_the_cap(tmp: Path) -> Case:
    frame = make_classification_frame(120)
    data, spec = _table(tmp, pd.concat([frame] * 10), extra="")
    spec.write_text(spec.read_text().replace("  target: label\n", "  target: label\n  max_bytes: 8KB\n"))
    return Case(spec, "dataset", "DataError", "above the data cap of 8.0 KB; raise data.max_bytes", lambda: frame.iloc[:100].to_csv(data, index=False))


# ------------------------------------------------------------------------------ other families
def _spec(tmp: Path, text: str) -> Path:
    path = tmp / "spec.yaml"
    path.write_text(text)
    return path


def _images(folder: Path, junk: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(15):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (10, 12, 3)), 0, 255).astype(np.uint8)
            if i < junk:
                (folder / label / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really an image" * 3)
            else:
                Image.fromarray(pixels).save(folder / label / f"{i}.png")


def undecodable_images(tmp: Path) -> Case:
    _images(tmp / "pics", junk=5)  # a third of the images are junk
    spec = _spec(tmp, "task: tell red from blue\ntask_type: image_classification\ndata:\n  source: pics\n")
    return Case(spec, "dataset", "DataError", "could not be decoded", lambda: _images(tmp / "pics", junk=0))


def duplicate_timestamps(tmp: Path) -> Case:
    dates = pd.date_range("2022-01-01", periods=200, freq="D")
    frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "sales": np.arange(200.0) % 7 + 10})
    data = tmp / "sales.csv"
    pd.concat([frame, frame.iloc[[10, 11]]]).to_csv(data, index=False)
    spec = _spec(tmp, "task: forecast sales\ntask_type: time_series_forecasting\n"
                      "data:\n  source: sales.csv\n  time: date\n  target: sales\n")
    return Case(spec, "dataset", "DataError", "duplicate", lambda: frame.to_csv(data, index=False))


CASES: dict[str, Callable[[Path], Case]] = {
    "missing file": missing_file,
    "empty file": empty_file,
    "header only": header_only,
    "binary junk": binary_junk,
    "mixed encodings": mixed_encodings,
    "missing target": missing_target,
    "one class": one_class,
    "single-row class": single_row_class,
    "all-NaN target": all_nan_target,
    "only feature all NaN": only_feature_all_nan,
    "labels mostly missing": labels_mostly_missing,
    "file over the cap": over_the_cap,
    "undecodable images": undecodable_images,
    "duplicate timestamps": duplicate_timestamps,
}


def show_json(job_id: str) -> dict:
    result = runner.invoke(app, ["show", job_id, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def one_sentence(message: str) -> bool:
    """One line that ends once: a full stop or question mark, at the end only."""
    ends = re.findall(r"[.?!](?=\s+[A-Z]|\s*$)", message)
    return "\n" not in message and len(ends) == 1 and message.rstrip()[-1] in ".?!"


def fail_then_resume(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["run", str(case.spec), "--job-id", "bad", "--until", "preprocessing"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    detail = show_json("bad")
    failure = detail["failure"]
    assert (failure["stage"], failure["error_type"]) == (case.stage, case.error_type), failure
    assert case.phrase in failure["error"]
    assert one_sentence(failure["error"]), failure["error"]
    assert failure["error"][:60] in result.output.replace("\n", " ")  # the sentence was printed
    stage = next(s for s in detail["stages"] if s["stage"] == case.stage)
    assert stage["attempts"] == case.attempts
    text = runner.invoke(app, ["show", "bad"]).output
    assert f"failed at {case.stage}" in text and "mltrainer resume bad" in text

    case.fix()
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(app, ["resume", "bad", "--until", "preprocessing"])
    assert result.exit_code == 0, result.output
    detail = show_json("bad")
    assert detail["status"] == "paused"
    done = [s["stage"] for s in detail["stages"] if s["status"] == "done"]
    assert done == ["intent", "dataset", "preprocessing"]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_once_with_one_sentence_then_resumes(tmp_path: Path, name: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fail_then_resume(CASES[name](tmp_path), monkeypatch)


# ------------------------------------------------------------------------ the Hub (loopback fake)
HF_TOKEN = "hf_" + "B" * 34


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import huggingface_hub.constants

    from tests.fakes.hf_data_server import fake_hf_data

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    # the real retry counts, without the real waits
    for stage in ("dataset", "preprocessing"):
        monkeypatch.setitem(POLICIES, stage, replace(POLICIES[stage], base_delay=0.0, jitter=0.0))
    with fake_hf_data() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        fake.add_token(HF_TOKEN)
        yield fake


def _sms_parquet() -> dict[str, bytes]:
    import io

    buffer = io.BytesIO()
    frame = pd.read_csv(Path(__file__).resolve().parent.parent / "examples" / "data" / "sms.csv")
    frame.to_parquet(buffer)
    return {"data/train-00000-of-00001.parquet": buffer.getvalue()}


def _hub_spec(tmp: Path, repo: str) -> Path:
    return _spec(tmp, f"task: spam or ham\ntask_type: text_classification\ndata:\n  source: hf://{repo}\n"
                      "  text: message\n  target: label\n")


def test_hub_dataset_not_found_then_published(tmp_path: Path, hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)  # with a token the Hub says 404, not 401
    case = Case(_hub_spec(tmp_path, "acme/sms"), "dataset", "DataError", "was not found on the Hub",
                lambda: hub.add_repo("acme/sms", _sms_parquet()))
    fail_then_resume(case, monkeypatch)


def test_hub_private_dataset_without_a_token(tmp_path: Path, hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("acme/private-sms", _sms_parquet(), private=True)
    case = Case(_hub_spec(tmp_path, "acme/private-sms"), "dataset", "CredentialError", "private or gated",
                lambda: None, env={"HF_TOKEN": HF_TOKEN})
    fail_then_resume(case, monkeypatch)


def test_no_network_burns_the_retries_then_resumes(tmp_path: Path, hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network flake is retried (all three dataset attempts); not-found and no-permission are not."""
    hub.add_repo("acme/sms", _sms_parquet())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    case = Case(_hub_spec(tmp_path, "acme/sms"), "dataset", "TransientError", "check the network",
                lambda: None, attempts=POLICIES["dataset"].attempts, env={"HF_ENDPOINT": hub.url})
    fail_then_resume(case, monkeypatch)


def test_a_token_in_the_spec_reads_a_private_set_and_is_stored_nowhere(tmp_path: Path, hub: Any) -> None:
    import os

    hub.add_repo("acme/private-sms", _sms_parquet(), private=True)
    spec = _spec(tmp_path, "task: spam or ham\ntask_type: text_classification\ndata:\n  source: hf://acme/private-sms\n"
                           f"  token: {HF_TOKEN}\n  text: message\n  target: label\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "tok", "--until", "preprocessing"])
    assert result.exit_code == 0, result.output
    assert any(r.get("authorization") == f"Bearer {HF_TOKEN}" for r in hub.requests)  # it was used…
    assert HF_TOKEN not in result.output  # …and shown, stored or written nowhere but the vault
    home = Path(os.environ["MLTRAINER_HOME"])
    files = [p for p in home.rglob("*") if p.is_file() and p.name != "vault.json"]
    assert any(p.name == "mltrainer.db" for p in files)
    for path in files:
        data = path.read_bytes()
        assert HF_TOKEN.encode() not in data and HF_TOKEN[3:15].encode() not in data, path
