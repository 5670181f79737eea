"""Config rules respect locked values, and the rendered train.py carries them as its defaults."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from agents.codegen import render_training_script
from tools.models.tabular import TABULAR, resolve_config


def test_rules_scale_with_rows_and_locked_values_win() -> None:
    small = resolve_config(500, {}, None)
    large = resolve_config(100_000, {}, 600)
    assert small["hidden"] < 256 <= large["hidden"]
    assert small["dropout"] > large["dropout"]
    assert 32 <= small["batch_size"] <= large["batch_size"] <= 256
    assert resolve_config(40, {}, None)["gbdt_min_leaf"] < small["gbdt_min_leaf"] == large["gbdt_min_leaf"] == 20
    assert large["time_budget"] == 600
    locked = resolve_config(500, {"lr": 0.0123, "epochs": 7, "model": "gbdt", "val_fraction": 0.2}, None)
    assert (locked["lr"], locked["epochs"], locked["model"]) == (0.0123, 7, "gbdt")
    assert "val_fraction" not in locked


def test_rendered_script_uses_the_config_as_argparse_defaults(tmp_path: Path) -> None:
    cfg = resolve_config(500, {"lr": 0.0123, "epochs": 7}, None) | {"task": "classification"}
    source = render_training_script("tabular", TABULAR.template_values("tabular_classification", cfg, {}, 'job "quoted" \\ id'))
    ast.parse(source)
    script = tmp_path / "train.py"
    script.write_text(source)
    helptext = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=True).stdout
    assert "0.0123" in helptext and "--resume" in helptext and "--smoke" in helptext
    assert "default: 7" in helptext or "(default 7)" in helptext or "7)" in helptext
    assert "import os\n" in source or "import os," in source
    for banned in ("environ[", "getenv(", "TOKEN", "API_KEY"):
        assert banned not in source


def test_requirements_name_what_the_script_imports() -> None:
    from agents.codegen import requirements_for

    plain = requirements_for("tabular", "import numpy\nimport torch\n")
    assert "torch==2.13.0" in plain and "transformers" not in plain
    pretrained = requirements_for("text_classifier", "import torch\nfrom transformers import AutoModel\n")
    assert pretrained.splitlines()[-1] == "transformers"
    assert requirements_for("llm_lora").split()[-3:] == ["transformers", "peft", "tokenizers"]
