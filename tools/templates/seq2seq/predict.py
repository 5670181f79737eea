"""
Summarize or translate with an exported mltrainer seq2seq model (a small encoder-decoder transformer).

This file ships in the export folder next to model.safetensors, model.json, tokenizer.json and
seq2seq_nets.py (the network code training used). Needs torch, safetensors and tokenizers.

    python predict.py --input sources.txt --output outputs.csv     # one source text per line

writes a CSV with the columns source,output (blank input lines are skipped). From Python:

    spec = importlib.util.spec_from_file_location("predict", "export/predict.py")
    predict = importlib.util.module_from_spec(spec); spec.loader.exec_module(predict)
    outputs = predict.Predictor.load("export").predict(["a source text", "another one"])
"""

import argparse
import csv
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 64


def _load_nets(folder: str):
    """Import the export's seq2seq_nets.py by path, so it works from any working directory."""
    path = os.path.join(os.path.abspath(folder), "seq2seq_nets.py")
    name = f"_mltrainer_seq2seq_nets_{abs(hash(path))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Predictor:
    """An exported model, its tokenizer and its decoding settings, ready to generate text."""

    def __init__(self, model, tokenizer, arch: dict, task_type: str, nets, device):
        self.model, self.tokenizer, self.arch, self.task_type, self.nets, self.device = model, tokenizer, arch, task_type, nets, device

    @classmethod
    def load(cls, folder: str = HERE, device: str = "cpu") -> "Predictor":
        """Rebuild the network from model.json and load its weights and tokenizer."""
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        with open(os.path.join(folder, "model.json")) as f:
            info = json.load(f)
        if info.get("family") != "seq2seq" or info.get("kind") != "transformer":
            raise ValueError(f"{folder} holds a {info.get('family')}/{info.get('kind')} model, not a seq2seq transformer.")
        nets = _load_nets(folder)
        arch = info["architecture"]
        model = nets.build_model(arch)
        model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
        dev = torch.device(device)
        model.to(dev).eval()
        tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return cls(model, tokenizer, arch, info.get("task_type", ""), nets, dev)

    def predict(self, inputs: list, beam: int | None = None, batch_size: int = BATCH) -> list:
        """One generated text per source text (sources longer than the trained max_length are cut)."""
        import torch

        if isinstance(inputs, str) or not isinstance(inputs, (list, tuple)):
            raise ValueError("Give the sources as a list of texts, one text per item.")
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise ValueError(f"Item {i + 1} is not a text but {type(text).__name__}; give one source string per item.")
            if not text.strip():
                raise ValueError(f"Item {i + 1} is empty; every source needs some text to {self._verb()}.")
        beam = int(beam or self.arch.get("beam", 1))
        if not 1 <= beam <= 8:
            raise ValueError(f"The beam width must be 1 (greedy) .. 8, not {beam}.")
        outputs: list = []
        threads = torch.get_num_threads()
        if self.device.type == "cpu":  # small models run faster on one thread (restored below)
            torch.set_num_threads(self.nets.cpu_threads(self.model))
        try:
            for s in range(0, len(inputs), batch_size):
                outputs.extend(self._batch(list(inputs[s:s + batch_size]), beam))
        finally:
            torch.set_num_threads(threads)
        return outputs

    def _batch(self, texts: list, beam: int) -> list:
        """Encode (cut to max_length), pad to the batch's longest source, generate, decode."""
        import torch

        a = self.arch
        pad, bos, eos, width = int(a["pad_id"]), int(a["bos_id"]), int(a["eos_id"]), int(a["max_length"])
        rows = [e.ids[:width] or [pad] for e in self.tokenizer.encode_batch(texts)]
        src = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
        for i, r in enumerate(rows):
            src[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        gen = self.model.generate(src.to(self.device), bos, eos, int(a["max_target_length"]), beam)
        ids = [self.nets.strip_ids(r, eos, pad) for r in gen.cpu().tolist()]
        return self.tokenizer.decode_batch(ids, skip_special_tokens=True)

    def _verb(self) -> str:
        return "summarize" if self.task_type == "summarization" else "translate"


def read_sources(input_path: str) -> list:
    """Non-blank lines of a UTF-8 text file."""
    if not os.path.isfile(input_path):
        raise ValueError(f"The input {input_path} does not exist; give a text file with one source per line.")
    try:
        with open(input_path, encoding="utf-8") as f:
            lines = [line.rstrip("\r\n") for line in f]
    except UnicodeDecodeError:
        raise ValueError(f"{os.path.basename(input_path)} is not UTF-8 text; give a text file with one source per line.") from None
    sources = [line for line in lines if line.strip()]
    if not sources:
        raise ValueError(f"{os.path.basename(input_path)} has no non-blank lines; write one source text per line.")
    return sources


def predict_file(folder: str, input_path: str, output_path: str) -> int:
    """Read one source per line, write source,output rows as CSV; returns the number of rows written."""
    sources = read_sources(input_path)
    outputs = Predictor.load(folder).predict(sources)
    with open(output_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "output"])
        writer.writerows(zip(sources, outputs))
    return len(outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description="Summarize or translate with an exported mltrainer seq2seq model.")
    parser.add_argument("--input", required=True, help="UTF-8 text file, one source text per line")
    parser.add_argument("--output", required=True, help="CSV file to write (columns source,output)")
    parser.add_argument("--model-dir", default=HERE, help="export folder (default: this script's folder)")
    args = parser.parse_args()
    try:
        written = predict_file(args.model_dir, args.input, args.output)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {written} outputs to {args.output}")


if __name__ == "__main__":
    main()
