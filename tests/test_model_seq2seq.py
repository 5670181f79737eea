"""The seq2seq family (tools/models/seq2seq.py, its template and predict.py): a word-substitution
"translation" and a lead+keyword "summary" are learnt well enough to beat their trivial baselines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from orchestrator.errors import SpecError, UnsupportedError
from tests.conftest import REPO

runner = CliRunner()

#: English → an invented language, word for word (no target word is an English word, so copying the
#: source scores BLEU 0). examples/data/word_pairs.csv is ``word_pairs(1500, seed=0)``.
DICTIONARY = {
    "the": "la", "a": "un", "cat": "mirko", "dog": "baksa", "bird": "tulvi", "fish": "senno", "house": "kazu",
    "tree": "arbel", "river": "fluno", "city": "urbak", "child": "idel", "teacher": "lerno", "friend": "amik",
    "book": "libor", "apple": "pomel", "boat": "navo", "sees": "vidas", "likes": "satas", "finds": "trovas",
    "eats": "mangas", "follows": "sekvas", "helps": "helpas", "big": "granda", "small": "eta", "red": "ruga",
    "old": "malnova", "happy": "gaja", "quick": "rapida", "green": "verda", "near": "prok", "with": "kun",
    "today": "hodia",
}
NOUNS = ["cat", "dog", "bird", "fish", "house", "tree", "river", "city", "child", "teacher", "friend", "book",
         "apple", "boat"]
VERBS = ["sees", "likes", "finds", "eats", "follows", "helps"]
ADJECTIVES = ["big", "small", "red", "old", "happy", "quick", "green"]


def word_pairs(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` English sentences ("the old cat sees a boat near the river") and their word-by-word
    translations, columns ``english`` and ``glossa``."""
    rng = np.random.default_rng(seed)

    def phrase() -> list[str]:
        words = [str(rng.choice(["the", "a"]))]
        if rng.random() < 0.5:
            words.append(str(rng.choice(ADJECTIVES)))
        return words + [str(rng.choice(NOUNS))]

    rows = []
    for _ in range(n):
        words = phrase() + [str(rng.choice(VERBS))] + phrase()
        if rng.random() < 0.35:
            words += [str(rng.choice(["near", "with"]))] + phrase()
        if rng.random() < 0.2:
            words.append("today")
        rows.append((" ".join(words), " ".join(DICTIONARY[w] for w in words)))
    return pd.DataFrame(rows, columns=["english", "glossa"])


def lead_summaries(n: int, seed: int = 1) -> pd.DataFrame:
    """Documents of 8-13 words; the summary is their first 3 words, "about" and the one topic word
    hidden later in the text (lead-N alone misses the topic)."""
    rng = np.random.default_rng(seed)
    vocab = [w for w in DICTIONARY if w not in ("the", "a")]
    topics = ["storm", "market", "festival", "election", "harvest", "concert"]
    rows = []
    for _ in range(n):
        words = [str(w) for w in rng.choice(vocab, int(rng.integers(8, 13)))]
        topic = str(rng.choice(topics))
        words.insert(int(rng.integers(5, len(words))), topic)
        rows.append((" ".join(words), " ".join(words[:3] + ["about", topic])))
    return pd.DataFrame(rows, columns=["document", "summary"])


#: Small and quick, yet enough steps to learn both toy tasks (measured: val BLEU ~0.95, ROUGE-L ~0.7).
FAST = {"epochs": 8, "patience": 8, "d_model": 64, "hidden": 128, "dropout": 0.0, "batch_size": 16, "lr": 3e-3,
        "tokenizer": "wordpiece", "vocab_size": 300}


def write_spec(directory: Path, task_type: str, frame: pd.DataFrame, text: str, target: str,
               hyper: dict[str, Any] | None = None) -> Path:
    import yaml

    frame.to_csv(directory / "pairs.csv", index=False)
    spec = {"task": f"{task_type} of the pairs", "task_type": task_type,
            "data": {"source": "pairs.csv", "text": text, "target": target},
            "hyperparameters": {**FAST, **(hyper or {})}}
    path = directory / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def show(job: str) -> dict:
    result = runner.invoke(app, ["show", job, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_translation_end_to_end_beats_copying_and_predicts(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "translation", word_pairs(400, seed=3), "english", "glossa")
    result = runner.invoke(app, ["run", str(spec), "--job-id", "tr"])
    assert result.exit_code == 0, result.output
    detail = show("tr")
    assert detail["status"] == "done"
    assert all(s["status"] in ("done", "skipped") for s in detail["stages"]) and len(detail["stages"]) == 9
    run_out = Path(detail["artifacts"]["run_dir"])
    metrics = json.loads((run_out / "metrics.json").read_text())
    assert metrics["primary_metric"] == "bleu" and metrics["baseline"]["name"] == "copy the source"
    assert metrics["test"]["bleu"] > metrics["baseline"]["bleu"] + 0.5, metrics
    assert abs(detail["test_metrics"]["bleu"] - metrics["test"]["bleu"]) < 0.05  # the export scores like train.py
    export = Path(detail["artifacts"]["export_dir"])
    for name in ("predict.py", "model.safetensors", "model.json", "README.md", "tokenizer.json", "seq2seq_nets.py",
                 "requirements.txt"):
        assert (export / name).is_file(), name
    assert "tokenizers" in (export / "requirements.txt").read_text()

    inputs = tmp_path / "new.txt"
    inputs.write_text("the old cat sees a boat\n\na happy child helps the teacher today\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["predict", "tr", "--input", str(inputs), "--output", str(out)])
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["source", "output"] and len(predictions) == 2
    assert predictions["output"].str.len().min() > 0


# ---------------------------------------------------------------------------- script-level tests
def prepare(directory: Path, task_type: str, frame: pd.DataFrame, text: str, target: str) -> Path:
    from tools.prep import DataOptions
    from tools.prep.seq2seq import SEQ2SEQ as PREP

    frame.to_csv(directory / "pairs.csv", index=False)
    options = DataOptions(task_type=task_type, text=text, target=target,
                          params={"tokenizer": "wordpiece", "vocab_size": 300})
    inspection = PREP.inspect(directory / "pairs.csv", options)
    PREP.prepare(directory / "pairs.csv", options, {"roles": inspection.roles, **inspection.report}, directory / "data")
    return directory / "data"


def render(directory: Path, task_type: str, config: dict[str, Any], meta: dict[str, Any]) -> Path:
    from agents.codegen import gate, render_training_script
    from tools.models.seq2seq import SEQ2SEQ

    architecture = SEQ2SEQ.architecture(task_type, config, meta)
    source = render_training_script("seq2seq", SEQ2SEQ.template_values(task_type, config, architecture, 'job-"""\\1'))
    gate(source)
    script = directory / "train.py"
    script.write_text(source)
    return script


def train(script: Path, data: Path, out: Path, *extra: str, ok: bool = True) -> list[dict[str, Any]]:
    cmd = [sys.executable, str(script), "--data-dir", str(data), "--out-dir", str(out), "--device", "cpu", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    else:
        assert proc.returncode == 2, proc.stdout[-2000:]
        assert proc.stderr.strip().startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        return [{"stderr": proc.stderr}]
    return [json.loads(line[len("METRIC "):]) for line in proc.stdout.splitlines() if line.startswith("METRIC ")]


@pytest.fixture(scope="module")
def summary_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Prepared lead+topic summaries and the rendered train.py (10 epochs by default)."""
    from tools.models.seq2seq import SEQ2SEQ

    work = tmp_path_factory.mktemp("summaries")
    data = prepare(work, "summarization", lead_summaries(300), "document", "summary")
    meta = json.loads((data / "meta.json").read_text())
    config = SEQ2SEQ.config("summarization", meta, dict(FAST, epochs=10, patience=10, lr=5e-3), None)
    return data, render(work, "summarization", config, meta)


@pytest.fixture(scope="module")
def translation_meta(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = prepare(tmp_path_factory.mktemp("pairs"), "translation", word_pairs(300, seed=3), "english", "glossa")
    return dict(json.loads((data / "meta.json").read_text()))


def test_resume_continues_and_summaries_beat_lead(tmp_path: Path, summary_job: tuple[Path, Path]) -> None:
    """Killed after epoch 3, then --resume: the counter carries on from the checkpoint, and the model
    learns to copy the topic word that the lead-N baseline misses."""
    data, script = summary_job
    out = tmp_path / "out"
    cmd = [sys.executable, str(script), "--data-dir", str(data), "--out-dir", str(out), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("METRIC ") and json.loads(line[7:])["split"] == "val" and json.loads(line[7:])["epoch"] >= 3:
            proc.kill()
            break
    proc.wait(timeout=60)
    saved = json.loads((out / "checkpoint.json").read_text())["state"]["epoch"]
    assert 2 <= saved < 10 and (out / "checkpoint.pt").is_file() and not (out / "metrics.json").exists()
    second = train(script, data, out, "--resume", "--beam", "2")
    val = [m for m in second if m["split"] == "val"]
    assert [m["epoch"] for m in val] == list(range(saved + 1, 11))
    assert {"loss", "rouge1", "rouge2", "rougeL"} <= set(val[0])
    assert {"loss", "grad_norm", "lr", "samples_per_sec"} <= set(next(m for m in second if m["split"] == "train"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 10 and metrics["decoding"] == "beam 2"
    assert metrics["primary_metric"] == "rougeL" and metrics["baseline"]["name"].startswith("lead-")
    assert metrics["test"]["rougeL"] > metrics["baseline"]["rougeL"] + 0.05, metrics
    model_json = json.loads((out / "model.json").read_text())
    assert model_json["family"] == "seq2seq" and model_json["architecture"]["beam"] == 2


def test_bad_data_fails_in_one_line(tmp_path: Path, summary_job: tuple[Path, Path]) -> None:
    data, script = summary_job
    broken = tmp_path / "data"
    broken.mkdir()
    for file in data.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    bos = json.loads((data / "meta.json").read_text())["tokenizer"]["bos_id"]
    tgt = np.load(broken / "tgt_val.npy")
    tgt[:, 0] = bos + 2
    np.save(broken / "tgt_val.npy", tgt)
    err = train(script, broken, tmp_path / "out", ok=False)[0]["stderr"]
    assert "must start with bos_id" in err


def test_architecture_summary_is_measured(translation_meta: dict[str, Any]) -> None:
    from tools.models.seq2seq import SEQ2SEQ

    meta = translation_meta
    config = SEQ2SEQ.config("translation", meta, {}, None)
    assert config["d_model"] == 64 and config["layers"] == 2 and config["task_type"] == "translation"
    arch = SEQ2SEQ.architecture("translation", config, meta)
    candidate = arch["candidates"][0]
    assert candidate["name"] == "transformer" and candidate["parameters"] > 0
    summary = candidate["summary"]
    assert summary["total_parameters"] == candidate["parameters"]
    assert summary["output_shape"] == [2, meta["max_target_length"] - 1, meta["tokenizer"]["vocab_size"]]
    assert any(layer["type"] == "MultiheadAttention" and layer["output_shape"] for layer in summary["layers"])


def test_config_refuses_backbones_and_unknown_arch(translation_meta: dict[str, Any]) -> None:
    from tools.models.seq2seq import SEQ2SEQ

    meta = translation_meta
    with pytest.raises(UnsupportedError, match="backbone"):
        SEQ2SEQ.config("translation", meta, {"backbone": "t5-small"}, None)
    with pytest.raises(SpecError, match="catalogue"):
        SEQ2SEQ.config("translation", meta, {"arch": "lstm"}, None)
    config = SEQ2SEQ.config("translation", meta, {"d_model": 96, "lr_scheduler": "plateau"}, 60)
    assert config["n_heads"] == 4 and config["scheduler"] == "plateau" and config["time_budget"] == 60.0


def test_metrics_and_predict_bad_input(tmp_path: Path) -> None:
    import importlib.util

    from tools.models import seq2seq_nets as nets

    assert nets.corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert nets.corpus_bleu(["x y z"], ["a b c"]) == 0.0
    r = nets.rouge(["a b c d"], ["a b x d"])
    assert r["rouge1"] == pytest.approx(0.75) and r["rougeL"] == pytest.approx(0.75)

    spec = importlib.util.spec_from_file_location("seq2seq_predict", REPO / "tools" / "templates" / "seq2seq" / "predict.py")
    predict = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(predict)  # type: ignore[union-attr]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="no non-blank lines"):
        predict.read_sources(str(empty))
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(ValueError, match="not UTF-8"):
        predict.read_sources(str(binary))
    predictor = predict.Predictor(None, None, {"beam": 1}, "translation", nets, "cpu")
    with pytest.raises(ValueError, match="list of texts"):
        predictor.predict("one string")
    with pytest.raises(ValueError, match="Item 2 is not a text but int"):
        predictor.predict(["ok", 3])


def test_greedy_and_beam_decoding_stop_at_eos() -> None:
    import torch

    from tools.models.seq2seq_nets import build_model, strip_ids

    torch.manual_seed(0)
    model = build_model({"vocab_size": 20, "d_model": 16, "n_heads": 2, "layers": 1, "hidden": 32, "dropout": 0.0,
                         "max_positions": 8, "pad_id": 0}).eval()
    src = torch.tensor([[7, 8, 9, 0], [10, 11, 0, 0]])
    for beam in (1, 3):
        out = model.generate(src, bos=5, eos=6, max_len=8, beam=beam)
        assert out.shape[0] == 2 and out.shape[1] <= 7
        for row in out.tolist():
            if 6 in row:  # nothing but padding after the first eos
                assert set(row[row.index(6) + 1:]) <= {0}
            assert 5 not in strip_ids(row, 6, 0)


def test_the_example_data_is_the_generator_output() -> None:
    """examples/data/word_pairs.csv (used by examples/word_translation.yaml) is word_pairs(1500, seed=0)."""
    committed = pd.read_csv(REPO / "examples" / "data" / "word_pairs.csv")
    pd.testing.assert_frame_equal(committed, word_pairs(1500, seed=0))
