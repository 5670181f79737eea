"""The intent stage: the schema, the rules parser (no LLM), and the agent with a scripted LLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.intent import IntentAgent, parse_reply, peek_columns
from agents.intent_rules import parse_rules
from orchestrator.context import JobContext
from orchestrator.intent import Intent, intent_from_dict, merge_locked
from orchestrator.plan import TASK_TYPES
from tests.fakes.scripted_llm import ScriptedLLM

# -- (a) the rules parser over many requests ---------------------------------------------------------

#: (request, data source or None, expected task type; None = a table the dataset stage decides)
REQUESTS: list[tuple[str, str | None, str | None]] = [
    ("predict whether a customer churns", "churn.csv", "tabular_classification"),
    ("classify loan applications as approved or rejected", "loans.csv", "tabular_classification"),
    ("detect fraud in credit card transactions", "tx.parquet", "tabular_classification"),
    ("predict the price of a house from its size and age", "houses.csv", "tabular_regression"),
    ("how much will each customer spend", "spend.csv", "tabular_regression"),
    ("estimate the salary of an employee", "salaries.csv", "tabular_regression"),
    ("train a model on data.csv", "data.csv", None),
    ("predict spam from sms.csv", "sms.csv", None),
    ("build a model for the outcome in survey.parquet", "survey.parquet", None),
    ("classify photos of cats and dogs", None, "image_classification"),
    ("recognise handwritten digits like MNIST", None, "image_classification"),
    ("tell pneumonia from normal chest x-rays", None, "image_classification"),
    ("estimate the age of people from face photos", None, "image_regression"),
    ("regress the number of calories from food pictures", None, "image_regression"),
    ("how many people are in each camera image", None, "image_regression"),
    ("detect pedestrians in dashcam video frames", None, "object_detection"),
    ("draw bounding boxes around defects on PCB photos", None, "object_detection"),
    ("object detection on drone footage", None, "object_detection"),
    ("sentiment analysis of movie reviews", None, "text_classification"),
    ("route support emails to the right team", None, "text_classification"),
    ("flag toxic comments in our forum", None, "text_classification"),
    ("train a language model that writes like Shakespeare", None, "text_generation"),
    ("generate song lyrics in the style of the Beatles", None, "text_generation"),
    ("named entity recognition for medical notes", None, "token_classification"),
    ("part-of-speech tagging for German sentences", None, "token_classification"),
    ("summarize long news articles into three sentences", None, "summarization"),
    ("write a TL;DR for each reddit post", None, "summarization"),
    ("summarize these articles", "data.csv", "summarization"),
    ("translate English to French", None, "translation"),
    ("a model that turns german into english", None, "translation"),
    ("fine-tune Llama 3 on my support chats", None, "llm_finetuning"),
    ("instruction-tune mistral-7b on our docs", None, "llm_finetuning"),
    ("adapt a model with QLoRA to answer like our agents", None, "llm_finetuning"),
    ("forecast daily electricity demand", None, "time_series_forecasting"),
    ("predict sales for the next 14 days", "sales.csv", "time_series_forecasting"),
    ("a time-series model of hourly temperature", None, "time_series_forecasting"),
    ("segment customers into 4 groups", "customers.csv", "clustering"),
    ("cluster news articles by topic", None, "clustering"),
    ("group similar products with k-means", None, "clustering"),
]


def test_requests_cover_every_task_type() -> None:
    assert len(REQUESTS) >= 30
    assert {t for _, _, t in REQUESTS} == set(TASK_TYPES) | {None}


@pytest.mark.parametrize(("text", "source", "expected"), REQUESTS, ids=[r[0][:40] for r in REQUESTS])
def test_rules_task_type(text: str, source: str | None, expected: str | None) -> None:
    intent = parse_rules(text, source=source)
    assert Intent.model_validate(intent.model_dump()) == intent  # schema-valid, round-trips
    assert intent.task_type == expected, intent.reasons.get("task_type")
    assert intent.reasons["task_type"]
    assert intent.description == text


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("train for 5 epochs", "hyperparameters.epochs", 5),
        ("epochs=20 please", "hyperparameters.epochs", 20),
        ("ten epochs is enough", "hyperparameters.epochs", 10),
        ("use batch size 64", "hyperparameters.batch_size", 64),
        ("batch_size=32", "hyperparameters.batch_size", 32),
        ("lr 3e-4", "hyperparameters.lr", 3e-4),
        ("with a learning rate of 0.001", "hyperparameters.lr", 0.001),
        ("learning_rate=1e-3", "hyperparameters.lr", 1e-3),
        ("dropout 0.3 and weight decay 0.01", "hyperparameters.dropout", 0.3),
        ("dropout 0.3 and weight decay 0.01", "hyperparameters.weight_decay", 0.01),
        ("use gradient boosting", "hyperparameters.model", "gbdt"),
        ("summarize with max length 512", "hyperparameters.max_length", 512),
        ("cluster users into 6 clusters", "hyperparameters.n_clusters", 6),
        ("forecast the next 7 days", "hyperparameters.horizon", 7),
        ("keep 20% for validation", "hyperparameters.val_fraction", 0.2),
        ("fine-tune llama with LoRA r=16", "peft.method", "lora"),
        ("fine-tune llama with LoRA r=16", "peft.r", 16),
        ("qlora rank 8 alpha 16 on mistral", "peft.method", "qlora"),
        ("qlora rank 8 alpha 16 on mistral", "peft.alpha", 16.0),
        ("train in bf16", "precision", "bf16"),
        ("mixed precision please", "precision", "fp16"),
        ("train on kaggle", "runtime", "kaggle"),
        ("run it with modal", "runtime", "modal"),
        ("push to the hub as alice/churn-model.", "deploy", {"target": "hub", "repo_id": "alice/churn-model",
                                                              "path": None, "private": True}),
        ("save the model to folder out/models", "deploy.path", "out/models"),
        ("finish in under 10 minutes", "time_budget", 600.0),
        ("I'm new to machine learning", "expertise", "beginner"),
        ("I'm an ML engineer, give me full control", "expertise", "expert"),
        ("classify x-rays with a resnet50 backbone", "architecture.backbone", "resnet50"),
        ("fine-tune using meta-llama/Llama-3-8B", "architecture.backbone", "meta-llama/Llama-3-8B"),
        ("forecast with an LSTM", "architecture.description", "lstm"),
        ("train on titanic.csv", "dataset.source", "titanic.csv"),
        ("use data/train.parquet", "dataset.source", "data/train.parquet"),
        ("summarize hf://cnn_dailymail", "dataset.source", "hf://cnn_dailymail"),
        ("the data is kaggle://c/titanic", "dataset.source", "kaggle://c/titanic"),
        ("data at https://example.com/x.csv", "dataset.source", "https://example.com/x.csv"),
        ("use https://huggingface.co/datasets/stanfordnlp/imdb", "dataset.source", "hf://stanfordnlp/imdb"),
        ("use the huggingface dataset imdb", "dataset.source", "hf://imdb"),
        ("the target column is price", "dataset.target", "price"),
    ],
)
def test_rules_extract_stated_values(text: str, path: str, value: Any) -> None:
    intent = parse_rules(text)
    assert intent.get(path) == value
    covering = path if path in intent.reasons else path.split(".")[0]  # "deploy" covers deploy.path
    assert covering in intent.reasons
    if not path.startswith(("expertise", "architecture.description")):
        assert covering in intent.locked  # stated outright: no later stage may override it


def test_rules_read_columns_and_keep_data_refs_apart_from_the_hub_repo() -> None:
    columns = ["PassengerId", "Survived", "Age", "Sex", "Pclass"]
    intent = parse_rules("predict Survived from Age, Sex and Pclass in titanic.csv, then push to the hub as me/titanic",
                         columns=columns)
    assert intent.dataset.target == "Survived"
    assert intent.dataset.features is None  # "Pclass in titanic.csv" is not a clean list of columns
    assert intent.dataset.source == "titanic.csv"
    assert intent.deploy.repo_id == "me/titanic"
    listed = parse_rules("predict survived using age, sex and pclass", columns=columns)
    assert (listed.dataset.target, listed.dataset.features) == ("Survived", ["Age", "Sex", "Pclass"])
    # "churn" is not the column "churned", and the inputs after "from" are never the target.
    vague = parse_rules("predict churn from age and tenure", columns=["age", "tenure", "churned"])
    assert vague.dataset.target is None
    # A one-letter column is not "mentioned" by the word "a".
    assert parse_rules("predict whether a row is odd", columns=["a", "b", "odd_flag"]).dataset.target is None


def test_rules_take_only_data_for_data() -> None:
    text = "see https://docs.example.com/api?token=abc and put kaggle.json in ~/.kaggle, then predict y"
    assert parse_rules(text).dataset.source is None
    assert parse_rules("load https://example.com/x.csv?raw=1").dataset.source == "https://example.com/x.csv?raw=1"
    assert parse_rules("use https://www.kaggle.com/c/titanic").dataset.source == "kaggle://competitions/titanic"


def test_rules_skip_values_outside_the_allowed_range() -> None:
    intent = parse_rules("use lr 50 and 5 epochs")
    assert "lr" not in intent.hyperparameters and intent.hyperparameters["epochs"] == 5
    assert "ignored" in intent.reasons["hyperparameters.lr"]
    assert parse_rules("push to the hub as ???").deploy.target == "none"


def test_spec_values_win_and_are_locked() -> None:
    spec = {"task": "x", "task_type": "tabular_regression", "data": {"source": "/d/data.csv", "target": "value"},
            "runtime": "local", "deploy": None, "hyperparameters": {"epochs": 6, "lr": 0.01}, "budget": {"time": 120.0}}
    intent = parse_rules("classify with 50 epochs on kaggle and push to the hub as a/b, target is label", spec=spec)
    assert intent.task_type == "tabular_regression"
    assert intent.dataset.target == "value" and intent.dataset.source == "/d/data.csv"
    assert intent.hyperparameters == {"epochs": 6, "lr": 0.01}
    assert (intent.runtime, intent.deploy.target, intent.time_budget) == ("local", "none", 120.0)
    for path in ("task_type", "dataset.target", "hyperparameters.epochs", "hyperparameters.lr", "runtime", "deploy",
                 "time_budget"):
        assert path in intent.locked and intent.reasons[path] == "set in the spec"


# -- the schema --------------------------------------------------------------------------------------


def test_schema_validates_and_explains() -> None:
    assert Intent(task_type="Image Classification").task_type == "image_classification"
    assert Intent(hyperparameters={"lr": "3e-4", "precision": "bf16"}).precision == "bf16"  # hoisted up
    bad = [
        ({"task_type": "image_clasification"}, "did you mean 'image_classification'"),
        ({"hyperparameters": {"epoch": 3}}, "did you mean 'epochs'"),
        ({"hyperparameters": {"dropout": 2}}, "outside"),
        ({"deploy": {"target": "hub"}}, "repo_id"),
        ({"colour": "blue"}, "Extra inputs"),
        ({"locked": ["nonsense.path"]}, "not an intent field"),
    ]
    for data, words in bad:
        with pytest.raises(ValueError, match=words):
            Intent.model_validate(data)
    schema = json.loads(Intent.json_schema_for_prompt())
    assert "locked" not in schema["properties"]
    assert schema["properties"]["task_type"]["enum"] == list(TASK_TYPES)
    assert "epochs" in schema["properties"]["hyperparameters"]["description"]


def test_merge_locked_puts_user_values_back() -> None:
    user = Intent().with_values({"hyperparameters.epochs": 6, "runtime": "kaggle", "dataset.target": "y"})
    proposal = Intent(task_type="clustering", hyperparameters={"epochs": 99, "lr": 0.1}, dataset={"target": "z"})
    merged = merge_locked(proposal, user, fill_only={"dataset.target", "runtime"})
    assert merged.hyperparameters == {"epochs": 6, "lr": 0.1}
    assert merged.dataset.target == "z"  # stated-only values do not beat a proposal that set one…
    assert merged.runtime == "kaggle"  # …but fill one left at the default
    assert merged.task_type == "clustering" and set(merged.locked) == set(user.locked)
    assert intent_from_dict({**merged.model_dump(), "family": "x"}) == merged


def test_peek_columns_never_raises(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y,label\n1,2,3\n")
    (tmp_path / "junk.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "latin.csv").write_bytes(b"caf\xe9,x\n")
    assert peek_columns(str(tmp_path / "a.csv")) == ["x", "y", "label"]
    for name in ("junk.csv", "latin.csv", "missing.csv"):
        assert peek_columns(str(tmp_path / name)) is None


# -- (b–e) the agent with a scripted LLM ----------------------------------------------------------------

MARKER = "PLANTED-MARKER-7f3a"


def _context(tmp_path: Path, task: str = "predict the value of a house", **spec_extra: Any) -> JobContext:
    data = tmp_path / "houses.csv"
    data.write_text("sqft,rooms,kind,value\n" + "".join(f"{i},{i % 5},a,{i * 2}\n" for i in range(30)))
    spec = {"task": task, "data": {"source": str(data), "target": None}, "runtime": "local", "deploy": None,
            "hyperparameters": {}, "budget": {"time": None}, **spec_extra}
    return JobContext(job_id="t", raw_prompt=task, spec=spec, spec_path=f"/x/{MARKER}/spec.yaml",
                      job_dir=str(tmp_path / "job"), data_report={"note": MARKER},
                      training_logs=[MARKER], config={"secret": MARKER})


def _reply(**fields: Any) -> str:
    return json.dumps({"task_type": "tabular_regression", "dataset": {"target": "value"},
                       "reasons": {"task_type": "a house value is a number"}, **fields})


def test_invalid_json_is_sent_back_then_the_valid_reply_wins(tmp_path: Path) -> None:
    llm = ScriptedLLM(["{not json", "```json\n" + _reply(hyperparameters={"epochs": 12}) + "\n```"])
    result = IntentAgent(llm=llm).run(_context(tmp_path))
    assert len(llm.calls) == 2 and llm.calls[0].stage == "intent"
    retry = " ".join(m["content"] for m in llm.calls[1].messages)
    assert "Your previous reply failed: the reply is not valid JSON" in retry and "Do not repeat it" in retry
    assert "{not json" in retry  # the model sees what it sent
    intent = result["intent"]
    assert result["task_type"] == "tabular_regression" and intent["policy"] == "llm"
    assert intent["hyperparameters"] == {"epochs": 12} and intent["target"] == "value"
    for key in ("target", "source", "time_budget", "hyperparameters", "task_type", "deploy", "family"):
        assert key in intent
    assert intent["source"] == str(tmp_path / "houses.csv") and intent["family"] == "tabular"
    assert intent_from_dict(intent).dataset.target == "value"


def test_schema_and_column_errors_are_retried(tmp_path: Path) -> None:
    llm = ScriptedLLM([_reply(hyperparameters={"epoch": 3}), _reply(dataset={"target": "price"}), _reply()])
    result = IntentAgent(llm=llm).run(_context(tmp_path))
    second = llm.calls[1].messages[-1]["content"]
    third = llm.calls[2].messages[-1]["content"]
    assert "did you mean 'epochs'" in second
    assert "dataset.target 'price' is not a column" in third and "sqft, rooms, kind, value" in third
    assert result["intent"]["target"] == "value" and result["intent"]["policy"] == "llm"


def test_three_invalid_replies_fall_back_to_the_rules(tmp_path: Path) -> None:
    llm = ScriptedLLM(["nope", "[1, 2]", '{"task_type": "poetry"}'])
    result = IntentAgent(llm=llm).run(_context(tmp_path, task="predict the value with 7 epochs"))
    assert len(llm.calls) == 3
    intent = result["intent"]
    assert intent["policy"] == "rules (LLM fallback)"
    assert "deterministic rules decided" in intent["reasons"]["policy"]
    assert "the rules decided" in result["summary"]
    assert "'poetry' is not a task type" in intent["reasons"]["policy"]
    assert result["task_type"] == "tabular_regression"  # "predict the value" by rule
    assert intent["hyperparameters"] == {"epochs": 7}


def test_a_failing_client_falls_back_to_the_rules(tmp_path: Path) -> None:
    class Down:
        def complete(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("no route to host")

    result = IntentAgent(llm=Down()).run(_context(tmp_path))
    assert result["intent"]["policy"] == "rules (LLM fallback)"
    assert "no route to host" in result["intent"]["reasons"]["policy"]


def test_locked_spec_values_beat_the_llm(tmp_path: Path) -> None:
    context = _context(tmp_path, task_type="tabular_regression", hyperparameters={"epochs": 6},
                       deploy={"target": "local", "path": "out"}, runtime="local")
    context.spec["data"]["target"] = "value"
    proposal = _reply(task_type="tabular_classification", dataset={"target": "kind"},
                      hyperparameters={"epochs": 100, "lr": 0.01}, runtime="modal",
                      deploy={"target": "hub", "repo_id": "x/y"})
    result = IntentAgent(llm=ScriptedLLM([proposal])).run(context)
    intent = result["intent"]
    assert result["task_type"] == "tabular_regression"
    assert intent["target"] == "value" and intent["dataset"]["target"] == "value"
    assert intent["hyperparameters"] == {"epochs": 6, "lr": 0.01}  # the unlocked lr is the LLM's
    assert intent["runtime"] == "local" and intent["deploy"]["target"] == "local"
    assert {"task_type", "dataset.target", "hyperparameters.epochs", "runtime", "deploy"} <= set(intent["locked"])


def test_the_request_carries_only_what_the_agent_chose(tmp_path: Path) -> None:
    context = _context(tmp_path)
    context.error_feedback = {"intent": ["previous attempt blew up"]}
    llm = ScriptedLLM([_reply()])
    IntentAgent(llm=llm).run(context)
    call = llm.calls[0]
    sent = call.system + json.dumps(call.messages)
    assert context.raw_prompt in sent and "sqft, rooms, kind, value" in sent and "houses.csv" in sent
    assert "previous attempt blew up" in call.messages[0]["content"]
    first = call.messages[0]["content"]
    assert 'Read from the request by simple rules (correct them if they misread it):\ndataset.target = "value"' in first
    assert MARKER not in sent and str(tmp_path) not in sent  # no context fields, no local paths
    assert "tabular_regression" in call.system and "Never" in call.system


def test_text_task_types_are_read_from_the_request(tmp_path: Path) -> None:
    llm = ScriptedLLM([json.dumps({"task_type": "summarization"})])
    assert IntentAgent(llm=llm).run(_context(tmp_path, task="shorten these"))["task_type"] == "summarization"
    assert IntentAgent().run(_context(tmp_path, task="translate english to german"))["task_type"] == "translation"


def test_no_llm_keeps_the_old_contract(tmp_path: Path) -> None:
    result = IntentAgent().run(_context(tmp_path, task="train a model", budget={"time": 60.0}))
    intent = result["intent"]
    assert result["task_type"] is None and "decided from the target column" in result["summary"]
    assert (intent["policy"], intent["family"], intent["time_budget"], intent["target"]) == ("rules", "tabular", 60.0, None)


def test_parse_reply_tolerates_words_around_the_json() -> None:
    assert parse_reply('Sure! {"task_type": "clustering"} Hope that helps.').task_type == "clustering"
    assert parse_reply('{"task_type": null, "locked": ["runtime"]}').locked == []  # only the user locks


def test_registry_hands_the_llm_to_the_intent_agent() -> None:
    from agents.registry import default_agents

    llm = ScriptedLLM([])
    agents = default_agents(llm=llm)
    assert agents["intent"].llm is llm  # type: ignore[attr-defined]
    assert default_agents()["intent"].llm is None  # type: ignore[attr-defined]
