"""`mltrainer try`: a quick evaluation of a model class — a short training and a validation score on
any data source, prepared by the pipeline's own intent, dataset and preprocessing stages, or a shape
check on random inputs. In-process and small on purpose: it answers "does it run, how fast, and
does it learn at all" within a minute; `mltrainer run` with architecture.module trains it for real."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import DataError, SpecError
from tools.lab import byo

#: Seconds the training part of a try may take; it stops after the current batch beyond that.
TRY_SECONDS = 45.0
RANDOM_STEPS = 5


def parse_shape(text: str) -> list[int]:
    try:
        shape = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        raise SpecError(f"'{text}' is not a shape; write sizes separated by commas, batch first, e.g. 1,3,32,32.") from None
    if not shape or any(s < 1 for s in shape):
        raise SpecError(f"'{text}' is not a shape; write positive sizes, batch first, e.g. 1,3,32,32.")
    return shape


def guess_dtype(model: Any, dtype: str) -> str:
    """'auto': token ids when the model's first layer is an Embedding, floats otherwise."""
    import torch.nn as nn

    if dtype != "auto":
        return dtype
    first = next((m for m in model.modules() if not list(m.children())), None)
    return "long" if isinstance(first, (nn.Embedding, nn.EmbeddingBag)) else "float"


def vocab_of(model: Any) -> int:
    import torch.nn as nn

    return min((m.num_embeddings for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))), default=2)


def random_trial(cls: Any, kwargs: dict[str, Any], shape: list[int], dtype: str = "auto",
                 clock: Any = time.perf_counter) -> dict[str, Any]:
    """Build, forward and backward on random inputs of ``shape`` (batch first); time a few steps."""
    import torch

    from tools.model_summary import summarize

    torch.manual_seed(0)
    model = byo.instantiate(cls, kwargs, {}, cls.__name__)
    kind = guess_dtype(model, dtype)
    x = byo.example_input(shape[1:], kind, batch=shape[0], vocab=vocab_of(model))
    try:
        summary = summarize(model, x)
        model.train()
        started = clock()
        for _ in range(RANDOM_STEPS):
            out = model(x)
            tensor = out[0] if isinstance(out, (tuple, list)) else out
            tensor.float().square().mean().backward()
        elapsed = max(clock() - started, 1e-9)
    except Exception as err:  # noqa: BLE001 - the user's model; one sentence
        raise SpecError(f"{cls.__name__} fails on a random input of shape {shape}: {type(err).__name__}: "
                        f"{byo.first_line(err)}.") from None
    finite = bool(torch.isfinite(tensor.float()).all())
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    return {"mode": "random", "input_shape": shape, "input_dtype": kind, "output_shape": list(tensor.shape),
            "finite": finite, "parameters": summary["total_parameters"], "params_without_grad": no_grad[:10],
            "samples_per_sec": round(RANDOM_STEPS * shape[0] / elapsed, 1), "summary": summary}


def prepare(source: str, target: str | None, task_type: str | None, work: Path) -> tuple[Any, dict[str, Any]]:
    """The pipeline's intent, dataset and preprocessing stages on ``source``; returns (context, meta)."""
    from agents.dataset import DatasetAgent
    from agents.intent import IntentAgent
    from agents.preprocessing import PreprocessingAgent
    from mltrainer.spec import Spec
    from orchestrator.context import JobContext
    from tools.models.base import read_meta

    spec = Spec.model_validate({"task": f"try a model on {source}", "task_type": task_type,
                                "data": {"source": source, "target": target}}).model_dump(mode="json")
    context = JobContext(job_id=f"try-{int(time.time())}", raw_prompt=spec["task"], spec=spec, job_dir=str(work),
                         task_type=spec["task_type"])
    for agent in (IntentAgent(), DatasetAgent(), PreprocessingAgent()):
        context.merge({k: v for k, v in agent.run(context.snapshot()).items() if k != "summary"})
    return context, read_meta(Path(context.data_paths["dir"]))


def load_split(family: str, data_dir: Path, split: str) -> tuple[Any, Any]:
    import numpy as np

    prefix = "ids" if family == "text_classifier" else "X"
    return np.load(data_dir / f"{prefix}_{split}.npy"), np.load(data_dir / f"y_{split}.npy")


def data_trial(cls: Any, kwargs: dict[str, Any], source: str, target: str | None, task_type: str | None,
               work: Path, epochs: int = 1, batch_size: int = 32, lr: float = 1e-3,
               clock: Any = time.perf_counter, seconds: float = TRY_SECONDS) -> dict[str, Any]:
    """Prepare ``source``, train the model for ``epochs`` (capped at ``seconds``) and score validation."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from tools.models import model_family_for

    context, meta = prepare(source, target, task_type, work)
    task = context.task_type or "tabular_classification"
    family = model_family_for(task)
    config = family.config(task, meta, {}, None)
    name = byo.family_of(family.name)
    shape = byo.data_shape(name, config, meta)
    data_dir = Path(context.data_paths["dir"])
    X, y = load_split(name, data_dir, "train")
    Xv, yv = load_split(name, data_dir, "val")
    regression = task.endswith("regression")
    torch.manual_seed(0)
    model = byo.instantiate(cls, kwargs, shape["known"], cls.__name__)

    def inputs(a: Any) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(a))
        if name == "image":  # the image family's own normalisation: pixels → standardised per channel
            mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
            std = torch.tensor([s if s > 1e-6 else 1.0 for s in meta["std"]]).view(1, -1, 1, 1)
            return (t.float() / 255.0 - mean) / std
        return t.long() if shape["dtype"] == "long" else t.float()

    y_mu, y_sd = (float(y.mean()), float(y.std()) or 1.0) if regression else (0.0, 1.0)

    def loss_of(out: Any, target_values: Any) -> Any:
        out = out.reshape(out.shape[0], -1)
        if regression:
            return F.mse_loss(out[:, 0].float(), (torch.from_numpy(target_values).float() - y_mu) / y_sd)
        return F.cross_entropy(out.float(), torch.from_numpy(target_values).long())

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    history: list[dict[str, Any]] = []
    generator = torch.Generator().manual_seed(0)
    started = clock()
    stopped = None
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(X), generator=generator).numpy()
        seen, losses, t0 = 0, [], clock()
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            try:
                loss = loss_of(model(inputs(X[idx])), y[idx])
            except Exception as err:  # noqa: BLE001
                raise SpecError(f"{cls.__name__} fails on the prepared {name} data (batch {list(inputs(X[idx]).shape)}): "
                                f"{type(err).__name__}: {byo.first_line(err)}.") from None
            if not torch.isfinite(loss):
                raise DataError(f"The training loss became {loss.item()} at epoch {epoch}; lower the learning rate "
                                "or check the model's initialisation.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            seen += len(idx)
            if clock() - started > seconds:
                stopped = f"stopped after {seconds:.0f}s"
                break
        elapsed = max(clock() - t0, 1e-9)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "samples_per_sec": round(seen / elapsed, 1),
               **evaluate(model, inputs, Xv, yv, regression, y_mu, y_sd)}
        history.append(row)
        if stopped:
            break
    return {"mode": "data", "task_type": task, "family": name, "input_shape": shape["input_shape"],
            "outputs": shape["outputs"], "rows": {k: int(v) for k, v in meta["splits"].items()},
            "parameters": int(sum(p.numel() for p in model.parameters())), "epochs": history, "stopped": stopped,
            "data_dir": str(data_dir)}


def evaluate(model: Any, inputs: Any, X: Any, y: Any, regression: bool, y_mu: float, y_sd: float) -> dict[str, float]:
    """Validation loss and accuracy (classification) or R² (regression)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        out = torch.cat([model(inputs(X[s:s + 512])).reshape(len(X[s:s + 512]), -1).float()
                         for s in range(0, len(X), 512)])
    if regression:
        pred = out[:, 0].numpy() * y_sd + y_mu
        ss = float(((y - y.mean()) ** 2).sum())
        r2 = 1.0 - float(((pred - y) ** 2).sum()) / ss if ss > 0 else 0.0
        return {"val_rmse": float(np.sqrt(np.mean((pred - y) ** 2))), "val_r2": r2}
    loss = float(F.cross_entropy(out, torch.from_numpy(y).long()))
    accuracy = float((out.argmax(1).numpy() == y).mean())
    return {"val_loss": loss if math.isfinite(loss) else float("nan"), "val_accuracy": accuracy}


def trial_lines(result: dict[str, Any]) -> list[str]:
    """What `mltrainer try` prints."""
    if result["mode"] == "random":
        lines = [f"input {result['input_shape']} ({result['input_dtype']}) -> output {result['output_shape']}",
                 f"parameters {result['parameters']:,}; forward+backward {result['samples_per_sec']:,.1f} samples/s",
                 "outputs are finite" if result["finite"] else "outputs hold NaN or Inf"]
        if result["params_without_grad"]:
            lines.append(f"no gradient reached: {', '.join(result['params_without_grad'])}")
        return lines
    lines = [f"{result['task_type'].replace('_', ' ')} ({result['family']}): input {result['input_shape']} -> "
             f"{result['outputs']} outputs; {result['parameters']:,} parameters; rows {result['rows']}"]
    for row in result["epochs"]:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "samples_per_sec"))
        lines.append(f"epoch {row['epoch']}: {shown}  ({row['samples_per_sec']:,.0f} samples/s)")
    if result["stopped"]:
        lines.append(result["stopped"])
    return lines
