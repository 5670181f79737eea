"""The terminal renderer — the only module that imports rich (and, later, prompt_toolkit).

It dispatches on each event's ``type``: a line per stage with status and timing, retries with
their error, and a progress bar with ETA while training. ``JsonRenderer`` prints JSON lines instead.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.padding import Padding
from rich.progress import BarColumn, Progress, TextColumn
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from orchestrator.events import Event, EventBus, event_to_dict


#: Colour of each training phase badge (tools/observer/states.py names the phases).
PHASE_STYLE = {"initializing": "dim", "warmup": "cyan", "learning_fast": "green", "stable_convergence": "green",
               "plateau": "yellow", "overfitting_risk": "yellow", "diverging": "bold red", "stalled": "red",
               "converged": "green", "done": "green"}


def _badge(phase: str) -> str:
    return escape(phase.replace("_", " ").upper())


def _fmt_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class JsonRenderer:
    """One JSON object per event on stdout, for scripts."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout

    def handle(self, event: Event) -> None:
        self.stream.write(json.dumps(event_to_dict(event), default=str) + "\n")
        self.stream.flush()

    def __enter__(self) -> JsonRenderer:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class LiveRenderer:
    """Rich live view: finished stages as permanent lines, the running stage and training below."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.current: tuple[str, float] | None = None
        self.progress = Progress(
            TextColumn("   {task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.completed:>4.0f}/{task.total:.0f}"),
            TextColumn("{task.fields[metrics]}"),
            TextColumn("{task.fields[eta]}"),
            console=self.console,
        )
        self.tasks: dict[str, Any] = {}
        self.live = Live(self._view(), console=self.console, refresh_per_second=8, transient=True,
                         get_renderable=self._view)
        self._lock = threading.Lock()

    def _view(self) -> Any:
        parts: list[Any] = []
        if self.current is not None:
            stage, started = self.current
            parts.append(Spinner("dots", text=Text(f" {stage}  {_fmt_seconds(time.time() - started)}")))
        if self.tasks:
            parts.append(self.progress)
        return Group(*parts)

    def __enter__(self) -> LiveRenderer:
        self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.stop()

    def _line(self, text: str) -> None:
        self.console.print(text)

    def handle(self, event: Event) -> None:
        with self._lock:
            getattr(self, f"_on_{event.type}", lambda e: None)(event)

    # -- one method per event type -----------------------------------------------------------
    def _on_pipeline_start(self, e: Any) -> None:
        verb = "Resuming" if e.resumed else "Starting"
        self._line(f"[bold]{verb} job {escape(e.job_id)}[/]")

    def _on_stage_start(self, e: Any) -> None:
        self.current = (e.stage, e.time)

    def _on_stage_end(self, e: Any) -> None:
        self.current = None
        self._clear_progress()
        summary = f"  [dim]{escape(e.summary)}[/]" if e.summary else ""
        self._line(f">> {e.stage:<13} [green]✓[/] {_fmt_seconds(e.duration)}{summary}")

    def _on_stage_failed(self, e: Any) -> None:
        self.current = None
        self._clear_progress()
        label = "failed" if e.final else f"attempt {e.attempt} failed"
        self._line(f">> {e.stage:<13} [red]✗ {label}:[/] {escape(e.error)}")

    def _on_stage_retry(self, e: Any) -> None:
        self._line(f"   [yellow]retrying {e.stage} (attempt {e.next_attempt}) in {e.delay:.1f}s[/]")

    def _on_stage_skipped(self, e: Any) -> None:
        self._line(f">> {e.stage:<13} [dim]– skipped ({escape(e.reason)})[/]")

    def _on_agent_log(self, e: Any) -> None:
        color = "yellow" if e.level == "warning" else "dim"
        self._line(f"   [{color}]{escape(e.message)}[/]")

    def _on_data_report(self, e: Any) -> None:
        self.console.print(data_table(e.title, e.rows))

    def _on_llm_response(self, e: Any) -> None:
        self._line(f"   [dim]llm {escape(e.model)}: {e.tokens_in}→{e.tokens_out} tokens, {e.latency:.1f}s[/]")

    def _on_tool_result(self, e: Any) -> None:
        self._line(f"   [dim]tool {escape(e.tool)}: {'ok' if e.ok else 'failed'} {escape(e.summary)}[/]")

    def _on_training_metric(self, e: Any) -> None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in e.metrics.items() if k in ("loss", "accuracy", "r2"))
        if getattr(e, "phase", ""):
            shown = f"[{PHASE_STYLE.get(e.phase, 'dim')}]{_badge(e.phase)}[/]  {shown}"
        eta = f"ETA {_fmt_seconds(e.eta_seconds)}" if e.eta_seconds is not None else ""
        if eta and getattr(e, "eta_high", None) is not None and getattr(e, "eta_low", None) is not None:
            eta += f" ±{_fmt_seconds(max(0.0, e.eta_high - e.eta_low) / 2)}"
        if e.model not in self.tasks:
            self.tasks[e.model] = self.progress.add_task(e.model, total=max(e.total_epochs, 1), metrics="", eta="")
        self.progress.update(self.tasks[e.model], completed=e.epoch, total=max(e.total_epochs, e.epoch, 1),
                             metrics=shown, eta=eta)

    def _on_training_phase(self, e: Any) -> None:
        self._line(f"   [{PHASE_STYLE.get(e.phase, 'dim')}]{_badge(e.phase)}[/] [dim]{escape(e.model)}[/] {escape(e.narrative)}")

    def _on_training_advice(self, e: Any) -> None:
        label = "[cyan]acting on advice:[/]" if e.acted else "[yellow]advice:[/]"
        self._line(f"   {label} [dim]{escape(e.model)}[/] {escape(e.message)}")

    def _on_resource_alert(self, e: Any) -> None:
        self._line(f"   [yellow]alert ({escape(e.kind)}):[/] {escape(e.message)}")

    def _clear_progress(self) -> None:
        for task in self.tasks.values():
            self.progress.remove_task(task)
        self.tasks.clear()

    def _on_pipeline_end(self, e: Any) -> None:
        self.current = None
        if e.status == "done":
            where = f" Model exported to {escape(e.export_dir)}" if e.export_dir else ""
            self._line(f"[bold green]Done[/] in {_fmt_seconds(e.duration)}.{where}")
            live = [url for url in getattr(e, "deployed_urls", ()) if url.startswith(("http://", "https://"))]
            if live:
                self._line(f"Model live at: {escape(', '.join(live))}")
        elif e.status == "interrupted":
            self._line(f"[yellow]Stopped.[/] Resume with: mltrainer resume {escape(e.job_id)}")
        elif e.status == "paused":
            self._line(f"[green]Paused[/] ({escape(e.reason)}) in {_fmt_seconds(e.duration)}. "
                       f"Continue with: mltrainer resume {escape(e.job_id)}")
        else:
            self._line(f"[bold red]Job {escape(e.job_id)} failed:[/] {escape(e.reason)}")
            self._line(f"Fix the cause, then run: mltrainer resume {escape(e.job_id)}")


def data_table(title: str, rows: Any) -> Padding:
    """The data report as a compact two-column table, indented under its stage line."""
    table = Table(title=escape(title), title_justify="left", title_style="bold", show_header=False,
                  box=None, padding=(0, 1), pad_edge=False)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(escape(str(label)), escape(str(value)))
    return Padding(table, (0, 0, 0, 3))


def render_events(bus: EventBus, json_mode: bool) -> tuple[threading.Thread, Any]:
    """Start a thread that drains the bus into a renderer; join it after ``bus.close()``."""
    renderer: Any = JsonRenderer() if json_mode else LiveRenderer()

    def loop() -> None:
        with renderer:
            bus.drain(renderer.handle)

    thread = threading.Thread(target=loop, name="renderer", daemon=True)
    thread.start()
    return thread, renderer


# -- static views (jobs, show, errors) --------------------------------------------------------
_err = Console(stderr=True, highlight=False, soft_wrap=True)
_out = Console(highlight=False)

STATUS_STYLE = {"done": "green", "failed": "red", "running": "yellow", "interrupted": "yellow", "paused": "cyan", "pending": "dim",
                "skipped": "dim"}


def _status(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{escape(status)}[/]" if style else escape(status)


def prompt_input(message: str, secret: bool = False) -> str:
    """Read one answer: prompt_toolkit on a terminal (history, paste, hidden secrets), else a line of stdin."""
    if not sys.stdin.isatty():
        _out.print(escape(message), end=" ")
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    from mltrainer import settings

    if secret:  # secrets never go into the history file
        return PromptSession().prompt(message + " ", is_password=True)
    session: PromptSession[str] = PromptSession(history=FileHistory(str(settings.home() / "history")))
    return session.prompt(message + " ")


def print_assistant(message: str) -> None:
    _out.print(f"[bold cyan]mltrainer:[/] {escape(message)}")


def print_error(message: str) -> None:
    _err.print(f"[bold red]Error:[/] {escape(message)}")


def print_message(message: str) -> None:
    _out.print(escape(message))


def print_jobs(rows: list[dict[str, Any]]) -> None:
    if not rows:
        _out.print("No jobs yet. Start one with: mltrainer run SPEC.yaml")
        return
    table = Table(show_edge=False, header_style="bold")
    for col in ("job", "status", "task", "stage", "best", "updated"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["id"]), _status(r["status"]), r["task_type"] or "-", r["stage"] or "-",
                      r["best"] or "-", time.strftime("%Y-%m-%d %H:%M", time.localtime(r["updated_at"])))
    _out.print(table)


def print_job(detail: dict[str, Any]) -> None:
    _out.print(f"[bold]{escape(detail['id'])}[/]  {_status(detail['status'])}  {detail['task_type'] or ''}")
    if detail.get("task"):
        _out.print(f"  task: {escape(detail['task'])}")
    table = Table(show_edge=False, header_style="bold")
    for col in ("stage", "status", "attempts", "time", "note"):
        table.add_column(col)
    for s in detail["stages"]:
        table.add_row(s["stage"], _status(s["status"]), str(s["attempts"]),
                      _fmt_seconds(s["duration"]) if s["duration"] else "-", escape(s["note"]))
    _out.print(table)
    if detail.get("data_report"):
        from tools.prep.report import report_rows

        _out.print(data_table("data", report_rows(detail["data_report"])))
    for err in detail.get("errors", []):
        _out.print(f"  [red]{err['stage']} attempt {err['attempt']}:[/] {escape(err['message'])}")
    if detail.get("best_metric"):
        b = detail["best_metric"]
        _out.print(f"  best: {b.get('model')} {b.get('split')} {b.get('name')} = {float(b.get('value', 0)):.4f}")
    if detail.get("test_metrics"):
        shown = ", ".join(f"{k} {v:.4f}" for k, v in detail["test_metrics"].items())
        _out.print(f"  test: {shown}")
    for row in (detail.get("compression") or {}).get("variants", []):  # the export's compressed variants
        outcome = "kept" if row.get("kept") else "rolled back"
        _out.print(f"  {escape(row['method'])}: {outcome}, {row['size_bytes']:,} bytes, test "
                   f"{escape(str(detail['compression'].get('metric')))} {row['metric']:.4f}")
    llm = detail.get("llm") or {}
    if llm.get("calls"):
        _out.print(f"  llm: {llm['calls']} calls ({', '.join(llm['models'])}), {llm['tokens_in']}→{llm['tokens_out']} "
                   f"tokens, ${llm['cost']:.4f}")
    ledger = detail.get("ledger") or {}
    for run in ledger.get("runs", []):
        if run["runtime"] == "hub":
            _out.print(f"  hub push: {escape(str(run['detail'].get('repo_id', '')))} commit {escape(str(run['remote_id']))[:12]} "
                       f"({run['status']})")
            continue
        gpu = f"{run['gpu_count']}× {run['gpu']}" if run.get("gpu_count") else "CPU"
        _out.print(f"  {escape(run['runtime'])}: {escape(str(run['remote_id']))} ({run['status']}, {gpu}, "
                   f"{run['minutes']:.1f} min, ~${run['cost_usd']:.2f})")
    if ledger.get("runs") or ledger.get("total_cost"):
        _out.print(f"  cost: ~${ledger['total_cost']:.2f} (GPU {ledger['gpu_minutes']:.1f} min ~${ledger['runtime_cost']:.2f}, "
                   f"LLM ${ledger['llm']['cost']:.4f})")
    for label, line in (detail.get("training_watch") or {}).items():  # curve sparkline, phases, advice
        _out.print(f"  {escape(label)}: {escape(line)}")
    for name, path in detail.get("artifacts", {}).items():
        _out.print(f"  {name}: {escape(path)}")
    if detail.get("failure"):
        f = detail["failure"]
        _out.print(f"  [red]failed at {f.get('stage')}:[/] {escape(f.get('error', ''))}")
        _out.print(f"  resume with: mltrainer resume {escape(detail['id'])}")
