"""The loss-curve PNG is a real image with one colour per series."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tools.plot import PALETTE, line_chart


def test_each_series_is_drawn_in_its_colour(tmp_path: Path) -> None:
    path = tmp_path / "curve.png"
    legend = line_chart({"mlp val": [(1, 1.0), (2, 0.6), (3, 0.5)], "mlp train": [(1, 0.9), (2, 0.4), (3, 0.2)],
                         "broken": [(1, float("nan"))]}, path)
    assert legend == [("mlp train", "blue"), ("mlp val", "orange")]  # sorted; the one-point series is left out
    image = Image.open(path)
    assert image.size == (480, 260) and image.mode == "RGB"
    colours = {colour for _, colour in image.getcolors(maxcolors=100_000)}
    assert dict(PALETTE)["blue"] in colours and dict(PALETTE)["orange"] in colours
    assert dict(PALETTE)["green"] not in colours


def test_nothing_to_draw_still_writes_a_valid_empty_chart(tmp_path: Path) -> None:
    assert line_chart({}, tmp_path / "empty.png") == []
    assert Image.open(tmp_path / "empty.png").size == (480, 260)
