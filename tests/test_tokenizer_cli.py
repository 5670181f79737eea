"""`mltrainer tokenizer train|load|apply`: the text pipeline's tokenizer code on its own — the same
texts give the same ids as in a prepared job; vocab size, special tokens and min frequency are honoured;
offline Hub ids fail in one sentence while local folders load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from tests.test_model_text import topic_frame

runner = CliRunner()


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(topic_frame(200)["message"]) + "\n\n")
    return path


def train(*args: str) -> str:
    result = runner.invoke(app, ["tokenizer", "train", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_train_kinds_with_vocab_size_and_special_tokens(corpus: Path, tmp_path: Path, kind: str) -> None:
    from tokenizers import Tokenizer

    out = tmp_path / f"{kind}.json"
    shown = train(str(corpus), "-o", str(out), "--kind", kind, "--vocab-size", "400",
                  "--special-tokens", "<pad>,<unk>,<s>")
    assert f"Trained a {kind} tokenizer" in shown and "on 200 texts" in shown
    tokenizer = Tokenizer.from_file(str(out))
    assert [tokenizer.id_to_token(i) for i in range(3)] == ["<pad>", "<unk>", "<s>"]
    assert tokenizer.get_vocab_size() <= 400  # byte-level BPE starts from 256 bytes
    again = tmp_path / f"{kind}-again.json"
    train(str(corpus), "-o", str(again), "--kind", kind, "--vocab-size", "400", "--special-tokens", "<pad>,<unk>,<s>")
    assert out.read_text() == again.read_text()  # deterministic: same texts, same vocabulary and ids
    encoded = tokenizer.encode("the coach bakes pizza")
    assert encoded.ids and tokenizer.decode(encoded.ids).replace(" ", "") in ("thecoachbakespizza",)


def test_min_frequency_shrinks_the_vocabulary(corpus: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    sizes = {}
    for minimum in ("0", "40"):
        train(str(corpus), "-o", str(tmp_path / f"m{minimum}"), "--kind", "wordpiece", "--vocab-size", "400",
              "--min-frequency", minimum)
        sizes[minimum] = Tokenizer.from_file(str(tmp_path / f"m{minimum}" / "tokenizer.json")).get_vocab_size()
    assert sizes["40"] < sizes["0"]


def test_text_pipeline_and_cli_give_the_same_tokenizer(tmp_path: Path) -> None:
    """A prepared text job's tokenizer.json equals the CLI's, trained on that job's training split column."""
    from tools.prep import family_for
    from tools.prep.base import DataOptions

    topic_frame(240).to_csv(tmp_path / "texts.csv", index=False)
    options = DataOptions(task_type="text_classification", target="topic", text="message",
                          params={"tokenizer": "wordpiece", "vocab_size": 150})
    family = family_for("text_classification")
    inspection = family.inspect(tmp_path / "texts.csv", options, lambda message, level="info": None)
    family.prepare(tmp_path / "texts.csv", options, inspection.report, tmp_path / "data", lambda message, level="info": None)
    train(str(tmp_path / "data" / "train.parquet"), "--column", "text", "-o", str(tmp_path / "cli.json"),
          "--kind", "wordpiece", "--vocab-size", "150")
    assert (tmp_path / "cli.json").read_text() == (tmp_path / "data" / "tokenizer.json").read_text()


def test_dataset_column_and_bad_column(tmp_path: Path) -> None:
    topic_frame(60).to_csv(tmp_path / "texts.csv", index=False)
    shown = train(str(tmp_path / "texts.csv"), "--column", "message", "-o", str(tmp_path / "tok"), "--kind", "char")
    assert "on 60 texts" in shown and (tmp_path / "tok" / "tokenizer.json").is_file()
    result = runner.invoke(app, ["tokenizer", "train", str(tmp_path / "texts.csv"), "--column", "body", "-o",
                                 str(tmp_path / "x.json")])
    assert result.exit_code == 1 and "has no column 'body'" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["tokenizer", "train", str(tmp_path / "texts.csv"), "-o", str(tmp_path / "x.json")])
    assert result.exit_code == 1 and "--column" in result.output  # two text columns: which one?


def test_load_offline_hub_id_fails_in_one_sentence_and_a_local_folder_works(corpus: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["tokenizer", "load", "bert-base-uncased", "-o", str(tmp_path / "bert")])
    assert result.exit_code != 0 and "no network" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2
    train(str(corpus), "-o", str(tmp_path / "mine"), "--kind", "bpe", "--vocab-size", "300")
    result = runner.invoke(app, ["tokenizer", "load", str(tmp_path / "mine"), "-o", str(tmp_path / "copy.json")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "copy.json").read_text() == (tmp_path / "mine" / "tokenizer.json").read_text()


def test_apply_prints_tokens_and_ids(corpus: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    train(str(corpus), "-o", str(tmp_path / "wp.json"), "--kind", "wordpiece", "--vocab-size", "200")
    tokenizer = Tokenizer.from_file(str(tmp_path / "wp.json"))
    result = runner.invoke(app, ["tokenizer", "apply", str(tmp_path / "wp.json"), "Goal for the team", "spicy sauce"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["text"] for r in rows] == ["Goal for the team", "spicy sauce"]
    assert rows[0]["ids"] == tokenizer.encode("Goal for the team", add_special_tokens=False).ids
    assert rows[0]["tokens"][0] == "goal"  # wordpiece lower-cases
    (tmp_path / "in.txt").write_text("one match\n\nsecond oven\n")
    result = runner.invoke(app, ["tokenizer", "apply", str(tmp_path / "wp.json"), "-i", str(tmp_path / "in.txt"),
                                 "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0 and len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    result = runner.invoke(app, ["tokenizer", "apply", str(tmp_path / "wp.json")])
    assert result.exit_code == 2 and "--input" in result.output


def test_load_by_hub_id_when_the_hub_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reachable Hub (here a loopback fake) serves the model's tokenizer.json by id."""
    import huggingface_hub.constants as hub_constants
    from tokenizers import Tokenizer, models

    from tests.fakes.hub_server import Repo, fake_hub

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    with fake_hub() as hub:
        repo = Repo("acme/tiny-bert", "model", private=False)
        repo.commit("add tokenizer", {"tokenizer.json": tokenizer.to_str().encode()})
        hub.repos[("model", "acme/tiny-bert")] = repo
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # huggingface_hub read these at import
        monkeypatch.setattr(hub_constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        result = runner.invoke(app, ["tokenizer", "load", "acme/tiny-bert", "-o", str(tmp_path / "tiny.json")])
    assert result.exit_code == 0, result.output
    assert Tokenizer.from_file(str(tmp_path / "tiny.json")).get_vocab() == {"[UNK]": 0, "hello": 1, "world": 2}
    assert "(3 tokens)" in result.output and (tmp_path / "hub-cache").is_dir()
