"""Merging: two seeds of one tabular MLP merge by every method into a new, loadable, scored job;
jobs that share no test split are refused; TIES and DARE merge two fine-tunes of one tiny base."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mltrainer.app import app
from tests.conftest import OFFLINE_ENV, make_classification_frame, write_spec
from tools.merge import merge_states

runner = CliRunner()
HYPER = {"model": "mlp", "epochs": 4, "patience": 3, "hidden": 16, "split_seed": 7}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two finished jobs on the same split, differing only in the model seed (the slow part, shared)."""
    work = tmp_path_factory.mktemp("merge")
    make_classification_frame(240).to_csv(work / "data.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLTRAINER_HOME", str(work / "home"))
        mp.setenv("HOME", str(work))
        for key, value in OFFLINE_ENV.items():
            mp.setenv(key, value)
        results = {}
        for name, seed in (("seed1", 1), ("seed2", 2)):
            folder = work / name
            folder.mkdir()
            (folder / "data.csv").write_bytes((work / "data.csv").read_bytes())
            results[name] = runner.invoke(app, ["run", str(write_spec(folder, hyper={**HYPER, "seed": seed})),
                                                "--job-id", name])
        yield {"work": work, "home": work / "home", "results": results}


@pytest.fixture()
def home(lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, result in lab["results"].items():
        assert result.exit_code == 0, (name, result.output)
    monkeypatch.setenv("MLTRAINER_HOME", str(lab["home"]))
    return Path(lab["home"])


def show(job: str) -> dict[str, Any]:
    result = runner.invoke(app, ["show", job, "--json"])
    assert result.exit_code == 0, result.output
    detail: dict[str, Any] = json.loads(result.output)
    return detail


def weights(job: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return dict(load_file(str(Path(show(job)["artifacts"]["export_dir"]) / "model.safetensors")))


@pytest.mark.parametrize("method", ["linear", "slerp", "ties", "dare"])
def test_every_method_makes_a_loadable_scored_job(home: Path, lab: dict[str, Any], method: str, tmp_path: Path) -> None:
    import pandas as pd

    from tools.models.base import load_predict_module

    result = runner.invoke(app, ["merge", "seed1", "seed2", "--method", method, "--job-id", f"soup-{method}", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["job_id"] == f"soup-{method}" and 0.0 <= out["test_metrics"]["accuracy"] <= 1.0
    detail = show(f"soup-{method}")
    assert detail["status"] == "done" and detail["architecture"]["merge"]["method"] == method
    assert detail["architecture"]["merge"]["jobs"] == ["seed1", "seed2"]
    assert detail["test_metrics"]["accuracy"] == pytest.approx(out["test_metrics"]["accuracy"])
    export = Path(detail["artifacts"]["export_dir"])
    assert export.parent.name == f"soup-{method}" and "## Merge" in (export / "README.md").read_text()
    merged, a, b = weights(f"soup-{method}"), weights("seed1"), weights("seed2")
    assert set(merged) == set(a) and all(merged[k].shape == a[k].shape for k in a)
    assert any(not np.allclose(merged[k], a[k]) for k in a) and any(not np.allclose(merged[k], b[k]) for k in b)
    if method == "linear":  # uniform weights: exactly the mean
        assert all(np.allclose(merged[k], (a[k] + b[k]) / 2, atol=1e-6) for k in a)
    # the export loads and predicts on its own, and `mltrainer predict` finds it
    rows = make_classification_frame(30, seed=9).drop(columns=["label"])
    predicted = load_predict_module(export).predict_frame(export, rows)
    assert len(predicted) == 30 and set(predicted["label"]) <= {"yes", "no"}
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = runner.invoke(app, ["predict", f"soup-{method}", "-i", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "p.csv")["label"].tolist() == predicted["label"].tolist()


def test_jobs_that_share_no_test_split_are_refused(home: Path, lab: dict[str, Any]) -> None:
    folder = lab["work"] / "other-split"
    folder.mkdir(exist_ok=True)
    (folder / "data.csv").write_bytes((lab["work"] / "data.csv").read_bytes())
    spec = write_spec(folder, hyper={**HYPER, "split_seed": 8})  # same data, another split
    assert runner.invoke(app, ["run", str(spec), "--job-id", "split8", "--until", "preprocessing"]).exit_code == 0
    result = runner.invoke(app, ["merge", "seed1", "split8", "--method", "linear"])
    assert result.exit_code == 1
    assert "split or prepared the same data differently" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["merge", "seed1", "seed2", "--method", "slerp", "--t", "1.5"])
    assert result.exit_code == 2 and "slerp t must be between 0 and 1" in result.output
    result = runner.invoke(app, ["merge", "seed1", "--method", "linear"])
    assert result.exit_code == 2 and "at least two jobs" in result.output
    result = runner.invoke(app, ["merge", "seed1", "seed2", "--method", "task-arithmetic"])
    assert result.exit_code == 2 and "linear, slerp, ties, dare" in result.output


def test_methods_follow_their_definitions() -> None:
    rng = np.random.default_rng(0)
    a = {"w": rng.normal(size=(4, 6)).astype(np.float32), "steps": np.array([3], dtype=np.int64)}
    b = {"w": rng.normal(size=(4, 6)).astype(np.float32), "steps": np.array([5], dtype=np.int64)}
    assert np.allclose(merge_states([a, b], "linear", weights=[3, 1])["w"], 0.75 * a["w"] + 0.25 * b["w"], atol=1e-6)
    assert merge_states([a, b], "linear")["steps"].tolist() == [3]  # integer buffers come from the first model
    assert np.allclose(merge_states([a, b], "slerp", t=0.0)["w"], a["w"], atol=1e-6)
    assert np.allclose(merge_states([a, b], "slerp", t=1.0)["w"], b["w"], atol=1e-5)
    mid = merge_states([a, b], "slerp", t=0.5)["w"]  # on the arc: its norm is not the chord's shrunken one
    assert np.linalg.norm(mid) > np.linalg.norm((a["w"] + b["w"]) / 2)
    base = {"w": np.zeros((4, 6), np.float32), "steps": a["steps"]}
    up = {"w": np.full((4, 6), 2.0, np.float32), "steps": a["steps"]}
    down = {"w": np.full((4, 6), -1.0, np.float32), "steps": a["steps"]}
    up["w"][0, 0] = 0.1
    ties = merge_states([up, up, down], "ties", base=base, density=1.0)["w"]
    assert np.allclose(ties[1:], 2.0)  # sign elected by the summed deltas: the two ups win, and only they count
    assert ties[0, 0] == pytest.approx(-1.0)  # there the ups are small (0.1 + 0.1 < 1): the down wins
    trimmed = merge_states([up, down], "ties", base=base, density=0.5)["w"]  # each keeps its largest half
    assert np.count_nonzero(trimmed) >= 12
    one = merge_states([a, b], "dare", density=0.5, seed=3)["w"]
    assert np.array_equal(one, merge_states([a, b], "dare", density=0.5, seed=3)["w"])  # deterministic
    assert not np.array_equal(one, merge_states([a, b], "dare", density=0.5, seed=4)["w"])
    with pytest.raises(Exception, match="exactly two models"):
        merge_states([a, b, a], "slerp")
    with pytest.raises(Exception, match="not the same architecture"):
        merge_states([a, {"w": np.zeros((3, 6), np.float32), "steps": a["steps"]}], "linear")


def test_ties_and_dare_merge_two_fine_tunes_of_one_tiny_base() -> None:
    """A tiny base is fine-tuned on task A and, separately, on task B (two heads, one shared layer);
    merging the two task vectors relative to the base gives one model that does both tasks."""
    import torch

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(2000, 8, generator=generator)
    y_a, y_b = (X[:, 0] + 0.5 * X[:, 2] > 0).long(), (X[:, 1] - 0.5 * X[:, 3] > 0).long()
    X_test, ya_test, yb_test = X[1500:], y_a[1500:], y_b[1500:]

    def net() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))

    def train(model: torch.nn.Module, tasks: tuple[str, ...], steps: int, lr: float) -> torch.nn.Module:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for step in range(steps):
            index = torch.randint(0, 1500, (64,), generator=generator)
            out = model(X[index])
            loss = sum(torch.nn.functional.cross_entropy(out[:, :2] if t == "a" else out[:, 2:],
                                                         (y_a if t == "a" else y_b)[index]) for t in tasks)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model

    def accuracy(state: dict[str, np.ndarray]) -> tuple[float, float]:
        model = net()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        with torch.no_grad():
            out = model(X_test)
        return float((out[:, :2].argmax(1) == ya_test).float().mean()), float((out[:, 2:].argmax(1) == yb_test).float().mean())

    def numpy_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    base = train(net(), ("a", "b"), 3, 1e-2)  # a weak generalist
    base_state = numpy_state(base)
    tuned = []
    for task in ("a", "b"):
        model = net()
        model.load_state_dict(base.state_dict())
        tuned.append(numpy_state(train(model, (task,), 300, 3e-3)))
    base_acc, a_acc, b_acc = accuracy(base_state), accuracy(tuned[0]), accuracy(tuned[1])
    assert a_acc[0] > base_acc[0] + 0.05 and b_acc[1] > base_acc[1] + 0.05  # each fine-tune learned its task
    for method in ("ties", "dare"):
        merged = merge_states(tuned, method, base=base_state, density=0.7, seed=0)
        both = accuracy(merged)
        # one model, both skills: better than the base on each task, and its weaker task beats each
        # fine-tune's weaker task
        assert both[0] > base_acc[0] + 0.03 and both[1] > base_acc[1] + 0.03, (method, both, base_acc)
        assert min(both) > max(min(a_acc), min(b_acc)), (method, both, a_acc, b_acc)


def test_merge_relative_to_a_base_job(home: Path) -> None:
    result = runner.invoke(app, ["merge", "seed1", "seed2", "--method", "ties", "--base", "seed1", "--density", "0.3",
                                 "--job-id", "based", "--json"])
    assert result.exit_code == 0, result.output
    recipe = show("based")["architecture"]["merge"]
    assert recipe["base"] == "seed1" and recipe["density"] == 0.3
    merged, a, b = weights("based"), weights("seed1"), weights("seed2")
    for key in a:  # base + the trimmed difference: each entry is A's or B's, about 30% of them B's
        assert np.all(np.isclose(merged[key], a[key], atol=1e-6) | np.isclose(merged[key], b[key], atol=1e-6))
    changed = sum(int((~np.isclose(merged[k], a[k], atol=1e-6)).sum()) for k in a) / sum(v.size for v in a.values())
    assert 0.2 < changed < 0.4


def test_export_tries_a_soup_of_the_mlp_checkpoints(home: Path) -> None:
    detail = show("seed1")
    soup = detail["architecture"]["soup"]
    assert [c["name"] for c in soup["candidates"]] == ["best epoch", "last epoch"]
    assert soup["metric"] == "val accuracy" and soup["applied"] == (soup["val"] > soup["candidates"][0]["val"])
    config = json.loads((Path(detail["artifacts"]["export_dir"]) / "config.json").read_text())
    assert config["soup"]["candidates"] == soup["candidates"]


def test_greedy_soup_keeps_only_what_improves_validation() -> None:
    from tools.merge import greedy_soup

    target = np.array([1.0, 1.0])
    score = lambda state: -float(np.abs(state["w"] - target).sum())  # noqa: E731
    candidates = [(name, {"w": np.array(w)}, score({"w": np.array(w)}))
                  for name, w in (("a", [2.0, 0.0]), ("b", [0.0, 2.0]), ("c", [5.0, 5.0]))]
    soup, report = greedy_soup(candidates, score)
    assert np.allclose(soup["w"], [1.0, 1.0]) and report["members"] == ["a", "b"] and report["improved"]
    assert [t["kept"] for t in report["tried"]] == [True, False]
    alone, report = greedy_soup(candidates[2:] + candidates[:1], score)
    assert np.allclose(alone["w"], [2.0, 0.0]) and not report["improved"]
