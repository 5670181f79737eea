"""Out of memory in training is recovered, not fatal: the batch is halved and accumulation doubled
(the same effective batch), and the run continues from its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.training import TrainingAgent
from orchestrator.context import JobContext
from orchestrator.errors import TrainingError

# A stand-in train.py with the real interface: checkpoints every epoch, and "runs out of memory" at
# epoch 3 whenever its batch is larger than 16 (as a too-big batch does on a small GPU).
FAKE_TRAIN = '''
import argparse, json, os, sys
p = argparse.ArgumentParser()
for flag in ("--data-dir", "--out-dir"):
    p.add_argument(flag)
p.add_argument("--resume", action="store_true")
p.add_argument("--rebatch", action="store_true")
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--grad-accum-steps", type=int, default=1)
p.add_argument("--fail", default=os.environ.get("FAKE_FAIL", "oom"))
a = p.parse_args()
with open(os.path.join(a.out_dir, "calls.jsonl"), "a") as f:
    f.write(json.dumps(vars(a)) + "\\n")
ck = os.path.join(a.out_dir, "checkpoint.json")
epoch = json.load(open(ck))["epoch"] if a.resume and os.path.exists(ck) else 0
for e in range(epoch + 1, 5):
    if a.batch_size > 16 and e == 3:
        msg = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" if a.fail == "oom" else "ValueError: bad"
        print(msg, file=sys.stderr)
        sys.exit(1)
    print("METRIC " + json.dumps({"model": "net", "epoch": e, "total_epochs": 4, "split": "val", "loss": 1.0 / e}), flush=True)
    json.dump({"epoch": e}, open(ck, "w"))
json.dump({"primary_metric": "loss", "best_val": 0.25, "best_model": "net"}, open(os.path.join(a.out_dir, "metrics.json"), "w"))
'''


def _context(tmp_path: Path, config: dict, fail: str = "oom") -> JobContext:
    run = tmp_path / "job" / "run"
    run.mkdir(parents=True)
    script = run / "train.py"
    script.write_text(FAKE_TRAIN.replace('os.environ.get("FAKE_FAIL", "oom")', repr(fail)))
    (tmp_path / "data").mkdir()
    return JobContext(job_id="oom", job_dir=str(tmp_path / "job"), training_script=str(script),
                      data_paths={"dir": str(tmp_path / "data")}, config=config)


def calls(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "job" / "run" / "out" / "calls.jsonl").read_text().splitlines()]


def test_out_of_memory_halves_the_batch_and_continues_from_the_checkpoint(tmp_path: Path) -> None:
    result = TrainingAgent().run(_context(tmp_path, {"batch_size": 64, "grad_accum_steps": 1}))
    made = calls(tmp_path)
    assert [(c["batch_size"], c["grad_accum_steps"]) for c in made] == [(64, 1), (32, 2), (16, 4)]
    assert [c["resume"] and c["rebatch"] for c in made] == [False, True, True]
    assert [m["epoch"] for m in result["training_metrics"]] == [1, 2, 3, 4]  # epochs 1-2 were kept, not redone
    config = result["config"]
    assert (config["batch_size"], config["grad_accum_steps"]) == (16, 4) and len(config["oom_retries"]) == 2


def test_other_failures_and_families_without_accumulation_are_not_rebatched(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="train.py failed: ValueError: bad"):
        TrainingAgent().run(_context(tmp_path / "a", {"batch_size": 64, "grad_accum_steps": 1}, fail="value"))
    assert len(calls(tmp_path / "a")) == 1
    with pytest.raises(TrainingError, match="CUDA out of memory"):
        TrainingAgent().run(_context(tmp_path / "b", {"batch_size": 64}))  # e.g. the tabular template
    assert len(calls(tmp_path / "b")) == 1


def test_a_generated_script_takes_the_smaller_batch_on_resume(tmp_path: Path) -> None:
    """The real template honours --rebatch: the resumed run trains with the new batch and keeps the
    model's other settings from its checkpoint."""
    from tests.test_model_text import metric_lines, render, train, write_arrays

    data = write_arrays(tmp_path / "data")
    script = render(tmp_path, data, d_model=16, hidden=32, n_heads=2, layers=1, arch="bow", batch_size=32)
    out = tmp_path / "out"
    assert train(script, data, out, "--epochs", "1").returncode == 0
    second = train(script, data, out, "--epochs", "2", "--resume", "--rebatch", "--batch-size", "16",
                   "--grad-accum-steps", "2", "--d-model", "64")
    assert second.returncode == 0, second.stderr
    assert [m["epoch"] for m in metric_lines(second.stdout) if m["split"] == "val"] == [2]
    config = json.loads((out / "checkpoint.json").read_text())["config"]
    assert (config["batch_size"], config["grad_accum_steps"], config["d_model"]) == (16, 2, 16)
