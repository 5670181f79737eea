"""Seq2seq networks and metrics: a small encoder-decoder transformer (shared, tied embeddings) with
greedy and beam decoding, plus pure-Python ROUGE and BLEU.

Pure torch and stdlib (no mltrainer imports): the family summarises this module's model, the
training template inlines this source, and the export ships it as ``seq2seq_nets.py`` for
predict.py, so all three run the same code.
"""

import math
import re
import unicodedata
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """Fixed sine/cosine position codes (Vaswani et al.): alignment by position is there from step 1."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class Seq2SeqTransformer(nn.Module):
    """Pre-norm encoder-decoder transformer; one embedding table for source, target and output.

    Embeddings start at std 0.5 * d_model**-0.5 and are scaled by sqrt(d_model) on input, so the
    tied output layer's initial logits are small (initial loss ≈ ln(vocab))."""

    def __init__(self, vocab_size: int, d_model: int = 64, n_heads: int = 4, layers: int = 2, hidden: int = 256,
                 dropout: float = 0.1, max_positions: int = 128, pad_id: int = 0):
        super().__init__()
        self.vocab_size, self.d_model, self.pad_id, self.max_positions = vocab_size, d_model, pad_id, max_positions
        self.embed = nn.Embedding(vocab_size, d_model)
        self.register_buffer("pos", sinusoids(max_positions, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)
        enc = nn.TransformerEncoderLayer(d_model, n_heads, hidden, dropout, activation="gelu", batch_first=True,
                                         norm_first=True)
        dec = nn.TransformerDecoderLayer(d_model, n_heads, hidden, dropout, activation="gelu", batch_first=True,
                                         norm_first=True)
        self.encoder = nn.TransformerEncoder(enc, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec, layers, norm=nn.LayerNorm(d_model))
        nn.init.normal_(self.embed.weight, std=0.5 * d_model ** -0.5)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.size(1), device=ids.device).clamp(max=self.max_positions - 1)
        return self.drop(self.embed(ids) * math.sqrt(self.d_model) + self.pos[positions][None])

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Source ids (B, S) → memory (B, S, d) and its padding mask (True = pad)."""
        mask = src == self.pad_id
        mask[:, 0] = False  # an all-pad row would give NaN attention; its first slot stays visible
        return self.encoder(self._embed(src), src_key_padding_mask=mask), mask

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """Decoder input ids (B, T) → next-token logits (B, T, V) through the tied output layer."""
        T = tgt_in.size(1)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=tgt_in.device), diagonal=1)
        h = self.decoder(self._embed(tgt_in), memory, tgt_mask=causal, tgt_key_padding_mask=tgt_in == self.pad_id,
                         memory_key_padding_mask=memory_mask)
        return F.linear(h, self.embed.weight)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits for every position of ``tgt_in`` (starts with bos)."""
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask)

    @torch.no_grad()
    def generate(self, src: torch.Tensor, bos: int, eos: int, max_len: int, beam: int = 1) -> torch.Tensor:
        """Output ids (B, <= max_len - 1) after bos, eos included when reached, pad after it."""
        memory, mask = self.encode(src)
        if beam > 1:
            return self._beam(memory, mask, bos, eos, max_len, beam)
        seqs = torch.full((src.size(0), 1), bos, dtype=torch.long, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        for _ in range(max_len - 1):
            nxt = self.decode(seqs, memory, mask)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            seqs = torch.cat([seqs, nxt[:, None]], 1)
            done |= nxt == eos
            if bool(done.all()):
                break
        return seqs[:, 1:]

    def _beam(self, memory: torch.Tensor, mask: torch.Tensor, bos: int, eos: int, max_len: int,
              beam: int) -> torch.Tensor:
        """Batched beam search; finished beams only extend with pad at no cost; length-normalised pick."""
        B, V, dev = memory.size(0), self.vocab_size, memory.device
        memory, mask = memory.repeat_interleave(beam, 0), mask.repeat_interleave(beam, 0)
        seqs = torch.full((B * beam, 1), bos, dtype=torch.long, device=dev)
        scores = torch.full((B, beam), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all beams start identical: only the first one is expanded
        done = torch.zeros(B * beam, dtype=torch.bool, device=dev)
        lengths = torch.zeros(B * beam, device=dev)
        base = (torch.arange(B, device=dev) * beam)[:, None]
        for _ in range(max_len - 1):
            logp = F.log_softmax(self.decode(seqs, memory, mask)[:, -1].float(), -1)
            logp[done] = float("-inf")
            logp[done, self.pad_id] = 0.0
            top, idx = (scores.reshape(-1, 1) + logp).reshape(B, -1).topk(beam, dim=1)
            sel = (base + torch.div(idx, V, rounding_mode="floor")).reshape(-1)
            token = (idx % V).reshape(-1)
            lengths = lengths[sel] + (~done[sel]).float()
            done = done[sel] | (token == eos)
            seqs = torch.cat([seqs[sel], token[:, None]], 1)
            scores = top
            if bool(done.all()):
                break
        best = (scores / lengths.reshape(B, beam).clamp(min=1)).argmax(1)
        return seqs.reshape(B, beam, -1)[torch.arange(B, device=dev), best, 1:]


#: Below this many parameters the matrices are too small to gain from intra-op threads, and
#: threads on a busy CPU spin-wait (measured: 25x slower steps for a 250k-parameter model).
SINGLE_THREAD_BELOW = 2_000_000


def cpu_threads(model: nn.Module) -> int:
    """Intra-op threads for running ``model`` on CPU: 1 for small models, torch's default otherwise."""
    return 1 if sum(p.numel() for p in model.parameters()) < SINGLE_THREAD_BELOW else torch.get_num_threads()


def build_model(arch: dict) -> Seq2SeqTransformer:
    """The model described by model.json's ``architecture`` (or the template's settings)."""
    return Seq2SeqTransformer(int(arch["vocab_size"]), int(arch["d_model"]), int(arch["n_heads"]), int(arch["layers"]),
                              int(arch["hidden"]), float(arch["dropout"]), int(arch["max_positions"]),
                              int(arch["pad_id"]))


def strip_ids(row: list, eos: int, pad: int) -> list:
    """Generated ids up to (not including) the first eos, pads dropped."""
    out = []
    for i in row:
        if i == eos:
            break
        if i != pad:
            out.append(i)
    return out


# -----------------------------------------------------------------------------
# Metrics on lower-cased word/punctuation tokens (the same for training, export and baselines)

_TOKEN = re.compile(r"\w+|[^\w\s]")


def metric_tokens(text: str) -> list:
    """Lower-cased words and punctuation marks, accents kept (NFC)."""
    return _TOKEN.findall(unicodedata.normalize("NFC", str(text)).lower())


def _ngrams(tokens: list, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _lcs(a: list, b: list) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _f1(overlap: float, n_hyp: int, n_ref: int) -> float:
    if overlap <= 0 or n_hyp == 0 or n_ref == 0:
        return 0.0
    p, r = overlap / n_hyp, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge(hyps: list, refs: list) -> dict:
    """Mean ROUGE-1/2/L F1 over pairs of texts (no stemming)."""
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, ref in zip(hyps, refs):
        h, r = metric_tokens(hyp), metric_tokens(ref)
        for n, key in ((1, "rouge1"), (2, "rouge2")):
            hn, rn = _ngrams(h, n), _ngrams(r, n)
            sums[key] += _f1(sum((hn & rn).values()), sum(hn.values()), sum(rn.values()))
        sums["rougeL"] += _f1(_lcs(h, r), len(h), len(r))
    return {k: v / max(1, len(hyps)) for k, v in sums.items()}


def corpus_bleu(hyps: list, refs: list, max_n: int = 4) -> float:
    """Corpus BLEU in 0..1: clipped n-gram precisions up to 4-grams, brevity penalty, add-one
    smoothing for n >= 2 (Lin & Och), so short corpora do not collapse to 0."""
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, ref in zip(hyps, refs):
        h, r = metric_tokens(hyp), metric_tokens(ref)
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, max_n + 1):
            hn, rn = _ngrams(h, n), _ngrams(r, n)
            matches[n - 1] += sum((hn & rn).values())
            totals[n - 1] += max(0, len(h) - n + 1)
    if hyp_len == 0 or matches[0] == 0:
        return 0.0
    log_p = math.log(matches[0] / totals[0])
    log_p += sum(math.log((matches[n] + 1) / (totals[n] + 1)) for n in range(1, max_n))
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(log_p / max_n)


#: task type → (primary validation metric, metric names); every metric is higher-is-better.
TASK_METRICS = {
    "summarization": ("rougeL", ("rouge1", "rouge2", "rougeL")),
    "translation": ("bleu", ("bleu", "exact_match")),
}


def task_metrics(task_type: str, hyps: list, refs: list) -> dict:
    """The task's metrics of generated texts against reference texts."""
    if task_type == "summarization":
        return rouge(hyps, refs)
    exact = sum(metric_tokens(h) == metric_tokens(r) for h, r in zip(hyps, refs)) / max(1, len(hyps))
    return {"bleu": corpus_bleu(hyps, refs), "exact_match": exact}


def baseline_outputs(task_type: str, sources: list, lead_n: int) -> tuple:
    """(name, outputs) of the trivial baseline: lead-N source tokens, or the source copied."""
    if task_type == "summarization":
        return f"lead-{lead_n} (first {lead_n} source tokens)", [" ".join(metric_tokens(s)[:lead_n]) for s in sources]
    return "copy the source", [str(s) for s in sources]
