from agents.registry import AGENT_CLASSES
from orchestrator.context import JobContext
from orchestrator.plan import STAGES, TASK_TYPES, plan, skip_reason


def test_thirteen_task_types_and_nine_stages() -> None:
    assert len(TASK_TYPES) == 13
    assert len(STAGES) == 9
    assert tuple(AGENT_CLASSES) == STAGES
    for stage, cls in AGENT_CLASSES.items():
        assert cls.stage == stage


def _ctx(task_type: str, deploy: object = {"target": "local"}) -> JobContext:
    return JobContext(job_id="a", task_type=task_type, spec={"deploy": deploy})


def test_every_task_type_has_an_ordered_plan() -> None:
    for name in TASK_TYPES:
        stages = [s for s, _ in plan(_ctx(name))]
        assert stages == list(STAGES)


def test_clustering_skips_deploy_and_llm_finetuning_runs_every_stage() -> None:
    assert skip_reason("deploy", _ctx("clustering")) is not None
    assert skip_reason("preprocessing", _ctx("llm_finetuning")) is None  # it writes untokenized JSON-lines splits
    assert skip_reason("preprocessing", _ctx("tabular_classification")) is None
    assert skip_reason("deploy", _ctx("tabular_classification")) is None


def test_deploy_skipped_without_a_target() -> None:
    reason = skip_reason("deploy", _ctx("tabular_regression", deploy=None))
    assert reason and "deploy" in reason
    runs = [s for s, why in plan(_ctx("tabular_regression", deploy=None)) if why is None]
    assert "deploy" not in runs and "training" in runs


def test_prompts_are_packaged_text() -> None:
    import prompts

    for name in ("intent", "codegen"):
        text = prompts.load(name)
        assert len(text) > 100 and "Never" in text  # each prompt states what the model must not do
