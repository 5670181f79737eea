"""Compression with quality gates: a tabular and a text job report size, latency and test metric per
variant; a variant that loses too much is rolled back; kept variants load and predict on their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mltrainer.app import app
from tests.conftest import OFFLINE_ENV
from tests.test_model_text import topic_frame

runner = CliRunner()


def separable_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Two informative features and a nuisance category: an MLP gets well above chance fast."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    shade = rng.choice(["light", "dark"], n)
    return pd.DataFrame({"a": a, "b": b, "shade": shade, "label": np.where(a + b > 0, "up", "down")})


def no_formats(model: Any, example: Any, check: Any, staging: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
    skipped = {"torchscript": None, "onnx": None, "reason": "skipped in this test"}
    return {"formats": ["safetensors"], "torchscript": skipped, "onnx": skipped}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A tabular MLP job whose ternary setting is far too aggressive, and a text job with the defaults."""
    work = tmp_path_factory.mktemp("compress")
    separable_frame().to_csv(work / "table.csv", index=False)
    topic_frame().to_csv(work / "texts.csv", index=False)
    (work / "tabular.yaml").write_text(yaml.safe_dump({
        "task": "predict the label", "data": {"source": "table.csv", "target": "label"},
        "hyperparameters": {"model": "mlp", "epochs": 8, "patience": 4, "hidden": 32, "lr": 0.01},
        # every ternary weight is zeroed (threshold 50 × mean |W|): the gate must roll it back
        "compress": {"methods": ["int8", "ternary"], "sparsity_threshold": 50, "calibration_steps": 0}}))
    (work / "text.yaml").write_text(yaml.safe_dump({
        "task": "classify the topic of each message", "task_type": "text_classification",
        "data": {"source": "texts.csv", "text": "message", "target": "topic"},
        "hyperparameters": {"epochs": 4, "patience": 2, "seed": 3, "arch": "transformer"},
        "compress": {"calibration_steps": 10}}))
    with pytest.MonkeyPatch.context() as mp:
        # TorchScript/ONNX exports of the full model are tested with their families; skipped here for speed
        mp.setattr("tools.models.base.export_formats", no_formats, raising=False)
        mp.setenv("MLTRAINER_HOME", str(work / "home"))
        mp.setenv("HOME", str(work))
        for key, value in OFFLINE_ENV.items():
            mp.setenv(key, value)
        results = {name: runner.invoke(app, ["run", str(work / f"{name}.yaml"), "--job-id", name])
                   for name in ("tabular", "text")}
        details = {name: json.loads(runner.invoke(app, ["show", name, "--json"]).output)
                   for name, r in results.items() if r.exit_code == 0}
    yield {"work": work, "results": results, "details": details}


def check_report(detail: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = detail["compression"]
    export = Path(detail["artifacts"]["export_dir"])
    assert report["full"]["size_bytes"] == (export / "model.safetensors").stat().st_size
    assert report["full"]["metric"] == pytest.approx(detail["test_metrics"][report["metric"]])
    assert report["floor"] == pytest.approx(report["retention"] * report["full"]["metric"])
    for row in report["variants"]:
        assert row["size_bytes"] > 0 and row["latency_ms_per_row"] > 0 and 0.0 <= row["metric"] <= 1.0
        assert row["size_bytes"] < report["full"]["size_bytes"]
        assert row["kept"] == (row["metric"] >= report["floor"])  # the gate, and nothing else, decides
        assert (export / "compressed" / row["method"]).is_dir() == row["kept"]
    card = (export / "README.md").read_text()
    assert "## Compression" in card and all(row["method"] in card for row in report["variants"])
    assert json.loads((export / "config.json").read_text())["compression"]["kept"] == report["kept"]
    return report


def test_tabular_int8_is_kept_and_a_too_aggressive_ternary_is_rolled_back(jobs: dict[str, Any]) -> None:
    from tools.models.base import load_predict_module

    assert jobs["results"]["tabular"].exit_code == 0, jobs["results"]["tabular"].output
    detail = jobs["details"]["tabular"]
    report = check_report(detail)
    assert report["metric"] == "accuracy" and report["full"]["metric"] > 0.8
    rows = {row["method"]: row for row in report["variants"]}
    assert rows["int8"]["kept"] and rows["int8"]["runtime"] == "dequantised"  # numpy predict: int8 weights, float math
    assert rows["int8"]["size_bytes"] < 0.6 * report["full"]["size_bytes"]
    assert not rows["ternary"]["kept"] and rows["ternary"]["zeros"] == 1.0
    assert "rolled back" in rows["ternary"]["reason"] and report["kept"] == ["int8"]
    # the kept variant is a loadable export of its own, scored exactly as reported
    export = Path(detail["artifacts"]["export_dir"])
    folder = export / "compressed" / "int8"
    test = pd.read_csv(Path(detail["data_paths"]["dir"]) / "test_rows.csv")
    predicted = load_predict_module(folder).predict_frame(folder, test.drop(columns=["label"]))
    assert float((predicted["label"] == test["label"]).mean()) == pytest.approx(rows["int8"]["metric"])
    info = json.loads((folder / "compression.json").read_text())
    assert info["method"] == "int8" and info["linear_weights"] == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]


def test_packed_weights_rebuild_the_loadable_ones(jobs: dict[str, Any], tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    from safetensors.numpy import load_file

    folder = Path(jobs["details"]["tabular"]["artifacts"]["export_dir"]) / "compressed" / "int8"
    copy = tmp_path / "int8"
    shutil.copytree(folder, copy)
    (copy / "model.safetensors").unlink()  # ship only the packed file: compressed.py restores the rest
    subprocess.run([sys.executable, "compressed.py"], cwd=copy, check=True, capture_output=True)
    rebuilt, shipped = load_file(str(copy / "model.safetensors")), load_file(str(folder / "model.safetensors"))
    assert set(rebuilt) == set(shipped) and all(np.array_equal(rebuilt[k], shipped[k]) for k in shipped)
    packed = load_file(str(folder / "model.packed.safetensors"))
    assert packed["layers.0.weight::int8"].dtype == np.int8 and packed["layers.0.weight::scale"].dtype == np.float32


def test_text_variants_report_and_run_int8_kernels(jobs: dict[str, Any], tmp_path: Path) -> None:
    import torch

    from tools.models.base import load_predict_module

    assert jobs["results"]["text"].exit_code == 0, jobs["results"]["text"].output
    detail = jobs["details"]["text"]
    report = check_report(detail)
    assert report["metric"] == "macro_f1" and [row["method"] for row in report["variants"]] == ["int8", "ternary"]
    rows = {row["method"]: row for row in report["variants"]}
    assert rows["int8"]["runtime"] == "torch_dynamic_int8" and "int8" in report["kept"]
    assert rows["ternary"]["calibration"]["steps"] == 10 and 0.0 < rows["ternary"]["zeros"] < 1.0
    for method in report["kept"]:
        folder = Path(detail["artifacts"]["export_dir"]) / "compressed" / method
        predictor = load_predict_module(folder).Predictor.load(str(folder))
        linears = [m for m in predictor.model.modules() if type(m).__name__ == "Linear"]
        quantized = [m for m in linears if "quantized" in type(m).__module__]
        assert bool(quantized) == (method == "int8")  # int8 kernels only in the int8 variant
        labels = predictor.predict(["the coach was angry at the referee", "we bake pizza with cheese"])
        assert len(labels) == 2 and set(labels) <= {"sport", "food", "tech"}
        if method == "ternary":  # the dequantised weights are exactly scale × {-1, 0, 1} per output row
            weight = predictor.model.head.weight.detach()
            ratio = weight / weight.abs().max(dim=1, keepdim=True).values.clamp_min(1e-12)
            assert torch.all(torch.isclose(ratio.abs(), torch.ones_like(ratio)) | (ratio == 0))


def test_packing_round_trips() -> None:
    from tools import compressed_runtime as rt

    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 13)).astype(np.float32)
    codes, scale = rt.int8_codes(w)
    assert np.abs(rt.dequantise(codes, scale) - w).max() <= scale.max() / 2 + 1e-7
    trits, tscale = rt.ternary_codes(w, 0.5)
    assert set(np.unique(trits)) <= {-1, 0, 1} and np.allclose(tscale, np.abs(w).mean(axis=1))
    assert np.array_equal(rt.unpack_trits(rt.pack_trits(trits), trits.shape), trits)
    assert rt.pack_trits(trits).nbytes == -(-w.size // 5)  # five weights a byte
    assert (rt.ternary_codes(w, 0.0)[0] != 0).all() and (rt.ternary_codes(w, 100.0)[0] == 0).all()
    packed = rt.pack({"w": w, "b": w[0]}, "ternary", ["w"], 0.5)
    restored = rt.unpack_state(packed)
    assert np.array_equal(restored["b"], w[0]) and np.allclose(restored["w"], trits * tscale[:, None])


def test_spec_section_is_validated(tmp_path: Path) -> None:
    from mltrainer.spec import load_spec
    from orchestrator.errors import SpecError

    path = tmp_path / "spec.yaml"
    path.write_text("task: t\ndata: {source: d.csv}\ncompress: {methods: [int4]}\n")
    with pytest.raises(SpecError, match="compress.methods"):
        load_spec(path)
    path.write_text("task: t\ndata: {source: d.csv}\ncompress: {retention: 1.5}\n")
    with pytest.raises(SpecError, match="compress.retention"):
        load_spec(path)
    path.write_text("task: t\ndata: {source: d.csv}\ncompress: true\n")
    spec, _ = load_spec(path)
    assert spec.compress is not None and spec.compress.methods == ["int8", "ternary"] and spec.compress.retention == 0.95
