"""Images: class folders, tables of paths, pixel tables, embedded bytes and box annotations → one
uint8 array (N, C, H, W) per split, plus the training split's per-channel mean/std in ``meta.json``.

Why this shape: the training script loads each split in one ``np.load`` and normalises with the
stored statistics, so it never needs Pillow. Every image is stretched to a square ``image_size``
(the aspect ratio is not kept, so boxes scale with the image and stay exact). Images that fail to
decode are skipped and counted; too many of them is a DataError rather than a quietly smaller set.
Reading the source (which files, which labels) lives in :mod:`tools.prep.image_read`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.errors import DataError, SpecError
from tools.prep.base import DataOptions, Inspection, Log, Prepared, quiet, require_rows, split_summary, write_meta
from tools.prep.image_read import ImageSource, read_source

# ------------------------------------------------------------------------------------ limits
#: More than this share of images that fail to decode fails the job; fewer are skipped and counted.
MAX_UNDECODABLE_SHARE = 0.1
#: Every class needs an image in train, validation and test.
MIN_PER_CLASS = 3
#: ``inspect`` decodes at most this many images (spread evenly over the source) for sizes and modes.
INSPECT_SAMPLE = 2000
#: The default image_size is the median image side, clamped to this range.
DEFAULT_SIZE_RANGE = (8, 64)
#: An image_size outside this range is refused.
SIZE_LIMITS = (4, 1024)

#: High-bit-depth grayscale modes, and the value ranges (smallest first) one of which is scaled to 0-255:
#: the smallest that holds the brightest pixel of the sampled images (0-1 floats; 8, 10, 12 or 16 bits).
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
WIDE_RANGES = (1.0, 255.0, 1023.0, 4095.0, 65535.0)
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
TASKS = {"image_classification": "classification", "image_regression": "regression", "object_detection": "detection"}
LAYOUT_WORDS = {"folder": "folder of class folders", "path_table": "table of image paths", "pixel_table": "pixel table",
                "embedded": "table of embedded images", "box_table": "table of boxes", "coco": "COCO annotation file"}
CHUNK = 1024  # images copied per step when writing a split
LOG_EVERY = 5000  # a progress line per this many decoded images
DECODE_THREADS = min(8, os.cpu_count() or 1)
ROTATING = {2, 3, 4, 5, 6, 7, 8}  # EXIF orientations that need a transpose (5-8 also swap width and height)


# ------------------------------------------------------------------------------------ decoding
def _open(item: Any) -> Any:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(item) if isinstance(item, bytes) else item)


def _decode(item: Any, mode: str, size: int, wide_top: float | None = None) -> tuple[Any, tuple[int, int]]:
    """One image as a (C, size, size) uint8 array, and its upright size before resizing (for boxes)."""
    import numpy as np
    from PIL import Image, ImageOps

    with _open(item) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        image.draft(mode, (size, size))  # JPEG: decode at a reduced scale that is still at least size×size
        upright = ImageOps.exif_transpose(image) if orientation in ROTATING else image
        converted = (_to_8bit(upright, wide_top) if upright.mode in WIDE_MODES else upright).convert(mode)
    if converted.size != (size, size):
        converted = converted.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.uint8)
    return (array[None] if array.ndim == 2 else array.transpose(2, 0, 1)), (width, height)


def wide_range(high: float) -> float:
    return next((top for top in WIDE_RANGES if high <= top), high)


def _to_8bit(image: Any, top: float | None) -> Any:
    """16-bit and float grayscale as "L": Pillow's own conversion clips everything above 255 to white,
    so scale ``top`` (the data set's range, from the sample; this image's own range when unknown) to 255."""
    import numpy as np
    from PIL import Image

    array = np.asarray(image, dtype=np.float64)
    if top is None:
        top = wide_range(float(array.max()) if array.size else 0.0)
    return Image.fromarray(np.clip(np.rint(array * (255.0 / max(top, 1e-12))), 0, 255).astype(np.uint8))


def _sample(count: int, limit: int) -> list[int]:
    """Up to ``limit`` indices spread evenly over ``count`` (a folder is sorted by class)."""
    if count <= limit:
        return list(range(count))
    return sorted({int(i * count / limit) for i in range(limit)})


def _spread(values: list[int]) -> dict[str, int]:
    import numpy as np

    if not values:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": int(min(values)), "median": int(np.median(values)), "max": int(max(values))}


def probe(source: ImageSource, limit: int | None = None) -> dict[str, Any]:
    """Decode a sample (``INSPECT_SAMPLE`` by default) for sizes, modes and formats; counts the ones that fail."""
    import warnings

    limit = INSPECT_SAMPLE if limit is None else limit

    if source.pixels is not None:
        count, channels, height, width = source.pixels.shape
        mode = "L" if channels == 1 else "RGB"
        return {"count": count, "sampled": count, "decoded": count, "undecodable": 0, "undecodable_examples": [],
                "width": _spread([width]), "height": _spread([height]), "modes": {mode: count},
                "formats": {"pixels": count}}
    widths: list[int] = []
    heights: list[int] = []
    modes: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    bad: list[str] = []
    wide_high: float | None = None
    indices = _sample(len(source), limit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in indices:
            try:
                with _open(source.items[i]) as image:
                    size, mode, fmt = image.size, image.mode, image.format or "unknown"
                    image.draft(mode if mode in ("L", "RGB") else None, (64, 64))
                    image.load()
                    if mode in WIDE_MODES:
                        wide_high = max(wide_high or 0.0, float(image.getextrema()[1]))
            except MemoryError:
                raise
            except Exception:  # Pillow raises OSError, SyntaxError, ValueError… for broken files
                bad.append(source.names[i])
                continue
            widths.append(size[0])
            heights.append(size[1])
            modes[mode] += 1
            formats[fmt] += 1
    report = {"count": len(source), "sampled": len(indices), "decoded": len(indices) - len(bad),
              "undecodable": len(bad), "undecodable_examples": bad[:5], "width": _spread(widths),
              "height": _spread(heights), "modes": dict(modes.most_common()), "formats": dict(formats.most_common())}
    if wide_high is not None:
        report["wide_range"] = wide_range(wide_high)  # 16-bit/float images: this value becomes 255
    return report


def choose_mode(modes: dict[str, int]) -> str:
    """"L" when most images are grayscale, else "RGB" (the few others are converted)."""
    gray = sum(n for mode, n in modes.items() if mode in GRAY_MODES)
    return "L" if gray * 2 > sum(modes.values()) else "RGB"


def default_size(images: dict[str, Any]) -> int:
    """The median side of the data, clamped (sklearn digits stay 8, photos become 64)."""
    low, high = DEFAULT_SIZE_RANGE
    side = (images["width"]["median"] + images["height"]["median"]) / 2
    return int(min(high, max(low, round(side))))


def resolve_size(options: DataOptions, default: int) -> int:
    value = options.param("image_size", default)
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    try:
        size = int(value)
        whole = float(value) == size
    except (TypeError, ValueError):
        size, whole = 0, False
    if not whole or not SIZE_LIMITS[0] <= size <= SIZE_LIMITS[1]:
        raise SpecError(f"image_size must be a whole number of pixels from {SIZE_LIMITS[0]} to {SIZE_LIMITS[1]}, "
                        f"got {value!r}; change it in the spec's hyperparameters.")
    return size


# ------------------------------------------------------------------------------------ checks
def check_labels(source: ImageSource, task: str, labels: list[Any] | None = None) -> None:
    """Refuse what cannot be trained on: too few images, one class, a class too small to stratify."""
    labels = source.labels if labels is None else labels
    what = "labelled images" if task != "detection" else "images"
    require_rows(len(labels) if labels is not None else len(source), what, source.where)
    if task == "classification":
        counts = Counter(labels)
        if len(counts) < 2:
            only = next(iter(counts), "nothing")
            raise DataError(f"Only one class ({only!r}) was found in {source.where}; a classifier needs images of "
                            "at least two classes.")
        small = sorted((n, str(c)) for c, n in counts.items() if n < MIN_PER_CLASS)
        if small:
            n, name = small[0]
            plural = "image" if n == 1 else "images"
            kind = "Class folder" if source.layout == "folder" else "Class"
            raise DataError(f"{kind} '{name}' has only {n} {plural}, so it cannot be stratified into train, "
                            f"validation and test; give every class at least {MIN_PER_CLASS} images or remove it.")
    elif task == "regression":
        if len(set(labels or [])) < 2:
            raise DataError(f"The target of {source.where} has the same value for every image; a regression "
                            "needs varying values.")
    elif not any(source.boxes or []):
        raise DataError(f"{source.where} lists no boxes for any image; object_detection needs at least one "
                        "annotated box.")


def _check_undecodable(bad: int, total: int, example: str, where: str, checked: str) -> None:
    if total and bad > MAX_UNDECODABLE_SHARE * total:
        raise DataError(f"{bad} of {total} images {checked} in {where} could not be decoded (e.g. '{example}'); "
                        "replace or remove the broken files.")


def _classes(values: list[Any]) -> list[Any]:
    return sorted(set(values), key=lambda v: (isinstance(v, str), v))


# ------------------------------------------------------------------------------------ writing
def _write_rows(path: Path, source: Any, rows: Any) -> None:
    """Copy ``source[rows]`` into a new .npy a chunk at a time (the source may be a memory map)."""
    import numpy as np
    from numpy.lib.format import open_memmap

    shape = (len(rows),) + tuple(source.shape[1:])
    if len(rows) == 0:
        np.save(path, np.zeros(shape, dtype=np.uint8))
        return
    out = open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    for start in range(0, len(rows), CHUNK):
        out[start:start + CHUNK] = source[rows[start:start + CHUNK]]
    out.flush()
    del out


def channel_stats(path: Path) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of pixel/255 over a saved split (the training split only)."""
    import numpy as np

    array = np.load(path, mmap_mode="r")
    channels = array.shape[1]
    total = np.zeros(channels)
    squares = np.zeros(channels)
    for start in range(0, len(array), CHUNK):
        chunk = np.asarray(array[start:start + CHUNK], dtype=np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        squares += (chunk * chunk).sum(axis=(0, 2, 3))
    count = max(1, array.shape[0] * array.shape[2] * array.shape[3])
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def _resize_pixels(pixels: Any, size: int) -> Any:
    """Pixel-table images at another side (only when image_size asks for it)."""
    import numpy as np
    from PIL import Image

    count, channels, side, _ = pixels.shape
    if side == size:
        return pixels
    out = np.empty((count, channels, size, size), dtype=np.uint8)
    for i in range(count):
        image = Image.fromarray(pixels[i, 0] if channels == 1 else pixels[i].transpose(1, 2, 0))
        array = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
        out[i] = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return out


def _decode_all(source: ImageSource, mode: str, size: int, out: Any, log: Log,
                wide_top: float | None = None) -> tuple[Any, Any, list[str]]:
    """Decode every image into ``out`` (preallocated); returns (ok mask, upright sizes, undecodable names)."""
    import warnings

    import numpy as np

    from concurrent.futures import ThreadPoolExecutor

    ok = np.zeros(len(source), dtype=bool)
    sizes = np.ones((len(source), 2), dtype=np.float64)

    def one(i: int) -> None:
        try:
            out[i], sizes[i] = _decode(source.items[i], mode, size, wide_top)
            ok[i] = True
        except MemoryError:
            raise
        except Exception:  # a broken or unsupported file: skipped and counted
            pass

    # Pillow decodes without the GIL; every image has its own row, so the result does not depend on timing.
    with warnings.catch_warnings(), ThreadPoolExecutor(DECODE_THREADS) as pool:
        warnings.simplefilter("ignore")
        for start in range(0, len(source), LOG_EVERY):
            list(pool.map(one, range(start, min(len(source), start + LOG_EVERY))))
            if len(source) > LOG_EVERY:
                log(f"decoded {min(len(source), start + LOG_EVERY)}/{len(source)} images")
    bad = [source.names[i] for i in np.flatnonzero(~ok)]
    return ok, sizes, bad


def _scale_boxes(boxes: list[list[float]], labels: list[str], ids: dict[str, int], size: int,
                 scale: tuple[float, float]) -> tuple[dict[str, Any], int]:
    """Boxes in pixels of the resized image (clipped to it); returns them and how many fell outside."""
    out_boxes, out_labels, outside = [], [], 0
    for (x1, y1, x2, y2), label in zip(boxes, labels):
        sx, sy = scale
        box = [min(float(size), max(0.0, v)) for v in (x1 * sx, y1 * sy, x2 * sx, y2 * sy)]
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            outside += 1
            continue
        out_boxes.append([round(v, 3) for v in box])
        out_labels.append(ids[label])
    return {"boxes": out_boxes, "labels": out_labels}, outside


# ------------------------------------------------------------------------------------ the family
class Images:
    name = "image"

    def inspect(self, path: Path, options: DataOptions, log: Log = quiet) -> Inspection:
        task = TASKS.get(options.task_type)
        if task is None:
            raise DataError(f"The image data family cannot prepare task type '{options.task_type}'; "
                            f"use one of {', '.join(TASKS)}.")
        source = read_source(path, options)
        for note in source.notes:
            log(note)
        check_labels(source, task)
        images = probe(source)
        example = images["undecodable_examples"][0] if images["undecodable_examples"] else ""
        _check_undecodable(images["undecodable"], images["sampled"], example, source.where, "checked")
        if images["undecodable"]:
            log(f"{images['undecodable']} of {images['sampled']} images checked could not be decoded; "
                "they will be skipped", "warning")
        mode = choose_mode(images["modes"])
        report: dict[str, Any] = {
            "family": self.name, "layout": source.layout, "rows": len(source), "images": images,
            "mode": mode, "channels": 1 if mode == "L" else 3, "image_size_default": default_size(images),
            "target": source.roles.get("target") or source.extra.get("target"), "notes": source.notes,
            **{k: v for k, v in source.extra.items() if k != "target"},
        }
        if task == "classification":
            counts = Counter(source.labels)
            report["classes"] = _classes(list(counts))
            report["target_distribution"] = {str(k): int(v) for k, v in counts.most_common(100)}
            what = f"{len(counts)} classes"
        elif task == "regression":
            import numpy as np

            values = np.asarray(source.labels, dtype=np.float64)
            report["target_stats"] = {name: round(float(fn(values)), 6) for name, fn in
                                      (("mean", np.mean), ("std", np.std), ("min", np.min),
                                       ("median", np.median), ("max", np.max))}
            what = f"target mean {report['target_stats']['mean']:g}"
        else:
            counts = Counter(label for labels in source.box_labels or [] for label in labels)
            total = sum(counts.values())
            report["classes"] = _classes(list(counts))
            report["boxes"] = {"count": total, "per_image_mean": round(total / max(1, len(source)), 3),
                               "images_without_boxes": sum(1 for b in source.boxes or [] if not b),
                               "labels": {str(k): int(v) for k, v in counts.most_common(100)}}
            what = f"{total} boxes in {len(counts)} class{'' if len(counts) == 1 else 'es'}"
        summary = (f"{len(source)} images ({images['width']['median']}×{images['height']['median']} median, {mode}) "
                   f"from a {LAYOUT_WORDS[source.layout]}; {what}")
        if images["undecodable"]:
            summary += f"; {images['undecodable']} of {images['sampled']} checked undecodable"
        return Inspection(report, dict(source.roles), options.task_type, "from the request", summary)

    def prepare(self, path: Path, options: DataOptions, inspection: dict[str, Any], out_dir: Path,
                log: Log = quiet) -> Prepared:
        import numpy as np
        from numpy.lib.format import open_memmap

        task = TASKS.get(options.task_type)
        if task is None:
            raise DataError(f"The image data family cannot prepare task type '{options.task_type}'; "
                            f"use one of {', '.join(TASKS)}.")
        roles = inspection.get("roles") or {}
        source = read_source(path, replace(options, image=roles.get("image") or options.image,
                                           target=roles.get("target") or options.target))
        check_labels(source, task)
        images = inspection.get("images") or probe(source)
        if source.pixels is not None:
            mode = "L" if source.pixels.shape[1] == 1 else "RGB"
        else:
            mode = inspection.get("mode") or choose_mode(images["modes"])
        size = resolve_size(options, default_size(images))
        channels = 1 if mode == "L" else 3
        out_dir.mkdir(parents=True, exist_ok=True)
        scratch = out_dir / "decoded.tmp.npy"
        if source.pixels is not None:
            array = _resize_pixels(source.pixels, size)
            ok, sizes, bad = np.ones(len(source), dtype=bool), None, []
        else:
            log(f"decoding {len(source)} images to {channels}×{size}×{size}")
            array = open_memmap(scratch, mode="w+", dtype=np.uint8, shape=(len(source), channels, size, size))
            ok, sizes, bad = _decode_all(source, mode, size, array, log, images.get("wide_range"))
        try:
            _check_undecodable(len(bad), len(source), bad[0] if bad else "", source.where, "found")
            if bad:
                log(f"skipped {len(bad)} images that could not be decoded (e.g. '{bad[0]}')", "warning")
            keep = np.flatnonzero(ok)
            require_rows(len(keep), "decodable images", source.where)
            written = _write_splits(source, task, options, array, keep, sizes, size, out_dir)
        finally:
            del array
            scratch.unlink(missing_ok=True)
        mean, std = channel_stats(out_dir / "X_train.npy")
        splits = written.pop("splits")
        meta: dict[str, Any] = {
            "family": self.name, "task_type": options.task_type, "task": task, "layout": source.layout,
            "files": written.pop("files"), "images": "images.json", "shape": [channels, size, size],
            "dtype": "uint8", "order": "NCHW", "mode": mode, "channels": channels, "image_size": size,
            "resize": "stretched to a square (aspect ratio not kept), bilinear", "mean": mean, "std": std,
            "splits": splits, "seed": options.seed, "undecodable_skipped": len(bad), **written,
        }
        meta_path = write_meta(out_dir, meta)
        report = {
            **{k: v for k, v in meta.items() if k not in ("files", "images")},
            "val_fraction": options.val_fraction, "test_fraction": options.test_fraction,
            "stratified": task == "classification", "undecodable_examples": bad[:5],
            **{k: v for k, v in source.extra.items() if k != "target"},
        }
        summary = f"{sum(splits.values())} images at {channels}×{size}×{size}; {split_summary(splits)}"
        if bad:
            summary += f"; skipped {len(bad)} undecodable"
        paths = {"dir": str(out_dir), "meta": str(meta_path), "images": str(out_dir / "images.json")}
        for split, entry in meta["files"].items():
            for kind, name in entry.items():
                paths[f"{kind}_{split}"] = str(out_dir / name)
        return Prepared(report, paths, summary)


def _write_splits(source: ImageSource, task: str, options: DataOptions, array: Any, keep: Any, sizes: Any,
                  size: int, out_dir: Path) -> dict[str, Any]:
    """Split the decodable images and write X/y (or boxes) per split plus ``images.json``; returns the
    meta entries: files, splits, classes and the task's extras."""
    import numpy as np

    from tools.splits import split_indices

    meta: dict[str, Any] = {}
    y: Any = None
    if task == "detection":
        classes = _classes([label for i in keep for label in source.box_labels[i]])  # type: ignore[index]
        splits = split_indices(len(keep), options.val_fraction, options.test_fraction, options.seed)
    else:
        labels = [source.labels[i] for i in keep]  # type: ignore[index]
        check_labels(source, task, labels)
        classes = _classes(labels) if task == "classification" else []
        if task == "classification":
            ids = {c: i for i, c in enumerate(classes)}
            y = np.asarray([ids[v] for v in labels], dtype=np.int64)
        else:
            y = np.asarray(labels, dtype=np.float32)
        splits = split_indices(len(keep), options.val_fraction, options.test_fraction, options.seed,
                               y if task == "classification" else None)
    files: dict[str, dict[str, str]] = {}
    names: dict[str, list[str]] = {}
    outside = 0
    for split, rows in splits.items():
        chosen = keep[rows]
        _write_rows(out_dir / f"X_{split}.npy", array, chosen)
        names[split] = [source.names[i] for i in chosen]
        if task == "detection":
            ids = {c: i for i, c in enumerate(classes)}
            records = []
            for i in chosen:
                scale = (size, size) if source.normalized_boxes else (size / sizes[i][0], size / sizes[i][1])
                boxes, labels = source.boxes[i], source.box_labels[i]  # type: ignore[index]
                record, lost = _scale_boxes(boxes, labels, ids, size, scale)
                records.append(record)
                outside += lost
            (out_dir / f"boxes_{split}.json").write_text(json.dumps(records))
            files[split] = {"X": f"X_{split}.npy", "boxes": f"boxes_{split}.json"}
        else:
            np.save(out_dir / f"y_{split}.npy", y[rows])
            files[split] = {"X": f"X_{split}.npy", "y": f"y_{split}.npy"}
    (out_dir / "images.json").write_text(json.dumps(names))
    meta["files"] = files
    meta["splits"] = {name: int(len(rows)) for name, rows in splits.items()}
    if task == "regression":
        train = y[splits["train"]]
        meta.update(target_mean=round(float(train.mean()), 6), target_std=round(float(train.std()), 6))
    else:
        meta.update(classes=classes, n_classes=len(classes))
    if task == "detection":
        meta.update(box_format="xyxy in pixels of the resized image; labels index classes",
                    boxes_outside_image=outside)
    return meta


IMAGES = Images()
