"""The typer app: wires the command modules together. Heavy imports happen inside commands."""

from __future__ import annotations

import typer

from mltrainer.commands import jobs, predict, run

app = typer.Typer(
    help="Describe a model in words; mltrainer trains, evaluates and exports it — offline, resumable.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    """Bare `mltrainer` will open the interactive session; until then it prints this help."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


app.command("run")(run.run)
app.command("resume")(run.resume)
app.command("jobs")(jobs.jobs)
app.command("show")(jobs.show)
app.command("predict")(predict.predict)


def main() -> None:
    app()
