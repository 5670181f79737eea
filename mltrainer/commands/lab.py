"""`mltrainer try FILE.py:Class` (a quick evaluation) and `mltrainer summary FILE.py:Class` (a
measured model summary). Heavy imports happen inside the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from mltrainer.commands.common import friendly


def _kwargs(text: Optional[str]) -> dict[str, Any]:
    from orchestrator.errors import SpecError

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError(f"--kwargs is not JSON ({err.msg}); write e.g. '{{\"hidden\": 64}}'.") from None
    if not isinstance(value, dict):
        raise SpecError("--kwargs must be a JSON object of constructor arguments, e.g. '{\"hidden\": 64}'.")
    return value


@friendly
def try_model(
    target: str = typer.Argument(..., metavar="FILE.py:Class", help="The model class to try."),
    data: str = typer.Option(..., "--data", help="A data source (CSV, folder, sklearn://…, hf://…) or 'random'."),
    label: Optional[str] = typer.Option(None, "--target", help="The column to predict (tables)."),
    task_type: Optional[str] = typer.Option(None, "--task-type", help="e.g. image_classification (default: inferred)."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Training epochs (stops after about 45s)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Training batch size."),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="With --data random: batch first, e.g. 1,3,32,32."),
    dtype: str = typer.Option("auto", "--dtype", help="With --data random: float, long (token ids) or auto."),
    kwargs: Optional[str] = typer.Option(None, "--kwargs", help="Constructor arguments as JSON."),
    json_mode: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Quick evaluation: train a model class briefly on any data source and print metrics and throughput."""
    import tempfile

    from orchestrator.errors import SpecError
    from tools.lab.byo import load_class, parse_target
    from tools.lab.trial import data_trial, parse_shape, random_trial, trial_lines

    path, name = parse_target(target)
    cls = load_class(path, name)
    if data == "random":
        if not input_shape:
            raise SpecError("--data random needs --input-shape, batch first, e.g. --input-shape 1,3,32,32.")
        if dtype not in ("auto", "float", "long"):
            raise SpecError(f"--dtype must be auto, float or long, not '{dtype}'.")
        result = random_trial(cls, _kwargs(kwargs), parse_shape(input_shape), dtype)
    else:
        from mltrainer import settings

        (settings.home() / "lab").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="try-", dir=settings.home() / "lab") as work:
            source = data if "://" in data else str(Path(data).expanduser().resolve())
            result = data_trial(cls, _kwargs(kwargs), source, label, task_type, Path(work), epochs, batch_size)
    if json_mode:
        print(json.dumps({k: v for k, v in result.items() if k != "summary"}, indent=2, default=str))
    else:
        print("\n".join(trial_lines(result)))


@friendly
def summary(
    target: str = typer.Argument(..., metavar="FILE.py:Class", help="The model class to measure."),
    input_size: str = typer.Option(..., "--input-size", help="Input shape, batch first, e.g. 1,3,32,32."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Also report activation memory at this batch."),
    dtype: str = typer.Option("auto", "--dtype", help="float, long (token ids) or auto (long when the first layer is an Embedding)."),
    kwargs: Optional[str] = typer.Option(None, "--kwargs", help="Constructor arguments as JSON."),
    json_mode: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Measure a model by a real forward pass: parameters, per-layer shapes, MACs/FLOPs, activation memory."""
    import torch

    from orchestrator.errors import SpecError
    from tools.lab.byo import example_input, first_line, instantiate, load_class, parse_target
    from tools.lab.trial import guess_dtype, parse_shape, vocab_of
    from tools.model_summary import summarize, summary_lines

    path, name = parse_target(target)
    cls = load_class(path, name)
    if dtype not in ("auto", "float", "long"):
        raise SpecError(f"--dtype must be auto, float or long, not '{dtype}'.")
    torch.manual_seed(0)
    model = instantiate(cls, _kwargs(kwargs), {}, name)
    shape = parse_shape(input_size)
    kind = guess_dtype(model, dtype)
    example = example_input(shape[1:], kind, batch=shape[0], vocab=vocab_of(model))
    try:
        result = summarize(model, example, batch_size=batch_size)
    except Exception as err:  # noqa: BLE001 - the user's model; one sentence
        raise SpecError(f"{name} fails on an input of shape {shape}: {type(err).__name__}: {first_line(err)}.") from None
    if json_mode:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(summary_lines(result, f"{target} on {kind} input {shape}")))
