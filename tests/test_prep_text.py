"""Text classification and seq2seq data families: role inference, reports, splits, tokenizers, bad data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from orchestrator.errors import DataError, UnsupportedError
from tools.prep import family_for
from tools.prep.base import MIN_ROWS, DataOptions
from tools.prep.seq2seq import SEQ2SEQ, column_language
from tools.prep.text import TEXT_CLASSIFICATION, language_hint, normalise_text

HAM = ("hey are you coming home later i will call you tomorrow lunch sounds good see you at the "
       "station ok the meeting is at noon thanks for dinner").split()
SPAM = "free prize winner claim now urgent cash offer click txt reply stop to win mobile bonus".split()
EN_FR = {"the": "le", "cat": "chat", "dog": "chien", "eats": "mange", "sees": "voit", "small": "petit",
         "big": "grand", "house": "maison", "red": "rouge", "bird": "oiseau", "and": "et", "a": "un",
         "sleeps": "dort", "runs": "court", "garden": "jardin", "in": "dans", "green": "vert", "fish": "poisson"}
NEWS = "market stocks rose fell company profit report quarter shares investors growth bank rates economy".split()


def sms_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """SMS-like spam/ham rows (Kaggle spam.csv layout: v1 = label, v2 = text) with a unique word each."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "spam" if rng.random() < 0.3 else "ham"
        words = rng.choice(SPAM if label == "spam" else HAM, rng.integers(4, 25))
        rows.append({"id": i, "v1": label, "v2": " ".join(words) + f" ref{i}x"})
    return pd.DataFrame(rows)


def pairs_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        words = list(rng.choice(list(EN_FR), rng.integers(3, 12)))
        rows.append({"en": " ".join(words), "fr": " ".join(EN_FR[w] for w in words)})
    return pd.DataFrame(rows)


def summary_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        doc = " ".join(rng.choice(NEWS, rng.integers(30, 80)))
        rows.append({"id": f"doc{i}", "title": "news", "article": doc, "highlights": " ".join(doc.split()[:6])})
    return pd.DataFrame(rows)


def text_options(**kwargs: Any) -> DataOptions:
    params = kwargs.pop("params", {})
    return DataOptions(task_type="text_classification", params=params, **kwargs)


def write_csv(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def prepare_text(path: Path, out: Path, **kwargs: Any) -> Any:
    options = text_options(**kwargs)
    inspection = TEXT_CLASSIFICATION.inspect(path, options)
    return TEXT_CLASSIFICATION.prepare(path, options, {"roles": inspection.roles, **inspection.report}, out)


# ---------------------------------------------------------------------------- text classification
def test_registry_finds_both_families() -> None:
    assert family_for("text_classification") is TEXT_CLASSIFICATION
    assert family_for("summarization") is SEQ2SEQ and family_for("translation") is SEQ2SEQ


def test_roles_inferred_and_report(tmp_path: Path) -> None:
    frame = sms_frame()
    frame.loc[3, "v2"] = "   "
    frame.loc[5, "v2"] = frame.loc[4, "v2"]
    frame.loc[5, "v1"] = frame.loc[4, "v1"]
    inspection = TEXT_CLASSIFICATION.inspect(write_csv(tmp_path, frame), text_options())
    report = inspection.report
    assert inspection.roles == {"text": "v2", "target": "v1"}
    assert report["family"] == "text" and report["rows"] == 300 and report["columns"] == 3
    assert "inferred" in report["text_reason"] and "longest" in report["text_reason"]
    assert "inferred" in report["target_reason"]
    assert report["classes"] == ["ham", "spam"]
    assert set(report["target_distribution"]) == {"ham", "spam"}
    assert sum(report["target_distribution"].values()) == report["examples"] == 298
    assert set(report["text_length"]) == {"chars", "words"}
    assert set(report["text_length"]["words"]) == {"mean", "p50", "p95", "max"}
    assert report["empty_texts"] == 1 and report["duplicate_texts"] == 1
    assert report["language_hint"] == "en"
    assert inspection.task_type == "text_classification" and "2 classes" in inspection.summary
    json.dumps(report)  # stored as JSON


def test_named_columns_win_and_case_is_forgiven(tmp_path: Path) -> None:
    frame = sms_frame().rename(columns={"v1": "category", "v2": "Message"})
    frame["notes"] = "a much longer column that is not the text at all, just repeated filler " * 3
    path = write_csv(tmp_path, frame)
    report = TEXT_CLASSIFICATION.inspect(path, text_options()).report
    assert (report["text"], report["target"]) == ("Message", "category")
    report = TEXT_CLASSIFICATION.inspect(path, text_options(text="message", target="CATEGORY")).report
    assert report["text"] == "Message" and "ignoring case" in report["text_reason"]


def test_prepare_writes_stratified_deterministic_splits(tmp_path: Path) -> None:
    path = write_csv(tmp_path, sms_frame())
    first = prepare_text(path, tmp_path / "a")
    second = prepare_text(path, tmp_path / "b")
    other = prepare_text(path, tmp_path / "c", seed=7)
    meta = json.loads(Path(first.files["meta"]).read_text())
    assert meta["family"] == "text" and meta["classes"] == ["ham", "spam"] and meta["seed"] == 42
    assert set(meta["files"].values()) >= {"tokenizer.json", "train.parquet", "ids_train.npy", "y_test.npy"}
    assert first.report["splits"] == meta["splits"] and sum(meta["splits"].values()) == 300
    for split in ("train", "val", "test"):
        ids = np.load(first.files[f"ids_{split}"])
        y = np.load(first.files[f"y_{split}"])
        assert ids.dtype == np.int32 and ids.shape == (meta["splits"][split], meta["max_length"])
        assert y.dtype == np.int64 and len(y) == len(ids)
        table = pd.read_parquet(first.files[split])
        assert list(table.columns) == ["text", "label", "label_id"]
        assert [meta["classes"][i] for i in table["label_id"]] == list(table["label"])
        np.testing.assert_array_equal(ids, np.load(second.files[f"ids_{split}"]))
        np.testing.assert_array_equal(y, np.load(second.files[f"y_{split}"]))
        assert abs(y.mean() - 0.33) < 0.08  # spam share is kept in every split
    assert list(pd.read_parquet(first.files["train"]).text) != list(pd.read_parquet(other.files["train"]).text)
    assert meta["max_length"] % 8 == 0 and 16 <= meta["max_length"] <= 512
    assert first.report["dropped_empty"] == 0 and "truncated_share" in first.report


def test_tokenizer_is_trained_on_train_split_only(tmp_path: Path) -> None:
    result = prepare_text(write_csv(tmp_path, sms_frame()), tmp_path / "out",
                          params={"tokenizer": "wordpiece", "vocab_size": 3000})
    vocab = json.loads(Path(result.files["tokenizer"]).read_text())["model"]["vocab"]
    train_words = {w for t in pd.read_parquet(result.files["train"]).text for w in t.split()}
    test_words = {w for t in pd.read_parquet(result.files["test"]).text for w in t.split()}
    test_only = test_words - train_words
    assert test_only and not any(w in vocab for w in test_only)
    assert all(w in vocab for w in train_words)  # the vocab is big enough for whole train words
    assert result.report["tokenizer"]["kind"] == "wordpiece"


def test_padding_and_truncation(tmp_path: Path) -> None:
    result = prepare_text(write_csv(tmp_path, sms_frame()), tmp_path / "out",
                          params={"tokenizer": "wordpiece", "max_length": 8})
    ids = np.load(result.files["ids_train"])
    texts = list(pd.read_parquet(result.files["train"]).text)
    assert ids.shape[1] == 8 and result.report["max_length"] == 8
    assert result.report["truncated"] > 0 and 0 < result.report["truncated_share"] <= 1
    pad = result.report["tokenizer"]["pad_id"]
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    assert (ids[longest] != pad).all()
    unpadded = prepare_text(write_csv(tmp_path, sms_frame()), tmp_path / "wide",
                            params={"tokenizer": "wordpiece", "max_length": 64})
    wide = np.load(unpadded.files["ids_train"])
    assert (wide[:, -1] == pad).all() and unpadded.report["truncated"] == 0


def test_pretrained_backbone_tokenizer(tmp_path: Path) -> None:
    from tokenizers import processors

    from tools.prep.tokenizer import train_tokenizer

    corpus = [" ".join(HAM + SPAM)] * 5
    tokenizer, _ = train_tokenizer(corpus, kind="wordpiece", vocab_size=200)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                             special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    backbone = tmp_path / "backbone"
    backbone.mkdir()
    tokenizer.save(str(backbone / "tokenizer.json"))
    result = prepare_text(write_csv(tmp_path, sms_frame()), tmp_path / "out",
                          params={"backbone": str(backbone), "max_length": 16})
    info = result.report["tokenizer"]
    assert info["kind"] == "pretrained" and info["backbone"] == str(backbone)
    assert info["vocab_size"] == tokenizer.get_vocab_size()
    ids = np.load(result.files["ids_train"])
    assert (ids[:, 0] == cls).all()
    full = ids[(ids != info["pad_id"]).all(axis=1)]
    assert len(full) and (full[:, -1] == sep).all()  # truncation keeps the closing token


def test_label_folder_layout(tmp_path: Path) -> None:
    root = tmp_path / "reviews"
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for label, words in (("pos", HAM), ("neg", SPAM)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(15):
                (folder / f"{i}.txt").write_text(" ".join(rng.choice(words, 12)) + f"\n\n doc{split}{i}")
    (root / "README.txt").write_text("not a document")
    options = DataOptions(task_type="text_classification")
    inspection = TEXT_CLASSIFICATION.inspect(root, options)
    assert inspection.report["classes"] == ["neg", "pos"] and inspection.report["examples"] == 60
    assert "folder" in inspection.report["target_reason"]
    result = TEXT_CLASSIFICATION.prepare(root, options, {"roles": inspection.roles}, tmp_path / "out")
    assert sum(result.report["splits"].values()) == 60
    assert "\n" not in "".join(pd.read_parquet(result.files["train"]).text)  # whitespace collapsed


def test_parquet_with_string_labels_and_normalisation(tmp_path: Path) -> None:
    frame = sms_frame().rename(columns={"v1": "label", "v2": "text"})[["text", "label"]]
    frame.loc[0, "text"] = "  Cafe\u0301   au   lait \t ok "
    path = tmp_path / "train.parquet"
    frame.to_parquet(path)
    result = prepare_text(path, tmp_path / "out")
    texts = pd.concat(pd.read_parquet(result.files[s]) for s in ("train", "val", "test")).text
    assert "Café au lait ok" in set(texts)
    assert normalise_text(float("nan")) == "" and normalise_text(None) == ""


def test_kaggle_spam_layout_cp1252_with_overflow_columns(tmp_path: Path) -> None:
    frame = sms_frame()
    frame = frame.drop(columns="id")
    frame.loc[0, "v2"] = "win \u00a3100 cash now"
    for k in range(2, 5):
        frame[f"Unnamed: {k}"] = None
        frame.loc[k, f"Unnamed: {k}"] = "a long spill over fragment of a message that was cut at a comma " * 2
    path = tmp_path / "spam.csv"
    path.write_bytes(frame.to_csv(index=False).encode("cp1252"))
    inspection = TEXT_CLASSIFICATION.inspect(path, text_options())
    assert inspection.roles == {"text": "v2", "target": "v1"}
    assert inspection.report["source_file"]["encoding"] == "cp1252"


def test_folder_without_tables_or_classes_and_multilabel(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("one document")
    with pytest.raises(DataError, match="neither a table nor one sub-folder"):
        TEXT_CLASSIFICATION.inspect(tmp_path / "docs", text_options())
    frame = sms_frame()[["v2"]].rename(columns={"v2": "text"})
    frame["labels"] = [["a", "b"]] * len(frame)
    frame.to_parquet(tmp_path / "multi.parquet")
    with pytest.raises(UnsupportedError, match="multi-label"):
        TEXT_CLASSIFICATION.inspect(tmp_path / "multi.parquet", text_options())


def test_numeric_labels_are_class_names(tmp_path: Path) -> None:
    frame = sms_frame()
    frame["v1"] = (frame["v1"] == "spam").astype(float)
    frame.loc[7, "v1"] = np.nan
    report = TEXT_CLASSIFICATION.inspect(write_csv(tmp_path, frame), text_options(target="v1")).report
    assert report["classes"] == ["0", "1"] and report["unlabelled_rows"] == 1


@pytest.mark.parametrize("case, expected", [
    ("missing_text", "did you mean 'message'"),
    ("missing_target", "did you mean 'label'"),
    ("one_class", "at least two"),
    ("tiny_class", "Class 'rare' (2 rows) has fewer than 3 rows"),
    ("tiny_classes", "Classes 'odd' (1 row), 'rare' (2 rows) have fewer than 3 rows"),
    ("labels_missing", "have no label"),
    ("all_empty", "Every text in column 'message'"),
    ("all_missing", "Every text in column 'message'"),
    ("too_few", f"at least {MIN_ROWS}"),
])
def test_bad_text_data_raises_one_sentence(tmp_path: Path, case: str, expected: str) -> None:
    frame = sms_frame(60).rename(columns={"v1": "label", "v2": "message"})
    options = text_options()
    if case == "missing_text":
        options = text_options(text="mesage")
    elif case == "missing_target":
        options = text_options(target="lable")
    elif case == "one_class":
        frame["label"] = "ham"
    elif case == "tiny_class":
        frame.loc[[0, 1], "label"] = "rare"
    elif case == "tiny_classes":
        frame.loc[[0, 1], "label"] = "rare"
        frame.loc[2, "label"] = "odd"
    elif case == "labels_missing":
        frame.loc[frame.index[:40], "label"] = None
    elif case == "all_empty":
        frame["message"] = " "
    elif case == "all_missing":
        frame["message"] = None  # empty cells: read back as a float column of NaN
    elif case == "too_few":
        frame = frame.head(MIN_ROWS - 5)
    with pytest.raises(DataError) as caught:
        TEXT_CLASSIFICATION.inspect(write_csv(tmp_path, frame), options)
    message = str(caught.value)
    assert expected in message and "\n" not in message and message.endswith((".", "?"))


def test_language_hint() -> None:
    assert language_hint(["le chat est dans la maison et je ne sais pas"] * 5) == "fr"
    assert language_hint(["Привет, как дела?"]) == "cyrillic script"
    assert language_hint([""]) is None


# ---------------------------------------------------------------------------- seq2seq
def seq_options(task: str = "translation", **kwargs: Any) -> DataOptions:
    params = kwargs.pop("params", {})
    return DataOptions(task_type=task, params=params, **kwargs)


def prepare_seq(path: Path, out: Path, task: str = "translation", **kwargs: Any) -> Any:
    options = seq_options(task, **kwargs)
    inspection = SEQ2SEQ.inspect(path, options)
    return SEQ2SEQ.prepare(path, options, {"roles": inspection.roles, **inspection.report}, out)


def test_translation_roles_from_language_columns(tmp_path: Path) -> None:
    frame = pairs_frame()
    frame.insert(0, "id", [f"x{i}" for i in range(len(frame))])
    inspection = SEQ2SEQ.inspect(write_csv(tmp_path, frame), seq_options())
    report = inspection.report
    assert inspection.roles == {"text": "en", "target": "fr"}
    assert report["family"] == "seq2seq" and report["rows"] == 200
    assert report["languages"] == {"source": "en", "target": "fr", "from": "column names"}
    assert set(report["source_length"]["words"]) == {"mean", "p50", "p95", "max"}
    assert "en→fr" in inspection.summary
    swapped = SEQ2SEQ.inspect(write_csv(tmp_path, frame), seq_options(params={"source_lang": "fr"})).roles
    assert swapped == {"text": "fr", "target": "en"}
    assert column_language("fr_FR") == "fr" and column_language("english") == "en"
    assert column_language("id", frame["id"]) is None


def test_translation_dict_column_is_expanded(tmp_path: Path) -> None:
    pairs = pairs_frame()
    frame = pd.DataFrame({"translation": [{"en": a, "fr": b} for a, b in zip(pairs.en, pairs.fr)]})
    path = tmp_path / "train.parquet"
    frame.to_parquet(path)
    inspection = SEQ2SEQ.inspect(path, seq_options())
    assert inspection.roles == {"text": "en", "target": "fr"}
    assert inspection.report["expanded_columns"] == {"translation": ["en", "fr"]}
    result = SEQ2SEQ.prepare(path, seq_options(), {"roles": inspection.roles}, tmp_path / "out")
    table = pd.read_parquet(result.files["train"])
    assert list(table.columns) == ["source", "target"]


def test_summarization_roles_and_report(tmp_path: Path) -> None:
    report = SEQ2SEQ.inspect(write_csv(tmp_path, summary_frame()), seq_options("summarization")).report
    assert (report["source_column"], report["target_column"]) == ("article", "highlights")
    assert report["compression_ratio"]["median"] > 3 and "languages" not in report
    json.dumps(report)
    unnamed = summary_frame().rename(columns={"article": "a", "highlights": "b"})[["b", "a"]]
    report = SEQ2SEQ.inspect(write_csv(tmp_path, unnamed, "u.csv"), seq_options("summarization")).report
    assert (report["source_column"], report["target_column"]) == ("a", "b")
    assert "longest" in report["source_reason"]


def test_seq2seq_prepare_outputs_and_determinism(tmp_path: Path) -> None:
    path = write_csv(tmp_path, pairs_frame())
    first = prepare_seq(path, tmp_path / "a", params={"tokenizer": "bpe", "vocab_size": 300})
    second = prepare_seq(path, tmp_path / "b", params={"tokenizer": "bpe", "vocab_size": 300})
    meta = json.loads(Path(first.files["meta"]).read_text())
    info = meta["tokenizer"]
    assert meta["family"] == "seq2seq" and meta["splits"] == first.report["splits"]
    for split in ("train", "val", "test"):
        src, tgt = np.load(first.files[f"src_{split}"]), np.load(first.files[f"tgt_{split}"])
        assert src.dtype == np.int32 and tgt.dtype == np.int32
        assert src.shape == (meta["splits"][split], meta["max_length"])
        assert tgt.shape == (meta["splits"][split], meta["max_target_length"])
        assert (tgt[:, 0] == info["bos_id"]).all() and (tgt == info["eos_id"]).sum(axis=1).tolist() == [1] * len(tgt)
        np.testing.assert_array_equal(src, np.load(second.files[f"src_{split}"]))
        np.testing.assert_array_equal(tgt, np.load(second.files[f"tgt_{split}"]))
    assert (np.load(first.files["src_train"])[:, -1] == info["pad_id"]).any()
    assert sum(first.report["filtered"].values()) == 200 - sum(meta["splits"].values())


def test_seq2seq_length_and_ratio_filters(tmp_path: Path) -> None:
    frame = pairs_frame()
    long_words = " ".join(["the big red house"] * 6)
    frame.loc[:9, "en"] = long_words  # 24 words against a short target: misaligned
    frame.loc[:9, "fr"] = [f"le chat {i}" for i in range(10)]
    frame.loc[10, "fr"] = ""
    path = write_csv(tmp_path, frame)
    result = prepare_seq(path, tmp_path / "out", params={"tokenizer": "wordpiece", "max_length": 64,
                                                         "max_target_length": 64})
    assert result.report["filtered"]["length_ratio"] == 10 and result.report["dropped_empty"] == 1
    result = prepare_seq(path, tmp_path / "out2", params={"tokenizer": "wordpiece", "max_length": 10,
                                                          "max_target_length": 64})
    assert result.report["filtered"]["source_too_long"] > 10 and result.report["max_length"] == 10
    with pytest.raises(DataError, match="raise max_length"):
        prepare_seq(path, tmp_path / "out3", params={"tokenizer": "wordpiece", "max_length": 2})
    with pytest.raises(DataError, match="raise max_target_length"):
        prepare_seq(path, tmp_path / "out4", params={"tokenizer": "wordpiece", "max_target_length": 3})


def test_seq2seq_pretrained_backbone(tmp_path: Path) -> None:
    from tools.prep.tokenizer import train_tokenizer

    tokenizer, _ = train_tokenizer([" ".join(list(EN_FR) + list(EN_FR.values()))] * 5, kind="wordpiece",
                                   vocab_size=200)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    result = prepare_seq(write_csv(tmp_path, pairs_frame()), tmp_path / "out",
                         params={"backbone": str(tmp_path / "tokenizer.json")})
    assert result.report["tokenizer"]["kind"] == "pretrained"
    assert result.report["tokenizer"]["vocab_size"] == tokenizer.get_vocab_size()


@pytest.mark.parametrize("case, expected", [
    ("missing_source", "did you mean 'en'"),
    ("missing_target", "did you mean 'fr'"),
    ("too_few", f"at least {MIN_ROWS}"),
    ("all_empty", "has an empty"),
    ("same_column", "both column 'en'"),
])
def test_bad_seq2seq_data(tmp_path: Path, case: str, expected: str) -> None:
    frame = pairs_frame(60)
    options = seq_options()
    if case == "missing_source":
        options = seq_options(text="enn")
    elif case == "missing_target":
        options = seq_options(target="frr")
    elif case == "too_few":
        frame = frame.head(MIN_ROWS - 1)
    elif case == "all_empty":
        frame["fr"] = ""
    elif case == "same_column":
        options = seq_options(text="en", target="en")
    with pytest.raises(DataError) as caught:
        SEQ2SEQ.inspect(write_csv(tmp_path, frame), options)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
