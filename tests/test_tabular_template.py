"""Tests for the tabular training template (tools/templates/tabular/train.py.j2) and the export predict.py."""

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = ROOT / "tools" / "templates" / "tabular"
ALLOWED_IMPORTS = set(sys.stdlib_module_names) | {"numpy", "torch", "safetensors"}

BASE_CFG = {
    "task": "classification", "model": "auto", "epochs": 200, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4,
    "hidden": 32, "layers": 2, "dropout": 0.1, "patience": 20, "seed": 0, "gbdt_rounds": 500, "gbdt_lr": 0.1,
    "gbdt_max_leaves": 15, "gbdt_min_leaf": 5, "gbdt_l2": 1.0, "time_budget": 0.0,
    "job_id": 'job-"""\\ 1',  # quotes and a backslash must not break the docstring
}


def render(**overrides) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string((TEMPLATE_DIR / "train.py.j2").read_text()).render(cfg={**BASE_CFG, **overrides})


def write_data(d: Path, task: str, X: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    n = len(X)
    cuts = {"train": slice(0, int(0.6 * n)), "val": slice(int(0.6 * n), int(0.8 * n)), "test": slice(int(0.8 * n), n)}
    for name, sl in cuts.items():
        np.save(d / f"X_{name}.npy", X[sl].astype(np.float32))
        np.save(d / f"y_{name}.npy", y[sl].astype(np.int64 if task == "classification" else np.float32))
    meta = {"task": task, "feature_names": [f"f{i}" for i in range(X.shape[1])]}
    if n_classes:
        meta["n_classes"] = n_classes
    (d / "meta.json").write_text(json.dumps(meta))
    return d


class Run:
    """One subprocess run of the rendered script, with its parsed METRIC and RESULT lines."""

    def __init__(self, script: Path, data: Path, out: Path, *extra: str, expect_ok: bool = True):
        cmd = [sys.executable, str(script), "--data-dir", str(data), "--out-dir", str(out), "--device", "cpu", *extra]
        self.proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if expect_ok:
            assert self.proc.returncode == 0, self.proc.stderr[-3000:]
        lines = self.proc.stdout.splitlines()
        self.metrics = [json.loads(line[len("METRIC "):]) for line in lines if line.startswith("METRIC ")]
        res = [json.loads(line[len("RESULT "):]) for line in lines if line.startswith("RESULT ")]
        self.result = res[-1] if res else None
        self.out = out

    def epochs(self, model: str) -> list[int]:
        return [m["epoch"] for m in self.metrics if m["model"] == model]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("tabular")
    (w / "train_cls.py").write_text(render(task="classification"))
    (w / "train_reg.py").write_text(render(task="regression", hidden=32))
    X, y = make_classification(500, 10, n_informative=6, n_classes=3, random_state=0)
    write_data(w / "cls3", "classification", X, y, 3)
    X, y = make_classification(400, 8, n_informative=4, n_classes=2, random_state=1)
    write_data(w / "cls2", "classification", X, y, 2)
    X, y = make_regression(400, 8, n_informative=5, noise=5.0, random_state=0)
    write_data(w / "reg", "regression", X, 3 * y + 100.0)  # offset and scale exercise target standardisation
    return w


def load_predict():
    spec = importlib.util.spec_from_file_location("tabular_predict", TEMPLATE_DIR / "predict.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def candidates(run: Run) -> dict:
    """Per-candidate results without the wall times."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "time_s"} for k, v in run.result["candidates"].items()}


def check_export_matches(out: Path, data: Path, task: str) -> None:
    """predict.py's numpy inference must reproduce the train script's own test metrics."""
    predict = load_predict()
    metrics = json.loads((out / "metrics.json").read_text())
    model = predict.load_model(str(out))
    assert model.kind == metrics["best_model"]
    X, y = np.load(data / "X_test.npy"), np.load(data / "y_test.npy")
    pred, proba = predict.predict_arrays(model, X)
    assert len(pred) == len(X)
    if task == "classification":
        assert pred.dtype == np.int64 and np.allclose(proba.sum(axis=1), 1.0)
        assert np.mean(pred == y) == pytest.approx(metrics["test"]["accuracy"], abs=1e-12)
        logloss = -np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1)).mean()
        assert logloss == pytest.approx(metrics["test"]["log_loss"], rel=1e-4)
    else:
        assert proba is None
        r2 = 1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2)
        assert r2 == pytest.approx(metrics["test"]["r2"], abs=1e-5)


def test_template_renders_clean_python():
    src = render()
    tree = ast.parse(src)
    assert "{{" not in src and "{%" not in src
    assert len(src.splitlines()) < 800  # the module soft cap
    assert ast.get_docstring(tree).count("--smoke") >= 1
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= ALLOWED_IMPORTS
        if isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in ALLOWED_IMPORTS
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            assert "help" in {k.arg for k in node.keywords}, ast.unparse(node)
    for flag in ["--data-dir", "--out-dir", "--task", "--model", "--epochs", "--batch-size", "--lr", "--weight-decay",
                 "--hidden", "--layers", "--dropout", "--patience", "--seed", "--gbdt-rounds", "--gbdt-lr",
                 "--gbdt-max-leaves", "--gbdt-min-leaf", "--gbdt-l2", "--time-budget", "--device", "--amp",
                 "--resume", "--smoke"]:
        assert f'"{flag}"' in src
    assert "default=0.002" in render(lr=0.002) and 'default="regression"' in render(task="regression")


def test_classification_smoke_auto(work):
    r = Run(work / "train_cls.py", work / "cls3", work / "out_cls3", "--smoke")
    for name in ["model.safetensors", "model.json", "metrics.json", "checkpoint.json"]:
        assert (r.out / name).is_file(), name
    metrics = json.loads((r.out / "metrics.json").read_text())
    assert r.result == metrics
    assert metrics["primary_metric"] == "accuracy" and set(metrics["candidates"]) == {"gbdt", "mlp"}
    assert metrics["test"]["accuracy"] > 0.6  # chance is 1/3
    assert set(metrics["test"]) == {"accuracy", "macro_f1", "log_loss"} == set(metrics["val"])
    assert metrics["best_val"] == max(c["val"]["accuracy"] for c in metrics["candidates"].values())
    for m in r.metrics:
        assert {"model", "epoch", "total_epochs", "split", "loss", "accuracy"} <= set(m) and m["split"] == "val"
    assert r.epochs("gbdt") == [1, 10] and r.epochs("mlp") == [1, 2]  # smoke: 10 trees, 2 epochs
    info = json.loads((r.out / "model.json").read_text())
    assert info["n_classes"] == 3 and info["n_features"] == 10 and info["kind"] == metrics["best_model"]
    check_export_matches(r.out, work / "cls3", "classification")


def test_binary_gbdt_export(work):
    r = Run(work / "train_cls.py", work / "cls2", work / "out_cls2", "--model", "gbdt", "--gbdt-rounds", "40")
    assert r.result["best_model"] == "gbdt" and r.result["test"]["accuracy"] > 0.75
    assert r.epochs("gbdt")[-1] == 40 and len(r.epochs("gbdt")) <= 6  # printed every ~10 rounds
    from safetensors.numpy import load_file
    t = load_file(str(r.out / "model.safetensors"))
    assert t["base_score"].shape == (1,) and t["feature"].dtype == np.int32 and t["tree_offsets"].dtype == np.int64
    assert len(t["tree_offsets"]) == r.result["candidates"]["gbdt"]["rounds"]
    check_export_matches(r.out, work / "cls2", "classification")


def test_mlp_classification_export_and_predict_frame(work, tmp_path):
    r = Run(work / "train_cls.py", work / "cls3", work / "out_mlp3", "--model", "mlp", "--epochs", "4")
    assert r.result["best_model"] == "mlp" and r.epochs("mlp") == [1, 2, 3, 4]
    check_export_matches(r.out, work / "cls3", "classification")
    # export folder with stand-in transform files, used from another working directory
    exp = tmp_path / "export"
    exp.mkdir()
    for name in ["model.safetensors", "model.json"]:
        shutil.copy(r.out / name, exp / name)
    shutil.copy(TEMPLATE_DIR / "predict.py", exp / "predict.py")
    (exp / "transform.py").write_text(
        "import numpy as np\n"
        "def apply(spec, df):\n    return df[spec['features']].to_numpy(np.float32)\n"
        "def decode_target(spec, pred):\n    return np.asarray(spec['classes'])[pred]\n")
    feats = [f"f{i}" for i in range(10)]
    (exp / "transform.json").write_text(json.dumps({"target": "label", "features": feats, "classes": ["a", "b", "c"]}))
    X = np.load(work / "cls3" / "X_test.npy")
    df = pd.DataFrame(X, columns=feats)
    predict = load_predict()
    out = predict.predict_frame(str(exp), df)
    assert list(out.columns) == ["label", "proba_a", "proba_b", "proba_c"] and len(out) == len(df)
    pred, _ = predict.predict_arrays(predict.load_model(str(exp)), X)
    assert (out["label"].to_numpy() == np.array(["a", "b", "c"])[pred]).all()
    df.to_csv(tmp_path / "rows.csv", index=False)
    proc = subprocess.run([sys.executable, str(exp / "predict.py"), "--input", str(tmp_path / "rows.csv"),
                           "--output", str(tmp_path / "preds.csv")], capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(tmp_path / "preds.csv")["label"].tolist() == out["label"].tolist()


def test_resume_continues_exactly(work):
    script, data = work / "train_reg.py", work / "reg"
    args = ["--gbdt-rounds", "20", "--patience", "50"]
    first = Run(script, data, work / "out_resume", *args, "--epochs", "3")
    assert first.epochs("gbdt")[-1] == 20 and first.epochs("mlp") == [1, 2, 3]
    ck = json.loads((work / "out_resume" / "checkpoint.json").read_text())
    assert ck["phase"] == "done" and ck["candidates"]["mlp"]["epoch"] == 3 and ck["candidates"]["gbdt"]["finished"]
    gbdt_ckpt = work / "out_resume" / "checkpoint_gbdt.npz"
    gbdt_mtime = gbdt_ckpt.stat().st_mtime_ns

    resumed = Run(script, data, work / "out_resume", *args, "--epochs", "6", "--resume")
    assert resumed.epochs("gbdt") == []  # finished GBDT is reloaded, not retrained
    assert gbdt_ckpt.stat().st_mtime_ns == gbdt_mtime
    assert resumed.epochs("mlp") == [4, 5, 6]  # continues at the next epoch
    assert all(m["total_epochs"] == 6 for m in resumed.metrics)

    fresh = Run(script, data, work / "out_fresh", *args, "--epochs", "6")
    def timeless(rows: list) -> list:  # throughput is a measurement, not state
        return [{k: v for k, v in row.items() if k != "samples_per_sec"} for row in rows]

    assert timeless([m for m in fresh.metrics if m["model"] == "mlp"][3:]) == timeless(resumed.metrics)  # identical optimizer/RNG state
    assert candidates(fresh) == candidates(resumed)
    assert resumed.result["test"]["r2"] > 0.5
    check_export_matches(work / "out_resume", data, "regression")

    again = Run(script, data, work / "out_resume", *args, "--epochs", "6", "--resume")  # done: just rewrite outputs
    assert again.metrics == [] and candidates(again) == candidates(resumed)


def test_regression_gbdt_export(work):
    r = Run(work / "train_reg.py", work / "reg", work / "out_reg_gbdt", "--model", "gbdt", "--gbdt-rounds", "60")
    assert r.result["test"]["r2"] > 0.6 and set(r.result["test"]) == {"r2", "rmse", "mae"}
    check_export_matches(r.out, work / "reg", "regression")


def test_time_budget_stops_early_but_resumable(work):
    r = Run(work / "train_cls.py", work / "cls3", work / "out_budget", "--model", "gbdt", "--time-budget", "0.001")
    assert r.epochs("gbdt") == [1] and r.result["candidates"]["gbdt"]["rounds"] == 1
    ck = json.loads((r.out / "checkpoint.json").read_text())
    assert ck["phase"] != "done" and not ck["candidates"]["gbdt"]["finished"]
    again = Run(work / "train_cls.py", work / "cls3", work / "out_budget", "--model", "gbdt", "--gbdt-rounds", "12", "--resume")
    assert again.epochs("gbdt") == [2, 10, 12]  # picks up after the first round


@pytest.mark.parametrize("case", ["bad_label", "missing_file"])
def test_bad_data_fails_with_clear_message(work, tmp_path, case):
    data = tmp_path / "data"
    shutil.copytree(work / "cls3", data)
    if case == "bad_label":
        np.save(data / "y_val.npy", np.full(100, 7, np.int64))
    else:
        os.remove(data / "X_test.npy")
    r = Run(work / "train_cls.py", data, tmp_path / "out", expect_ok=False)
    assert r.proc.returncode != 0
    err = r.proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    assert ("y_val" in err) if case == "bad_label" else ("X_test.npy" in err)
