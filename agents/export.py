"""Export: package the kept model as a self-contained folder, then score the test rows through it.

The test metrics in the model card come from the exported predict.py on held-out raw rows, so
they measure exactly what a user of the folder will get.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import TrainingError

PIPELINE_TAGS = {
    "tabular_classification": "tabular-classification", "tabular_regression": "tabular-regression",
    "text_classification": "text-classification", "token_classification": "token-classification",
    "summarization": "summarization", "translation": "translation", "text_generation": "text-generation",
    "image_classification": "image-classification", "image_regression": "image-regression",
    "object_detection": "object-detection", "time_series_forecasting": "time-series-forecasting",
    "clustering": "clustering", "llm_finetuning": "text-generation",
}



def model_card(context: JobContext, test_metrics: dict[str, float], model_json: dict[str, Any],
               baseline: dict[str, Any]) -> str:
    report = context.data_report
    prep = context.preprocessing_report
    metric_rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in test_metrics.items() if isinstance(v, (int, float)))
    baseline_rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in baseline.items() if isinstance(v, (int, float)))
    family = report.get("family", "tabular")
    kept = context.best_metric
    kept_text = (f" was kept on {kept.get('split', 'val')} {kept.get('name')}\n= {float(kept.get('value', 0.0)):.4f}"
                 if kept.get("name") else "")
    features = (f" from {prep.get('n_features')} features ({len(prep.get('numeric_columns', []))} numeric, "
                f"{len(prep.get('categorical_columns', {}))} categorical columns)" if family == "tabular" else "")
    target = context.intent.get("target") if family != "clustering" else None  # clustering's is a reference only
    baseline_part = (f"\n\nTrivial baseline ({baseline.get('name', 'baseline')}) on the same rows:\n\n| metric | value |\n"
                     f"|---|---|\n{baseline_rows}" if baseline_rows else "")
    return f"""---
library_name: mltrainer
pipeline_tag: {PIPELINE_TAGS.get(context.task_type or '', 'other')}
tags: [mltrainer, {family}, {model_json.get('kind', 'model')}]
---

# {context.job_id}

{context.raw_prompt}

Trained by mltrainer: a **{model_json.get('kind')}** model{kept_text}{f"; it predicts **{target}**" if target else ""}{features}.

## Test metrics (held-out {prep.get('splits', {}).get('test')} examples, scored through this folder's predict.py)

| metric | value |
|---|---|
{metric_rows}{baseline_part}

## Data

- source: `{Path(report.get('source', '')).name}` (sha256 `{(report.get('sha256') or '')[:16]}…`)
- rows: {report.get('rows')}, columns: {report.get('columns', '-')}
- split train/val/test: {prep.get('splits')} (seed {prep.get('seed')}{', stratified' if prep.get('stratified') else ''})
- dropped columns: {', '.join(f'{k} ({v})' for k, v in prep.get('dropped_columns', {}).items()) or 'none'}

## Use

```bash
pip install -r requirements.txt
python predict.py --input INPUT --output predictions.csv
```
"""


def loss_curve(context: JobContext, staging: Path) -> str:
    """Draw loss per epoch of every model and split into loss_curve.png; the card's section for it."""
    from tools.plot import line_chart, loss_series

    series = loss_series(context.training_metrics)
    legend = line_chart(series, staging / "loss_curve.png")
    if not legend:
        (staging / "loss_curve.png").unlink(missing_ok=True)
        return ""
    points = [point for name, _ in legend for point in series[name]]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    lines = ", ".join(f"{name} in {colour}" for name, colour in legend)
    return (f"\n## Training curve\n\n![loss per epoch](loss_curve.png)\n\nx: epoch {min(xs):g}–{max(xs):g}; "
            f"y: loss {min(ys):.4g}–{max(ys):.4g}; {lines}.\n")


@contextmanager
def formats_timer() -> Iterator[list[float]]:
    """Seconds the family spends in tools.models.base.export_formats (TorchScript/ONNX export and
    checks) while the block runs — looked up there at call time, so wrapping it times every family."""
    import tools.models.base as base

    spent = [0.0]
    original = getattr(base, "export_formats", None)
    if original is None:
        yield spent
        return

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    base.export_formats = timed
    try:
        yield spent
    finally:
        base.export_formats = original


def compress_options(section: Any) -> dict[str, Any] | None:
    from tools.compress import options_from_spec

    return options_from_spec(section) if section else None


def extra_sections(context: JobContext, compression: dict[str, Any], soup: dict[str, Any] | None) -> str:
    """Card sections for a merge, a model soup and compression ('' for a plain job)."""
    from tools.compress import card_section

    text = ""
    merge = context.architecture.get("merge")
    if merge:
        settings = ", ".join(f"{k} {merge[k]}" for k in ("t", "density", "scale", "seed") if merge.get(k) is not None)
        text += (f"\n## Merge\n\nWeights merged from jobs {', '.join(merge['jobs'])} by **{merge['method']}**"
                 + (f" relative to base {merge['base']}" if merge.get("base") else "")
                 + (f" ({settings})" if settings else "") + "; the test metrics above score the merged weights.\n")
    if soup and soup.get("applied"):
        text += (f"\n## Model soup\n\nThe exported weights average {' + '.join(soup['members'])} checkpoints: "
                 f"{soup['metric']} {soup['best_single']:.4f} → {soup['val']:.4f}.\n")
    return text + card_section(compression)


class ExportAgent(BaseAgent):
    stage = "export"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        from tools.models import model_family_for

        task_type = context.task_type or "tabular_classification"
        family = model_family_for(task_type)
        run_out = Path(context.artifacts["run_dir"])
        export_dir = Path(context.job_dir) / "export"
        staging = export_dir.with_name("export.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("model.safetensors", "model.json"):
            if not (run_out / name).exists():
                raise TrainingError(f"Training did not leave {name} in {run_out}; run the training stage again.")
            shutil.copy2(run_out / name, staging / name)
        model_json = json.loads((run_out / "model.json").read_text())
        metrics_file = run_out / "metrics.json"
        run_metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        data_dir = Path(context.data_paths["dir"])
        soup = self._soup(family.name, run_out, data_dir, staging) if not context.architecture.get("merge") else None
        n_test = max(1, int(context.preprocessing_report["splits"]["test"]))
        started = time.perf_counter()
        with formats_timer() as formats_seconds:
            test_metrics = family.export(task_type, run_out, data_dir, staging)
        # per row of the test split, loading included; the TorchScript/ONNX exports are not prediction time
        latency_ms = (time.perf_counter() - started - formats_seconds[0]) * 1000 / n_test
        baseline = run_metrics.get("baseline") or {}
        compression: dict[str, Any] = {}
        options = compress_options(context.spec.get("compress"))
        if options:
            from tools.compress import compress_export

            compression = compress_export(family, task_type, run_out, data_dir, staging, test_metrics, latency_ms,
                                          n_test, options, lambda message, level="info": self.log(message, level))

        config = {
            "task_type": task_type,
            "target": context.intent.get("target"),
            "model": model_json,
            "config": context.config,
            "architecture": context.architecture,
            "best_validation": context.best_metric,
            "test_metrics": test_metrics,
            "baseline": baseline,
            "data": {"source_sha256": context.data_report.get("sha256"), "splits": context.preprocessing_report.get("splits")},
            **({"compression": compression} if compression else {}),
            **({"soup": soup} if soup else {}),
        }
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str))
        card = (model_card(context, test_metrics, model_json, baseline) + loss_curve(context, staging)
                + extra_sections(context, compression, soup))
        (staging / "README.md").write_text(card)
        shutil.rmtree(export_dir, ignore_errors=True)
        staging.rename(export_dir)

        shown = ", ".join(f"{k} {v:.4f}" for k, v in test_metrics.items() if isinstance(v, (int, float)))
        kept = compression.get("kept") or []
        return {
            "test_metrics": {**test_metrics, "latency_ms_per_row": latency_ms},
            "artifacts": {"export_dir": str(export_dir), "model_card": str(export_dir / "README.md"),
                          **{f"compressed_{m}": str(export_dir / "compressed" / m) for m in kept}},
            **({"compression": compression} if compression else {}),
            **({"architecture": {"soup": soup}} if soup else {}),
            "summary": f"export/ written; test {shown}" + (f"; compressed: {', '.join(kept) or 'none kept'}"
                                                           if options else ""),
        }

    def _soup(self, family: str, run_out: Path, data_dir: Path, staging: Path) -> dict[str, Any] | None:
        """Average same-architecture checkpoints (a model soup) into the staged weights when that
        improves validation; what was tried, or None when the run left nothing to average."""
        if family != "tabular":
            return None
        from safetensors.numpy import save_file

        from tools.merge import load_state, tabular_soup

        found = tabular_soup(run_out, data_dir, load_state(staging / "model.safetensors"))
        if found is None:
            return None
        state, report = found
        if report["applied"]:
            save_file(state, str(staging / "model.safetensors"))
            self.log(f"model soup of {' + '.join(report['members'])}: {report['metric']} "
                     f"{report['best_single']:.4f} → {report['val']:.4f}")
        return report
