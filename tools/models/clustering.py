"""Clustering: k-means on the encoded features and, for wide tables, k-means on the embedding of a
small MLP autoencoder; k is chosen by silhouette on the validation split unless n_clusters fixes it.

Exports need no torch: predict.py applies the fitted transform, runs the encoder in numpy and
assigns each row to its nearest centroid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, TrainingError
from tools.models.base import merge_locked

TOOLS = Path(__file__).resolve().parent.parent
NETS = Path(__file__).resolve().with_name("clustering_nets.py")

#: The catalogue: arch name → what it is. "auto" trains kmeans, plus the autoencoder on wide tables.
CATALOGUE: dict[str, str] = {
    "kmeans": "k-means on the features (k-means++ init, several restarts)",
    "autoencoder_kmeans": "MLP autoencoder, then k-means on its embedding",
}
#: "auto" adds the autoencoder candidate above this many features (a few features need no embedding).
AE_MIN_FEATURES = 20
#: Largest k of the automatic sweep (also capped by sqrt of the training rows).
K_MAX = 10
#: Rules by training-set size: (upper bound on rows, settings). First row whose bound holds wins.
#: Big tables get fewer k-means restarts and autoencoder epochs; k-means fits on at most fit_rows rows.
SIZE_RULES: tuple[tuple[float, dict[str, Any]], ...] = (
    (2_000, {"n_init": 10, "epochs": 30, "patience": 6}),
    (100_000, {"n_init": 6, "epochs": 15, "patience": 4}),
    (math.inf, {"n_init": 3, "epochs": 6, "patience": 3}),
)
BASE: dict[str, Any] = {
    "arch": "auto",
    "n_clusters": 0,  # 0 = choose k by silhouette over k_min..k_max
    "k_min": 2,
    "max_iter": 300,
    "tol": 1e-4,
    "fit_rows": 50_000,
    "lr": 2e-3,
    "weight_decay": 1e-5,
    "optimizer": "adamw",
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.05,
    "grad_accum_steps": 1,
    "clip_norm": 1.0,
    "dropout": 0.0,
    "layers": 1,
    "precision": "auto",
    "seed": 42,
}
TEMPLATE_KEYS = (
    "arch", "n_clusters", "k_min", "k_max", "n_init", "max_iter", "tol", "fit_rows", "epochs", "batch_size", "lr",
    "weight_decay", "optimizer", "lr_scheduler", "warmup_ratio", "grad_accum_steps", "clip_norm", "patience",
    "hidden", "layers", "d_model", "dropout", "precision", "seed", "time_budget",
)
#: Imports the template already makes at its top; dropped from the inlined nets source.
TEMPLATE_IMPORTS = ("import numpy as np", "import torch", "import torch.nn as nn")
EXPORT_REQUIREMENTS = "numpy\npandas\nsafetensors\n"


def batch_size_for(rows: int) -> int:
    """About 16 steps an epoch, a power of two between 32 and 512."""
    target = min(512, max(32, rows / 16))
    return int(2 ** round(math.log2(target)))


def k_max_for(rows: int) -> int:
    """min(10, sqrt(rows)), never below 2 (and below the row count so silhouette is defined)."""
    return max(2, min(K_MAX, int(math.sqrt(max(rows, 1))), rows - 1))


def plan_candidates(arch: str, n_features: int) -> list[str]:
    """The candidates an arch setting trains, in training order."""
    if arch == "auto":
        return ["kmeans"] + (["autoencoder_kmeans"] if n_features > AE_MIN_FEATURES else [])
    return [arch]


def autoencoder_parameters(n_in: int, hidden: int, latent: int, layers: int) -> int:
    """Exact parameter count of AutoEncoder (encoder and its mirror)."""
    dims = [n_in] + [hidden] * layers + [latent]
    return 2 * sum((a + 1) * b for a, b in zip(dims, dims[1:]))


def nets_source() -> str:
    """clustering_nets.py without its module docstring and imports, to inline into train.py."""
    text = NETS.read_text()
    if text.startswith('"""'):
        text = text.split('"""', 2)[2]
    lines = [line for line in text.splitlines() if line not in TEMPLATE_IMPORTS]
    return "\n".join(lines).strip("\n") + "\n"


class Clustering:
    name = "clustering"

    def config(self, task_type: str, meta: dict[str, Any], locked: dict[str, Any],
               time_budget: float | None) -> dict[str, Any]:
        rows, n_features = int(meta["splits"]["train"]), int(meta["n_features"])
        defaults = {**BASE, **next(rule for bound, rule in SIZE_RULES if rows <= bound)}
        defaults.update({
            "k_max": k_max_for(rows),
            "batch_size": batch_size_for(rows),
            "hidden": int(min(128, max(16, 2 * n_features))),
            "d_model": int(min(16, max(2, n_features // 4))),  # the embedding width
        })
        if "scheduler" in locked and "lr_scheduler" not in locked:
            locked = {**locked, "lr_scheduler": locked["scheduler"]}
        config = merge_locked(defaults, locked, time_budget)
        config.pop("scheduler", None)
        if config["arch"] not in ("auto", *CATALOGUE):
            raise SpecError(f"hyperparameter arch={config['arch']!r} is not a clustering model; "
                            f"choose {' or '.join(CATALOGUE)} (or leave it out).")
        k = int(config.get("n_clusters") or 0)
        if k and k >= rows:
            raise SpecError(f"n_clusters={k} needs more than {k} training rows, the data has {rows}; "
                            "ask for fewer clusters or give more rows.")
        config["k_max"] = max(int(config["k_max"]), int(config["k_min"]))
        config["task_type"] = task_type
        config["model"] = config["arch"]
        return config

    def architecture(self, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        import torch

        from tools.model_summary import summarize
        from tools.models import clustering_nets as nets

        n_in = int(meta["n_features"])
        k = int(config.get("n_clusters") or 0)
        ks = [k] if k else list(range(int(config["k_min"]), int(config["k_max"]) + 1))
        sweep = f"k={k} (fixed)" if k else f"k={ks[0]}..{ks[-1]} by validation silhouette"
        torch.manual_seed(0)
        batch = torch.randn(min(8, max(2, int(meta["splits"]["train"]))), n_in)
        candidates: list[dict[str, Any]] = []
        for name in plan_candidates(config["arch"], n_in):
            if name == "kmeans":
                model = nets.Clusterer(torch.zeros(ks[-1], n_in).numpy())
                kind = f"k-means ({config['n_init']} k-means++ restarts), {sweep}"
                extra: dict[str, Any] = {"space": "features", "dims": n_in}
            else:
                ae = nets.AutoEncoder(n_in, config["hidden"], config["d_model"], config["layers"], config["dropout"])
                model = nets.Clusterer(torch.zeros(ks[-1], config["d_model"]).numpy(), ae.encoder)
                kind = f"MLP autoencoder {n_in}→{config['hidden']}→{config['d_model']}, then k-means, {sweep}"
                extra = {"space": "embedding", "dims": config["d_model"], "epochs": config["epochs"],
                         "autoencoder_parameters": autoencoder_parameters(n_in, config["hidden"], config["d_model"],
                                                                          config["layers"])}
            summary = summarize(model, batch)
            candidates.append({"name": name, "kind": kind, "k": ks, **extra,
                               "parameters": extra.get("autoencoder_parameters", 0) + ks[-1] * extra["dims"],
                               "summary": summary})
        selection = "best validation silhouette (measured on the input features for every candidate)"
        summary = " + ".join(c["name"] for c in candidates) + f"; {sweep}; keep the best validation silhouette"
        return {"family": self.name, "candidates": candidates, "selection": selection, "summary": summary}

    def template_values(self, task_type: str, config: dict[str, Any], architecture: dict[str, Any],
                        job_id: str) -> dict[str, Any]:
        return {**{key: config[key] for key in TEMPLATE_KEYS}, "job_id": job_id, "nets_source": nets_source(),
                "ae_min_features": AE_MIN_FEATURES}

    def export(self, task_type: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, float]:
        import numpy as np

        from tools.models import clustering_nets as nets
        from tools.models.base import stage_export

        module = stage_export(staging, "clustering", data_dir, ("transform.json", "meta.json"),
                              {"transform.py": TOOLS / "tabular_transform.py"}, EXPORT_REQUIREMENTS)
        predictor = module.Predictor.load(str(staging))
        # The prepared test split holds transformed features (no raw rows), so it enters after the transform.
        X = np.load(data_dir / "X_test.npy")
        clusters = predictor.predict_features(X)
        if len(clusters) != len(X):
            raise TrainingError("The exported predict.py returned a different number of rows than it was given.")
        labels = data_dir / "labels_test.npy"
        reference = np.load(labels) if labels.exists() else None
        return nets.clustering_metrics(X, clusters, reference)


CLUSTERING = Clustering()
