"""
Compressed weights of an mltrainer export: packing, unpacking and the int8 runtime.

This file ships as ``compressed.py`` in every ``export/compressed/<method>/`` folder, next to:

- ``model.packed.safetensors`` — the compact weights: linear-layer weights as int8 codes (int8) or
  ternary digits packed five to a byte (ternary, 1.6 bits a weight), each with one float32 scale
  per output channel; every other tensor as it was;
- ``model.safetensors`` — the same weights dequantised to float32, so the family's predict.py loads
  them unchanged (rebuild it with ``python compressed.py`` if only the packed file was shipped);
- ``compression.json`` — the method, its settings and the runtime.

With the ``torch_dynamic_int8`` runtime, predict.py applies torch's dynamic int8 quantization to
the loaded model's Linear layers (int8 matmuls on the CPU); otherwise the dequantised weights run
as they are. Needs numpy and safetensors (torch only for that runtime).

    python compressed.py          # writes model.safetensors from model.packed.safetensors
"""

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PACKED = "model.packed.safetensors"
INFO = "compression.json"
INT8_MAX = 127
TRITS_PER_BYTE = 5  # 3**5 = 243 <= 256
DYNAMIC_INT8 = "torch_dynamic_int8"


def _rows(w: np.ndarray) -> np.ndarray:
    return w.reshape(w.shape[0], -1).astype(np.float64)


def int8_codes(w: np.ndarray) -> tuple:
    """Symmetric per-output-channel int8: codes in -127..127 and one scale per row (max |w| / 127)."""
    rows = _rows(w)
    scale = np.abs(rows).max(axis=1) / INT8_MAX
    scale = np.where(scale > 0, scale, 1.0)
    codes = np.clip(np.rint(rows / scale[:, None]), -INT8_MAX, INT8_MAX).astype(np.int8)
    return codes.reshape(w.shape), scale.astype(np.float32)


def ternary_codes(w: np.ndarray, threshold: float) -> tuple:
    """Ternary (1.58-bit) per output channel: scale = mean |w| of the row; an entry is ±1 where
    |w| > threshold × scale, else 0 (threshold 0.5 is BitNet b1.58's round-and-clip)."""
    rows = _rows(w)
    scale = np.abs(rows).mean(axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    trits = np.where(np.abs(rows) > threshold * scale[:, None], np.sign(rows), 0.0).astype(np.int8)
    return trits.reshape(w.shape), scale.astype(np.float32)


def dequantise(codes: np.ndarray, scale: np.ndarray, dtype=np.float32) -> np.ndarray:
    rows = codes.reshape(codes.shape[0], -1).astype(np.float64) * scale.astype(np.float64)[:, None]
    return rows.reshape(codes.shape).astype(dtype)


def pack_trits(trits: np.ndarray) -> np.ndarray:
    """{-1, 0, 1} → base-3 digits, five to a byte."""
    digits = (trits.ravel().astype(np.int64) + 1)
    digits = np.concatenate([digits, np.zeros((-len(digits)) % TRITS_PER_BYTE, np.int64)])
    powers = 3 ** np.arange(TRITS_PER_BYTE, dtype=np.int64)
    return (digits.reshape(-1, TRITS_PER_BYTE) * powers).sum(axis=1).astype(np.uint8)


def unpack_trits(packed: np.ndarray, shape: tuple) -> np.ndarray:
    values = packed.astype(np.int64)[:, None] // (3 ** np.arange(TRITS_PER_BYTE, dtype=np.int64)) % 3
    count = int(np.prod(shape)) if len(shape) else 1
    return (values.ravel()[:count] - 1).astype(np.int8).reshape(shape)


def pack(state: dict, method: str, names: list, threshold: float = 0.5) -> dict:
    """The packed tensors of ``state``: ``names`` (linear weights) compressed by ``method``."""
    out = {}
    for key, value in state.items():
        if key not in names:
            out[key] = value
        elif method == "int8":
            codes, scale = int8_codes(value)
            out[f"{key}::int8"], out[f"{key}::scale"] = codes, scale
        else:
            trits, scale = ternary_codes(value, threshold)
            out[f"{key}::trits"], out[f"{key}::scale"] = pack_trits(trits), scale
            out[f"{key}::shape"] = np.asarray(value.shape, dtype=np.int64)
    return out


def unpack_state(packed: dict, dtype=np.float32) -> dict:
    """Packed tensors → float tensors under their original names."""
    out = {}
    for key, value in packed.items():
        if "::" not in key:
            out[key] = value
            continue
        name, part = key.rsplit("::", 1)
        if part == "int8":
            out[name] = dequantise(value, packed[f"{name}::scale"], dtype)
        elif part == "trits":
            shape = tuple(int(s) for s in packed[f"{name}::shape"])
            out[name] = dequantise(unpack_trits(value, shape), packed[f"{name}::scale"], dtype)
    return out


def materialise(folder: str = HERE) -> str:
    """Write model.safetensors (float32) from model.packed.safetensors; returns its path."""
    from safetensors.numpy import load_file, save_file

    path = os.path.join(folder, "model.safetensors")
    save_file(unpack_state(load_file(os.path.join(folder, PACKED))), path)
    return path


def _info(folder: str) -> dict:
    with open(os.path.join(folder, INFO)) as f:
        return json.load(f)


def quantize_linear(model):
    """torch dynamic int8 quantization of the model's nn.Linear layers (per output channel), with
    the fused Transformer fast path turned off around its forward (that path reads float weights)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        quantized = quantize_dynamic(model.eval(), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    saved = []

    def before(module, args):
        saved.append(torch.backends.mha.get_fastpath_enabled())
        torch.backends.mha.set_fastpath_enabled(False)

    def after(module, args, output):
        torch.backends.mha.set_fastpath_enabled(saved.pop() if saved else True)

    quantized.register_forward_pre_hook(before)
    quantized.register_forward_hook(after)
    return quantized


def install(module, folder: str = HERE):
    """Make a family's predict module honour this folder's runtime: with ``torch_dynamic_int8``, the
    model its ``Predictor.load`` builds is quantized after the (dequantised) weights are loaded."""
    if _info(folder).get("runtime") != DYNAMIC_INT8:
        return module
    predictor = getattr(module, "Predictor", None)
    if predictor is None or getattr(predictor, "_mltrainer_int8", False):
        return module
    original = predictor.load.__func__

    def load(cls, *args, **kwargs):
        loaded = original(cls, *args, **kwargs)
        device = getattr(loaded, "device", "cpu")
        if str(device) == "cpu":  # int8 kernels are CPU kernels
            loaded.model = quantize_linear(loaded.model)
        return loaded

    predictor.load = classmethod(load)
    predictor._mltrainer_int8 = True
    return module


if __name__ == "__main__":
    print(f"wrote {materialise(HERE)}")
