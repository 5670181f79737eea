"""The clustering family: k-means (+ autoencoder) end to end through the CLI, resume of the k sweep
and the autoencoder epochs, the measured architecture summary, the numpy metrics and predict.py."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file
from sklearn.datasets import make_blobs
from typer.testing import CliRunner

from agents.codegen import render_training_script
from mltrainer.app import app
from orchestrator.errors import SpecError
from tools.models import clustering_nets as nets
from tools.models.clustering import CLUSTERING

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def blobs_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Three well separated groups in three numeric columns and a categorical one, with a label column."""
    X, y = make_blobs(n, 3, centers=3, cluster_std=1.0, random_state=seed)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["shade"] = np.array(["dark", "light", "mid"])[y]
    frame["group"] = np.array(["g1", "g2", "g3"])[y]
    return frame


def write_arrays(d: Path, n_features: int = 24, n: int = 300) -> Path:
    """A prepared data dir like tools/prep/clustering.py writes (wide, so auto adds the autoencoder)."""
    X, y = make_blobs(n, n_features, centers=3, cluster_std=2.0, random_state=1)
    X = (X - X.mean(0)) / X.std(0)
    d.mkdir(parents=True, exist_ok=True)
    cuts = {"train": slice(0, int(0.7 * n)), "val": slice(int(0.7 * n), int(0.85 * n)), "test": slice(int(0.85 * n), n)}
    for name, sl in cuts.items():
        np.save(d / f"X_{name}.npy", X[sl].astype(np.float32))
        np.save(d / f"labels_{name}.npy", y[sl].astype(str))
    meta = {"n_features": n_features, "feature_names": [f"f{i}" for i in range(n_features)], "reference_labels": "label",
            "splits": {name: sl.stop - sl.start for name, sl in cuts.items()}}
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def render(data: Path, locked: dict | None = None) -> str:
    meta = json.loads((data / "meta.json").read_text())
    config = CLUSTERING.config("clustering", meta, locked or {}, None)
    arch = CLUSTERING.architecture("clustering", config, meta)
    return render_training_script("clustering", CLUSTERING.template_values("clustering", config, arch, "job-1"))


def run_script(script: Path, data: Path, out: Path, *extra: str) -> list[dict]:
    cmd = [sys.executable, str(script), "--data-dir", str(data), "--out-dir", str(out), "--device", "cpu", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("METRIC ")]


def val_epochs(metrics: list[dict], model: str) -> list[int]:
    return [m["epoch"] for m in metrics if m["model"] == model and m["split"] == "val"]


def load_predict():
    spec = importlib.util.spec_from_file_location("clustering_predict", ROOT / "tools" / "templates" / "clustering" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_clustering_job_end_to_end_and_predict(tmp_path: Path) -> None:
    frame = blobs_frame()
    frame.iloc[:210].to_csv(tmp_path / "data.csv", index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: group the rows into clusters\ntask_type: clustering\n"
                    "data: {source: data.csv, target: group}\nhyperparameters: {seed: 3}\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "clu"])
    assert result.exit_code == 0, result.output
    detail = json.loads(runner.invoke(app, ["show", "clu", "--json"]).output)
    assert detail["status"] == "done"
    assert {s["status"] for s in detail["stages"]} <= {"done", "skipped"} and len(detail["stages"]) == 9
    job = Path(detail["artifacts"]["export_dir"]).parent
    metrics = json.loads((job / "run" / "out" / "metrics.json").read_text())
    assert metrics["primary_metric"] == "silhouette" and metrics["higher_is_better"] is True
    assert metrics["n_clusters"] == 3 and metrics["best_model"] == "kmeans"
    assert metrics["test"]["silhouette"] > metrics["baseline"]["silhouette"] + 0.3
    assert metrics["test"]["ari"] > 0.9 > metrics["baseline"]["ari"] + 0.5
    assert detail["test_metrics"]["ari"] == pytest.approx(metrics["test"]["ari"])  # the export re-scores through predict.py
    export = Path(detail["artifacts"]["export_dir"])
    for name in ("predict.py", "model.safetensors", "README.md", "transform.py", "transform.json", "requirements.txt"):
        assert (export / name).exists(), name
    assert "torch" not in (export / "requirements.txt").read_text()

    new = frame.iloc[210:]
    new.to_csv(tmp_path / "new.csv", index=False)  # the label column comes along and is ignored
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["predict", "clu", "--input", str(tmp_path / "new.csv"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    clusters = pd.read_csv(out)["cluster"]
    assert len(clusters) == len(new) and set(clusters) <= {0, 1, 2}
    assert nets.adjusted_rand(new["group"], clusters) > 0.9

    new.drop(columns=["b"]).to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(app, ["predict", "clu", "--input", str(tmp_path / "bad.csv"), "--output", str(out)])
    assert result.exit_code == 1 and "missing 1 column(s) the model needs: 'b'" in result.output
    assert "Traceback" not in result.output


def test_resume_continues_the_k_sweep_and_the_autoencoder_epochs(tmp_path: Path) -> None:
    data = write_arrays(tmp_path / "data")
    script = tmp_path / "train.py"
    script.write_text(render(data))
    out = tmp_path / "out"
    first = run_script(script, data, out, "--k-max", "3", "--epochs", "1")
    assert val_epochs(first, "kmeans") == [1, 2] and val_epochs(first, "autoencoder") == [1]
    assert {m["split"] for m in first if m["model"] == "autoencoder"} == {"train", "val"}
    train_line = next(m for m in first if m["model"] == "autoencoder" and m["split"] == "train")
    assert {"loss", "grad_norm", "lr", "samples_per_sec"} <= set(train_line)
    second = run_script(script, data, out, "--resume", "--k-max", "4", "--epochs", "3")
    assert val_epochs(second, "kmeans") == [3]  # k=2 and k=3 come from the checkpoint
    assert val_epochs(second, "autoencoder") == [2, 3]  # not restarted from 0
    assert val_epochs(second, "autoencoder_kmeans") == [1, 2, 3]  # a retrained encoder refits its ks
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 + 3 + 3 and metrics["test"]["silhouette"] > metrics["baseline"]["silhouette"]
    assert set(metrics["candidates"]["kmeans"]["sweep"]) == {"2", "3", "4"}
    # predict.py's numpy path (nearest centroid, encoder when kept) reproduces train.py's test metrics
    info = json.loads((out / "model.json").read_text())
    predictor = load_predict().Predictor(str(out), info, load_file(str(out / "model.safetensors")), {}, None)
    X, y = np.load(data / "X_test.npy"), np.load(data / "labels_test.npy")
    assert nets.clustering_metrics(X, predictor.predict_features(X), y) == metrics["test"]


def test_architecture_summary_is_measured() -> None:
    meta = {"n_features": 24, "splits": {"train": 400, "val": 50, "test": 50}}
    config = CLUSTERING.config("clustering", meta, {"d_model": 4}, None)
    arch = CLUSTERING.architecture("clustering", config, meta)
    assert [c["name"] for c in arch["candidates"]] == ["kmeans", "autoencoder_kmeans"]
    for cand in arch["candidates"]:
        summary = cand["summary"]
        assert cand["parameters"] > 0 and summary["total_parameters"] > 0
        assert summary["layers"] and all(layer["output_shape"] for layer in summary["layers"])
        assert summary["layers"][-1]["output_shape"][-1] == config["k_max"]  # distances to the largest k's centroids
    ae = arch["candidates"][1]["summary"]["layers"]
    assert [layer["output_shape"][-1] for layer in ae if layer["type"] == "Linear"] == [config["hidden"], 4]
    assert CLUSTERING.config("clustering", meta, {"n_clusters": 5, "arch": "kmeans"}, None)["n_clusters"] == 5
    with pytest.raises(SpecError, match="not a clustering model"):
        CLUSTERING.config("clustering", meta, {"arch": "dbscan"}, None)


def test_numpy_metrics_match_scikit_learn() -> None:
    from sklearn import metrics as sk

    X, y = make_blobs(300, 5, centers=4, random_state=0)
    C = nets.kmeans(X, 4, np.random.default_rng(0), n_init=3)[0]
    labels = nets.assign(X, C)[0]
    noisy = np.where(np.arange(300) % 7 == 0, (labels + 1) % 4, labels)
    for lab in (labels, noisy):
        assert nets.silhouette(X, lab) == pytest.approx(sk.silhouette_score(X, lab))
        assert nets.davies_bouldin(X, lab) == pytest.approx(sk.davies_bouldin_score(X, lab))
        assert nets.adjusted_rand(y.astype(str), lab) == pytest.approx(sk.adjusted_rand_score(y, lab))
        assert nets.normalized_mutual_info(y, lab) == pytest.approx(sk.normalized_mutual_info_score(y, lab))


def test_predict_runs_the_encoder_in_numpy_and_rejects_bad_input(tmp_path: Path) -> None:
    import torch
    from safetensors.numpy import save_file

    from tools import tabular_transform as tt

    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 6)), columns=[f"x{i}" for i in range(6)])
    (tmp_path / "transform.json").write_text(json.dumps(tt.fit(frame, None, "clustering")))
    (tmp_path / "transform.py").write_text((ROOT / "tools" / "tabular_transform.py").read_text())
    torch.manual_seed(0)
    ae = nets.AutoEncoder(6, 8, 3, layers=2, dropout=0.1)
    model = nets.Clusterer(np.random.default_rng(1).normal(size=(4, 3)), ae.encoder).eval()
    save_file({k: v.detach().numpy().copy() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    arch = {"centroids": "head.centroids", "encoder": nets.linear_names(ae.encoder)}
    (tmp_path / "model.json").write_text(json.dumps({"kind": "autoencoder_kmeans", "family": "clustering",
                                                     "n_features": 6, "architecture": arch}))
    predictor = load_predict().Predictor.load(str(tmp_path))
    X = tt.apply(json.loads((tmp_path / "transform.json").read_text()), frame)
    with torch.no_grad():
        expected = model(torch.from_numpy(X)).argmin(1).numpy()
    assert (predictor.predict_features(X) == expected).all()
    assert predictor.predict(frame) == expected.tolist()
    assert predictor.predict(frame.iloc[0].to_dict()) == [int(expected[0])]

    with pytest.raises(ValueError, match="missing 1 column"):
        predictor.predict(frame.drop(columns=["x3"]))
    with pytest.raises(ValueError, match="no rows"):
        predictor.predict(frame.iloc[:0])
    with pytest.raises(ValueError, match="6 columns"):
        predictor.predict_features(X[:, :4])
    with pytest.raises(ValueError, match="does not exist"):
        load_predict().predict_file(str(tmp_path), str(tmp_path / "nope.csv"), str(tmp_path / "o.csv"))
