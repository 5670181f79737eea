"""Where the lab meets the pipeline.

At the architecture stage (:func:`apply_lab`) the spec's ``architecture:`` becomes a model module in
the job folder (``JOB/model/model.py``: the user's file copied, or the layer list written out as
Python) plus the family's nets file around it (``JOB/model/nets.py``), measured by a real forward
pass; the spec's ``optimizer:`` becomes the script's optimizer spec (a described optimizer is
written, checked and registered here). At codegen (:func:`template_hook`, called by each family's
``template_values``) the nets and the optimizer block are inlined into the family's own template,
so train.py stays one standalone, resumable file; at export the family ships ``JOB/model/nets.py``
in place of its own nets file (:func:`tools.lab.byo.custom_nets`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

from orchestrator.errors import SpecError, UnsupportedError
from tools.lab import byo

#: Families whose template builds its optimizer through the lab block when the spec has optimizer:.
OPTIMIZER_FAMILIES = ("tabular", "image", "text_classifier", "lm", "seq2seq", "token_tagger", "forecaster")
#: The config key each family's template reads the model choice from, set to "custom".
MODEL_KEYS = {"tabular": ("model",), "image": ("arch", "model"), "text_classifier": ("arch",)}


def wants_lab(spec: dict[str, Any]) -> bool:
    return bool(spec.get("architecture") or spec.get("optimizer"))


def apply_lab(context: Any, family_name: str, meta: dict[str, Any], architecture: dict[str, Any], llm: Any = None,
              log: Callable[..., None] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The architecture with the spec's custom model and optimizer in it, and the config changes."""
    from tools.vault import Vault

    known = Vault().values(context.job_id)
    config_updates: dict[str, Any] = {}
    section = context.spec.get("architecture") or {}
    if section.get("module") or section.get("layers"):
        architecture, config_updates = custom_architecture(context, family_name, meta, section, llm, known, log)
    if context.spec.get("optimizer"):
        from tools.lab.optimizers import resolve

        if family_name not in OPTIMIZER_FAMILIES:
            raise UnsupportedError(f"The optimizer: section applies to the torch families, not to {family_name}; "
                                   "remove it from the spec.")
        resolved = resolve(context.spec["optimizer"], llm, known, log)
        if architecture.get("custom"):
            check_groups(Path(architecture["custom"]["model_file"]), architecture["custom"], family_name, meta,
                         context.config, resolved)
        architecture = {**architecture, "optimizer": resolved}
    return architecture, config_updates


def custom_architecture(context: Any, family_name: str, meta: dict[str, Any], section: dict[str, Any], llm: Any,
                        known_secrets: list[str], log: Callable[..., None] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write JOB/model/{model,nets}.py, build the model once with hooks, and describe it."""
    from tools.model_summary import summarize

    family = byo.family_of(family_name)
    shape = byo.data_shape(family, context.config, meta)
    if section.get("input_shape") and list(section["input_shape"]) != shape["input_shape"]:
        raise SpecError(f"architecture.input_shape {section['input_shape']} does not match the prepared data, whose "
                        f"examples are {shape['input_shape']}; fix it or leave it out.")
    base = Path(context.spec_path).parent if context.spec_path else Path.cwd()
    folder = Path(context.job_dir) / byo.MODEL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    described: list[dict[str, Any]] = []
    if section.get("module"):
        path, class_name = byo.parse_target(section["module"], base)
        byo.load_class(path, class_name)  # imports cleanly and defines the class: one sentence if not
        source = path.read_text()
        kwargs = dict(section.get("kwargs") or {})
        origin, shown = "module", f"{path.name}:{class_name}"
    else:
        from tools.lab.layers import assemble

        assembled = assemble(section["layers"], shape["input_shape"], shape["dtype"], shape["outputs"], base, llm,
                             shape.get("vocab_size"), known_secrets, log)
        source, class_name, kwargs = assembled.source, assembled.class_name, {}
        described = [{k: v for k, v in d.items() if k != "source"} for d in assembled.described]
        origin, shown = "layers", f"{len(section['layers'])} declared layers"
    model_file = folder / "model.py"
    model_file.write_text(source)
    net = build_from_file(model_file, class_name, kwargs, shape["known"])
    example = byo.example_input(shape["input_shape"], shape["dtype"], vocab=shape.get("vocab_size") or 2)
    summary = summarize(net, example)
    import torch

    with torch.no_grad():
        net.eval()
        byo.check_output(net(example), 2, shape["outputs"], f"The custom model ({shown})")
    nets = byo.nets_module(family, source, class_name, kwargs, f"{origin}: {shown}")
    nets_file = folder / "nets.py"
    nets_file.write_text(nets)
    params = summary["total_parameters"]
    candidate = {"name": "custom", "kind": f"custom model ({shown})", "parameters": params, "input": shape["input_shape"],
                 "output": shape["outputs"], "summary": summary}
    custom = {"origin": origin, "source": shown, "class": class_name, "kwargs": kwargs, "model_file": str(model_file),
              "nets_file": str(nets_file), "sha256": hashlib.sha256(source.encode()).hexdigest(), "described": described}
    architecture = {"family": family, "candidates": [candidate], "custom": custom,
                    "selection": "the custom model from the spec (architecture:)",
                    "summary": f"custom model ({shown}), {params:,} params; written to {model_file}"}
    if log is not None:
        log(f"custom model from {shown}: {params:,} parameters; its module is {model_file}")
    return architecture, dict.fromkeys(MODEL_KEYS[family], "custom")


def build_from_file(model_file: Path, class_name: str, kwargs: dict[str, Any], known: dict[str, Any]) -> Any:
    """The class from the job's copy of the module (what train.py will run), built as train.py builds it."""
    cls = byo.load_class(model_file, class_name)
    import torch

    torch.manual_seed(0)
    return byo.instantiate(cls, kwargs, known, f"{model_file.name}:{class_name}")


def check_groups(model_file: Path, custom: dict[str, Any], family: str, meta: dict[str, Any], config: dict[str, Any],
                 resolved: dict[str, Any]) -> None:
    """Each param group's regex must match a parameter of the custom model (names as train.py sees them)."""
    from tools.lab.optim_runtime import lab_param_groups

    if not resolved.get("param_groups"):
        return
    shape = byo.data_shape(family, config, meta)
    net = build_from_file(model_file, custom["class"], custom["kwargs"], shape["known"])
    import torch.nn as nn

    wrapper = nn.Module()
    wrapper.add_module("net", net)  # every family's wrapper holds the custom net as .net
    try:
        lab_param_groups(wrapper, 1e-3, 0.0, resolved)
    except ValueError as err:
        raise SpecError(f"{err}.") from None


def template_hook(family: str, values: dict[str, Any], config: dict[str, Any], architecture: dict[str, Any]) -> dict[str, Any]:
    """Add the custom nets and the optimizer block to a family's template values (unchanged otherwise)."""
    custom = (architecture or {}).get("custom")
    if custom:
        nets = Path(custom["nets_file"])
        if not nets.is_file():
            raise SpecError(f"The custom model's nets file {nets} is gone; run the architecture stage again.")
        key = "custom_nets" if family == "tabular" else "nets_source"
        values = {**values, key: byo.inline_source(nets.read_text())}
    optimizer = (architecture or {}).get("optimizer")
    if optimizer:
        from tools.lab.optimizers import runtime_source

        values = {**values, "optimizer_lab": runtime_source(optimizer)}
    return values
