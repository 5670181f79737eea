"""Token classification and language-modelling data families: reading, checks, splits and arrays on disk."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from orchestrator.errors import DataError
from tools.prep import family_for
from tools.prep.base import DataOptions
from tools.prep.lm import LANGUAGE_MODELLING
from tools.prep.tokens import TOKEN_CLASSIFICATION, align_labels, detect_scheme, repair_bio

PEOPLE = ["John", "Mary Smith", "Angela Merkel", "Ali", "Barack Obama", "Zhang Wei"]
PLACES = ["Paris", "New York", "Berlin", "Buenos Aires", "Tokyo"]
ORGS = ["Acme Corporation", "Google", "United Nations", "Deutsche Bank"]
TEMPLATES = [
    "{per} lives in {loc} .",
    "{per} works for {org} in {loc} .",
    "{org} opened an office in {loc} yesterday .",
    "{per} met {per2} at the {org} headquarters .",
    "Unbelievably , {per} moved to {loc} .",
]


def ner_sentences(n: int = 240, seed: int = 0) -> list[list[tuple[str, str]]]:
    """Sentences of (word, BIO tag) from templates."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        template = rng.choice(TEMPLATES)
        slots = {"per": ("PER", rng.choice(PEOPLE)), "per2": ("PER", rng.choice(PEOPLE)),
                 "loc": ("LOC", rng.choice(PLACES)), "org": ("ORG", rng.choice(ORGS))}
        sentence = []
        for piece in template.split():
            if piece.startswith("{"):
                kind, words = slots[piece.strip("{}")]
                for i, word in enumerate(words.split()):
                    sentence.append((word, ("B-" if i == 0 else "I-") + kind))
            else:
                sentence.append((piece, "O"))
        out.append(sentence)
    return out


def write_conll(path: Path, sentences: list[list[tuple[str, str]]], docstart: bool = True) -> Path:
    """CoNLL-2003 layout: word POS chunk NER, -DOCSTART- lines between documents."""
    lines = []
    for i, sentence in enumerate(sentences):
        if docstart and i % 50 == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
        lines += [f"{w} {'NNP' if t != 'O' else 'XX'} {'B-NP' if t != 'O' else 'O'} {t}" for w, t in sentence]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def tok_options(**params: Any) -> DataOptions:
    return DataOptions("token_classification", params=params)


def lm_options(task: str = "text_generation", **params: Any) -> DataOptions:
    return DataOptions(task, params=params)


def prepared(family: Any, path: Path, options: DataOptions, out: Path) -> Any:
    inspection = family.inspect(path, options)
    return family.prepare(path, options, {**inspection.report, "roles": inspection.roles}, out)


def descr_texts() -> list[str]:
    """scikit-learn's bundled dataset descriptions (found without importing sklearn)."""
    spec = importlib.util.find_spec("sklearn")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "descr" if spec else None
    if folder is None or not folder.is_dir():
        return [" ".join(f"Sentence {i} of document {d} talks about data." for i in range(60)) for d in range(14)]
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.rst"))]


# ---------------------------------------------------------------------------- token classification
def test_registry_finds_both_families() -> None:
    assert family_for("token_classification") is TOKEN_CLASSIFICATION
    assert family_for("text_generation") is LANGUAGE_MODELLING
    assert family_for("llm_finetuning") is LANGUAGE_MODELLING


def test_conll2003_four_columns_with_docstart(tmp_path: Path) -> None:
    sentences = ner_sentences()
    path = write_conll(tmp_path / "train.conll", sentences)
    inspection = TOKEN_CLASSIFICATION.inspect(path, tok_options())
    report = inspection.report
    assert report["family"] == "tokens"
    assert report["rows"] == len(sentences)  # -DOCSTART- is not a sentence
    assert report["tokens"] == sum(len(s) for s in sentences)
    assert report["scheme"] == "BIO" and report["invalid_bio"] == 0
    assert report["tag_column"] == 4 and report["columns"] == 4
    assert "-DOCSTART-" not in report["label_vocabulary"]
    assert set(report["label_vocabulary"]) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
    assert report["entity_types"] == ["LOC", "ORG", "PER"]
    assert report["sentence_length"]["max"] >= report["sentence_length"]["p95"] >= report["sentence_length"]["p50"]
    assert report["unlabelled_sentences"] == 0
    assert inspection.task_type == "token_classification"
    # another column by name: CoNLL-2003's POS column
    pos = TOKEN_CLASSIFICATION.inspect(path, DataOptions("token_classification", target="pos")).report
    assert pos["tag_column"] == 2 and set(pos["label_vocabulary"]) == {"NNP", "XX"} and pos["scheme"] == "plain"


def test_hf_style_table_and_parquet(tmp_path: Path) -> None:
    rows = [{"id": i, "tokens": [w for w, _ in s], "ner_tags": [t for _, t in s]} for i, s in enumerate(ner_sentences(60))]
    jsonl = tmp_path / "ner.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows))
    inspection = TOKEN_CLASSIFICATION.inspect(jsonl, tok_options())
    assert inspection.roles == {"text": "tokens", "target": "ner_tags"}
    assert inspection.report["rows"] == 60 and inspection.report["format"] == "table"
    parquet = tmp_path / "ner.parquet"
    pd.DataFrame(rows).rename(columns={"tokens": "words", "ner_tags": "labels"}).to_parquet(parquet)
    result = prepared(TOKEN_CLASSIFICATION, parquet, tok_options(), tmp_path / "out")
    assert sum(result.report["splits"].values()) == 60
    assert np.load(result.files["ids_train"]).dtype == np.int32


def test_label_alignment_first_subtoken_carries_the_tag(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    path = write_conll(tmp_path / "ner.conll", ner_sentences())
    # a tiny vocabulary forces long words into several word pieces
    result = prepared(TOKEN_CLASSIFICATION, path, tok_options(vocab_size=160), tmp_path / "out")
    meta = json.loads(Path(result.files["meta"]).read_text())
    labels, max_length = meta["labels"], meta["max_length"]
    assert labels[0] == "O" and meta["family"] == "tokens"
    assert max_length % 8 == 0 and 16 <= max_length <= 512
    ids = np.load(result.files["ids_train"])
    tags = np.load(result.files["labels_train"])
    assert ids.shape == tags.shape == (result.report["splits"]["train"], max_length)
    assert ids.dtype == np.int32 and tags.dtype == np.int64
    tokenizer = Tokenizer.from_file(result.files["tokenizer"])
    rows = [json.loads(line) for line in Path(result.files["rows_train"]).read_text().splitlines()]
    continuation_seen = False
    for row, record in enumerate(rows):
        encoding = tokenizer.encode(record["words"], is_pretokenized=True)
        n = len(encoding.ids)
        if n > max_length:  # truncated rows are checked by the truncation test
            continue
        assert list(ids[row, :n]) == encoding.ids
        assert (tags[row, n:] == -100).all() and (ids[row, n:] == meta["tokenizer"]["pad_id"]).all()
        previous = None
        for position, word in enumerate(encoding.word_ids):
            if word != previous:
                assert tags[row, position] == labels.index(record["tags"][word])
            else:
                assert tags[row, position] == -100
                continuation_seen = True
            previous = word
        # every word's tag is there once
        assert [labels[t] for t in tags[row] if t != -100] == record["tags"]
    assert continuation_seen
    assert align_labels([None, 0, 0, 1, None], [3, 5]) == [-100, 3, -100, 5, -100]


def test_iob1_is_repaired_to_bio(tmp_path: Path) -> None:
    sentences = [[(w, "I-" + t[2:] if t.startswith("B-") else t) for w, t in s] for s in ner_sentences()]
    path = write_conll(tmp_path / "iob1.conll", sentences)
    report = TOKEN_CLASSIFICATION.inspect(path, tok_options()).report
    assert report["scheme"] == "IOB1"
    starts = sum(1 for s in ner_sentences() for _, t in s if t.startswith("B-"))
    assert report["invalid_bio"] == starts
    result = prepared(TOKEN_CLASSIFICATION, path, tok_options(), tmp_path / "out")
    assert result.report["bio_repairs"] == starts
    assert "B-PER" in result.report["labels"]
    for line in Path(result.files["rows_train"]).read_text().splitlines():
        fixed, repairs = repair_bio(json.loads(line)["tags"])
        assert repairs == 0
    assert repair_bio(["O", "I-PER", "I-PER", "I-LOC", "O"]) == (["O", "B-PER", "I-PER", "B-LOC", "O"], 2)
    assert detect_scheme([["B-PER", "E-PER", "S-LOC", "O"]])[0] == "BIOES"


def test_split_is_deterministic_and_seeded(tmp_path: Path) -> None:
    path = write_conll(tmp_path / "ner.conll", ner_sentences())
    # bpe: the tokenizers library's WordPiece trainer breaks ties in hash order (huggingface/tokenizers#1794),
    # so only the sentences of each split, not the WordPiece ids, repeat exactly across runs
    first = prepared(TOKEN_CLASSIFICATION, path, tok_options(tokenizer="bpe"), tmp_path / "a")
    again = prepared(TOKEN_CLASSIFICATION, path, tok_options(tokenizer="bpe"), tmp_path / "b")
    for name in ("train", "val", "test"):
        for kind in ("ids", "labels"):
            assert np.array_equal(np.load(first.files[f"{kind}_{name}"]), np.load(again.files[f"{kind}_{name}"]))
        assert Path(first.files[f"rows_{name}"]).read_text() == Path(again.files[f"rows_{name}"]).read_text()
    wordpiece = prepared(TOKEN_CLASSIFICATION, path, tok_options(), tmp_path / "w")
    assert Path(wordpiece.files["rows_val"]).read_text() == Path(first.files["rows_val"]).read_text()
    other = DataOptions("token_classification", seed=7)
    moved = prepared(TOKEN_CLASSIFICATION, path, other, tmp_path / "c")
    assert Path(moved.files["rows_test"]).read_text() != Path(first.files["rows_test"]).read_text()
    assert first.report["splits"] == {"train": 168, "val": 36, "test": 36} and first.report["seed"] == 42


def test_folder_with_own_splits_and_truncation(tmp_path: Path) -> None:
    folder = tmp_path / "conll2003"
    folder.mkdir()
    sentences = ner_sentences(200)
    write_conll(folder / "eng.train", sentences[:140])
    write_conll(folder / "eng.testa", sentences[140:170])
    write_conll(folder / "eng.testb", sentences[170:])
    (folder / "README.md").write_text("CoNLL-2003 sample")
    inspection = TOKEN_CLASSIFICATION.inspect(folder, tok_options())
    assert inspection.report["source_splits"] == {"train": 140, "val": 30, "test": 30}
    result = prepared(TOKEN_CLASSIFICATION, folder, tok_options(max_length=6), tmp_path / "out")
    assert result.report["splits"] == {"train": 140, "val": 30, "test": 30}
    assert result.report["max_length"] == 6 and result.report["truncated"]["train"] > 0
    assert np.load(result.files["ids_val"]).shape == (30, 6)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("John B-PER\nlives\nin O\n\n" * 30, "Line 2 of bad.conll ('lives') has a single column"),
        ("", "bad.conll is empty"),
        ("-DOCSTART- -X- O\n\n", "holds no sentences"),
        ("John O\nlives O\n\n" * 30, "Every token in bad.conll is tagged 'O'"),
        ("John\nlives\n\n" * 20 + "Paris B-LOC\nis O\n\n" * 5, "Tags are missing for 20 of 25 sentences"),
        ("Paris B-LOC\nis O\n\n" * 5, "has 5 tagged sentences; at least 20"),
    ],
)
def test_bad_conll_is_refused_in_one_sentence(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.conll"
    path.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TOKEN_CLASSIFICATION.inspect(path, tok_options())


def test_binary_conll_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.conll"
    path.write_bytes(b"John B-PER\x00\x00\n")
    with pytest.raises(DataError, match="NUL at byte 10"):
        TOKEN_CLASSIFICATION.inspect(path, tok_options())


def test_table_with_mismatched_counts_names_the_sentence(tmp_path: Path) -> None:
    rows = [{"tokens": ["John", "lives", "in", "Paris"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]}] * 30
    rows[17] = {"tokens": ["John", "lives", "here"], "ner_tags": ["B-PER", "O"]}
    path = tmp_path / "ner.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"Sentence 17 \(line 18 of ner.jsonl\) has 3 tokens but 2 tags"):
        TOKEN_CLASSIFICATION.inspect(path, tok_options())


# ---------------------------------------------------------------------------- language modelling
def test_char_tokenizer_for_a_tiny_corpus_and_contiguous_split(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    text = descr_texts()[0] * 2
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    inspection = LANGUAGE_MODELLING.inspect(path, lm_options())
    report = inspection.report
    assert report["family"] == "lm" and report["rows"] == 1 and report["encoding"] == "utf-8"
    assert report["characters"] == len(text) and report["words"] == len(text.split())
    assert report["unique_characters"] == len(set(text)) and inspection.task_type == "text_generation"
    result = LANGUAGE_MODELLING.prepare(path, lm_options(), report, tmp_path / "out")
    meta = json.loads(Path(result.files["meta"]).read_text())
    assert result.report["tokenizer"]["kind"] == "char" and meta["split_by"] == "contiguous"
    ranges = meta["char_ranges"]
    assert ranges["train"][0] == 0 and ranges["train"][1] == ranges["val"][0] < ranges["val"][1] == ranges["test"][0]
    assert ranges["test"][1] == len(text) and text[ranges["val"][0] - 1] == "\n"  # cut after a line
    tokenizer = Tokenizer.from_file(result.files["tokenizer"])
    for name in ("train", "val", "test"):  # each split is its own stretch of the text, in order
        stream = np.load(result.files[f"tokens_{name}"])
        start, end = ranges[name]
        assert tokenizer.decode(stream.tolist()) == text[start:end]
    assert all(n >= 4 for n in result.report["splits"].values())


def test_bpe_for_a_larger_corpus_blocks_shape_and_dtype(tmp_path: Path) -> None:
    path = tmp_path / "corpus.md"
    path.write_text("\n\n".join(descr_texts()))
    result = prepared(LANGUAGE_MODELLING, path, lm_options(block_size=32), tmp_path / "out")
    assert result.report["tokenizer"]["kind"] == "bpe" and result.report["block_size"] == 32
    meta = json.loads(Path(result.files["meta"]).read_text())
    assert meta["dtype"] == "uint16" and meta["vocab_size"] < 65536
    for name in ("train", "val", "test"):
        blocks = np.load(result.files[f"blocks_{name}"])
        stream = np.load(result.files[f"tokens_{name}"], mmap_mode="r")
        assert blocks.dtype == np.uint16 and stream.dtype == np.uint16
        assert blocks.shape == (meta["splits"][name], 33) and blocks.shape[0] >= 4
        assert meta["tokens"][name] == len(stream)
        assert np.array_equal(blocks[1], stream[32:65])  # blocks start every block_size ids
    assert result.report["tokens"] == meta["tokens"] and result.report["seed"] == 42


def test_document_split_with_eos_between_documents(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    paragraphs = [p for text in descr_texts() for p in text.split("\n\n") if len(p.strip()) > 80][:30]
    assert len(paragraphs) >= 20
    for i, paragraph in enumerate(paragraphs):
        (folder / f"doc{i:02d}.txt").write_text(paragraph)
    (folder / "empty.txt").write_text("   \n")
    result = prepared(LANGUAGE_MODELLING, folder, lm_options(tokenizer="char"), tmp_path / "out")
    meta = json.loads(Path(result.files["meta"]).read_text())
    assert meta["split_by"] == "document" and sum(meta["documents"].values()) == len(paragraphs)
    eos = meta["tokenizer"]["eos_id"]
    for name in ("train", "val", "test"):
        stream = np.load(result.files[f"tokens_{name}"])
        assert int((stream == eos).sum()) == meta["documents"][name] - 1
    again = prepared(LANGUAGE_MODELLING, folder, lm_options(tokenizer="char"), tmp_path / "again")
    assert np.array_equal(np.load(again.files["tokens_test"]), np.load(result.files["tokens_test"]))


def test_jsonl_text_column(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "body": p}) for i, p in enumerate(descr_texts())))
    inspection = LANGUAGE_MODELLING.inspect(path, lm_options())
    assert inspection.roles == {"text": "body"} and inspection.report["format"] == "text"
    assert inspection.report["rows"] == len(descr_texts())


def test_too_small_corpus_is_refused_with_numbers(tmp_path: Path) -> None:
    path = tmp_path / "tiny.txt"
    path.write_text("A very short corpus.\n")
    with pytest.raises(DataError, match=r"too small for language modelling: 21 characters .* needs at least 33"):
        LANGUAGE_MODELLING.inspect(path, lm_options())
    path.write_text(descr_texts()[0])
    with pytest.raises(DataError, match=r"split has \d+ tokens but block_size 512 needs at least 2049 .* set block_size to \d+ or less"):
        prepared(LANGUAGE_MODELLING, path, lm_options(block_size=512), tmp_path / "out")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"some text\x00\x01\x02 more", "contains binary bytes \\(a NUL at byte 9\\)"),
        (b"   \n\t\n  ", "holds no text, only whitespace"),
        (b"caf\x81\x8d text", "is not UTF-8 text"),
    ],
)
def test_bad_corpus_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        LANGUAGE_MODELLING.inspect(path, lm_options())


def test_llm_finetuning_inspects_instruction_and_chat_tables(tmp_path: Path) -> None:
    rows = [{"instruction": f"Add {i} and {i + 1}.", "input": "" if i % 2 else "Show your work.",
             "output": f"The sum is {2 * i + 1}."} for i in range(30)]
    path = tmp_path / "alpaca.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    inspection = LANGUAGE_MODELLING.inspect(path, lm_options("llm_finetuning"))
    report = inspection.report
    assert report["format"] == "instruction" and report["rows"] == 30
    assert report["columns"] == {"prompt": "instruction", "response": "output", "context": "input"}
    assert report["empty_responses"] == 0 and report["response_length"]["max"] > 0
    assert inspection.task_type == "llm_finetuning" and "30 instruction examples" in inspection.summary

    chats = [{"messages": [{"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": "Hello!"}]}
             for i in range(25)]
    chat_path = tmp_path / "chat.jsonl"
    chat_path.write_text("\n".join(json.dumps(r) for r in chats))
    chat = LANGUAGE_MODELLING.inspect(chat_path, lm_options("llm_finetuning")).report
    assert chat["format"] == "chat" and chat["speaker_roles"] == {"user": 25, "assistant": 25}

    odd = tmp_path / "numbers.csv"
    pd.DataFrame({"a": range(30), "b": range(30)}).to_csv(odd, index=False)
    with pytest.raises(DataError, match="prompt/response"):
        LANGUAGE_MODELLING.inspect(odd, lm_options("llm_finetuning"))


def make_backbone(folder: Path, texts: list[str]) -> Path:
    """A local 'pretrained' tokenizer with BERT's [CLS] … [SEP] template and saved padding/truncation."""
    from tokenizers.processors import TemplateProcessing

    from tools.prep.tokenizer import train_tokenizer

    tokenizer, _ = train_tokenizer(texts, "wordpiece", 200)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tokenizer.enable_truncation(8)
    tokenizer.enable_padding(length=8)
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_pretrained_backbone_special_tokens_and_truncation(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    sentences = ner_sentences()
    backbone = make_backbone(tmp_path / "bert", [" ".join(w for w, _ in s) for s in sentences])
    path = write_conll(tmp_path / "ner.conll", sentences)
    result = prepared(TOKEN_CLASSIFICATION, path, tok_options(backbone=str(backbone), max_length=10), tmp_path / "out")
    assert result.report["tokenizer"]["kind"] == "pretrained" and result.report["truncated"]["train"] > 0
    tokenizer = Tokenizer.from_file(str(backbone / "tokenizer.json"))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    ids, tags = np.load(result.files["ids_train"]), np.load(result.files["labels_train"])
    lengths = np.load(result.files["lengths_train"])
    assert (ids[:, 0] == cls).all() and (tags[:, 0] == -100).all()
    assert all(ids[row, lengths[row] - 1] == sep and tags[row, lengths[row] - 1] == -100 for row in range(len(ids)))
    assert lengths.max() == 10  # the backbone's saved truncation at 8 was not used

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(w for w, _ in s) for s in sentences))
    lm = prepared(LANGUAGE_MODELLING, corpus, lm_options(backbone=str(backbone)), tmp_path / "lm")
    stream = np.load(lm.files["tokens_train"])
    assert lm.report["tokenizer"]["kind"] == "pretrained" and len(stream) > 1000 and cls not in stream


def test_bad_hyperparameters_are_spec_errors(tmp_path: Path) -> None:
    from orchestrator.errors import SpecError

    path = write_conll(tmp_path / "ner.conll", ner_sentences(40))
    with pytest.raises(SpecError, match="max_length must be a whole number, not 'long'"):
        prepared(TOKEN_CLASSIFICATION, path, tok_options(max_length="long"), tmp_path / "a")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(descr_texts()[0])
    with pytest.raises(SpecError, match="block_size is 0; it must be at least 1"):
        prepared(LANGUAGE_MODELLING, corpus, lm_options(block_size=0), tmp_path / "b")
