"""
Generate with an mltrainer LoRA fine-tune of a causal language model (transformers + peft).

This file ships in the export folder next to adapter/ (the LoRA weights), tokenizer/, model.json,
meta.json, llm_finetune_nets.py (how examples were encoded) and, when it was written, merged/ (the
base weights with the adapter folded in — it loads without peft or the base model). Otherwise the
base model named in model.json (a Hugging Face id or a local folder) is loaded and the adapter
attached to it.

Input: a text file of prompts (one a line), a JSON-lines file ({"prompt": ...} or {"text": ...} per
line) or a CSV with a prompt column. Output: a CSV with the columns prompt,completion (greedy).

    python predict.py --input prompts.txt --output completions.csv --max-new-tokens 64

From Python (any working directory):

    spec = importlib.util.spec_from_file_location("predict", "export/predict.py")
    predict = importlib.util.module_from_spec(spec); spec.loader.exec_module(predict)
    completions = predict.Predictor.load("export").predict(["What is 2 + 3?"])
"""

import argparse
import csv
import importlib.util
import json
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPT_COLUMNS = ("prompt", "instruction", "question", "input", "text")
DEFAULT_NEW_TOKENS = 64
BATCH = 8


def _load_nets(folder: str):
    """Import the export's llm_finetune_nets.py by path, so it works from any working directory."""
    path = os.path.join(os.path.abspath(folder), "llm_finetune_nets.py")
    name = f"_mltrainer_llm_nets_{abs(hash(path))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def read_records(path: str) -> list:
    """The JSON-lines records of a split (as the training script read them)."""
    return _load_nets(HERE).read_records(path)


class Predictor:
    """A fine-tuned causal LM, ready to complete prompts."""

    def __init__(self, info: dict, model, tokenizer, nets, device):
        self.info = info
        self.model = model
        self.tokenizer = tokenizer
        self.nets = nets
        self.device = device
        self.max_length = int(info["architecture"]["max_length"])

    @classmethod
    def load(cls, folder: str = HERE, device: str = "auto") -> "Predictor":
        """merged/ when present; else the base model from model.json with adapter/ attached."""
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        with open(os.path.join(folder, "model.json")) as f:
            info = json.load(f)
        if info.get("family") != "llm_lora":
            raise ValueError(f"{folder} holds a {info.get('family')!r} model, not a LoRA fine-tune.")
        where = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokenizer = AutoTokenizer.from_pretrained(os.path.join(folder, info.get("tokenizer") or "tokenizer"))
            if info.get("merged") and os.path.isdir(os.path.join(folder, info["merged"])):
                model = AutoModelForCausalLM.from_pretrained(os.path.join(folder, info["merged"]))
            else:
                from peft import PeftModel

                backbone = info["architecture"]["backbone"]
                try:
                    base = AutoModelForCausalLM.from_pretrained(backbone)
                except Exception as e:  # noqa: BLE001
                    raise ValueError(f"the base model '{backbone}' could not be loaded ({type(e).__name__}); "
                                     "make it available (local folder or Hugging Face cache) or export with merge.") from None
                model = PeftModel.from_pretrained(base, os.path.join(folder, info.get("adapter") or "adapter"))
        model.to(where).eval()
        return cls(info, model, tokenizer, _load_nets(folder), where)

    def evaluate(self, records: list) -> dict:
        """Token-weighted loss and perplexity on records encoded as in training."""
        examples = self.nets.encode_all(self.tokenizer, records, self.max_length)
        if not examples:
            raise ValueError("no record has a token to score")
        _, _, pad = self.nets.special_ids(self.tokenizer)
        return self.nets.evaluate(self.model, examples, pad, BATCH, self.device)

    def predict(self, prompts, max_new_tokens: int = DEFAULT_NEW_TOKENS) -> list:
        """Prompts (strings) → greedy completions (the new text only), one each."""
        import torch

        if isinstance(prompts, str):
            prompts = [prompts]
        bos, eos, pad = self.nets.special_ids(self.tokenizer)
        completions = []
        for prompt in prompts:
            ids = bos + self.tokenizer(str(prompt) + self.nets.SEPARATOR, add_special_tokens=False)["input_ids"]
            ids = ids[-max(1, self.max_length - max_new_tokens):]
            tensor = torch.tensor([ids], dtype=torch.long, device=self.device)
            with torch.no_grad():
                out = self.model.generate(input_ids=tensor, attention_mask=torch.ones_like(tensor),
                                          max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                                          eos_token_id=eos)
            completions.append(self.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip())
        return completions


def read_prompts(input_path: str) -> list:
    if not os.path.isfile(input_path):
        raise ValueError(f"the input {input_path} does not exist.")
    suffix = os.path.splitext(input_path)[1].lower()
    with open(input_path, encoding="utf-8", newline="") as f:
        text = f.read()
    if suffix in (".jsonl", ".ndjson"):
        prompts = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                record = json.loads(line)
                value = next((record.get(k) for k in PROMPT_COLUMNS if isinstance(record, dict) and record.get(k)), None)
                if value is None:
                    raise ValueError(f"line {number} of {os.path.basename(input_path)} has no prompt field ({', '.join(PROMPT_COLUMNS)}).")
                prompts.append(str(value))
    elif suffix in (".csv", ".tsv"):
        rows = list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
        columns = {c.strip().lower(): c for c in (rows[0].keys() if rows else []) if c}
        column = next((columns[c] for c in PROMPT_COLUMNS if c in columns), None)
        if column is None:
            raise ValueError(f"{os.path.basename(input_path)} has no prompt column; name one {' or '.join(PROMPT_COLUMNS[:3])}.")
        prompts = [(row.get(column) or "").strip() for row in rows]
    else:
        prompts = [line.strip() for line in text.splitlines()]
    prompts = [p for p in prompts if p]
    if not prompts:
        raise ValueError(f"{os.path.basename(input_path)} holds no prompts.")
    return prompts


def predict_file(folder: str, input_path: str, output_path: str, max_new_tokens: int = DEFAULT_NEW_TOKENS) -> int:
    """Complete every prompt of the input; writes prompt,completion rows and returns how many."""
    prompts = read_prompts(input_path)
    predictor = Predictor.load(folder)
    completions = predictor.predict(prompts, max_new_tokens)
    with open(output_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "completion"])
        writer.writerows(zip(prompts, completions))
    return len(prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description="Complete prompts with an mltrainer LoRA fine-tune.")
    parser.add_argument("--input", required=True, help="prompts: a text file (one a line), JSON lines or a CSV with a prompt column")
    parser.add_argument("--output", required=True, help="CSV file to write (prompt,completion)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_NEW_TOKENS, help="tokens generated per prompt")
    parser.add_argument("--model-dir", default=HERE, help="export folder (default: this script's folder)")
    args = parser.parse_args()
    try:
        written = predict_file(args.model_dir, args.input, args.output, args.max_new_tokens)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {written} completions to {args.output}")


if __name__ == "__main__":
    main()
