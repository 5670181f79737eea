"""Regenerate the LLM fine-tuning example's data (deterministic): `python examples/make_instructions.py`.

Writes ``examples/data/instructions.jsonl``: short instruction/response pairs (unit conversions and
sums, answered in one fixed style) — a format a small base model does not follow before fine-tuning
and picks up from a few hundred examples, so the fine-tuned perplexity drops well below the base's.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent / "data"
UNITS = [("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("hours", "minutes", 60),
         ("minutes", "seconds", 60), ("kilograms", "grams", 1000), ("litres", "millilitres", 1000)]


def instructions(count: int = 240, seed: int = 21) -> list[dict[str, str]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        if i % 2:
            big, small, factor = UNITS[int(rng.integers(0, len(UNITS)))]
            n = int(rng.integers(2, 50))
            rows.append({"instruction": f"How many {small} are in {n} {big}?",
                         "output": f"Answer: {n * factor} {small}. ({n} × {factor} = {n * factor})"})
        else:
            a, b = (int(v) for v in rng.integers(10, 500, 2))
            rows.append({"instruction": f"What is {a} plus {b}?", "output": f"Answer: {a + b}. ({a} + {b} = {a + b})"})
    return rows


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    (HERE / "instructions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in instructions()))
