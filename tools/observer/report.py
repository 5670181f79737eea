"""Text summaries of a finished job's training for ``mltrainer show``: a sparkline and the phases."""

from __future__ import annotations

import math
from typing import Any

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    """Values as block characters, lowest ▁ to highest █; at most ``width`` wide (bucket means)."""
    clean = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not clean:
        return ""
    if len(clean) > width:
        size = len(clean) / width
        clean = [sum(chunk) / len(chunk) for i in range(width)
                 for chunk in [clean[int(i * size):max(int(i * size) + 1, int((i + 1) * size))]]]
    low, high = min(clean), max(clean)
    span = high - low
    return "".join(SPARKS[int((v - low) / span * (len(SPARKS) - 1) + 0.5)] if span > 0 else SPARKS[0] for v in clean)


def curve_line(rows: list[dict[str, Any]], model: str | None = None) -> str | None:
    """'mlp val loss ▇▅▃▂▁▁ 0.693 → 0.312 (best 0.301 at epoch 5, 6 epochs)' for the kept model."""
    for split in ("val", "train"):
        names = [model] if model else []
        names += [r.get("model") for r in rows if r.get("model") not in names]
        for name in names:
            points = [(r["epoch"], float(r["loss"])) for r in rows if r.get("model") == name and r.get("split") == split
                      and isinstance(r.get("loss"), (int, float)) and isinstance(r.get("epoch"), (int, float))]
            if len(points) >= 2:
                values = [v for _, v in points]
                finite = [(e, v) for e, v in points if math.isfinite(v)]
                best = min(finite, key=lambda p: p[1]) if finite else (points[-1][0], math.nan)
                return (f"{name} {split} loss {sparkline(values)} {values[0]:.4g} → {values[-1]:.4g} "
                        f"(best {best[1]:.4g} at epoch {best[0]:g}, {len(points)} readings)")
    return None


def phases_line(events: list[dict[str, Any]]) -> str | None:
    """'attempt 1: mlp warmup → diverging; attempt 2: mlp warmup → learning_fast → converged'."""
    attempts: list[tuple[int, dict[str, list[str]]]] = []
    for event in events:
        if event.get("type") == "stage_start" and event.get("stage") == "training":
            attempts.append((int(event.get("attempt", len(attempts) + 1)), {}))
        elif event.get("type") == "training_phase":
            if not attempts:
                attempts.append((1, {}))
            attempts[-1][1].setdefault(str(event.get("model", "")), []).append(str(event.get("phase")))
    parts = []
    for attempt, models in attempts:
        if models:
            chain = "; ".join(f"{name} {' → '.join(phases)}".strip() for name, phases in models.items())
            parts.append(f"attempt {attempt}: {chain}" if len(attempts) > 1 else chain)
    return "; ".join(parts) or None


def advice_lines(events: list[dict[str, Any]]) -> list[str]:
    """Each piece of advice the observer gave, marked when the training stage acted on it."""
    out = []
    for event in events:
        if event.get("type") == "training_advice" and (event.get("confirmed") or event.get("acted")):
            out.append(("acted: " if event.get("acted") else "") + f"{event.get('model')}: {event.get('message')}")
    return out
