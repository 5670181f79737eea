"""Eject: a finished job becomes a standalone project whose smoke test passes in a fresh virtual
environment, with no mltrainer import anywhere in it.

The venv is made with ``python -m venv --system-site-packages --without-pip``: fresh (its own
interpreter and site-packages, no PYTHONPATH, run from the ejected folder) but it sees this machine's
installed torch/numpy/safetensors/pytest, so the test does not download torch. A user runs
``pip install -r requirements.txt`` in a plain venv instead (the README says so).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from tests.conftest import make_classification_frame, write_spec

runner = CliRunner()
OURS = {"mltrainer", "tools", "agents", "orchestrator", "tests"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_ejected_job_passes_its_smoke_test_in_a_fresh_venv(tmp_path: Path) -> None:
    make_classification_frame(200).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, hyper={"model": "mlp", "epochs": 3, "patience": 2, "hidden": 16})
    result = runner.invoke(app, ["run", str(spec), "--job-id", "clf"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "standalone"
    result = runner.invoke(app, ["eject", "clf", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("train.py", "data/meta.json", "data/X_train.npy", "model/predict.py", "model/model.safetensors",
                 "requirements.txt", "README.md", "test_smoke.py", "spec.yaml", "eject.json"):
        assert (out / name).is_file(), name
    assert "torch==2.13.0" in (out / "requirements.txt").read_text() and "pytest" in (out / "requirements.txt").read_text()
    readme = (out / "README.md").read_text()
    assert "pip install -r requirements.txt" in readme and "python train.py --data-dir data --out-dir out" in readme
    assert "pytest -q test_smoke.py" in readme
    for path in [out / "train.py", out / "test_smoke.py", *(out / "model").glob("*.py")]:
        assert not imported_roots(path) & OURS, path  # it lives on without mltrainer

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLTRAINER_HOME", "VIRTUAL_ENV")}
    python = venv / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_smoke.py"], cwd=out,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
    prefix = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"], env=env, capture_output=True, text=True)
    assert Path(prefix.stdout.strip()) == venv  # the smoke test really ran in the new environment
    # the exported model inside predicts on its own, too
    rows = make_classification_frame(20, seed=5).drop(columns=["label"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    proc = subprocess.run([str(python), "model/predict.py", "--input", str(tmp_path / "rows.csv"), "--output",
                           str(tmp_path / "p.csv")], cwd=out, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 21

    # a second eject into the same (now non-empty) folder is refused in one sentence
    result = runner.invoke(app, ["eject", "clf", str(out)])
    assert result.exit_code == 2 and "not an empty folder" in result.output
    assert json.loads((out / "eject.json").read_text())["job_id"] == "clf"


def test_eject_needs_a_job_past_codegen(tmp_path: Path) -> None:
    make_classification_frame(60).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path)
    assert runner.invoke(app, ["run", str(spec), "--job-id", "early", "--until", "preprocessing"]).exit_code == 0
    result = runner.invoke(app, ["eject", "early", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no training script yet" in result.output
    assert not (tmp_path / "out").exists()
    result = runner.invoke(app, ["eject", "missing", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no job named 'missing'" in result.output


@pytest.mark.parametrize("secret_key", [("data", "token"), ("llm", "api_key")])
def test_spec_written_out_holds_no_credential_reference(secret_key: tuple[str, str]) -> None:
    from tools.eject import clean_spec

    section, key = secret_key
    spec = {"task": "t", "data": {"source": "d.csv"}, "llm": {"model": "openai/x"}, "deploy": None}
    spec[section][key] = "⟨secret:hf_token:1⟩"
    cleaned = clean_spec(spec)
    assert key not in cleaned[section] and "deploy" not in cleaned and "secret" not in json.dumps(cleaned)
