"""ONNX (and TorchScript) exports: written only when onnxruntime reproduces torch on other inputs than
the exported ones (another batch size too), otherwise refused with the reason in exports.json; the
TorchScript-based exporter first, dynamo as the fallback; per family: CNN/detector, Transformer and
bag-of-words text classifiers, the forecasters, and the tabular MLP rebuilt from its numpy weights."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tools.models.base import TEMPLATES, export_checked, export_formats, export_onnx, load_predict_module


def run_onnx(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {name: array})[0]
    return out


def test_cnn_exports_with_a_dynamic_batch(tmp_path: Path) -> None:
    from tools.models.detector_nets import build_model

    torch.manual_seed(0)
    model = build_model({"channels": 1, "image_size": 16, "n_classes": 2, "hidden": 8, "layers": 2, "dropout": 0.0,
                         "mean": [0.4], "std": [0.2]}).eval()
    pixels = (torch.rand(8, 1, 16, 16) * 255).numpy()
    report = export_checked(model, pixels, tmp_path, ("pixels",), ("maps",))
    assert report["formats"] == ["safetensors", "torchscript", "onnx"] and report["onnx"]["exporter"] == "torchscript"
    assert json.loads((tmp_path / "exports.json").read_text()) == report
    other = (torch.rand(5, 1, 16, 16) * 255)
    got = run_onnx(tmp_path / "model.onnx", "pixels", other.numpy())
    with torch.no_grad():
        assert np.allclose(got, model(other).numpy(), atol=1e-4) and got.shape == (5, 6, 4, 4)
    scripted = torch.jit.load(str(tmp_path / "model.torchscript.pt"))
    assert torch.allclose(scripted(other), model(other), atol=1e-5)


@pytest.mark.parametrize("arch", ["transformer", "bow"])
def test_text_classifiers_export_and_padding_is_respected(tmp_path: Path, arch: str) -> None:
    from tools.models.text_classifier_nets import build_net

    torch.manual_seed(0)
    model = build_net(arch, vocab_size=60, n_classes=3, max_length=10, pad_id=0, d_model=16, n_heads=2, layers=2,
                      hidden=32, dropout=0.1).eval()
    ids = torch.randint(1, 60, (8, 10))
    ids[1, 4:] = 0
    ids[6, 2:] = 0
    report = export_checked(model, ids.numpy(), tmp_path, ("ids",), ("logits",))
    assert "onnx" in report["formats"], report["onnx"]
    # the Transformer's in-place padding mask defeats the TorchScript-based exporter; dynamo takes it
    assert report["onnx"]["exporter"] == ("dynamo" if arch == "transformer" else "torchscript")
    padded = torch.zeros(3, 10, dtype=torch.long)
    padded[:, :3] = torch.tensor([[5, 6, 7], [8, 9, 10], [11, 12, 13]])
    with torch.no_grad():
        assert np.allclose(run_onnx(tmp_path / "model.onnx", "ids", padded.numpy()), model(padded).numpy(), atol=1e-4)


def test_forecasters_export(tmp_path: Path) -> None:
    from tools.models.forecaster_nets import ARCHS, build_model

    windows = np.random.default_rng(0).normal(size=(8, 14, 2)).astype(np.float32)
    for arch in ARCHS:
        torch.manual_seed(0)
        model = build_model(arch, 14, 2, 3, season=7, hidden=8, layers=1).eval()
        report = export_checked(model, windows, tmp_path, ("windows",), ("forecast",))
        assert report["formats"] == ["safetensors", "torchscript", "onnx"], (arch, report)
        with torch.no_grad():
            expected = model(torch.from_numpy(windows[:2])).numpy()
        assert np.allclose(run_onnx(tmp_path / "model.onnx", "windows", windows[:2]), expected, atol=1e-4)


class DataDependent(torch.nn.Module):
    """A branch on a tensor's value: tracing bakes one side in, torch.export refuses it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.sum()) > 0:
            return x * 2
        return x - 100


def test_a_model_that_cannot_be_exported_is_refused_with_the_reason(tmp_path: Path) -> None:
    example, check = torch.ones(2, 3), -torch.ones(3, 3)
    report = export_formats(DataDependent(), example, check, tmp_path)
    assert report["formats"] == ["safetensors"]
    assert report["torchscript"]["torchscript"] is None and "differ from eager torch" in report["torchscript"]["reason"]
    reason = report["onnx"]["reason"]
    assert report["onnx"]["onnx"] is None and "torchscript exporter: onnxruntime outputs differ" in reason
    assert "dynamo exporter:" in reason and "\n" not in reason
    assert not (tmp_path / "model.onnx").exists() and not (tmp_path / "model.torchscript.pt").exists()


def test_without_onnxruntime_there_is_no_unchecked_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    result = export_onnx(torch.nn.Linear(3, 2), torch.zeros(2, 3), tmp_path / "model.onnx")
    assert result == {"onnx": None, "reason": "onnxruntime is not installed, so an ONNX file could not be checked"}
    assert not (tmp_path / "model.onnx").exists()


def test_tabular_mlp_is_rebuilt_from_its_weights_and_exported(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    from tools.models.tabular import export_model_formats

    rng = np.random.default_rng(0)
    staging, data = tmp_path / "export", tmp_path / "data"
    staging.mkdir(), data.mkdir()
    shutil.copy2(TEMPLATES / "tabular" / "predict.py", staging / "predict.py")
    save_file({"layers.0.weight": rng.normal(size=(8, 5)).astype(np.float32), "layers.0.bias": np.zeros(8, np.float32),
               "layers.1.weight": rng.normal(size=(3, 8)).astype(np.float32), "layers.1.bias": np.ones(3, np.float32)},
              str(staging / "model.safetensors"))
    info = {"kind": "mlp", "task": "classification", "n_classes": 3, "n_features": 5,
            "architecture": {"weights": ["layers.0", "layers.1"]}}
    (staging / "model.json").write_text(json.dumps(info))
    X = rng.normal(size=(20, 5)).astype(np.float32)
    np.save(data / "X_test.npy", X)
    predict = load_predict_module(staging)
    report = export_model_formats(predict, staging, data)
    assert report["formats"] == ["safetensors", "torchscript", "onnx"] and "transform.py" in report["input"]
    got = run_onnx(staging / "model.onnx", "features", X[10:])
    assert np.allclose(got, predict._mlp_raw(predict.load_model(str(staging)), X[10:]), atol=1e-4)

    (staging / "model.json").write_text(json.dumps({**info, "kind": "gbdt"}))
    report = export_model_formats(predict, staging, data)
    assert report["formats"] == ["safetensors"] and "not a torch model" in report["onnx"]["reason"]
