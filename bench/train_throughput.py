"""Training throughput of generated scripts vs a minimal hand-written torch loop:
`python bench/train_throughput.py [--rows 50000] [--epochs 4]`.

Same model, same data, same batch size, same optimizer; both sides time only their training
batches (shuffle and slicing included; no validation, checkpoints or start-up), as samples/sec of
their best epoch after the first (the least disturbed by other work on a shared machine), and the
ratio generated/hand is printed per family (tabular MLP, text transformer). Figures only; nothing
is asserted. Measured here (2 shared cores): tabular 0.96-1.19×, text 1.17-1.25×.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def generated_rate(script: Path, data_dir: Path, out_dir: Path, extra: list[str]) -> float:
    """Best samples/sec over the epochs after the first (warm-up), from the script's METRIC lines."""
    out = subprocess.run([sys.executable, str(script), "--data-dir", str(data_dir), "--out-dir", str(out_dir), *extra],
                         capture_output=True, text=True, cwd=script.parent)
    if out.returncode != 0:
        sys.exit(f"{script} failed:\n{out.stderr[-2000:]}")
    rates = [json.loads(line[7:])["samples_per_sec"] for line in out.stdout.splitlines()
             if line.startswith("METRIC ") and "samples_per_sec" in line]
    return max(rates[1:] or rates)  # best epoch: the least disturbed by other work on the machine


def hand_rate(model, config: dict, X, y, epochs: int) -> float:
    """Best samples/sec of a bare loop over its epochs: shuffle, slice a batch, forward, loss, backward,
    AdamW step — with the generated script's lr, weight decay and batch size."""
    import torch
    import torch.nn as nn

    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    loss_fn = nn.CrossEntropyLoss()
    batch_size = config["batch_size"]

    def step(xb: torch.Tensor, yb: torch.Tensor) -> int:
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(xb)

    rates = []
    for _ in range(epochs):
        started, seen = time.perf_counter(), 0
        perm = torch.randperm(len(X))
        for s in range(0, len(X), batch_size):
            idx = perm[s:s + batch_size]
            seen += step(X[idx], y[idx])
        rates.append(seen / (time.perf_counter() - started))
    return max(rates[1:] or rates)  # best epoch: the least disturbed by other work on the machine


def tabular(rows: int, epochs: int, root: Path) -> tuple[float, float]:
    import numpy as np
    import torch
    import torch.nn as nn

    from agents.codegen import render_training_script
    from tools.models.tabular import TABULAR, resolve_config
    from tools.prep import DataOptions
    from tools.prep.tabular import TABULAR as PREP

    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame(rng.normal(size=(rows, 40)), columns=[f"x{i}" for i in range(40)])
    frame["label"] = np.where(frame["x0"] + frame["x1"] * frame["x2"] + rng.normal(0, 1, rows) > 0, "yes", "no")
    csv = root / "tab.csv"
    frame.to_csv(csv, index=False)
    options = DataOptions("tabular_classification", target="label")
    inspection = PREP.inspect(csv, options)
    data_dir = root / "tab_data"
    PREP.prepare(csv, options, {**inspection.report, "roles": inspection.roles}, data_dir)
    config = resolve_config(int(rows * 0.7), {"model": "mlp", "epochs": epochs, "patience": 1000}, None)
    config["task"] = "classification"
    script = root / "tab_run" / "train.py"
    script.parent.mkdir()
    script.write_text(render_training_script("tabular", TABULAR.template_values("tabular_classification", config, {}, "bench")))
    generated = generated_rate(script, data_dir, root / "tab_out", ["--device", "cpu"])

    X = torch.from_numpy(np.load(data_dir / "X_train.npy"))
    y = torch.from_numpy(np.load(data_dir / "y_train.npy"))
    dims = [X.shape[1]] + [config["hidden"]] * config["layers"] + [2]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.ReLU(), nn.Dropout(config["dropout"])]
    model = nn.Sequential(*layers)
    return generated, hand_rate(model, config, X, y, epochs)


def text(rows: int, epochs: int, root: Path) -> tuple[float, float]:
    import json as _json

    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "examples"))
    from make_data import sms  # type: ignore[import-not-found]

    from agents.codegen import render_training_script
    from tools.models.text import TEXT_CLASSIFIER
    from tools.models.text_classifier_nets import build_net
    from tools.prep import DataOptions
    from tools.prep.text import TEXT_CLASSIFICATION as PREP

    csv = root / "sms.csv"
    sms(min(rows, 20_000), np.random.default_rng(5)).to_csv(csv, index=False)
    options = DataOptions("text_classification", target="label", text="message", params={"tokenizer": "bpe"})
    inspection = PREP.inspect(csv, options)
    data_dir = root / "text_data"
    PREP.prepare(csv, options, {**inspection.report, "roles": inspection.roles}, data_dir)
    meta = _json.loads((data_dir / "meta.json").read_text())
    config = TEXT_CLASSIFIER.config("text_classification", meta,
                                    {"arch": "transformer", "epochs": epochs, "patience": 1000}, None)
    script = root / "text_run" / "train.py"
    script.parent.mkdir()
    script.write_text(render_training_script("text_classifier", TEXT_CLASSIFIER.template_values(
        "text_classification", config, {}, "bench")))
    threads = torch.get_num_threads()
    generated = generated_rate(script, data_dir, root / "text_out", ["--device", "cpu", "--threads", str(threads)])

    ids = torch.from_numpy(np.load(data_dir / "ids_train.npy").astype(np.int64))
    y = torch.from_numpy(np.load(data_dir / "y_train.npy"))
    model = build_net("transformer", vocab_size=meta["tokenizer"]["vocab_size"], n_classes=len(meta["classes"]),
                      max_length=meta["max_length"], pad_id=meta["tokenizer"]["pad_id"], d_model=config["d_model"],
                      n_heads=config["n_heads"], layers=config["layers"], hidden=config["hidden"],
                      dropout=config["dropout"])
    return generated, hand_rate(model, config, ids, y, epochs)


FAMILIES = {"tabular": tabular, "text": text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("families", nargs="*", default=list(FAMILIES), help="which families to measure")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    for name in args.families:
        with tempfile.TemporaryDirectory() as tmp:
            generated, hand = FAMILIES[name](args.rows, args.epochs, Path(tmp))
        print(f"{name:<8} generated {generated:>10,.0f} samples/s   hand-written {hand:>10,.0f} samples/s   "
              f"ratio {generated / hand:.2f}×")


if __name__ == "__main__":
    main()
