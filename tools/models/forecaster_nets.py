"""Forecasting networks: a window of ``lags`` scaled steps (feature 0 the target) in, ``horizon``
scaled target steps out. Pure torch; inlined into the generated train.py and shipped next to the
exported predict.py, so the summary, the training and the predictions run the same code.

Every candidate starts as the seasonal-naive forecaster: a linear path over the flattened window is
initialised to copy the value one season back, and the nonlinear branch (MLP or LSTM) adds a
residual whose output layer starts at zero. Training can only move away from the baseline where
the validation data says so. The window's target mean is subtracted on the way in and added back on
the way out (instance normalisation), so a level shift or trend outside the training range does not
push the inputs off the range the network was trained on.
"""

import torch
import torch.nn as nn

#: Catalogue: arch name → what it is, in words.
ARCHS = {
    "linear": "one linear layer on the flattened window (NLinear/DLinear-like), seasonal-naive init",
    "mlp": "linear path + MLP residual (Linear-GELU-Dropout blocks) on the flattened window",
    "lstm": "linear path + LSTM over the time steps, its last state → horizon",
}


def seasonal_naive_index(lags: int, horizon: int, season: int) -> list[int]:
    """Window position copied for each output step: one season back (naive last value when the
    window is shorter than a season)."""
    season = max(1, int(season))
    out = []
    for k in range(horizon):
        i = lags + k - season * (k // season + 1)
        out.append(i if 0 <= i < lags else lags + k - (k + 1))  # k // 1 + 1 = k + 1: the last input
    return out


class Forecaster(nn.Module):
    """Shared parts: instance normalisation of the target channel and the seasonal-naive linear path."""

    def __init__(self, lags: int, n_features: int, horizon: int, season: int = 1, instance_norm: bool = True):
        super().__init__()
        self.lags, self.n_features, self.horizon = lags, n_features, horizon
        self.instance_norm = instance_norm
        self.linear = nn.Linear(lags * n_features, horizon)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()
            for k, i in enumerate(seasonal_naive_index(lags, horizon, season)):
                self.linear.weight[k, i * n_features] = 1.0  # flattened (lag, feature) → lag * F + feature

    def normalise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x with the window's target mean removed from the target channel, that mean (B, 1))."""
        if not self.instance_norm:
            return x, torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
        level = x[:, :, 0].mean(dim=1, keepdim=True)
        return torch.cat([x[:, :, :1] - level[:, :, None], x[:, :, 1:]], dim=2), level

    def residual(self, x: torch.Tensor) -> torch.Tensor | None:
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, level = self.normalise(x)
        out = self.linear(z.reshape(z.shape[0], -1))
        extra = self.residual(z)
        if extra is not None:
            out = out + extra
        return out + level


class LinearForecaster(Forecaster):
    """The linear path alone."""


class MLPForecaster(Forecaster):
    def __init__(self, lags: int, n_features: int, horizon: int, season: int = 1, instance_norm: bool = True,
                 hidden: int = 64, layers: int = 2, dropout: float = 0.1):
        super().__init__(lags, n_features, horizon, season, instance_norm)
        blocks: list[nn.Module] = []
        width = lags * n_features
        for _ in range(max(1, layers)):
            blocks += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, horizon)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def residual(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z.reshape(z.shape[0], -1)))


class LSTMForecaster(Forecaster):
    def __init__(self, lags: int, n_features: int, horizon: int, season: int = 1, instance_norm: bool = True,
                 hidden: int = 64, layers: int = 2, dropout: float = 0.1):
        super().__init__(lags, n_features, horizon, season, instance_norm)
        self.lstm = nn.LSTM(n_features, hidden, num_layers=max(1, layers), batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, horizon)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def residual(self, z: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(z)
        return self.head(self.drop(states[:, -1]))


def build_model(arch: str, lags: int, n_features: int, horizon: int, season: int = 1, instance_norm: bool = True,
                hidden: int = 64, layers: int = 2, dropout: float = 0.1) -> Forecaster:
    """The catalogue's constructor; model.json's "architecture" holds exactly these arguments."""
    if arch == "linear":
        return LinearForecaster(lags, n_features, horizon, season, instance_norm)
    if arch == "mlp":
        return MLPForecaster(lags, n_features, horizon, season, instance_norm, hidden, layers, dropout)
    if arch == "lstm":
        return LSTMForecaster(lags, n_features, horizon, season, instance_norm, hidden, layers, dropout)
    raise ValueError(f"unknown forecaster arch {arch!r}; choose one of {', '.join(ARCHS)}")
