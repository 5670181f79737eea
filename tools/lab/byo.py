"""Bring your own model: a user's ``path/file.py:Class`` (or a module the lab wrote) trained by a
family's own template.

The model's module is copied into the job folder and embedded verbatim in the generated train.py
(and in the nets file the export ships), where it is loaded as a module of its own, so its names
never clash with the template's and the script stays standalone and resumable. Sizes known from
the data (input features, channels, classes, vocabulary…) fill the constructor arguments the class
names; the spec's ``kwargs`` fill the rest. Each family wraps the net in its contract: tabular
nets take the float feature matrix [N, F], image nets normalised pixels [N, C, H, W], text nets
token ids [N, L]; all return [N, outputs].
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, UnsupportedError

TARGET = re.compile(r"^(?P<path>.+\.py):(?P<name>[A-Za-z_]\w*)$")
#: Families that train a custom model, and the file name their export ships the nets under.
NETS_NAMES: dict[str, str] = {"tabular": "custom_nets.py", "image": "image_nets.py",
                              "text_classifier": "text_classifier_nets.py"}
#: Where the lab keeps a job's model files (model.py: the model's module; nets.py: family adapter).
MODEL_FOLDER = "model"


def parse_target(text: str, base: Path | None = None) -> tuple[Path, str]:
    """'path/file.py:Class' → (absolute path, class name); relative paths are read from ``base``."""
    match = TARGET.match(text.strip())
    if not match:
        raise SpecError(f"'{text}' is not FILE.py:Class; write e.g. models/net.py:MyNet.")
    path = Path(match["path"]).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return path.resolve(), match["name"]


def load_class(path: Path, name: str) -> Any:
    """Import ``path`` as a module of its own and return its ``nn.Module`` subclass ``name``."""
    import torch.nn as nn

    if not path.is_file():
        raise SpecError(f"The model file {path} does not exist; check the path in FILE.py:Class.")
    key = "mltrainer_user_" + hashlib.sha256(str(path).encode() + path.read_bytes()).hexdigest()[:12]
    module = sys.modules.get(key)
    if module is None:
        spec = importlib.util.spec_from_file_location(key, path)
        if spec is None or spec.loader is None:
            raise SpecError(f"{path} cannot be imported as a Python module.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # noqa: BLE001 - the user's code fails in many ways; one sentence for each
            del sys.modules[key]
            raise SpecError(f"Importing {path.name} failed ({type(err).__name__}: {first_line(err)}); "
                            "fix the file and run again.") from None
    cls = getattr(module, name, None)
    if cls is None:
        found = sorted(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == module.__name__)
        hint = f"; it defines {', '.join(found)}" if found else "; it defines no nn.Module subclass"
        raise SpecError(f"{path.name} has no class '{name}'{hint}.")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise SpecError(f"{path.name}:{name} is not a torch.nn.Module subclass.")
    return cls


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:240] if text else ""


def fill_kwargs(cls: Any, kwargs: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """The spec's kwargs plus every known size the constructor names and the spec did not set."""
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    filled = dict(kwargs)
    for key, value in known.items():
        if key in accepted and key not in filled:
            filled[key] = value
    return filled


def instantiate(cls: Any, kwargs: dict[str, Any], known: dict[str, Any], what: str) -> Any:
    filled = fill_kwargs(cls, kwargs, known)
    try:
        return cls(**filled)
    except Exception as err:  # noqa: BLE001
        raise SpecError(f"Building {what} with {sorted(filled)} failed ({type(err).__name__}: {first_line(err)}); "
                        "set the missing constructor arguments under kwargs/params.") from None


# -- what each family knows from the data --------------------------------------------------------

def family_of(family_name: str) -> str:
    if family_name not in NETS_NAMES:
        raise UnsupportedError(f"A custom model (architecture: in the spec) trains tabular, image and text "
                               f"classification tasks in this version, not the {family_name} family; remove "
                               "'architecture' to use the built-in models.")
    return family_name


def data_shape(family: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """What the net sees and must return: input shape (no batch), dtype, outputs, the known sizes."""
    if family == "tabular":
        n_in = int(meta["n_features"])
        n_out = int(meta.get("n_classes") or 2) if config.get("task") == "classification" else 1
        return {"input_shape": [n_in], "dtype": "float", "outputs": n_out, "known": tabular_known(n_in, n_out)}
    if family == "image":
        channels, size = int(meta["shape"][0]), int(meta["shape"][-1])
        regression = config.get("task") == "regression"
        n_out = 1 if regression else int(meta.get("n_classes") or len(meta.get("classes") or []))
        return {"input_shape": [channels, size, size], "dtype": "float", "outputs": n_out,
                "known": image_known(channels, size, n_out)}
    tokenizer = meta.get("tokenizer") or {}
    vocab, length = int(tokenizer["vocab_size"]), int(meta["max_length"])
    n_out, pad = len(meta["classes"]), int(tokenizer.get("pad_id", 0))
    return {"input_shape": [length], "dtype": "long", "outputs": n_out, "vocab_size": vocab,
            "known": text_known(vocab, n_out, length, pad)}


def tabular_known(n_in: int, n_out: int) -> dict[str, Any]:
    return {**dict.fromkeys(("in_features", "n_features", "input_dim", "in_dim", "n_inputs"), n_in),
            **dict.fromkeys(("out_features", "n_outputs", "n_classes", "num_classes", "output_dim", "out_dim"), n_out)}


def image_known(channels: int, size: int, n_out: int) -> dict[str, Any]:
    return {**dict.fromkeys(("in_channels", "channels", "n_channels"), channels), "image_size": size,
            "input_shape": [channels, size, size],
            **dict.fromkeys(("n_classes", "num_classes", "n_outputs", "out_features"), n_out)}


def text_known(vocab: int, n_out: int, length: int, pad: int) -> dict[str, Any]:
    return {"vocab_size": vocab, "max_length": length, "seq_len": length, "pad_id": pad, "padding_idx": pad,
            **dict.fromkeys(("n_classes", "num_classes", "n_outputs", "out_features"), n_out)}


def example_input(shape: list[int], dtype: str, batch: int = 2, vocab: int = 2) -> Any:
    """A dummy batch for dry runs: standard normal floats, or token ids in 1..vocab-1 (0 is padding)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    if dtype == "long":
        return torch.randint(1, max(2, vocab), (batch, *shape), generator=generator)
    return torch.randn(batch, *shape, generator=generator)


def check_output(output: Any, batch: int, outputs: int, what: str) -> None:
    """A net must return one tensor [batch, outputs] (a trailing 1 may be left out for one output)."""
    import torch

    if not isinstance(output, torch.Tensor):
        raise SpecError(f"{what} returned {type(output).__name__}, not a tensor; return the logits/values tensor.")
    flat = output.reshape(output.shape[0], -1) if output.ndim else output
    if output.ndim == 0 or output.shape[0] != batch or flat.shape[1] != outputs:
        raise SpecError(f"{what} returned shape {list(output.shape)} for a batch of {batch}; it must return "
                        f"[{batch}, {outputs}] for this task.")
    if not torch.isfinite(output.float()).all():
        raise SpecError(f"{what} returned NaN or Inf on a dummy batch; check its initialisation.")


# -- the model's module, copied and embedded ---------------------------------------------------------

def clean_source(source: str) -> str:
    """The module without top-level ``if __name__ == "__main__":`` blocks (demo code must not run)."""
    tree = ast.parse(source)
    drop: set[int] = set()
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = source.splitlines()
    kept = [line for number, line in enumerate(lines, 1) if number not in drop]
    return "\n".join(kept).rstrip() + "\n"


def source_literal(text: str) -> str:
    """``text`` as a readable Python literal: a raw triple-quoted string where that is exact, else repr."""
    for quote in ("'''", '"""'):
        if quote not in text and not text.endswith(("\\", quote[0])):
            literal = f"r{quote}{text}{quote}"
            try:
                if ast.literal_eval(literal) == text:
                    return literal
            except (SyntaxError, ValueError):
                pass
    return repr(text)


ADAPTER_COMMON = '''
# -----------------------------------------------------------------------------
# Custom model ({origin}). Its module is kept verbatim in CUSTOM_MODEL_SOURCE (the same text as the
# job's model/model.py) and loaded as a module of its own, so its names never clash with this file's.
# The class is built with CUSTOM_MODEL["kwargs"]; sizes known from the data fill the constructor
# arguments it names and the kwargs leave open.

import hashlib as _lab_hashlib
import inspect as _lab_inspect
import sys as _lab_sys
import types as _lab_types

CUSTOM_MODEL_SOURCE = {source}
CUSTOM_MODEL = {spec}


def load_custom_module():
    """The model's module, executed once per process (registered, so dataclasses and pickling work)."""
    name = "mltrainer_custom_" + _lab_hashlib.sha256(CUSTOM_MODEL_SOURCE.encode()).hexdigest()[:12]
    if name not in _lab_sys.modules:
        module = _lab_types.ModuleType(name)
        module.__file__ = CUSTOM_MODEL["file"]
        _lab_sys.modules[name] = module
        try:
            exec(compile(CUSTOM_MODEL_SOURCE, CUSTOM_MODEL["file"], "exec"), module.__dict__)
        except BaseException:
            del _lab_sys.modules[name]
            raise
    return _lab_sys.modules[name]


def build_custom_model(known: dict) -> nn.Module:
    """The custom class with the spec's kwargs, plus the known sizes its constructor names."""
    cls = getattr(load_custom_module(), CUSTOM_MODEL["class"])
    kwargs = dict(CUSTOM_MODEL["kwargs"])
    accepted = _lab_inspect.signature(cls).parameters
    for key, value in known.items():
        if key in accepted and key not in kwargs:
            kwargs[key] = value
    return cls(**kwargs)
'''

ADAPTERS: dict[str, str] = {
    "tabular": '''

def custom_known(n_in: int, n_out: int) -> dict:
    return {{**dict.fromkeys(("in_features", "n_features", "input_dim", "in_dim", "n_inputs"), n_in),
            **dict.fromkeys(("out_features", "n_outputs", "n_classes", "num_classes", "output_dim", "out_dim"), n_out)}}


class CustomTabularModel(nn.Module):
    """Float features [N, F] (the fitted transform's output) → the custom net → [N, outputs]."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.net = build_custom_model(custom_known(n_in, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.reshape(out.shape[0], -1)


def build_custom(n_in: int, n_out: int) -> nn.Module:
    return CustomTabularModel(n_in, n_out)
''',
    "image": '''

_family_build_model = build_model


class CustomImageModel(nn.Module):
    """Pixels 0-255 → normalised (the training split's statistics) → the custom net → logits, or
    (regression) values in the target's own units."""

    def __init__(self, spec: dict):
        super().__init__()
        channels, size = int(spec["channels"]), int(spec["image_size"])
        n_out = int(spec["n_outputs"])
        self.regression = spec["task"] == "regression"
        self.normalize = Normalize(spec["mean"], spec["std"])
        self.net = build_custom_model({{**dict.fromkeys(("in_channels", "channels", "n_channels"), channels),
                                       "image_size": size, "input_shape": [channels, size, size],
                                       **dict.fromkeys(("n_classes", "num_classes", "n_outputs", "out_features"), n_out)}})
        if self.regression:
            self.register_buffer("target_mean", torch.tensor(float(spec.get("target_mean", 0.0))))
            self.register_buffer("target_std", torch.tensor(float(spec.get("target_std", 1.0)) or 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self.normalize(x))
        out = out.reshape(out.shape[0], -1)
        if self.regression:
            return out[:, 0] * self.target_std + self.target_mean
        return out


def build_model(spec: dict) -> nn.Module:
    """arch "custom" is the custom model; the catalogue's archs are built as before."""
    if spec.get("arch") == "custom":
        return CustomImageModel(spec)
    return _family_build_model(spec)
''',
    "text_classifier": '''

class CustomTextNet(nn.Module):
    """Token ids [N, L] (right-padded with pad_id) → the custom net → logits [N, n_classes]."""

    def __init__(self, vocab_size: int, n_classes: int, max_length: int, pad_id: int = 0, **_ignored):
        super().__init__()
        self.net = build_custom_model({{"vocab_size": vocab_size, "max_length": max_length, "seq_len": max_length,
                                       "pad_id": pad_id, "padding_idx": pad_id,
                                       **dict.fromkeys(("n_classes", "num_classes", "n_outputs", "out_features"), n_classes)}})

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.net(ids)
        return out.reshape(out.shape[0], -1)


NETS["custom"] = (CustomTextNet, {kind})
''',
}


def family_nets_source(family: str) -> str:
    """The family's own nets module (with its imports), which the adapter extends."""
    from tools.models import image, text

    if family == "image":
        return image.NETS.read_text()
    if family == "text_classifier":
        return text.NETS_FILE.read_text()
    return '"""Custom tabular net (pure torch): shipped next to predict.py, inlined into train.py."""\n\n' \
           "import torch\nimport torch.nn as nn\n"


def nets_module(family: str, model_source: str, class_name: str, kwargs: dict[str, Any], origin: str) -> str:
    """The full nets file of a custom model: the family's nets, the embedded model and its adapter."""
    spec = {"class": class_name, "kwargs": kwargs, "file": "model.py"}
    common = ADAPTER_COMMON.format(origin=origin, source=source_literal(model_source), spec=repr(spec))
    adapter = ADAPTERS[family].format(kind=repr(f"custom model ({origin})"))
    return family_nets_source(family).rstrip() + "\n\n" + common + adapter


def inline_source(nets: str) -> str:
    """A nets file as train.py inlines it: without ``from __future__`` (only legal at a file's top)."""
    return "\n".join(line for line in nets.splitlines() if not line.startswith("from __future__")).strip() + "\n"


def custom_nets(run_out: Path) -> Path | None:
    """The nets file the lab wrote for this run's job (run_out is JOB/run/out), or None: not custom."""
    path = Path(run_out).parent.parent / MODEL_FOLDER / "nets.py"
    return path if path.is_file() else None
