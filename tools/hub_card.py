"""The model card pushed to the Hub: huggingface_hub's ModelCard with metadata (task, dataset, metrics as
model-index, library) over the export's own card, plus the provenance no one else records — the data
source with its revision or content hash, the exact spec, the search history, test metrics with
bootstrap confidence intervals, compute time and LLM tokens and cost.

Confidence intervals come from the held-out test rows scored again through the export's predict.py
(tabular): the rows are resampled with replacement and the metric recomputed. Where the test rows
cannot be re-scored here, accuracy-like metrics get a Wilson interval from their value and the
number of test examples, and the card says which method gave each interval.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orchestrator.context import JobContext

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
#: Metrics that are a share of examples (a Wilson interval applies from the share and the count).
PROPORTIONS = ("accuracy", "exact_match", "token_accuracy")


def bootstrap_intervals(y_true: Any, y_pred: Any, metric_fn: Any, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap (95 %) of every metric ``metric_fn(y_true, y_pred)`` returns."""
    import numpy as np

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        index = rng.integers(0, len(y_true), len(y_true))
        for name, value in metric_fn(y_true[index], y_pred[index]).items():
            draws.setdefault(name, []).append(float(value))
    tail = (1 - CONFIDENCE) / 2 * 100
    return {name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for name, v in draws.items()}


def wilson_interval(share: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``share`` measured on ``n`` examples."""
    if n <= 0:
        return (0.0, 1.0)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def metric_intervals(context: JobContext, export_dir: Path) -> dict[str, dict[str, Any]]:
    """metric → {value, low, high, method}, for the card's test-metrics table."""
    metrics = {k: float(v) for k, v in (context.test_metrics or {}).items()
               if isinstance(v, (int, float)) and k != "latency_ms_per_row"}
    n = int((context.preprocessing_report.get("splits") or {}).get("test") or 0)
    found: dict[str, dict[str, Any]] = {}
    try:
        found = _tabular_bootstrap(context, export_dir)
    except Exception:  # noqa: BLE001 - re-scoring is a bonus; the table falls back to what it can say
        found = {}
    rows: dict[str, dict[str, Any]] = {}
    for name, value in metrics.items():
        if name in found:
            low, high = found[name]
            rows[name] = {"value": value, "low": low, "high": high,
                          "method": f"bootstrap over the {n} test rows ({BOOTSTRAP_RESAMPLES} resamples)"}
        elif name in PROPORTIONS and n and 0 <= value <= 1:
            low, high = wilson_interval(value, n)
            rows[name] = {"value": value, "low": low, "high": high, "method": f"Wilson interval, n = {n}"}
        else:
            rows[name] = {"value": value, "low": None, "high": None,
                          "method": "no interval: the test predictions are not re-scored for this task here"}
    return rows


def _tabular_bootstrap(context: JobContext, export_dir: Path) -> dict[str, tuple[float, float]]:
    """Re-score the tabular test rows through the export's predict.py and bootstrap the metrics."""
    if not (context.task_type or "").startswith("tabular_"):
        return {}
    import pandas as pd

    from tools.metrics import classification_metrics, regression_metrics
    from tools.models.base import load_predict_module

    data_dir = Path(context.data_paths.get("dir", ""))
    target = json.loads((data_dir / "meta.json").read_text())["target"]
    rows = pd.read_csv(data_dir / "test_rows.csv")
    predicted = load_predict_module(export_dir).predict_frame(export_dir, rows.drop(columns=[target]))[target]
    metric = classification_metrics if context.task_type == "tabular_classification" else regression_metrics
    return bootstrap_intervals(rows[target].to_numpy(), predicted.to_numpy(), metric)


# -- provenance ------------------------------------------------------------------------------------
def data_provenance(context: JobContext) -> dict[str, Any]:
    """Where the data came from, and which exact version: a Hub revision or the file's sha256."""
    report = context.data_report or {}
    fetch = report.get("fetch") or {}
    source = str((context.spec.get("data") or {}).get("source") or report.get("source") or "")
    shown = source if "://" in source else Path(source).name  # a local path says nothing to a reader
    return {"source": shown, "scheme": fetch.get("scheme") or ("file" if "://" not in source else source.split(":")[0]),
            "revision": fetch.get("revision"), "sha256": report.get("sha256"), "rows": report.get("rows")}


def spec_for_card(context: JobContext) -> dict[str, Any]:
    """The job's spec as run (secrets were reference ids from the start; masked again here), local
    paths reduced to their file names."""
    from tools.vault import mask_obj

    spec = json.loads(json.dumps(context.spec or {}, default=str))
    data = spec.get("data") or {}
    if data.get("source") and "://" not in str(data["source"]):
        data["source"] = Path(str(data["source"])).name
    deploy = spec.get("deploy") or {}
    if isinstance(deploy, dict):
        deploy.pop("token", None)
        if deploy.get("path"):
            deploy["path"] = Path(str(deploy["path"])).name
    return mask_obj(spec)


def _front_matter_split(text: str) -> tuple[str, str]:
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[4:end], text[end + 5:]
    return "", text


def _eval_results(context: JobContext, intervals: dict[str, dict[str, Any]], pipeline_tag: str,
                  provenance: dict[str, Any]) -> list[Any]:
    from huggingface_hub import EvalResult

    name = provenance["source"] or "data"
    if provenance["scheme"] == "hf":
        dataset_type = name.removeprefix("hf://").split(":")[0].split("@")[0]  # the Hub dataset id
    elif provenance["scheme"] == "file":
        dataset_type = Path(name).suffix.lstrip(".").lower() or "local"  # csv, parquet…
    else:
        dataset_type = provenance["scheme"] or "local"
    return [EvalResult(task_type=pipeline_tag, dataset_type=dataset_type, dataset_name=name, metric_type=metric,
                       metric_value=round(row["value"], 6), dataset_split="test",
                       dataset_revision=provenance.get("revision") or (provenance.get("sha256") or None))
            for metric, row in intervals.items()]


def build_card(context: JobContext, export_dir: Path, repo_id: str, ledger: dict[str, Any],
               intervals: dict[str, dict[str, Any]] | None = None) -> str:
    """README.md for the Hub: metadata that parses as ModelCardData, the export's card, then provenance."""
    import yaml
    from huggingface_hub import ModelCard, ModelCardData

    from agents.export import PIPELINE_TAGS

    intervals = metric_intervals(context, export_dir) if intervals is None else intervals
    provenance = data_provenance(context)
    pipeline_tag = PIPELINE_TAGS.get(context.task_type or "", "other")
    existing, body = _front_matter_split((export_dir / "README.md").read_text(encoding="utf-8")
                                         if (export_dir / "README.md").exists() else "")
    old = yaml.safe_load(existing) if existing else {}
    tags = [str(t) for t in (old or {}).get("tags") or ["mltrainer"]]
    datasets = [provenance["source"].removeprefix("hf://").split(":")[0].split("@")[0]] if provenance["scheme"] == "hf" else None
    data = ModelCardData(library_name="mltrainer", pipeline_tag=pipeline_tag, tags=tags, datasets=datasets,
                         model_name=repo_id.split("/")[-1],
                         eval_results=_eval_results(context, intervals, pipeline_tag, provenance) or None)
    text = f"---\n{data.to_yaml()}\n---\n{body.rstrip()}\n\n{provenance_section(context, intervals, provenance, ledger)}"
    ModelCard(text)  # parses the metadata back: a card that would not load is never pushed
    return text


def provenance_section(context: JobContext, intervals: dict[str, dict[str, Any]], provenance: dict[str, Any],
                       ledger: dict[str, Any]) -> str:
    import yaml

    def fmt(value: Any) -> str:
        return "–" if value is None else f"{value:.4f}"

    metric_rows = "\n".join(f"| {name} | {fmt(row['value'])} | {fmt(row['low'])} – {fmt(row['high'])} | {row['method']} |"
                            for name, row in intervals.items())
    search = (context.architecture or {}).get("search") or {}
    kept = (context.architecture or {}).get("kept") or (context.best_metric or {}).get("model")
    search_rows = "\n".join(
        f"| {name}{' (kept)' if name == kept else ''} | "
        + ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, (int, float))) + " |"
        for name, scores in search.items()) or "| (one candidate) | – |"
    from orchestrator.plan import STAGES

    stages = context.stage_results or {}
    before_deploy = STAGES[:STAGES.index("deploy")]  # the card must not change when only the push is retried
    compute = sum(float((stages.get(s) or {}).get("duration") or 0.0) for s in before_deploy)
    training = float((stages.get("training") or {}).get("duration") or 0.0)
    remote = [r for r in ledger.get("runs", []) if r.get("runtime") != "hub"]
    remote_lines = "".join(f"\n- {r['runtime']} run `{r['remote_id']}`: {r['gpu_count'] or 'no'} × {r['gpu'] or 'GPU'}, "
                           f"{r['minutes']:.1f} min, about ${r['cost_usd']:.2f}" for r in remote)
    llm = ledger.get("llm") or {}
    llm_line = (f"{llm.get('calls', 0)} calls ({', '.join(str(m) for m in llm.get('models') or [])}), "
                f"{llm.get('tokens_in', 0)} tokens in, {llm.get('tokens_out', 0)} out, ${llm.get('cost', 0.0):.4f}"
                if llm.get("calls") else "none (the deterministic rules decided)")
    version = provenance.get("revision") or (f"sha256 `{provenance['sha256']}`" if provenance.get("sha256") else "unknown")
    spec_yaml = yaml.safe_dump(spec_for_card(context), sort_keys=False, allow_unicode=True).rstrip()
    return f"""## Provenance

### Data

- source: `{provenance['source']}` ({provenance['scheme']})
- version: {version}
- rows: {provenance.get('rows')}

### Test metrics with 95% confidence intervals

| metric | value | 95% CI | how |
|---|---|---|---|
{metric_rows}

### Search history (validation scores of every candidate tried)

| candidate | validation |
|---|---|
{search_rows}

### Compute

- pipeline time: {compute:.1f} s, of which training {training:.1f} s{remote_lines}
- runtime cost: about ${ledger.get('runtime_cost', 0.0):.2f}; total with LLM: about ${ledger.get('total_cost', 0.0):.2f}
- LLM: {llm_line}

### Spec

```yaml
{spec_yaml}
```

Job `{context.job_id}`, trained and published by [mltrainer](https://pypi.org/project/mltrainer/).
"""
