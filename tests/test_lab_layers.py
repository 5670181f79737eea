"""Declarative architectures: a layer list is assembled with in-sizes inferred by a dry forward pass,
written out as readable Python, and that file trains through the pipeline; a block described in
words is written by the (scripted) LLM and used only after it passes the gates, and a broken one is
rejected with the gate's reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agents.registry import default_agents
from mltrainer.app import app
from mltrainer.store import Store
from orchestrator.context import JobContext
from orchestrator.errors import SpecError
from orchestrator.events import EventBus
from orchestrator.orchestrator import Orchestrator
from tests.conftest import make_classification_frame
from tests.fakes.scripted_llm import ScriptedLLM
from tools.lab.layers import assemble

runner = CliRunner()
INTENT = json.dumps({"task_type": "tabular_classification", "dataset": {"target": "label"},
                     "reasons": {"task_type": "yes/no labels"}})
CONFIG = json.dumps({"hyperparameters": {}})
GOOD_BLOCK = '''Here is the block:
```python
import torch
import torch.nn as nn


class DescribedBlock2(nn.Module):
    """A gated residual MLP block: x + sigmoid(gate(x)) * tanh(value(x))."""

    def __init__(self, dim, in_shape=None):
        super().__init__()
        self.gate = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def forward(self, x):
        return x + torch.sigmoid(self.gate(x)) * torch.tanh(self.value(x))
```'''
#: parses, imports and builds, but its forward multiplies mismatched shapes: only running it shows that
BROKEN_BLOCK = '''```python
import torch
import torch.nn as nn


class DescribedBlock2(nn.Module):
    def __init__(self, dim, in_shape=None):
        super().__init__()
        self.proj = nn.Linear(dim // 2, dim)

    def forward(self, x):
        return self.proj(x)
```'''
LAYERS = [{"type": "Linear", "params": {"out_features": 16}}, {"type": "ReLU"},
          {"describe": "a gated residual MLP block"}, {"type": "LayerNorm"}, {"type": "Linear"}]


def test_sizes_are_inferred_and_the_module_is_readable_python(tmp_path: Path) -> None:
    layers = [{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
              {"type": "BatchNorm2d"}, {"type": "ReLU"}, {"type": "MaxPool2d", "params": {"kernel_size": 2}},
              {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 8}, "name": "hidden"},
              {"type": "Linear"}]
    built = assemble(layers, [3, 8, 8], "float", outputs=5, base=tmp_path)
    assert "self.conv2d0 = nn.Conv2d(out_channels=4, kernel_size=3, padding=1, in_channels=3)" in built.source
    assert "self.batchnorm2d1 = nn.BatchNorm2d(num_features=4)" in built.source
    assert "self.hidden = nn.Linear(out_features=8, in_features=64)  # [64] -> [8]" in built.source
    assert "nn.Linear(in_features=8, out_features=5)" in built.source  # the last Linear gets the class count
    assert [r["output_shape"] for r in built.rows] == [[4, 8, 8], [4, 8, 8], [4, 8, 8], [4, 4, 4], [64], [8], [5]]
    namespace: dict[str, Any] = {}
    exec(compile(built.source, "model.py", "exec"), namespace)  # the written file is the model
    import torch

    assert namespace["Net"]()(torch.zeros(2, 3, 8, 8)).shape == (2, 5)

    sequence = assemble([{"type": "Embedding", "params": {"embedding_dim": 6}}, {"type": "LSTM", "params": {"hidden_size": 5}},
                         {"type": "MultiheadAttention", "params": {"num_heads": 1}}, {"type": "Flatten"}, {"type": "Linear"}],
                        [7], "long", outputs=3, base=tmp_path, vocab=50)
    assert "nn.Embedding(embedding_dim=6, num_embeddings=50)" in sequence.source
    assert "nn.LSTM(hidden_size=5, input_size=6, batch_first=True)" in sequence.source
    assert "x = self.lstm1(x)[0]" in sequence.source and "x = self.multiheadattention2(x, x, x, need_weights=False)[0]" in sequence.source
    assert sequence.rows[-1]["input_shape"] == [35]


def test_layer_list_errors_name_the_layer(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"layers\[1\]: 'Relu' is not a torch.nn layer \(did you mean 'ReLU'\?\)"):
        assemble([{"type": "Linear", "params": {"out_features": 4}}, {"type": "Relu"}], [3], "float", 2, tmp_path)
    with pytest.raises(SpecError, match=r"layers\[0\] \(Linear\) needs params.out_features"):
        assemble([{"type": "Linear"}, {"type": "Linear"}], [3], "float", 2, tmp_path)
    with pytest.raises(SpecError, match=r"layers\[1\] \(Conv1d\) fails on an input of shape \[2, 4\]"):
        assemble([{"type": "Linear", "params": {"out_features": 4}}, {"type": "Conv1d", "params": {"out_channels": 2,
                  "kernel_size": 9}}], [3], "float", 2, tmp_path)
    with pytest.raises(SpecError, match="needs an LLM to write it"):
        assemble([{"describe": "a gated block"}], [3], "float", 2, tmp_path)


def test_a_declared_layer_list_trains_through_mltrainer_run(tmp_path: Path) -> None:
    (tmp_path / "blocks.py").write_text('import torch\nimport torch.nn as nn\n\n\nclass Scale(nn.Module):\n'
                                        '    def __init__(self, dim, factor=0.5):\n        super().__init__()\n'
                                        '        self.weight = nn.Parameter(torch.full((dim,), factor))\n\n'
                                        '    def forward(self, x):\n        return x * self.weight\n\n\n'
                                        'if __name__ == "__main__":\n    raise SystemExit("demo code never runs")\n')
    make_classification_frame(240).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "spec.yaml").write_text("""task: predict the label
data: {source: data.csv, target: label}
hyperparameters: {epochs: 12, patience: 12, lr: 0.01}
architecture:
  layers:
    - {type: Linear, params: {out_features: 32}}
    - {type: BatchNorm1d}
    - {type: ReLU}
    - {module_path: blocks.py:Scale, params: {factor: 1.0}}
    - {type: Dropout, params: {p: 0.1}}
    - {type: Linear}
""")
    result = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--job-id", "declared"])
    assert result.exit_code == 0, result.output
    detail = json.loads(runner.invoke(app, ["show", "declared", "--json"]).output)
    custom = detail["architecture"]["custom"]
    assert custom["origin"] == "layers" and detail["architecture"]["kept"] == "custom"
    model_py = Path(custom["model_file"]).read_text()  # the readable module the user keeps is what trained
    assert "self.linear0 = nn.Linear(out_features=32, in_features=6)" in model_py
    assert "self.scale3 = Scale(factor=1.0, dim=32)" in model_py and "class Scale(nn.Module)" in model_py
    assert "demo code never runs" not in model_py
    script = Path(detail["artifacts"]["training_script"]).read_text()
    assert "CUSTOM_MODEL_SOURCE = r'''" in script and "self.scale3 = Scale(factor=1.0, dim=32)" in script
    metrics = json.loads((Path(detail["artifacts"]["run_dir"]) / "metrics.json").read_text())
    assert metrics["best_model"] == "custom" and metrics["test"]["accuracy"] > metrics["baseline"]["accuracy"] - 0.1
    assert detail["test_metrics"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])  # the export scores the same


def run_job(tmp_path: Path, llm: ScriptedLLM, layers: list[dict[str, Any]]) -> JobContext:
    make_classification_frame(240).to_csv(tmp_path / "data.csv", index=False)
    spec = {"task": "predict the label", "task_type": None, "data": {"source": str(tmp_path / "data.csv"), "target": "label"},
            "runtime": "local", "deploy": None, "llm": "scripted", "budget": {"time": None},
            "hyperparameters": {"epochs": 3, "patience": 3}, "architecture": {"layers": layers}}
    context = JobContext(job_id="described", raw_prompt=spec["task"], spec=spec, job_dir=str(tmp_path / "job"),
                         spec_path=str(tmp_path / "spec.yaml"))
    store = Store(tmp_path / "store.db")
    bus = EventBus()
    orchestrator = Orchestrator(store, bus, default_agents(bus, llm=llm), sleep=lambda s: None)
    orchestrator.create(context)
    try:
        return orchestrator.run(context)
    finally:
        store.close()


def test_a_described_block_is_written_by_the_llm_gated_and_trained(tmp_path: Path) -> None:
    llm = ScriptedLLM([INTENT, CONFIG, BROKEN_BLOCK, GOOD_BLOCK])
    final = run_job(tmp_path, llm, LAYERS)
    assert final.status == "done", final.failure
    first, second = [c.messages[-1]["content"] for c in llm.calls if c.stage == "architecture"]
    assert "Block: a gated residual MLP block" in first and "shape [batch, 16]; dim=16" in first
    assert "Attempt 1 failed with: forward on an input of shape [2, 16] failed (RuntimeError: mat1 and mat2" in second
    described = final.architecture["custom"]["described"][0]
    assert described["class"] == "DescribedBlock2" and described["check"]["out_shape"] == [16]
    assert [a["error"] is None for a in described["attempts"]] == [False, True]
    model_py = Path(final.architecture["custom"]["model_file"]).read_text()
    assert "class DescribedBlock2(nn.Module):" in model_py and "self.describedblock22 = DescribedBlock2(dim=16" in model_py
    assert final.best_metric["model"] == "custom" and final.test_metrics["accuracy"] > 0.5


def test_a_broken_described_block_is_rejected_with_the_gates_reason(tmp_path: Path) -> None:
    leaky = BROKEN_BLOCK.replace("import torch\n", "import torch\nimport surely_not_installed_pkg\n", 1)
    llm = ScriptedLLM([INTENT, CONFIG, "```python\nclass Block:\n    pass\n```", leaky, BROKEN_BLOCK])
    final = run_job(tmp_path, llm, LAYERS)
    assert final.status == "failed" and final.failure["stage"] == "architecture"
    message = final.failure["error"]
    assert message.startswith("The block described as 'a gated residual MLP block' was rejected after 3 attempts: "
                              "forward on an input of shape [2, 16] failed (RuntimeError: mat1 and mat2 shapes")
    assert final.attempts["architecture"] == 1  # a spec problem: not retried
    errors = [c.messages[-1]["content"] for c in llm.calls if c.stage == "architecture"][-1]
    assert "Attempt 1 failed with: The code defines no top-level class DescribedBlock2" in errors
    assert "Attempt 2 failed with: The script imports 'surely_not_installed_pkg', which is not installed" in errors
    assert not (tmp_path / "job" / "run" / "train.py").exists()
