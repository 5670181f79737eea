"""Text classification data: a table with a text column and a label column, or one folder per class
of ``.txt`` documents.

``inspect`` resolves the two columns (named in the spec or inferred and said so), normalises the
texts and checks what would make training meaningless (one class, a class too small to stratify,
mostly unlabelled rows, no text). ``prepare`` splits stratified, fits the tokenizer on the training
split only (or loads the backbone's), and writes fixed-width id matrices the training script reads
in one ``np.load``. The loading and encoding helpers below are shared with :mod:`tools.prep.seq2seq`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DataError, UnsupportedError
from tools.prep.base import (
    DataOptions,
    Inspection,
    Log,
    Prepared,
    int_param,
    pick_column,
    quiet,
    require_rows,
    split_summary,
    write_meta,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from tokenizers import Tokenizer

# ---------------------------------------------------------------------------- tables
#: Column names that hold the text, best first.
TEXT_NAMES = ("text", "sentence", "review", "content", "message", "body", "document", "tweet", "comment",
              "sms", "utterance", "description", "question", "query", "abstract", "title")
#: Column names that hold the label, best first.
TARGET_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "y", "intent", "topic",
                "emotion", "tag", "class_name", "label_text")
DEDUPLICATE = True  # default of the "deduplicate" param: a text in two splits inflates the test score
MAX_MISSING_LABEL_SHARE = 0.5  # more unlabelled rows than this: the column is probably not the label
MIN_CLASS_ROWS = 3  # one row each for train, validation and test
TARGET_MAX_MEAN_CHARS = 40  # an inferred label column holds short values…
TARGET_MAX_CLASSES = 200  # …and not too many of them
IMBALANCE_WARN = 10.0  # largest / smallest class above this gets a warning
MAX_LENGTH_BOUNDS = (16, 512)  # default max_length: train p95 rounded up, clamped to this
LENGTH_PERCENTILE = 95
LENGTH_MULTIPLE = 8
MIN_MAX_LENGTH = 4  # a user-given max_length below this leaves no room for text
#: (corpus characters below, default vocab size); larger corpora get DEFAULT_VOCAB_LARGE.
VOCAB_BY_CHARS = ((200_000, 2000), (2_000_000, 8000), (20_000_000, 16000))
DEFAULT_VOCAB_LARGE = 32000
#: Folder layouts: documents are files with these suffixes, tables with those; split folders are not classes.
DOC_SUFFIXES = {".txt", ".text"}
FOLDER_TABLE_SUFFIXES = {".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet", ".pq"}
SPLIT_DIR_NAMES = {"train", "training", "test", "testing", "val", "valid", "validation", "dev", "eval"}
LANGUAGE_SAMPLE = 300  # texts looked at for the language hint
#: A few very common words per language: enough to tell Latin-script languages apart on a sample.
STOPWORDS = {
    "en": {"the", "and", "is", "to", "of", "you", "it", "in", "that", "for", "this", "with", "are", "was"},
    "fr": {"le", "la", "les", "et", "est", "de", "des", "un", "une", "je", "pas", "que", "vous", "du", "pour"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "ich", "ein", "eine", "zu", "mit", "den", "sie", "es"},
    "es": {"el", "la", "los", "las", "y", "es", "de", "que", "en", "un", "una", "no", "por", "para", "con"},
    "it": {"il", "la", "e", "di", "che", "non", "un", "una", "per", "sono", "con", "del", "gli", "le"},
    "pt": {"o", "a", "os", "as", "e", "de", "que", "um", "uma", "não", "para", "com", "do", "da", "em"},
    "nl": {"de", "het", "een", "en", "is", "van", "niet", "ik", "dat", "op", "te", "met", "zijn", "voor"},
}
#: Unicode character-name prefixes → script, for non-Latin text.
SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "ARABIC", "HEBREW", "DEVANAGARI", "THAI", "HANGUL", "HIRAGANA",
           "KATAKANA", "CJK")
SCRIPT_LANGUAGE = {"HANGUL": "ko", "HIRAGANA": "ja", "KATAKANA": "ja", "CJK": "zh", "THAI": "th",
                   "HEBREW": "he", "GREEK": "el"}

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)


# ---------------------------------------------------------------------------- shared helpers
def normalise_text(value: Any) -> str:
    """NFC, stripped, whitespace collapsed: the same text always becomes the same string (and ids)."""
    if value is None or isinstance(value, (list, tuple, dict)) or (not isinstance(value, str) and _is_missing(value)):
        return ""
    text = value if isinstance(value, str) else str(value)
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def normalise_column(series: pd.Series) -> list[str]:
    """Every cell as normalised text; missing cells become ''."""
    return [normalise_text(None if _is_missing(v) else v) for v in series.tolist()]


def _is_missing(value: Any) -> bool:
    """NaN, None, pd.NA or NaT (a list or array cell is not missing)."""
    import pandas as pd

    if isinstance(value, (list, tuple, dict)) or getattr(value, "shape", ()) != ():
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _stats(values: Sequence[float]) -> dict[str, float]:
    import numpy as np

    if not len(values):
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    array = np.asarray(values, dtype=float)
    return {"mean": round(float(array.mean()), 2), "p50": round(float(np.percentile(array, 50)), 2),
            "p95": round(float(np.percentile(array, 95)), 2), "max": float(array.max())}


def length_stats(texts: Sequence[str]) -> dict[str, dict[str, float]]:
    """Characters and words per text (mean, p50, p95, max): what max_length defaults come from."""
    return {"chars": _stats([len(t) for t in texts]), "words": _stats([len(t.split()) for t in texts])}


def language_hint(texts: Iterable[str]) -> str | None:
    """A rough language code (or script) from a sample; None when nothing stands out.

    Only a hint for the report and the model choice: the script of most letters, and for Latin text
    the language whose common words are most frequent.
    """
    sample = []
    for text in texts:
        if text:
            sample.append(text[:500])
        if len(sample) >= LANGUAGE_SAMPLE:
            break
    if not sample:
        return None
    scripts: dict[str, int] = {}
    for text in sample:
        for ch in text:
            if ch.isalpha():
                name = unicodedata.name(ch, "")
                script = next((s for s in SCRIPTS if name.startswith(s)), "OTHER")
                scripts[script] = scripts.get(script, 0) + 1
    if not scripts:
        return None
    script, count = max(scripts.items(), key=lambda item: item[1])
    if count < 0.6 * sum(scripts.values()):
        return None
    if script != "LATIN":
        if script == "CJK" and (scripts.get("HIRAGANA", 0) + scripts.get("KATAKANA", 0)) > 0.05 * count:
            return "ja"
        return SCRIPT_LANGUAGE.get(script, script.lower() + " script")
    words = [w.lower() for text in sample for w in _WORD.findall(text)]
    if not words:
        return None
    shares = {lang: sum(w in stop for w in words) / len(words) for lang, stop in STOPWORDS.items()}
    lang, share = max(shares.items(), key=lambda item: item[1])
    return lang if share >= 0.08 else "latin script"


def is_textual(series: pd.Series, empty_ok: bool = False) -> bool:
    """A column of strings (not numbers, booleans, dicts); ``empty_ok``: an all-missing column counts too
    (a CSV column of empty cells reads as float NaN, and "all texts are empty" is the clearer error)."""
    import pandas as pd

    values = series.dropna()
    if not len(values):
        return empty_ok
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    sample = values.iloc[:200].tolist()
    return sum(isinstance(v, str) for v in sample) >= 0.9 * len(sample)


def mean_chars(series: pd.Series, missing_as_empty: bool = False) -> float:
    """Mean length of the filled cells (a sample); ``missing_as_empty`` counts missing cells as 0, so a
    mostly-empty overflow column (``Unnamed: 2``) never looks longer than the real text column."""
    head = series.iloc[:5000]
    values = [len(str(v)) for v in head.dropna().tolist()]
    cells = len(head) if missing_as_empty else len(values)
    return sum(values) / cells if cells else 0.0


def longest_column(frame: pd.DataFrame, columns: Sequence[str]) -> str | None:
    """The column with the most text per row (missing cells count as empty)."""
    return max(columns, key=lambda c: mean_chars(frame[c], missing_as_empty=True), default=None)


def folder_tables(path: Path) -> list[Path]:
    """Table files under a folder (hidden files left out), in a stable order."""
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_TABLE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def load_frame(path: Path, log: Log = quiet) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A table file, or a folder of tables (e.g. train/test parquet files of one dataset) concatenated.

    Tables whose columns differ from the largest one are skipped with a warning.
    """
    import pandas as pd

    from tools.local_data import load_table

    if not path.is_dir():
        return load_table(path)
    tables = folder_tables(path)
    if not tables:
        raise DataError(f"The folder {path} holds no table (CSV, JSON or parquet); point data.source at a table file.")
    loaded = [(p, *load_table(p)) for p in tables]
    main = max(loaded, key=lambda item: len(item[1]))
    keep = [item for item in loaded if list(item[1].columns) == list(main[1].columns)]
    for p, frame, _ in loaded:
        if all(p is not k[0] for k in keep):
            log(f"Skipped {p.name}: its columns differ from {main[0].name}.", "warning")
    frame = pd.concat([item[1] for item in keep], ignore_index=True) if len(keep) > 1 else main[1]
    info = {"path": str(path), "format": "folder", "files": [str(k[0].relative_to(path)) for k in keep]}
    return frame, info


def choose_column(columns: Sequence[str], given: str | None, role: str, where: str,
                  candidates: Sequence[str], fallback: str | None, fallback_reason: str) -> tuple[str, str]:
    """base.pick_column, but candidate names are tried best-first rather than in column order."""
    ranked = sorted(columns, key=lambda c: candidates.index(c.lower()) if c.lower() in candidates else len(candidates))
    column, reason = pick_column(ranked, given, role, where, candidates, fallback)
    if not given and column == fallback and column.lower() not in candidates:
        reason = f"inferred: '{column}' {fallback_reason} (set it in the spec to choose another)"
    return column, reason


def stored_roles(inspection: Any) -> dict[str, str]:
    """Roles from the stored inspection: its "roles" entry, else the report's role keys."""
    if isinstance(inspection, Inspection):
        return dict(inspection.roles)
    if not isinstance(inspection, dict):
        return {}
    roles = inspection.get("roles")
    if isinstance(roles, dict):
        return {k: str(v) for k, v in roles.items() if v}
    report = inspection.get("report") if isinstance(inspection.get("report"), dict) else inspection
    found = {}
    for role, key in (("text", "text"), ("text", "source_column"), ("target", "target")):
        if isinstance(report.get(key), str) and role not in found:
            found[role] = report[key]
    return found




def default_vocab_size(total_chars: int) -> int:
    """A vocabulary that grows with the corpus: a big vocab on a small corpus is mostly unseen ids."""
    return next((size for below, size in VOCAB_BY_CHARS if total_chars < below), DEFAULT_VOCAB_LARGE)


def fit_tokenizer(train_texts: Sequence[str], options: DataOptions) -> tuple[Tokenizer, dict[str, Any]]:
    """The backbone's tokenizer when one is named, else one trained on ``train_texts`` only."""
    from tools.prep.tokenizer import describe_tokenizer, load_pretrained, train_tokenizer

    backbone = options.params.get("backbone")
    if backbone:
        tokenizer = load_pretrained(str(backbone))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return tokenizer, {**describe_tokenizer(tokenizer, "pretrained"), "backbone": str(backbone)}
    chars = sum(len(t) for t in train_texts)
    vocab = int_param(options, "vocab_size", default_vocab_size(chars), minimum=16)
    tokenizer, kind = train_tokenizer(train_texts, kind=str(options.param("tokenizer", "auto")),
                                      vocab_size=vocab, total_chars=chars)
    return tokenizer, {**describe_tokenizer(tokenizer, kind), "trained_on": "train split",
                       "requested_vocab_size": vocab}


def encode_lists(tokenizer: Tokenizer, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
    """Untruncated, unpadded ids per text (special tokens of a pretrained tokenizer included)."""
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(tokenizer.to_str())
    plain.no_padding()
    plain.no_truncation()
    encodings = plain.encode_batch(list(texts), add_special_tokens=add_special_tokens) if texts else []
    return [e.ids for e in encodings]


def token_lengths(tokenizer: Tokenizer, texts: Sequence[str], add_special_tokens: bool = True) -> np.ndarray:
    """Untruncated token counts: what the default max_length is read from."""
    import numpy as np

    return np.asarray([len(ids) for ids in encode_lists(tokenizer, texts, add_special_tokens)], dtype=np.int64)


def default_length(lengths: np.ndarray, bounds: tuple[int, int], extra: int = 0) -> int:
    """The p95 length (plus ``extra`` tokens) rounded up to a multiple of 8, clamped to ``bounds``."""
    import numpy as np

    p95 = float(np.percentile(lengths, LENGTH_PERCENTILE)) if len(lengths) else 0.0
    rounded = int(math.ceil((p95 + extra) / LENGTH_MULTIPLE) * LENGTH_MULTIPLE)
    return max(bounds[0], min(bounds[1], rounded))


def pad_ids(rows: Sequence[Sequence[int]], width: int, pad_id: int) -> np.ndarray:
    """(N, width) int32 matrix: each row left-aligned, the rest ``pad_id``; longer rows are cut."""
    import numpy as np

    matrix = np.full((len(rows), width), pad_id, dtype=np.int32)
    for i, ids in enumerate(rows):
        cut = ids[:width]
        matrix[i, : len(cut)] = cut
    return matrix


def encode_truncated(tokenizer: Tokenizer, texts: Sequence[str], max_length: int,
                     pad_id: int) -> tuple[np.ndarray, int]:
    """Ids padded to ``max_length``; truncation by the tokenizer keeps a pretrained closing token."""
    from tokenizers import Tokenizer

    work = Tokenizer.from_str(tokenizer.to_str())
    work.no_padding()
    work.enable_truncation(max_length)
    encodings = work.encode_batch(list(texts)) if texts else []
    truncated = sum(1 for e in encodings if e.overflowing)
    return pad_ids([e.ids for e in encodings], max_length, pad_id), truncated


def start_output(out_dir: Path) -> None:
    """Create ``out_dir`` and drop an old meta.json: meta is written last, so its presence means done."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)


# ---------------------------------------------------------------------------- loading
@dataclass
class _Examples:
    """The cleaned labelled texts and what was found on the way."""

    texts: list[str]
    labels: list[str]
    report: dict[str, Any]
    roles: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def _read_document(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _label_folder_documents(path: Path) -> list[tuple[Path, str]]:
    """(file, class) for ``<class>/*.txt`` under ``path`` (split folders like train/ are looked through)."""
    found = []
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        if (not file.is_file() or file.suffix.lower() not in DOC_SUFFIXES or len(relative.parts) < 2
                or any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)):
            continue
        if file.parent.name.lower() in SPLIT_DIR_NAMES:
            continue
        found.append((file, file.parent.name))
    return found


def _label_string(value: Any) -> str | None:
    """A label cell as a class name: 1.0 → '1' (NaN made the column float), missing/blank → None."""
    if isinstance(value, (list, tuple, dict)) or getattr(value, "shape", ()) != ():
        raise UnsupportedError("The label column holds lists (multi-label data), which text classification does not "
                               "support yet; give one label per row.")
    if _is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
    text = normalise_text(value)
    return text or None


def _infer_target(frame: pd.DataFrame, text: str) -> str | None:
    """The remaining column with short values, few distinct ones and labels on most rows."""
    scored = []
    for name in frame.columns:
        if name == text:
            continue
        col = frame[name]
        values = col.dropna()
        unique = values.astype(str).nunique() if len(values) else 0
        if unique < 2 or unique > min(TARGET_MAX_CLASSES, max(2, len(frame) // 2)):
            continue
        if is_textual(col):
            if mean_chars(col) > TARGET_MAX_MEAN_CHARS:
                continue
        elif col.dtype.kind == "f":
            if not (values % 1 == 0).all():
                continue  # a continuous number is a feature or a score, not a class
        elif col.dtype.kind not in "iub":
            continue
        scored.append((round(col.isna().mean(), 1), unique, list(frame.columns).index(name), name))
    return min(scored)[3] if scored else None


def _table_roles(frame: pd.DataFrame, options: DataOptions, roles: dict[str, str],
                 where: str) -> tuple[str, str, str, str]:
    """(text column, label column, text reason, label reason): named in the spec, else inferred."""
    columns = [str(c) for c in frame.columns]
    given_text = options.text or roles.get("text")
    given_target = options.target or roles.get("target")
    target_col = target_reason = ""
    if given_target:
        target_col, target_reason = pick_column(columns, given_target, "label", where)
    if given_text:
        text_col, text_reason = pick_column(columns, given_text, "text", where)
    else:
        others = [c for c in columns if c != target_col]
        textual = [c for c in others if is_textual(frame[c], empty_ok=True)]
        text_col, text_reason = choose_column(textual or others, None, "text", where, TEXT_NAMES,
                                              longest_column(frame, textual), "has the longest strings")
    if not given_target:
        rest = [c for c in columns if c != text_col]
        target_col, target_reason = choose_column(rest, None, "label", where, TARGET_NAMES,
                                                  _infer_target(frame, text_col),
                                                  "has short values repeated across rows")
    if text_col == target_col:
        raise DataError(f"The text and the label are both column '{text_col}'; name two different columns "
                        "in the spec's data section.")
    if not is_textual(frame[text_col], empty_ok=True):
        raise DataError(f"The text column '{text_col}' does not hold text; name the column with the texts "
                        "as data.text in the spec.")
    return text_col, target_col, text_reason, target_reason


def _load_examples(path: Path, options: DataOptions, roles: dict[str, str], log: Log) -> _Examples:
    """Load, resolve roles, normalise, drop what cannot be used, and check the classes."""
    import pandas as pd

    report: dict[str, Any] = {"family": "text", "task_type": options.task_type}
    docs = _label_folder_documents(path) if path.is_dir() else []
    if docs:
        frame = pd.DataFrame({"text": [_read_document(f) for f, _ in docs], "label": [c for _, c in docs]})
        text_col, target_col = "text", "label"
        text_reason = "the source is a folder of .txt documents, one per file"
        target_reason = "the source has one sub-folder per class; the folder name is the label"
        report.update(source_file={"format": "label folders", "path": str(path), "files": len(docs)})
        if options.text or options.target:
            log("The data is one folder per class, so the text and target column names in the spec are not used.",
                "warning")
    else:
        if path.is_dir() and not folder_tables(path):
            raise DataError(f"The folder {path} holds neither a table nor one sub-folder of .txt files per class; "
                            "point data.source at a table or arrange the documents as <class>/<name>.txt.")
        frame, info = load_frame(path, log)
        report.update(source_file=info)
        text_col, target_col, text_reason, target_reason = _table_roles(frame, options, roles, path.name)
    report.update(rows=int(len(frame)), columns=int(frame.shape[1]), column_names=[str(c) for c in frame.columns],
                  text=text_col, target=target_col, text_reason=text_reason, target_reason=target_reason)
    where = f"'{path.name}'"

    labels = [_label_string(v) for v in frame[target_col].tolist()]
    texts = normalise_column(frame[text_col])
    unlabelled = sum(label is None for label in labels)
    if unlabelled > MAX_MISSING_LABEL_SHARE * len(labels):
        raise DataError(f"{unlabelled} of {len(labels)} rows have no label in '{target_col}'; fill in the labels or "
                        "name the right label column as data.target in the spec.")
    pairs = [(t, lab) for t, lab in zip(texts, labels) if lab is not None]
    empty = sum(not t for t, _ in pairs)
    if empty == len(pairs):
        raise DataError(f"Every text in column '{text_col}' of {where} is empty; name the column that holds the "
                        "texts as data.text in the spec.")
    pairs = [(t, lab) for t, lab in pairs if t]
    seen: dict[str, str] = {}
    conflicting: set[str] = set()
    duplicates = 0
    kept = []
    for text, label in pairs:
        if text in seen:
            duplicates += 1
            if seen[text] != label:
                conflicting.add(text)
            elif options.param("deduplicate", DEDUPLICATE):
                continue
        else:
            seen[text] = label
        kept.append((text, label))
    dropped_duplicates = len(pairs) - len(kept)
    require_rows(len(kept), "labelled non-empty texts", where)
    counts: dict[str, int] = {}
    for _, label in kept:
        counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        only = next(iter(counts))
        raise DataError(f"Every labelled row of {where} has the class '{only}', and a classifier needs at least two; "
                        "add rows of another class or name a different label column.")
    small = sorted((c for c, n in counts.items() if n < MIN_CLASS_ROWS), key=lambda c: (counts[c], c))
    if small:
        named = ", ".join(f"'{c}' ({counts[c]} row{'s' if counts[c] != 1 else ''})" for c in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        subject = f"Class {named} has" if len(small) == 1 else f"Classes {named}{more} have"
        raise DataError(f"{subject} fewer than {MIN_CLASS_ROWS} rows, so the split cannot be stratified; "
                        "add rows or remove the class.")
    texts_kept = [t for t, _ in kept]
    classes = _sorted_classes(counts)
    distribution = {c: counts[c] for c in sorted(counts, key=lambda c: (-counts[c], classes.index(c)))}
    report.update(
        examples=len(kept), classes=classes, n_classes=len(classes), target_distribution=distribution,
        text_length=length_stats(texts_kept), empty_texts=empty, unlabelled_rows=unlabelled,
        duplicate_texts=duplicates, conflicting_duplicates=len(conflicting), dropped_duplicates=dropped_duplicates,
        imbalance_ratio=round(max(counts.values()) / min(counts.values()), 2),
    )
    hint = language_hint(texts_kept)
    if hint:
        report["language_hint"] = hint
    warnings = []
    if unlabelled:
        warnings.append(f"{unlabelled} rows have no label and are left out.")
    if empty:
        warnings.append(f"{empty} labelled rows have an empty text and are left out.")
    if dropped_duplicates:
        warnings.append(f"{dropped_duplicates} repeated texts are left out so no text is in two splits.")
    if conflicting:
        warnings.append(f"{len(conflicting)} texts appear with different labels (label noise).")
    if report["imbalance_ratio"] > IMBALANCE_WARN:
        warnings.append(f"The classes are imbalanced ({report['imbalance_ratio']}:1); accuracy will flatter the model.")
    report["warnings"] = warnings
    return _Examples(texts_kept, [lab for _, lab in kept], report, {"text": text_col, "target": target_col}, warnings)


def _sorted_classes(counts: dict[str, int]) -> list[str]:
    """Class order for label ids: numeric labels by value ('2' before '10'), others alphabetically."""
    names = list(counts)
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


# ---------------------------------------------------------------------------- the family
class TextClassification:
    """Texts with one label each → stratified splits of fixed-width token ids."""

    name = "text"

    def inspect(self, path: Path, options: DataOptions, log: Log = quiet) -> Inspection:
        """Resolve the text and label columns and check the classes can be trained and evaluated."""
        examples = _load_examples(Path(path), options, {}, log)
        report = examples.report
        for warning in examples.warnings:
            log(warning, "warning")
        top = list(report["target_distribution"].items())[:3]
        share = ", ".join(f"{c} {n / report['examples']:.0%}" for c, n in top)
        summary = (f"{report['examples']} texts, {report['n_classes']} classes ({share}{'…' if report['n_classes'] > 3 else ''}), "
                   f"text '{report['text']}' median {report['text_length']['words']['p50']:.0f} words")
        reason = (f"the column '{report['target']}' holds {report['n_classes']} classes for the texts in "
                  f"'{report['text']}'")
        return Inspection(report=report, roles=dict(examples.roles), task_type=options.task_type,
                          task_type_reason=reason, summary=summary)

    def prepare(self, path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                log: Log = quiet) -> Prepared:
        """Split stratified, fit the tokenizer on train only, write ids, labels and meta.json."""
        import numpy as np
        import pandas as pd

        from tools.prep.tokenizer import special_id
        from tools.splits import split_indices

        out_dir = Path(out_dir)
        examples = _load_examples(Path(path), options, stored_roles(inspection), log)
        classes = examples.report["classes"]
        class_id = {c: i for i, c in enumerate(classes)}
        y = np.asarray([class_id[c] for c in examples.labels], dtype=np.int64)
        splits = split_indices(len(y), options.val_fraction, options.test_fraction, options.seed, labels=y)
        train_texts = [examples.texts[i] for i in splits["train"]]
        tokenizer, tok_info = fit_tokenizer(train_texts, options)
        pad_id = special_id(tokenizer, "pad")
        lengths = token_lengths(tokenizer, train_texts)
        if options.params.get("max_length") is not None:
            max_length = int_param(options, "max_length", 0, minimum=MIN_MAX_LENGTH)
        else:
            max_length = default_length(lengths, MAX_LENGTH_BOUNDS)
        start_output(out_dir)
        files: dict[str, str] = {}
        truncated: dict[str, int] = {}
        split_classes: dict[str, dict[str, int]] = {}
        for split in ("train", "val", "test"):
            rows = splits[split]
            texts = [examples.texts[i] for i in rows]
            ids, truncated[split] = encode_truncated(tokenizer, texts, max_length, pad_id)
            labels = y[rows]
            table = pd.DataFrame({"text": texts, "label": [classes[i] for i in labels], "label_id": labels})
            table.to_parquet(out_dir / f"{split}.parquet", index=False)
            np.save(out_dir / f"ids_{split}.npy", ids)
            np.save(out_dir / f"y_{split}.npy", labels)
            files.update({split: str(out_dir / f"{split}.parquet"), f"ids_{split}": str(out_dir / f"ids_{split}.npy"),
                          f"y_{split}": str(out_dir / f"y_{split}.npy")})
            split_classes[split] = {classes[i]: int(n) for i, n in zip(*np.unique(labels, return_counts=True))}
        tokenizer.save(str(out_dir / "tokenizer.json"))
        files["tokenizer"] = str(out_dir / "tokenizer.json")
        sizes = {split: int(len(splits[split])) for split in ("train", "val", "test")}
        total_truncated = sum(truncated.values())
        meta = {
            "family": "text", "task_type": options.task_type,
            "files": {name: Path(p).name for name, p in files.items()},
            "columns": {"text": "normalised text", "label": "class name", "label_id": "index into classes"},
            "arrays": {"ids_{split}": f"int32 (N, {max_length}) token ids padded with pad_id {pad_id}",
                       "y_{split}": "int64 (N,) label ids"},
            "classes": classes, "max_length": max_length, "tokenizer": tok_info, "splits": sizes,
            "seed": options.seed, "truncated": total_truncated, "text_column": examples.roles["text"],
            "target_column": examples.roles["target"],
        }
        files["meta"] = str(write_meta(out_dir, meta))
        total = sum(sizes.values())
        report = {
            "splits": sizes, "seed": options.seed, "max_length": max_length, "tokenizer": tok_info,
            "dropped_empty": examples.report["empty_texts"], "dropped_unlabelled": examples.report["unlabelled_rows"],
            "dropped_duplicates": examples.report["dropped_duplicates"], "truncated": total_truncated,
            "truncated_share": round(total_truncated / total, 4) if total else 0.0,
            "truncated_by_split": truncated, "class_distribution": split_classes,
            "train_token_length": {"p50": round(float(np.percentile(lengths, 50)), 2),
                                   "p95": round(float(np.percentile(lengths, 95)), 2), "max": int(lengths.max())},
        }
        if report["truncated_share"] > 0.1:
            log(f"{report['truncated_share']:.0%} of texts are longer than max_length {max_length} and are cut; "
                "raise max_length to keep more.", "warning")
        summary = (f"{split_summary(sizes)}, {tok_info['kind']} tokenizer ({tok_info['vocab_size']} tokens), "
                   f"max_length {max_length}, {report['truncated_share']:.1%} truncated")
        return Prepared(report=report, files=files, summary=summary)


TEXT_CLASSIFICATION = TextClassification()
