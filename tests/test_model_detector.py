"""The object detector family: a CLI run end to end (COCO folder → CenterNet → export with TorchScript
and ONNX → `mltrainer predict`), --resume carrying the epoch counter on, the pure-numpy mAP@0.5 on
hand-made cases, targets that decode back to their boxes, and the config refusals."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from examples.make_shapes import CLASSES, make_shapes
from mltrainer.app import app
from orchestrator.errors import SpecError, UnsupportedError
from tools.models.detector import DETECTOR
from tools.models.detector_nets import decode, make_targets, mean_average_precision

runner = CliRunner()


def show(job: str) -> dict[str, Any]:
    result = runner.invoke(app, ["show", job, "--json"])
    assert result.exit_code == 0, result.output
    detail: dict[str, Any] = json.loads(result.output)
    return detail


# ------------------------------------------------------------------------------------ end to end
def test_cli_run_beats_the_baseline_exports_and_predicts(tmp_path: Path) -> None:
    data = make_shapes(tmp_path / "shapes", count=120, size=32, seed=5)
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: find the squares, discs and triangles\ntask_type: object_detection\n"
                    "data:\n  source: shapes\nhyperparameters: {epochs: 6, batch_size: 16, hidden: 16}\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "boxes"])
    assert result.exit_code == 0, result.output
    detail = show("boxes")
    assert all(s["status"] in ("done", "skipped") for s in detail["stages"])
    candidate = detail["architecture"]["candidates"][0]
    assert candidate["name"] == "centernet" and candidate["output"] == [len(CLASSES) + 4, 8, 8]
    assert candidate["parameters"] == candidate["summary"]["total_parameters"] > 0  # measured, not guessed
    metrics = json.loads((Path(detail["artifacts"]["run_dir"]) / "metrics.json").read_text())
    assert metrics["primary_metric"] == "map50" and metrics["baseline"]["name"] == "mean training box, majority class"
    assert metrics["test"]["map50"] > metrics["baseline"]["map50"] + 0.2
    assert detail["test_metrics"]["map50"] == pytest.approx(metrics["test"]["map50"], abs=1e-6)  # export scores the same

    export = Path(detail["artifacts"]["export_dir"])
    for name in ("predict.py", "model.safetensors", "model.json", "detector_nets.py", "meta.json", "README.md"):
        assert (export / name).is_file(), name
    formats = json.loads((export / "exports.json").read_text())
    assert formats["formats"] == ["safetensors", "torchscript", "onnx"], formats
    assert formats["onnx"]["max_rel_diff"] <= 1e-4
    import onnxruntime

    session = onnxruntime.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    maps = session.run(None, {"pixels": np.zeros((3, 3, 32, 32), dtype=np.float32)})[0]
    assert maps.shape == (3, len(CLASSES) + 4, 8, 8)  # the batch axis is dynamic

    images = sorted((data / "images").glob("*.png"))[:4]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in images) + "\n")
    out = tmp_path / "boxes.csv"
    result = runner.invoke(app, ["predict", "boxes", "--input", str(listing), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert {r["path"] for r in rows} == {str(p) for p in images}
    found = [r for r in rows if r["label"]]
    assert found and {r["label"] for r in found} <= set(CLASSES)
    for r in found:
        x1, y1, x2, y2 = (float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        assert 0 <= x1 < x2 <= 32 and 0 <= y1 < y2 <= 32 and 0.3 <= float(r["score"]) <= 1


# ------------------------------------------------------------------------------------ resume
def test_resume_continues_the_epoch_counter(tmp_path: Path) -> None:
    from agents.codegen import render_training_script
    from tools.prep.base import DataOptions
    from tools.prep.image import IMAGES

    source = make_shapes(tmp_path / "src", count=40, size=16, seed=1)
    options = DataOptions("object_detection")
    inspection = IMAGES.inspect(source, options)
    IMAGES.prepare(source, options, {**inspection.report, "roles": inspection.roles}, tmp_path / "data")
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    config = DETECTOR.config("object_detection", meta, {"batch_size": 8, "hidden": 8}, None)
    architecture = DETECTOR.architecture("object_detection", config, meta)
    script = tmp_path / "train.py"
    script.write_text(render_training_script("detector", DETECTOR.template_values(
        "object_detection", config, architecture, "resume-test")))
    assert "--compile" in script.read_text()
    base = [sys.executable, str(script), "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out"),
            "--device", "cpu"]

    def epochs(*extra: str) -> list[int]:
        run = subprocess.run(base + list(extra), capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert run.returncode == 0, run.stderr
        lines = [json.loads(l[7:]) for l in run.stdout.splitlines() if l.startswith("METRIC ")]
        assert {"loss", "heatmap_loss", "box_loss", "grad_norm", "lr", "samples_per_sec"} <= set(lines[0])
        return [m["epoch"] for m in lines if m["split"] == "val"]

    assert epochs("--epochs", "1") == [1]
    assert epochs("--epochs", "2", "--resume") == [2]  # carries on, not from 0
    assert json.loads((tmp_path / "out" / "checkpoint.json").read_text())["state"]["epoch"] == 2

    (tmp_path / "data" / "boxes_val.json").write_text(json.dumps([{"boxes": [[1, 1, 99, 2]], "labels": [0]}] * 10))
    bad = subprocess.run(base[:-2] + ["--out-dir", str(tmp_path / "out2"), "--smoke"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "error: boxes_val.json" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------ metric and decoding
def test_map50_on_hand_made_cases() -> None:
    truth = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}, {"boxes": [[5, 5, 15, 15], [20, 20, 30, 30]], "labels": [0, 1]}]
    perfect = [(np.array([[0, 0, 10, 10]]), np.array([0.9]), np.array([0])),
               (np.array([[5, 5, 15, 15], [20, 20, 30, 30]]), np.array([0.8, 0.7]), np.array([0, 1]))]
    assert mean_average_precision(perfect, truth, 3)["map50"] == pytest.approx(1.0)  # class 2 has no boxes: left out
    # a confident false positive ranked first halves class 0's precision at full recall
    wrong_first = [(np.array([[40, 40, 50, 50], [0, 0, 10, 10]]), np.array([0.99, 0.9]), np.array([0, 0])),
                   perfect[1]]
    result = mean_average_precision(wrong_first, truth, 2)
    assert result["per_class"][0] == pytest.approx(2 / 3) and result["per_class"][1] == pytest.approx(1.0)
    # a duplicate of a matched box is a false positive; IoU just under 0.5 is a miss
    shifted = [(np.array([[0, 0, 10, 10], [0, 0, 10, 10]]), np.array([0.9, 0.8]), np.array([0, 0])),
               (np.array([[9, 5, 19, 15]]), np.array([0.9]), np.array([0]))]  # IoU 6/14 with [5,5,15,15]
    assert mean_average_precision(shifted, truth[:1] + [{"boxes": [[5, 5, 15, 15]], "labels": [0]}], 1)["map50"] \
        == pytest.approx(0.5)
    assert mean_average_precision([(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], truth[:1], 1)["map50"] == 0.0


def test_targets_decode_back_to_their_boxes() -> None:
    import torch

    records = [{"boxes": [[4.0, 6.0, 20.0, 18.0], [24.0, 2.0, 31.0, 30.0]], "labels": [1, 0]}]
    heat, box, mask = make_targets(records, 2, 32, 4)
    assert heat.shape == (1, 2, 8, 8) and mask.sum() == 2 and heat.max() == 1.0
    logits = np.where(heat >= 1.0, 8.0, -8.0).astype(np.float32)  # a model that learnt the targets exactly
    out = torch.from_numpy(np.concatenate([logits, box], axis=1))
    boxes, scores, labels = decode(out, 2, 4, 32, min_score=0.5)[0]
    got = sorted(zip(labels.tolist(), np.round(boxes, 3).tolist()))
    assert got == [(0, [24.0, 2.0, 31.0, 30.0]), (1, [4.0, 6.0, 20.0, 18.0])]


# ------------------------------------------------------------------------------------ config
META = {"task": "detection", "shape": [3, 32, 32], "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
        "n_classes": 2, "classes": ["a", "b"], "splits": {"train": 100, "val": 20, "test": 20}}


def test_config_rules_locked_values_and_refusals() -> None:
    config = DETECTOR.config("object_detection", META, {"lr": 0.01, "lr_scheduler": "plateau", "epochs": 3}, 60)
    assert config["lr"] == 0.01 and config["scheduler"] == "plateau" and config["epochs"] == 3
    assert config["layers"] == 2 and config["time_budget"] == 60.0 and "epochs" in config["locked"]
    with pytest.raises(UnsupportedError, match="Pretrained detection backbones"):
        DETECTOR.config("object_detection", META, {"backbone": "facebook/detr-resnet-50"}, None)
    with pytest.raises(SpecError, match="below 2×2 cells"):
        DETECTOR.config("object_detection", META, {"layers": 5}, None)
    with pytest.raises(SpecError, match="centernet"):
        DETECTOR.config("object_detection", META, {"arch": "yolo"}, None)
