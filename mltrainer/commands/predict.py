"""`mltrainer predict JOB_ID --input FILE --output FILE`."""

from __future__ import annotations

from pathlib import Path

import typer

from mltrainer.commands.common import friendly, open_store


@friendly
def predict(
    job_id: str = typer.Argument(..., help="A finished job whose exported model scores the rows."),
    input: Path = typer.Option(..., "--input", "-i",
                               help="Rows (CSV/parquet/JSON) for tables; text lines, image paths or a series for other tasks."),
    output: Path = typer.Option(..., "--output", "-o", help="CSV to write: one row per input row."),
) -> None:
    """Score new rows with a job's exported model."""
    import json

    from tools.models.base import load_predict_module
    from mltrainer.renderer import print_message
    from orchestrator.errors import DataError, UsageError
    from tools.local_data import load_table

    store = open_store()
    try:
        context = json.loads(store.require_job(job_id).context_json)
    finally:
        store.close()
    export = context.get("artifacts", {}).get("export_dir")
    if not export or not (Path(export) / "predict.py").exists():
        stage = context.get("current_stage") or "an early stage"
        raise UsageError(
            f"Job '{job_id}' has no exported model yet (status {context.get('status')}, at {stage}); "
            f"finish it with 'mltrainer resume {job_id}'."
        )
    module = load_predict_module(Path(export))
    if hasattr(module, "predict_frame"):  # tabular exports score a table of rows
        frame, _ = load_table(input)
        try:
            result = module.predict_frame(Path(export), frame)
        except ValueError as err:  # the export's transform raises TransformError(ValueError)
            raise DataError(f"{input.name}: {err}") from None
        output.parent.mkdir(parents=True, exist_ok=True)
        result.to_csv(output, index=False)
        written = len(result)
    else:  # every other family's predict.py reads its own kind of input (text lines, image paths, a series)
        if not input.exists():
            raise DataError(f"The input {input} does not exist; check the path.")
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            written = int(module.predict_file(str(export), str(input), str(output)))
        except ValueError as err:
            raise DataError(f"{input.name}: {err}") from None
    print_message(f"Wrote {written} predictions to {output}")
