"""The image model family: a CLI run end to end (folder of PNGs → CNN → export → predict), --resume
continuing the epoch counter on a regression set, the measured architecture summary, the config
rules and refusals, and predict.py's one-sentence errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mltrainer.app import app
from orchestrator.errors import SpecError, UnsupportedError
from tests.conftest import REPO
from tools.models.image import IMAGE_MODELS, cnn_stages

runner = CliRunner()
COLORS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 200)}


def make_class_folder(root: Path, per_class: int = 24, seed: int = 0) -> Path:
    """Noisy 8×8 squares whose color is the class, with a brighter blob at a varying place."""
    rng = np.random.default_rng(seed)
    for name, color in COLORS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(color)[None, None, :] + rng.normal(0, 25, (8, 8, 3)), 0, 255)
            x, y = rng.integers(0, 6, 2)
            pixels[y:y + 2, x:x + 2] = 255
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:02d}.png")
    return root


def make_regression_table(root: Path, count: int = 80, seed: int = 1) -> Path:
    """Grayscale images whose brightness is the target; a CSV of path,value beside them."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    lines = ["path,value"]
    for i in range(count):
        value = float(rng.uniform(0, 10))
        pixels = np.clip(20 + value * 20 + rng.normal(0, 8, (8, 8)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"{i:03d}.png")
        lines.append(f"img/{i:03d}.png,{value:.4f}")
    (root / "values.csv").write_text("\n".join(lines) + "\n")
    return root / "values.csv"


def prepare(source: Path, out: Path, task_type: str) -> dict[str, Any]:
    from tools.prep.base import DataOptions
    from tools.prep.image import IMAGES

    options = DataOptions(task_type)
    inspection = IMAGES.inspect(source, options)
    IMAGES.prepare(source, options, {**inspection.report, "roles": inspection.roles}, out)
    meta: dict[str, Any] = json.loads((out / "meta.json").read_text())
    return meta


def show(job: str) -> dict[str, Any]:
    result = runner.invoke(app, ["show", job, "--json"])
    assert result.exit_code == 0, result.output
    detail: dict[str, Any] = json.loads(result.output)
    return detail


# ------------------------------------------------------------------------------------ end to end
def test_cli_run_exports_and_predicts(tmp_path: Path) -> None:
    data = make_class_folder(tmp_path / "shapes")
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: tell the colour of each square\ntask_type: image_classification\n"
                    "data:\n  source: shapes\nhyperparameters: {epochs: 3, batch_size: 8, patience: 3}\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "colors"])
    assert result.exit_code == 0, result.output
    detail = show("colors")
    assert len(detail["stages"]) == 9 and all(s["status"] in ("done", "skipped") for s in detail["stages"])
    metrics = json.loads((Path(detail["artifacts"]["run_dir"]) / "metrics.json").read_text())
    assert metrics["primary_metric"] == "accuracy" and metrics["baseline"]["name"] == "majority class"
    assert metrics["test"]["accuracy"] > metrics["baseline"]["accuracy"]
    assert detail["test_metrics"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])  # export scored the same
    export = Path(detail["artifacts"]["export_dir"])
    for name in ("predict.py", "model.safetensors", "model.json", "image_nets.py", "meta.json", "README.md"):
        assert (export / name).is_file(), name
    assert "Pillow" in (export / "requirements.txt").read_text()
    traced = json.loads((export / "torchscript.json").read_text())  # TorchScript, checked against eager torch
    assert traced["torchscript"] == "model.torchscript.pt" and traced["max_abs_diff"] <= 1e-4
    import torch

    scripted = torch.jit.load(str(export / "model.torchscript.pt"))
    assert scripted(torch.zeros(2, *json.loads((export / "meta.json").read_text())["shape"])).shape[0] == 2

    images = sorted((data / "red").glob("*.png"))[:3] + sorted((data / "blue").glob("*.png"))[:2]
    listing = tmp_path / "new" / "list.txt"
    listing.parent.mkdir()
    listing.write_text("\n".join(str(Path("..") / p.relative_to(tmp_path)) for p in images) + "\n\n")
    out = tmp_path / "pred.csv"
    result = runner.invoke(app, ["predict", "colors", "--input", str(listing), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = out.read_text().splitlines()
    assert rows[0] == "path,prediction" and len(rows) == 1 + len(images)
    assert {row.split(",")[1] for row in rows[1:]} <= set(COLORS)

    listing.write_text("missing.png\n")
    result = runner.invoke(app, ["predict", "colors", "--input", str(listing), "--output", str(out)])
    assert result.exit_code != 0 and "missing files (first: 'missing.png')" in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------ resume
def test_resume_continues_the_epoch_counter_and_regression_exports(tmp_path: Path) -> None:
    from agents.codegen import render_training_script

    meta = prepare(make_regression_table(tmp_path / "src"), tmp_path / "data", "image_regression")
    config = IMAGE_MODELS.config("image_regression", meta, {"batch_size": 16}, None)
    architecture = IMAGE_MODELS.architecture("image_regression", config, meta)
    script = tmp_path / "train.py"
    script.write_text(render_training_script("image", IMAGE_MODELS.template_values(
        "image_regression", config, architecture, "resume-test")))
    out = tmp_path / "out"
    base = [sys.executable, str(script), "--data-dir", str(tmp_path / "data"), "--out-dir", str(out), "--device", "cpu"]

    def epochs(*extra: str) -> list[int]:
        run = subprocess.run(base + list(extra), capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert run.returncode == 0, run.stderr
        lines = [json.loads(l[7:]) for l in run.stdout.splitlines() if l.startswith("METRIC ")]
        assert {"loss", "grad_norm", "lr", "samples_per_sec"} <= set(lines[0])
        return [m["epoch"] for m in lines if m["split"] == "val"]

    assert epochs("--epochs", "1") == [1]
    assert epochs("--epochs", "3", "--resume") == [2, 3]  # carries on, not from 0
    checkpoint = json.loads((out / "checkpoint.json").read_text())
    assert checkpoint["state"]["epoch"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["primary_metric"] == "r2"
    assert set(metrics["test"]) == {"r2", "rmse", "mae"} and metrics["baseline"]["name"] == "training mean"

    staging = tmp_path / "export"
    staging.mkdir()
    for name in ("model.safetensors", "model.json"):
        (staging / name).write_bytes((out / name).read_bytes())
    test = IMAGE_MODELS.export("image_regression", out, tmp_path / "data", staging)
    assert test["rmse"] == pytest.approx(metrics["test"]["rmse"], rel=1e-4)


# ------------------------------------------------------------------------------------ config and summary
META = {"task": "classification", "shape": [3, 32, 32], "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
        "n_classes": 4, "classes": ["a", "b", "c", "d"], "splits": {"train": 500, "val": 100, "test": 100}}


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_architecture_summary_is_measured(arch: str) -> None:
    config = IMAGE_MODELS.config("image_classification", META, {"arch": arch}, None)
    assert config["task_type"] == "image_classification" and config["arch"] == arch
    architecture = IMAGE_MODELS.architecture("image_classification", config, META)
    candidate = architecture["candidates"][0]
    summary = candidate["summary"]
    assert candidate["name"] == arch and candidate["parameters"] == summary["total_parameters"] > 0
    assert summary["output_shape"] == [2, 4] and summary["input_shape"] == [2, 3, 32, 32]
    assert all("output_shape" in layer and "type" in layer for layer in summary["layers"])
    if arch == "cnn":
        assert any(layer["type"] == "Conv2d" for layer in summary["layers"]) and config["augment"]


def test_config_rules_locked_values_and_refusals() -> None:
    assert [cnn_stages(s) for s in (8, 16, 32, 64, 256)] == [2, 3, 4, 5, 5]
    digits = {**META, "shape": [1, 8, 8], "image_size": 8}
    config = IMAGE_MODELS.config("image_classification", digits, {"lr": 0.01, "lr_scheduler": "plateau"}, 60)
    assert config["lr"] == 0.01 and config["scheduler"] == "plateau" and config["time_budget"] == 60.0
    assert not config["augment"] and config["layers"] == 2 and "lr_scheduler" in config["locked"]
    with pytest.raises(UnsupportedError, match="timm/transformers"):
        IMAGE_MODELS.config("image_classification", META, {"backbone": "resnet18"}, None)
    with pytest.raises(SpecError, match="cnn, mlp"):
        IMAGE_MODELS.config("image_classification", META, {"arch": "vit"}, None)
    with pytest.raises(SpecError, match="hyperparameter 'optimizer' must be one of .* for image models, got 'lion'"):
        IMAGE_MODELS.config("image_classification", META, {"optimizer": "lion"}, None)
    with pytest.raises(UnsupportedError):
        IMAGE_MODELS.config("object_detection", META, {}, None)


# ------------------------------------------------------------------------------------ predict.py inputs
def test_predict_reads_paths_folders_and_csv_and_refuses_bad_input(tmp_path: Path) -> None:
    from tools.models.base import load_predict_module

    shutil_copy = (REPO / "tools" / "templates" / "image" / "predict.py").read_text()
    (tmp_path / "predict.py").write_text(shutil_copy)
    predict = load_predict_module(tmp_path)
    folder = make_class_folder(tmp_path / "imgs", per_class=2)
    assert [name for name, _ in predict.read_inputs(str(folder))][:2] == ["blue/00.png", "blue/01.png"]
    (tmp_path / "table.csv").write_text("Image,note\nimgs/red/00.png,a\n")
    assert predict.read_inputs(str(tmp_path / "table.csv"))[0][1] == str(tmp_path / "imgs/red/00.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"could not be decoded .*; replace or remove it\.$"):
        predict.decode(str(tmp_path / "broken.png"), "RGB", 8)
    (tmp_path / "nocol.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="has no image path column"):
        predict.read_inputs(str(tmp_path / "nocol.csv"))
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="lists no image paths"):
        predict.read_inputs(str(tmp_path / "empty.txt"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        predict.read_inputs(str(tmp_path / "empty_dir"))


def test_a_model_that_cannot_be_traced_still_exports(tmp_path: Path) -> None:
    import torch

    from tools.models.base import export_torchscript

    class DataDependent(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x.sum().item()  # a Python number from the data: tracing bakes it in

    result = export_torchscript(DataDependent(), torch.ones(3, 2), tmp_path / "m.pt", check=torch.ones(4, 2) * 0.5)
    assert result["torchscript"] is None and "differ" in result["reason"] and not (tmp_path / "m.pt").exists()
    ok = export_torchscript(torch.nn.Linear(2, 1), torch.ones(3, 2), tmp_path / "lin.pt", check=torch.randn(5, 2))
    assert ok["torchscript"] == "lin.pt" and (tmp_path / "lin.pt").is_file() and ok["max_abs_diff"] <= 1e-4
