"""A pretrained text encoder (transformers AutoModel) with a classification head: masked mean pooling
of the last hidden states (sentence-transformers style) → dropout → linear.

This file is inlined into the generated train.py and shipped in the export under the name
``text_classifier_nets.py``, so the text classifier's predict.py rebuilds the model with
``build_net("pretrained", **architecture)``: the encoder from the config stored in the architecture
(no download, no backbone folder needed), the weights from model.safetensors. It takes ``ids``
(int64 [batch, length], right-padded with ``pad_id``) and returns logits [batch, n_classes], like
the from-scratch nets.
"""

import torch
import torch.nn as nn

NETS = {"pretrained": (None, "pretrained Transformer encoder + mean pooling + linear head")}


class EncoderClassifier(nn.Module):
    """AutoModel encoder → masked mean of the last hidden states → dropout → linear head."""

    def __init__(self, encoder: nn.Module, n_classes: int, pad_id: int = 0, dropout: float = 0.1, freeze: bool = False):
        super().__init__()
        self.encoder = encoder
        self.pad_id = int(pad_id)
        self.freeze = bool(freeze)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.config.hidden_size), int(n_classes))
        nn.init.normal_(self.head.weight, std=0.02)  # small logits at init: the first loss is ≈ ln(K)
        nn.init.zeros_(self.head.bias)
        if self.freeze:
            self.encoder.requires_grad_(False)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The pooled sentence vector [batch, hidden]; padding never reaches it."""
        keep = ids != self.pad_id
        hidden = self.encoder(input_ids=ids, attention_mask=keep.long()).last_hidden_state
        total = (hidden * keep.unsqueeze(-1).to(hidden.dtype)).sum(dim=1)
        return total / keep.sum(dim=1, keepdim=True).clamp(min=1).to(hidden.dtype)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(pooled))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(ids))


def _quiet() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def build_pretrained(backbone: str, n_classes: int, pad_id: int = 0, dropout: float = 0.1,
                     freeze: bool = False) -> EncoderClassifier:
    """The classifier with the backbone's pretrained encoder weights (a local folder or a Hub id)."""
    from transformers import AutoModel

    _quiet()
    return EncoderClassifier(AutoModel.from_pretrained(backbone), n_classes, pad_id, dropout, freeze)


def build_net(arch: str, encoder_config: dict, n_classes: int, pad_id: int = 0, dropout: float = 0.1,
              freeze: bool = False, **_: object) -> EncoderClassifier:
    """The classifier rebuilt from model.json's architecture (encoder from its stored config, random
    weights: load model.safetensors next)."""
    from transformers import AutoConfig, AutoModel

    if arch != "pretrained":
        raise ValueError(f"this nets file builds the 'pretrained' classifier, not {arch!r}")
    _quiet()
    config = AutoConfig.for_model(**encoder_config)
    return EncoderClassifier(AutoModel.from_config(config), n_classes, pad_id, dropout, freeze)
