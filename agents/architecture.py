"""Architecture: which candidate models to train and how big, from the data and the config."""

from __future__ import annotations

from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext


def mlp_parameters(n_in: int, hidden: int, layers: int, n_out: int) -> int:
    """Exact parameter count of the Linear stack the template builds."""
    sizes = [n_in] + [hidden] * layers + [n_out]
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))


class ArchitectureAgent(BaseAgent):
    stage = "architecture"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        cfg = context.config
        prep = context.preprocessing_report
        n_in = int(prep["n_features"])
        n_out = int(prep.get("n_classes", 1)) if cfg["task"] == "classification" else 1
        choice = cfg.get("model", "auto")
        candidates: list[dict[str, Any]] = []
        if choice in ("auto", "gbdt"):
            candidates.append({
                "name": "gbdt",
                "kind": "gradient-boosted trees (histogram, leaf-wise)",
                "max_rounds": cfg["gbdt_rounds"],
                "max_leaves": cfg["gbdt_max_leaves"],
                "min_leaf": cfg["gbdt_min_leaf"],
                "trees_per_round": n_out if n_out > 2 else 1,
            })
        if choice in ("auto", "mlp"):
            candidates.append({
                "name": "mlp",
                "kind": "multilayer perceptron (Linear-ReLU-Dropout)",
                "input": n_in,
                "hidden": cfg["hidden"],
                "layers": cfg["layers"],
                "output": n_out,
                "parameters": mlp_parameters(n_in, cfg["hidden"], cfg["layers"], n_out),
            })
        selection = "best validation " + ("accuracy" if cfg["task"] == "classification" else "R²")
        architecture = {"family": "tabular", "candidates": candidates, "selection": selection}
        names = " + ".join(c["name"] for c in candidates)
        mlp = next((c for c in candidates if c["name"] == "mlp"), None)
        summary = f"{names}" + (f"; mlp {mlp['parameters']:,} params" if mlp else "") + f"; keep {selection}"
        return {"architecture": architecture, "summary": summary}
