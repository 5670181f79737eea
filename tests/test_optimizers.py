"""Optimizers: parameter groups chosen by regex with their own learning rates (visible in the training
metrics), no weight decay on norms and biases, the Grokfast filter, and custom optimizers written by
the (scripted) LLM — accepted and registered only when they descend and round-trip their state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from typer.testing import CliRunner

from mltrainer.app import app
from orchestrator.errors import SpecError, TrainingError
from tests.conftest import make_classification_frame
from tests.fakes.scripted_llm import ScriptedLLM
from tools.lab import optimizers
from tools.lab.optim_runtime import lab_lr_metrics, lab_optimizer, lab_param_groups

runner = CliRunner()
MOMENTUM = '''```python
import torch


class MomentumSign(torch.optim.Optimizer):
    """Heavy-ball momentum, the buffer kept in self.state."""

    def __init__(self, params, lr=1e-3, weight_decay=0.0, beta=0.9):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "beta": beta})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                buf = state["momentum"].mul_(group["beta"]).add_(p.grad)
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(buf, alpha=-group["lr"])
        return loss
```'''
#: climbs the gradient instead of descending it
ASCENT = MOMENTUM.replace('p.add_(buf, alpha=-group["lr"])', 'p.add_(buf, alpha=group["lr"])')
#: keeps its momentum outside self.state, so a resumed run would forget it
FORGETFUL = (MOMENTUM.replace('state = self.state[p]', 'state = self.buffers.setdefault(id(p), {})')
             .replace('super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "beta": beta})',
                      'super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "beta": beta})\n'
                      '        self.buffers = {}'))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def test_param_groups_by_regex_with_no_decay_for_norms_and_biases() -> None:
    spec = {"name": "AdamW", "param_groups": [{"match": "^backbone", "name": "backbone", "lr": 1e-4},
                                              {"match": "head", "name": "head", "lr": 1e-2, "weight_decay": 0.5}]}
    model = Net()
    groups = lab_param_groups(model, 1e-3, 0.1, spec)
    names = {id(p): n for n, p in model.named_parameters()}
    shown = sorted((g["name"], g["lr"], g["lr_scale"], g["weight_decay"], sorted(names[id(p)] for p in g["params"]))
                   for g in groups)
    assert shown == [
        ("backbone", 1e-4, pytest.approx(0.1), 0.0, ["backbone.0.bias", "backbone.1.bias", "backbone.1.weight"]),
        ("backbone", 1e-4, pytest.approx(0.1), 0.1, ["backbone.0.weight"]),
        ("head", 1e-2, pytest.approx(10.0), 0.0, ["head.bias"]),
        ("head", 1e-2, pytest.approx(10.0), 0.5, ["head.weight"]),
    ]
    decayed = lab_param_groups(model, 1e-3, 0.1, {"decay_norms_and_biases": True})
    assert [(g["name"], g["weight_decay"], len(g["params"])) for g in decayed] == [("default", 0.1, 6)]
    opt = lab_optimizer(model, 1e-3, 0.1, {**spec, "name": "rmsprop", "params": {"alpha": 0.9}})
    assert type(opt).__name__ == "RMSprop" and opt.defaults["alpha"] == 0.9
    assert lab_lr_metrics(opt) == {"lr_groups": {"backbone": 1e-4, "head": 1e-2}, "lr_backbone": 1e-4, "lr_head": 1e-2}
    with pytest.raises(ValueError, match=r"param group encoder \(match '\^encoder'\) matches no parameter of the model; "
                                         r"parameter names look like: backbone.0.weight, backbone.0.bias"):
        lab_param_groups(model, 1e-3, 0.1, {"param_groups": [{"match": "^encoder", "name": "encoder"}]})
    with pytest.raises(SpecError, match="optimizer.params do not fit AdamW: TypeError"):
        optimizers.resolve({"name": "adamw", "params": {"momentum": 0.9}})
    with pytest.raises(SpecError, match="'lion' is neither a torch.optim optimizer"):
        optimizers.resolve({"name": "lion"})


def test_grokfast_amplifies_slow_gradients_and_round_trips_its_state() -> None:
    alpha, lamb = 0.5, 2.0
    model = nn.Linear(1, 1, bias=False)
    spec = {"name": "SGD", "grokfast": {"alpha": alpha, "lamb": lamb}}
    opt = lab_optimizer(model, 1.0, 0.0, spec)
    assert type(opt).__name__ == "GrokfastSGD"
    w0 = model.weight.item()
    grads = [1.0, -3.0, 2.0]
    ema, expected = None, w0
    for index, g in enumerate(grads[:2]):
        model.weight.grad = torch.tensor([[g]])
        opt.step()
        ema = g if ema is None else alpha * ema + (1 - alpha) * g  # the first EMA is the first gradient
        expected -= g + lamb * ema
        assert model.weight.item() == pytest.approx(expected), index
    saved = opt.state_dict()
    assert set(saved["grokfast_ema"]) == {0}
    twin = nn.Linear(1, 1, bias=False)
    twin.load_state_dict(model.state_dict())
    resumed = lab_optimizer(twin, 1.0, 0.0, spec)
    resumed.load_state_dict(saved)
    for net, o in ((model, opt), (twin, resumed)):
        net.weight.grad = torch.tensor([[grads[2]]])
        o.step()
    assert twin.weight.item() == pytest.approx(model.weight.item())  # the EMA came back with the state


def test_a_custom_optimizer_that_does_not_descend_is_rejected(sealed_home: Path) -> None:
    leaky = MOMENTUM.replace("import torch\n", "import torch\nimport surely_not_installed_pkg\n", 1)
    llm = ScriptedLLM(["Sure, here it is: it is like Lion.", leaky, ASCENT])
    with pytest.raises(optimizers.OptimizerRejected) as caught:
        optimizers.resolve({"name": "momentum_sign", "describe": "heavy-ball momentum"}, llm)
    message = str(caught.value)
    assert message.startswith("The custom optimizer 'momentum_sign' was rejected after 3 attempts: it does not descend: "
                              "on the quadratic 0.5*sum(a*x^2) from x=3 the loss 56.2 did not fall below 10%")
    last_prompt = llm.calls[-1].messages[-1]["content"]
    assert "Optimizer: heavy-ball momentum" in last_prompt and "Class name: MomentumSign" in last_prompt
    assert "Attempt 1 failed with: The script does not parse" in last_prompt
    assert "Attempt 2 failed with: The script imports 'surely_not_installed_pkg'" in last_prompt
    assert optimizers.registered() == {}  # nothing rejected is registered

    source = FORGETFUL.split("```python\n")[1].split("```")[0]
    with pytest.raises(TrainingError, match="its state_dict does not round-trip: after load_state_dict the next step "
                                            "moved the weights differently"):
        optimizers.check_optimizer(source, "MomentumSign")


def test_an_accepted_optimizer_is_registered_and_trains_a_job_with_param_groups(tmp_path: Path, sealed_home: Path) -> None:
    llm = ScriptedLLM([MOMENTUM])
    resolved = optimizers.resolve({"name": "momentum_sign", "describe": "heavy-ball momentum"}, llm)
    assert resolved["origin"] == "llm" and resolved["custom_class"] == "MomentumSign"
    assert resolved["checks"]["state_dict"] == "round-trips" and resolved["checks"]["quadratic"]["end"] < 5.63
    index = json.loads((sealed_home / "optimizers" / "index.json").read_text())
    assert index["momentum_sign"]["class"] == "MomentumSign" and (sealed_home / "optimizers" / "momentum_sign.py").is_file()
    again = optimizers.resolve({"name": "momentum_sign", "describe": "heavy-ball momentum"}, ScriptedLLM([]))
    assert again["origin"] == "registry"  # registered: the LLM is not asked again

    make_classification_frame(240).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "spec.yaml").write_text("""task: predict the label
data: {source: data.csv, target: label}
hyperparameters: {model: mlp, epochs: 3, patience: 3, lr: 0.01}
optimizer:
  name: momentum_sign
  params: {beta: 0.5}
  param_groups: [{match: '^layers\\.0\\.', name: first, lr: 0.001}]
  grokfast: {alpha: 0.9, lamb: 0.5}
""")
    result = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--job-id", "custom-opt"])
    assert result.exit_code == 0, result.output
    detail = json.loads(runner.invoke(app, ["show", "custom-opt", "--json"]).output)
    script = Path(detail["artifacts"]["training_script"]).read_text()
    assert "class MomentumSign(torch.optim.Optimizer):" in script and "'custom_class': 'MomentumSign'" in script
    from mltrainer import settings
    from mltrainer.store import Store

    store = Store(settings.db_path())
    rows = json.loads(store.require_job("custom-opt").context_json)["training_metrics"]
    store.close()
    assert rows and all(r["lr_first"] == pytest.approx(r["lr_default"] / 10) for r in rows)
    assert rows[0]["lr_default"] == pytest.approx(0.01) and rows[0]["lr_first"] == pytest.approx(0.001)

    (sealed_home / "optimizers" / "momentum_sign.py").write_text("import os\n")  # tampered after the checks
    with pytest.raises(SpecError, match="was changed after it passed the checks"):
        optimizers.resolve({"name": "momentum_sign"})
