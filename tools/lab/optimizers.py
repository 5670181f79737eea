"""The spec's ``optimizer:`` section made concrete for a training script: a torch optimizer by name
(AdamW, SGD, RMSprop…) or a custom one — registered earlier, or described in words and written by
the LLM — with parameter groups, the norm/bias weight-decay rule and an optional Grokfast filter.

A custom optimizer is accepted only after, in a child process, it reduces a known quadratic, trains
a small network and round-trips its ``state_dict`` (through ``torch.load(weights_only=True)``, as
checkpoints are read). Accepted ones are registered by name under ``$MLTRAINER_HOME/optimizers/``
(``<name>.py`` and ``index.json``) so later specs can name them; their source is inlined in train.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import MltrainerError, SpecError, TrainingError

RUNTIME = Path(__file__).resolve().parent / "optim_runtime.py"
MAX_OPTIMIZER_ATTEMPTS = 3
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
#: Learning rates a custom optimizer is tried at; it must descend at one of them.
CHECK_LRS = (0.1, 0.03, 0.01)


class OptimizerRejected(SpecError):
    """A custom optimizer never passed the checks; the message says why."""


OPTIMIZER_CHECK = '''
import copy, io
lrs = args["lrs"]
if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
    gate(f"{args['class']} is not a torch.optim.Optimizer subclass")


def make(params, lr):
    try:
        return cls(params, lr=lr)
    except Exception as err:
        gate(f"building {args['class']}(params, lr={lr}) failed ({describe(err)})")


def fit(loss_of, params, lr, steps):
    opt = make(params, lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_of()
        loss.backward()
        try:
            opt.step()
        except Exception as err:
            gate(f"step() failed ({describe(err)})")
    with torch.no_grad():
        return float(loss_of())


a = torch.linspace(0.5, 2.0, 10)
quad = []
for lr in lrs:
    x = torch.nn.Parameter(torch.full((10,), 3.0))
    end = fit(lambda: 0.5 * (a * x * x).sum(), [x], lr, 200)
    quad.append((lr, end))
start = 0.5 * float((a * 9.0).sum())
ok = [(end, lr) for lr, end in quad if math.isfinite(end) and end < 0.1 * start]
if not ok:
    shown = ", ".join(f"lr {lr}: {end:.3g}" for lr, end in quad)
    gate(f"it does not descend: on the quadratic 0.5*sum(a*x^2) from x=3 the loss {start:.3g} did not fall below "
         f"10% in 200 steps ({shown})")

g = torch.Generator().manual_seed(0)
X = torch.randn(64, 4, generator=g)
y = X @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(64, 1, generator=g)
net_result = []
for lr in lrs:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    with torch.no_grad():
        first = float(torch.nn.functional.mse_loss(net(X), y))
    last = fit(lambda: torch.nn.functional.mse_loss(net(X), y), list(net.parameters()), lr, 150)
    net_result.append((lr, first, last))
good = [(last, lr) for lr, first, last in net_result if math.isfinite(last) and last < 0.5 * first]
if not good:
    shown = ", ".join(f"lr {lr}: {first:.3g} -> {last:.3g}" for lr, first, last in net_result)
    gate(f"it does not train a small network: the MSE did not halve in 150 steps ({shown})")
lr = min(good)[1]

torch.manual_seed(1)
net_a = torch.nn.Linear(4, 1)
net_b = copy.deepcopy(net_a)
opt_a = make(net_a.parameters(), lr)
for _ in range(3):
    opt_a.zero_grad()
    torch.nn.functional.mse_loss(net_a(X), y).backward()
    opt_a.step()
buffer = io.BytesIO()
try:
    torch.save(opt_a.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
except Exception as err:
    gate(f"its state_dict cannot be saved and loaded with torch.load(weights_only=True) ({describe(err)}); keep only tensors and numbers in self.state")
net_b.load_state_dict(net_a.state_dict())
opt_b = make(net_b.parameters(), lr)
try:
    opt_b.load_state_dict(saved)
except Exception as err:
    gate(f"load_state_dict of its own state_dict failed ({describe(err)})")
for net, opt in ((net_a, opt_a), (net_b, opt_b)):
    opt.zero_grad()
    torch.nn.functional.mse_loss(net(X), y).backward()
    opt.step()
diff = max(float((p - q).abs().max()) for p, q in zip(net_a.parameters(), net_b.parameters()))
if not diff <= 1e-6:
    gate(f"its state_dict does not round-trip: after load_state_dict the next step moved the weights differently (by {diff:.3g})")
print("RESULT " + json.dumps({"lr": lr, "quadratic": {"start": start, "end": min(ok)[0]},
                              "network": {"lr": lr, "end": min(good)[0]}, "state_dict": "round-trips"}), flush=True)
'''


def check_optimizer(source: str, class_name: str, known_secrets: list[str] | None = None) -> dict[str, Any]:
    """Every gate for a custom optimizer's source; returns the checks' figures or raises TrainingError."""
    from tools.lab.sandbox import CHECK_PREAMBLE, run_check, static_gates

    static_gates(source, class_name, known_secrets)
    return run_check(CHECK_PREAMBLE + OPTIMIZER_CHECK, source, {"class": class_name, "lrs": list(CHECK_LRS)})


# -- the registry ------------------------------------------------------------------------------------

def registry_dir() -> Path:
    from mltrainer import settings

    return settings.home() / "optimizers"


def registered() -> dict[str, dict[str, Any]]:
    index = registry_dir() / "index.json"
    return dict(json.loads(index.read_text())) if index.is_file() else {}


def register(name: str, class_name: str, source: str, description: str, checks: dict[str, Any]) -> Path:
    """Keep an accepted optimizer as ``<name>.py`` with an entry in index.json (atomically)."""
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source)
    index = registered()
    index[name] = {"class": class_name, "file": path.name, "description": description, "checks": checks,
                   "sha256": hashlib.sha256(source.encode()).hexdigest(), "registered_at": time.time()}
    tmp = folder / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
    tmp.replace(folder / "index.json")
    return path


def load_registered(name: str) -> tuple[str, str] | None:
    """(class name, source) of a registered optimizer, or None; a tampered file is refused."""
    entry = registered().get(name)
    if entry is None:
        return None
    source = (registry_dir() / entry["file"]).read_text()
    if hashlib.sha256(source.encode()).hexdigest() != entry["sha256"]:
        raise SpecError(f"The registered optimizer '{name}' was changed after it passed the checks; describe it "
                        "again (optimizer.describe) to re-check it.")
    return str(entry["class"]), source


def torch_optimizer(name: str) -> Any:
    import torch

    for attr in dir(torch.optim):
        cls = getattr(torch.optim, attr)
        if attr.lower() == name.lower() and isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
            return cls
    return None


# -- resolving the spec's section ------------------------------------------------------------------------

def class_name_for(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\W]+", name) if part) or "CustomOptimizer"


def generate(llm: Any, name: str, description: str, known_secrets: list[str] | None = None,
             log: Any = None) -> tuple[str, str, dict[str, Any], list[dict[str, Any]]]:
    """Ask the LLM for the optimizer until one passes every check: (class, source, checks, attempts)."""
    import prompts
    from agents.codegen import extract_code

    if llm is None:
        raise SpecError(f"optimizer.describe needs an LLM to write '{name}'; set llm: in the spec or name a torch "
                        "or registered optimizer.")
    class_name = class_name_for(name)
    attempts: list[dict[str, Any]] = []
    for number in range(1, MAX_OPTIMIZER_ATTEMPTS + 1):
        parts = [f"Optimizer: {description}", f"Class name: {class_name}"]
        failures = [a["error"] for a in attempts]
        if failures:
            lines = "\n".join(f"Attempt {i} failed with: {e}" for i, e in enumerate(failures, 1))
            parts.append(f"Earlier attempts failed.\n{lines}\nDo not repeat these mistakes.")
        try:
            reply = llm.complete(prompts.load("lab_optimizer"), [{"role": "user", "content": "\n\n".join(parts)}],
                                 stage="architecture")
        except MltrainerError as err:
            attempts.append({"attempt": number, "error": f"the LLM call failed: {err}"})
            break
        source = extract_code(reply.content)
        try:
            checks = check_optimizer(source, class_name, known_secrets)
        except TrainingError as err:
            attempts.append({"attempt": number, "error": str(err)})
            if log is not None:
                log(f"custom optimizer '{name}' attempt {number} rejected: {err}", "warning")
            continue
        attempts.append({"attempt": number, "error": None})
        return class_name, source, checks, attempts
    reason = attempts[-1]["error"] if attempts else "no attempt was made"
    raise OptimizerRejected(f"The custom optimizer '{name}' was rejected after {len(attempts)} "
                            f"attempt{'s' if len(attempts) != 1 else ''}: {reason.rstrip('.')}; describe it "
                            "differently or use a torch optimizer.")


def resolve(section: dict[str, Any], llm: Any = None, known_secrets: list[str] | None = None,
            log: Any = None) -> dict[str, Any]:
    """The section as the training script's OPTIMIZER_SPEC (plus the custom source, when there is one)."""
    import torch

    name = str(section.get("name") or "adamw")
    resolved: dict[str, Any] = {
        "name": name, "params": dict(section.get("params") or {}),
        "param_groups": [{k: v for k, v in group.items() if v not in (None, {})}
                         for group in section.get("param_groups") or []],
        "decay_norms_and_biases": bool(section.get("decay_norms_and_biases", False)),
        "grokfast": section.get("grokfast") or None,
    }
    cls = None
    if section.get("describe"):
        if not NAME.match(name) or torch_optimizer(name) is not None:
            raise SpecError(f"optimizer.name '{name}' must be a new name (letters, digits, _) for the described "
                            "optimizer, not a torch optimizer's.")
        stored = load_registered(name)
        if stored is not None:
            if log is not None:
                log(f"optimizer '{name}' is registered already; using it (remove it from the registry to regenerate)")
            class_name, source = stored
            resolved.update(custom_class=class_name, custom_source=source, origin="registry")
        else:
            class_name, source, checks, attempts = generate(llm, name, str(section["describe"]), known_secrets, log)
            path = register(name, class_name, source, str(section["describe"]), checks)
            resolved.update(custom_class=class_name, custom_source=source, origin="llm", checks=checks,
                            attempts=attempts, registered=str(path))
    else:
        cls = torch_optimizer(name)
        if cls is None:
            stored = load_registered(name)
            if stored is None:
                known = sorted(registered())
                raise SpecError(f"optimizer.name '{name}' is neither a torch.optim optimizer (AdamW, SGD, RMSprop…) "
                                f"nor a registered one{' (' + ', '.join(known) + ')' if known else ''}; fix the name "
                                "or add describe: to have one written.")
            class_name, source = stored
            resolved.update(custom_class=class_name, custom_source=source, origin="registry")
    if cls is not None:  # the params must be ones this class takes
        try:
            cls([torch.zeros(1, requires_grad=True)], lr=1e-3,
                **{k: tuple(v) if isinstance(v, list) else v for k, v in resolved["params"].items()})
        except Exception as err:  # noqa: BLE001
            raise SpecError(f"optimizer.params do not fit {cls.__name__}: {type(err).__name__}: {err}.") from None
    return resolved


def runtime_source(resolved: dict[str, Any]) -> str:
    """optim_runtime.py with the spec (and custom source) filled in, to inline into train.py."""
    from tools.lab.byo import source_literal

    spec = {k: v for k, v in resolved.items() if k not in ("custom_source", "attempts", "checks", "registered", "origin")}
    text = RUNTIME.read_text()
    text = text.replace("OPTIMIZER_SPEC: dict = {}", f"OPTIMIZER_SPEC: dict = {spec!r}", 1)
    text = text.replace('CUSTOM_OPTIMIZER_SOURCE = ""',
                        f"CUSTOM_OPTIMIZER_SOURCE = {source_literal(resolved.get('custom_source') or '')}", 1)
    return text.rstrip() + "\n"
