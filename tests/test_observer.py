"""The training observer on synthetic curves with known phases: exact transitions at exact epochs,
every state reached, ETA intervals, early-stop advice, resource alerts with cooldown, webhooks."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.events import ResourceAlert, TrainingAdvice, TrainingMetric, TrainingPhase
from tests.fakes.loopback import QuietJSONHandler, loopback
from tools.observer import THRESHOLDS, Observer, Phase, Reading
from tools.observer.advice import gain_probability
from tools.observer.live import STOP_FILE, DivergenceStop, LiveWatch
from tools.observer.notify import Webhook
from tools.observer.resources import AlertGate, ResourceWatch, group_rss, parse_nvidia_smi
from tools.observer.stream import split_name

NAN = float("nan")


def phases(events: list[Any]) -> list[tuple[float | None, str]]:
    return [(e.epoch, e.phase) for e in events if isinstance(e, TrainingPhase)]


def feed_curve(val: list[float], train: list[float] | None = None, *, total: int | None = None,
               observer: Observer | None = None, extra: dict[str, list[float]] | None = None,
               seconds: float = 10.0) -> tuple[Observer, list[Any]]:
    """One reading per epoch (train first, as our templates print them), every ``seconds``."""
    ob = observer or Observer()
    if total:
        ob.totals[""] = {"total_epochs": float(total)}
    events: list[Any] = []
    for i, loss in enumerate(val, 1):
        if train is not None:
            values = {"loss": train[i - 1], **{k: v[i - 1] for k, v in (extra or {}).items()}}
            events += ob.feed(Reading("", "train", None, float(i), seconds * i - 1, values))
        events += ob.feed(Reading("", "val", None, float(i), seconds * i, {"loss": loss}))
    return ob, events


# -- phases on synthetic curves ----------------------------------------------------------------
def test_fast_learning_then_plateau_then_converged() -> None:
    # relative improvements 30%, 29%, 20%, 10%, 3%, 0.6%, 0, 0, 0 → EMA(α=0.5) 30%, 29%, 25%, 17%, 10%, 5.3%, 2.7%, 1.3%, 0.7%
    ob, events = feed_curve([1.0, 0.7, 0.5, 0.4, 0.36, 0.35, 0.348, 0.348, 0.348, 0.348])
    assert ob.phase("") == Phase.PLATEAU
    events += ob.finish()
    assert phases(events) == [(1, "warmup"), (2, "learning_fast"), (8, "stable_convergence"), (10, "plateau"),
                              (10, "converged")]
    narrative = {e.phase: e.narrative for e in events if isinstance(e, TrainingPhase)}
    assert narrative["stable_convergence"] == "Learning velocity dropped to 2.7%/epoch; val loss 0.348, still improving"
    assert narrative["plateau"].startswith("No new best for 3 evaluations; val loss plateaued at 0.348")
    assert "best val loss 0.348 at epoch 7" in narrative["converged"]


def test_train_down_val_up_is_overfitting_risk() -> None:
    ob, events = feed_curve([1.0, 0.8, 0.65, 0.6, 0.63, 0.66, 0.7], train=[1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2])
    assert phases(events) == [(1, "warmup"), (2, "learning_fast"), (5, "stable_convergence"), (6, "overfitting_risk")]
    text = [e.narrative for e in events if isinstance(e, TrainingPhase)][-1]
    assert text == ("Val loss rose 10% above its best (0.6 at epoch 4) for 2 evaluations while train loss kept "
                    "falling (0.3)")
    # the same val curve while the train loss rises too is not overfitting
    _, events = feed_curve([1.0, 0.8, 0.65, 0.6, 0.63, 0.66, 0.7], train=[1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.65])
    assert "overfitting_risk" not in [p for _, p in phases(events)]


def test_loss_explosion_to_nan_is_diverging_at_that_epoch() -> None:
    ob, events = feed_curve([1.0, 0.8, 0.7, NAN])
    assert phases(events) == [(1, "warmup"), (2, "learning_fast"), (4, "diverging")]
    assert [e.narrative for e in events if isinstance(e, TrainingPhase)][-1] == \
        "The val loss became nan at epoch 4: training diverged"
    advice = [e for e in events if isinstance(e, TrainingAdvice)]
    assert len(advice) == 1 and advice[0].action == "lower_lr" and advice[0].confirmed
    assert ob.diverged("") is not None


def test_explosion_without_nan_and_gradient_spike_are_diverging() -> None:
    _, events = feed_curve([1.0, 0.6, 0.4, 0.3, 2.0])  # 6.7× its best and 6.7× the previous reading
    assert phases(events)[-1] == (5, "diverging")
    assert "jumped to 2 at epoch 5 (6.7× its best, 6.7× the previous reading)" in events[-2].narrative
    _, events = feed_curve([1.0, 0.8, 0.7, 0.65], train=[1.0, 0.8, 0.7, 0.75],
                           extra={"grad_norm": [1.0, 1.1, 0.9, 30.0]})
    assert phases(events)[-1] == (4, "diverging")
    assert "gradient norm spiked to 30 (31× its average)" in [e for e in events if isinstance(e, TrainingPhase)][-1].narrative


def test_far_worse_than_the_untrained_model_is_diverging_at_once() -> None:
    ob = Observer()
    events = ob.feed(Reading("mlp", "val", None, 1.0, 1.0, {"loss": 9.5, "initial_loss": 0.69}))
    assert phases(events) == [(1, "diverging")]
    assert "13.8× the untrained model's (9.5 vs 0.69)" in events[0].narrative
    # a healthy run that learned (went below the untrained loss) is never judged by this rule
    ob = Observer()
    for epoch, loss in enumerate([0.6, 1.1, 2.1], 1):  # 2.1 is 3× 0.69, but < 4× its best: not an explosion
        events = ob.feed(Reading("mlp", "val", None, float(epoch), float(epoch), {"loss": loss, "initial_loss": 0.69}))
    assert ob.phase("mlp") != Phase.DIVERGING


def test_stalled_writer_and_recovery_with_an_injected_clock() -> None:
    t = replace(THRESHOLDS, stall_seconds=60.0)
    ob = Observer(t, started=0.0)
    assert ob.tick(300.0) == []  # before the first reading, start-up gets stall_factor × the limit
    assert ob.tick(301.0)[0].phase == "stalled"  # nothing at all since the start: INITIALIZING → STALLED
    ob = Observer(t, started=0.0)
    _, events = feed_curve([1.0, 0.7, 0.5], observer=ob)  # readings at t = 10, 20, 30
    assert ob.tick(90.0) == []  # quiet for 60 s: not more than the limit
    stalled = ob.tick(91.0)
    assert phases(stalled) == [(None, "stalled")]
    assert stalled[0].narrative.startswith("No new metrics for 61s (readings came every ~10s)")
    assert ob.tick(200.0) == []  # said once
    back = ob.feed(Reading("", "val", None, 4.0, 200.0, {"loss": 0.4}))
    assert phases(back) == [(4, "learning_fast")]


def test_learning_rate_warmup_holds_warmup_and_finishing_while_fast_is_done() -> None:
    ob = Observer()
    events: list[Any] = []
    for epoch, (loss, lr) in enumerate([(2.0, 1e-4), (1.5, 2e-4), (1.2, 3e-4), (1.0, 3e-4)], 1):
        events += ob.feed(Reading("", "train", None, float(epoch), float(epoch), {"loss": loss, "lr": lr}))
    assert ob.machine("").phase == Phase.LEARNING_FAST
    events += ob.finish()
    assert phases(events) == [(1, "warmup"), (4, "learning_fast"), (4, "done")]
    assert "while still improving" in events[-1].narrative and "more epochs would likely help" in events[-1].narrative


def test_every_phase_is_reached_by_this_suite() -> None:
    assert Observer().phase("never-seen") == Phase.INITIALIZING
    reached = {"initializing"}
    curves = [feed_curve([1.0, 0.7, 0.5, 0.4, 0.36, 0.35, 0.348, 0.348, 0.348, 0.348]),
              feed_curve([1.0, 0.8, 0.65, 0.6, 0.63, 0.66, 0.7], train=[1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]),
              feed_curve([1.0, 0.8, NAN])]
    for ob, events in curves:
        events += ob.finish() + ob.tick(1e9)
        reached |= {p for _, p in phases(events)}
    ob, _ = feed_curve([2.0, 1.0])
    reached |= {p for _, p in phases(ob.finish())}
    ob = Observer(replace(THRESHOLDS, stall_seconds=1.0), started=0.0)
    reached |= {p for _, p in phases(ob.tick(6.0))}
    assert reached == {p.value for p in Phase}


# -- ETA ---------------------------------------------------------------------------------------
def test_eta_interval_from_steady_epochs_and_early_stop_adjustment() -> None:
    ob, _ = feed_curve([1.0, 0.7, 0.5, 0.4, 0.35], total=20)  # 10 s per epoch exactly
    eta = ob.eta("")
    assert eta is not None and eta.unit == "epoch" and eta.remaining == 15
    assert eta.seconds == pytest.approx(150.0) and (eta.low, eta.high) == (pytest.approx(127.5), pytest.approx(172.5))
    assert ob.eta("", now=60.0).seconds == pytest.approx(140.0)  # counted down between readings
    # with the run's patience known and a plateau, the point estimate is the early stop
    ob = Observer(patience=4)
    ob, _ = feed_curve([1.0, 0.7, 0.5, 0.5, 0.5, 0.5], total=30, observer=ob)
    eta = ob.eta("")
    assert ob.phase("") == Phase.PLATEAU and eta.early_stop
    assert eta.seconds == pytest.approx(10.0) and eta.high == pytest.approx(24 * 10 * 1.15)


def test_eta_needs_a_schedule_and_two_readings() -> None:
    ob, _ = feed_curve([1.0, 0.8])  # no total
    assert ob.eta("") is None
    ob, _ = feed_curve([1.0], total=10)
    assert ob.eta("") is None


# -- advice ------------------------------------------------------------------------------------
def test_advice_to_stop_on_a_flat_plateau_names_saving_and_checkpoint() -> None:
    ob, events = feed_curve([1.0, 0.6, 0.45, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], total=40)
    advice = [e for e in events if isinstance(e, TrainingAdvice)]
    assert len(advice) == 1 and advice[0].time == 90.0  # epoch 9: the window of 6 is flat; said once
    confirmed = advice[0]
    assert confirmed.action == "stop" and confirmed.confirmed and confirmed.probability < 0.05
    assert confirmed.keep == "the best checkpoint (epoch 4, val loss 0.4)"
    assert confirmed.message == ("No new best val loss for 5 evaluations; P(gain > 1%) ≈ 0%. Stopping now saves 31 "
                                 "epochs (~5.2m). Keep the best checkpoint (epoch 4, val loss 0.4).")
    assert confirmed.saved_seconds == pytest.approx(310.0)
    # the run's own patience caps what stopping saves: a run about to stop itself gets no advice
    ob, events = feed_curve([1.0, 0.6, 0.45, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], total=40, observer=Observer(patience=5))
    assert not any(isinstance(e, TrainingAdvice) for e in events)
    ob, events = feed_curve([1.0, 0.6, 0.45, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], total=40, observer=Observer(patience=6))
    advice = [e for e in events if isinstance(e, TrainingAdvice)]
    assert len(advice) == 1 and not advice[0].confirmed  # saving 1 epoch is advice, not worth acting on
    assert "Stopping now saves 1 epoch (~10s)" in advice[0].message


def test_gain_probability_follows_trend_and_noise() -> None:
    xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert gain_probability(xs, [0.5] * 6, 0.5, 5, 0.01) < 1e-6  # flat: no gain
    falling = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    assert gain_probability(xs, falling, 0.5, 5, 0.01) > 0.99  # still falling: a gain is near certain
    noisy = [0.5, 0.52, 0.49, 0.51, 0.5, 0.52]
    assert 0.1 < gain_probability(xs, noisy, 0.5, 5, 0.01) < 0.5  # noise alone might beat the best
    assert gain_probability(xs, noisy, 0.49, 5, 0.01) < gain_probability(xs, noisy, 0.5, 5, 0.01)
    assert gain_probability(xs[:2], falling[:2], 0.9, 5, 0.01) is None


# -- resources ---------------------------------------------------------------------------------
MB = 1024 * 1024


def test_slow_memory_leak_alerts_at_the_expected_sample_with_cooldown() -> None:
    watch = ResourceWatch(replace(THRESHOLDS, cooldown=100.0))
    rss = [380, 400] + [400 + 12 * k for k in range(1, 15)]  # +3% of the baseline per epoch
    alerts = [(i, a) for i, mb in enumerate(rss) if (a := watch.sample_rss(mb * MB, float(i), float(i + 1)))]
    assert [i for i, _ in alerts] == [10]  # 400 → 508 MB is the first ≥ 25%; later ones fall in the cooldown
    assert alerts[0][1].message == ("Memory grew 27% since epoch 2 (400 → 508 MB, +12.0 MB per reading) and has "
                                    "not fallen for 5 readings: a leak is likely")
    assert watch.sample_rss(700 * MB, 111.0) is not None  # cooldown over
    sawtooth = ResourceWatch()
    for i, mb in enumerate([400, 450, 420, 470, 430, 480, 440, 500, 450, 520, 460]):
        assert sawtooth.sample_rss(mb * MB, float(i)) is None  # garbage collection gives memory back: no leak


def test_cuda_memory_and_throughput_alerts() -> None:
    watch = ResourceWatch()
    assert watch.sample_cuda(70 * 2**30, 80 * 2**30, 0.0) is None
    alert = watch.sample_cuda(75 * 2**30, 80 * 2**30, 1.0)
    assert alert.kind == "cuda_memory" and alert.message.startswith("CUDA memory at 94% (75.0 of 80.0 GiB)")
    assert [watch.sample_throughput(v, float(i)) for i, v in enumerate([1000, 1000, 1000, 300, 1000])] == [None] * 5
    assert watch.sample_throughput(400, 5.0) is None  # one slow epoch is noise
    drop = watch.sample_throughput(400, 6.0)  # two in a row is a drop, against the level before it
    assert drop.kind == "throughput" and drop.message.startswith("Throughput dropped 60% (1000 → 400 samples/s) for 2")
    assert parse_nvidia_smi("123, 5000\n999, 100\n", "5000, 81559\n", [123]) == (5000 * MB, 81559 * MB)
    assert parse_nvidia_smi("", "5000, 81559\n", [123]) is None


def test_alert_gate_and_rss_probe() -> None:
    gate = AlertGate(10.0)
    assert [gate.allow("a", t) for t in (0.0, 5.0, 10.0)] == [True, False, True]
    assert gate.allow("b", 5.0)
    import os

    assert group_rss(os.getpgid(0)) > 10 * MB  # this test process's own group


# -- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,expected", [
    ("eval_loss", ("val", "loss")), ("train/loss", ("train", "loss")), ("Loss/val", ("val", "loss")),
    ("learning_rate", ("train", "lr")), ("val_acc", ("val", "accuracy")), ("train_loss_epoch", ("train", "loss")),
    ("eval/accuracy", ("val", "accuracy")), ("loss", ("train", "loss")), ("coco/bbox_mAP", ("train", "coco/bbox_mAP")),
    ("validation_loss", ("val", "loss")), ("loss_val", ("val", "loss")),
])
def test_metric_names_are_normalised(name: str, expected: tuple[str, str]) -> None:
    assert split_name(name) == expected


# -- the live sink of the training stage -------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def metric(epoch: int, loss: float, model: str = "mlp", total: int = 30, **extra: float) -> str:
    return "METRIC " + json.dumps({"model": model, "epoch": epoch, "total_epochs": total, "split": "val",
                                   "loss": loss, **extra})


def test_live_watch_stops_a_diverging_run_by_raising(tmp_path: Path) -> None:
    events: list[Any] = []
    clock = Clock()
    watch = LiveWatch(events.append, out_dir=tmp_path, clock=clock, rss=lambda pgid: None)
    watch("not a metric line")
    watch(metric(1, 0.9))
    clock.now += 5
    watch(metric(2, 0.7))
    clock.now += 5
    with pytest.raises(DivergenceStop) as err:
        watch(metric(3, NAN))
    assert err.value.model == "mlp" and err.value.epoch == 3 and "became nan" in err.value.reason
    shown = [e for e in events if isinstance(e, TrainingMetric)]
    assert [m.epoch for m in shown] == [1, 2, 3] and shown[1].eta_seconds == pytest.approx(140.0)
    assert shown[1].eta_low < 140.0 < shown[1].eta_high and shown[1].phase == "learning_fast"
    assert [e.phase for e in events if isinstance(e, TrainingPhase)] == ["warmup", "learning_fast", "diverging"]
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in logged] == [1, 2, 3] and logged[0]["time"] == 1000.0


def test_live_watch_auto_stop_writes_the_stop_file_once(tmp_path: Path) -> None:
    (tmp_path / STOP_FILE).write_text("stale")  # from an earlier attempt: removed at the start
    events: list[Any] = []
    clock = Clock()
    logs: list[str] = []
    watch = LiveWatch(events.append, out_dir=tmp_path, clock=clock, rss=lambda pgid: None, log=logs.append)
    assert not (tmp_path / STOP_FILE).exists()
    for epoch, loss in enumerate([1.0, 0.6, 0.45, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], 1):
        clock.now += 10
        watch(metric(epoch, loss))
    assert (tmp_path / STOP_FILE).read_text() == "mlp"
    acted = [e for e in events if isinstance(e, TrainingAdvice) and e.acted]
    assert len(acted) == 1 and acted[0].keep.startswith("the best checkpoint (epoch 4")
    assert watch.stopped == {"mlp": acted[0].message} and logs
    watch.finish()
    assert [e.phase for e in events if isinstance(e, TrainingPhase)][-1] == "converged"
    (tmp_path / "off").mkdir()
    off = LiveWatch(lambda e: None, out_dir=tmp_path / "off", clock=clock, rss=lambda pgid: None, auto_stop=False)
    for epoch, loss in enumerate([1.0, 0.6, 0.45, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], 1):
        off(metric(epoch, loss))
    assert not (tmp_path / "off" / STOP_FILE).exists() and off.stopped == {}


class Hook(QuietJSONHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hook.received.append(body)
        self.send_json(200, {"ok": True})


def test_webhook_posts_json_with_cooldown_and_survives_a_dead_endpoint(tmp_path: Path) -> None:
    Hook.received = []
    clock = Clock()
    with loopback(Hook) as url:
        hook = Webhook(url + "/notify", cooldown=60.0, clock=clock)
        watch = LiveWatch(lambda e: None, out_dir=tmp_path, clock=clock, rss=lambda pgid: None, webhook=hook)
        watch(metric(1, 0.9))
        watch(metric(2, 0.5))
        with pytest.raises(DivergenceStop):
            watch(metric(3, math.inf))
        assert hook.send("alert:x", "one") and not hook.send("alert:x", "again")  # cooldown per kind
        clock.now += 61
        assert hook.send("alert:x", "after the cooldown")
    kinds = [body["kind"] for body in Hook.received]
    assert kinds == ["phase:diverging", "advice:lower_lr:False", "alert:x", "alert:x"]
    first = Hook.received[0]
    assert first["text"] == first["content"] and first["text"].startswith("[mlp] diverging: The val loss became inf")
    dead = Webhook("http://127.0.0.1:9/none", timeout=0.5)
    assert dead.send("k", "nobody listens") is False and dead.failed == 1
    with pytest.raises(ValueError):
        Webhook("ftp://example.org")


def test_resource_alert_event_from_the_observer() -> None:
    ob = Observer()
    ob.feed(Reading("m", "val", None, 1.0, 1.0, {"loss": 1.0}))
    events = []
    for i, mb in enumerate([380, 400] + [400 + 12 * k for k in range(1, 10)]):
        events += ob.sample_rss(mb * MB, float(i), float(i + 1))
    assert len(events) == 1 and isinstance(events[0], ResourceAlert) and events[0].kind == "memory_leak"
    assert events[0].model == "m"


def test_the_live_renderer_shows_phase_badges_eta_intervals_advice_and_alerts() -> None:
    import io

    from rich.console import Console

    from mltrainer.renderer import LiveRenderer

    buffer = io.StringIO()
    renderer = LiveRenderer(Console(file=buffer, width=200, force_terminal=False, color_system=None))
    with renderer:
        renderer.handle(TrainingMetric(model="mlp", epoch=3, total_epochs=10, split="val", metrics={"loss": 0.5},
                                       eta_seconds=70.0, eta_low=60.0, eta_high=80.0, phase="learning_fast"))
        renderer.handle(TrainingPhase(model="mlp", phase="plateau", previous="learning_fast", epoch=5.0,
                                      narrative="No new best for 3 evaluations; val accuracy plateaued at 0.875"))
        renderer.handle(TrainingAdvice(model="mlp", action="stop", message="Stopping now saves 5 epochs.", acted=True))
        renderer.handle(ResourceAlert(kind="memory_leak", message="Memory grew 27%"))
        assert "ETA 1m10s ±10.0s" in str(renderer.progress.tasks[0].fields["eta"])
        assert "LEARNING FAST" in str(renderer.progress.tasks[0].fields["metrics"])
    text = buffer.getvalue()
    assert "PLATEAU mlp No new best for 3 evaluations; val accuracy plateaued at 0.875" in text
    assert "acting on advice: mlp Stopping now saves 5 epochs." in text
    assert "alert (memory_leak): Memory grew 27%" in text


class TokenHook(QuietJSONHandler):
    paths: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        TokenHook.paths.append(self.path)
        self.send_json(200, {"ok": True})


def test_a_spec_webhook_url_is_kept_in_the_vault_and_still_called(tmp_path: Path, sealed_home: Path) -> None:
    """Slack/Discord/Telegram put the token in the URL: the job keeps a vault reference, the POST uses the URL."""
    import sqlite3

    from typer.testing import CliRunner

    from mltrainer.app import app
    from tests.conftest import make_classification_frame, write_spec

    token = "T0KEN9shouldNEVERbeSTORED"
    TokenHook.paths = []
    make_classification_frame(300).to_csv(tmp_path / "data.csv", index=False)
    with loopback(TokenHook) as url:
        spec = write_spec(tmp_path, extra=f"monitor:\n  webhook: {url}/services/{token}\n")
        result = CliRunner().invoke(app, ["run", str(spec), "--job-id", "hooked"])
    assert result.exit_code == 0, result.output
    assert TokenHook.paths and all(path == f"/services/{token}" for path in TokenHook.paths)
    with sqlite3.connect(sealed_home / "mltrainer.db") as conn:
        dump = "\n".join(conn.iterdump())
    assert "secret:webhook_url:" in dump and token not in dump  # (the ref's brackets are JSON-escaped)
    for path in sealed_home.rglob("*"):
        if path.is_file() and path.name != "vault.json" and not path.name.startswith("mltrainer.db"):
            assert token not in path.read_text(errors="replace"), path
    assert token not in result.output
