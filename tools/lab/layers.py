"""Declarative architectures: ``architecture.layers`` — a list of ``{type, params}`` over torch.nn,
user blocks (``module_path: FILE.py:Class``) and blocks described in words (``describe:``) —
assembled deterministically into an ``nn.Module``. In-feature sizes (in_features, in_channels,
num_features, input_size, embed_dim…) are inferred by a dry forward pass from the input shape; the
last Linear without out_features gets the task's output count. The result is written out as
readable Python (a module the user can keep), and that file is what trains."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError
from tools.lab.byo import clean_source, first_line, load_class, parse_target

#: torch.nn type → (constructor argument for the input size, where it comes from: last dim, dim 1, vocab)
IN_SIZE: dict[str, tuple[str, str]] = {
    "Linear": ("in_features", "last"), "LSTM": ("input_size", "last"), "GRU": ("input_size", "last"),
    "RNN": ("input_size", "last"), "MultiheadAttention": ("embed_dim", "last"),
    "TransformerEncoderLayer": ("d_model", "last"), "LayerNorm": ("normalized_shape", "last"),
    "RMSNorm": ("normalized_shape", "last"), "GroupNorm": ("num_channels", "channels"),
    "Embedding": ("num_embeddings", "vocab"), "EmbeddingBag": ("num_embeddings", "vocab"),
    **{f"{kind}{d}d": ("in_channels", "channels") for kind in ("Conv", "ConvTranspose") for d in (1, 2, 3)},
    **{f"{kind}{d}d": ("num_features", "channels") for kind in ("BatchNorm", "InstanceNorm") for d in (1, 2, 3)},
}
#: Sequence layers read [batch, length, features] here (the data is batch-first).
BATCH_FIRST = ("LSTM", "GRU", "RNN", "MultiheadAttention", "TransformerEncoderLayer")
#: How a layer is called in forward: attention attends to itself; recurrent layers return (output, state).
CALLS = {"MultiheadAttention": "{attr}(x, x, x, need_weights=False)[0]", "LSTM": "{attr}(x)[0]",
         "GRU": "{attr}(x)[0]", "RNN": "{attr}(x)[0]"}


@dataclass
class Assembled:
    """A layer list made concrete: the module's source, its class and what each layer did."""

    source: str
    class_name: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # per layer: name, type, input/output shape
    described: list[dict[str, Any]] = field(default_factory=list)  # LLM blocks: description, attempts


def nn_class(name: str, index: int) -> Any:
    import torch.nn as nn

    cls = getattr(nn, name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        known = [k for k, v in vars(nn).items() if isinstance(v, type) and issubclass(v, nn.Module)]
        lowered = {k.lower(): k for k in known}
        close = [lowered[name.lower()]] if name.lower() in lowered else difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else "; use a torch.nn class name such as Linear or Conv2d"
        raise SpecError(f"architecture.layers[{index}]: '{name}' is not a torch.nn layer{hint}.")
    return cls


def literal(value: Any) -> str:
    """A parameter as Python source (lists become tuples, as torch's size arguments are written)."""
    if isinstance(value, list):
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def call(module: Any, type_name: str, x: Any) -> Any:
    if type_name == "MultiheadAttention":
        return module(x, x, x, need_weights=False)[0]
    out = module(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _fill_in_size(type_name: str, params: dict[str, Any], shape: list[int], vocab: int | None, index: int) -> None:
    rule = IN_SIZE.get(type_name)
    if rule is None or rule[0] in params:
        return
    name, source = rule
    if source == "vocab":
        if not vocab:
            raise SpecError(f"architecture.layers[{index}] ({type_name}) needs params.num_embeddings (the input is not token ids).")
        params[name] = vocab
    elif source == "channels":
        if len(shape) < 2:
            raise SpecError(f"architecture.layers[{index}] ({type_name}) needs an input with channels, got shape {shape}.")
        params[name] = shape[1]
    else:
        params[name] = shape[-1]
    if type_name in BATCH_FIRST:
        params.setdefault("batch_first", True)


def assemble(layers: list[dict[str, Any]], input_shape: list[int], dtype: str, outputs: int | None,
             base: Path, llm: Any = None, vocab: int | None = None, known_secrets: list[str] | None = None,
             log: Any = None) -> Assembled:
    """Build every layer in order on a dummy batch, inferring sizes, then write the module's source."""
    import torch

    from tools.lab.blocks import block_known, generate_block
    from tools.lab.byo import example_input, fill_kwargs

    if not layers:
        raise SpecError("architecture.layers is empty; list at least one layer.")
    x = example_input(list(input_shape), dtype, batch=2, vocab=vocab or 2)
    last_linear = max((i for i, layer in enumerate(layers) if layer.get("type") == "Linear"), default=-1)
    rows: list[dict[str, Any]] = []
    files: dict[Path, str] = {}  # user block files, copied once each
    described: list[dict[str, Any]] = []
    lines_init: list[str] = []
    lines_forward: list[str] = []
    used: set[str] = set()
    torch.manual_seed(0)
    for index, layer in enumerate(layers):
        shape = list(x.shape)
        params = dict(layer.get("params") or {})
        if layer.get("type"):
            type_name = str(layer["type"])
            cls = nn_class(type_name, index)
            _fill_in_size(type_name, params, shape, vocab, index)
            if type_name == "Linear" and "out_features" not in params:
                if index != last_linear or not outputs:
                    raise SpecError(f"architecture.layers[{index}] (Linear) needs params.out_features "
                                    "(only the last Linear gets the task's output count).")
                params["out_features"] = outputs
            constructor = f"nn.{type_name}"
        elif layer.get("module_path"):
            path, class_name = parse_target(str(layer["module_path"]), base)
            cls = load_class(path, class_name)
            files.setdefault(path, class_name)
            params = fill_kwargs(cls, params, block_known(shape[1:]))
            type_name, constructor = class_name, class_name
        elif layer.get("describe"):
            type_name = f"DescribedBlock{index}"
            source, result, attempts = generate_block(llm, str(layer["describe"]), type_name, shape[1:], dtype,
                                                      vocab or 2, known_secrets, log)
            described.append({"layer": index, "description": layer["describe"], "class": type_name,
                              "source": source, "attempts": attempts, "check": result})
            namespace: dict[str, Any] = {"__name__": f"mltrainer_block_{index}"}
            exec(compile(source, f"{type_name}.py", "exec"), namespace)  # noqa: S102 - gated in a child first
            cls = namespace[type_name]
            params = fill_kwargs(cls, params, block_known(shape[1:]))
            constructor = type_name
        else:
            raise SpecError(f"architecture.layers[{index}] needs one of type, module_path or describe.")
        try:
            module = cls(**params)
        except Exception as err:  # noqa: BLE001 - torch's messages name the bad argument
            raise SpecError(f"architecture.layers[{index}] ({type_name}) cannot be built with {params}: "
                            f"{type(err).__name__}: {first_line(err)}.") from None
        try:
            with torch.no_grad():
                module.eval()
                x = call(module, type_name if layer.get("type") else "", x)
        except Exception as err:  # noqa: BLE001
            raise SpecError(f"architecture.layers[{index}] ({type_name}) fails on an input of shape {shape}: "
                            f"{type(err).__name__}: {first_line(err)}.") from None
        attr = str(layer.get("name") or f"{type_name.lower()}{index}")
        if not attr.isidentifier() or attr in used:
            raise SpecError(f"architecture.layers[{index}] name '{attr}' must be a unique Python identifier.")
        used.add(attr)
        arguments = ", ".join(f"{k}={literal(v)}" for k, v in params.items())
        lines_init.append(f"        self.{attr} = {constructor}({arguments})  # {shape[1:]} -> {list(x.shape[1:])}")
        template = CALLS.get(type_name, "{attr}(x)") if layer.get("type") else "{attr}(x)"
        lines_forward.append(f"        x = self.{template.format(attr=attr)}")
        if not layer.get("type") and template == "{attr}(x)":
            lines_forward[-1] = f"        x = first(self.{attr}(x))"
        rows.append({"name": attr, "type": type_name, "input_shape": shape[1:], "output_shape": list(x.shape[1:]),
                     "parameters": int(sum(p.numel() for p in module.parameters()))})
    source = render(lines_init, lines_forward, files, described, input_shape, dtype)
    return Assembled(source=source, class_name="Net", rows=rows, described=described)


def render(init: list[str], forward: list[str], files: dict[Path, str], described: list[dict[str, Any]],
           input_shape: list[int], dtype: str) -> str:
    """The readable module: imports, copied user blocks, described blocks, then class Net."""
    future = False
    parts: list[str] = []
    for path in files:
        text = clean_source(path.read_text())
        if "from __future__ import annotations" in text:
            future = True
        text = "\n".join(line for line in text.splitlines() if not line.startswith("from __future__"))
        parts.append(f"# --- user block file {path.name} (copied) " + "-" * max(3, 60 - len(path.name)) + f"\n\n{text.strip()}\n")
    for block in described:
        parts.append(f"# --- layer {block['layer']}: described as {block['description']!r} (written by the LLM; it passed "
                     f"the gates: parse, imports, no credential, forward on the real shape) ---\n\n{block['source'].strip()}\n")
    kind = "token ids (int64)" if dtype == "long" else "float32"
    header = ('"""A model assembled by mltrainer from a declarative layer list (architecture.layers).\n\n'
              f"Input: {kind} [batch, {', '.join(str(s) for s in input_shape)}]. In-sizes were inferred by a dry\n"
              'forward pass; the comments show each layer\'s input and output shape (without the batch)."""\n\n')
    body = "\n\n".join(p.strip("\n") for p in parts)
    net = ("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n" + "\n".join(init)
           + "\n\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n" + "\n".join(forward)
           + "\n        return x\n")
    helper = ('def first(value):\n    """A block returning (output, extra) passes its output on."""\n'
              "    return value[0] if isinstance(value, (tuple, list)) else value\n")
    imports = ("from __future__ import annotations\n\n" if future else "") + "import torch\nimport torch.nn as nn\n"
    return header + imports + "\n\n" + (body + "\n\n\n" if body else "") + helper + "\n\n" + net
