"""Merging trained models of one architecture weight by weight, and greedy "model soups".

Methods (state dicts as numpy arrays keyed by tensor name, so tabular exports — numpy only — and the
torch families' safetensors merge the same way):

- ``linear``: the weighted mean of the models (uniform weights by default).
- ``slerp``: spherical interpolation of exactly two models, tensor by tensor, at ``t`` (0 = the
  first, 1 = the second); nearly parallel tensors fall back to linear interpolation.
- ``ties`` (Yadav et al. 2023): task vectors (model − base) trimmed to their ``density`` largest
  magnitudes, a sign elected per entry by the summed trimmed vectors, and the mean of the entries
  that agree with it added to the base (times ``scale``).
- ``dare`` (Yu et al. 2024): each task vector entry dropped with probability ``1 − density`` and
  the survivors rescaled by ``1 / density``, then the same sign election and disjoint mean as TIES.
  The drop masks come from ``numpy.random.default_rng([seed, model, tensor])``: the same call gives
  the same merge.

TIES and DARE merge *differences from a base*: with fine-tunes of one base model, pass that base;
without one, the first model is the base (the others' differences from it are merged into it).

Only floating-point tensors are merged; integer buffers (counters, position ids) are taken from the
first model and must agree in shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DataError, UsageError

if TYPE_CHECKING:
    import numpy as np

    State = dict[str, np.ndarray]

METHODS = ("linear", "slerp", "ties", "dare")
DEFAULT_DENSITY = 0.5
#: slerp: tensors whose directions differ by less than this angle (radians) are interpolated linearly.
SLERP_LINEAR_BELOW = 1e-4


def check_compatible(states: Sequence[State], names: Sequence[str]) -> None:
    """Same tensor names and shapes in every model; one sentence naming the first difference."""
    first = states[0]
    for name, state in zip(names[1:], states[1:]):
        missing = sorted(set(first) ^ set(state))
        if missing:
            raise DataError(f"{names[0]} and {name} are not the same architecture: tensor '{missing[0]}' is in only one "
                            "of them; merge models trained with the same settings.")
        for key, value in first.items():
            if tuple(value.shape) != tuple(state[key].shape):
                raise DataError(f"{names[0]} and {name} are not the same architecture: '{key}' is "
                                f"{tuple(value.shape)} in one and {tuple(state[key].shape)} in the other.")


def merge_states(states: Sequence[State], method: str, *, base: State | None = None,
                 weights: Sequence[float] | None = None, t: float = 0.5, density: float = DEFAULT_DENSITY,
                 scale: float = 1.0, seed: int = 0, names: Sequence[str] | None = None) -> State:
    """Merge ``states`` (at least two, same names and shapes) by ``method``; see the module docstring."""
    import numpy as np

    if method not in METHODS:
        raise UsageError(f"Merge method '{method}' is not known; use one of {', '.join(METHODS)}.")
    if len(states) < 2:
        raise UsageError("Merging needs at least two models.")
    names = list(names or [f"model {i + 1}" for i in range(len(states))])
    check_compatible(list(states) + ([base] if base is not None else []), names + (["the base"] if base is not None else []))
    if weights is not None:
        if len(weights) != len(states) or any(w < 0 for w in weights) or not sum(weights) > 0:
            raise UsageError(f"Give one non-negative weight per model ({len(states)}), not all zero.")
    if method == "slerp" and len(states) != 2:
        raise UsageError(f"slerp interpolates exactly two models, not {len(states)}; use linear, ties or dare for more.")
    if not 0.0 <= t <= 1.0:
        raise UsageError(f"slerp t must be between 0 and 1, not {t}.")
    if not 0.0 < density <= 1.0:
        raise UsageError(f"density must be in (0, 1], not {density}.")
    if method in ("ties", "dare") and base is None:
        base, states = states[0], states[1:]
        weights = weights[1:] if weights is not None else None
    merged: State = {}
    for index, key in enumerate(states[0]):
        values = [np.asarray(s[key]) for s in states]
        if not np.issubdtype(values[0].dtype, np.floating):
            merged[key] = (base[key] if base is not None else values[0]).copy()
            continue
        stack = np.stack([v.astype(np.float64) for v in values])
        if method == "linear":
            w = np.asarray(weights if weights is not None else [1.0] * len(values), dtype=np.float64)
            out = np.tensordot(w / w.sum(), stack, axes=1)
        elif method == "slerp":
            out = slerp(stack[0], stack[1], t)
        else:
            assert base is not None
            origin = np.asarray(base[key]).astype(np.float64)
            deltas = stack - origin[None]
            if method == "ties":
                deltas = np.stack([trim(d, density) for d in deltas])
            else:
                deltas = np.stack([drop_and_rescale(d, density, np.random.default_rng([seed, m, index]))
                                   for m, d in enumerate(deltas)])
            if weights is not None:
                deltas = deltas * np.asarray(weights, dtype=np.float64).reshape((-1,) + (1,) * origin.ndim)
            out = origin + scale * disjoint_mean(deltas)
        merged[key] = out.astype(values[0].dtype)
    return merged


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between two tensors seen as flat vectors (lerp when nearly parallel)."""
    import numpy as np

    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return (1 - t) * a + t * b
    cos = float(np.clip(np.dot(a.ravel() / na, b.ravel() / nb), -1.0, 1.0))
    omega = math.acos(cos)
    if omega < SLERP_LINEAR_BELOW or math.sin(omega) < 1e-8:
        return (1 - t) * a + t * b
    return (math.sin((1 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(omega)


def trim(delta: np.ndarray, density: float) -> np.ndarray:
    """Keep the ``density`` share of entries with the largest magnitude (ties at the cut kept), zero the rest."""
    import numpy as np

    if density >= 1.0 or delta.size == 0:
        return delta
    keep = max(1, int(math.ceil(density * delta.size)))
    cut = np.partition(np.abs(delta).ravel(), delta.size - keep)[delta.size - keep]
    return np.where(np.abs(delta) >= cut, delta, 0.0)


def drop_and_rescale(delta: np.ndarray, density: float, rng: Any) -> np.ndarray:
    """DARE: drop each entry with probability 1 − density, scale the kept ones by 1 / density."""
    import numpy as np

    if density >= 1.0:
        return delta
    return np.where(rng.random(delta.shape) < density, delta / density, 0.0)


def disjoint_mean(deltas: np.ndarray) -> np.ndarray:
    """TIES' elect-and-merge: the sign of the summed deltas per entry, then the mean of the nonzero
    deltas with that sign (entries where every model is zero stay zero)."""
    import numpy as np

    sign = np.sign(deltas.sum(axis=0))
    agree = (np.sign(deltas) == sign[None]) & (deltas != 0)
    count = agree.sum(axis=0)
    return np.where(count > 0, (deltas * agree).sum(axis=0) / np.maximum(count, 1), 0.0)


# ------------------------------------------------------------------------------------ soups
def greedy_soup(candidates: Sequence[tuple[str, State, float]], evaluate: Callable[[State], float]) -> tuple[State, dict[str, Any]]:
    """Greedy soup (Wortsman et al. 2022): candidates ``(name, state, validation score)`` sorted best
    first; each is added to the running average only if the average's validation score goes up.
    Returns the soup (the best candidate alone when nothing helped) and what was tried."""
    ranked = sorted(candidates, key=lambda c: -c[2])
    name, state, score = ranked[0]
    members, states, tried = [name], [state], []
    best = score
    for name, state, own in ranked[1:]:
        trial = merge_states(states + [state], "linear") if states else state
        value = float(evaluate(trial))
        tried.append({"candidate": name, "own_val": own, "soup_val": value, "kept": value > best + 1e-12})
        if value > best + 1e-12:
            members.append(name)
            states.append(state)
            best = value
    soup = merge_states(states, "linear") if len(states) > 1 else states[0]
    return soup, {"members": members, "val": best, "best_single": ranked[0][2], "tried": tried,
                  "improved": len(members) > 1}


def tabular_soup(run_out: Path, data_dir: Path, exported: State) -> tuple[State, dict[str, Any]] | None:
    """Soup of the tabular MLP's checkpoints: the template keeps one MLP per run, so the candidates
    of one architecture are its best-epoch weights (``exported``) and its last-epoch weights (in
    ``checkpoint_mlp.pt``), plus any ``soup/*.safetensors`` a script writes beside them. Scored on
    the validation split; None when there is nothing to average (a GBDT, one checkpoint)."""
    import json

    import numpy as np

    info_path = run_out / "model.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    ckpt = run_out / "checkpoint_mlp.pt"
    if info.get("kind") != "mlp" or not ckpt.exists():
        return None
    import torch
    from safetensors.numpy import load_file

    task = info["task"]
    y_train = np.load(data_dir / "y_train.npy")
    X_val, y_val = np.load(data_dir / "X_val.npy").astype(np.float32), np.load(data_dir / "y_val.npy")
    y_mu = float(y_train.mean()) if task == "regression" else 0.0
    y_sd = (float(y_train.std()) or 1.0) if task == "regression" else 1.0
    layers = list(info["architecture"]["weights"])
    last = layers[-1]

    def fold(raw: dict[str, Any]) -> State:  # as the template folds the target scale into the exported last layer
        state = {k: v.detach().float().cpu().numpy().copy() for k, v in raw.items()}
        state[f"{last}.weight"] = state[f"{last}.weight"] * y_sd
        state[f"{last}.bias"] = state[f"{last}.bias"] * y_sd + y_mu
        return state

    def score(state: State) -> float:
        h = X_val.astype(np.float64)
        for i, name in enumerate(layers):
            h = h @ state[f"{name}.weight"].astype(np.float64).T + state[f"{name}.bias"].astype(np.float64)
            if i < len(layers) - 1:
                h = np.maximum(h, 0.0)
        if task == "regression":
            y = y_val.astype(np.float64)
            total = float(((y - y.mean()) ** 2).sum())
            return 1.0 - float(((h[:, 0] - y) ** 2).sum()) / total if total > 0 else 0.0
        return float((h.argmax(axis=1) == y_val).mean())

    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    candidates = [("best epoch", exported, score(exported))]
    if isinstance(checkpoint.get("model"), dict):
        last_epoch = fold(checkpoint["model"])
        if set(last_epoch) == set(exported):
            candidates.append(("last epoch", last_epoch, score(last_epoch)))
    for path in sorted((run_out / "soup").glob("*.safetensors")) if (run_out / "soup").is_dir() else []:
        state = load_file(str(path))
        if set(state) == set(exported) and all(state[k].shape == exported[k].shape for k in exported):
            candidates.append((path.stem, state, score(state)))
    if len(candidates) < 2:
        return None
    soup, report = greedy_soup(candidates, score)
    report["metric"] = "val r2" if task == "regression" else "val accuracy"
    report["candidates"] = [{"name": n, "val": s} for n, _, s in candidates]
    # used only when an average of several checkpoints beats the exported (best-epoch) weights
    report["applied"] = bool(report["improved"] and report["val"] > candidates[0][2] + 1e-12)
    return soup, report


# ------------------------------------------------------------------------------------ jobs
def data_fingerprint(data_dir: Path) -> str:
    """sha256 over every prepared file (names and bytes): equal only for the same split of the same data."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in Path(data_dir).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(data_dir)).encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _export_of(context: Any) -> Path:
    export = Path(context.artifacts.get("export_dir") or "")
    if not context.artifacts.get("export_dir") or not (export / "model.safetensors").is_file():
        raise UsageError(f"Job '{context.job_id}' has no exported model yet (status {context.status}); "
                         f"finish it with 'mltrainer resume {context.job_id}'.")
    return export


def check_same_job_kind(contexts: Sequence[Any]) -> None:
    """Same task, same model kind and architecture, same prepared data; one sentence otherwise."""
    import json

    first = contexts[0]
    info = json.loads((_export_of(first) / "model.json").read_text())
    if info.get("kind") == "gbdt":
        raise DataError(f"Job '{first.job_id}' kept gradient-boosted trees, which cannot be merged weight by weight; "
                        "train the jobs with 'model: mlp'.")
    fingerprint = None
    for other in contexts[1:]:
        if other.task_type != first.task_type:
            raise DataError(f"'{first.job_id}' is {first.task_type} and '{other.job_id}' is {other.task_type}; "
                            "merge models of one task.")
        first_dir, other_dir = Path(first.data_paths.get("dir") or ""), Path(other.data_paths.get("dir") or "")
        if first_dir.resolve() != other_dir.resolve():
            if first.data_report.get("sha256") != other.data_report.get("sha256"):
                raise DataError(f"'{first.job_id}' and '{other.job_id}' were trained on different data, so they share "
                                "no test split; merge jobs of the same data source.")
            fingerprint = fingerprint or data_fingerprint(first_dir)
            if data_fingerprint(other_dir) != fingerprint:
                raise DataError(f"'{first.job_id}' and '{other.job_id}' split or prepared the same data differently "
                                "(seed, fractions or preprocessing settings), so one has trained on the other's test "
                                "rows; train both with the same split (e.g. the same split_seed) before merging.")
        other_info = json.loads((_export_of(other) / "model.json").read_text())
        if (other_info.get("kind"), other_info.get("architecture")) != (info.get("kind"), info.get("architecture")):
            raise DataError(f"'{first.job_id}' ({info.get('kind')}) and '{other.job_id}' ({other_info.get('kind')}) "
                            "are not the same architecture; merge models trained with the same settings.")


def load_state(path: Path) -> State:
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))


def merge_jobs(store: Any, job_ids: Sequence[str], method: str, *, new_id: str | None = None,
               base: str | None = None, weights: Sequence[float] | None = None, t: float = 0.5,
               density: float = DEFAULT_DENSITY, scale: float = 1.0, seed: int = 0) -> Any:
    """Merge the exported weights of finished jobs into a new job: A's export with the merged
    weights, re-scored on the shared test split through its predict.py, registered in the store
    (so ``mltrainer predict/show/eject NEW`` work). ``base`` is a job id or an export folder."""
    import json
    import shutil
    import time

    from safetensors.numpy import save_file

    from agents.export import ExportAgent
    from mltrainer import settings
    from orchestrator.context import JobContext

    if len(job_ids) < 2:
        raise UsageError("Give at least two jobs to merge.")
    if len(set(job_ids)) != len(job_ids):
        raise UsageError("A job is named twice; give each job to merge once.")
    contexts = [JobContext.from_json(store.require_job(job_id).context_json) for job_id in job_ids]
    check_same_job_kind(contexts)
    states = [load_state(_export_of(c) / "model.safetensors") for c in contexts]
    base_state = None
    if base is not None:
        folder = Path(base).expanduser()
        if (folder / "model.safetensors").is_file():
            base_state = load_state(folder / "model.safetensors")
        else:
            base_context = JobContext.from_json(store.require_job(base).context_json)
            base_state = load_state(_export_of(base_context) / "model.safetensors")
    merged = merge_states(states, method, base=base_state, weights=weights, t=t, density=density, scale=scale,
                          seed=seed, names=list(job_ids))
    first = contexts[0]
    if new_id is None:
        new_id = f"{first.job_id}-{method}"
        suffix = 2
        while store.get_job(new_id) is not None:
            new_id, suffix = f"{first.job_id}-{method}-{suffix}", suffix + 1
    elif not settings.JOB_ID_PATTERN.match(new_id):
        raise UsageError(f"--job-id '{new_id}' may use letters, digits, '.', '_' and '-' only (at most 64).")
    if store.get_job(new_id) is not None:
        raise UsageError(f"A job named '{new_id}' already exists; pick another --job-id.")

    job_dir = settings.job_dir(new_id)
    run_out = job_dir / "run" / "out"
    shutil.rmtree(job_dir, ignore_errors=True)
    run_out.mkdir(parents=True)
    source_out = Path(first.artifacts.get("run_dir") or "")
    save_file(merged, str(run_out / "model.safetensors"))
    shutil.copy2(_export_of(first) / "model.json", run_out / "model.json")
    if (source_out / "metrics.json").is_file():
        shutil.copy2(source_out / "metrics.json", run_out / "metrics.json")
    recipe = {"method": method, "jobs": list(job_ids), "base": base, "weights": list(weights) if weights else None,
              "density": density if method in ("ties", "dare") else None, "t": t if method == "slerp" else None,
              "scale": scale if method in ("ties", "dare") else None, "seed": seed if method == "dare" else None,
              "sources": {c.job_id: {"test_metrics": c.test_metrics} for c in contexts}}
    now = time.time()
    context = JobContext.from_dict({**first.to_dict(), "job_id": new_id, "job_dir": str(job_dir),
                                    "raw_prompt": f"{method} merge of {', '.join(job_ids)}", "test_metrics": {},
                                    "compression": {}, "deployed_urls": [], "created_at": now, "updated_at": now,
                                    "training_metrics": [], "training_logs": [], "errors": [], "failure": {},
                                    "error_feedback": {}})
    context.artifacts = {k: v for k, v in first.artifacts.items() if k in ("training_script", "requirements")}
    context.artifacts["run_dir"] = str(run_out)
    context.architecture = {**first.architecture, "merge": recipe}
    context.best_metric = {}
    context.spec = {**first.spec, "compress": None}  # a merge is scored as merged; compress it by its own run
    started = time.time()
    result = ExportAgent(None).run(context.snapshot())
    summary = str(result.pop("summary", ""))
    context.merge(result)
    context.stage_results = {**first.stage_results, "export": {"status": "done", "attempt": 1,
                             "duration": time.time() - started, "summary": summary, "finished_at": time.time()}}
    context.stage_results["training"] = {"status": "done", "attempt": 1, "duration": 0.0, "finished_at": now,
                                         "summary": f"merged {', '.join(job_ids)} by {method}"}
    context.status, context.current_stage = "done", None
    store.create_job(new_id, context.to_json(), context.task_type)
    store.checkpoint(new_id, context_json=context.to_json(), status="done", task_type=context.task_type,
                     current_stage=None)
    (job_dir / "merge.json").write_text(json.dumps(recipe, indent=2, default=str))
    return context
