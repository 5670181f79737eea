"""Language-model networks, pure torch: a small GPT (decoder-only transformer) and a bigram table.

This file is inlined into the generated train.py and copied next to the exported predict.py, so
the architecture summary, training and inference all build the very same modules. No mltrainer
imports here: it must run on its own.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where a position sees only itself and earlier positions."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_drop(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class MLP(nn.Module):
    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Token + learned position embeddings, causal blocks, a final LayerNorm and an output head tied
    to the token embedding (logits = h @ wte.T, so the state dict holds no duplicate tensor)."""

    def __init__(self, vocab_size: int, block_size: int, d_model: int = 128, n_heads: int = 4, layers: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(block_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale the residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        if T > self.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)


class Bigram(nn.Module):
    """Next token from the current token alone: one (vocab x vocab) table of logits. A sanity floor."""

    def __init__(self, vocab_size: int, block_size: int, **_: object):
        super().__init__()
        self.block_size = block_size
        self.table = nn.Embedding(vocab_size, vocab_size)
        nn.init.zeros_(self.table.weight)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(idx)


NETS = {"gpt": GPT, "bigram": Bigram}


def build_model(arch: dict) -> nn.Module:
    """The module described by a model.json "architecture" dict (name + sizes)."""
    name = arch["name"]
    if name not in NETS:
        raise ValueError(f"unknown language-model architecture {name!r}; known: {', '.join(NETS)}")
    kwargs = {k: arch[k] for k in ("d_model", "n_heads", "layers", "dropout") if k in arch}
    return NETS[name](int(arch["vocab_size"]), int(arch["block_size"]), **kwargs)


@torch.no_grad()
def generate(model: nn.Module, ids: list, max_new_tokens: int, temperature: float = 0.8, top_k: int = 0,
             eos_id: int = -1, generator: torch.Generator = None) -> list:
    """Continue ``ids`` by up to ``max_new_tokens`` tokens (stops at ``eos_id``); temperature 0 is greedy.
    Returns only the new ids. The context is cropped to the model's block_size."""
    model.eval()
    device = next(model.parameters()).device
    seq = torch.tensor([list(ids)], dtype=torch.long, device=device)
    new = []
    for _ in range(max_new_tokens):
        logits = model(seq[:, -model.block_size:])[0, -1].float()
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1).cpu()
            nxt = int(torch.multinomial(probs, 1, generator=generator))
        if nxt == eos_id:
            break
        new.append(nxt)
        seq = torch.cat([seq, torch.tensor([[nxt]], device=device)], dim=1)
    return new


@torch.no_grad()
def mean_loss(model: nn.Module, blocks: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats) over every target of ``blocks`` (n, block_size + 1)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for s in range(0, len(blocks), batch_size):
        b = blocks[s:s + batch_size].to(device=device, dtype=torch.long)
        logits = model(b[:, :-1]).float()
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1), reduction="sum"))
        count += b[:, 1:].numel()
    return total / max(1, count)
