"""
Predict with an exported mltrainer text classifier (bag of embeddings or Transformer).

This file ships in the export folder next to model.safetensors, model.json (the net's arguments and
the class names), tokenizer.json (the tokenizer fitted at training time) and
text_classifier_nets.py (the same net code the training script ran). Texts are normalised and
tokenized exactly as in training, cut to max_length, and scored on the CPU.

Input: a text file with one text per line (blank lines skipped), or a CSV/TSV/JSONL/JSON file with
a text column ("text", or the training data's text column, or the only column).
Output: a CSV with text,label and one proba_<class> column per class.

    python predict.py --input texts.txt --output predictions.csv

From Python (any working directory):

    spec = importlib.util.spec_from_file_location("predict", "export/predict.py")
    predict = importlib.util.module_from_spec(spec); spec.loader.exec_module(predict)
    labels = predict.Predictor.load("export").predict(["free entry to win a prize", "see you at 6"])
"""

import argparse
import csv
import importlib.util
import json
import os
import re
import sys
import unicodedata

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 256
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """NFC, whitespace collapsed, stripped: the normalisation the training texts went through."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _load_nets(folder: str):
    """Import the export's text_classifier_nets.py by path, so it works from any working directory."""
    path = os.path.join(os.path.abspath(folder), "text_classifier_nets.py")
    if not os.path.isfile(path):
        raise ValueError(f"{folder} has no text_classifier_nets.py; export the model again.")
    name = f"_mltrainer_text_nets_{abs(hash(path))}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


class Predictor:
    """Tokenizer + net + class names of one export folder."""

    def __init__(self, model, tokenizer, info: dict):
        self.model, self.tokenizer, self.info = model, tokenizer, info
        self.classes = [str(c) for c in info["classes"]]
        self.max_length, self.pad_id = int(info["max_length"]), int(info["pad_id"])

    @classmethod
    def load(cls, folder: str = HERE) -> "Predictor":
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        for name in ("model.json", "model.safetensors", "tokenizer.json"):
            if not os.path.isfile(os.path.join(folder, name)):
                raise ValueError(f"{folder} has no {name}; export the model again.")
        with open(os.path.join(folder, "model.json")) as f:
            info = json.load(f)
        nets = _load_nets(folder)
        model = nets.build_net(info["kind"], **info["architecture"])
        model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
        model.eval()
        tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(int(info["max_length"]))  # as training: the tokenizer cuts (keeps a closing token)
        return cls(model, tokenizer, info)

    def encode(self, texts: list) -> np.ndarray:
        """[N, max_length] int64 ids right-padded with pad_id, like the training arrays."""
        ids = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int64)
        for i, enc in enumerate(self.tokenizer.encode_batch([normalise_text(t) for t in texts]) if texts else []):
            row = enc.ids[: self.max_length]
            ids[i, : len(row)] = row
        return ids

    def predict_proba(self, inputs: list) -> np.ndarray:
        """Class probabilities [N, K] (columns in the order of self.classes)."""
        import torch

        texts = self._check(inputs)
        out = np.zeros((len(texts), len(self.classes)))
        with torch.no_grad():
            for s in range(0, len(texts), BATCH):
                ids = torch.from_numpy(self.encode(texts[s:s + BATCH]))
                out[s:s + BATCH] = self.model(ids).float().softmax(-1).numpy()
        return out

    def predict(self, inputs: list) -> list:
        """One class name per text."""
        proba = self.predict_proba(inputs)
        return [self.classes[i] for i in proba.argmax(axis=1)] if len(proba) else []

    @staticmethod
    def _check(inputs) -> list:
        if isinstance(inputs, str):
            raise ValueError("Predictor.predict takes a list of texts, not a single string; wrap it in a list.")
        texts = list(inputs)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise ValueError(f"Input {bad + 1} is a {type(texts[bad]).__name__}, not a text; give strings only.")
        return texts


def _text_column(columns: list, info: dict, where: str) -> str:
    """'text', else the training data's text column, else the only column."""
    preferred = ["text", str(info.get("text_column") or "text")]
    for name in preferred:
        if name in columns:
            return name
    lowered = {str(c).lower(): c for c in columns}
    for name in preferred:
        if name.lower() in lowered:
            return lowered[name.lower()]
    if len(columns) == 1:
        return columns[0]
    shown = ", ".join(repr(c) for c in columns[:10])
    raise ValueError(f"The {where} has no 'text' column (columns: {shown}); name the column with the texts 'text'.")


def read_texts(path: str, info: dict) -> list:
    """The texts of an input file: one per line, or the text column of a CSV/TSV/JSONL/JSON file."""
    suffix = os.path.splitext(path)[1].lower()
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            raw = f.read()
    except UnicodeDecodeError:
        raise ValueError("The file is not UTF-8 text; save it as UTF-8.") from None
    if suffix in TABLE_SUFFIXES:
        rows = list(csv.DictReader(raw.splitlines(), delimiter=TABLE_SUFFIXES[suffix]))
        if not rows:
            raise ValueError("The table has a header but no rows; add one text per row.")
        column = _text_column(list(rows[0].keys()), info, "table")
        texts = [row.get(column) or "" for row in rows]
    elif suffix in JSON_SUFFIXES:
        try:
            if suffix == ".json":
                records = json.loads(raw)
                records = records if isinstance(records, list) else [records]
            else:
                records = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise ValueError(f"The file is not valid JSON (line {err.lineno}: {err.msg}).") from None
        if any(not isinstance(r, dict) for r in records):
            if all(isinstance(r, str) for r in records):
                texts = records
            else:
                raise ValueError("Each JSON record must be an object with a text field, or a string.")
        else:
            column = _text_column(list(dict.fromkeys(k for r in records for k in r)), info, "file") if records else "text"
            texts = [r.get(column) if isinstance(r.get(column), str) else "" for r in records]
    else:
        texts = [line for line in raw.splitlines() if line.strip()]
    if not texts:
        raise ValueError("The file holds no texts; give one text per line (or a CSV with a 'text' column).")
    return texts


def predict_file(folder: str, input_path: str, output_path: str) -> int:
    """Score every text of ``input_path`` and write text,label,proba_<class> rows to ``output_path``."""
    predictor = Predictor.load(folder)
    texts = read_texts(input_path, predictor.info)
    proba = predictor.predict_proba(texts)
    with open(output_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"] + [f"proba_{c}" for c in predictor.classes])
        for text, p in zip(texts, proba):
            writer.writerow([text, predictor.classes[int(p.argmax())]] + [f"{v:.6f}" for v in p])
    return len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description="Predict with an exported mltrainer text classifier.")
    parser.add_argument("--input", required=True, help="text file (one text per line) or CSV/JSONL with a 'text' column")
    parser.add_argument("--output", required=True, help="CSV file to write text,label,proba_<class> rows to")
    parser.add_argument("--model-dir", default=HERE, help="export folder (default: this script's folder)")
    args = parser.parse_args()
    if not os.path.isfile(args.input):
        sys.exit(f"error: {args.input} does not exist")
    try:
        n = predict_file(args.model_dir, args.input, args.output)
    except ValueError as err:
        sys.exit(f"error: {os.path.basename(args.input)}: {err}")
    print(f"wrote {n} predictions to {args.output}")


if __name__ == "__main__":
    main()
