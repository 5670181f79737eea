"""`mltrainer summary`: parameters, shapes, MACs/FLOPs and activation memory measured by a forward
pass match hand counts for three reference models and the closed forms for conv and linear layers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mltrainer.app import app
from tools.model_summary import layer_macs, summarize

runner = CliRunner()
MODELS = '''import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        return self.body(x)


class SmallCNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False)
        self.head = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.norm(self.conv1(x))))
        return self.head(torch.flatten(self.conv2(x), 1))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 12)
        self.embed.weight.requires_grad_(False)  # frozen: counted, not trainable
        self.lstm = nn.LSTM(12, 16, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):
        out, _ = self.lstm(self.embed(ids))
        return self.head(out[:, -1])
'''
#: hand counts: weights + biases of each layer
MLP_PARAMS = (10 * 32 + 32) + (32 * 4 + 4)  # 484
CNN_PARAMS = (3 * 8 * 9 + 8) + (8 + 8) + (16 * (8 // 2) * 9) + (256 * 10 + 10)  # 3386
LSTM_PARAMS = 100 * 12 + (4 * 16 * (12 + 16) + 2 * 4 * 16) + (16 * 3 + 3)  # 3171


def summary_of(tmp_path: Path, name: str, size: str, *extra: str) -> dict[str, Any]:
    (tmp_path / "models.py").write_text(MODELS)
    result = runner.invoke(app, ["summary", f"{tmp_path / 'models.py'}:{name}", "--input-size", size, "--json", *extra])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def by_name(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["name"]: layer for layer in summary["layers"]}


def test_an_mlp_matches_hand_counts(tmp_path: Path) -> None:
    summary = summary_of(tmp_path, "MLP", "3,10", "--batch-size", "256")
    assert summary["total_parameters"] == summary["trainable_parameters"] == MLP_PARAMS == 484
    layers = by_name(summary)
    assert layers["body.0"]["output_shape"] == [3, 32] and layers["body.2"]["output_shape"] == [3, 4]
    assert layers["body.0"]["parameters"] == 352 and layers["body.1"]["parameters"] == 0
    # Linear closed form: MACs = in_features × out_features × rows; FLOPs = 2 × MACs
    assert layers["body.0"]["macs"] == 10 * 32 * 3 and layers["body.2"]["macs"] == 32 * 4 * 3
    assert summary["macs_per_example"] == 10 * 32 + 32 * 4 and summary["flops_per_example"] == 2 * (10 * 32 + 32 * 4)
    # activations: float32 outputs of every layer, 32 + 32 + 4 values per example
    assert summary["activation_bytes_per_example"] == (32 + 32 + 4) * 4
    assert summary["activation_bytes_at_batch"] == 256 * (32 + 32 + 4) * 4 and summary["batch_size"] == 256


def test_a_cnn_matches_hand_counts_and_the_conv_closed_form(tmp_path: Path) -> None:
    summary = summary_of(tmp_path, "SmallCNN", "2,3,8,8")
    assert summary["total_parameters"] == CNN_PARAMS == 3386 and summary["output_shape"] == [2, 10]
    layers = by_name(summary)
    assert layers["conv1"]["output_shape"] == [2, 8, 8, 8] and layers["conv2"]["output_shape"] == [2, 16, 4, 4]
    # Conv2d closed form: FLOPs = 2 × (C_in / groups) × k × k × C_out × H_out × W_out per example
    assert 2 * layers["conv1"]["macs"] == 2 * (2 * 3 * 3 * 3 * 8 * 8 * 8)
    assert 2 * layers["conv2"]["macs"] == 2 * (2 * (8 // 2) * 3 * 3 * 16 * 4 * 4)
    assert layers["head"]["macs"] == 2 * 256 * 10
    assert summary["flops_per_example"] == 2 * (3 * 9 * 8 * 64 + 4 * 9 * 16 * 16 + 256 * 10)
    assert layers["norm"]["macs"] == 0 and layers["pool"]["macs"] == 0
    result = runner.invoke(app, ["summary", f"{tmp_path / 'models.py'}:SmallCNN", "--input-size", "1,3,8,8",
                                 "--kwargs", '{"classes": 5}'])
    assert result.exit_code == 0, result.output
    assert "conv2  Conv2d       1x16x4x4         576  9.22k" in result.output and "total parameters      2,101 (" in result.output  # head 256×5 + 5


def test_an_embedding_lstm_model_matches_hand_counts(tmp_path: Path) -> None:
    summary = summary_of(tmp_path, "Recurrent", "2,7")  # the Embedding makes the input token ids
    assert summary["total_parameters"] == LSTM_PARAMS == 3171
    assert summary["trainable_parameters"] == LSTM_PARAMS - 1200
    layers = by_name(summary)
    assert layers["embed"]["output_shape"] == [2, 7, 12] and layers["lstm"]["output_shape"] == [2, 7, 16]
    assert layers["lstm"]["macs"] == 4 * (2 * 7) * (12 + 16) * 16


def test_closed_forms_directly_and_errors_are_one_sentence(tmp_path: Path) -> None:
    import torch
    import torch.nn as nn

    conv = nn.Conv2d(6, 12, (3, 5), stride=2, groups=3)
    out = conv(torch.zeros(4, 6, 11, 13))
    assert layer_macs(conv, (torch.zeros(4, 6, 11, 13),), out) == 4 * 12 * out.shape[2] * out.shape[3] * (6 // 3) * 3 * 5
    single = summarize(nn.Linear(5, 7), torch.zeros(3, 5))  # a model that is one layer is still counted
    assert single["macs_per_batch"] == 3 * 5 * 7 and single["layers_total"] == 1
    (tmp_path / "models.py").write_text(MODELS)
    result = runner.invoke(app, ["summary", f"{tmp_path / 'models.py'}:MLP", "--input-size", "3,11"])
    assert result.exit_code != 0 and "MLP fails on an input of shape [3, 11]: RuntimeError: mat1 and mat2" in result.output
    result = runner.invoke(app, ["summary", f"{tmp_path / 'models.py'}:Nope", "--input-size", "3,10"])
    assert result.exit_code != 0 and "models.py has no class 'Nope'; it defines MLP, Recurrent, SmallCNN." in result.output
    result = runner.invoke(app, ["summary", "models.py", "--input-size", "3,10"])
    assert result.exit_code == 2 and "'models.py' is not FILE.py:Class" in result.output
