"""
Generate text with an exported mltrainer language model.

This file ships in the export folder next to model.safetensors, model.json, tokenizer.json,
meta.json and lm_nets.py (the network code the model was trained with). Input: a text file with
one prompt per line; output: a CSV with columns prompt,completion (one row per line). Sampling
uses a fixed seed, so the same prompt always gets the same completion; --temperature 0 is greedy.

    python predict.py --input prompts.txt --output completions.csv --max-new-tokens 64

From Python (any working directory):

    spec = importlib.util.spec_from_file_location("predict", "export/predict.py")
    predict = importlib.util.module_from_spec(spec); spec.loader.exec_module(predict)
    completions = predict.Predictor.load("export").predict(["Once upon a time"])
"""

import argparse
import csv
import importlib.util
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
#: Generation defaults: short, mildly creative, reproducible.
DEFAULTS = {"max_new_tokens": 64, "temperature": 0.8, "top_k": 40, "seed": 0}
EVAL_BLOCKS = 2000  # as in train.py: at most this many test blocks, evenly spread, are scored
MAX_PROMPTS = 100_000


def _load_nets(folder: str):
    """Import the export's lm_nets.py by path (the same network code train.py used)."""
    path = os.path.join(os.path.abspath(folder), "lm_nets.py")
    name = f"_mltrainer_lm_nets_{abs(hash(path))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def spread(n: int, cap: int) -> np.ndarray:
    """Up to ``cap`` row indices spread evenly over ``n`` rows (all rows when n <= cap)."""
    return np.arange(n) if n <= cap else np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


class Predictor:
    """An exported language model: tokenizer + network, ready to continue prompts."""

    def __init__(self, model, tokenizer, info: dict, nets, max_new_tokens: int, temperature: float, top_k: int, seed: int):
        self.model, self.tokenizer, self.info, self.nets = model, tokenizer, info, nets
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}.")
        if float(temperature) < 0 or int(top_k) < 0:
            raise ValueError("temperature and top_k must not be negative (temperature 0 is greedy, top_k 0 is off).")
        self.max_new_tokens, self.temperature, self.top_k, self.seed = int(max_new_tokens), float(temperature), int(top_k), int(seed)
        self.eos_id = int(info.get("eos_id", -1))

    @classmethod
    def load(cls, folder: str = HERE, **settings) -> "Predictor":
        """Read model.json, model.safetensors, tokenizer.json and lm_nets.py from an export folder."""
        with open(os.path.join(folder, "model.json")) as f:
            info = json.load(f)
        nets = _load_nets(folder)
        if info.get("family") != "lm" or info.get("kind") not in nets.NETS:
            raise ValueError(f"model.json describes a {info.get('family')}/{info.get('kind')} model, not a language model.")
        model = nets.build_model(info["architecture"])
        model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
        model.eval()
        tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(model, tokenizer, info, nets, **{**DEFAULTS, **settings})

    def predict(self, inputs: list) -> list:
        """One completion (the new text only) per prompt; an empty prompt starts a new document."""
        if isinstance(inputs, str):
            raise ValueError("predict() takes a list of prompts, not a single string; wrap it in a list.")
        out = []
        for index, prompt in enumerate(inputs):
            if not isinstance(prompt, str):
                raise ValueError(f"prompt {index + 1} is a {type(prompt).__name__}, not text.")
            ids = self.tokenizer.encode(prompt, add_special_tokens=False).ids if prompt else []
            ids = ids or ([self.eos_id] if self.eos_id >= 0 else [0])
            g = torch.Generator().manual_seed(self.seed)  # per prompt: a completion never depends on its neighbours
            new = self.nets.generate(self.model, ids, self.max_new_tokens, temperature=self.temperature,
                                     top_k=self.top_k, eos_id=self.eos_id, generator=g)
            out.append(self.tokenizer.decode(new, skip_special_tokens=True))
        return out

    def evaluate(self, blocks: np.ndarray) -> dict:
        """Mean next-token loss and perplexity on (n, block_size + 1) token blocks (train.py's test metric)."""
        blocks = np.asarray(blocks)
        size = int(self.info["architecture"]["block_size"]) + 1
        vocab = int(self.info["architecture"]["vocab_size"])
        if blocks.ndim != 2 or blocks.shape[1] != size or not len(blocks):
            raise ValueError(f"expected token blocks of shape (n, {size}), got {blocks.shape}.")
        if not np.issubdtype(blocks.dtype, np.integer) or blocks.min() < 0 or blocks.max() >= vocab:
            raise ValueError(f"token blocks must hold integer ids in 0..{vocab - 1}.")
        picked = torch.from_numpy(blocks[spread(len(blocks), EVAL_BLOCKS)].astype(np.int64))
        loss = self.nets.mean_loss(self.model, picked)
        return {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50.0)), 4)}


def read_prompts(path: str) -> list:
    """One prompt per line (a final newline does not add an empty prompt)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise ValueError(f"{os.path.basename(path)} is not UTF-8 text; save the prompts as UTF-8, one per line.") from None
    except OSError as err:
        raise ValueError(f"cannot read {path} ({err.strerror}).") from None
    if "\x00" in text:
        raise ValueError(f"{os.path.basename(path)} contains binary bytes; give a text file with one prompt per line.")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ValueError(f"{os.path.basename(path)} holds no prompts; write one prompt per line.")
    if len(lines) > MAX_PROMPTS:
        raise ValueError(f"{os.path.basename(path)} has {len(lines)} prompts, more than {MAX_PROMPTS}; split the file.")
    return lines


def predict_file(export_dir: str, input_path: str, output_path: str, **settings) -> int:
    """Prompts file in, CSV of prompt,completion out; returns the rows written."""
    prompts = read_prompts(input_path)
    completions = Predictor.load(export_dir, **settings).predict(prompts)
    tmp = output_path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "completion"])
        writer.writerows(zip(prompts, completions))
    os.replace(tmp, output_path)
    return len(prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description="Continue prompts with an exported mltrainer language model.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--input", required=True, help="text file, one prompt per line")
    parser.add_argument("--output", required=True, help="CSV file to write (prompt,completion)")
    parser.add_argument("--model-dir", default=HERE, help="export folder (default: this script's folder)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULTS["max_new_tokens"], help="tokens generated per prompt at most")
    parser.add_argument("--temperature", type=float, default=DEFAULTS["temperature"], help="sampling temperature; 0 = greedy")
    parser.add_argument("--top-k", type=int, default=DEFAULTS["top_k"], help="sample among the k likeliest tokens; 0 = all")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="sampling seed (same seed, same completions)")
    args = parser.parse_args()
    try:
        n = predict_file(args.model_dir, args.input, args.output, max_new_tokens=args.max_new_tokens,
                         temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {n} completions to {args.output}")


if __name__ == "__main__":
    main()
