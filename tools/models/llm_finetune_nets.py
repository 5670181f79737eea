"""LLM fine-tuning helpers (torch; the tokenizer and model come from transformers): how an example
becomes token ids and loss labels, batching, and the token-weighted loss / perplexity.

This file is inlined into the generated train.py and copied next to the exported predict.py, so the
training loss, the baseline (the un-tuned base model) and the export's test score are computed by
one implementation on identically encoded examples.

An instruction example ``{"prompt", "response"}`` is ``[bos] prompt SEPARATOR response eos`` with the
loss on the response (and eos) only; a ``{"text"}`` example is ``[bos] text eos`` with the loss on
every token. ``bos`` is added only when the tokenizer has one distinct from ``eos`` (Llama yes, GPT-2 no).
"""

import json
import math

import torch
import torch.nn.functional as F

IGNORE = -100
SEPARATOR = "\n\n"


def read_records(path: str) -> list:
    """One JSON object per line: {"prompt", "response"} or {"text"}."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                record = json.loads(line)
                if not isinstance(record, dict) or not (("prompt" in record and "response" in record) or "text" in record):
                    raise ValueError(f"{path} line {number} is not {{\"prompt\", \"response\"}} or {{\"text\"}}")
                records.append(record)
    return records


def special_ids(tokenizer) -> tuple:
    """(bos ids to prepend, eos id, pad id) for a Hugging Face tokenizer."""
    eos = tokenizer.eos_token_id
    bos = tokenizer.bos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos if eos is not None else 0)
    return ([bos] if bos is not None and bos != eos else []), eos, pad


def encode_record(tokenizer, record: dict, max_length: int) -> tuple:
    """One example → (ids, labels), at most ``max_length`` long; a long prompt loses its start first."""
    bos, eos, _ = special_ids(tokenizer)
    end = [eos] if eos is not None else []
    if "text" in record:
        ids = (bos + tokenizer(str(record["text"]), add_special_tokens=False)["input_ids"] + end)[:max_length]
        return ids, [IGNORE] * min(len(bos), len(ids)) + ids[len(bos):]
    prompt = bos + tokenizer(str(record["prompt"]) + SEPARATOR, add_special_tokens=False)["input_ids"]
    target = tokenizer(str(record["response"]), add_special_tokens=False)["input_ids"] + end
    target = target[:max(1, max_length - min(len(prompt), max_length // 2))]
    prompt = prompt[len(prompt) - max(0, max_length - len(target)):] if len(prompt) + len(target) > max_length else prompt
    return prompt + target, [IGNORE] * len(prompt) + target


def encode_all(tokenizer, records: list, max_length: int) -> list:
    """Every record encoded; records with nothing to learn (all labels ignored) are dropped."""
    examples = [encode_record(tokenizer, r, max_length) for r in records]
    return [e for e in examples if sum(1 for l in e[1][1:] if l != IGNORE)]


def collate(examples: list, pad_id: int, device) -> tuple:
    """Right-padded (ids, attention mask, labels) tensors for a list of (ids, labels)."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (i, l) in enumerate(examples):
        ids[row, :len(i)] = torch.tensor(i, dtype=torch.long)
        labels[row, :len(l)] = torch.tensor(l, dtype=torch.long)
        mask[row, :len(i)] = 1
    return ids.to(device), mask.to(device), labels.to(device)


def token_loss(model, ids, mask, labels) -> tuple:
    """(summed next-token NLL over the labelled tokens, how many there are)."""
    logits = model(input_ids=ids, attention_mask=mask).logits
    targets = labels[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                          ignore_index=IGNORE, reduction="sum")
    return nll, int((targets != IGNORE).sum())


@torch.no_grad()
def evaluate(model, examples: list, pad_id: int, batch_size: int, device, amp=None) -> dict:
    """Token-weighted mean loss and perplexity over ``examples``."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        ids, mask, labels = collate(examples[start:start + batch_size], pad_id, device)
        with torch.autocast(device_type=device.type, dtype=amp or torch.float32, enabled=amp is not None):
            nll, n = token_loss(model, ids, mask, labels)
        total, count = total + float(nll), count + n
    model.train(was_training)
    loss = total / max(1, count)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": count}
