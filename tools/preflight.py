"""The pre-flight plan shown before training: parameters, estimated peak memory at the chosen batch
size, measured device speed, estimated wall time per candidate — and, under a time budget, the
epochs trimmed so the run fits.

Estimates come from the architecture stage's forward-pass summaries (FLOPs and activation bytes per
example) and a short matmul probe of this machine, not from a model's guess. They are coarse (small
models are dominated by per-step overhead, which the probe does not see), so the plan says "about".
"""

from __future__ import annotations

import time
from typing import Any

#: Training costs about three forward passes (forward + backward of twice the work).
TRAIN_FLOPS_FACTOR = 3.0
#: Weights + gradients + two AdamW moments, in bytes per parameter (fp32).
BYTES_PER_PARAMETER = 16
#: fp32 weights alone: a frozen parameter (LoRA's base, a frozen backbone) needs no gradient or moments.
BYTES_PER_FROZEN_PARAMETER = 4
#: Frozen base weights quantized for QLoRA, in bytes per parameter.
QUANTIZED_BYTES = {"4bit": 0.5, "8bit": 1.0}
#: Activations kept for backward, relative to the forward pass's outputs.
ACTIVATION_FACTOR = 2.0
#: Share of peak matmul speed real training reaches on small models (measured on the bench scripts).
EFFICIENCY = 0.15
#: Epochs are never trimmed below this many.
MIN_EPOCHS = 1


def measure_gflops(size: int = 384, repeats: int = 5) -> float:
    """Matmul speed of this CPU in GFLOP/s: a 10 ms float32 probe. numpy's BLAS, not torch's: the same
    order of speed, without importing torch (a second) into the orchestrator for jobs that never need it."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    elapsed = max(time.perf_counter() - started, 1e-9)
    return 2 * size**3 * repeats / elapsed / 1e9


def candidate_plan(candidate: dict[str, Any], config: dict[str, Any], train_rows: int, gflops: float) -> dict[str, Any]:
    """Memory and time estimates of one candidate (None where its summary lacks the figure)."""
    summary = candidate.get("summary") or {}
    params = int(summary.get("total_parameters") or candidate.get("parameters") or 0)
    trainable = int(summary.get("trainable_parameters", params))
    batch = int(config.get("batch_size") or 32)
    per_example_act = summary.get("activation_bytes_per_batch", 0) / max(1, (summary.get("input_shape") or [1])[0])
    frozen_bytes = QUANTIZED_BYTES.get(str(config.get("quantize")), BYTES_PER_FROZEN_PARAMETER)
    memory = (trainable * BYTES_PER_PARAMETER + (params - trainable) * frozen_bytes
              + per_example_act * batch * ACTIVATION_FACTOR)
    flops = summary.get("flops_per_example")
    epoch_seconds = (flops * TRAIN_FLOPS_FACTOR * train_rows / (gflops * 1e9 * EFFICIENCY)) if flops else None
    if epoch_seconds and candidate.get("freeze"):  # a frozen encoder embeds each example once, then only the head trains
        epoch_seconds /= TRAIN_FLOPS_FACTOR * max(1, int(config.get("epochs") or 1))
    return {
        "name": candidate.get("name"),
        "parameters": params,
        "peak_memory_bytes": int(memory) if params else None,
        "epoch_seconds": round(epoch_seconds, 3) if epoch_seconds is not None else None,
    }


def make_plan(architecture: dict[str, Any], config: dict[str, Any], meta: dict[str, Any],
              gflops: float | None = None) -> dict[str, Any]:
    """The plan for every candidate, and the epochs that fit the time budget (if one is set)."""
    gflops = gflops if gflops is not None else measure_gflops()
    train_rows = int((meta.get("splits") or {}).get("train") or 0)
    epochs = int(config.get("epochs") or 1)
    plans = [candidate_plan(c, config, train_rows, gflops) for c in architecture.get("candidates", [])]
    known = [p["epoch_seconds"] for p in plans if p["epoch_seconds"]]
    epoch_total = sum(known) if known else None
    plan: dict[str, Any] = {"device": "cpu", "gflops": round(gflops, 1), "batch_size": config.get("batch_size"),
                            "epochs": epochs, "candidates": plans,
                            "estimated_seconds": round(epoch_total * epochs, 1) if epoch_total else None}
    budget = float(config.get("time_budget") or 0)
    if budget and epoch_total and epoch_total * epochs > budget and "epochs" not in config.get("locked", []):
        fitted = max(MIN_EPOCHS, int(budget / epoch_total))
        if fitted < epochs:
            plan["epochs_fitted"] = fitted
            plan["note"] = f"{epochs} epochs would take about {epoch_total * epochs:,.0f}s; {fitted} fit the {budget:,.0f}s budget"
    return plan


def plan_rows(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """The plan as (label, value) lines for the live view."""
    rows = [("device", f"{plan['device']} (about {plan['gflops']:,.0f} GFLOP/s measured)"),
            ("batch × epochs", f"{plan.get('batch_size')} × {plan.get('epochs_fitted', plan['epochs'])}")]
    for c in plan["candidates"]:
        memory = f", peak memory about {c['peak_memory_bytes'] / 1e6:,.1f} MB" if c.get("peak_memory_bytes") else ""
        seconds = c.get("epoch_seconds")
        epoch = f", about {seconds:.2f}s an epoch" if seconds and seconds < 10 else (
            f", about {seconds:,.0f}s an epoch" if seconds else "")
        rows.append((str(c["name"]), f"{c['parameters']:,} parameters{memory}{epoch}"))
    if plan.get("estimated_seconds"):
        rows.append(("estimate", f"about {plan['estimated_seconds']:,.0f}s of training (early stopping may end it sooner)"))
    if plan.get("note"):
        rows.append(("budget", plan["note"]))
    return rows
