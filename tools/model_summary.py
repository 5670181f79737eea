"""A model summary measured by a real forward pass (hooks), never guessed: per-layer output shapes
and parameters, total and trainable parameters, a FLOPs estimate and activation memory."""

from __future__ import annotations

from typing import Any

MAX_LAYERS_LISTED = 60


def _shape(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (list, tuple)) and value:
        return _shape(value[0])
    if isinstance(value, dict) and value:
        return _shape(next(iter(value.values())))
    return []


def _numel(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(_numel(v) for v in value)
    if isinstance(value, dict):
        return sum(_numel(v) for v in value.values())
    return 0


def _flops(module: Any, inputs: tuple[Any, ...], output: Any) -> int:
    """Multiply-adds × 2 for the layers that dominate cost; 0 for the rest (norms, activations)."""
    import torch.nn as nn

    out_elems = _numel(output)
    if isinstance(module, nn.Linear):
        return 2 * module.in_features * out_elems
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        kernel = 1
        for k in module.kernel_size:
            kernel *= k
        return 2 * (module.in_channels // module.groups) * kernel * out_elems
    if isinstance(module, nn.MultiheadAttention) and inputs:
        shape = _shape(inputs[0])
        if len(shape) == 3:
            batch, length, dim = (shape[0], shape[1], shape[2]) if module.batch_first else (shape[1], shape[0], shape[2])
            return 2 * batch * (4 * length * dim * dim + 2 * length * length * dim)
    if isinstance(module, (nn.LSTM, nn.GRU)) and inputs:
        gates = 4 if isinstance(module, nn.LSTM) else 3
        steps = _numel(inputs[0]) // max(1, module.input_size)
        return 2 * gates * steps * (module.input_size + module.hidden_size) * module.hidden_size * module.num_layers
    return 0


def summarize(model: Any, *example: Any, batch_size: int | None = None) -> dict[str, Any]:
    """Run ``model(*example)`` once in eval mode with hooks on every leaf module."""
    import torch

    layers: list[dict[str, Any]] = []
    flops = [0]
    activations = [0]

    def hook(name: str) -> Any:
        def record(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
            params = sum(p.numel() for p in module.parameters(recurse=False))
            layers.append({"name": name, "type": type(module).__name__, "output_shape": _shape(output),
                           "parameters": int(params)})
            flops[0] += _flops(module, inputs, output)
            activations[0] += _numel(output) * 4
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if n and not list(m.children()) or type(m).__name__ == "MultiheadAttention"]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(*example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    batch = batch_size or (_shape(example[0])[0] if example and _shape(example[0]) else 1)
    return {
        "total_parameters": int(total),
        "trainable_parameters": int(trainable),
        "parameter_bytes": int(sum(p.numel() * p.element_size() for p in model.parameters())),
        "input_shape": _shape(example[0]) if example else [],
        "output_shape": _shape(output),
        "flops_per_batch": int(flops[0]),
        "flops_per_example": int(flops[0] // max(1, batch)),
        "activation_bytes_per_batch": int(activations[0]),
        "layers": layers[:MAX_LAYERS_LISTED],
        "layers_total": len(layers),
    }
