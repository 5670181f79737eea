"""Text classifier networks (pure torch): the architecture summary, the generated train.py (which
inlines this file's source) and the exported predict.py (which ships it next to the weights) all
build the model from this one file.

Both nets take ``ids`` (int64 [batch, length], right-padded with ``pad_id``) and return logits
[batch, n_classes]. Padding never reaches the pooled vector, so a text scores the same whatever the
padded width.
"""

import torch
import torch.nn as nn


def masked_mean(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where ``keep`` is True; an all-padding row pools to zeros (not NaN)."""
    total = hidden.masked_fill(~keep.unsqueeze(-1), 0.0).sum(dim=1)
    return total / keep.sum(dim=1, keepdim=True).clamp(min=1).to(hidden.dtype)


class TransformerClassifier(nn.Module):
    """Token + learned position embeddings → pre-norm nn.TransformerEncoder → masked mean → linear head."""

    def __init__(self, vocab_size: int, n_classes: int, max_length: int, pad_id: int = 0, d_model: int = 64,
                 n_heads: int = 4, layers: int = 2, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.pad_id = int(pad_id)
        self.tokens = nn.Embedding(vocab_size, d_model, padding_idx=self.pad_id)
        self.positions = nn.Embedding(max_length, d_model)
        self.drop = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=hidden, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)
        for emb in (self.tokens, self.positions):
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.tokens.weight[self.pad_id].zero_()
        nn.init.normal_(self.head.weight, std=0.02)  # small logits at init: the first loss is ≈ ln(K)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = ids != self.pad_id
        key_padding = ~keep
        key_padding[:, 0] = False  # an all-padding row still attends somewhere (no NaN from softmax)
        steps = torch.arange(ids.shape[1], device=ids.device)
        x = self.drop(self.tokens(ids) + self.positions(steps)[None, :, :])
        x = self.encoder(x, src_key_padding_mask=key_padding)
        return self.head(masked_mean(self.norm(x), keep))


class BowClassifier(nn.Module):
    """Bag of embeddings: the mean of the token embeddings (order ignored) → LayerNorm → an MLP. Fast and
    hard to overfit, so it is often the better model on a few hundred or thousand texts. The LayerNorm
    keeps the pooled vector at unit scale whatever the text length (it trains in a third of the epochs)."""

    def __init__(self, vocab_size: int, n_classes: int, max_length: int, pad_id: int = 0, d_model: int = 64,
                 n_heads: int = 4, layers: int = 1, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.pad_id = int(pad_id)
        self.tokens = nn.Embedding(vocab_size, d_model, padding_idx=self.pad_id)
        self.norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, n_classes)
        nn.init.normal_(self.tokens.weight, std=0.1)
        with torch.no_grad():
            self.tokens.weight[self.pad_id].zero_()
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(self.tokens(ids), ids != self.pad_id)
        return self.head(self.mlp(self.norm(pooled)))


#: arch name → (class, one line for the architecture stage)
NETS = {
    "transformer": (TransformerClassifier, "from-scratch Transformer encoder (learned positions, masked mean pooling)"),
    "bow": (BowClassifier, "bag of embeddings (masked mean) + MLP"),
}
#: keyword arguments every net takes; model.json's "architecture" holds exactly these
NET_KEYS = ("vocab_size", "n_classes", "max_length", "pad_id", "d_model", "n_heads", "layers", "hidden", "dropout")


def build_net(arch: str, **kwargs) -> nn.Module:
    """The named net with the NET_KEYS arguments (extra keys are ignored)."""
    if arch not in NETS:
        raise ValueError(f"unknown text classifier arch {arch!r}; choose one of {', '.join(NETS)}")
    return NETS[arch][0](**{k: kwargs[k] for k in NET_KEYS if k in kwargs})
