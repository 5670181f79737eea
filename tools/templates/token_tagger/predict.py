"""
Tag words with an exported mltrainer token tagger (NER / POS): one tag per whitespace-separated word.

This file ships in the export folder next to model.safetensors, model.json (architecture, tag
names, max_length), tokenizer.json and token_tagger_nets.py (the networks and the seqeval-style
scoring the training script used). Each word is split into sub-tokens by the saved tokenizer and
gets the tag predicted on its first sub-token; sentences longer than max_length sub-tokens are
tagged in consecutive windows of whole words. Needs torch, tokenizers, safetensors and numpy.

    python predict.py --input sentences.txt --output tags.jsonl   # one sentence per line
    python predict.py --input sentences.txt --output tags.csv     # sentence, words, tags columns

From Python (any working directory):

    spec = importlib.util.spec_from_file_location("predict", "export/predict.py")
    predict = importlib.util.module_from_spec(spec); spec.loader.exec_module(predict)
    Predictor.load("export").predict(["Mary lives in Paris ."])  # [{"words": [...], "tags": [...]}]
"""

import argparse
import csv
import importlib.util
import json
import os
import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 64


def _load_nets(folder: str):
    """Import the export's token_tagger_nets.py by path, so this works from any working directory."""
    path = os.path.join(os.path.abspath(folder), "token_tagger_nets.py")
    if not os.path.isfile(path):
        raise ValueError(f"{folder} has no token_tagger_nets.py; it is not a token tagger export folder")
    name = f"_mltrainer_token_nets_{abs(hash(path))}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


_NETS = _load_nets(HERE) if os.path.isfile(os.path.join(HERE, "token_tagger_nets.py")) else None


def score(gold: list, pred: list) -> dict:
    """Entity-level micro precision/recall/F1 (exact spans, seqeval-style) and token accuracy: the
    same function train.py reports, from token_tagger_nets.py."""
    return (_NETS or _load_nets(HERE)).entity_scores(gold, pred)


class Predictor:
    """A loaded tagger: tokenizer + network + tag names."""

    def __init__(self, folder: str, info: dict, model, tokenizer: Tokenizer):
        self.folder, self.info, self.model, self.tokenizer = folder, info, model, tokenizer
        self.labels = list(info["labels"])
        self.max_length = int(info["max_length"])
        self.pad_id = int(info.get("pad_id", 0))

    @classmethod
    def load(cls, folder: str = HERE) -> "Predictor":
        for name in ("model.json", "model.safetensors", "tokenizer.json"):
            if not os.path.isfile(os.path.join(folder, name)):
                raise ValueError(f"{folder} has no {name}; point at a token tagger export folder")
        with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
            info = json.load(f)
        nets = _load_nets(folder)
        model = nets.build_model(info["kind"], **info["architecture"])
        model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
        model.eval()
        tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        tokenizer.no_padding()  # windows are padded here, to the longest in each batch
        tokenizer.no_truncation()
        return cls(folder, info, model, tokenizer)

    def _windows(self, words: list) -> list:
        """(first word index, encoding) windows of whole words that fit max_length sub-tokens."""
        enc = self.tokenizer.encode(words, is_pretokenized=True)
        if len(enc.ids) <= self.max_length:
            return [(0, enc)]
        specials = sum(1 for w in enc.word_ids if w is None)
        room = max(1, self.max_length - specials)
        pieces = [0] * len(words)
        for w in enc.word_ids:
            if w is not None:
                pieces[w] += 1
        windows, start, used = [], 0, 0
        for i, n in enumerate(pieces + [None]):
            if n is None or (used + n > room and i > start):
                self.tokenizer.enable_truncation(self.max_length)  # a single over-long word is cut
                try:
                    windows.append((start, self.tokenizer.encode(words[start:i], is_pretokenized=True)))
                finally:
                    self.tokenizer.no_truncation()
                start, used = i, 0
            used += n or 0
        return windows

    @torch.no_grad()
    def predict(self, inputs: list) -> list:
        """Sentences (a string split on whitespace, or a list of words) -> [{"words", "tags"}] in order."""
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, (list, tuple)):
            raise ValueError("predict() takes a list of sentences (strings or lists of words), not a single value")
        sentences = []
        for n, item in enumerate(inputs, 1):
            if isinstance(item, str):
                sentences.append(item.split())
            elif isinstance(item, (list, tuple)) and all(isinstance(w, str) for w in item):
                sentences.append([w for w in item])
            else:
                raise ValueError(f"sentence {n} is a {type(item).__name__}; give a string or a list of words")
        jobs = []  # (sentence, first word, encoding)
        for s, words in enumerate(sentences):
            if words:
                jobs.extend((s, start, enc) for start, enc in self._windows(words))
        tags = [["O"] * len(words) for words in sentences]  # a word with no sub-token keeps "O"
        for b in range(0, len(jobs), BATCH):
            chunk = jobs[b:b + BATCH]
            width = max(len(enc.ids) for _, _, enc in chunk)
            ids = torch.full((len(chunk), max(1, width)), self.pad_id, dtype=torch.long)
            for row, (_, _, enc) in enumerate(chunk):
                ids[row, :len(enc.ids)] = torch.tensor(enc.ids, dtype=torch.long)
            best = self.model(ids).argmax(-1).tolist()
            for row, (s, start, enc) in enumerate(chunk):
                previous = None
                for position, word in enumerate(enc.word_ids):
                    if word is not None and word != previous:  # the word's first sub-token
                        tags[s][start + word] = self.labels[best[row][position]]
                    previous = word
        return [{"words": words, "tags": t} for words, t in zip(sentences, tags)]


def read_sentences(input_path: str) -> list:
    """One sentence per line, words split on whitespace; blank lines stay (as empty sentences) so
    output row i answers input line i."""
    try:
        with open(input_path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ValueError(f"cannot read {input_path}: {e.strerror or e}") from None
    if b"\x00" in raw:
        raise ValueError(f"{os.path.basename(input_path)} is not a text file (it contains NUL bytes); give one sentence per line")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{os.path.basename(input_path)} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ValueError(f"{os.path.basename(input_path)} holds no sentences; write one sentence per line")
    return lines


def predict_file(folder: str, input_path: str, output_path: str) -> int:
    """Tag every line of ``input_path``; write CSV (by extension) or JSONL; returns the rows written."""
    lines = read_sentences(input_path)
    results = Predictor.load(folder).predict(lines)
    if str(output_path).lower().endswith(".csv"):
        with open(output_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["sentence", "words", "tags"])
            for n, r in enumerate(results, 1):
                writer.writerow([n, " ".join(r["words"]), " ".join(r["tags"])])
    else:
        with open(output_path, "w", encoding="utf-8") as f:
            for r in results:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(results)


def main() -> None:
    parser = argparse.ArgumentParser(description="Tag sentences with an exported mltrainer token tagger.")
    parser.add_argument("--input", required=True, help="text file, one sentence per line (words split on whitespace)")
    parser.add_argument("--output", required=True, help="file to write: .csv (sentence, words, tags) or JSONL otherwise")
    parser.add_argument("--model-dir", default=HERE, help="export folder (default: this script's folder)")
    args = parser.parse_args()
    try:
        n = predict_file(args.model_dir, args.input, args.output)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {n} predictions to {args.output}")


if __name__ == "__main__":
    main()
