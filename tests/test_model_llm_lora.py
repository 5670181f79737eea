"""LLM fine-tuning with LoRA (peft), offline: a tiny random GPT-2 and a BPE tokenizer are built here
and saved to a folder, and the spec points at that folder, so the real loading code runs. Covers a
CLI run end to end (beats the un-tuned base model, exports adapter + merged weights, `mltrainer
predict` completes prompts), --resume, the PEFT settings from the spec, and the refusals/fallbacks."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from mltrainer.spec import check_hyperparameters
from orchestrator.errors import SpecError, UnsupportedError
from tests.fakes.tiny_models import make_tiny_causal_lm
from tools.models.llm_finetune import LLM_FINETUNE

runner = CliRunner()
ROWS = [{"instruction": f"Add {i} and {i + 1}.", "output": f"The sum is {2 * i + 1}."} for i in range(60)]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_causal_lm(tmp_path_factory.mktemp("models") / "tiny-gpt2",
                               [r["instruction"] + " " + r["output"] for r in ROWS])


def write_pairs(folder: Path) -> Path:
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return path


def prepare(tmp_path: Path) -> dict[str, Any]:
    from tools.prep.base import DataOptions
    from tools.prep.lm import LANGUAGE_MODELLING

    source = write_pairs(tmp_path)
    options = DataOptions("llm_finetuning", seed=42)
    inspection = LANGUAGE_MODELLING.inspect(source, options)
    options = DataOptions("llm_finetuning", text=inspection.roles["text"], target=inspection.roles["target"])
    prepared = LANGUAGE_MODELLING.prepare(source, options, inspection.report, tmp_path / "data")
    assert prepared.summary.startswith("60 instruction examples")
    meta: dict[str, Any] = json.loads((tmp_path / "data" / "meta.json").read_text())
    return meta


# ------------------------------------------------------------------------------------ end to end
def test_cli_run_beats_the_base_model_exports_and_predicts(tmp_path: Path, tiny_lm: Path) -> None:
    write_pairs(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: fine-tune an LLM to add numbers\ntask_type: llm_finetuning\ndata:\n  source: pairs.jsonl\n"
                    f"hyperparameters:\n  backbone: {tiny_lm}\n  epochs: 2\n  lr: 0.01\n  batch_size: 8\n"
                    "  lora_r: 4\n  lora_alpha: 8\n")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "ft"])
    assert result.exit_code == 0, result.output
    detail = json.loads(runner.invoke(app, ["show", "ft", "--json"]).output)
    assert [s["status"] for s in detail["stages"][:3]] == ["done", "done", "done"]  # preprocessing writes JSON lines
    candidate = detail["architecture"]["candidates"][0]
    assert candidate["target_modules"] == ["c_attn"] and candidate["merge"] is True  # peft's default for gpt2
    run_out = Path(detail["artifacts"]["run_dir"])
    metrics = json.loads((run_out / "metrics.json").read_text())
    model_json = json.loads((run_out / "model.json").read_text())
    # measured on the meta device before training = counted by the script after attaching LoRA
    assert candidate["trainable_parameters"] == model_json["trainable_parameters"] == 4 * (32 + 96) * 2  # r × (in + out) of c_attn, 2 layers
    assert metrics["baseline"]["name"] == "base model (not fine-tuned)" and metrics["beats_baseline"]
    assert metrics["test"]["perplexity"] < metrics["baseline"]["perplexity"]
    assert detail["test_metrics"]["loss"] == pytest.approx(metrics["test"]["loss"], abs=1e-4)  # scored via predict.py

    export = Path(detail["artifacts"]["export_dir"])
    adapter = json.loads((export / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 8 and (export / "adapter" / "adapter_model.safetensors").is_file()
    assert (export / "merged" / "model.safetensors").is_file() and (export / "tokenizer" / "tokenizer.json").is_file()
    assert "peft" in (export / "requirements.txt").read_text()
    exports = json.loads((export / "exports.json").read_text())
    assert exports["onnx"]["onnx"] is None and "causal LM" in exports["onnx"]["reason"]

    # the merged weights are the base weights plus the adapter: same logits as base + adapter through peft
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[5, 9, 17, 3]])
    merged = AutoModelForCausalLM.from_pretrained(export / "merged").eval()
    attached = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_lm), export / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, attached(ids).logits, atol=1e-4)
        assert not torch.allclose(AutoModelForCausalLM.from_pretrained(tiny_lm)(ids).logits, merged(ids).logits, atol=1e-4)

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Add 3 and 4.\n\nAdd 10 and 11.\n")
    out = tmp_path / "completions.csv"
    result = runner.invoke(app, ["predict", "ft", "--input", str(prompts), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["prompt"] for r in rows] == ["Add 3 and 4.", "Add 10 and 11."] and all("completion" in r for r in rows)


# ------------------------------------------------------------------------------------ resume
def test_resume_continues_the_epoch_counter(tmp_path: Path, tiny_lm: Path) -> None:
    from agents.codegen import render_training_script

    meta = prepare(tmp_path)
    assert meta["format"] == "instruction" and sum(meta["splits"].values()) == 60
    record = json.loads((tmp_path / "data" / "train.jsonl").read_text().splitlines()[0])
    assert set(record) == {"prompt", "response"} and record["response"].startswith("The sum is")
    config = LLM_FINETUNE.config("llm_finetuning", meta, {"backbone": str(tiny_lm), "target_modules": "c_attn,c_proj",
                                                          "batch_size": 16, "lr": 0.01}, None)
    architecture = LLM_FINETUNE.architecture("llm_finetuning", config, meta)
    assert architecture["candidates"][0]["target_modules"] == ["c_attn", "c_proj"]
    script = tmp_path / "train.py"
    script.write_text(render_training_script("llm_lora", LLM_FINETUNE.template_values(
        "llm_finetuning", config, architecture, "resume-test")))
    base = [sys.executable, str(script), "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out"),
            "--device", "cpu", "--no-merge"]

    def epochs(*extra: str) -> list[int]:
        run = subprocess.run(base + list(extra), capture_output=True, text=True, cwd=tmp_path, timeout=180)
        assert run.returncode == 0, run.stderr
        lines = [json.loads(l[7:]) for l in run.stdout.splitlines() if l.startswith("METRIC ")]
        assert {"loss", "perplexity", "grad_norm", "lr", "tokens_per_sec"} <= set(lines[0])
        return [m["epoch"] for m in lines if m["split"] == "val"]

    assert epochs("--epochs", "1") == [1]
    first = json.loads((tmp_path / "out" / "checkpoint.json").read_text())["state"]["base"]
    assert epochs("--epochs", "2", "--resume") == [2]  # carries on, not from 0
    checkpoint = json.loads((tmp_path / "out" / "checkpoint.json").read_text())
    assert checkpoint["state"]["epoch"] == 2 and checkpoint["state"]["base"] == first  # the baseline is kept
    assert not (tmp_path / "out" / "merged").exists() and (tmp_path / "out" / "adapter").is_dir()


# ------------------------------------------------------------------------------------ config and refusals
META = {"splits": {"train": 40, "val": 10, "test": 10}, "characters_p95": 300, "format": "instruction"}


def test_peft_settings_refusals_and_fallbacks(tiny_lm: Path) -> None:
    assert check_hyperparameters({"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.1, "target_modules": "q_proj,v_proj",
                                  "quantize": "4bit", "merge": False}) == {
        "lora_r": 16, "lora_alpha": 32.0, "lora_dropout": 0.1, "target_modules": "q_proj,v_proj", "quantize": "4bit",
        "merge": "no"}  # YAML's `merge: no` arrives as False
    with pytest.raises(ValueError, match="lora_dropout"):
        check_hyperparameters({"lora_dropout": 0.95})

    with pytest.raises(SpecError, match="needs a base model"):
        LLM_FINETUNE.config("llm_finetuning", META, {}, None)
    config = LLM_FINETUNE.config("llm_finetuning", META, {"backbone": str(tiny_lm), "quantize": "4bit", "lora_r": 2}, None)
    assert config["lora_r"] == 2 and config["max_length"] == 128 and config["quantize"] == "none"
    assert "QLoRA (4bit) was asked for but" in config["quantize_note"]  # no bitsandbytes / CUDA here
    architecture = LLM_FINETUNE.architecture("llm_finetuning", config, META)
    assert architecture["notes"] == [config["quantize_note"]]
    values = LLM_FINETUNE.template_values("llm_finetuning", config, architecture, "job")
    assert values["lora_r"] == 2 and values["backbone"] == str(tiny_lm) and values["merge"] is True

    offline = LLM_FINETUNE.config("llm_finetuning", META, {"backbone": "nobody/not-a-cached-model"}, None)
    with pytest.raises(UnsupportedError, match="cannot be loaded"):  # HF_HUB_OFFLINE and nothing cached
        LLM_FINETUNE.architecture("llm_finetuning", offline, META)
    bad_modules = LLM_FINETUNE.config("llm_finetuning", META, {"backbone": str(tiny_lm), "target_modules": "q_proj"}, None)
    with pytest.raises(SpecError, match="target_modules"):
        LLM_FINETUNE.architecture("llm_finetuning", bad_modules, META)


def test_plain_text_corpus_becomes_text_records_cut_at_paragraphs(tmp_path: Path) -> None:
    from tools.prep.base import DataOptions
    from tools.prep.llm_finetune import CHUNK_CHARS, prepare_finetuning

    paragraphs = [f"Paragraph {i}: " + " ".join(f"word{j}" for j in range(60)) for i in range(40)]
    (tmp_path / "corpus.txt").write_text("\n\n".join(paragraphs))
    prepared = prepare_finetuning(tmp_path / "corpus.txt", DataOptions("llm_finetuning"), {}, tmp_path / "data")
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    assert meta["format"] == "text" and meta["record_keys"] == ["text"] and prepared.report["splits"] == meta["splits"]
    records = [json.loads(line) for split in ("train", "val", "test")
               for line in (tmp_path / "data" / f"{split}.jsonl").read_text().splitlines()]
    assert len(records) == sum(meta["splits"].values()) > 10
    assert all(len(r["text"]) <= CHUNK_CHARS and r["text"].startswith("Paragraph") for r in records)  # cut at breaks
    pieces = [p for r in records for p in r["text"].split("\n\n")]
    assert sorted(pieces) == sorted(paragraphs)  # whole paragraphs, nothing lost or duplicated
