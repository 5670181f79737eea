"""`mltrainer tokenizer train|load|apply`: the text pipeline's tokenizer code (tools/prep/tokenizer.py) on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mltrainer.commands.common import friendly

app = typer.Typer(help="Train, load and apply tokenizers (BPE, WordPiece, character) with the text pipeline's code.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def _target(output: Path) -> Path:
    """A folder gets tokenizer.json inside it; a file path is used as it is."""
    if output.is_dir() or not output.suffix:
        output.mkdir(parents=True, exist_ok=True)
        return output / "tokenizer.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


@app.command("train")
@friendly
def train(
    sources: list[str] = typer.Argument(..., help="Text files (one text per line) or data sources (table, URL, hf://…)."),
    output: Path = typer.Option(..., "--output", "-o", help="tokenizer.json to write, or a folder for it."),
    kind: str = typer.Option("bpe", "--kind", help="bpe, wordpiece, char, or auto (char for tiny corpora, else bpe)."),
    vocab_size: int = typer.Option(8000, "--vocab-size", min=16, help="Largest vocabulary, special tokens included."),
    min_frequency: int = typer.Option(0, "--min-frequency", min=0, help="Occurrences a piece needs to enter the vocabulary."),
    special_tokens: Optional[str] = typer.Option(None, "--special-tokens",
                                                 help="Comma-separated, ids in this order (default: [PAD],[UNK],[CLS],[SEP],[MASK],[BOS],[EOS])."),
    column: Optional[str] = typer.Option(None, "--column", help="The text column of a table source (default: 'text')."),
) -> None:
    """Train a tokenizer on text files or a dataset column; deterministic (same texts, same ids)."""
    from mltrainer.renderer import print_message
    from orchestrator.errors import DataError
    from tools.prep.tokenizer import corpus_texts, describe_tokenizer, train_tokenizer

    texts = [text for source in sources for text in corpus_texts(source, column)]
    if not texts:
        raise DataError("The sources hold no text; give files with one text per line or a table with a text column.")
    specials = [t.strip() for t in special_tokens.split(",") if t.strip()] if special_tokens else None
    tokenizer, used = train_tokenizer(texts, kind, vocab_size, special_tokens=specials, min_frequency=min_frequency)
    path = _target(output)
    tokenizer.save(str(path))
    info = describe_tokenizer(tokenizer, used)
    print_message(f"Trained a {used} tokenizer ({info['vocab_size']} tokens, pad id {info['pad_id']}) on "
                  f"{len(texts)} texts ({sum(len(t) for t in texts):,} characters); saved to {path}")


@app.command("load")
@friendly
def load(
    name: str = typer.Argument(..., help="A Hugging Face model id (needs the network or the local cache) or a local folder/tokenizer.json."),
    output: Path = typer.Option(..., "--output", "-o", help="tokenizer.json to write, or a folder for it."),
) -> None:
    """Fetch a pretrained tokenizer and save it as tokenizer.json."""
    from mltrainer.renderer import print_message
    from tools.prep.tokenizer import describe_tokenizer, load_pretrained

    tokenizer = load_pretrained(name)
    path = _target(output)
    tokenizer.save(str(path))
    print_message(f"Saved the tokenizer of '{name}' ({describe_tokenizer(tokenizer, 'pretrained')['vocab_size']} tokens) "
                  f"to {path}")


@app.command("apply")
@friendly
def apply(
    tokenizer: str = typer.Argument(..., help="A tokenizer.json, a folder with one, or a Hugging Face model id."),
    texts: Optional[list[str]] = typer.Argument(None, help="Texts to tokenize (or use --input)."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="A text file, one text per line."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSON lines to write (default: print them)."),
    special: bool = typer.Option(False, "--special/--no-special", help="Add the tokenizer's special tokens (e.g. [CLS])."),
) -> None:
    """Tokenize texts: one JSON line per text with its tokens and ids."""
    import json

    from mltrainer.renderer import print_message
    from orchestrator.errors import DataError, UsageError
    from tools.prep.tokenizer import load_pretrained

    lines = list(texts or [])
    if input is not None:
        if not input.is_file():
            raise DataError(f"The input {input} does not exist; check the path.")
        try:
            lines += [line for line in input.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise DataError(f"{input.name} is not UTF-8 text; save it as UTF-8.") from None
    if not lines:
        raise UsageError("Give texts to tokenize as arguments or with --input FILE.")
    loaded = load_pretrained(tokenizer)
    loaded.no_padding()
    loaded.no_truncation()
    rows = [json.dumps({"text": text, "tokens": enc.tokens, "ids": enc.ids}, ensure_ascii=False)
            for text, enc in zip(lines, loaded.encode_batch(lines, add_special_tokens=special))]
    if output is None:
        print("\n".join(rows))
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print_message(f"Wrote {len(rows)} tokenized texts to {output}")
