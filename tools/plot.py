"""A loss-curve PNG for model cards, drawn with numpy and written with zlib: no plotting library.

No text is drawn (that would need a font); the model card names each line's colour and the axes.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

WIDTH, HEIGHT, MARGIN = 480, 260, 24
#: (name, RGB) per series, in order.
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("blue", (31, 119, 180)), ("orange", (255, 127, 14)), ("green", (44, 160, 44)), ("red", (214, 39, 40)),
    ("purple", (148, 103, 189)), ("brown", (140, 86, 75)), ("pink", (227, 119, 194)), ("grey", (127, 127, 127)),
)


def _png(pixels: object) -> bytes:
    import numpy as np

    rgb = np.asarray(pixels, dtype=np.uint8)
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def loss_series(rows: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """Training metric rows → (epoch, loss) points per "model split" (finite losses only)."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        loss, epoch = row.get("loss"), row.get("epoch")
        if isinstance(loss, (int, float)) and isinstance(epoch, (int, float)) and math.isfinite(loss):
            series.setdefault(f"{row.get('model', 'model')} {row.get('split', 'val')}", []).append((float(epoch), float(loss)))
    return series


def line_chart(series: dict[str, list[tuple[float, float]]], path: Path) -> list[tuple[str, str]]:
    """Draw each series (x, y points) in its own colour; returns (series name, colour name) for a legend.

    Non-finite points are skipped; a series with fewer than two points is left out.
    """
    import numpy as np

    kept = {name: [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)] for name, points in series.items()}
    kept = {name: points for name, points in kept.items() if len(points) >= 2}
    canvas = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
    left, bottom, right, top = MARGIN, HEIGHT - MARGIN, WIDTH - MARGIN // 2, MARGIN // 2
    canvas[top:bottom + 1, left] = canvas[bottom, left:right + 1] = (90, 90, 90)  # axes
    xs = [x for points in kept.values() for x, _ in points]
    ys = [y for points in kept.values() for _, y in points]
    legend: list[tuple[str, str]] = []
    if not xs:
        path.write_bytes(_png(canvas))
        return legend
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    for tick in range(1, 5):  # light grid lines at quarters
        row = bottom - (bottom - top) * tick // 4
        canvas[row, left + 1:right + 1:3] = (200, 200, 200)

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top)

    for (name, points), (colour, rgb) in zip(sorted(kept.items()), PALETTE * (1 + len(kept) // len(PALETTE))):
        legend.append((name, colour))
        for (xa, ya), (xb, yb) in zip(points, points[1:]):
            (ca, ra), (cb, rb) = to_pixel(xa, ya), to_pixel(xb, yb)
            steps = int(max(abs(cb - ca), abs(rb - ra)) * 2) + 1
            for t in np.linspace(0.0, 1.0, steps):
                c, r = int(round(ca + (cb - ca) * t)), int(round(ra + (rb - ra) * t))
                canvas[max(top, r - 1):min(bottom, r + 1) + 1, max(left + 1, c - 1):min(right, c + 1) + 1] = rgb
    path.write_bytes(_png(canvas))
    return legend
