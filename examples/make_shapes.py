"""Regenerate the object-detection example (deterministic): `python examples/make_shapes.py`.

Writes ``examples/data/shapes/``: small PNG scenes (flat backgrounds, so each file is a few hundred
bytes) with 1-3 shapes each — red squares, green discs, blue triangles of varying size and shade —
and a COCO ``annotations.json`` (bbox = [x, y, width, height] in pixels). The files are committed so
the example runs offline; tests call :func:`make_shapes` to build smaller sets of their own.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent / "data" / "shapes"
CLASSES = ("square", "disc", "triangle")
COLORS = {"square": (210, 50, 40), "disc": (40, 180, 60), "triangle": (50, 70, 220)}


def _overlaps(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    x1, y1, x2, y2 = box
    return any(x1 < b[2] + 1 and b[0] < x2 + 1 and y1 < b[3] + 1 and b[1] < y2 + 1 for b in placed)


def make_shapes(root: Path, count: int = 300, size: int = 48, seed: int = 3) -> Path:
    """``count`` scenes of ``size``×``size`` pixels under ``root/images`` and ``root/annotations.json``."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        shade = int(rng.integers(70, 150))
        image = Image.new("RGB", (size, size), (shade, shade, int(shade * 0.9)))
        draw = ImageDraw.Draw(image)
        placed: list[tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(1, 4))):
            for _attempt in range(20):
                side = int(rng.integers(size // 6, size // 2.5))
                x, y = int(rng.integers(0, size - side)), int(rng.integers(0, size - side))
                box = (x, y, x + side, y + side)
                if not _overlaps(box, placed):
                    break
            else:
                continue
            name = CLASSES[int(rng.integers(0, len(CLASSES)))]
            color = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in COLORS[name])
            if name == "square":
                draw.rectangle((x, y, x + side - 1, y + side - 1), fill=color)
            elif name == "disc":
                draw.ellipse((x, y, x + side - 1, y + side - 1), fill=color)
            else:
                draw.polygon([(x + side / 2, y), (x, y + side - 1), (x + side - 1, y + side - 1)], fill=color)
            placed.append(box)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": CLASSES.index(name) + 1,
                                "bbox": [x, y, side, side]})
        file_name = f"{i:04d}.png"
        image.save(root / "images" / file_name, optimize=True)
        images.append({"id": i, "file_name": file_name, "width": size, "height": size})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                       "categories": categories}))
    return root


if __name__ == "__main__":
    make_shapes(HERE)
