"""LLM economy: calls, tokens and cost of one job per task family, with an LLM that agrees.

Each example spec (examples/*.yaml, one per task family) runs ``mltrainer run --until codegen`` with
``llm: {model: openai/gpt-4o-mini, api_base: <a loopback OpenAI-compatible fake>}`` — every stage
that asks an LLM has asked by then; training asks none. The fake (tests/fakes/openai_server.py)
answers like a model that agrees with the deterministic rules: the intent the rules read, the
hyperparameters the rules chose, and (for the job with a custom architecture request) the script it
was given, unchanged — so every reply is accepted on the first try and the figures are those of a
job that goes well. Token counts are the fake's estimate (four characters a token, what OpenAI's
rule of thumb gives); the cost is what the job itself records: litellm's bundled price of
gpt-4o-mini for those tokens. Figures come from ``mltrainer show --json`` (its ``llm`` block, summed
from the job's llm_response events).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO, Section, Table, events, fmt, log, mltrainer, show

MODEL = "openai/gpt-4o-mini"
#: (family, example spec, extra intent fields the agreeing LLM adds).
JOBS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("tabular classification", "churn", {}),
    ("tabular regression", "houses", {}),
    ("tabular + custom architecture (codegen edit)", "churn",
     {"architecture": {"description": "use a wider MLP with three hidden layers"}}),
    ("text classification", "sms_spam", {}),
    ("token classification", "ner", {}),
    ("translation", "word_translation", {}),
    ("text generation", "corpus_lm", {}),
    ("image classification", "digits_images", {}),
    ("object detection", "shapes_detection", {}),
    ("time-series forecasting", "daily_sales", {}),
    ("clustering", "iris_clusters", {}),
)
QUICK_JOBS = ("churn", "sms_spam", "daily_sales")


def agreeing_server(replies: dict[str, Any]) -> Any:
    """A loopback OpenAI fake whose reply depends on the request: see the module docstring."""
    from tests.fakes.openai_server import FakeOpenAIServer, Reply

    import prompts

    config_prompt, codegen_prompt = prompts.load("config").strip()[:80], prompts.load("codegen").strip()[:80]

    class Agreeing(FakeOpenAIServer):
        def _next(self) -> tuple[Reply | None, int]:
            with self._lock:
                self._counter += 1
                body = self.requests[-1].json if self.requests else {}
                number = self._counter
            messages = (body or {}).get("messages") or []
            system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
            user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
            if system.strip().startswith(config_prompt):
                rules = re.search(r"^Rules chose: (\{.*\})$", user, re.M)
                return Reply(content=json.dumps({"hyperparameters": json.loads(rules.group(1)) if rules else {}})), number
            if system.strip().startswith(codegen_prompt):
                script = re.search(r"The script:\n```python\n(.*)```", user, re.S)
                return Reply(content=f"```python\n{script.group(1) if script else ''}```"), number
            return Reply(content=json.dumps(replies["intent"])), number

    return Agreeing()


def intent_reply(spec: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """What the rules read from the spec, as a model would answer it."""
    from agents.intent import peek_columns
    from agents.intent_rules import parse_rules
    from mltrainer.spec import Spec

    spec = Spec.model_validate({k: v for k, v in spec.items() if k != "llm"}).model_dump(mode="json")
    source = str(spec["data"]["source"])
    floor = parse_rules(spec["task"], source=source, columns=peek_columns(source), spec=spec)
    reply = floor.model_dump(mode="json", exclude={"locked", "reasons"}, exclude_none=True)
    reply.update(extra)
    return reply


def job_spec(example: str, server_url: str, work: Path) -> dict[str, Any] | None:
    """The example spec with absolute data paths, no deploy, and the fake as its LLM."""
    import yaml

    path = REPO / "examples" / f"{example}.yaml"
    if not path.exists():
        return None
    spec = yaml.safe_load(path.read_text())
    source = str(spec["data"]["source"])
    if "://" not in source:
        resolved = (path.parent / source).resolve()
        if not resolved.exists():
            return None
        spec["data"]["source"] = str(resolved)
    spec.pop("deploy", None)
    spec["llm"] = {"model": MODEL, "api_base": server_url, "api_key": "sk-bench-fake-key-000000"}
    return spec


def run(quick: bool = False) -> Section:
    import yaml

    rows, notes = [], []
    totals = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost": 0.0}
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
        home = Path(tmp) / "home"
        replies: dict[str, Any] = {}
        server = agreeing_server(replies).start()
        try:
            for number, (family, example, extra) in enumerate(JOBS):
                if quick and (example not in QUICK_JOBS or extra):
                    continue
                spec = job_spec(example, server.base_url, Path(tmp))
                if spec is None:
                    notes.append(f"{family}: examples/{example}.yaml or its data is missing; skipped.")
                    continue
                replies["intent"] = intent_reply(spec, extra)
                spec_path = Path(tmp) / f"{example}-{number}.yaml"
                spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
                job = f"llm-{number}-{example}"
                log(f"llm_economy: {family}")
                ran = mltrainer(["run", str(spec_path), "--job-id", job, "--until", "codegen", "--json"], home,
                                check=False)
                detail = show(job, home)
                llm = detail["llm"]
                if ran.returncode != 0:
                    notes.append(f"{family}: the job stopped with exit {ran.returncode} "
                                 f"({(detail.get('failure') or {}).get('message', '')[:160]}).")
                for event in events(ran.stdout):  # why a reply was not used, in the agents' words
                    if event.get("type") == "agent_log" and event.get("level") == "warning" and \
                            event.get("stage") in ("intent", "config", "codegen"):
                        notes.append(f"{family}: {event['stage']}: {event.get('message', '')[:200]}")
                codegen = (detail.get("codegen") or {}).get("origin", "–")
                config_policy = (detail.get("config") or {}).get("policy", "–")
                rows.append([family, example, llm["calls"], f"{llm['tokens_in']:,}", f"{llm['tokens_out']:,}",
                             f"${llm['cost']:.5f}", config_policy, codegen])
                for key in totals:
                    totals[key] += llm[key]
        finally:
            server.stop()
    jobs = max(1, len(rows))
    rows.append(["**mean per job**", "", fmt(totals["calls"] / jobs, 1), f"{totals['tokens_in'] / jobs:,.0f}",
                 f"{totals['tokens_out'] / jobs:,.0f}", f"${totals['cost'] / jobs:.5f}", "", ""])
    intro = __doc__.split("\n\n", 1)[1].replace("\n", " ").strip()
    table = Table(f"One job per task family (priced as {MODEL})",
                  ["task family", "example", "calls", "tokens in", "tokens out", "cost", "config from", "script from"],
                  rows, note="`config from`: llm = the LLM's proposal was used; `script from`: llm = the LLM edited "
                             "the generated script (only when the request asks for a custom architecture).")
    return Section("llm_economy", "LLM economy per job", intro, [table], [], notes)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv).to_json(), indent=2, default=str))
