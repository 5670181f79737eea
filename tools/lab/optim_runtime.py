# -----------------------------------------------------------------------------
# Optimizer (the spec's optimizer: section; tools/lab/optim_runtime.py, inlined by mltrainer).
# A torch optimizer by name, or a custom one whose source is embedded below; parameter groups chosen
# by a regex over parameter names, each with its own lr (kept as lr_scale × the scheduled lr, so the
# schedule moves every group) and weight decay; norms and biases get no weight decay; an optional
# Grokfast filter adds lamb × an EMA of past gradients (the slow component) to each gradient.

import re as _lab_re
import sys as _lab_sys
import types as _lab_types

import torch
import torch.nn as nn

OPTIMIZER_SPEC: dict = {}
CUSTOM_OPTIMIZER_SOURCE = ""
#: Module types whose weights never get weight decay (besides every bias and 1-D parameter).
LAB_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def lab_no_decay(model: nn.Module) -> set:
    """Names of the parameters that get no weight decay: biases, 1-D parameters and norm weights."""
    names = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, LAB_NORMS) or "norm" in type(module).__name__.lower()
        for name, p in module.named_parameters(recurse=False):
            if is_norm or p.ndim < 2 or name.endswith("bias"):
                names.add(f"{module_name}.{name}" if module_name else name)
    return names


def lab_param_groups(model: nn.Module, base_lr: float, weight_decay: float, spec: dict) -> list:
    """Torch param groups: each parameter goes to the first param_groups entry whose regex matches its
    name (else "default"), split into decayed and not-decayed parameters."""
    rules = [(g, _lab_re.compile(g["match"])) for g in spec.get("param_groups") or []]
    skip = set() if spec.get("decay_norms_and_biases") else lab_no_decay(model)
    buckets, names = {}, []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        names.append(name)
        index = next((i for i, (_, rx) in enumerate(rules) if rx.search(name)), -1)
        buckets.setdefault((index, name not in skip), []).append(p)
    for i, (rule, _) in enumerate(rules):
        if not any(index == i for index, _ in buckets):
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ValueError(f"optimizer param group {rule.get('name') or i} (match {rule['match']!r}) matches no "
                             f"parameter of the model; parameter names look like: {shown}")
    groups = []
    for (index, decays), params in sorted(buckets.items()):
        rule = rules[index][0] if index >= 0 else {}
        lr = float(rule.get("lr") or base_lr)
        decay = float(rule["weight_decay"]) if rule.get("weight_decay") is not None else float(weight_decay)
        extra = {k: v for k, v in rule.get("params", {}).items()}
        groups.append({"params": params, "name": rule.get("name") or ("default" if index < 0 else f"group{index}"),
                       "lr": lr, "lr_scale": lr / base_lr if base_lr else 1.0,
                       "weight_decay": decay if decays else 0.0, **extra})
    return groups


def lab_custom_module():
    """The custom optimizer's module (CUSTOM_OPTIMIZER_SOURCE), executed once per process."""
    name = f"mltrainer_custom_optimizer_{abs(hash(CUSTOM_OPTIMIZER_SOURCE))}"
    if name not in _lab_sys.modules:
        module = _lab_types.ModuleType(name)
        _lab_sys.modules[name] = module
        exec(compile(CUSTOM_OPTIMIZER_SOURCE, "custom_optimizer.py", "exec"), module.__dict__)
    return _lab_sys.modules[name]


def lab_optimizer_class(spec: dict):
    """The custom class, or the torch.optim class named (case-insensitive: adamw, SGD, RMSprop…)."""
    if spec.get("custom_class"):
        return getattr(lab_custom_module(), spec["custom_class"])
    wanted = str(spec.get("name") or "adamw").lower()
    for attr in dir(torch.optim):
        cls = getattr(torch.optim, attr)
        if attr.lower() == wanted and isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
            return cls
    raise ValueError(f"torch.optim has no optimizer named {spec.get('name')!r}")


def with_grokfast(cls, alpha: float, lamb: float):
    """``cls`` with the Grokfast EMA filter (Lee et al. 2024) applied to the gradients before each step:
    ema = alpha·ema + (1-alpha)·grad, grad += lamb·ema. The EMAs travel in state_dict (exact resume)."""

    class Grokfast(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.grokfast_ema = {}

        def _lab_params(self) -> list:
            return [p for group in self.param_groups for p in group["params"]]

        def step(self, closure=None):
            with torch.no_grad():
                for i, p in enumerate(self._lab_params()):
                    if p.grad is None:
                        continue
                    ema = self.grokfast_ema.get(i)
                    if ema is None:
                        ema = self.grokfast_ema[i] = p.grad.detach().clone()
                    else:
                        ema.mul_(alpha).add_(p.grad, alpha=1 - alpha)
                    p.grad.add_(ema, alpha=lamb)
            return super().step(closure)

        def state_dict(self) -> dict:
            state = super().state_dict()
            state["grokfast_ema"] = {i: t.detach().clone() for i, t in self.grokfast_ema.items()}
            return state

        def load_state_dict(self, state_dict: dict) -> None:
            state_dict = dict(state_dict)
            ema = state_dict.pop("grokfast_ema", {})
            super().load_state_dict(state_dict)
            params = self._lab_params()
            self.grokfast_ema = {int(i): t.to(params[int(i)].device) for i, t in ema.items()}

    Grokfast.__name__ = Grokfast.__qualname__ = f"Grokfast{cls.__name__}"
    return Grokfast


def lab_optimizer(model: nn.Module, base_lr: float, weight_decay: float, spec=None):
    """The optimizer the spec asks for over ``model``'s parameter groups."""
    spec = OPTIMIZER_SPEC if spec is None else spec
    cls = lab_optimizer_class(spec)
    if spec.get("grokfast"):
        cls = with_grokfast(cls, float(spec["grokfast"].get("alpha", 0.98)), float(spec["grokfast"].get("lamb", 2.0)))
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in (spec.get("params") or {}).items()}
    return cls(lab_param_groups(model, base_lr, weight_decay, spec), lr=base_lr, **params)


def lab_lr_metrics(opt) -> dict:
    """Each named param group's learning rate, for METRIC lines: as one lr_groups mapping and as flat
    lr_<group> numbers (which the pipeline keeps in the job's training metrics)."""
    groups = {}
    for group in opt.param_groups:
        groups.setdefault(str(group.get("name", "default")), group["lr"])
    return {"lr_groups": groups, **{f"lr_{name}": lr for name, lr in groups.items()}}
