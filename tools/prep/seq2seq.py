"""Summarization and translation data: a table of (source text, target text) pairs.

``inspect`` resolves the two sides (named in the spec, read off language-code column names such as
``en``/``fr``, expanded from a column of ``{"en": …, "fr": …}`` dicts as the HF translation feature
stores them, or the two longest text columns) and reports lengths on both sides. ``prepare`` splits
at random (seeded), fits one tokenizer on the training sources and targets together (or loads the
backbone's), drops pairs that are too long or whose lengths do not fit a translation, and writes
padded id matrices; targets are wrapped in bos/eos so a decoder can be trained on them directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DataError, SpecError
from tools.prep.base import (
    MIN_ROWS,
    DataOptions,
    Inspection,
    Log,
    Prepared,
    pick_column,
    quiet,
    require_rows,
    split_summary,
    write_meta,
)
from tools.prep.text import (
    DEDUPLICATE,
    choose_column,
    default_length,
    encode_lists,
    fit_tokenizer,
    int_param,
    is_textual,
    language_hint,
    length_stats,
    load_frame,
    longest_column,
    normalise_column,
    pad_ids,
    start_output,
    stored_roles,
)

if TYPE_CHECKING:
    import pandas as pd

# ---------------------------------------------------------------------------- tables
#: Column names of the source side, best first.
SOURCE_NAMES = ("document", "article", "text", "source", "src", "dialogue", "dialog", "input", "content",
                "body", "context", "passage", "original", "sentence")
#: Column names of the target side, best first (summaries / translations).
SUMMARY_NAMES = ("summary", "highlights", "abstract", "target", "tgt", "headline", "output", "title", "reference")
TRANSLATION_NAMES = ("target", "tgt", "translation", "output", "reference")
#: ISO 639-1 codes read as language columns (plus the spelled-out names below).
LANGUAGE_CODES = frozenset(
    "af am ar az be bg bn bs ca cs cy da de el en eo es et eu fa fi fr ga gl gu ha he hi hr hu hy id ig is it "
    "ja jv ka kk km kn ko ky la lb lo lt lv mg mi mk ml mn mr ms mt my ne nl no pa pl ps pt ro ru rw si sk sl "
    "so sq sr sv sw ta te tg th tk tl tr tt uk ur uz vi xh yi yo zh zu".split())
LANGUAGE_NAMES = {"english": "en", "french": "fr", "german": "de", "spanish": "es", "italian": "it",
                  "portuguese": "pt", "dutch": "nl", "russian": "ru", "chinese": "zh", "japanese": "ja",
                  "korean": "ko", "arabic": "ar", "hindi": "hi", "turkish": "tr", "polish": "pl",
                  "swedish": "sv", "czech": "cs", "greek": "el", "romanian": "ro", "ukrainian": "uk",
                  "vietnamese": "vi", "indonesian": "id", "finnish": "fi", "danish": "da", "hebrew": "he"}
#: Codes that are also ordinary column names: such a column counts as a language only if it holds sentences.
AMBIGUOUS_CODES = frozenset({"id", "is", "no"})
_LANGUAGE_COLUMN = re.compile(r"^(?:(?:src|tgt|source|target|text|sentence)[_\-.])?([a-z]{2,10})"
                              r"(?:[_\-.](?:[a-z]{2,4}|text|sentence))?$")
SOURCE_LENGTH_BOUNDS = (16, 1024)  # default max_length: train p95 rounded up, clamped to this
TARGET_LENGTH_BOUNDS = (8, 512)  # default max_target_length (bos and eos included)
DEFAULT_LENGTH_RATIO = 3.0  # translation pairs whose token counts differ more than this are misaligned
RATIO_MIN_TOKENS = 10  # …checked only when the longer side has at least this many tokens
SWAP_WARN_RATIO = 1.0  # summaries longer than their documents (median): the columns may be swapped
FILTERS = {
    "source_too_long": "the source is longer than max_length={max_length} tokens; raise max_length",
    "target_too_long": "the target is longer than max_target_length={max_target_length} tokens; raise max_target_length",
    "length_ratio": "source and target lengths differ more than {ratio}x; raise max_length_ratio",
}


@dataclass
class _Pairs:
    """The cleaned pairs and what was found on the way."""

    sources: list[str]
    targets: list[str]
    report: dict[str, Any]
    roles: dict[str, str]
    warnings: list[str]


# ---------------------------------------------------------------------------- loading
def column_language(name: str, series: pd.Series | None = None) -> str | None:
    """The language a column name stands for (``en``, ``fr_FR``, ``text_de``, ``english``), or None."""
    match = _LANGUAGE_COLUMN.match(name.strip().lower())
    if not match:
        return None
    word = match.group(1)
    code = word if word in LANGUAGE_CODES else LANGUAGE_NAMES.get(word)
    if code is None:
        return None
    if word in AMBIGUOUS_CODES and name.strip().lower() == word and series is not None:
        values = series.dropna().astype(str).iloc[:500]
        if not len(values) or values.str.contains(" ").mean() < 0.1:
            return None  # an identifier column called "id", not Indonesian sentences
    return code


def _as_dict(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _expand_dicts(frame: pd.DataFrame, log: Log) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Columns of ``{"en": …, "fr": …}`` (HF translation feature, or its JSON text) → one column per key."""
    import pandas as pd

    expanded: dict[str, list[str]] = {}
    for name in list(frame.columns):
        col = frame[name]
        if col.dtype.kind != "O" and not pd.api.types.is_string_dtype(col):
            continue
        sample = col.dropna().iloc[:20].tolist()
        dicts = [_as_dict(v) for v in sample]
        if not sample or any(d is None for d in dicts):
            continue
        keys: list[str] = []
        for d in dicts:
            keys.extend(str(k) for k in d if str(k) not in keys)
        rows = [_as_dict(v) if v is not None else None for v in col.tolist()]
        new = {}
        for key in keys:
            column = key if key not in frame.columns or key == name else f"{name}.{key}"
            new[column] = [(r or {}).get(key) for r in rows]
        position = list(frame.columns).index(name)
        frame = frame.drop(columns=[name])
        for offset, (column, values) in enumerate(new.items()):
            frame.insert(position + offset, column, values)
        expanded[name] = list(new)
        log(f"Column '{name}' holds pairs; expanded into {', '.join(repr(c) for c in new)}.", "info")
    return frame, expanded


def _resolve(frame: pd.DataFrame, options: DataOptions, roles: dict[str, str],
             where: str) -> tuple[str, str, str, str]:
    """(source, target, source_reason, target_reason)."""
    columns = [str(c) for c in frame.columns]
    given_source = options.text or roles.get("text")
    given_target = options.target or roles.get("target")
    source = target = None
    source_reason = target_reason = ""
    if given_source:
        source, source_reason = pick_column(columns, given_source, "source text", where)
    if given_target:
        target, target_reason = pick_column(columns, given_target, "target text", where)
    textual = [c for c in columns if is_textual(frame[c], empty_ok=True)]
    if options.task_type == "translation":
        languages = {c: lang for c in textual if (lang := column_language(c, frame[c]))}
        wanted = {"source": options.params.get("source_lang"), "target": options.params.get("target_lang")}
        for side, code in wanted.items():
            if not code or (source if side == "source" else target):
                continue
            code = str(code).lower()
            column = next((c for c, lang in languages.items() if code in (lang, c.lower())), None)
            if column is None:
                raise DataError(f"No column of {where} holds the {side} language '{code}'; language columns are: "
                                f"{', '.join(languages) or 'none'}.")
            if side == "source":
                source, source_reason = column, f"inferred: '{column}' is the source_lang '{code}' column"
            else:
                target, target_reason = column, f"inferred: '{column}' is the target_lang '{code}' column"
        free = [c for c in languages if c not in (source, target)]
        if source is None and free:
            source = free.pop(0)
            source_reason = (f"inferred: '{source}' is the first language column ({languages[source]}), so it is "
                             "the source (set data.text to choose another)")
        if target is None and free:
            target = free.pop(0)
            target_reason = f"inferred: '{target}' is the other language column ({languages[target]})"
        target_names = TRANSLATION_NAMES
    else:
        target_names = SUMMARY_NAMES
    # Fallbacks: summarization takes the longest text column as the source and the next longest as the
    # target; translation (no language names) takes the text columns in table order.
    by_length = options.task_type != "translation"
    if source is None:
        pool = [c for c in textual if c != target]
        fallback = longest_column(frame, pool) if by_length else next(iter(pool), None)
        source, source_reason = choose_column(pool or columns, None, "source text", where, SOURCE_NAMES, fallback,
                                              "has the longest texts" if by_length else "is the first text column")
    if target is None:
        pool = [c for c in textual if c != source]
        fallback = longest_column(frame, pool) if by_length else next(iter(pool), None)
        target, target_reason = choose_column(pool or [c for c in columns if c != source], None, "target text",
                                              where, target_names, fallback,
                                              "is the longest other text column" if by_length
                                              else "is the other text column")
    if source == target:
        raise DataError(f"The source and the target are both column '{source}'; name two different columns as "
                        "data.text (source) and data.target in the spec.")
    for side, column in (("source", source), ("target", target)):
        if not is_textual(frame[column], empty_ok=True):
            raise DataError(f"The {side} column '{column}' does not hold text; name the text columns as data.text "
                            "(source) and data.target in the spec.")
    return source, target, source_reason, target_reason


def _languages(options: DataOptions, source: str, target: str, sources: list[str],
               targets: list[str], frame: pd.DataFrame) -> dict[str, str] | None:
    """Languages of both sides: from the spec, the column names, or a guess from the text."""
    spec = {"source": options.params.get("source_lang"), "target": options.params.get("target_lang")}
    if spec["source"] and spec["target"]:
        return {"source": str(spec["source"]), "target": str(spec["target"]), "from": "spec"}
    named = {"source": column_language(source.split(".")[-1], frame[source]),
             "target": column_language(target.split(".")[-1], frame[target])}
    if named["source"] and named["target"]:
        return {**named, "from": "column names"}
    guessed = {"source": language_hint(sources), "target": language_hint(targets)}
    if guessed["source"] or guessed["target"]:
        return {k: v for k, v in guessed.items() if v} | {"from": "text sample (a hint)"}
    return None


def _load_pairs(path: Path, options: DataOptions, roles: dict[str, str], log: Log) -> _Pairs:
    import numpy as np

    frame, info = load_frame(path, log)
    frame, expanded = _expand_dicts(frame, log)
    where = path.name
    source, target, source_reason, target_reason = _resolve(frame, options, roles, where)
    report: dict[str, Any] = {
        "family": "seq2seq", "task_type": options.task_type, "source_file": info, "rows": int(len(frame)),
        "columns": int(frame.shape[1]), "column_names": [str(c) for c in frame.columns],
        "source_column": source, "target_column": target, "target": target, "source_reason": source_reason, "target_reason": target_reason,
    }
    if expanded:
        report["expanded_columns"] = expanded
    sources, targets = normalise_column(frame[source]), normalise_column(frame[target])
    pairs = [(s, t) for s, t in zip(sources, targets) if s and t]
    empty = len(sources) - len(pairs)
    if not pairs:
        raise DataError(f"Every row of '{where}' has an empty '{source}' or '{target}'; name the source and target "
                        "text columns as data.text and data.target in the spec.")
    seen: set[tuple[str, str]] = set()
    kept = []
    duplicates = 0
    for pair in pairs:
        if pair in seen:
            duplicates += 1
            if options.param("deduplicate", DEDUPLICATE):
                continue
        seen.add(pair)
        kept.append(pair)
    require_rows(len(kept), "non-empty source/target pairs", f"'{where}'")
    kept_sources = [s for s, _ in kept]
    kept_targets = [t for _, t in kept]
    identical = sum(s == t for s, t in kept)
    report.update(
        pairs=len(kept), empty_pairs=empty, duplicate_pairs=duplicates,
        dropped_duplicates=len(pairs) - len(kept), identical_pairs=identical,
        duplicate_sources=len(kept) - len(set(kept_sources)),
        source_length=length_stats(kept_sources), target_length=length_stats(kept_targets),
    )
    ratios = np.asarray([len(s.split()) / max(1, len(t.split())) for s, t in kept])
    warnings = []
    if options.task_type == "summarization":
        report["compression_ratio"] = {"median": round(float(np.median(ratios)), 2),
                                       "p5": round(float(np.percentile(ratios, 5)), 2),
                                       "p95": round(float(np.percentile(ratios, 95)), 2),
                                       "meaning": "source words per target word"}
        if report["compression_ratio"]["median"] < SWAP_WARN_RATIO:
            warnings.append(f"The targets in '{target}' are longer than the sources in '{source}'; check that the "
                            "columns are not swapped.")
    else:
        report["length_ratio"] = {"median": round(float(np.median(ratios)), 2),
                                  "meaning": "source words per target word"}
    if options.task_type == "translation":
        languages = _languages(options, source, target, kept_sources, kept_targets, frame)
        if languages:
            report["languages"] = languages
    else:
        hint = language_hint(kept_sources)
        if hint:
            report["language_hint"] = hint
    if empty:
        warnings.append(f"{empty} pairs have an empty side and are left out.")
    if len(pairs) != len(kept):
        warnings.append(f"{len(pairs) - len(kept)} repeated pairs are left out so no pair is in two splits.")
    if identical:
        warnings.append(f"{identical} pairs have the same text on both sides.")
    report["warnings"] = warnings
    return _Pairs(kept_sources, kept_targets, report, {"text": source, "target": target}, warnings)


def _ratio_param(options: DataOptions) -> float:
    value = options.param("max_length_ratio", DEFAULT_LENGTH_RATIO)
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"The hyperparameter max_length_ratio must be a number, not {value!r}; fix it in the spec.") from None
    if ratio < 1:
        raise SpecError(f"The hyperparameter max_length_ratio is {ratio}; it must be at least 1.")
    return ratio


def _filter_reason(src: int, tgt: int, limits: dict[str, Any], translation: bool) -> str | None:
    """Why a pair (token counts; tgt with bos/eos) is dropped, the first filter that applies, or None."""
    if src > limits["max_length"]:
        return "source_too_long"
    if tgt > limits["max_target_length"]:
        return "target_too_long"
    inner = tgt - 2
    if translation and max(src, inner) >= RATIO_MIN_TOKENS and max(src, inner) > limits["ratio"] * max(1, min(src, inner)):
        return "length_ratio"
    return None


def _filter_error(counts: dict[str, int], total: int, kept: int, limits: dict[str, Any],
                  split: str | None = None) -> DataError:
    """One sentence naming the filter that dropped most pairs and the hyperparameter to raise."""
    reason = max(counts, key=lambda k: counts[k])
    advice = FILTERS[reason].format(**limits)
    if split:
        return DataError(f"No pairs are left in the {split} split after length filtering ({counts[reason]} of {total} "
                         f"dropped because {advice} in the spec's hyperparameters).")
    if kept == 0:
        return DataError(f"All {total} pairs were filtered out, {counts[reason]} because {advice} in the spec's "
                         "hyperparameters.")
    return DataError(f"Only {kept} of {total} pairs are left after length filtering, fewer than {MIN_ROWS} "
                     f"({counts[reason]} dropped because {advice} in the spec's hyperparameters).")


# ---------------------------------------------------------------------------- the family
class Seq2Seq:
    """(source, target) text pairs → random splits of padded source and target ids."""

    name = "seq2seq"

    def inspect(self, path: Path, options: DataOptions, log: Log = quiet) -> Inspection:
        """Resolve the source and target columns and report lengths on both sides."""
        pairs = _load_pairs(Path(path), options, {}, log)
        report = pairs.report
        for warning in pairs.warnings:
            log(warning, "warning")
        langs = report.get("languages") or {}
        arrow = f" ({langs.get('source', '?')}→{langs.get('target', '?')})" if options.task_type == "translation" and langs else ""
        summary = (f"{report['pairs']} pairs{arrow}: '{report['source_column']}' median "
                   f"{report['source_length']['words']['p50']:.0f} words → '{report['target_column']}' median "
                   f"{report['target_length']['words']['p50']:.0f} words")
        reason = f"pairs of texts: '{report['source_column']}' is turned into '{report['target_column']}'"
        return Inspection(report=report, roles=dict(pairs.roles), task_type=options.task_type,
                          task_type_reason=reason, summary=summary)

    def prepare(self, path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                log: Log = quiet) -> Prepared:
        """Split at random, fit one shared tokenizer on train, filter by length, write padded ids."""
        import numpy as np
        import pandas as pd

        from tools.prep.tokenizer import special_id
        from tools.splits import split_indices

        out_dir = Path(out_dir)
        pairs = _load_pairs(Path(path), options, stored_roles(inspection), log)
        n = len(pairs.sources)
        splits = split_indices(n, options.val_fraction, options.test_fraction, options.seed)
        train = splits["train"]
        tokenizer, tok_info = fit_tokenizer([pairs.sources[i] for i in train] + [pairs.targets[i] for i in train],
                                            options)
        ids = {"pad": special_id(tokenizer, "pad"), "bos": special_id(tokenizer, "bos"),
               "eos": special_id(tokenizer, "eos")}
        source_ids = encode_lists(tokenizer, pairs.sources, add_special_tokens=True)
        target_ids = [[ids["bos"], *row, ids["eos"]] for row in encode_lists(tokenizer, pairs.targets, add_special_tokens=False)]
        src_len = np.asarray([len(r) for r in source_ids])
        tgt_len = np.asarray([len(r) for r in target_ids])
        limits = {
            "max_length": (int_param(options, "max_length", 0, minimum=2) if options.params.get("max_length") is not None
                           else default_length(src_len[train], SOURCE_LENGTH_BOUNDS)),
            "max_target_length": (int_param(options, "max_target_length", 0, minimum=3)
                                  if options.params.get("max_target_length") is not None
                                  else default_length(tgt_len[train], TARGET_LENGTH_BOUNDS)),
            "ratio": _ratio_param(options),
        }
        translation = options.task_type == "translation"
        reasons = [_filter_reason(int(s), int(t), limits, translation) for s, t in zip(src_len, tgt_len)]
        counts = {key: sum(r == key for r in reasons) for key in FILTERS}
        kept_total = sum(r is None for r in reasons)
        if kept_total < MIN_ROWS:
            raise _filter_error(counts, n, kept_total, limits)
        kept = {split: np.asarray([i for i in rows if reasons[i] is None], dtype=np.int64) for split, rows in splits.items()}
        for split, rows in kept.items():
            if not len(rows):
                raise _filter_error(counts, n, 0, limits, split)
        start_output(out_dir)
        files: dict[str, str] = {}
        for split in ("train", "val", "test"):
            rows = kept[split]
            pd.DataFrame({"source": [pairs.sources[i] for i in rows], "target": [pairs.targets[i] for i in rows]}) \
                .to_parquet(out_dir / f"{split}.parquet", index=False)
            np.save(out_dir / f"src_{split}.npy", pad_ids([source_ids[i] for i in rows], limits["max_length"], ids["pad"]))
            np.save(out_dir / f"tgt_{split}.npy",
                    pad_ids([target_ids[i] for i in rows], limits["max_target_length"], ids["pad"]))
            files.update({split: str(out_dir / f"{split}.parquet"), f"src_{split}": str(out_dir / f"src_{split}.npy"),
                          f"tgt_{split}": str(out_dir / f"tgt_{split}.npy")})
        tokenizer.save(str(out_dir / "tokenizer.json"))
        files["tokenizer"] = str(out_dir / "tokenizer.json")
        sizes = {split: int(len(kept[split])) for split in ("train", "val", "test")}
        dropped = n - kept_total
        tok_info = {**tok_info, "bos_id": ids["bos"], "eos_id": ids["eos"]}
        meta = {
            "family": "seq2seq", "task_type": options.task_type,
            "files": {name: Path(p).name for name, p in files.items()},
            "columns": {"source": "normalised source text", "target": "normalised target text"},
            "arrays": {"src_{split}": f"int32 (N, {limits['max_length']}) source ids padded with pad_id {ids['pad']}",
                       "tgt_{split}": (f"int32 (N, {limits['max_target_length']}) target ids as [bos] … [eos], "
                                       f"padded with pad_id {ids['pad']}")},
            "max_length": limits["max_length"], "max_target_length": limits["max_target_length"],
            "tokenizer": tok_info, "splits": sizes, "seed": options.seed, "filtered": counts,
            "source_column": pairs.roles["text"], "target_column": pairs.roles["target"],
            "languages": pairs.report.get("languages"),
        }
        files["meta"] = str(write_meta(out_dir, meta))
        report = {
            "splits": sizes, "seed": options.seed, "max_length": limits["max_length"],
            "max_target_length": limits["max_target_length"], "tokenizer": tok_info,
            "dropped_empty": pairs.report["empty_pairs"], "dropped_duplicates": pairs.report["dropped_duplicates"],
            "filtered": counts, "filtered_share": round(dropped / n, 4),
            "train_token_length": {"source_p95": round(float(np.percentile(src_len[train], 95)), 2),
                                   "target_p95": round(float(np.percentile(tgt_len[train], 95)), 2)},
        }
        if dropped:
            log(f"{dropped} of {n} pairs dropped by length filters: "
                + ", ".join(f"{k} {v}" for k, v in counts.items() if v) + ".", "warning" if dropped > 0.1 * n else "info")
        summary = (f"{split_summary(sizes)}, {tok_info['kind']} tokenizer ({tok_info['vocab_size']} tokens), "
                   f"max_length {limits['max_length']}/{limits['max_target_length']}, {dropped} pairs filtered")
        return Prepared(report=report, files=files, summary=summary)


SEQ2SEQ = Seq2Seq()
