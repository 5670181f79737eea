"""Where the images and their labels are: one reader per source layout, all giving an ``ImageSource``.

Layouts: ``folder`` (one sub-folder per class, optionally under train/val/test folders),
``path_table`` (a CSV/parquet of image paths and labels), ``pixel_table`` (one numeric column per
pixel, MNIST style), ``embedded`` (a column of image bytes or HuggingFace ``{"bytes", "path"}``
dicts), ``box_table`` (one row per box) and ``coco`` (an ``annotations.json``). Nothing here decodes
an image; that is ``tools.prep.image``'s job, so reading a large source stays cheap.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import DataError
from tools.prep import IMAGE_SUFFIXES
from tools.prep.base import DataOptions, pick_column

# ------------------------------------------------------------------ limits (share of images or boxes)
#: More than this share of image paths pointing at missing files fails the job; fewer are skipped.
MAX_MISSING_FILE_SHARE = 0.1
#: More than this share of images without a label (or value) fails the job; fewer are dropped.
MAX_UNLABELLED_SHARE = 0.5
#: More than this share of malformed boxes (no area, half-empty coordinates) fails the job; fewer are dropped.
MAX_INVALID_BOX_SHARE = 0.1

TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson"}
#: Top-level folder name → the split it holds (a source that came already split).
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
TARGET_NAMES = ("label", "labels", "class", "target", "y", "category", "class_name")
REGRESSION_NAMES = TARGET_NAMES + ("value", "score")
PATH_NAMES = ("image", "image_path", "path", "file", "filename", "file_name", "filepath", "img", "image_id", "id")
BOX_LABEL_NAMES = ("label", "labels", "class", "class_name", "category", "category_name", "name", "target", "y")
#: Box column names, per format, per coordinate (lower-case).
BOX_FORMATS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("xyxy", (("xmin", "x_min", "x1", "left"), ("ymin", "y_min", "y1", "top"),
              ("xmax", "x_max", "x2", "right"), ("ymax", "y_max", "y2", "bottom"))),
    ("xywh", (("x", "bbox_x", "x0"), ("y", "bbox_y", "y0"),
              ("w", "bbox_w", "box_width", "width"), ("h", "bbox_h", "box_height", "height"))),
)
PIXEL_NAME = re.compile(r"^(pixels?|px)[\s_\-]*\d", re.IGNORECASE)
#: Pixel tables: the smallest range that holds every value decides the scale to 0-255.
PIXEL_RANGES = ((1.0, "0-1"), (16.0, "0-16"), (255.0, "0-255"))


@dataclass
class ImageSource:
    """Every image of a source, in a fixed order, with its label or boxes (nothing decoded yet)."""

    layout: str
    where: str  # the name used in messages
    items: list[Any] = field(default_factory=list)  # per image: a Path or bytes (empty for pixel tables)
    names: list[str] = field(default_factory=list)  # per image: how a person finds it (relative path, row)
    labels: list[Any] | None = None  # per image: class (int or str) or value (float); None for detection
    pixels: Any = None  # pixel tables: uint8 array (N, C, S, S)
    boxes: list[list[list[float]]] | None = None  # detection: per image, xyxy in source pixels (or fractions)
    box_labels: list[list[str]] | None = None
    normalized_boxes: bool = False  # box coordinates are fractions of the image size
    roles: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was inferred or skipped, for the report
    extra: dict[str, Any] = field(default_factory=dict)  # counts for the report

    def __len__(self) -> int:
        return len(self.names)


def read_source(path: Path, options: DataOptions) -> ImageSource:
    """Find the images and labels in ``path`` (a folder or a table), per ``options.task_type``."""
    if not path.exists():
        raise DataError(f"The data source {path} does not exist; check data.source in the spec.")
    detection = options.task_type == "object_detection"
    if path.is_file():
        if path.suffix.lower() == ".json" and detection:
            return _read_coco(path)
        return _read_table(path, options)
    path = _unwrap(path)
    tables = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES | {".json"}
                    and not p.name.startswith("."))
    if detection:
        nested = path / "annotations"
        if nested.is_dir():
            tables += sorted(p for p in nested.iterdir() if p.is_file() and p.suffix.lower() == ".json")
        for candidate in tables:
            if candidate.suffix.lower() == ".json" and _is_coco(candidate):
                return _read_coco(candidate)
        boxes = [t for t in tables if t.suffix.lower() != ".json"]
        if boxes:
            return _read_table(_one_table(boxes, path), options)
        raise DataError(f"No box annotations were found in {path.name}; object_detection needs a CSV with "
                        "path, xmin, ymin, xmax, ymax and label columns or a COCO annotations.json.")
    tables = [t for t in tables if t.suffix.lower() != ".json"]
    if options.task_type == "image_regression":
        if tables:
            return _read_table(_one_table(tables, path), options)
        raise DataError(f"{path.name} holds no table of image paths and values; image_regression needs a CSV "
                        "with an image path column and a numeric target column.")
    if tables and len(_class_folders(path)) < 2:  # a table beside one images/ folder lists the labels
        return _read_table(_one_table(tables, path), options)
    return _read_folder(path)


# ------------------------------------------------------------------------------------ folders
def _visible(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if not p.name.startswith((".", "__MACOSX")))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _unwrap(path: Path) -> Path:
    """An archive often unpacks to one wrapper folder; look inside it (three levels at most). A lone
    folder that holds images itself is a class, not a wrapper."""
    for _ in range(3):
        entries = _visible(path)
        if len(entries) == 1 and entries[0].is_dir() and not any(
                p.is_file() and _is_image(p) for p in entries[0].iterdir()):
            path = entries[0]
        else:
            break
    return path


def _class_folders(root: Path) -> list[Path]:
    return [d for d in _visible(root) if d.is_dir() and any(_is_image(p) for p in d.rglob("*"))]


def _one_table(tables: list[Path], folder: Path) -> Path:
    if len(tables) == 1:
        return tables[0]
    preferred = [t for t in tables if any(word in t.stem.lower() for word in ("train", "label", "annotation"))]
    if len(preferred) == 1:
        return preferred[0]
    raise DataError(f"{folder.name} holds several tables ({', '.join(t.name for t in tables[:4])}); "
                    "point data.source at the one that lists the images.")


def _read_folder(path: Path) -> ImageSource:
    """Class sub-folders (``cats/1.jpg``), or train/val/test folders that each hold class sub-folders."""
    source = ImageSource("folder", path.name, labels=[])
    subdirs = [d for d in _visible(path) if d.is_dir()]
    roots: list[tuple[str | None, Path]] = [(None, path)]
    if subdirs and all(d.name.lower() in SPLIT_FOLDERS for d in subdirs):
        split_roots = [(SPLIT_FOLDERS[d.name.lower()], d) for d in subdirs]
        if any(split == "train" and _class_folders(d) for split, d in split_roots):
            roots = split_roots
    counts: dict[str, int] = {}
    for split, root in roots:
        classes = _class_folders(root)
        loose = [p for p in _visible(root) if p.is_file() and _is_image(p)]
        where = f"{root.name}/" if split else "the top level"
        if split and not classes:
            source.notes.append(f"{len(loose)} unlabelled images in {root.name}/ were ignored (no class folders)")
            continue
        if loose:
            source.notes.append(f"{len(loose)} images at {where} outside any class folder were ignored")
        empty = [d.name for d in _visible(root) if d.is_dir() and d not in classes]
        if empty:
            source.notes.append(f"folders without images were ignored: {', '.join(empty[:5])}")
        for class_dir in classes:
            images = sorted(p for p in class_dir.rglob("*") if p.is_file() and _is_image(p))
            for image in images:
                source.items.append(image)
                source.names.append(image.relative_to(path).as_posix())
                source.labels.append(class_dir.name)  # type: ignore[union-attr]
            if split:
                counts[split] = counts.get(split, 0) + len(images)
    if not source.items:
        loose = [p for p in path.rglob("*") if p.is_file() and _is_image(p)]
        if loose:
            raise DataError(f"The {len(loose)} images in {path.name} are not sorted into class sub-folders; put each "
                            "class's images in its own folder (e.g. cats/1.jpg) or give a CSV of paths and labels.")
        raise DataError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) were found in {path.name}; "
                        "put the images in one sub-folder per class, e.g. cats/1.jpg.")
    if counts:
        source.extra["source_splits"] = counts
        split_sizes = ", ".join(f"{name} {n}" for name, n in counts.items())
        source.notes.append(f"the source came split into folders ({split_sizes}); their images are pooled and "
                            "re-split with the job's seed so every split is stratified")
    source.roles = {}
    source.extra["target"] = "class folder names"
    return source


# ------------------------------------------------------------------------------------- tables
def _read_table(path: Path, options: DataOptions) -> ImageSource:
    from tools.local_data import load_table

    frame, _ = load_table(path)
    if options.task_type == "object_detection":
        return _read_box_table(frame, path, options)
    pixels = _pixel_columns(frame)
    if pixels and not options.image:
        return _read_pixels(frame, pixels, path, options)
    embedded = _embedded_column(frame, path.name, options.image)
    if embedded:
        return _read_embedded(frame, embedded, path, options)
    return _read_paths(frame, path, options)


def _suffix_column(frame: Any) -> str | None:
    """The column whose values mostly end in an image suffix (``.jpg``, ``.png`` …)."""
    best, best_share = None, 0.5
    for name in frame.columns:
        values = frame[name].dropna()
        if len(values) == 0 or not all(isinstance(v, str) for v in values.head(50)):
            continue
        share = float(values.astype(str).str.strip().str.lower().str.endswith(tuple(IMAGE_SUFFIXES)).mean())
        if share > best_share:
            best, best_share = name, share
    return best


def _path_column(frame: Any, where: str, given: str | None) -> tuple[str, str]:
    columns = list(frame.columns)
    inferred = _suffix_column(frame)
    if inferred is None and not given:
        by_lower = {c.lower(): c for c in columns}
        inferred = next((by_lower[n] for n in PATH_NAMES if n in by_lower), None)
    column, how = pick_column(columns, given, "image path", where, (), inferred)
    if not given:
        how = f"inferred: '{column}' holds the image file names"
    return column, how


def _target_column(columns: list[str], options: DataOptions, where: str) -> tuple[str, str]:
    names = REGRESSION_NAMES if options.task_type == "image_regression" else TARGET_NAMES
    return pick_column(columns, options.target, "target", where, names, columns[0] if len(columns) == 1 else None)


def _labels(series: Any, regression: bool, column: str, where: str) -> list[Any]:
    """Per-row label (None where missing): floats for regression, ints or stripped strings for classes."""
    import pandas as pd

    if regression:
        numeric = pd.to_numeric(series, errors="coerce")
        bad = series.notna() & numeric.isna() & (series.astype(str).str.strip() != "")
        if bad.any():
            raise DataError(f"The target '{column}' must be numeric for image_regression but holds "
                            f"{series[bad].iloc[0]!r}; clean the column or set task_type: image_classification.")
        return [None if pd.isna(v) else float(v) for v in numeric]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.dropna()
        if bool((values % 1 == 0).all()):
            return [None if pd.isna(v) else int(v) for v in series]
    return [None if pd.isna(v) or str(v).strip() == "" else str(v).strip() for v in series]


def _drop_unlabelled(labels: list[Any], column: str, where: str) -> list[int]:
    """Rows that have a label; most rows unlabelled is a DataError."""
    keep = [i for i, v in enumerate(labels) if v is not None]
    missing = len(labels) - len(keep)
    if missing > MAX_UNLABELLED_SHARE * len(labels):
        raise DataError(f"The target '{column}' is empty for {missing} of {len(labels)} images in {where}; "
                        "label most images first.")
    return keep


class _Resolver:
    """Image paths as written in a table → files: absolute, or relative to the table's folder (or its
    ``images/``); a name without a suffix (an id) is tried with each image suffix."""

    def __init__(self, folder: Path, extra: tuple[Path, ...] = ()) -> None:
        self.bases = [b for b in (folder, folder / "images", *extra) if b.is_dir()]

    def __call__(self, value: str) -> Path | None:
        text = value.strip().replace("\\", "/")
        raw = Path(text)
        if raw.is_absolute():
            return raw if raw.is_file() else None
        suffixes = [""] if raw.suffix.lower() in IMAGE_SUFFIXES else [""] + sorted(IMAGE_SUFFIXES)
        for base in self.bases:
            for suffix in suffixes:
                candidate = base / (text + suffix)
                if candidate.is_file():
                    return candidate
        return None


def _resolve_all(values: list[str], folder: Path, column: str, where: str,
                 source: ImageSource, extra: tuple[Path, ...] = ()) -> list[Path | None]:
    """Resolve every path; missing files are counted, and more than the limit share is a DataError."""
    resolver = _Resolver(folder, extra)
    found = [resolver(str(v)) for v in values]
    missing = [v for v, p in zip(values, found) if p is None]
    if missing:
        if len(missing) > MAX_MISSING_FILE_SHARE * len(values):
            raise DataError(f"{len(missing)} of {len(values)} image paths in column '{column}' of {where} point to "
                            f"missing files (first: '{missing[0]}', looked for under {folder}); make the paths "
                            "absolute or relative to the table's folder.")
        source.extra["missing_files"] = len(missing)
        source.extra["missing_examples"] = [str(v) for v in missing[:5]]
        source.notes.append(f"{len(missing)} image paths point to missing files and were skipped "
                            f"(first: '{missing[0]}')")
    return found


def _read_paths(frame: Any, path: Path, options: DataOptions) -> ImageSource:
    where = path.name
    image_col, image_how = _path_column(frame, where, options.image)
    rest = [c for c in frame.columns if c != image_col]
    if not rest:
        raise DataError(f"{where} has only the image column '{image_col}'; add a column with each image's label.")
    target, target_how = _target_column(rest, options, where)
    regression = options.task_type == "image_regression"
    labels = _labels(frame[target], regression, target, where)
    keep = _drop_unlabelled(labels, target, where)
    source = ImageSource("path_table", where, labels=[], roles={"image": image_col, "target": target},
                         notes=[f"image column: {image_how}", f"target column: {target_how}"],
                         extra={"target_reason": target_how})
    values = [frame[image_col].iloc[i] for i in keep]
    blank = [i for i, v in zip(keep, values) if not isinstance(v, str) or not v.strip()]
    if blank:
        raise DataError(f"Column '{image_col}' of {where} is empty or not text in {len(blank)} labelled rows "
                        f"(first: row {blank[0] + 2}); fill in a path for every image.")
    found = _resolve_all(values, path.parent, image_col, where, source)
    for row, value, file in zip(keep, values, found):
        if file is not None:
            source.items.append(file)
            source.names.append(str(value).strip())
            source.labels.append(labels[row])  # type: ignore[union-attr]
    _note_dropped(source, len(labels) - len(keep))
    return source


def _note_dropped(source: ImageSource, dropped: int) -> None:
    if dropped:
        source.extra["unlabelled_dropped"] = dropped
        source.notes.append(f"{dropped} rows without a label were dropped")


def _embedded_column(frame: Any, where: str, given: str | None) -> str | None:
    """A column of image bytes or ``{"bytes", "path"}`` dicts (HuggingFace's image feature)."""
    columns = [pick_column(list(frame.columns), given, "image", where)[0]] if given else list(frame.columns)
    for name in columns:
        values = frame[name].dropna()
        first = values.iloc[0] if len(values) else None
        if isinstance(first, (bytes, bytearray, memoryview)) or (
                isinstance(first, dict) and {"bytes", "path"} & set(first)):
            return str(name)
    return None


def _read_embedded(frame: Any, column: str, path: Path, options: DataOptions) -> ImageSource:
    where = path.name
    rest = [c for c in frame.columns if c != column]
    if not rest:
        raise DataError(f"{where} has only the image column '{column}'; add a column with each image's label.")
    target, target_how = _target_column(rest, options, where)
    labels = _labels(frame[target], options.task_type == "image_regression", target, where)
    keep = _drop_unlabelled(labels, target, where)
    source = ImageSource("embedded", where, labels=[], roles={"image": column, "target": target},
                         notes=[f"image column: '{column}' holds the image bytes", f"target column: {target_how}"],
                         extra={"target_reason": target_how})
    resolver = _Resolver(path.parent)
    missing: list[str] = []
    for row in keep:
        value = frame[column].iloc[row]
        item: Any = None
        if isinstance(value, (bytes, bytearray, memoryview)):
            item = bytes(value)
        elif isinstance(value, dict):
            if value.get("bytes"):
                item = bytes(value["bytes"])
            elif value.get("path"):
                item = resolver(str(value["path"]))
        if item is None:
            missing.append(f"row {row + 1}")
            continue
        source.items.append(item)
        source.names.append(f"row {row + 1}")
        source.labels.append(labels[row])  # type: ignore[union-attr]
    if len(missing) > MAX_MISSING_FILE_SHARE * max(1, len(keep)):
        raise DataError(f"{len(missing)} of {len(keep)} rows of {where} have no image bytes or readable path in "
                        f"column '{column}' (first: {missing[0]}); export the images with their bytes.")
    if missing:
        source.extra["missing_files"] = len(missing)
        source.extra["missing_examples"] = missing[:5]
        source.notes.append(f"{len(missing)} rows without image bytes were skipped (first: {missing[0]})")
    _note_dropped(source, len(labels) - len(keep))
    return source


def _pixel_columns(frame: Any) -> list[str]:
    """Numeric pixel*/px* columns whose count is a square (grey) or three squares (RGB)."""
    import pandas as pd

    columns = [c for c in frame.columns if PIXEL_NAME.match(str(c)) and pd.api.types.is_numeric_dtype(frame[c])]
    return columns if len(columns) >= 4 and _pixel_shape(len(columns)) else []


def _pixel_shape(count: int) -> tuple[int, int] | None:
    """(channels, side) for ``count`` pixel columns, or None when they are not a square image."""
    for channels in (1, 3):
        side = math.isqrt(count // channels)
        if count % channels == 0 and side * side * channels == count:
            return channels, side
    return None


def _read_pixels(frame: Any, pixel_cols: list[str], path: Path, options: DataOptions) -> ImageSource:
    import numpy as np

    where = path.name
    rest = [c for c in frame.columns if c not in set(pixel_cols)]
    target, target_how = _target_column(rest, options, where)
    labels = _labels(frame[target], options.task_type == "image_regression", target, where)
    keep = _drop_unlabelled(labels, target, where)
    channels, side = _pixel_shape(len(pixel_cols))  # type: ignore[misc]
    values = frame[pixel_cols].to_numpy(dtype=np.float32)[keep]
    empty = np.isnan(values)
    if empty.any():
        row = keep[int(np.flatnonzero(empty.any(axis=1))[0])]
        raise DataError(f"The pixel columns of {where} have {int(empty.sum())} empty cells (first in row {row + 1}); "
                        "fill them or drop those rows.")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    label = next((name for top, name in PIXEL_RANGES if low >= 0 and high <= top), None)
    if label is None:
        scale, offset, label = 255.0 / max(high - low, 1e-12), low, f"{low:g}-{high:g} (scaled linearly)"
    else:
        scale, offset = 255.0 / float(label.split("-")[1]), 0.0
    pixels = np.clip(np.rint((values - offset) * scale), 0, 255).astype(np.uint8)
    del values
    source = ImageSource("pixel_table", where, labels=[labels[i] for i in keep], roles={"target": target},
                         pixels=pixels.reshape(len(keep), channels, side, side),
                         notes=[f"{len(pixel_cols)} pixel columns read as {channels}×{side}×{side} images "
                                + ("(channel-planar order) " if channels == 3 else "") + f"with values {label}",
                                f"target column: {target_how}"], extra={"target_reason": target_how})
    source.names = [f"row {i + 1}" for i in keep]
    source.extra["pixel_range"] = label
    _note_dropped(source, len(labels) - len(keep))
    return source


# ----------------------------------------------------------------------------------- detection
def _box_columns(columns: list[str]) -> tuple[str, list[str]] | None:
    """(format, the four coordinate columns) or (``"bbox"``, [the column holding [x, y, w, h]])."""
    by_lower = {c.lower(): c for c in columns}
    for fmt, coordinates in BOX_FORMATS:
        picked = [next((by_lower[n] for n in names if n in by_lower), None) for names in coordinates]
        if all(picked):
            return fmt, [str(p) for p in picked]
    if "bbox" in by_lower:
        return "bbox", [by_lower["bbox"]]
    return None


def _box_from_row(fmt: str, values: list[Any]) -> list[float] | None:
    """One row's box as xyxy floats; [] when the row has no box (an image without objects); None if malformed."""
    if fmt == "bbox":
        text = values[0]
        if text is None or (isinstance(text, float) and math.isnan(text)):
            return []
        numbers = (list(text) if isinstance(text, (list, tuple)) or hasattr(text, "tolist")
                   else re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", str(text)))
        if len(numbers) != 4:
            return None
        values, fmt = [float(n) for n in numbers], "xywh"
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if all(math.isnan(n) for n in numbers):
        return []
    if any(math.isnan(n) for n in numbers):
        return None
    x1, y1, a, b = numbers
    x2, y2 = (x1 + a, y1 + b) if fmt == "xywh" else (a, b)
    return [x1, y1, x2, y2] if x2 > x1 and y2 > y1 else None


def _finish_boxes(source: ImageSource, invalid: int, total: int) -> ImageSource:
    if total and invalid > MAX_INVALID_BOX_SHARE * total:
        raise DataError(f"{invalid} of {total} boxes in {source.where} have no area or incomplete coordinates; "
                        "check the box columns (xmin < xmax, ymin < ymax).")
    if invalid:
        source.extra["invalid_boxes"] = invalid
        source.notes.append(f"{invalid} malformed boxes were dropped")
    coords = [c for boxes in source.boxes or [] for box in boxes for c in box]
    if coords and min(coords) >= 0 and max(coords) <= 1.0:
        source.normalized_boxes = True
        source.notes.append("box coordinates are all within 0-1, so they are read as fractions of the image size")
    return source


def _read_box_table(frame: Any, path: Path, options: DataOptions) -> ImageSource:
    where = path.name
    columns = [str(c) for c in frame.columns]
    found = _box_columns(columns)
    if found is None:
        raise DataError(f"{where} has no box columns; object_detection needs xmin, ymin, xmax, ymax "
                        "(or x, y, w, h, or a COCO bbox column) and a label on every row.")
    fmt, coord_cols = found
    image_col, image_how = _path_column(frame, where, options.image)
    rest = [c for c in columns if c not in coord_cols and c != image_col]
    label_col: str | None
    try:
        label_col, label_how = pick_column(rest, options.target, "box label", where, BOX_LABEL_NAMES)
    except DataError:
        if options.target:
            raise
        label_col, label_how = None, "none found: every box is labelled 'object'"
    order: dict[str, list[int]] = {}
    for row, value in enumerate(frame[image_col]):
        if isinstance(value, str) and value.strip():
            order.setdefault(value.strip(), []).append(row)
    source = ImageSource("box_table", where, boxes=[], box_labels=[],
                         roles={"image": image_col, **({"target": label_col} if label_col else {})},
                         notes=[f"image column: {image_how}", f"box columns: {', '.join(coord_cols)} ({fmt})",
                                f"box label column: {label_how}"])
    files = _resolve_all(list(order), path.parent, image_col, where, source)
    label_values = _labels(frame[label_col], False, label_col, where) if label_col else None
    coords = frame[coord_cols].to_numpy(dtype=object)
    invalid = total = 0
    for (value, rows), file in zip(order.items(), files):
        if file is None:
            continue
        boxes, names = [], []
        for row in rows:
            box = _box_from_row(fmt, list(coords[row]))
            if box == []:
                continue
            total += 1
            label = label_values[row] if label_values else "object"
            if box is None or label is None:
                invalid += 1
                continue
            boxes.append(box)
            names.append(str(label))
        source.items.append(file)
        source.names.append(value)
        source.boxes.append(boxes)  # type: ignore[union-attr]
        source.box_labels.append(names)  # type: ignore[union-attr]
    return _finish_boxes(source, invalid, total)


def _is_coco(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "images" in data and "annotations" in data


def _read_coco(path: Path) -> ImageSource:
    """A COCO file: images [{id, file_name}], annotations [{image_id, bbox [x, y, w, h], category_id}], categories."""
    where = path.name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{where} is not readable JSON ({type(err).__name__}); "
                        "export the annotations again.") from err
    if not isinstance(data, dict) or not all(isinstance(data.get(key), list) for key in ("images", "annotations")):
        raise DataError(f"{where} is not a COCO annotation file; it needs 'images', 'annotations' and "
                        "'categories' lists.")
    categories = {c.get("id"): str(c.get("name", c.get("id")))
                  for c in data.get("categories") or [] if isinstance(c, dict)}
    per_image: dict[Any, list[dict[str, Any]]] = {}
    for ann in data["annotations"]:
        if isinstance(ann, dict):
            per_image.setdefault(ann.get("image_id"), []).append(ann)
    images = [img for img in data["images"] if isinstance(img, dict) and img.get("file_name")]
    source = ImageSource("coco", where, boxes=[], box_labels=[], roles={},
                         notes=[f"COCO file with {len(images)} images and {len(categories)} categories"])
    # COCO archives keep annotations/instances_train2017.json beside train2017/ (or images/).
    up = path.parent.parent
    extra = (up, up / "images", up / path.stem.split("_")[-1], path.parent / path.stem.split("_")[-1])
    files = _resolve_all([str(img["file_name"]) for img in images], path.parent, "file_name", where, source, extra)
    invalid = total = 0
    for img, file in zip(images, files):
        if file is None:
            continue
        boxes, names = [], []
        for ann in per_image.get(img.get("id"), []):
            total += 1
            box = _box_from_row("bbox", [ann.get("bbox")])
            category = ann.get("category_id")
            if not box or (categories and category not in categories):
                invalid += 1
                continue
            boxes.append(box)
            names.append(categories.get(category, str(category)))
        source.items.append(file)
        source.names.append(str(img["file_name"]))
        source.boxes.append(boxes)  # type: ignore[union-attr]
        source.box_labels.append(names)  # type: ignore[union-attr]
    return _finish_boxes(source, invalid, total)
