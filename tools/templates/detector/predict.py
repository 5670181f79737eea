"""
Predict with an exported mltrainer object detector (a small CenterNet-style model) using torch.

This file ships in the export folder next to model.safetensors, model.json, meta.json and
detector_nets.py (the network and decoding code the model was trained with). Each image is decoded
with Pillow as the training data was (EXIF orientation applied, converted to the model's mode,
stretched to the model's square size); boxes come back in pixels of the ORIGINAL image.

Input: a text file of image paths (one a line, absolute or relative to the file's folder), a folder
of images (searched recursively), a CSV with a path column or a single image file. Output: a CSV
with one row per detected box: path,label,score,xmin,ymin,xmax,ymax (an image with no box above
--min-score gets one row with empty label and box).

    python predict.py --input images.txt --output boxes.csv --min-score 0.3

From Python (any working directory):

    spec = importlib.util.spec_from_file_location("predict", "export/predict.py")
    predict = importlib.util.module_from_spec(spec); spec.loader.exec_module(predict)
    found = predict.Predictor.load("export").predict(["a.png"])  # [[{"label", "score", "box"}, ...]]
"""

import argparse
import csv
import importlib.util
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
PATH_COLUMNS = ("path", "image", "image_path", "file", "filename", "file_name", "filepath", "img")
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # 16-bit / float grayscale
WIDE_RANGES = (1.0, 255.0, 1023.0, 4095.0, 65535.0)
BATCH = 64
DEFAULT_MIN_SCORE = 0.3


def _load_nets(folder: str):
    """Import the export's detector_nets.py by path, so it works from any working directory."""
    path = os.path.join(os.path.abspath(folder), "detector_nets.py")
    name = f"_mltrainer_detector_nets_{abs(hash(path))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def decode_image(path: str, mode: str, size: int) -> tuple:
    """One image file → (uint8 (C, size, size), (width, height) upright), as tools/prep/image.py prepared it."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            if upright.mode in WIDE_MODES:  # scale this image's range (0-1, 8…16 bits) to 0-255
                a = np.asarray(upright, dtype=np.float64)
                top = next((t for t in WIDE_RANGES if a.size and a.max() <= t), float(a.max()) if a.size else 1.0)
                upright = Image.fromarray(np.clip(np.rint(a * (255.0 / max(top, 1e-12))), 0, 255).astype(np.uint8))
            original = upright.size
            converted = upright.convert(mode)
    except FileNotFoundError:
        raise ValueError(f"the image '{path}' does not exist; check the path.") from None
    except (OSError, SyntaxError, ValueError) as e:  # Pillow's errors for broken or unsupported files
        raise ValueError(f"the image '{path}' could not be decoded ({e}); replace or remove it.") from None
    if converted.size != (size, size):
        converted = converted.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.uint8)
    return (array[None] if array.ndim == 2 else array.transpose(2, 0, 1)), original


class Predictor:
    """An exported detector, ready to find boxes in images."""

    def __init__(self, info: dict, model, nets):
        self.info = info
        self.model = model
        self.nets = nets
        self.classes = info.get("classes") or list(range(int(info["architecture"]["n_classes"])))
        self.n_classes = int(info["architecture"]["n_classes"])
        self.mode = info.get("mode") or ("L" if info["architecture"]["channels"] == 1 else "RGB")
        self.size = int(info["image_size"])
        self.channels = int(info["architecture"]["channels"])
        self.stride = int(info.get("stride") or 2 ** int(info["architecture"]["layers"]))

    @classmethod
    def load(cls, folder: str = HERE) -> "Predictor":
        """Read model.json, rebuild the network from detector_nets.py and load model.safetensors."""
        from safetensors.torch import load_file

        with open(os.path.join(folder, "model.json")) as f:
            info = json.load(f)
        if info.get("family") != "detector":
            raise ValueError(f"{folder} holds a {info.get('family')!r} model, not an object detector.")
        nets = _load_nets(folder)
        model = nets.build_model(info["architecture"])
        missing, unexpected = model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")), strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"model.safetensors does not match model.json (missing {missing[:3]}, unexpected {unexpected[:3]}).")
        model.eval()
        return cls(info, model, nets)

    def predict_arrays(self, X: np.ndarray, min_score: float = DEFAULT_MIN_SCORE, labels_as_ids: bool = False) -> list:
        """Decoded images (N, C, S, S) uint8 → per image a list of {"label", "score", "box"} (xyxy pixels of
        the S×S input), best first."""
        import torch

        X = np.asarray(X)
        shape = (self.channels, self.size, self.size)
        if X.ndim != 4 or X.shape[1:] != shape:
            raise ValueError(f"expected images shaped (N, {shape[0]}, {shape[1]}, {shape[2]}), got {X.shape}.")
        found = []
        for s in range(0, len(X), BATCH):
            with torch.no_grad():
                out = self.model(torch.from_numpy(np.ascontiguousarray(X[s:s + BATCH])).float())
            for boxes, scores, labels in self.nets.decode(out, self.n_classes, self.stride, self.size,
                                                          min_score=min(min_score, 1.0)):
                found.append([{"label": int(l) if labels_as_ids else self.classes[int(l)], "score": float(sc),
                               "box": [float(v) for v in b]} for b, sc, l in zip(boxes, scores, labels)])
        return found

    def predict(self, inputs, min_score: float = DEFAULT_MIN_SCORE) -> list:
        """Image paths (or one path) or decoded arrays → per image a list of {"label", "score", "box"}, boxes
        in pixels of each original image."""
        if isinstance(inputs, np.ndarray):
            return self.predict_arrays(inputs, min_score)
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        arrays, sizes = [], []
        for item in inputs:
            if not isinstance(item, (str, os.PathLike)):
                raise ValueError(f"cannot predict on a {type(item).__name__}; give image paths or an array.")
            array, original = decode_image(str(item), self.mode, self.size)
            arrays.append(array)
            sizes.append(original)
        if not arrays:
            return []
        found = self.predict_arrays(np.stack(arrays), min_score)
        for detections, (width, height) in zip(found, sizes):
            sx, sy = width / self.size, height / self.size
            for d in detections:
                x1, y1, x2, y2 = d["box"]
                d["box"] = [round(x1 * sx, 2), round(y1 * sy, 2), round(x2 * sx, 2), round(y2 * sy, 2)]
        return found


def _resolve(value: str, base: str) -> str:
    value = value.strip()
    return value if os.path.isabs(value) else os.path.join(base, value)


def read_inputs(input_path: str) -> list:
    """[(name as given, file path)] from a folder, a CSV with a path column, a list of paths or one image."""
    if os.path.isdir(input_path):
        found = []
        for root, dirs, files in os.walk(input_path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith("."):
                    full = os.path.join(root, name)
                    found.append((os.path.relpath(full, input_path), full))
        if not found:
            raise ValueError(f"the folder {input_path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        return found
    if not os.path.isfile(input_path):
        raise ValueError(f"the input {input_path} does not exist.")
    base = os.path.dirname(os.path.abspath(input_path))
    suffix = os.path.splitext(input_path)[1].lower()
    if suffix in IMAGE_SUFFIXES:
        return [(os.path.basename(input_path), input_path)]
    try:
        with open(input_path, newline="", encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise ValueError(f"{input_path} is not a text file; give a list of image paths, a CSV with a path column "
                         "or a folder of images.") from None
    if suffix in (".csv", ".tsv"):
        rows = list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
        columns = {c.strip().lower(): c for c in (rows[0].keys() if rows else []) if c}
        column = next((columns[c] for c in PATH_COLUMNS if c in columns), None)
        if column is None and len(columns) == 1:
            column = next(iter(columns.values()))
        if column is None:
            raise ValueError(f"{input_path} has no image path column; name one of its columns "
                             f"{' or '.join(PATH_COLUMNS[:3])}.")
        values = [(row.get(column) or "").strip() for row in rows]
    else:
        values = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    values = [v for v in values if v]
    if not values:
        raise ValueError(f"{input_path} lists no image paths.")
    found = [(v, _resolve(v, base)) for v in values]
    missing = [v for v, p in found if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"{len(missing)} of {len(found)} image paths in {os.path.basename(input_path)} point to missing "
                         f"files (first: '{missing[0]}'); make them absolute or relative to the file's folder.")
    return found


def predict_file(folder: str, input_path: str, output_path: str, min_score: float = DEFAULT_MIN_SCORE) -> int:
    """Find boxes in every image the input names; writes one CSV row per box and returns how many images."""
    items = read_inputs(input_path)
    predictor = Predictor.load(folder)
    with open(output_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "score", "xmin", "ymin", "xmax", "ymax"])
        for s in range(0, len(items), BATCH):
            chunk = items[s:s + BATCH]
            for (name, _), detections in zip(chunk, predictor.predict([path for _, path in chunk], min_score)):
                if not detections:
                    writer.writerow([name, "", "", "", "", "", ""])
                for d in detections:
                    writer.writerow([name, d["label"], round(d["score"], 4), *d["box"]])
    return len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description="Find objects with an exported mltrainer detector.")
    parser.add_argument("--input", required=True, help="a text file of image paths, a CSV with a path column, a folder or an image")
    parser.add_argument("--output", required=True, help="CSV file to write (path,label,score,xmin,ymin,xmax,ymax)")
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE, help="drop boxes scored below this")
    parser.add_argument("--model-dir", default=HERE, help="export folder (default: this script's folder)")
    args = parser.parse_args()
    try:
        written = predict_file(args.model_dir, args.input, args.output, args.min_score)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote boxes for {written} images to {args.output}")


if __name__ == "__main__":
    main()
