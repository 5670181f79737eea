# ---- token_tagger_nets: the tagger networks and the entity scoring (pure torch + stdlib) ----
# This source is inlined into the generated train.py and shipped next to the exported predict.py,
# so the architecture summary, training, export scoring and inference all run the SAME code.
# (No `from __future__` and no mltrainer imports here: it must paste into a script as is.)

import torch
import torch.nn as nn

ARCHS = ("transformer", "bilstm")
IGNORE_INDEX = -100


class TransformerTagger(nn.Module):
    """Token embedding + learned positions -> nn.TransformerEncoder (pre-norm, GELU) -> per-token linear head."""

    def __init__(self, vocab_size: int, n_labels: int, max_length: int, pad_id: int = 0, d_model: int = 128,
                 n_heads: int = 4, layers: int = 2, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.pad_id, self.max_length = pad_id, max_length
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.pos = nn.Embedding(max_length, d_model)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=hidden, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_labels)
        nn.init.normal_(self.embed.weight, std=0.02)  # same scale as the positions, so word order is not drowned out
        nn.init.normal_(self.pos.weight, std=0.02)
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) -> logits (B, L, n_labels); padding positions are masked out of attention."""
        length = ids.shape[1]
        if length > self.max_length:
            raise ValueError(f"a window of {length} tokens is longer than max_length {self.max_length}")
        pad = ids.eq(self.pad_id)
        pad[:, 0] = False  # an all-padding row would make attention NaN
        x = self.embed(ids) + self.pos(torch.arange(length, device=ids.device))
        x = self.encoder(self.drop(x), src_key_padding_mask=pad)
        return self.head(self.norm(x))


class BiLSTMTagger(nn.Module):
    """Token embedding -> bidirectional LSTM (packed, so padding never leaks in) -> per-token linear head.

    ``hidden`` is the LSTM's output width: hidden // 2 units per direction."""

    def __init__(self, vocab_size: int, n_labels: int, max_length: int, pad_id: int = 0, d_model: int = 128,
                 n_heads: int = 0, layers: int = 1, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.pad_id, self.max_length = pad_id, max_length
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        units = max(1, hidden // 2)
        self.lstm = nn.LSTM(d_model, units, num_layers=layers, bidirectional=True, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(2 * units, n_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) -> logits (B, L, n_labels); right padding is skipped by packing."""
        lengths = ids.ne(self.pad_id).sum(1).clamp(min=1).cpu()
        x = self.drop(self.embed(ids)).float()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        with torch.autocast(device_type=ids.device.type, enabled=False):  # the recurrence stays fp32 under AMP
            out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return self.head(self.drop(out))


def build_model(kind: str, **arch) -> nn.Module:
    """The tagger named ``kind`` from its architecture dict (model.json "architecture")."""
    if kind == "transformer":
        return TransformerTagger(**arch)
    if kind == "bilstm":
        return BiLSTMTagger(**arch)
    raise ValueError(f"unknown tagger architecture {kind!r}; expected one of {', '.join(ARCHS)}")


# ---- seqeval-style scoring: spans from BIO/BIOES tags, exact-match micro precision/recall/F1 ----


def split_tag(tag: str) -> tuple:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''); a tag without a prefix (POS) -> ('S', tag): a one-token chunk."""
    if tag in ("O", "", "-", "_"):
        return "O", ""
    if len(tag) > 2 and tag[1] in "-_" and tag[0].upper() in "BIESLU":
        prefix = {"L": "E", "U": "S"}.get(tag[0].upper(), tag[0].upper())
        return prefix, tag[2:]
    return "S", tag


def get_entities(tags: list) -> list:
    """(type, start, end_inclusive) spans, conlleval rules (an I-X after O or another type starts a chunk)."""
    spans = []
    prev_prefix, prev_type, begin = "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, kind = split_tag(tag)
        end = (prev_prefix in ("E", "S") or (prev_prefix in ("B", "I") and prefix in ("B", "S", "O"))
               or (prev_prefix != "O" and prev_type != kind))
        if end and prev_prefix != "O":
            spans.append((prev_type, begin, i - 1))
        start = (prefix in ("B", "S") or (prev_prefix in ("E", "S", "O") and prefix in ("E", "I"))
                 or (prefix != "O" and prev_type != kind))
        if start:
            begin = i
        prev_prefix, prev_type = prefix, kind
    return spans


def entity_scores(gold: list, pred: list) -> dict:
    """Micro precision/recall/F1 over exact-match entity spans plus token accuracy, for lists of tag lists."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted ones")
    tp = n_gold = n_pred = correct = total = 0
    for g, p in zip(gold, pred):
        if len(g) != len(p):
            raise ValueError(f"a sentence has {len(g)} gold tags but {len(p)} predicted ones")
        gs, ps = set(get_entities(g)), set(get_entities(p))
        tp, n_gold, n_pred = tp + len(gs & ps), n_gold + len(gs), n_pred + len(ps)
        correct += sum(a == b for a, b in zip(g, p))
        total += len(g)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "accuracy": correct / total if total else 0.0}
