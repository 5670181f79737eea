"""LLM fine-tuning data: the examples split into ``{train,val,test}.jsonl``, untokenized.

Why untokenized: the training script tokenizes with the base model's own tokenizer (which it loads
with the model), so nothing here depends on transformers. Instruction tables keep the prompt and
the response apart (``{"prompt", "response"}``) so the loss can be taken on the response only;
chats, text columns and plain-text corpora become ``{"text"}`` records (a long text is cut at
paragraph breaks into pieces of about ``CHUNK_CHARS`` so it can be split and batched).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.errors import DataError
from tools.prep.base import DataOptions, Log, Prepared, quiet, require_rows, split_summary, write_meta

#: A document longer than this is cut at paragraph (then line) breaks into pieces of about this size.
CHUNK_CHARS = 1000
SPLITS = ("train", "val", "test")


def _chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """``text`` in pieces of about ``size`` characters, cut after a blank line (else a newline, else a space)."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > size:
        cut = size
        for mark in ("\n\n", "\n", " "):
            at = rest.rfind(mark, size // 2, size)
            if at > 0:
                cut = at
                break
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return [p for p in pieces if p]


def read_records(path: Path, options: DataOptions, log: Log = quiet) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The fine-tuning examples of the source and how they were read (format, columns)."""
    from tools.prep.lm import _cell, load_corpus

    corpus = load_corpus(path, options, log)
    info = corpus.info
    if info.get("format") == "instruction":
        from tools.local_data import load_table

        frame, _ = load_table(path)
        columns = info["columns"]
        records = []
        contexts = frame[columns["context"]].tolist() if "context" in columns else [None] * len(frame)
        for prompt, context, response in zip(frame[columns["prompt"]].tolist(), contexts,
                                             frame[columns["response"]].tolist()):
            prompt, context, response = _cell(prompt), _cell(context), _cell(response)
            if (prompt or context) and response:
                records.append({"prompt": prompt + (f"\n\n{context}" if context else ""), "response": response})
        return records, info
    documents = corpus.documents
    if len(documents) < 20:  # a corpus file or a few long documents: pieces, so the splits get examples
        documents = [piece for doc in documents for piece in _chunks(doc)]
    return [{"text": doc} for doc in documents if doc.strip()], info


def prepare_finetuning(path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                       log: Log = quiet) -> Prepared:
    """Split the examples (seeded) and write one JSON line per example per split, plus meta.json."""
    from tools.splits import split_indices

    records, info = read_records(path, options, log)
    require_rows(len(records), "fine-tuning examples", path.name)
    rows = split_indices(len(records), options.val_fraction, options.test_fraction, options.seed)
    if any(len(rows[name]) == 0 for name in SPLITS):
        raise DataError(f"{path.name} has too few examples ({len(records)}) to give train, validation and test "
                        "one each; add examples or change val_fraction/test_fraction.")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)  # meta is written last: present means complete
    files: dict[str, dict[str, str]] = {}
    for name in SPLITS:
        with (out_dir / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            for i in rows[name]:
                handle.write(json.dumps(records[int(i)], ensure_ascii=False) + "\n")
        files[name] = {"records": f"{name}.jsonl"}
    kind = "instruction" if records and "prompt" in records[0] else "text"
    lengths = sorted(len(r.get("prompt", "")) + len(r.get("response", r.get("text", ""))) for r in records)
    splits = {name: int(len(rows[name])) for name in SPLITS}
    backbone = options.params.get("backbone")
    meta: dict[str, Any] = {
        "family": "lm", "task_type": "llm_finetuning", "format": kind, "source_format": info.get("format"),
        "files": files, "splits": splits, "seed": options.seed, "record_keys": ["prompt", "response"]
        if kind == "instruction" else ["text"], "characters_p95": lengths[int(0.95 * (len(lengths) - 1))],
        "characters_max": lengths[-1], "backbone": str(backbone) if backbone else None,
        "tokenized": "by the training script, with the base model's tokenizer",
    }
    meta_path = write_meta(out_dir, meta)
    report = {k: v for k, v in meta.items() if k != "files"}
    paths = {"dir": str(out_dir), "meta": str(meta_path), **{f"records_{n}": str(out_dir / f"{n}.jsonl") for n in SPLITS}}
    what = "instruction examples" if kind == "instruction" else "text examples"
    return Prepared(report, paths, f"{len(records)} {what} as JSON lines; {split_summary(splits)}")
