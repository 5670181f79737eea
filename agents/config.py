"""Config: every hyperparameter resolved — the user's values locked, the rest from the family's
data-driven rules (rows, features, classes, lengths, image sizes, time budget). With an LLM, its
proposal is validated (names, types, ranges) and merged over the rules and under the locked values;
an unusable reply is sent back once with the reason, then the rules stand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from tools.llm import LLMClient

MAX_LLM_TRIES = 2
#: What the LLM may tune; structural choices (model, arch) stay with the rules and the user.
TUNABLE = ("epochs", "batch_size", "lr", "weight_decay", "dropout", "hidden", "layers", "patience", "optimizer",
           "lr_scheduler", "warmup_ratio", "grad_accum_steps", "clip_norm", "d_model", "n_heads")


def data_summary(context: JobContext, meta: dict[str, Any]) -> dict[str, Any]:
    """What the LLM sees of the data: sizes and shapes only, never rows, paths or the context."""
    report = context.data_report
    summary = {"task_type": context.task_type, "family": report.get("family"), "splits": meta.get("splits"),
               "classes": len(meta.get("classes") or meta.get("labels") or []) or None,
               "features": meta.get("n_features"), "max_length": meta.get("max_length"),
               "image_shape": meta.get("shape"), "lags": meta.get("lags"), "horizon": meta.get("horizon"),
               "vocab_size": (meta.get("tokenizer") or {}).get("vocab_size") or meta.get("vocab_size")}
    return {k: v for k, v in summary.items() if v not in (None, [], {})}


def validate_proposal(text: str | None, config: dict[str, Any]) -> dict[str, Any]:
    """The proposal's hyperparameters, checked against the spec table; ValueError names the problem."""
    from agents.intent import ReplyError, extract_json
    from mltrainer.spec import check_hyperparameters

    data = extract_json(text)
    proposal = data.get("hyperparameters", data)
    if not isinstance(proposal, dict):
        raise ReplyError("'hyperparameters' must be an object of name: value")
    unknown = sorted(set(proposal) - {k for k in TUNABLE if k in config})
    if unknown:
        raise ReplyError(f"'{unknown[0]}' cannot be tuned here; use only: {', '.join(k for k in TUNABLE if k in config)}")
    return check_hyperparameters(proposal, numeric_strings=True)


class ConfigAgent(BaseAgent):
    stage = "config"

    def __init__(self, bus: Any = None, llm: LLMClient | None = None) -> None:
        super().__init__(bus)
        self.llm = llm

    def _execute(self, context: JobContext) -> dict[str, Any]:
        from orchestrator.errors import UnsupportedError
        from tools.models import model_family_for
        from tools.models.base import read_meta

        task_type = context.task_type or "tabular_classification"
        try:
            family = model_family_for(task_type)
        except UnsupportedError as err:
            where = context.data_paths.get("dir", context.job_dir)
            raise UnsupportedError(f"{err}; the prepared data is in {where}.") from None
        locked = dict(context.spec.get("hyperparameters", {}))
        meta = read_meta(Path(context.data_paths["dir"]))
        budget = context.intent.get("time_budget")
        config = family.config(task_type, meta, locked, budget)
        config["policy"] = "rules"
        if self.llm is not None:
            proposal = self._ask_llm(context, meta, config, locked)
            if proposal:
                # the family applies its own rules again with the proposal under the user's values
                merged = family.config(task_type, meta, {**proposal, **locked}, budget)
                merged["locked"], merged["policy"] = config.get("locked", []), "llm"
                merged["llm_proposal"] = proposal
                config = merged
        shown = " ".join(f"{k}={config[k]:g}" if isinstance(config[k], float) else f"{k}={config[k]}"
                         for k in ("model", "epochs", "batch_size", "lr") if k in config)
        summary = shown + (f" (locked: {', '.join(config['locked'])})" if config.get("locked") else "")
        if config["policy"] == "llm":
            summary += f"; LLM tuned {', '.join(sorted(set(config['llm_proposal']) - set(locked))) or 'nothing'}"
        return {"config": config, "summary": summary}

    def _ask_llm(self, context: JobContext, meta: dict[str, Any], rules: dict[str, Any],
                 locked: dict[str, Any]) -> dict[str, Any]:
        import prompts

        assert self.llm is not None
        tunable = {k: rules[k] for k in TUNABLE if k in rules}
        request = (f"Task: {context.raw_prompt.strip()}\nData: {json.dumps(data_summary(context, meta))}\n"
                   f"Rules chose: {json.dumps(tunable)}\nLocked by the user: {json.dumps(sorted(locked))}\n"
                   f"Names you may set: {', '.join(tunable)}")
        messages: list[dict[str, Any]] = [{"role": "user", "content": request}]
        for attempt in range(1, MAX_LLM_TRIES + 1):
            try:
                reply = self.llm.complete(prompts.load("config"), messages, response_format={"type": "json_object"},
                                          stage=self.stage)
            except Exception as err:  # noqa: BLE001 - any client failure: the rules still answer
                self.log(f"the LLM call failed ({type(err).__name__}); keeping the rules' values", "warning")
                return {}
            try:
                return validate_proposal(reply.content, rules)
            except ValueError as err:
                problem = str(err)
                self.log(f"LLM proposal {attempt}/{MAX_LLM_TRIES} unusable: {problem}", "warning")
                messages += [{"role": "assistant", "content": (reply.content or "")[:2000]},
                             {"role": "user", "content": f"Your previous reply failed: {problem}. Do not repeat it."}]
        self.log("keeping the rules' values", "warning")
        return {}
