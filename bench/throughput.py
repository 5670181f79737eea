"""Training throughput: each generated training script against a minimal hand-written torch loop on
the same model, data, batch size and optimizer (tabular MLP, text transformer, image CNN).

Both sides time only their training batches (shuffle and slicing included; no validation, checkpoints
or start-up), as samples/sec of their best epoch after the first (the least disturbed by other work on
a shared machine). The ratio is generated / hand-written; the goal is at least 0.9. The tabular and
text measurements are those of bench/train_throughput.py; the image one is added here (synthetic
28×28 grey images through the real preprocessing, augmentation off on both sides so the work is the same).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench.common import Goal, Section, Table, log
from bench.train_throughput import generated_rate, hand_rate, tabular, text

GOAL = 0.9


def image_table(path: Path, rows: int, side: int = 28, classes: int = 10) -> None:
    """MNIST-like pixel table: each class a bright square at its own place, on noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, rows)
    images = rng.integers(0, 60, (rows, side, side)).astype(np.uint8)
    for k in range(classes):
        r, c = divmod(k, 4)
        images[labels == k, 2 + 6 * r:8 + 6 * r, 2 + 6 * c:8 + 6 * c] = 220
    frame = pd.DataFrame(images.reshape(rows, -1), columns=[f"pixel{i}" for i in range(side * side)])
    frame["label"] = [f"c{k}" for k in labels]
    frame.to_parquet(path, index=False)


def image(rows: int, epochs: int, root: Path) -> tuple[float, float]:
    import numpy as np
    import torch

    from agents.codegen import render_training_script
    from tools.models.image import IMAGE_MODELS, model_spec
    from tools.models.image_nets import build_model
    from tools.prep import DataOptions
    from tools.prep.image import IMAGES as PREP

    table = root / "pixels.parquet"
    image_table(table, rows)
    options = DataOptions("image_classification", target="label")
    inspection = PREP.inspect(table, options)
    data_dir = root / "image_data"
    PREP.prepare(table, options, {**inspection.report, "roles": inspection.roles}, data_dir)
    meta = json.loads((data_dir / "meta.json").read_text())
    config = IMAGE_MODELS.config("image_classification", meta, {"epochs": epochs, "patience": 1000}, None)
    config["augment"] = False
    script = root / "image_run" / "train.py"
    script.parent.mkdir()
    script.write_text(render_training_script("image", IMAGE_MODELS.template_values(
        "image_classification", config, {}, "bench")))
    threads = torch.get_num_threads()
    generated = generated_rate(script, data_dir, root / "image_out",
                               ["--device", "cpu", "--threads", str(threads), "--no-augment"])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(model_spec(config, meta))
    X = torch.from_numpy(np.load(data_dir / "X_train.npy")).float()
    y = torch.from_numpy(np.load(data_dir / "y_train.npy"))
    return generated, hand_rate(model, config, X, y, epochs)


FAMILIES = {"tabular": tabular, "text": text, "image": image}
#: (rows, epochs) per family: full run, quick run.
SIZES = {"tabular": ((50_000, 4), (5_000, 2)), "text": ((20_000, 4), (2_000, 2)), "image": ((8_000, 3), (1_500, 2))}


def run(quick: bool = False) -> Section:
    import torch

    rows, goals = [], []
    for name, measure in FAMILIES.items():
        n, epochs = SIZES[name][1 if quick else 0]
        log(f"throughput: {name} ({n:,} rows, {epochs} epochs)")
        with tempfile.TemporaryDirectory(prefix=f"bench-throughput-{name}-") as tmp:
            generated, hand = measure(n, epochs, Path(tmp))
        ratio = generated / hand
        rows.append([name, f"{n:,}", epochs, f"{generated:,.0f}", f"{hand:,.0f}", f"{ratio:.2f}×"])
        goals.append(Goal(f"{name}: generated script ≥ {GOAL} × the hand-written loop's samples/sec", f"{ratio:.2f}×",
                          ratio >= GOAL,
                          cause="the generated loop does more per batch than the bare one (gradient clipping, a "
                                "per-step learning-rate schedule, loss bookkeeping); on a shared machine a busy "
                                "moment during one side's epochs also shows here."))
    intro = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU. Same model, data, batch size and "
             "optimizer on both sides; each side's best epoch after the first.")
    table = Table("Samples per second", ["family", "rows", "epochs", "generated", "hand-written", "ratio"], rows)
    return Section("throughput", "Training throughput: generated scripts vs a hand-written loop", intro, [table], goals)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv).to_json(), indent=2, default=str))
