"""The data report in a handful of lines: what a person checks before training starts.

Pure data in, (label, value) pairs out; the renderer only lays them out.
"""

from __future__ import annotations

from typing import Any

MAX_ROWS = 12
MAX_CLASSES_SHOWN = 6


def _stats(value: dict[str, Any], keys: tuple[str, ...] = ("p50", "p95", "max")) -> str:
    parts = [f"{k} {value[k]:,.0f}" for k in keys if isinstance(value.get(k), (int, float))]
    return ", ".join(parts)


def _distribution(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in items[:MAX_CLASSES_SHOWN])
    more = f" (+{len(items) - MAX_CLASSES_SHOWN} more)" if len(items) > MAX_CLASSES_SHOWN else ""
    return shown + more


def report_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines for any family's report; keys a family lacks are simply left out."""
    rows: list[tuple[str, str]] = []

    def add(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            rows.append((label, str(value)))

    add("task", (report.get("task_type") or "").replace("_", " ") +
        (f" ({report['task_type_reason']})" if report.get("task_type_reason") else ""))
    shape = f"{report.get('rows', 0):,} rows"
    if report.get("columns"):
        shape += f" × {report['columns']} columns"
    add("size", shape)
    roles = report.get("roles") or {}
    add("columns used", ", ".join(f"{role}={name}" for role, name in roles.items()))
    if report.get("target_reason"):
        add("target", f"{report.get('target')} ({report['target_reason']})")
    if report.get("target_distribution"):
        add("classes", _distribution(report["target_distribution"]))
    if report.get("label_vocabulary"):
        add("labels", _distribution(report["label_vocabulary"]))
    stats = report.get("target_stats")
    if stats:
        add("target range", f"{stats.get('min', 0):,.4g} … {stats.get('max', 0):,.4g} (mean {stats.get('mean', 0):,.4g})")
    missing = report.get("missing_cells")
    if missing:
        add("missing cells", f"{missing:,}")
    if report.get("duplicate_rows"):
        add("duplicate rows", f"{report['duplicate_rows']:,}")
    for key, label in (("id_like_columns", "id-like (dropped)"), ("constant_columns", "constant (dropped)"),
                       ("all_missing_columns", "empty (dropped)"), ("leakage_suspects", "leaks the target (dropped)")):
        if report.get(key):
            add(label, ", ".join(report[key]))
    text = report.get("text_length")
    if isinstance(text, dict) and text.get("chars"):
        add("text length", "chars " + _stats(text["chars"]))
    images = report.get("images")
    if isinstance(images, dict):
        width, height = images.get("width") or {}, images.get("height") or {}
        size = f"{width.get('median', '?')}×{height.get('median', '?')} median" if width else ""
        bad = f", {images['undecodable']} undecodable" if images.get("undecodable") else ""
        add("images", f"{images.get('count', 0):,} ({size}{bad})")
    if report.get("frequency"):
        span = f"{report.get('start', '')} … {report.get('end', '')}"
        add("time index", f"{report.get('time')} {span}, {report.get('frequency_words') or report['frequency']}"
            + (f", {report['gaps']} gaps" if report.get("gaps") else ""))
    if report.get("characters"):
        add("corpus", f"{report['characters']:,} characters, {report.get('words', 0):,} words")
    return rows[:MAX_ROWS]
