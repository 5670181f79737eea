"""Token classification (NER, POS, chunking): one tag per word.

Sources: a CoNLL-style file (one ``word … tag`` line per token, blank lines between sentences,
``-DOCSTART-`` lines skipped; ``.conllu`` reads FORM and UPOS), a folder of them (its
train/dev/test files are kept as the splits), or a table whose rows hold a list of tokens and a list
of tags (Hugging Face ``tokens``/``ner_tags`` style). Preparation repairs IOB1 and stray ``I-``
starts to BIO, splits by sentence, tokenizes the words into sub-tokens and aligns the tags: the
first sub-token of a word carries its tag, the rest (and padding) carry -100 so the loss skips them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DataError
from tools.prep.base import (DataOptions, Inspection, Log, Prepared, int_param, pick_column, quiet, require_rows,
                             split_summary, write_meta)

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TASK_TYPE = "token_classification"
CONLL_SUFFIXES = {".conll", ".conllu", ".bio", ".iob", ".iob2", ".txt", ".tsv", ".ner", ".pos"}
TABLE_SUFFIXES = {".json", ".jsonl", ".ndjson", ".parquet", ".pq", ".csv"}
#: Table columns that hold the words / the tags, by name (lower case), first match wins.
TOKEN_NAMES = ("tokens", "words", "token", "word", "sentence", "text")
TAG_NAMES = ("ner_tags", "tags", "labels", "pos_tags", "ner", "tag", "label", "upos", "pos", "chunk_tags", "chunk")
#: A file's split, read off the words in its name (CoNLL-2003 ships eng.train / eng.testa / eng.testb).
SPLIT_WORDS = {"train": "train", "training": "train", "dev": "val", "valid": "val", "validation": "val",
               "val": "val", "testa": "val", "test": "test", "testb": "test"}
#: Files in a folder that are never data.
SKIP_NAME_PREFIXES = ("readme", "license", "licence", "changelog")
DOCSTART = "-DOCSTART-"
#: CoNLL tag column by name → 0-based column (CoNLL-2003: word POS chunk NER); anything else is the last column.
CONLL_COLUMNS = {"pos": 1, "pos_tags": 1, "chunk": 2, "chunk_tags": 2}
#: CoNLL-U columns (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC): the word is FORM, the default tag UPOS.
CONLLU_COLUMNS = {"lemma": 2, "upos": 3, "pos": 3, "pos_tags": 3, "xpos": 4, "deprel": 7}
CONLLU_WORD, CONLLU_TAG = 1, 3
#: More than this share of sentences without tags means the data is not ready to learn from.
MAX_UNLABELLED_SHARE = 0.5
IGNORE_INDEX = -100
DEFAULT_TOKENIZER = "wordpiece"
DEFAULT_VOCAB = 8000
MIN_VOCAB = 16
MIN_MAX_LENGTH = 4
#: max_length default: p95 of training sub-token lengths, rounded up to a multiple of this, clamped.
MAX_LENGTH_MULTIPLE = 8
MAX_LENGTH_BOUNDS = (16, 512)
BIO_PREFIXES = "BIESLU"


@dataclass
class Sentence:
    words: list[str]
    tags: list[str] | None  # None: the sentence carries no tags
    where: str  # "line 12 of train.conll": for messages
    split: str | None = None  # the source's own split (a folder with train/dev/test files)


@dataclass
class Corpus:
    sentences: list[Sentence]
    info: dict[str, Any] = field(default_factory=dict)  # format, files, tag column, source splits
    roles: dict[str, str] = field(default_factory=dict)




# ---------------------------------------------------------------------------- reading
def _read_text(path: Path) -> str:
    from tools.local_data import _decode

    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path.name} is empty; a CoNLL file needs one 'word tag' line per token and blank lines between sentences.")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path.name} contains binary bytes (a NUL at byte {nul}), so it is not a CoNLL text file; "
                        "point data.source at UTF-8 'word tag' lines.")
    text, _ = _decode(path, raw)
    return text.lstrip("\ufeff")


def _tag_index(target: str | None, conllu: bool, log: Log, name: str) -> int | None:
    """The 0-based tag column a CoNLL file is read with (None: the last column)."""
    if not target:
        return CONLLU_TAG if conllu else None
    key = target.strip().lower()
    if key.isdigit():
        if int(key) < 2:
            raise DataError(f"The tag column {target} of {name} is the word column; tags are column 2 or later (counting from 1).")
        return int(key) - 1
    table = CONLLU_COLUMNS if conllu else CONLL_COLUMNS
    if key in table:
        return table[key]
    if key not in TAG_NAMES:
        log(f"'{target}' is not a known CoNLL column name; reading tags from the "
            f"{'UPOS' if conllu else 'last'} column", "warning")
    return CONLLU_TAG if conllu else None


def _looks_conllu(lines: list[str]) -> bool:
    rows = [line for line in lines[:200] if line.strip() and not line.startswith("#")]
    return bool(rows) and all(len(line.split("\t")) == 10 and line.split("\t")[0].split("-")[0].split(".")[0].isdigit()
                              for line in rows[:50])


def read_conll(path: Path, target: str | None, log: Log = quiet, split: str | None = None) -> tuple[list[Sentence], dict[str, Any]]:
    """Sentences of a CoNLL(-U) file; a line with a word but no tag inside a tagged sentence is an error."""
    lines = _read_text(path).splitlines()
    conllu = path.suffix.lower() == ".conllu" or _looks_conllu(lines)
    index = _tag_index(target, conllu, log, path.name)
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str | None] = []
    numbers: list[int] = []
    widths: Counter[int] = Counter()

    def flush() -> None:
        if not words:
            return
        where = f"line {numbers[0]} of {path.name}"
        if all(tag is None for tag in tags):
            sentences.append(Sentence(list(words), None, where, split))
        else:
            missing = tags.index(None) if None in tags else -1
            if missing >= 0:
                raise DataError(f"Line {numbers[missing]} of {path.name} ({words[missing]!r}) has a single column where a tag is "
                                f"expected (sentence {len(sentences) + 1}); give every token a tag or fix the separator.")
            sentences.append(Sentence(list(words), [str(t) for t in tags], where, split))
        words.clear()
        tags.clear()
        numbers.clear()

    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped:
            flush()
            continue
        if stripped.startswith(DOCSTART) or (conllu and stripped.startswith("#")):
            flush()
            continue
        columns = [c.strip() for c in stripped.split("\t")] if "\t" in stripped else stripped.split()
        widths[len(columns)] += 1
        if conllu:
            if "-" in columns[0] or "." in columns[0]:  # multi-word token ranges and empty nodes
                continue
            if len(columns) <= max(index or 0, CONLLU_WORD):
                raise DataError(f"Line {number} of {path.name} has {len(columns)} columns; CoNLL-U needs 10 (ID FORM LEMMA UPOS …).")
            word, tag = columns[CONLLU_WORD], columns[index if index is not None else CONLLU_TAG]
        else:
            word = columns[0]
            if len(columns) == 1:
                tag = None
            elif index is None:
                tag = columns[-1]
            elif index < len(columns):
                tag = columns[index]
            else:
                raise DataError(f"Line {number} of {path.name} has {len(columns)} columns but the tag column is "
                                f"number {index + 1}; choose another data.target or fix the line.")
        words.append(word)
        tags.append(tag)
        numbers.append(number)
    flush()
    width = widths.most_common(1)[0][0] if widths else 0
    if conllu:
        tag_column = (CONLLU_TAG if index is None else index) + 1
    else:
        tag_column = width if index is None else index + 1
    return sentences, {"format": "conllu" if conllu else "conll", "columns": width, "tag_column": tag_column}


def _as_list(value: Any) -> list[Any] | None:
    """A cell as a list: lists and arrays as they are, a string split on whitespace, missing as None."""
    import numpy as np
    import pandas as pd

    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            try:
                parsed = json.loads(value)
                if isinstance(parsed, list):
                    return parsed
            except ValueError:
                pass
        return value.split()
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return [value]


def _tag_text(tag: Any) -> str:
    if isinstance(tag, float) and tag.is_integer():
        return str(int(tag))
    return str(tag)


def read_table(path: Path, options: DataOptions, log: Log = quiet, split: str | None = None) -> tuple[list[Sentence], dict[str, Any], dict[str, str]]:
    """Sentences of a table with a token-list column and a tag-list column."""
    import numpy as np

    from tools.local_data import load_table

    frame, info = load_table(path)
    columns = [str(c) for c in frame.columns]
    listy = []
    for name in columns:
        sample = frame[name].dropna()
        if len(sample) and isinstance(sample.iloc[0], (list, tuple, np.ndarray)):
            listy.append(name)
    tokens_col, tokens_why = pick_column(columns, options.text, "tokens", path.name, TOKEN_NAMES,
                                         listy[0] if listy else None)
    others = [c for c in listy if c != tokens_col]
    tags_col, tags_why = pick_column([c for c in columns if c != tokens_col] if not options.target else columns,
                                     options.target, "tags", path.name, TAG_NAMES, others[0] if others else None)
    if tags_col == tokens_col:
        raise DataError(f"The tokens and the tags of {path.name} are both read from '{tokens_col}'; name the tag column in data.target.")
    is_jsonl = path.suffix.lower() in {".jsonl", ".ndjson"}
    sentences: list[Sentence] = []
    numeric = False
    for row, (words, tags) in enumerate(zip(frame[tokens_col].tolist(), frame[tags_col].tolist())):
        where = f"line {row + 1} of {path.name}" if is_jsonl else f"row {row} of {path.name}"
        word_list = _as_list(words)
        if not word_list:
            continue
        tag_list = _as_list(tags)
        if not tag_list:
            sentences.append(Sentence([str(w) for w in word_list], None, where, split))
            continue
        if len(tag_list) != len(word_list):
            raise DataError(f"Sentence {row} ({where}) has {len(word_list)} tokens but {len(tag_list)} tags; "
                            "each token needs exactly one tag.")
        numeric = numeric or not isinstance(tag_list[0], str)
        sentences.append(Sentence([str(w) for w in word_list], [_tag_text(t) for t in tag_list], where, split))
    if numeric:
        log(f"the tags in '{tags_col}' are numbers, so the model's labels will be numbers too", "warning")
    details = {"format": "table", "file": info, "tokens_column": tokens_col, "tags_column": tags_col,
               "tokens_reason": tokens_why, "tags_reason": tags_why, "numeric_tags": numeric}
    return sentences, details, {"text": tokens_col, "target": tags_col}


def _split_of(path: Path) -> str | None:
    words = [w for w in re.split(r"[^a-z]+", path.name.lower()) if w]
    for word in words:
        if word in SPLIT_WORDS:
            return SPLIT_WORDS[word]
    return None


def _read_file(path: Path, options: DataOptions, log: Log, split: str | None) -> tuple[list[Sentence], dict[str, Any], dict[str, str]]:
    if path.suffix.lower() in TABLE_SUFFIXES:
        return read_table(path, options, log, split)
    sentences, details = read_conll(path, options.target, log, split)
    return sentences, details, {}


def load_corpus(path: Path, options: DataOptions, log: Log = quiet) -> Corpus:
    """Every sentence of the source, with the source's own split when a folder names its files so."""
    if not path.exists():
        raise DataError(f"The data source {path} does not exist; check data.source in the spec.")
    if path.is_file():
        sentences, details, roles = _read_file(path, options, log, None)
        return Corpus(sentences, {**details, "files": [path.name]}, roles)
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
    files = [p for p in files if not p.name.lower().startswith(SKIP_NAME_PREFIXES)
             and (p.suffix.lower() in CONLL_SUFFIXES | TABLE_SUFFIXES or _split_of(p) is not None)
             and p.suffix.lower() not in {".md", ".rst", ".py", ".sh", ".yaml", ".yml"}]
    if not files:
        raise DataError(f"The folder {path.name} holds no CoNLL (.conll/.bio/.txt) or table files; point data.source at the token files.")
    by_split = {p: _split_of(p) for p in files}
    named = {s for s in by_split.values() if s}
    own_splits = "train" in named and len(named) >= 2
    sentences: list[Sentence] = []
    details: dict[str, Any] = {}
    roles: dict[str, str] = {}
    used = []
    for file in files:
        split = by_split[file]
        if own_splits and split is None:
            log(f"ignored {file.name}: its name says neither train, dev nor test", "warning")
            continue
        part, details, roles = _read_file(file, options, log, split if own_splits else None)
        sentences.extend(part)
        used.append(str(file.relative_to(path)))
    details = {k: v for k, v in details.items() if k != "file"}
    details["files"] = used
    if own_splits:
        details["source_splits"] = {s: sum(1 for x in sentences if x.split == s) for s in ("train", "val", "test")}
    return Corpus(sentences, details, roles)


# ---------------------------------------------------------------------------- tag schemes
def _parts(tag: str) -> tuple[str | None, str]:
    """("B", "PER") for "B-PER"; (None, tag) for a tag without a BIO prefix."""
    if len(tag) > 2 and tag[1] in "-_" and tag[0].upper() in BIO_PREFIXES:
        return tag[0].upper(), tag[2:]
    return None, tag


def _bad_start(previous: str | None, tag: str) -> bool:
    """I-X that does not continue a B-X / I-X: invalid in BIO."""
    prefix, kind = _parts(tag)
    if prefix != "I":
        return False
    if previous is None:
        return True
    before, before_kind = _parts(previous)
    return not (before in ("B", "I") and before_kind == kind)


def detect_scheme(tag_lists: list[list[str]]) -> tuple[str, int]:
    """The tagging scheme (BIO, IOB1, BIOES or plain) and the number of I- tags that start a chunk."""
    prefixes: Counter[str] = Counter()
    invalid = 0
    b_after_same = b_total = 0
    for tags in tag_lists:
        previous = None
        for tag in tags:
            prefix, kind = _parts(tag)
            if prefix:
                prefixes[prefix] += 1
            if _bad_start(previous, tag):
                invalid += 1
            if prefix == "B":
                b_total += 1
                before = _parts(previous) if previous else (None, "")
                b_after_same += before[0] in ("B", "I") and before[1] == kind
            previous = tag
    if not prefixes:
        return "plain", 0
    if any(prefixes[p] for p in "ESLU"):
        return "BIOES", invalid
    if prefixes["I"] and (not prefixes["B"] or (invalid and b_after_same == b_total)):
        return "IOB1", invalid
    return "BIO", invalid


def repair_bio(tags: list[str]) -> tuple[list[str], int]:
    """BIO tags: an I-X that starts a chunk (IOB1, or a stray one) becomes B-X; returns the repair count."""
    fixed: list[str] = []
    repairs = 0
    previous = None
    for tag in tags:
        if _bad_start(previous, tag):
            tag = "B" + tag[1:]
            repairs += 1
        fixed.append(tag)
        previous = tag
    return fixed, repairs


def _stats(values: list[int]) -> dict[str, float]:
    import numpy as np

    array = np.asarray(values, dtype=float)
    if not len(array):
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    return {"mean": round(float(array.mean()), 2), "p50": float(np.percentile(array, 50)),
            "p95": float(np.percentile(array, 95)), "max": float(array.max())}


def _label_order(counts: Counter[str]) -> list[str]:
    """"O" first, then the rest grouped by entity type (B before I…): stable ids across runs."""
    order = {p: i for i, p in enumerate(BIO_PREFIXES)}

    def key(tag: str) -> tuple[int, str, int, str]:
        prefix, kind = _parts(tag)
        return (0 if tag == "O" else 1, kind, order.get(prefix or "", -1), tag)

    return sorted(counts, key=key)


def check(corpus: Corpus, where: str) -> None:
    """Refuse data no tagger can learn from: nothing, mostly untagged, too few sentences, one tag."""
    sentences = corpus.sentences
    if not sentences:
        raise DataError(f"{where} holds no sentences; a CoNLL file needs one 'word tag' line per token with blank lines "
                        "between sentences (a table: a list of tokens and a list of tags per row).")
    unlabelled = sum(1 for s in sentences if s.tags is None)
    if unlabelled > MAX_UNLABELLED_SHARE * len(sentences):
        raise DataError(f"Tags are missing for {unlabelled} of {len(sentences)} sentences in {where}; "
                        "a tagger needs a tag on every token (a CoNLL line is 'word tag').")
    require_rows(len(sentences) - unlabelled, "tagged sentences", where)
    tags = Counter(tag for s in sentences if s.tags for tag in s.tags)
    if len(tags) < 2:
        only = next(iter(tags), "nothing")
        raise DataError(f"Every token in {where} is tagged {only!r}; a tagger needs at least two different tags (e.g. O and B-PER).")


def describe(corpus: Corpus) -> dict[str, Any]:
    """The data report of a token corpus."""
    tagged = [s.tags for s in corpus.sentences if s.tags]
    counts = Counter(tag for tags in tagged for tag in tags)
    scheme, invalid = detect_scheme(tagged)
    report: dict[str, Any] = {
        "family": "tokens",
        "rows": len(corpus.sentences),
        "tokens": sum(len(s.words) for s in corpus.sentences),
        "label_vocabulary": dict(counts.most_common()),
        "labels": len(counts),
        "scheme": scheme,
        "sentence_length": _stats([len(s.words) for s in corpus.sentences]),
        "invalid_bio": invalid if scheme != "plain" else 0,
        "unlabelled_sentences": sum(1 for s in corpus.sentences if s.tags is None),
        **corpus.info,
    }
    if scheme != "plain":
        report["entity_types"] = sorted({_parts(t)[1] for t in counts if _parts(t)[0]})
    return report


# ---------------------------------------------------------------------------- encoding
def _tokenizer(train: list[Sentence], options: DataOptions) -> tuple[Tokenizer, str]:
    from tools.prep.tokenizer import load_pretrained, train_tokenizer

    backbone = options.params.get("backbone")
    if backbone:
        return load_pretrained(str(backbone)), "pretrained"
    kind = str(options.param("tokenizer", DEFAULT_TOKENIZER))
    kind = DEFAULT_TOKENIZER if kind == "auto" else kind
    texts = [" ".join(s.words) for s in train]
    return train_tokenizer(texts, kind, int_param(options, "vocab_size", DEFAULT_VOCAB, MIN_VOCAB) or DEFAULT_VOCAB)


def default_max_length(lengths: list[int]) -> int:
    """p95 of the training sub-token lengths, rounded up to a multiple of 8 and clamped to [16, 512]."""
    import numpy as np

    p95 = float(np.percentile(lengths, 95)) if lengths else 0.0
    rounded = int(-(-int(np.ceil(p95)) // MAX_LENGTH_MULTIPLE) * MAX_LENGTH_MULTIPLE)
    low, high = MAX_LENGTH_BOUNDS
    return max(low, min(high, rounded))


def align_labels(word_ids: list[int | None], word_tags: list[int]) -> list[int]:
    """The tag of each sub-token: a word's first sub-token gets the word's tag, the others (and special tokens) -100."""
    labels = []
    previous = None
    for word in word_ids:
        labels.append(IGNORE_INDEX if word is None or word == previous else word_tags[word])
        previous = word
    return labels


def encode(tokenizer: Tokenizer, sentences: list[Sentence], label_ids: dict[str, int], max_length: int,
           pad_id: int) -> tuple[Any, Any, Any, int]:
    """ids (N, max_length) int32, labels int64 (-100 off the first sub-tokens), lengths, truncated count."""
    import numpy as np

    words = [s.words for s in sentences]
    encodings = tokenizer.encode_batch(words, is_pretokenized=True) if words else []
    long_rows = [i for i, e in enumerate(encodings) if len(e.ids) > max_length]
    if long_rows:  # truncation that keeps a pretrained tokenizer's closing special token
        tokenizer.enable_truncation(max_length)
        try:
            for i, e in zip(long_rows, tokenizer.encode_batch([words[i] for i in long_rows], is_pretokenized=True)):
                encodings[i] = e
        finally:
            tokenizer.no_truncation()
    ids = np.full((len(sentences), max_length), pad_id, dtype=np.int32)
    labels = np.full((len(sentences), max_length), IGNORE_INDEX, dtype=np.int64)
    lengths = np.zeros(len(sentences), dtype=np.int32)
    for row, (sentence, encoding) in enumerate(zip(sentences, encodings)):
        n = min(len(encoding.ids), max_length)
        ids[row, :n] = encoding.ids[:n]
        tags = [label_ids[t] for t in sentence.tags or []]
        labels[row, :n] = align_labels(list(encoding.word_ids)[:n], tags)
        lengths[row] = n
    return ids, labels, lengths, len(long_rows)


def _assign(sentences: list[Sentence], options: DataOptions, log: Log) -> tuple[dict[str, list[Sentence]], str]:
    """The splits: the source's own (missing val/test carved from train), else a seeded random split."""
    import numpy as np

    from tools.splits import split_indices

    own = {s: [x for x in sentences if x.split == s] for s in ("train", "val", "test")}
    if own["train"] and any(x.split for x in sentences):
        missing = [s for s in ("val", "test") if not own[s]]
        if missing:
            rng = np.random.default_rng(options.seed)
            order = rng.permutation(len(own["train"]))
            fractions = {"val": options.val_fraction, "test": options.test_fraction}
            taken = 0
            for name in missing:
                n = max(1, int(round(len(order) * fractions[name])))
                own[name] = [own["train"][i] for i in sorted(order[taken:taken + n])]
                taken += n
            own["train"] = [own["train"][i] for i in sorted(order[taken:])]
            log(f"the source has no tagged {' or '.join(missing)} sentences; carved them from train", "warning")
        return own, "source"
    rows = split_indices(len(sentences), options.val_fraction, options.test_fraction, options.seed)
    return {name: [sentences[i] for i in rows[name]] for name in ("train", "val", "test")}, "random"


class TokenClassification:
    name = "tokens"

    def inspect(self, path: Path, options: DataOptions, log: Log = quiet) -> Inspection:
        corpus = load_corpus(path, options, log)
        check(corpus, path.name)
        report = describe(corpus)
        if report["invalid_bio"]:
            log(f"{report['invalid_bio']} tags start a chunk with I- ({report['scheme']}); they become B- when preparing",
                "warning")
        if report["unlabelled_sentences"]:
            log(f"{report['unlabelled_sentences']} sentences have no tags and will be left out", "warning")
        task_type = options.task_type or TASK_TYPE
        reason = "from the request" if options.task_type else "the source holds sentences with one tag per token"
        kinds = f" ({report['scheme']}: {', '.join(report['entity_types'][:8])})" if report.get("entity_types") else ""
        summary = f"{report['rows']:,} sentences, {report['tokens']:,} tokens, {report['labels']} tags{kinds}"
        return Inspection(report, corpus.roles, task_type, reason, summary)

    def prepare(self, path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                log: Log = quiet) -> Prepared:
        import numpy as np

        from tools.prep.tokenizer import describe_tokenizer, special_id

        corpus = load_corpus(path, options, log)
        check(corpus, path.name)
        sentences = [s for s in corpus.sentences if s.tags]
        dropped = len(corpus.sentences) - len(sentences)
        scheme, _ = detect_scheme([s.tags for s in sentences if s.tags])
        repairs = 0
        if scheme in ("BIO", "IOB1"):
            for s in sentences:
                s.tags, fixed = repair_bio(s.tags or [])
                repairs += fixed
            if repairs:
                log(f"repaired {repairs} tags to BIO (I- at the start of a chunk became B-)")
        splits, how = _assign(sentences, options, log)
        if not all(splits.values()):
            raise DataError(f"A split of {path.name} came out empty; add sentences or lower val_fraction/test_fraction.")
        counts = Counter(tag for s in sentences for tag in s.tags or [])
        labels = _label_order(counts)
        label_ids = {tag: i for i, tag in enumerate(labels)}
        unseen = sorted({t for name in ("val", "test") for s in splits[name] for t in s.tags or []}
                        - {t for s in splits["train"] for t in s.tags or []})
        if unseen:
            log(f"tags {', '.join(unseen[:5])} never occur in the training split", "warning")

        max_length = int_param(options, "max_length", None, MIN_MAX_LENGTH)
        tokenizer, kind = _tokenizer(splits["train"], options)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "meta.json").unlink(missing_ok=True)  # meta is written last: present means complete
        tokenizer.save(str(out_dir / "tokenizer.json"))
        tokenizer.no_padding()  # a backbone's saved padding/truncation would hide the real lengths
        tokenizer.no_truncation()
        pad_id = special_id(tokenizer, "pad")
        if max_length is None:
            train_lengths = [len(e.ids) for e in tokenizer.encode_batch([s.words for s in splits["train"]], is_pretokenized=True)]
            max_length = default_max_length(train_lengths)

        files: dict[str, dict[str, str]] = {}
        truncated: dict[str, int] = {}
        for name, part in splits.items():
            ids, label_array, lengths, cut = encode(tokenizer, part, label_ids, max_length, pad_id)
            np.save(out_dir / f"ids_{name}.npy", ids)
            np.save(out_dir / f"labels_{name}.npy", label_array)
            np.save(out_dir / f"lengths_{name}.npy", lengths)
            with (out_dir / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
                for s in part:
                    handle.write(json.dumps({"words": s.words, "tags": s.tags}, ensure_ascii=False) + "\n")
            files[name] = {"ids": f"ids_{name}.npy", "labels": f"labels_{name}.npy", "lengths": f"lengths_{name}.npy",
                           "rows": f"{name}.jsonl"}
            truncated[name] = cut
        if sum(truncated.values()):
            log(f"{sum(truncated.values())} sentences are longer than max_length {max_length} and were cut", "warning")
        sizes = {name: len(part) for name, part in splits.items()}
        token_info = {**describe_tokenizer(tokenizer, kind), "file": "tokenizer.json"}
        if kind == "pretrained":
            token_info["backbone"] = str(options.params.get("backbone"))
        meta = {
            "family": "tokens",
            "task_type": options.task_type or TASK_TYPE,
            "files": files,
            "labels": labels,
            "ignore_index": IGNORE_INDEX,
            "max_length": max_length,
            "tokenizer": token_info,
            "splits": sizes,
            "split_from": how,
            "seed": options.seed,
            "truncated": truncated,
            "scheme": "BIO" if scheme in ("BIO", "IOB1") else scheme,
        }
        meta_path = write_meta(out_dir, meta)
        report = {
            "splits": sizes,
            "seed": options.seed,
            "labels": labels,
            "max_length": max_length,
            "bio_repairs": repairs,
            "truncated": truncated,
            "split_from": how,
            "tokenizer": token_info,
            "dropped_unlabelled_sentences": dropped,
        }
        summary = (f"{len(labels)} tags, max_length {max_length}, {token_info['kind']} tokenizer; {split_summary(sizes)}"
                   + (f"; {repairs} BIO repairs" if repairs else ""))
        paths = {"dir": str(out_dir), "meta": str(meta_path), "tokenizer": str(out_dir / "tokenizer.json")}
        for name, named in files.items():
            for key, file in named.items():
                paths[f"{key}_{name}"] = str(out_dir / file)
        return Prepared(report, paths, summary)


TOKEN_CLASSIFICATION = TokenClassification()
