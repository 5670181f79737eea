"""The pre-flight plan: estimates from measured summaries, and a time budget that trims epochs."""

from __future__ import annotations

from typing import Any

from tools.preflight import make_plan, measure_gflops, plan_rows

ARCH: dict[str, Any] = {"candidates": [
    {"name": "transformer", "parameters": 1000,
     "summary": {"total_parameters": 1000, "input_shape": [2, 16], "flops_per_example": 5e6,
                 "activation_bytes_per_batch": 2 * 4096}},
    {"name": "gbdt", "parameters": 0},  # no forward pass to measure: no estimate, no crash
]}
META = {"splits": {"train": 10_000, "val": 1000, "test": 1000}}


def test_estimates_come_from_the_measured_summary() -> None:
    plan = make_plan(ARCH, {"batch_size": 64, "epochs": 10}, META, gflops=10.0)
    transformer, gbdt = plan["candidates"]
    # 3 × 5 MFLOP × 10k rows at 15% of 10 GFLOP/s
    assert transformer["epoch_seconds"] == 100.0 and plan["estimated_seconds"] == 1000.0
    assert transformer["peak_memory_bytes"] == 1000 * 16 + 4096 * 64 * 2
    assert gbdt["epoch_seconds"] is None and gbdt["peak_memory_bytes"] is None
    assert "epochs_fitted" not in plan  # no budget, nothing trimmed
    labels = dict(plan_rows(plan))
    assert "1,000 parameters" in labels["transformer"] and "about 100s an epoch" in labels["transformer"]


def test_a_time_budget_trims_epochs_unless_the_user_fixed_them() -> None:
    plan = make_plan(ARCH, {"batch_size": 64, "epochs": 10, "time_budget": 350.0}, META, gflops=10.0)
    assert plan["epochs_fitted"] == 3 and "3 fit the 350s budget" in plan["note"]
    locked = make_plan(ARCH, {"batch_size": 64, "epochs": 10, "time_budget": 350.0, "locked": ["epochs"]}, META,
                       gflops=10.0)
    assert "epochs_fitted" not in locked
    tiny = make_plan(ARCH, {"batch_size": 64, "epochs": 10, "time_budget": 1.0}, META, gflops=10.0)
    assert tiny["epochs_fitted"] == 1  # never below one epoch


def test_the_probe_measures_this_machine() -> None:
    assert measure_gflops(size=64, repeats=2) > 0.01
