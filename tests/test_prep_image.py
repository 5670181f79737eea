"""The image data family: every source layout, the split files it writes, and the bad inputs it refuses."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orchestrator.errors import DataError, SpecError
from tests.conftest import REPO
from tools.prep import family_for
from tools.prep import image as image_module
from tools.prep.base import MIN_ROWS, DataOptions
from tools.prep.image import IMAGES

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 210)}


def picture(color: tuple[int, int, int], index: int = 0, size: tuple[int, int] = (12, 10),
            mode: str = "RGB") -> Image.Image:
    """A colored rectangle with a small brighter square whose place varies per image (classes stay separable)."""
    image = Image.new("RGB", size, color)
    x, y = index % (size[0] - 3), index % (size[1] - 3)
    image.paste(tuple(min(255, c + 30) for c in color), (x, y, x + 3, y + 3))
    return image.convert(mode)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_folder(root: Path, per_class: int = 8, classes: tuple[str, ...] = ("red", "green", "blue"),
                mode: str = "RGB", suffix: str = "png") -> Path:
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            picture(COLORS[name], i, mode=mode).save(root / name / f"{i:03d}.{suffix}")
    return root


def run(path: Path, out: Path, task: str = "image_classification", **kwargs: Any) -> tuple[Any, Any]:
    options = DataOptions(task, **kwargs)
    inspection = IMAGES.inspect(path, options)
    prepared = IMAGES.prepare(path, options, {**inspection.report, "roles": inspection.roles}, out)
    return inspection, prepared


def assert_one_sentence(err: pytest.ExceptionInfo[DataError], *fragments: str) -> None:
    text = str(err.value)
    assert "Traceback" not in text and "\n" not in text and text.endswith((".", "?")), text
    for fragment in fragments:
        assert fragment in text, text


def load_split(out: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    return np.load(out / f"X_{split}.npy"), np.load(out / f"y_{split}.npy")


# ------------------------------------------------------------------------------------ layouts
def test_registry_and_lazy_import() -> None:
    assert family_for("object_detection") is IMAGES and IMAGES.name == "image"
    code = "import sys, tools.prep.image; assert 'PIL' not in sys.modules and 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_folder_layout(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data")
    (data / "notes.txt").write_text("not an image")
    inspection, prepared = run(data, tmp_path / "out")
    report = inspection.report
    assert report["layout"] == "folder" and report["rows"] == 24 and report["family"] == "image"
    assert report["classes"] == ["blue", "green", "red"]
    assert report["target_distribution"] == {"blue": 8, "green": 8, "red": 8}
    assert report["images"]["width"] == {"min": 12, "median": 12, "max": 12}
    assert report["images"]["height"]["median"] == 10 and report["images"]["modes"] == {"RGB": 24}
    assert report["images"]["formats"] == {"PNG": 24} and report["images"]["undecodable"] == 0
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["shape"] == [3, 11, 11] and meta["image_size"] == 11  # median side (12 + 10) / 2
    assert meta["files"]["train"] == {"X": "X_train.npy", "y": "y_train.npy"}
    assert sum(meta["splits"].values()) == 24 and meta["seed"] == 42 and meta["classes"] == ["blue", "green", "red"]
    for split in ("train", "val", "test"):
        X, y = load_split(tmp_path / "out", split)
        assert X.dtype == np.uint8 and X.shape[1:] == (3, 11, 11) and y.dtype == np.int64
        assert set(y.tolist()) == {0, 1, 2}  # stratified: every class in every split
        red = X[y == 2]
        assert red[:, 0].mean() > 150 and red[:, 2].mean() < 100  # class id 2 is the red folder
    for key in ("splits", "seed", "image_size", "channels", "mean", "std", "undecodable_skipped"):
        assert key in prepared.report
    assert Path(prepared.files["meta"]).is_file() and Path(prepared.files["dir"]) == tmp_path / "out"
    assert "train/val/test" in prepared.summary


def test_split_folders_are_read_through_and_pooled(tmp_path: Path) -> None:
    data = tmp_path / "archive" / "flowers"
    for split, n in (("train", 6), ("valid", 3), ("test", 3)):
        make_folder(data / split, per_class=n, classes=("red", "blue"))
    (data / "test" / "loose.png").write_bytes(png_bytes(picture(COLORS["red"])))
    inspection, prepared = run(tmp_path / "archive", tmp_path / "out")
    assert inspection.report["rows"] == 24 and inspection.report["classes"] == ["blue", "red"]
    assert inspection.report["source_splits"] == {"train": 12, "val": 6, "test": 6}
    assert any("re-split" in note for note in inspection.report["notes"])
    assert sum(prepared.report["splits"].values()) == 24


def test_path_table_classification(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    rows = []
    for i in range(30):
        name = ["red", "blue"][i % 2]
        picture(COLORS[name], i).save(tmp_path / "imgs" / f"{i}.png")
        path = str(tmp_path / "imgs" / f"{i}.png") if i == 0 else f"imgs/{i}.png"  # absolute paths work too
        rows.append({"id": i, "file": path, "kind": name})
    table = tmp_path / "labels.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    inspection, prepared = run(table, tmp_path / "out", target="kind")
    assert inspection.roles == {"image": "file", "target": "kind"}
    assert inspection.report["layout"] == "path_table" and inspection.report["rows"] == 30
    assert any("'file' holds the image file names" in note for note in inspection.report["notes"])
    assert prepared.report["classes"] == ["blue", "red"]


def test_path_table_regression_infers_columns(tmp_path: Path) -> None:
    rows = []
    for i in range(25):
        shade = 10 * i
        Image.new("L", (9, 9), shade).save(tmp_path / f"g{i}.png")
        rows.append({"image": f"g{i}.png", "brightness": shade / 255})
    table = tmp_path / "data.parquet"
    pd.DataFrame(rows).to_parquet(table)
    inspection, prepared = run(table, tmp_path / "out", task="image_regression")
    assert inspection.roles == {"image": "image", "target": "brightness"}
    assert inspection.report["target_stats"]["max"] == pytest.approx(240 / 255, abs=1e-6)
    assert prepared.report["channels"] == 1 and prepared.report["image_size"] == 9
    X, y = load_split(tmp_path / "out", "train")
    assert y.dtype == np.float32 and X.shape[1:] == (1, 9, 9)
    assert np.allclose(X[:, 0, 4, 4] / 255, y, atol=0.01)


def test_pixel_table_digits(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=digits.feature_names)
    frame["target"] = digits.target
    table = tmp_path / "digits.csv"
    frame.to_csv(table, index=False)
    inspection, prepared = run(table, tmp_path / "out")
    report = inspection.report
    assert report["layout"] == "pixel_table" and report["rows"] == 1797 and report["pixel_range"] == "0-16"
    assert report["classes"] == list(range(10)) and inspection.roles == {"target": "target"}
    assert prepared.report["image_size"] == 8 and prepared.report["channels"] == 1
    X = np.concatenate([np.load(tmp_path / "out" / f"X_{s}.npy") for s in ("train", "val", "test")])
    assert X.shape == (1797, 1, 8, 8) and X.max() == 255 and X.min() == 0
    X_train, y_train = load_split(tmp_path / "out", "train")
    row = int(json.loads((tmp_path / "out" / "images.json").read_text())["train"][0].split()[1]) - 1
    assert X_train[0].reshape(-1).tolist() == np.rint(digits.data[row] * 255 / 16).astype(int).tolist()
    assert y_train[0] == digits.target[row] and y_train.dtype == np.int64


def test_pixel_table_mnist_style_scale(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(30, 16))
    frame = pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(16)])
    frame.insert(0, "label", np.arange(30) % 3)
    table = tmp_path / "train.csv"
    frame.to_csv(table, index=False)
    inspection, prepared = run(table, tmp_path / "out", params={"image_size": 4})
    assert inspection.report["pixel_range"] == "0-255" and inspection.roles == {"target": "label"}
    assert prepared.report["image_size"] == 4  # 4 is below the default clamp of 8 but may be asked for
    X_train = np.load(tmp_path / "out" / "X_train.npy")
    rows = json.loads((tmp_path / "out" / "images.json").read_text())["train"]
    first = int(rows[0].split()[1]) - 1
    assert X_train[0].reshape(-1).tolist() == pixels[first].tolist()


def test_embedded_bytes_parquet(tmp_path: Path) -> None:
    rows = []
    for i in range(24):
        name = ["red", "green"][i % 2]
        rows.append({"image": {"bytes": png_bytes(picture(COLORS[name], i)), "path": f"{i}.png"}, "label": i % 2})
    table = tmp_path / "hf.parquet"
    pd.DataFrame(rows).to_parquet(table)
    inspection, prepared = run(table, tmp_path / "out")
    assert inspection.report["layout"] == "embedded" and inspection.roles == {"image": "image", "target": "label"}
    assert prepared.report["classes"] == [0, 1] and prepared.report["shape"] == [3, 11, 11]
    raw = tmp_path / "raw.parquet"
    pd.DataFrame({"png": [r["image"]["bytes"] for r in rows], "y": [r["label"] for r in rows]}).to_parquet(raw)
    inspection, _ = run(raw, tmp_path / "out2")
    assert inspection.report["layout"] == "embedded" and inspection.roles == {"image": "png", "target": "y"}


def test_detection_box_table(tmp_path: Path) -> None:
    rows = []
    for i in range(22):
        Image.new("RGB", (40, 20), (90, 90, 90)).save(tmp_path / f"scene{i}.jpg")
        rows.append({"path": f"scene{i}.jpg", "xmin": 4, "ymin": 2, "xmax": 20, "ymax": 10, "label": "cat"})
        if i % 2:
            rows.append({"path": f"scene{i}.jpg", "xmin": 20, "ymin": 10, "xmax": 40, "ymax": 20, "label": "dog"})
    table = tmp_path / "boxes.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    inspection, prepared = run(table, tmp_path / "out", task="object_detection", params={"image_size": 10})
    assert inspection.report["layout"] == "box_table" and inspection.report["classes"] == ["cat", "dog"]
    assert inspection.report["boxes"] == {"count": 33, "per_image_mean": 1.5, "images_without_boxes": 0,
                                          "labels": {"cat": 22, "dog": 11}}
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["files"]["train"] == {"X": "X_train.npy", "boxes": "boxes_train.json"}
    records = json.loads((tmp_path / "out" / "boxes_train.json").read_text())
    assert len(records) == meta["splits"]["train"] == np.load(tmp_path / "out" / "X_train.npy").shape[0]
    assert records[0]["boxes"][0] == [1.0, 1.0, 5.0, 5.0] and records[0]["labels"][0] == 0  # 40×20 → 10×10
    assert all(label in (0, 1) for r in records for label in r["labels"])


def test_detection_coco_and_xywh(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    images, annotations = [], []
    for i in range(21):
        Image.new("RGB", (20, 20), (10, 10, 10)).save(tmp_path / "images" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 20, "height": 20})
        annotations.append({"id": i, "image_id": i, "bbox": [2, 4, 6, 8], "category_id": 7})
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 7, "name": "bird"}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    inspection, prepared = run(tmp_path, tmp_path / "out", task="object_detection", params={"image_size": 20})
    assert inspection.report["layout"] == "coco" and prepared.report["classes"] == ["bird"]
    record = json.loads((tmp_path / "out" / "boxes_test.json").read_text())[0]
    assert record == {"boxes": [[2.0, 4.0, 8.0, 12.0]], "labels": [0]}
    frame = pd.DataFrame([{"image_id": f"images/{i}", "x": 2, "y": 4, "w": 6, "h": 8} for i in range(21)])
    frame.to_csv(tmp_path / "wheat.csv", index=False)  # ids without a suffix, no label column
    inspection, _ = run(tmp_path / "wheat.csv", tmp_path / "out2", task="object_detection", params={"image_size": 20})
    assert inspection.report["classes"] == ["object"] and inspection.report["boxes"]["count"] == 21
    box = json.loads((tmp_path / "out2" / "boxes_val.json").read_text())[0]["boxes"][0]
    assert box == [2.0, 4.0, 8.0, 12.0]


# ------------------------------------------------------------------------------------ guarantees
def test_deterministic_and_seed_sensitive(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", per_class=10, suffix="jpg")
    run(data, tmp_path / "a")
    run(data, tmp_path / "b")
    run(data, tmp_path / "c", seed=7)
    for name in ("X_train.npy", "y_train.npy", "X_val.npy", "X_test.npy", "y_test.npy", "meta.json", "images.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "images.json").read_bytes() != (tmp_path / "c" / "images.json").read_bytes()
    assert not (tmp_path / "a" / "decoded.tmp.npy").exists()


def test_normalisation_stats_come_from_train_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    for name in ("dark", "light"):
        (data / name).mkdir(parents=True)
        for i in range(15):
            base = int(rng.integers(0, 120)) + (120 if name == "light" else 0)
            Image.new("RGB", (8, 8), (base, base // 2, 255 - base)).save(data / name / f"{i}.png")
    _, prepared = run(data, tmp_path / "out")
    X = np.load(tmp_path / "out" / "X_train.npy") / 255.0
    assert prepared.report["mean"] == pytest.approx(X.mean(axis=(0, 2, 3)).tolist(), abs=1e-6)
    assert prepared.report["std"] == pytest.approx(X.std(axis=(0, 2, 3)).tolist(), abs=1e-6)
    everything = np.concatenate([np.load(tmp_path / "out" / f"X_{s}.npy") for s in ("train", "val", "test")]) / 255.0
    assert prepared.report["mean"] != pytest.approx(everything.mean(axis=(0, 2, 3)).tolist(), abs=1e-6)


def test_grayscale_majority_decides_channels(tmp_path: Path) -> None:
    gray = make_folder(tmp_path / "gray", per_class=10, classes=("red", "blue"), mode="L")
    picture(COLORS["red"], 99).save(gray / "red" / "color.png")
    _, prepared = run(gray, tmp_path / "out1")
    assert prepared.report["channels"] == 1 and sum(prepared.report["splits"].values()) == 21
    color = make_folder(tmp_path / "color", per_class=10, classes=("red", "blue"))
    picture(COLORS["blue"], 5, mode="L").save(color / "blue" / "gray.png")
    picture(COLORS["blue"], 6, mode="RGBA").save(color / "blue" / "alpha.png")
    inspection, prepared = run(color, tmp_path / "out2")
    assert inspection.report["images"]["modes"] == {"RGB": 20, "L": 1, "RGBA": 1}
    assert prepared.report["channels"] == 3 and np.load(tmp_path / "out2" / "X_train.npy").shape[1] == 3


def test_undecodable_images_skipped_and_counted(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", per_class=10, classes=("red", "blue"))
    whole = (data / "red" / "000.png").read_bytes()
    (data / "red" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    inspection, prepared = run(data, tmp_path / "out")
    assert inspection.report["images"]["undecodable"] == 1
    assert inspection.report["images"]["undecodable_examples"] == ["red/truncated.png"]
    assert prepared.report["undecodable_skipped"] == 1 and sum(prepared.report["splits"].values()) == 20
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["undecodable_skipped"] == 1


def test_too_many_undecodable_fail_in_inspect_and_in_prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_folder(tmp_path / "data", per_class=10, classes=("red", "blue"))
    for i in range(4):
        (data / "blue" / f"junk{i}.jpg").write_bytes(b"this is not a jpeg at all" * 3)
    options = DataOptions("image_classification")
    with pytest.raises(DataError) as err:
        IMAGES.inspect(data, options)
    assert_one_sentence(err, "4 of 24 images checked", "could not be decoded", "blue/junk0.jpg")
    monkeypatch.setattr(image_module, "INSPECT_SAMPLE", 3)  # the sample misses them; prepare counts all
    inspection = IMAGES.inspect(data, options)
    with pytest.raises(DataError) as err:
        IMAGES.prepare(data, options, {**inspection.report, "roles": inspection.roles}, tmp_path / "out")
    assert_one_sentence(err, "4 of 24 images found", "blue/junk0.jpg")
    assert not (tmp_path / "out" / "decoded.tmp.npy").exists()


# ------------------------------------------------------------------------------------ bad inputs
def test_no_images_in_folder(tmp_path: Path) -> None:
    (tmp_path / "data" / "cats").mkdir(parents=True)
    (tmp_path / "data" / "cats" / "readme.md").write_text("nothing here")
    (tmp_path / "data" / "dogs").mkdir()
    with pytest.raises(DataError) as err:
        IMAGES.inspect(tmp_path / "data", DataOptions("image_classification"))
    assert_one_sentence(err, "No images", "one sub-folder per class")


def test_images_not_in_class_folders(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for i in range(3):
        picture(COLORS["red"], i).save(tmp_path / "data" / f"{i}.png")
    with pytest.raises(DataError) as err:
        IMAGES.inspect(tmp_path / "data", DataOptions("image_classification"))
    assert_one_sentence(err, "not sorted into class sub-folders")


def test_class_folder_with_a_single_image(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", per_class=10, classes=("red", "blue"))
    make_folder(data, per_class=1, classes=("green",))
    with pytest.raises(DataError) as err:
        IMAGES.inspect(data, DataOptions("image_classification"))
    assert_one_sentence(err, "Class folder 'green' has only 1 image", "cannot be stratified")


def test_only_one_class(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", per_class=25, classes=("red",))
    with pytest.raises(DataError) as err:
        IMAGES.inspect(data, DataOptions("image_classification"))
    assert_one_sentence(err, "Only one class ('red')", "at least two classes")


def test_too_few_images(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", per_class=4, classes=("red", "blue"))
    with pytest.raises(DataError) as err:
        IMAGES.inspect(data, DataOptions("image_classification"))
    assert_one_sentence(err, "has 8 labelled images", f"at least {MIN_ROWS}")


def write_path_table(tmp_path: Path, n: int = 30, missing: int = 0, unlabelled: int = 0) -> Path:
    rows = []
    for i in range(n):
        name = ["red", "blue"][i % 2]
        if i >= missing:
            picture(COLORS[name], i).save(tmp_path / f"{i}.png")
        rows.append({"path": f"{i}.png", "label": None if i >= n - unlabelled else name})
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    return tmp_path / "table.csv"


def test_missing_files_fail_above_the_limit(tmp_path: Path) -> None:
    table = write_path_table(tmp_path, missing=6)
    with pytest.raises(DataError) as err:
        IMAGES.inspect(table, DataOptions("image_classification"))
    assert_one_sentence(err, "6 of 30 image paths in column 'path'", "missing files", "first: '0.png'")


def test_missing_files_below_the_limit_are_skipped(tmp_path: Path) -> None:
    table = write_path_table(tmp_path, missing=2)
    inspection, prepared = run(table, tmp_path / "out")
    assert inspection.report["missing_files"] == 2 and inspection.report["rows"] == 28
    assert sum(prepared.report["splits"].values()) == 28


def test_labels_missing_for_most_rows(tmp_path: Path) -> None:
    table = write_path_table(tmp_path, unlabelled=20)
    with pytest.raises(DataError) as err:
        IMAGES.inspect(table, DataOptions("image_classification"))
    assert_one_sentence(err, "The target 'label' is empty for 20 of 30 images", "label most images")


def test_unknown_column_and_bad_image_size(tmp_path: Path) -> None:
    table = write_path_table(tmp_path)
    with pytest.raises(DataError) as err:
        IMAGES.inspect(table, DataOptions("image_classification", target="lable"))
    assert_one_sentence(err, "did you mean 'label'")
    inspection = IMAGES.inspect(table, DataOptions("image_classification"))
    with pytest.raises(SpecError, match="image_size must be a whole number"):
        IMAGES.prepare(table, DataOptions("image_classification", params={"image_size": "big"}),
                       {**inspection.report, "roles": inspection.roles}, tmp_path / "out")


def test_detection_without_boxes_or_with_bad_boxes(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", per_class=10, classes=("red", "blue"))
    with pytest.raises(DataError) as err:
        IMAGES.inspect(data, DataOptions("object_detection"))
    assert_one_sentence(err, "No box annotations", "COCO annotations.json")
    rows = [{"path": f"red/{i % 10:03d}.png", "xmin": 5, "ymin": 5, "xmax": 1 if i < 5 else 9, "ymax": 9,
             "label": "x"} for i in range(20)]
    pd.DataFrame(rows).to_csv(data / "boxes.csv", index=False)
    with pytest.raises(DataError) as err:
        IMAGES.inspect(data / "boxes.csv", DataOptions("object_detection"))
    assert_one_sentence(err, "5 of 20 boxes", "have no area")


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    for name, level in (("dim", 1000), ("bright", 4000)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((6, 6), level + i, dtype=np.uint16)).save(tmp_path / "data" / name / f"{i}.png")
    inspection, _ = run(tmp_path / "data", tmp_path / "out")
    images = inspection.report["images"]
    assert images["modes"] == {"I;16": 20} and images["wide_range"] == 4095 and inspection.report["channels"] == 1
    X, y = load_split(tmp_path / "out", "train")
    assert 60 <= X[y == 1].min() <= X[y == 1].max() <= 65  # "dim" is 1000/4095 of 255 (a 12-bit range)
    assert X[y == 0].min() >= 245


def test_regression_needs_a_table(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", per_class=10, classes=("red", "blue"))
    with pytest.raises(DataError) as err:
        IMAGES.inspect(data, DataOptions("image_regression"))
    assert_one_sentence(err, "image_regression needs a CSV")
    with pytest.raises(DataError) as err:
        IMAGES.inspect(data, DataOptions("text_classification"))
    assert_one_sentence(err, "cannot prepare task type 'text_classification'")
