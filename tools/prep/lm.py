"""Language modelling: a text corpus becomes fixed-length blocks of token ids for next-token training.

Sources: a plain-text file, a folder of text files (one document each), or a table with a text
column (JSONL ``{"text": …}`` included). For LLM fine-tuning only ``inspect`` runs (its script
tokenizes with the backbone itself), so it also recognises instruction tables (prompt/response,
instruction/input/output) and chat tables (a ``messages`` list of ``{role, content}`` turns).

Splits: by document when there are enough documents (seeded), otherwise by contiguous character
ranges of the text — train first, then validation, then test, never shuffled, so no sentence of the
validation text is also in training. The tokenizer is trained on the training text only. Each split
becomes one token stream (an end-of-text id between documents), saved whole (``tokens_*.npy``, for
random windows with memmap) and cut into blocks of ``block_size + 1`` ids (``blocks_*.npy``: input is
``block[:-1]``, target ``block[1:]``; consecutive blocks overlap by one id so every token is a target once).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DataError
from tools.prep.base import DataOptions, Inspection, Log, Prepared, int_param, pick_column, quiet, require_rows, write_meta

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

TASK_TYPE = "text_generation"
FINETUNING = "llm_finetuning"
TABLE_SUFFIXES = {".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet", ".pq"}
TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst"}
#: Column names by role (lower case), first match wins.
TEXT_NAMES = ("text", "content", "body", "document", "story", "article", "passage")
CHAT_NAMES = ("messages", "conversations", "conversation", "chat", "dialog", "dialogue")
PROMPT_NAMES = ("instruction", "prompt", "question", "query", "input", "source")
CONTEXT_NAMES = ("input", "context")
RESPONSE_NAMES = ("output", "response", "completion", "answer", "chosen", "target")
#: Keys of one chat turn: the speaker and the words (OpenAI style, then ShareGPT style).
ROLE_KEYS = ("role", "from")
CONTENT_KEYS = ("content", "value", "text")
#: Split by document from this many documents on; fewer are cut into contiguous character ranges.
MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT = 20
DEFAULT_BLOCK_SIZE = 128
MIN_BLOCK_SIZE = 8
BLOCK_MULTIPLE = 8
MIN_BLOCKS_PER_SPLIT = 4
#: bpe default vocabulary: one entry per this many training characters, clamped (a big vocab on a small corpus is noise).
CHARS_PER_VOCAB_ENTRY = 40
BPE_VOCAB_BOUNDS = (512, 8000)
CHAR_VOCAB = 8000
MIN_VOCAB = 16
#: Long documents are encoded in pieces of about this many characters (cut after a newline).
CHUNK_CHARS = 200_000
#: A contiguous split point moves forward to the next newline (or space) within this many characters.
SNAP_CHARS = 2000
#: End-of-text spellings looked up in a pretrained tokenizer, in order.
EOS_TOKENS = ("[EOS]", "<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eos|>", "<|im_end|>", "[SEP]")
#: More than this share of empty responses / unreadable chats means the fine-tuning data is not ready.
MAX_EMPTY_SHARE = 0.5
SPLITS = ("train", "val", "test")


@dataclass
class Corpus:
    documents: list[str]
    info: dict[str, Any] = field(default_factory=dict)  # source, files, encoding, format, columns…
    roles: dict[str, str] = field(default_factory=dict)




# ---------------------------------------------------------------------------- reading
def read_text_file(path: Path) -> tuple[str, str]:
    """A text file's content and encoding; binary, undecodable or blank files are refused."""
    from tools.local_data import _decode

    raw = path.read_bytes()
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path.name} contains binary bytes (a NUL at byte {nul}), so it is not a plain-text corpus; "
                        "point data.source at UTF-8 text.")
    text, encoding = _decode(path, raw)
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text, encoding


def _read_folder(path: Path, log: Log) -> Corpus:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise DataError(f"The folder {path.name} holds no text files ({', '.join(sorted(TEXT_SUFFIXES))}); "
                        "point data.source at a text file or a folder of them.")
    documents, names, encodings = [], [], Counter()
    for file in files:
        text, encoding = read_text_file(file)
        if text.strip():
            documents.append(text)
            names.append(str(file.relative_to(path)))
            encodings[encoding] += 1
    skipped = len(files) - len(documents)
    if skipped:
        log(f"skipped {skipped} empty text files", "warning")
    encoding = next(iter(encodings)) if len(encodings) == 1 else ("mixed (" + ", ".join(sorted(encodings)) + ")" if encodings else None)
    info = {"source": "folder", "files": len(files), "empty_files": skipped, "encoding": encoding, "format": "text"}
    return Corpus(documents, info)


def _turns(value: Any) -> list[tuple[str, str]] | None:
    """A chat cell as (role, content) pairs; None when it is not a list of turns."""
    import numpy as np

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) == 0:
        return None
    turns = []
    for turn in value:
        if not isinstance(turn, dict):
            return None
        role = next((turn[k] for k in ROLE_KEYS if turn.get(k) is not None), None)
        content = next((turn[k] for k in CONTENT_KEYS if turn.get(k) is not None), None)
        if role is None or content is None:
            return None
        turns.append((str(role), str(content)))
    return turns


def _is_chat(column: Any) -> bool:
    values = column.dropna()
    return bool(len(values)) and _turns(values.iloc[0]) is not None


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value).strip()


def _find(columns: list[str], names: tuple[str, ...], exclude: tuple[str | None, ...] = ()) -> str | None:
    by_lower = {c.lower(): c for c in columns}
    for name in names:
        if name in by_lower and by_lower[name] not in exclude:
            return by_lower[name]
    return None


def _longest_text_column(frame: Any) -> str | None:
    import pandas as pd

    best, best_length = None, 0.0
    for name in frame.columns:
        column = frame[name].dropna()
        if not len(column) or pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        if not isinstance(column.iloc[0], str):
            continue
        length = float(column.astype(str).str.len().mean())
        if length > best_length:
            best, best_length = str(name), length
    return best


def _table_format(frame: Any, options: DataOptions, name: str) -> tuple[str, dict[str, str]]:
    """How the rows read: (text | instruction | chat, the columns per role)."""
    columns = [str(c) for c in frame.columns]
    finetuning = options.task_type == FINETUNING
    if options.text and finetuning:
        prompt, _ = pick_column(columns, options.text, "prompt", name)
        response = (pick_column(columns, options.target, "response", name)[0] if options.target
                    else _find(columns, RESPONSE_NAMES, (prompt,)))
        if response and not _is_chat(frame[prompt]):
            roles = {"prompt": prompt, "response": response}
            context = _find(columns, CONTEXT_NAMES, (prompt, response))
            return "instruction", {**roles, **({"context": context} if context else {})}
    if options.text:
        column = pick_column(columns, options.text, "text", name)[0]
        return ("chat", {"messages": column}) if _is_chat(frame[column]) else ("text", {"text": column})
    chat = _find(columns, CHAT_NAMES)
    if chat is not None and not _is_chat(frame[chat]):
        chat = None
    prompt = _find(columns, PROMPT_NAMES)
    response = _find(columns, RESPONSE_NAMES, (prompt,))
    text = _find(columns, TEXT_NAMES)
    found: list[tuple[str, dict[str, str]]] = []
    if chat:
        found.append(("chat", {"messages": chat}))
    if prompt and response:
        roles = {"prompt": prompt, "response": response}
        context = _find(columns, CONTEXT_NAMES, (prompt, response))
        if context:
            roles["context"] = context
        found.append(("instruction", roles))
    if text:
        found.append(("text", {"text": text}))
    if not finetuning:  # plain text first when training a model from scratch on the text
        found.sort(key=lambda item: item[0] != "text")
    if found:
        return found[0]
    longest = _longest_text_column(frame)
    if longest is None:
        wanted = ("prompt/response (or instruction/output) columns, a messages column of {role, content} turns, "
                  "or a text column") if finetuning else "a text column"
        raise DataError(f"{name} has no text column to learn from (columns: {', '.join(columns[:12])}); "
                        f"it needs {wanted}, or name the column in data.text.")
    return "text", {"text": longest}


def _stats(values: list[int]) -> dict[str, float]:
    import numpy as np

    array = np.asarray(values, dtype=float)
    if not len(array):
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0, "min": 0.0}
    return {"mean": round(float(array.mean()), 2), "p50": float(np.percentile(array, 50)),
            "p95": float(np.percentile(array, 95)), "max": float(array.max()), "min": float(array.min())}


def _read_table(path: Path, options: DataOptions, log: Log) -> Corpus:
    from tools.local_data import load_table

    frame, info = load_table(path)
    kind, columns = _table_format(frame, options, path.name)
    extra: dict[str, Any] = {}
    documents: list[str] = []
    rows = len(frame)
    if kind == "text":
        documents = [_cell(v) for v in frame[columns["text"]].tolist()]
    elif kind == "instruction":
        prompts = [_cell(v) for v in frame[columns["prompt"]].tolist()]
        responses = [_cell(v) for v in frame[columns["response"]].tolist()]
        contexts = [_cell(v) for v in frame[columns["context"]].tolist()] if "context" in columns else [""] * rows
        empty = sum(1 for r in responses if not r)
        if empty > MAX_EMPTY_SHARE * rows:
            raise DataError(f"The response column '{columns['response']}' of {path.name} is empty in {empty} of {rows} rows; "
                            "fill in the responses to fine-tune on.")
        documents = [p + (f"\n\n{c}" if c else "") + f"\n\n{r}" if (p or c) and r else ""
                     for p, c, r in zip(prompts, contexts, responses)]
        extra = {"prompt_length": _stats([len(p) for p in prompts if p]),
                 "response_length": _stats([len(r) for r in responses if r]), "empty_responses": empty}
    else:
        chats = [_turns(v) for v in frame[columns["messages"]].tolist()]
        malformed = sum(1 for c in chats if c is None)
        if malformed > MAX_EMPTY_SHARE * rows:
            raise DataError(f"{malformed} of {rows} rows of '{columns['messages']}' in {path.name} are not lists of "
                            "{role, content} turns; write each conversation as such a list.")
        documents = ["\n".join(f"{role}: {content}" for role, content in c) if c else "" for c in chats]
        good = [c for c in chats if c]
        extra = {"turns": _stats([len(c) for c in good]),
                 "speaker_roles": dict(Counter(role for c in good for role, _ in c).most_common()),
                 "malformed_rows": malformed}
    empty_rows = sum(1 for d in documents if not d.strip())
    if empty_rows:
        log(f"{empty_rows} rows of {path.name} have no text and are left out", "warning")
    # roles are re-read as options.text/target by prepare: only those that lead back to the same format
    roles = ({"text": columns["text"]} if kind == "text" else
             {"text": columns["prompt"], "target": columns["response"]} if kind == "instruction" and options.task_type == FINETUNING
             else {"text": columns["messages"]} if kind == "chat" else {})
    info_out = {"source": "table", "file": info, "encoding": info.get("encoding"), "format": kind, "columns": columns,
                "empty_rows": empty_rows, **extra}
    return Corpus([d for d in documents if d.strip()], info_out, roles)


def load_corpus(path: Path, options: DataOptions, log: Log = quiet) -> Corpus:
    """The documents of the source (a file, a folder of text files, or a table)."""
    if not path.exists():
        raise DataError(f"The data source {path} does not exist; check data.source in the spec.")
    if path.is_dir():
        corpus = _read_folder(path, log)
    elif path.suffix.lower() in TABLE_SUFFIXES:
        corpus = _read_table(path, options, log)
    else:
        text, encoding = read_text_file(path)
        corpus = Corpus([text] if text.strip() else [], {"source": "file", "files": 1, "encoding": encoding, "format": "text"})
    if not corpus.documents:
        raise DataError(f"{path.name} holds no text, only whitespace; point data.source at a corpus with content.")
    return corpus


def describe(corpus: Corpus) -> dict[str, Any]:
    """The data report of a corpus."""
    docs = corpus.documents
    unique: set[str] = set()
    for doc in docs:
        unique.update(doc)
    return {
        "family": "lm",
        "rows": len(docs),
        "characters": sum(len(d) for d in docs),
        "words": sum(len(d.split()) for d in docs),
        "lines": sum(d.count("\n") + (0 if d.endswith("\n") else 1) for d in docs),
        "unique_characters": len(unique),
        "document_length": _stats([len(d) for d in docs]),
        **corpus.info,
    }


# ---------------------------------------------------------------------------- splitting
def _snap(documents: list[str], offsets: list[int], position: int, total: int) -> int:
    """``position`` moved forward to just after the next newline (else space) nearby, so a split starts on a line."""
    import bisect

    if position <= 0 or position >= total:
        return position
    index = bisect.bisect_right(offsets, position) - 1
    local = position - offsets[index]
    window = documents[index][local:local + min(SNAP_CHARS, max(1, total // 100))]
    newline = window.find("\n")
    if newline >= 0:
        return position + newline + 1
    space = re.search(r"\s", window)
    return position + space.start() + 1 if space else position


def contiguous_split(documents: list[str], val_fraction: float, test_fraction: float) -> tuple[dict[str, list[str]], dict[str, list[int]]]:
    """Train, then validation, then test as consecutive character ranges of the documents joined end to end."""
    offsets, total = [], 0
    for doc in documents:
        offsets.append(total)
        total += len(doc)
    raw = (int(round(total * (1 - val_fraction - test_fraction))), int(round(total * (1 - test_fraction))))
    cuts = (_snap(documents, offsets, raw[0], total), _snap(documents, offsets, raw[1], total))
    if not 0 < cuts[0] < cuts[1] < total:
        cuts = raw
    if not 0 < cuts[0] < cuts[1] < total:
        raise DataError(f"The corpus has only {total} characters, too few to cut into train, validation and test; add text.")
    ranges = {"train": [0, cuts[0]], "val": [cuts[0], cuts[1]], "test": [cuts[1], total]}
    parts: dict[str, list[str]] = {}
    for name, (start, end) in ranges.items():
        pieces = []
        for doc, offset in zip(documents, offsets):
            low, high = max(start, offset), min(end, offset + len(doc))
            if low < high:
                pieces.append(doc[low - offset:high - offset])
        parts[name] = [p for p in pieces if p.strip()]
    return parts, ranges


def split_documents(documents: list[str], options: DataOptions) -> tuple[dict[str, list[str]], str, dict[str, list[int]] | None]:
    """The splits' texts, how they were made (document | contiguous) and the character ranges of a contiguous split."""
    from tools.splits import split_indices

    if len(documents) >= MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT:
        rows = split_indices(len(documents), options.val_fraction, options.test_fraction, options.seed)
        return {name: [documents[i] for i in rows[name]] for name in SPLITS}, "document", None
    parts, ranges = contiguous_split(documents, options.val_fraction, options.test_fraction)
    return parts, "contiguous", ranges


# ---------------------------------------------------------------------------- tokens and blocks
def eos_id(tokenizer: Tokenizer, log: Log = quiet) -> int:
    """The end-of-text id put between documents."""
    from tools.prep.tokenizer import special_id

    for token in EOS_TOKENS:
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    log("the tokenizer has no end-of-text token; documents are separated by id "
        f"{special_id(tokenizer, 'eos')}", "warning")
    return special_id(tokenizer, "eos")


def _chunks(text: str) -> list[str]:
    if len(text) <= CHUNK_CHARS:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        end = text.find("\n", start + CHUNK_CHARS)
        end = len(text) if end < 0 else end + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def token_stream(tokenizer: Tokenizer, documents: list[str], eos: int) -> np.ndarray:
    """One id stream for a split: the documents' ids with ``eos`` between documents."""
    import numpy as np

    pieces, owners = [], []
    for index, doc in enumerate(documents):
        for piece in _chunks(doc):
            pieces.append(piece)
            owners.append(index)
    encoded = tokenizer.encode_batch(pieces, add_special_tokens=False) if pieces else []
    parts: list[Any] = []
    previous = None
    separator = np.asarray([eos], dtype=np.int64)
    for owner, encoding in zip(owners, encoded):
        if previous is not None and owner != previous:
            parts.append(separator)
        parts.append(np.asarray(encoding.ids, dtype=np.int64))
        previous = owner
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def n_blocks(n_tokens: int, block_size: int) -> int:
    """Blocks of ``block_size + 1`` ids that start every ``block_size`` ids."""
    return max(0, (n_tokens - 1) // block_size)


def choose_block_size(tokens: dict[str, int], requested: int | None = None) -> int:
    """``requested`` if every split gets enough blocks from it, else the default shrunk to fit; a corpus too
    small even for the smallest block is refused with the numbers."""
    smallest = min(tokens, key=lambda name: tokens[name])
    have = tokens[smallest]
    fits = (have - 1) // MIN_BLOCKS_PER_SPLIT
    fits = fits // BLOCK_MULTIPLE * BLOCK_MULTIPLE if fits >= BLOCK_MULTIPLE else fits
    minimum = MIN_BLOCKS_PER_SPLIT * MIN_BLOCK_SIZE + 1
    split_name = {"train": "training", "val": "validation", "test": "test"}[smallest]
    if requested is not None:
        size = int(requested)
        if size < 1:
            raise DataError(f"block_size must be a positive number of tokens, not {requested}; try {DEFAULT_BLOCK_SIZE}.")
        if n_blocks(have, size) >= MIN_BLOCKS_PER_SPLIT:
            return size
        need = MIN_BLOCKS_PER_SPLIT * size + 1
        advice = (f"set block_size to {fits} or less, or add text" if fits >= MIN_BLOCK_SIZE
                  else f"add text: even block_size {MIN_BLOCK_SIZE} needs {minimum} tokens per split")
        raise DataError(f"The {split_name} split has {have} tokens but block_size {size} needs at least {need} "
                        f"({MIN_BLOCKS_PER_SPLIT} blocks) in every split; {advice}.")
    if fits < MIN_BLOCK_SIZE:
        raise DataError(f"The corpus is too small for language modelling: the {split_name} split has {have} tokens "
                        f"({sum(tokens.values())} in all) but needs at least {minimum} ({MIN_BLOCKS_PER_SPLIT} blocks of "
                        f"block_size {MIN_BLOCK_SIZE}, the smallest); add text.")
    return min(DEFAULT_BLOCK_SIZE, fits)


def pack_blocks(stream: np.ndarray, block_size: int, dtype: Any) -> np.ndarray:
    """(n_blocks, block_size + 1) windows of the stream, one every ``block_size`` ids."""
    import numpy as np

    count = n_blocks(len(stream), block_size)
    if count == 0:
        return np.zeros((0, block_size + 1), dtype=dtype)
    windows = np.lib.stride_tricks.sliding_window_view(stream, block_size + 1)[::block_size][:count]
    return np.ascontiguousarray(windows, dtype=dtype)


def _tokenizer(train: list[str], options: DataOptions) -> tuple[Tokenizer, str]:
    from tools.prep.tokenizer import choose_kind, load_pretrained, train_tokenizer

    backbone = options.params.get("backbone")
    if backbone:
        return load_pretrained(str(backbone)), "pretrained"
    chars = sum(len(t) for t in train)
    kind = choose_kind(str(options.param("tokenizer", "auto")), chars)
    if kind == "bpe":
        low, high = BPE_VOCAB_BOUNDS
        default = max(low, min(high, chars // CHARS_PER_VOCAB_ENTRY))
    else:
        default = CHAR_VOCAB
    return train_tokenizer(train, kind, int_param(options, "vocab_size", default, MIN_VOCAB) or default, total_chars=chars)


def _check_size(report: dict[str, Any], options: DataOptions) -> None:
    """Refuse early a corpus that cannot give each split a few blocks even one character per token."""
    share = min(options.val_fraction, options.test_fraction)
    have = int(report["characters"] * share)
    need = MIN_BLOCKS_PER_SPLIT * MIN_BLOCK_SIZE + 1
    if have < need:
        raise DataError(f"The corpus is too small for language modelling: {report['characters']} characters give its "
                        f"smallest split about {have} tokens but it needs at least {need} ({MIN_BLOCKS_PER_SPLIT} blocks "
                        f"of block_size {MIN_BLOCK_SIZE}); add text (about {int(need / share)} characters in all).")


class LanguageModelling:
    name = "lm"

    def inspect(self, path: Path, options: DataOptions, log: Log = quiet) -> Inspection:
        corpus = load_corpus(path, options, log)
        report = describe(corpus)
        task_type = options.task_type or TASK_TYPE
        if task_type == FINETUNING:
            if report["format"] in ("instruction", "chat"):
                require_rows(report["rows"], "examples", path.name)
        else:
            _check_size(report, options)
        reason = "from the request" if options.task_type else "the source is plain text"
        what = {"instruction": "instruction examples", "chat": "conversations"}.get(report["format"], "documents")
        what = what if report["rows"] != 1 else what[:-1]
        summary = (f"{report['rows']:,} {what}, {report['characters']:,} characters, {report['words']:,} words, "
                   f"{report['unique_characters']} distinct characters")
        return Inspection(report, corpus.roles, task_type, reason, summary)

    def prepare(self, path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                log: Log = quiet) -> Prepared:
        import numpy as np

        from tools.prep.tokenizer import describe_tokenizer

        if options.task_type == FINETUNING:  # untokenized JSON lines: the script uses the base model's tokenizer
            from tools.prep.llm_finetune import prepare_finetuning

            return prepare_finetuning(path, options, inspection, out_dir, log)
        requested = int_param(options, "block_size", None, 1)
        corpus = load_corpus(path, options, log)
        parts, how, ranges = split_documents(corpus.documents, options)
        if not parts["train"]:
            raise DataError(f"The training split of {path.name} holds no text; add text or lower val_fraction/test_fraction.")
        tokenizer, kind = _tokenizer(parts["train"], options)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "meta.json").unlink(missing_ok=True)  # meta is written last: present means complete
        tokenizer.save(str(out_dir / "tokenizer.json"))
        tokenizer.no_truncation()  # a backbone's saved truncation would silently drop text
        tokenizer.no_padding()
        eos = eos_id(tokenizer, log)
        streams = {name: token_stream(tokenizer, parts[name], eos) for name in SPLITS}
        tokens = {name: int(len(stream)) for name, stream in streams.items()}
        block_size = choose_block_size(tokens, requested)
        if requested is None and block_size < DEFAULT_BLOCK_SIZE:
            log(f"block_size {block_size} (smaller than {DEFAULT_BLOCK_SIZE} so each split gets {MIN_BLOCKS_PER_SPLIT}+ blocks)",
                "warning")
        vocab = int(tokenizer.get_vocab_size())
        dtype = np.uint16 if vocab < 2**16 else np.int32
        files: dict[str, dict[str, str]] = {}
        blocks: dict[str, int] = {}
        for name, stream in streams.items():
            packed = pack_blocks(stream, block_size, dtype)
            np.save(out_dir / f"tokens_{name}.npy", stream.astype(dtype))
            np.save(out_dir / f"blocks_{name}.npy", packed)
            files[name] = {"blocks": f"blocks_{name}.npy", "tokens": f"tokens_{name}.npy"}
            blocks[name] = int(len(packed))
        token_info = {**describe_tokenizer(tokenizer, kind), "eos_id": eos, "file": "tokenizer.json"}
        if kind == "pretrained":
            token_info["backbone"] = str(options.params.get("backbone"))
        meta: dict[str, Any] = {
            "family": "lm",
            "task_type": options.task_type or TASK_TYPE,
            "files": files,
            "block_size": block_size,
            "vocab_size": vocab,
            "dtype": np.dtype(dtype).name,
            "tokenizer": token_info,
            "tokens": tokens,
            "splits": blocks,
            "documents": {name: len(parts[name]) for name in SPLITS},
            "split_by": how,
            "seed": options.seed,
        }
        if ranges is not None:
            meta["char_ranges"] = ranges  # offsets into the documents joined end to end
        meta_path = write_meta(out_dir, meta)
        report = {
            "splits": blocks,
            "seed": options.seed,
            "block_size": block_size,
            "tokens": tokens,
            "tokenizer": token_info,
            "vocab_size": vocab,
            "split_by": how,
            "documents": meta["documents"],
        }
        summary = (f"{kind} tokenizer ({vocab} ids), block_size {block_size}, split by {how}; "
                   f"blocks train/val/test {blocks['train']}/{blocks['val']}/{blocks['test']}")
        paths = {"dir": str(out_dir), "meta": str(meta_path), "tokenizer": str(out_dir / "tokenizer.json")}
        for name, named in files.items():
            for key, file in named.items():
                paths[f"{key}_{name}"] = str(out_dir / file)
        return Prepared(report, paths, summary)


LANGUAGE_MODELLING = LanguageModelling()
