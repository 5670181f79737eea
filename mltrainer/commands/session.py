"""Bare `mltrainer`: the interactive session — offer to resume, hold the intake conversation, run the job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from mltrainer.commands.common import EXIT_FAILED, friendly, open_store, run_pipeline

UNFINISHED = ("intake", "running", "failed", "interrupted", "paused")


def _offer_resume(store: Any, ask: Any) -> Any:
    """'Previous session found' for the newest unfinished job; returns that job or None."""
    jobs = [j for j in store.list_jobs() if j.status in UNFINISHED]
    if not jobs:
        return None
    job = jobs[0]
    where = "during intake" if job.status == "intake" else f"at {job.current_stage or 'the start'} ({job.status})"
    answer = ask(f"Previous session found: job {job.id}, stopped {where}. [R] Resume  [N] New", False).strip().lower()
    return job if answer in ("r", "resume", "") else None


@friendly
def session(save_spec: Path | None = None, llm: str | None = None, json_mode: bool = False) -> None:
    """Talk through what to train, then run it; every secret typed here goes to the vault only."""
    import yaml

    from agents.intake import IntakeAgent, IntakeState
    from mltrainer import settings
    from mltrainer.renderer import print_assistant, prompt_input
    from mltrainer.spec import Spec
    from orchestrator.context import JobContext
    from orchestrator.errors import SpecError
    from orchestrator.events import EventBus, event_to_dict
    from orchestrator.orchestrator import new_job_id
    from tools.vault import Vault

    store = open_store()
    vault = Vault()
    try:
        previous = _offer_resume(store, prompt_input)
        if previous is not None and previous.status != "intake":
            raise typer.Exit(run_pipeline(store, JobContext.from_json(previous.context_json), json_mode=json_mode,
                                          resumed=True, create=False))
        if previous is not None:
            context = JobContext.from_json(previous.context_json)
            state = IntakeState(**context.intake) if context.intake else IntakeState()
        else:
            name = new_job_id()
            context = JobContext(job_id=name, job_dir=str(settings.job_dir(name)), status="intake", created_at=time.time())
            store.create_job(name, context.to_json())
            state = IntakeState()

        def checkpoint(current: IntakeState) -> None:
            context.intake = current.to_dict()
            context.conversation = list(current.conversation)
            store.checkpoint(context.job_id, context_json=context.to_json(), status="intake", task_type=None,
                             current_stage="intake")

        bus = EventBus()  # intake's LLM calls and tool calls land in the job's event log too
        bus.subscribe(lambda event: store.append_event(context.job_id, event_to_dict(event)))
        router = _router(llm, bus)
        agent = IntakeAgent(ask=prompt_input, say=print_assistant, vault=vault, job_id=context.job_id, llm=router,
                            bus=bus, state=state, on_turn=checkpoint)
        try:
            state = agent.run()
        except (EOFError, KeyboardInterrupt):
            checkpoint(agent.state)
            print_assistant(f"Saved. Run 'mltrainer' again to pick up this conversation (job {context.job_id}).")
            raise typer.Exit(130) from None
        checkpoint(state)
        if not state.done:
            raise typer.Exit(EXIT_FAILED)
        spec_dict = state.to_spec(router)
        try:
            spec = Spec.model_validate(spec_dict)
        except Exception as err:
            raise SpecError(f"The collected answers do not make a valid spec ({err.__class__.__name__}); start a new session.") from None
        if save_spec is not None:
            # Reference ids belong to this job and stay inert anywhere else, so the saved spec keeps
            # none: a replay picks credentials up from the environment (HF_TOKEN, hf auth login…).
            saved = spec.model_dump(mode="json", exclude_none=True)
            saved.get("deploy", {}).pop("token", None)
            save_spec.write_text(yaml.safe_dump(saved, sort_keys=False, allow_unicode=True))
            print_assistant(f"Saved the spec to {save_spec}; replay it with 'mltrainer run {save_spec}'.")
        source = Path(spec.data.source).expanduser().resolve()
        spec_json = spec.model_dump(mode="json")
        spec_json["data"]["source"] = str(source)
        context.spec = spec_json
        context.raw_prompt = spec.task
        context.runtime = spec.runtime
        context.task_type = spec.task_type
        context.status = "pending"
        context.current_stage = None
        code = run_pipeline(store, context, json_mode=json_mode, resumed=False, create=False)
    finally:
        store.close()
    raise typer.Exit(code)


def _router(llm: str | None, bus: Any = None) -> Any:
    """The job's LLM (default: the fallback chain), or None for the guided no-LLM intake."""
    if llm == "none":
        return None
    from tools.llm import router_from_spec

    return router_from_spec(None if llm in (None, "auto") else llm, bus=bus)
