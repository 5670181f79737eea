"""A model summary measured by a real forward pass (hooks), never guessed: per-layer output shapes,
parameters and multiply-accumulates, total and trainable parameters, a FLOPs estimate and activation
memory (per example, per measured batch and at a chosen batch size).

Counting convention: a MAC is one multiply-accumulate; FLOPs = 2 × MACs. Only the layers that
dominate cost are counted, in closed form from the shapes seen in the forward pass (biases, norms,
activations and pooling count 0):

- Linear: MACs = in_features × (elements of the output)
- Conv1d/2d/3d: MACs = (C_in / groups) × prod(kernel) × (elements of the output), i.e. for Conv2d
  N × C_out × H_out × W_out × (C_in / groups) × k_h × k_w
- ConvTranspose: MACs = (elements of the input) × (C_out / groups) × prod(kernel)
- MultiheadAttention: N × (4·L·d² + 2·L²·d) (projections, scores, weighted sum; L = length, d = embed_dim)
- LSTM/GRU: gates × steps × (input_size + hidden_size) × hidden_size × num_layers (4 gates, 3 for GRU)

Activation memory is the sum of every hooked layer's output bytes: what a forward pass that keeps
activations for backward holds at once, roughly.
"""

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


def _nbytes(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    return 0


def _first_tensor_numel(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)) and value:
        return _first_tensor_numel(value[0])
    return 0


def _kernel(module: Any) -> int:
    kernel = 1
    for k in module.kernel_size:
        kernel *= k
    return kernel


def layer_macs(module: Any, inputs: tuple[Any, ...], output: Any) -> int:
    """Multiply-accumulates of one call of ``module`` (see the module docstring); 0 for the rest."""
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return module.in_features * _first_tensor_numel(output)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return (module.in_channels // module.groups) * _kernel(module) * _first_tensor_numel(output)
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) and inputs:
        return _first_tensor_numel(inputs[0]) * (module.out_channels // module.groups) * _kernel(module)
    if isinstance(module, nn.MultiheadAttention) and inputs:
        shape = _shape(inputs[0])
        if len(shape) == 3:
            batch, length, dim = (shape[0], shape[1], shape[2]) if module.batch_first else (shape[1], shape[0], shape[2])
            return batch * (4 * length * dim * dim + 2 * length * length * dim)
    if isinstance(module, (nn.LSTM, nn.GRU)) and inputs:
        gates = 4 if isinstance(module, nn.LSTM) else 3
        steps = _first_tensor_numel(inputs[0]) // max(1, module.input_size)
        return gates * steps * (module.input_size + module.hidden_size) * module.hidden_size * module.num_layers
    return 0


def summarize(model: Any, *example: Any, batch_size: int | None = None) -> dict[str, Any]:
    """Run ``model(*example)`` once in eval mode with hooks on every leaf module (and on attention).

    Per-example figures divide by the example's batch (its first dimension); ``batch_size`` adds the
    activation memory at that batch size (``activation_bytes_at_batch``)."""
    import torch

    layers: list[dict[str, Any]] = []
    macs = [0]
    activations = [0]

    def hook(name: str) -> Any:
        def record(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
            params = sum(p.numel() for p in module.parameters(recurse=False))
            count = int(layer_macs(module, inputs, output))
            layers.append({"name": name or type(module).__name__, "type": type(module).__name__,
                           "output_shape": _shape(output), "parameters": int(params), "macs": count})
            macs[0] += count
            activations[0] += _nbytes(output)
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if not list(m.children()) or type(m).__name__ == "MultiheadAttention"]
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
    measured = (_shape(example[0]) or [1])[0] if example else 1
    measured = max(1, int(measured)) if isinstance(measured, int) else 1
    per_example = activations[0] / measured
    summary = {
        "total_parameters": int(total),
        "trainable_parameters": int(trainable),
        "parameter_bytes": int(sum(p.numel() * p.element_size() for p in model.parameters())),
        "buffer_bytes": int(sum(b.numel() * b.element_size() for b in model.buffers())),
        "input_shape": _shape(example[0]) if example else [],
        "output_shape": _shape(output),
        "macs_per_batch": int(macs[0]),
        "macs_per_example": int(macs[0] // measured),
        "flops_per_batch": int(2 * macs[0]),
        "flops_per_example": int(2 * macs[0] // measured),
        "activation_bytes_per_batch": int(activations[0]),
        "activation_bytes_per_example": int(per_example),
        "layers": layers[:MAX_LAYERS_LISTED],
        "layers_total": len(layers),
    }
    if batch_size:
        summary["batch_size"] = int(batch_size)
        summary["activation_bytes_at_batch"] = int(per_example * batch_size)
    return summary


def human(number: float, unit: str = "") -> str:
    """1234567 → '1.23M' (k, M, G, T), for tables."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= scale:
            return f"{number / scale:.3g}{suffix}{unit}"
    return f"{number:g}{unit}"


def summary_lines(summary: dict[str, Any], title: str = "") -> list[str]:
    """The summary as plain text: one row per layer, then the totals."""
    rows = [("layer", "type", "output shape", "params", "MACs")]
    for layer in summary["layers"]:
        rows.append((layer["name"], layer["type"], "x".join(str(s) for s in layer["output_shape"]) or "-",
                     f"{layer['parameters']:,}", human(layer.get("macs", 0))))
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    lines = [title] if title else []
    for number, row in enumerate(rows):
        lines.append("  ".join(str(cell).ljust(widths[i]) if i < 3 else str(cell).rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    if summary["layers_total"] > len(summary["layers"]):
        lines.append(f"... {summary['layers_total'] - len(summary['layers'])} more layers")
    lines += [
        "",
        f"total parameters      {summary['total_parameters']:,} ({human(summary['parameter_bytes'], 'B')})",
        f"trainable parameters  {summary['trainable_parameters']:,}",
        f"input -> output       {summary['input_shape']} -> {summary['output_shape']}",
        f"MACs per example      {human(summary['macs_per_example'])} (FLOPs = 2 x MACs: {human(summary['flops_per_example'])})",
        f"activations/example   {human(summary['activation_bytes_per_example'], 'B')}",
    ]
    if "activation_bytes_at_batch" in summary:
        lines.append(f"activations at batch {summary['batch_size']}: {human(summary['activation_bytes_at_batch'], 'B')}")
    return lines
