"""Image networks (pure torch, no mltrainer imports): a small CNN and a pixel MLP.

This file is inlined into the generated train.py and copied next to the exported predict.py, so
the architecture summary, training and prediction all build the model from the same code. Every
model takes raw pixel values (float, 0-255, NCHW) and normalises them with the training split's
per-channel mean/std held as buffers; regression models return values in the target's own units.
"""

import torch
import torch.nn as nn

#: The model catalogue: arch name → what it is, in words.
ARCHS = {
    "cnn": "small CNN from scratch (conv3x3-BN-ReLU stages, max-pool, global average pool, linear head)",
    "mlp": "multilayer perceptron on flattened pixels (Linear-ReLU-Dropout)",
}


class Normalize(nn.Module):
    """Pixels 0-255 → (x/255 - mean) / std per channel (the training split's statistics)."""

    def __init__(self, mean: list, std: list):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([s if s > 1e-6 else 1.0 for s in std], dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x / 255.0 - self.mean) / self.std


def cnn_widths(hidden: int, layers: int) -> list:
    """Channels per stage: doubling from ``hidden``, capped at 8× (so deep stacks stay small)."""
    return [hidden * min(2 ** i, 8) for i in range(layers)]


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ConvNet(nn.Module):
    """Stages of two conv blocks; a 2×2 max-pool between stages while the map is larger than 2×2."""

    def __init__(self, channels: int, image_size: int, n_outputs: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        widths = cnn_widths(hidden, layers)
        stem_stride = 2 if image_size > 64 else 1  # large photos: halve once before the first stage
        blocks = [conv_block(channels, widths[0], stem_stride)]
        side = -(-image_size // stem_stride)
        c = widths[0]
        for i, w in enumerate(widths):
            blocks += [conv_block(c, w), conv_block(w, w)] if i else [conv_block(c, w)]
            c = w
            if i < len(widths) - 1 and side > 2:
                blocks.append(nn.MaxPool2d(2))
                side //= 2
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(c, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.flatten(self.pool(self.features(x)), 1)))


class PixelMLP(nn.Module):
    """Flattened pixels → ``layers`` × (Linear-ReLU-Dropout) → Linear."""

    def __init__(self, channels: int, image_size: int, n_outputs: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        dims = [channels * image_size * image_size] + [hidden] * layers
        body = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.body = nn.Sequential(nn.Flatten(), *body)
        self.head = nn.Linear(dims[-1], n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ImageModel(nn.Module):
    """Normalise → backbone → (regression) rescale to the target's units."""

    def __init__(self, spec: dict):
        super().__init__()
        arch = spec["arch"]
        if arch not in ARCHS:
            raise ValueError(f"unknown image arch {arch!r}; choose one of {', '.join(ARCHS)}")
        self.regression = spec["task"] == "regression"
        self.normalize = Normalize(spec["mean"], spec["std"])
        net = ConvNet if arch == "cnn" else PixelMLP
        self.net = net(int(spec["channels"]), int(spec["image_size"]), int(spec["n_outputs"]),
                       int(spec["hidden"]), int(spec["layers"]), float(spec["dropout"]))
        if self.regression:  # the head learns a standardised target; these put it back in real units
            self.register_buffer("target_mean", torch.tensor(float(spec.get("target_mean", 0.0))))
            self.register_buffer("target_std", torch.tensor(float(spec.get("target_std", 1.0)) or 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self.normalize(x))
        if self.regression:
            return out.squeeze(1) * self.target_std + self.target_mean
        return out


def build_model(spec: dict) -> ImageModel:
    """The model described by ``spec`` (model.json's "architecture"): arch, task, channels, image_size,
    n_outputs, hidden, layers, dropout, mean, std and, for regression, target_mean/target_std."""
    return ImageModel(spec)
