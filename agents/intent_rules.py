"""The deterministic intent parser: tables of patterns over the request, no LLM, no network.

It is the floor every job can stand on — the whole answer without an LLM, and the fallback when
an LLM's replies stay invalid. Values the spec sets always win; values the request states
outright ("5 epochs", "push to the hub as me/model") are kept and listed in ``locked`` too.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.intent import ALL_HYPERPARAMETERS, Intent, check_hyperparameters, describe_errors
from orchestrator.plan import TASK_TYPES

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".json", ".jsonl", ".xlsx")
_IMG = r"(?:images?|photos?|pictures?|pics?|x-?rays?|scans?|mri|ct scans?|frames?|videos?|camera)"
_LANG = r"(?:english|french|german|spanish|italian|portuguese|dutch|russian|chinese|japanese|korean|arabic|hindi)"
_REG = (r"(?:regress\w*|how (?:old|many|much)|count (?:the )?(?:number|how many)"
        r"|(?:predict|estimate)\w* (?:the )?(?:age|count|number|value|weight|size|price|score))")
_TEXTS = r"(?:texts?|sentences?|documents?|reviews?|tweets?|emails?|messages?|comments?|headlines?|articles?)"

#: (pattern over the lower-cased request, task type, weak) — first match wins. A weak match on
#: a table is not trusted: "predict spam from sms.csv" is still a table, the dataset stage decides.
KEYWORD_RULES: tuple[tuple[str, str, bool], ...] = (
    *((r"\b" + name.replace("_", r"[ _-]?") + r"\b", name, False) for name in TASK_TYPES),
    (r"\bfine[- ]?tun\w*\b.*?\b(llms?|(large )?language models?|llama|mistral|gpt|qwen|gemma|phi|chat ?bot|instruct\w*)\b"
     r"|\b(sft|instruction[- ]tun\w*|chat model|llm fine[- ]?tun\w*)\b", "llm_finetuning", False),
    (r"\bsummar(y|ies|ize|ise|izing|ising|ization|isation)\b|\btl;?dr\b|\bcondense\b", "summarization", False),
    (rf"\btranslat\w*\b|\b{_LANG} (to|into) {_LANG}\b", "translation", False),
    (r"\b(ner|named entit\w*|pos[- ]tag\w*|part[- ]of[- ]speech|slot filling|(tag|label) each (word|token))\b",
     "token_classification", False),
    (rf"\b(bounding[- ]box\w*|yolo\w*|detr|boxes around)\b|\b(detect|locate|locali[sz]e|find)\w*\b.*?\b(in|from|on) "
     rf"(\w+ ){{0,2}}{_IMG}\b", "object_detection", False),
    (r"\b(forecast\w*|time[- ]series|predict (the )?future|next \d+ (days|weeks|months|hours|quarters|years))\b",
     "time_series_forecasting", False),
    (r"\b(cluster\w*|k-?means|unsupervised|segment\w* (my |the )?(customers|users|clients|shoppers)"
     r"|group similar|group (the |my )?\w+ (into|by))\b", "clustering", False),
    (rf"\b{_IMG}\b.*\b{_REG}\b|\b{_REG}\b.*\b{_IMG}\b", "image_regression", False),
    (rf"\b{_IMG}\b|\b(mnist|cifar\w*|imagenet|handwritten digits?)\b", "image_classification", False),
    (r"\b(generate|generation|write like|write (poems|stories|lyrics)|in the style of|language model|autocomplete"
     r"|next word)\b", "text_generation", False),
    (rf"\b(sentiment analysis|classify (the )?{_TEXTS}|intent detection|toxic\w* (text|comments?))\b",
     "text_classification", False),
    (rf"\b(sentiment|spam|toxic\w*|hate speech|{_TEXTS}|sms)\b", "text_classification", True),
    (r"\b(q?lora|peft|adapters?)\b", "llm_finetuning", False),
    (r"\b(whether|yes or no|true or false|binary|which (class|category)|classif\w*)\b", "tabular_classification", False),
    (r"\b(regress\w*|how much|how many|price|amount|value of|estimate the|predict the (price|number|amount|value)"
     r"|salary|revenue|income|costs?|continuous)\b", "tabular_regression", False),
    (r"\b(categor\w*|churn\w*|fraud\w*|survive\w*|(loan|credit|payment) defaults?|will default|detect if)\b",
     "tabular_classification", False),
)

_NUM = r"(\d+(?:\.\d+)?(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)"
_SEP = r"\s*(?:=|:|of|to|is|at)?\s*"
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "fifty": 50, "hundred": 100}
_WORDNUM = "(" + "|".join(NUMBER_WORDS) + ")"

#: (hyperparameter, pattern): group 1 is the value, a digit string or a number word.
HYPERPARAMETER_RULES: tuple[tuple[str, str], ...] = (
    ("epochs", rf"\b{_NUM}\s*epochs?\b"),
    ("epochs", rf"\b{_WORDNUM}\s*epochs?\b"),
    ("epochs", rf"\bepochs?{_SEP}{_NUM}"),
    ("batch_size", rf"\bbatch[ _-]?size{_SEP}{_NUM}"),
    ("batch_size", rf"\b(?:batches of|a batch of)\s*{_NUM}"),
    ("lr", rf"\b(?:lr|learning[ _-]rate){_SEP}{_NUM}"),
    ("weight_decay", rf"\bweight[ _-]decay{_SEP}{_NUM}"),
    ("dropout", rf"\bdropout{_SEP}{_NUM}"),
    ("hidden", rf"\b{_NUM}\s*hidden (?:units|neurons)\b"),
    ("hidden", rf"\bhidden[ _-]?(?:size|units|dim)?{_SEP}{_NUM}"),
    ("layers", rf"\b{_NUM}\s*(?:hidden )?layers\b"),
    ("patience", rf"\b(?:early[- ]stopping )?patience{_SEP}{_NUM}"),
    ("seed", rf"\b(?:random )?seed{_SEP}{_NUM}"),
    ("max_length", rf"\b(?:max(?:imum)?[ _-]?(?:seq(?:uence)?[ _-]?)?len(?:gth)?|context(?: length)?){_SEP}{_NUM}"),
    ("warmup_ratio", rf"\bwarm[- ]?up(?: ratio)?{_SEP}{_NUM}"),
    ("grad_accum_steps", rf"\bgradient accumulation(?: steps)?{_SEP}{_NUM}"),
    ("image_size", r"\b(\d+)\s*[x×]\s*\d+\s*(?:px|pixels?|images?)?\b"),
    ("image_size", rf"\bimage[ _-]size{_SEP}{_NUM}"),
    ("n_clusters", rf"\b{_NUM}\s*(?:clusters|segments|groups)\b"),
    ("n_clusters", r"\bk\s*=\s*(\d+)\b"),
    ("horizon", rf"\bnext {_NUM} (?:days|weeks|months|hours|quarters|years|steps)\b"),
    ("horizon", rf"\bhorizon{_SEP}{_NUM}"),
    ("val_fraction", rf"\b{_NUM}\s*%\s*(?:for |as )?validation\b"),
    ("test_fraction", rf"\b{_NUM}\s*%\s*(?:for |as )?test(?:ing)?\b"),
)
#: (pattern, value) tables for the word-valued fields; first match wins within each table.
MODEL_RULES = ((r"\b(gradient[- ]boost\w*|gbdt|gbm|xgboost|lightgbm|catboost|boosted trees)\b", "gbdt"),
               (r"\b(mlp|multi-?layer perceptron|neural net\w*)\b", "mlp"))
PRECISION_RULES = ((r"\b(bf16|bfloat16)\b", "bf16"), (r"\b(fp16|float16|half[- ]precision|mixed[- ]precision)\b", "fp16"),
                   (r"\b(fp32|float32|full[- ]precision)\b", "fp32"))
RUNTIME_RULES = (
    (r"\b(?:train|run|fit)\w*\b[^.]{0,40}?\b(?:on|with|using|via|in)\s+kaggle\b(?!://| datasets?| competitions?)"
     r"|\bkaggle (?:gpus?|notebooks?|kernels?|runtime)\b", "kaggle"),
    (r"\b(?:on|with|using|via|use|in)\s+modal\b(?!://)|\bmodal (?:gpus?|runtime)\b", "modal"),
    (r"\b(?:train|run)\w* (?:it )?locally\b|\bon my (?:own )?(?:machine|laptop|computer|gpu)\b", "local"),
)
EXPERTISE_RULES = (
    (r"\b(i'?m new|beginner|first time|never (trained|done)|no experience|new to (ml|machine learning|this)|eli5"
     r"|explain (it|everything)|in simple terms|not an expert|newbie)\b", "beginner"),
    (r"\b(i'?m an? (ml |machine learning )?(engineer|researcher|expert|data scientist)|expert|advanced user"
     r"|i know what i'?m doing|full control)\b", "expert"),
)
#: Pretrained model families, recognised anywhere; a hub id (org/model) only after a cue word.
NAMED_BACKBONE = (r"\b(resnet-?\d+|efficientnet[-\w]*|vit(?:[-_][\w-]+)?|convnext[-\w]*|(?:distil)?bert(?:-[\w-]+)?"
                  r"|(?:xlm-)?roberta[-\w]*|deberta[-\w]*|(?:flan-)?t5(?:-[\w-]+)?|bart(?:-[\w-]+)?|gpt-?2[-\w]*"
                  r"|llama[-\w.]*|mistral[-\w.]*|qwen[-\w.]*|gemma[-\w.]*|phi-\d[-\w.]*|yolov?\d+\w*|detr(?:-[\w-]+)?"
                  r"|opus-mt-[\w-]+|marian\w*)\b")
HUB_MODEL = (r"\b(?:use|using|fine[- ]?tun\w*|based on|start(?:ing)? from|backbone|pretrained)\s+(?:an? |the )?"
             r"([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)")
ARCHITECTURE_WORDS = r"\b(cnn|convolutional|lstm|gru|rnn|transformer|unet|u-net|mlp|gradient boosting)\b"
#: Dataset references are whole tokens: a scheme URL, a data page, or a file with a data suffix.
TOKEN = r"[^\s,;'\"()<>`]+"
DATA_SCHEMES = ("hf://", "kaggle://")
DATA_SUFFIX = r"\.(?:csv|tsv|parquet|pq|jsonl|json|xlsx|txt|zip|tar\.gz|npz)$"
#: Files that look like data by suffix but never are (credentials, configs).
NOT_DATA = frozenset({"kaggle.json", "package.json", "config.json", "tokenizer.json", "requirements.txt",
                      "tsconfig.json", "settings.json", "credentials.json", "token.json"})
#: Only this much of a request is read by the patterns (a request is a few sentences; it bounds the work).
MAX_RULES_CHARS = 8000
#: Columns looked for in the request; wider tables are named by their first ones only.
MAX_COLUMNS = 2000
#: (pattern over a URL, replacement): well-known dataset pages → their scheme.
URL_REWRITES = ((r"^https?://huggingface\.co/datasets/([^/?#]+(?:/[^/?#]+)?)/?$", r"hf://\1"),
                (r"^https?://(?:www\.)?kaggle\.com/datasets/([^/?#]+/[^/?#]+)/?$", r"kaggle://\1"),
                (r"^https?://(?:www\.)?kaggle\.com/(?:c|competitions)/([^/?#]+)/?$", r"kaggle://competitions/\1"))
HF_NAMED = r"\b(?:hugging ?face|hf)(?: hub)? dataset\s+([\w.-]+(?:/[\w.-]+)?)"
DEPLOY_HUB = (r"\b(?:push|publish|upload|deploy|share|release)\w*\b[^.]{0,40}?\b(?:hub|hugging ?face|hf)\b"
              r"[^.]{0,20}?\b(?:as|at|to|under|named|repo(?: id)?)\s+(?:hf://)?([A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?)"
              r"|\b(?:push|publish|upload)\w*\b[^.]{0,20}?\bhf://([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)")
DEPLOY_LOCAL = r"\b(?:deploy|export|save|copy|publish)\w* (?:it |the model )?(?:locally|(?:to|in|into) (?:the )?(?:folder|directory) (\S+))"
TIME_BUDGET = (r"\b(?:in|within|under|at most|budget(?: of)?|no more than|max(?:imum)?|limit(?: of)?|for)\s+(?:about\s+)?"
               r"(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b")
TIME_UNITS = {"s": 1, "m": 60, "h": 3600}
TARGET_CUES = r"\b(?:predict\w*|forecast\w*|classify\w*|estimate\w*|target(?: column)?|label(?: column)?|column to predict)\b"
FEATURE_CUES = r"\b(?:from|using|based on|given|with features|features:?)\s+"


def infer_task_type(text: str, source: str | None) -> tuple[str | None, str]:
    """Task type from the request's words and the data's file type, with the reason."""
    lowered = text.lower()
    tabular_data = bool(source) and str(source).lower().endswith(TABLE_SUFFIXES)
    for pattern, task_type, weak in KEYWORD_RULES:
        match = re.search(pattern, lowered)
        if match:
            if weak and tabular_data:
                return None, f"the request mentions '{match.group(0)}' but the data is a table; its target column decides"
            return task_type, f"the request says '{_clip(match.group(0))}'"
    if tabular_data:
        return None, "the data is a table; the target column decides classification or regression"
    return None, "no rule matched the request"


def _clip(words: str, limit: int = 50) -> str:
    """Matched words short enough to quote in a reason."""
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"


def _number(raw: str) -> float:
    return float(NUMBER_WORDS.get(raw, raw))


def find_hyperparameters(lowered: str, family: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """Hyperparameters stated in the request, each with the words it came from; bad ones skipped."""
    found: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for key, pattern in HYPERPARAMETER_RULES:
        match = re.search(pattern, lowered)
        if key in found or not match:
            continue
        value: float = _number(match.group(1))
        if key.endswith("_fraction"):
            value = value / 100
        kind = ALL_HYPERPARAMETERS[key][0]
        try:
            found.update(check_hyperparameters({key: kind(value) if kind is int and value == int(value) else value}))
            reasons[f"hyperparameters.{key}"] = f"the request says '{match.group(0).strip()}'"
        except ValueError as err:
            reasons[f"hyperparameters.{key}"] = f"ignored '{match.group(0).strip()}': {err}"
    if family in (None, "tabular"):
        for pattern, choice in MODEL_RULES:
            match = re.search(pattern, lowered)
            if match:
                found["model"] = choice
                reasons["hyperparameters.model"] = f"the request says '{match.group(0)}'"
                break
    return found, reasons


def _first(rules: tuple[tuple[str, str], ...], lowered: str) -> tuple[str, str] | None:
    """(value, matched words) of the first rule in a table that matches."""
    for pattern, value in rules:
        match = re.search(pattern, lowered)
        if match:
            return value, match.group(0).strip()
    return None


def as_dataset_ref(token: str) -> str | None:
    """The data a token names, or None: a hf:// or kaggle:// id, a dataset page, a data file (URL or path).

    Any other web address (an API endpoint, a docs page) is not data.
    """
    token = token.rstrip(".:!?")
    lowered = token.lower()
    if lowered.startswith(DATA_SCHEMES):
        return token
    if lowered.startswith(("http://", "https://")):
        for pattern, replacement in URL_REWRITES:
            if re.match(pattern, token, flags=re.I):
                return re.sub(pattern, replacement, token, flags=re.I)
        path = re.split(r"[?#]", token, maxsplit=1)[0]
        return token if re.search(DATA_SUFFIX, path, flags=re.I) else None
    token = token.rsplit("=", 1)[-1]  # data=titanic.csv
    name = token.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return token if re.search(DATA_SUFFIX, token, flags=re.I) and name not in NOT_DATA else None


def find_dataset_ref(text: str, skip: tuple[int, int] | None = None) -> str | None:
    """The first dataset reference in the request (scheme id, dataset page, data file, 'hf dataset x')."""
    for match in re.finditer(TOKEN, text):
        if skip and skip[0] <= match.start() < skip[1]:
            continue  # the hub repo we publish to, not data
        ref = as_dataset_ref(match.group(0))
        if ref:
            return ref
    named = re.search(HF_NAMED, text, flags=re.I)
    return f"hf://{named.group(1)}" if named else None


#: Column names too common as words to count as a mention ("predict whether a customer…").
NOT_A_MENTION = frozenset("a an the is it of to in on at by for and or with from as be no yes not this that all".split())


def _column_pattern(column: str) -> str:
    """A column name as it may be written: any case, '_' or '-' read as a space."""
    words = [re.escape(w) for w in re.split(r"[_\s-]+", column.strip()) if w]
    return r"(?<![\w])" + r"[_\s-]?".join(words) + r"(?![\w])" if words else r"(?!x)x"


def find_columns(text: str, columns: list[str]) -> tuple[str | None, list[str] | None, str]:
    """(target, features, why): the column named just after 'predict…', and an explicit input list."""
    lowered = text.lower()
    usable = [c for c in columns[:MAX_COLUMNS] if len(c.strip()) > 1 and c.strip().lower() not in NOT_A_MENTION]
    spans = {c: [m.start() for m in re.finditer(_column_pattern(c.lower()), lowered)] for c in usable}
    target, why = None, ""
    for cue in re.finditer(TARGET_CUES, lowered):
        # A few words on, but never past "from/using…": those name inputs, not the target.
        stop = re.compile(FEATURE_CUES).search(lowered, cue.end())
        window_end = min(cue.end() + 48, stop.start() if stop else len(lowered))
        near = [(pos, c) for c, positions in spans.items() for pos in positions if cue.end() <= pos < window_end]
        if near:
            target = min(near)[1]
            why = f"the request names the column '{target}' after '{cue.group(0)}'"
            break
    features: list[str] | None = None
    for cue in re.finditer(FEATURE_CUES, lowered):
        tail = re.split(r"[.;!?]|\bto predict\b", lowered[cue.end():])[0]
        items = [i.strip() for i in re.split(r",|\band\b|\bor\b", tail) if i.strip()]
        picked = [next((c for c in usable if c != target and re.fullmatch(_column_pattern(c.lower()), i)), None)
                  for i in items]
        if items and all(picked):
            features = [p for p in picked if p]
            break
    return target, features, why


def explicit_target(text: str) -> str | None:
    """A target named outright when no column list is known: "target is price", "predict the 'y' column"."""
    match = re.search(r"\btarget(?: column)?\s*(?:is|=|:)\s*[`'\"]?([\w.-]+)"
                      r"|\blabel column\s*(?:is|=|:)?\s*[`'\"]?([\w.-]+)"
                      r"|\bpredict(?:ing)? (?:the )?[`'\"]?([\w.-]+)[`'\"]? column\b"
                      r"|\bpredict(?:ing)? (?:the )?[`'\"]([\w.-]+)[`'\"]", text, flags=re.I)
    name = next((g for g in match.groups() if g), None) if match else None
    return name if name and name.lower() not in NOT_A_MENTION | {"to", "whether", "which", "what", "column"} else None


def spec_locks(spec: dict[str, Any] | None, source: str | None = None) -> dict[str, Any]:
    """Field path → value for everything the spec (and the known data source) fixes.

    A ``None`` task type or target means "infer it", so it locks nothing; a present runtime or
    deploy entry is what the job really does, so it locks even at its default value.
    """
    spec = spec or {}
    data = spec.get("data") or {}
    locks: dict[str, Any] = {}
    if spec.get("task_type"):
        locks["task_type"] = spec["task_type"]
    if source or data.get("source"):
        locks["dataset.source"] = str(source or data["source"])
    if data.get("target"):
        locks["dataset.target"] = data["target"]
    for key in ("text", "image", "time"):
        if data.get(key):
            locks[f"dataset.{key}_column"] = data[key]
    for key, value in (spec.get("hyperparameters") or {}).items():
        locks[f"hyperparameters.{key}"] = value
    if spec.get("runtime"):
        locks["runtime"] = spec["runtime"]
    if "deploy" in spec:
        deploy = spec["deploy"] or {"target": "none"}
        locks["deploy"] = {k: deploy[k] for k in ("target", "repo_id", "path", "private") if deploy.get(k) is not None}
    if (spec.get("budget") or {}).get("time"):
        locks["time_budget"] = float(spec["budget"]["time"])
    return locks


def _stated(text: str, lowered: str, family: str | None, columns: list[str] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """Everything the request states outright: path → value, and path → why."""
    values: dict[str, Any] = {}
    why: dict[str, str] = {}

    def put(path: str, value: Any, words: str) -> None:
        values[path] = value
        why[path] = f"the request says '{words}'"

    hyper, hyper_why = find_hyperparameters(lowered, family)
    values.update({f"hyperparameters.{k}": v for k, v in hyper.items()})
    why.update(hyper_why)
    hub = re.search(DEPLOY_HUB, text, flags=re.I)
    if hub:
        put("deploy", {"target": "hub", "repo_id": (hub.group(1) or hub.group(2)).rstrip(".")}, hub.group(0))
    elif local := re.search(DEPLOY_LOCAL, lowered):
        put("deploy", {"target": "local", **({"path": local.group(1)} if local.group(1) else {})}, local.group(0))
    if ref := find_dataset_ref(text, hub.span() if hub else None):
        put("dataset.source", ref, ref)
    if columns:
        target, features, target_why = find_columns(text, columns)
        if target:
            values["dataset.target"], why["dataset.target"] = target, target_why
        if features:
            values["dataset.features"], why["dataset.features"] = features, "the request lists these columns as inputs"
    elif name := explicit_target(text):
        put("dataset.target", name, name)
    for table, path in ((PRECISION_RULES, "precision"), (RUNTIME_RULES, "runtime")):
        if hit := _first(table, lowered):
            put(path, hit[0], hit[1])
    if lora := re.search(r"\b(q?lora)\b", lowered):
        put("peft.method", lora.group(1), lora.group(0))
        for key, pattern in (("r", rf"\b(?:r|rank){_SEP}(\d+)\b"), ("alpha", rf"\b(?:lora[ _-])?alpha{_SEP}{_NUM}")):
            if m := re.search(pattern, lowered):
                put(f"peft.{key}", int(m.group(1)) if key == "r" else float(m.group(1)), m.group(0))
    elif re.search(r"\bfull(?: parameter)? fine[- ]?tun\w*\b|\bwithout (?:q?lora|peft|adapters)\b", lowered):
        put("peft.method", "none", "full fine-tuning")
    if budget := re.search(TIME_BUDGET, lowered):
        put("time_budget", float(budget.group(1)) * TIME_UNITS[budget.group(2)[0]], budget.group(0))
    hub_model = re.search(HUB_MODEL, text, flags=re.I)
    if hub_model and not as_dataset_ref(hub_model.group(1)):
        put("architecture.backbone", hub_model.group(1), hub_model.group(0))
    elif named := re.search(NAMED_BACKBONE, lowered):
        put("architecture.backbone", _original_case(text, named.group(1)), named.group(0))
    return values, why


def _original_case(text: str, lowered_name: str) -> str:
    """The name as the user typed it (hub ids are case-sensitive)."""
    start = text.lower().find(lowered_name)
    return text[start:start + len(lowered_name)] if start >= 0 else lowered_name


def parse_rules(text: str, *, source: str | None = None, columns: list[str] | None = None,
                spec: dict[str, Any] | None = None) -> Intent:
    """The request as an Intent by rules alone; spec values win and are locked, as are stated ones."""
    description, text = text.strip(), text[:MAX_RULES_CHARS]
    lowered = text.lower()
    locks = spec_locks(spec, source)
    data_source = locks.get("dataset.source") or find_dataset_ref(text)
    if locks.get("task_type"):
        task_type, task_why = locks["task_type"], "set in the spec"
    else:
        task_type, task_why = infer_task_type(text, data_source)
    family = TASK_TYPES[task_type].family if task_type else None
    reasons: dict[str, str] = {"task_type": task_why}
    extra: dict[str, Any] = {}
    if hit := _first(EXPERTISE_RULES, lowered):
        extra["expertise"], reasons["expertise"] = hit[0], f"the request says '{hit[1]}'"
    if words := re.search(ARCHITECTURE_WORDS, lowered):
        extra["architecture"] = {"description": words.group(1)}
        reasons["architecture.description"] = f"the request says '{words.group(1)}'"
    intent = Intent.model_validate({"task_type": task_type, "description": description, **extra})
    stated, stated_why = _stated(text, lowered, family, columns)
    reasons.update(stated_why)  # includes notes on values that were read but ignored
    for path, value in stated.items():
        if path in locks:
            continue
        try:  # one by one, so a single unusable value (a bad repo id) costs only itself
            intent = intent.with_values({path: value})
        except ValueError as err:
            reasons[path] = f"ignored {value!r} from the request: {describe_errors(err)}"
    intent = intent.with_values(locks)
    reasons.update({path: "set in the spec" for path in locks})
    return intent.model_copy(update={"reasons": reasons})
