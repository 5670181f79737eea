"""`mltrainer watch` on logs mltrainer did not write: HuggingFace Trainer (console log and
trainer_state.json), Lightning CSV, MMEngine text and TensorBoard events — each written here."""

from __future__ import annotations

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from mltrainer.app import app
from tools.observer.stream import HFLogParser, MMEngineParser, read_lightning_csv, read_path
from tools.observer.watch import LogWatch

runner = CliRunner()

#: A classifier fine-tune: train loss every 25 steps (5 s each), an eval per epoch, 3 epochs of 125 steps.
TRAIN = [0.69, 0.66, 0.60, 0.52, 0.45, 0.40, 0.36, 0.33, 0.31, 0.30, 0.295, 0.29, 0.288, 0.287, 0.287]
EVAL = [(0.42, 0.81), (0.35, 0.86), (0.35, 0.86)]


def hf_log(upto_step: int = 375) -> str:
    lines = ["***** Running training *****", "  Num examples = 1,000", "  Num Epochs = 3",
             "  Instantaneous batch size per device = 8", "  Total optimization steps = 375",
             "  0%|          | 0/375 [00:00<?, ?it/s]"]
    for i, loss in enumerate(TRAIN, 1):
        step = 25 * i
        if step > upto_step:
            break
        seconds = 5 * i
        lines.append(f" {step * 100 // 375}%|###       | {step}/375 [{seconds // 60:02d}:{seconds % 60:02d}<01:00,  5.00it/s]")
        lr = 5e-5 * (1 - step / 375)
        lines.append(str({"loss": loss, "grad_norm": 1.5, "learning_rate": lr, "epoch": round(step / 125, 2)}))
        if step % 125 == 0:
            lines.append("100%|##########| 16/16 [00:01<00:00, 12.00it/s]")  # the eval bar: another total
            e_loss, acc = EVAL[step // 125 - 1]
            lines.append(str({"eval_loss": e_loss, "eval_accuracy": acc, "eval_runtime": 1.3,
                              "eval_samples_per_second": 100.0, "epoch": step / 125}))
    if upto_step >= 375:
        lines.append(str({"train_runtime": 75.0, "train_samples_per_second": 40.0, "train_loss": 0.4, "epoch": 3.0}))
    return "\n".join(lines) + "\n"


def test_watch_a_huggingface_trainer_log_prints_transitions_and_eta(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(hf_log(upto_step=200))  # still running: 200 of 375 steps, 5 s per 25 steps
    result = runner.invoke(app, ["watch", str(log)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "[epoch 0.2] WARMUP: First evaluation at epoch 0.2: train loss 0.69" in out
    assert "[epoch 0.4] LEARNING_FAST: Learning fast: train loss improving" in out
    assert "(hf_log log:" in out
    # where the log ends: 175 steps left at 0.2 s/step = 35 s, ±15% drift
    assert "at step 200/375; ETA 35s (90% interval 30s–40s; 175 steps left)" in out
    # the full log: the run finished, so the last word is its final phase, not an ETA
    log.write_text(hf_log())
    out = runner.invoke(app, ["watch", str(log)]).output
    assert out.splitlines()[-1] == ("DONE — Finished at epoch 3/3 while still improving 8.3%/epoch: best val loss "
                                    "0.35 at epoch 2; more epochs would likely help")
    assert "LEARNING_FAST: Learning fast: train loss improving 21.7%/epoch (now 0.66) — ETA 1m05s" in out


def test_hf_parser_reads_the_schedule_progress_and_eval_dicts() -> None:
    parser = HFLogParser()
    records = [r for line in hf_log(upto_step=125).splitlines() for r in parser.feed(line)]
    runs = {r.metric: r.value for r in records if r.split == "run"}
    assert runs == {"total_epochs": 3.0, "total_steps": 375.0}
    evals = [r for r in records if r.split == "val"]
    assert {(r.metric, r.value, r.step, r.time) for r in evals} == {
        ("loss", 0.42, 125.0, 25), ("accuracy", 0.81, 125.0, 25), ("samples_per_sec", 100.0, 125.0, 25)}
    lr = [r for r in records if r.metric == "lr"]
    assert lr[0].split == "train" and lr[0].step == 25.0 and lr[0].time == 5


def test_watch_a_trainer_state_json(tmp_path: Path) -> None:
    history = [{"loss": loss, "learning_rate": 1e-4, "epoch": (i + 1) / 5, "step": 20 * (i + 1)} for i, loss in enumerate(TRAIN)]
    history.insert(5, {"eval_loss": 0.42, "eval_accuracy": 0.81, "epoch": 1.0, "step": 100})
    history.insert(11, {"eval_loss": 0.30, "eval_accuracy": 0.88, "epoch": 2.0, "step": 200})
    history.append({"eval_loss": 0.36, "eval_accuracy": 0.86, "epoch": 3.0, "step": 300})
    run = tmp_path / "out" / "checkpoint-300"
    run.mkdir(parents=True)
    (run / "trainer_state.json").write_text(json.dumps(
        {"log_history": history, "max_steps": 300, "num_train_epochs": 3, "global_step": 300}))
    result = runner.invoke(app, ["watch", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "[epoch 0.2] WARMUP: First evaluation at epoch 0.2: train loss 0.69"
    assert lines[1] == "[epoch 0.4] LEARNING_FAST: Learning fast: train loss improving 21.7%/epoch (now 0.66)"
    assert lines[2] == ("[epoch 3] STABLE_CONVERGENCE: Learning velocity dropped to 4.3%/epoch; val loss 0.36, up 20% on "
                        "the previous evaluation")  # no times in trainer_state.json: no ETA on these lines
    assert lines[-1] == "CONVERGED — Finished at epoch 3/3: best val loss 0.3 at epoch 2; the curve had flattened"
    assert "(hf_state log:" in result.output
    log = LogWatch(tmp_path / "out" / "checkpoint-300" / "trainer_state.json", total_steps=600)
    log.poll()
    assert log.status() == ["STABLE_CONVERGENCE at step 300/600; ETA unknown (the log needs times and a schedule: "
                            "pass --epochs or --steps)"]


def test_watch_a_lightning_csv_with_its_hparams(tmp_path: Path) -> None:
    version = tmp_path / "lightning_logs" / "version_0"
    version.mkdir(parents=True)
    rows = ["epoch,step,train_loss_step,train_loss_epoch,val_loss,val_acc"]
    val = [1.0, 0.8, 0.65, 0.6, 0.63, 0.66, 0.7]
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
    for e in range(7):
        rows.append(f"{e},{e * 10 + 5},{train[e] + 0.05},,,")
        rows.append(f"{e},{e * 10 + 9},,,{val[e]},{0.5 + e / 20}")
        rows.append(f"{e},{e * 10 + 9},,{train[e]},,")
    (version / "metrics.csv").write_text("\n".join(rows) + "\n")
    (version / "hparams.yaml").write_text("lr: 0.001\nmax_epochs: 20\n")
    records = read_lightning_csv(version / "metrics.csv")
    assert records[0].metric == "total_epochs" and records[0].value == 20
    assert not any(r.metric == "loss" and r.step == 5 for r in records)  # _step values dropped: _epoch exists
    result = runner.invoke(app, ["watch", str(tmp_path / "lightning_logs")])
    assert result.exit_code == 0, result.output
    assert "OVERFITTING_RISK: Val loss rose" in result.output
    assert "while train loss kept falling" in result.output


MM_LOG = """2024/05/01 10:00:00 - mmengine - INFO - Config:
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
{lines}"""


def mmengine_log(epochs: int) -> str:
    lines = []
    t = 0
    maps = [0.10, 0.20, 0.26, 0.29, 0.30, 0.30, 0.30, 0.30]
    for e in range(1, epochs + 1):
        for i in (50, 100):
            t += 30
            stamp = f"2024/05/01 10:{t // 60:02d}:{t % 60:02d}"
            loss = 2.0 / (e + i / 100)
            lines.append(f"{stamp} - mmengine - INFO - Epoch(train)  [{e}][{i:>3}/100]  lr: 2.0000e-02  eta: 0:10:00  "
                         f"time: 0.6000  data_time: 0.0100  memory: 3021  grad_norm: 5.1  loss: {loss:.4f}  "
                         f"loss_cls: {loss / 2:.4f}")
        stamp = f"2024/05/01 10:{t // 60:02d}:{t % 60:02d}"
        lines.append(f"{stamp} - mmengine - INFO - Epoch(val) [{e}][25/25]    coco/bbox_mAP: {maps[e - 1]:.4f}  "
                     f"coco/bbox_mAP_50: {maps[e - 1] + 0.2:.4f}  data_time: 0.0020  time: 0.0300")
    return MM_LOG.format(lines="\n".join(lines)) + "\n"


def test_watch_an_mmengine_log(tmp_path: Path) -> None:
    (tmp_path / "20240501_100000.log").write_text(mmengine_log(8))
    result = runner.invoke(app, ["watch", str(tmp_path / "20240501_100000.log")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "(mmengine log:" in out
    assert "[epoch 1] LEARNING_FAST: Learning fast: train loss improving 50.0%/epoch" in out
    assert ("[epoch 8] PLATEAU: No new best for 3 evaluations; val coco/bbox_mAP plateaued at 0.3 — ETA 4m00s "
            "(90% interval 3m24s–4m36s; 4 epochs left)") in out  # 60 s per epoch, 4 epochs left
    assert out.splitlines()[-1] == "PLATEAU at epoch 8/12; ETA 4m00s (90% interval 3m24s–4m36s; 4 epochs left)"
    parser = MMEngineParser()
    recs = [r for line in mmengine_log(1).splitlines() for r in parser.feed(line)]
    assert {(r.split, r.metric) for r in recs} >= {("run", "total_epochs"), ("train", "loss"), ("train", "lr"),
                                                    ("val", "coco/bbox_mAP"), ("run", "cuda_memory_mb")}
    assert [r.epoch for r in recs if r.metric == "loss" and r.split == "train"] == [0.5, 1.0]


def write_tensorboard(folder: Path, steps: int = 10, *, state: bool = False) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    for i in range(1, steps + 1):
        step, wall = 50 * i, 1_700_000_000.0 + 20.0 * i  # 20 s per 50 steps
        loss = 0.3 + 1.2 * math.exp(-i / 2)
        writer.add_scalar("train/loss", loss, step, walltime=wall)
        writer.add_scalar("train/learning_rate", 1e-4, step, walltime=wall)
        writer.add_scalar("train/epoch", i / 2, step, walltime=wall)
        if i % 2 == 0:
            writer.add_scalar("eval/loss", loss + 0.05, step, walltime=wall + 1)
            writer.add_scalar("eval/accuracy", 0.9 - loss / 4, step, walltime=wall + 1)
    writer.close()
    if state:
        (folder / "trainer_state.json").write_text(json.dumps({"log_history": [], "max_steps": 1000,
                                                                "num_train_epochs": 10}))


def test_watch_a_tensorboard_run_folder_prints_transitions_and_eta(tmp_path: Path) -> None:
    write_tensorboard(tmp_path / "runs" / "exp1", state=False)
    kind, records = read_path(tmp_path / "runs")
    assert kind == "tensorboard"
    assert {(r.split, r.metric) for r in records} == {("train", "loss"), ("train", "lr"), ("val", "loss"),
                                                       ("val", "accuracy")}
    assert next(r for r in records if r.split == "val").epoch == 1.0  # train/epoch maps steps to epochs
    result = runner.invoke(app, ["watch", str(tmp_path / "runs"), "--steps", "1000"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "WARMUP" in out and "LEARNING_FAST" in out and "(tensorboard log:" in out
    assert "at step 500/1000; ETA 3m20s" in out  # 0.4 s per step, 500 steps left
    # the schedule from a trainer_state.json beside the events (HF's layout) needs no flag
    write_tensorboard(tmp_path / "hf", state=True)
    out = runner.invoke(app, ["watch", str(tmp_path / "hf")]).output
    assert "at step 500/1000; ETA 3m20s" in out


def test_watch_json_follow_and_errors(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(hf_log())  # finished: --follow returns at once
    result = runner.invoke(app, ["watch", str(log), "--follow", "--json"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert {e["type"] for e in events} <= {"training_phase", "training_advice", "resource_alert"}
    assert events[-1]["phase"] == "done" and any("eta" in e for e in events)
    missing = runner.invoke(app, ["watch", str(tmp_path / "nope.log")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "empty").mkdir()
    assert runner.invoke(app, ["watch", str(tmp_path / "empty")]).exit_code == 2


def test_following_a_growing_log_stamps_arrival_times(tmp_path: Path) -> None:
    now = [100.0]
    log = tmp_path / "metrics.jsonl"
    rows = [{"model": "net", "epoch": e, "total_epochs": 10, "split": "val", "loss": loss}
            for e, loss in enumerate([1.0, 0.7, 0.5], 1)]
    log.write_text(json.dumps(rows[0]) + "\n")
    watch = LogWatch(log, follow=True, clock=lambda: now[0])
    assert [(e.phase, eta) for e, eta in watch.poll()] == [("warmup", None)]
    now[0] = 130.0
    with log.open("a") as f:
        f.write(json.dumps(rows[1]) + "\n")
    [(event, eta)] = watch.poll()
    assert event.phase == "learning_fast" and event.time == 130.0
    assert (eta.seconds, eta.low, eta.high, eta.remaining) == (240.0, 204.0, 276.0, 8.0)  # 30 s per epoch
    assert watch.poll() == []  # nothing new
    now[0] = 150.0
    with log.open("a") as f:
        f.write(json.dumps(rows[2]) + "\n")
    assert watch.poll() == [] and not watch.complete()
    assert watch.status() == ["net: LEARNING_FAST at epoch 3/10; ETA 3m09s (90% interval 2m20s–3m57s; 7 epochs left)"]
    now[0] = 10_000.0  # the writer went quiet
    assert [e.phase for e, _ in watch.poll()] == ["stalled"]
