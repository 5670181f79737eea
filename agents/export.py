"""Export: package the kept model as a self-contained folder, then score the test rows through it.

The test metrics in the model card come from the exported predict.py on held-out raw rows, so
they measure exactly what a user of the folder will get.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import TrainingError

TOOLS = Path(__file__).resolve().parent.parent / "tools"
EXPORT_REQUIREMENTS = "numpy\npandas\nsafetensors\n"


def load_predict_module(export_dir: Path) -> ModuleType:
    """Import an export's predict.py by path (works from any working directory)."""
    path = export_dir / "predict.py"
    spec = importlib.util.spec_from_file_location(f"mltrainer_export_{abs(hash(str(export_dir)))}", path)
    if spec is None or spec.loader is None:
        raise TrainingError(f"{path} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_card(context: JobContext, test_metrics: dict[str, float], model_json: dict[str, Any]) -> str:
    report = context.data_report
    prep = context.preprocessing_report
    metric_rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in test_metrics.items())
    pipeline = "tabular-classification" if context.task_type == "tabular_classification" else "tabular-regression"
    kept = context.best_metric
    return f"""---
library_name: mltrainer
pipeline_tag: {pipeline}
tags: [mltrainer, tabular, {model_json.get('kind', 'model')}]
---

# {context.job_id}

{context.raw_prompt}

Trained by mltrainer: a **{model_json.get('kind')}** model was kept on {kept.get('split', 'val')} {kept.get('name')}
= {float(kept.get('value', 0.0)):.4f}; it predicts **{context.intent.get('target')}** from
{prep.get('n_features')} features ({len(prep.get('numeric_columns', []))} numeric,
{len(prep.get('categorical_columns', {}))} categorical columns).

## Test metrics (held-out {prep.get('splits', {}).get('test')} rows, scored through this folder's predict.py)

| metric | value |
|---|---|
{metric_rows}

## Data

- source: `{Path(report.get('source', '')).name}` (sha256 `{report.get('sha256', '')[:16]}…`)
- rows: {report.get('rows')}, columns: {report.get('columns')}
- split train/val/test: {prep.get('splits')} (seed {prep.get('seed')}{', stratified' if prep.get('stratified') else ''})
- dropped columns: {', '.join(f'{k} ({v})' for k, v in prep.get('dropped_columns', {}).items()) or 'none'}

## Use

```bash
pip install -r requirements.txt
python predict.py --input rows.csv --output predictions.csv
```
"""


class ExportAgent(BaseAgent):
    stage = "export"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        import pandas as pd

        from tools.metrics import classification_metrics, regression_metrics

        run_out = Path(context.artifacts["run_dir"])
        export_dir = Path(context.job_dir) / "export"
        staging = export_dir.with_name("export.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("model.safetensors", "model.json"):
            if not (run_out / name).exists():
                raise TrainingError(f"Training did not leave {name} in {run_out}; run the training stage again.")
            shutil.copy2(run_out / name, staging / name)
        shutil.copy2(context.data_paths["transform"], staging / "transform.json")
        shutil.copy2(TOOLS / "tabular_transform.py", staging / "transform.py")
        shutil.copy2(TOOLS / "templates" / "tabular" / "predict.py", staging / "predict.py")
        (staging / "requirements.txt").write_text(EXPORT_REQUIREMENTS)
        model_json = json.loads((run_out / "model.json").read_text())

        predict = load_predict_module(staging)
        test_rows = pd.read_csv(context.data_paths["test_rows"])
        target = context.intent["target"]
        started = time.perf_counter()
        predictions = predict.predict_frame(staging, test_rows.drop(columns=[target]))
        latency_ms = (time.perf_counter() - started) * 1000 / max(1, len(test_rows))
        if len(predictions) != len(test_rows):
            raise TrainingError("The exported predict.py returned a different number of rows than it was given.")
        if context.task_type == "tabular_classification":
            test_metrics = classification_metrics(test_rows[target].to_numpy(), predictions[target].to_numpy())
        else:
            test_metrics = regression_metrics(test_rows[target].to_numpy(), predictions[target].to_numpy())

        config = {
            "task_type": context.task_type,
            "target": target,
            "model": model_json,
            "config": context.config,
            "architecture": context.architecture,
            "best_validation": context.best_metric,
            "test_metrics": test_metrics,
            "data": {"source_sha256": context.data_report.get("sha256"), "splits": context.preprocessing_report.get("splits")},
        }
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str))
        (staging / "README.md").write_text(model_card(context, test_metrics, model_json))
        shutil.rmtree(export_dir, ignore_errors=True)
        staging.rename(export_dir)

        shown = ", ".join(f"{k} {v:.4f}" for k, v in test_metrics.items())
        return {
            "test_metrics": {**test_metrics, "latency_ms_per_row": latency_ms},
            "artifacts": {"export_dir": str(export_dir), "model_card": str(export_dir / "README.md")},
            "summary": f"export/ written; test {shown}",
        }
