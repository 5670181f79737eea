"""The typer app: wires the command modules together. Heavy imports happen inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mltrainer.commands import jobs, predict, run

app = typer.Typer(
    help="Describe a model in words; mltrainer trains, evaluates and exports it — offline, resumable.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    save_spec: Optional[Path] = typer.Option(None, "--save-spec", help="Session: also write the collected spec here."),
    llm: Optional[str] = typer.Option(None, "--llm", help="Session: provider/model, 'auto' or 'none' (default: auto — a key in the environment, else Groq, else a local Ollama, else none)."),
    json_mode: bool = typer.Option(False, "--json", help="Session: print pipeline events as JSON lines."),
) -> None:
    """Bare `mltrainer` opens an interactive session: say what to train and it asks for the rest."""
    if ctx.invoked_subcommand is None:
        from mltrainer.commands.session import session

        session(save_spec=save_spec, llm=llm, json_mode=json_mode)


app.command("run")(run.run)
app.command("resume")(run.resume)
app.command("jobs")(jobs.jobs)
app.command("show")(jobs.show)
app.command("predict")(predict.predict)

from mltrainer.commands import watch as watch_command  # noqa: E402 - the training observer (issue 6)

app.command("watch")(watch_command.watch)

from mltrainer.commands import eject, merge, tokenizer  # noqa: E402 - the lab's commands (issue 8)

app.command("merge")(merge.merge)
app.command("eject")(eject.eject)
app.add_typer(tokenizer.app, name="tokenizer")

from mltrainer.commands import lab  # noqa: E402 - bring your own model (issue 8, items 1-4)

app.command("try")(lab.try_model)
app.command("summary")(lab.summary)


def main() -> None:
    app()
