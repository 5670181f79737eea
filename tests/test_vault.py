"""The credential vault and redaction: planted fake secrets of every format in every context are
found with the right kind and leave no trace in the text; prose stays; refs resolve only for their
own job; the vault file is private; mask() hides what the vault never saw; credentials are found
where users keep them."""

from __future__ import annotations

import json
import os
import random
import stat
import string
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.errors import CredentialError
from tools.vault import (
    CREDENTIAL_KINDS,
    SECRET_PATTERNS,
    Finding,
    Vault,
    VaultError,
    discover_credentials,
    mask,
    mask_obj,
    redact,
)

RNG = random.Random(20240611)
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"


def rand(n: int, alphabet: str = ALNUM) -> str:
    """Random text that, like real keys, holds at least one digit and one capital."""
    body = [RNG.choice(alphabet) for _ in range(n - 2)] + [RNG.choice(string.digits),
                                                          RNG.choice(string.ascii_uppercase)]
    RNG.shuffle(body)
    if body[0] in "-_":
        body[0] = "k"
    return "".join(body)


#: (expected kind, fake secret) for every format that identifies itself.
TOKENS: list[tuple[str, str]] = [
    ("hf_token", "hf_" + rand(34)),
    ("hf_org_token", "api_org_" + rand(34)),
    ("openai_api_key", "sk-" + rand(48)),
    ("openai_api_key", "sk-proj-" + rand(156, URLSAFE)),
    ("openai_api_key", "sk-svcacct-" + rand(120, URLSAFE)),
    ("openai_api_key", "sk-admin-" + rand(100, URLSAFE)),
    ("anthropic_api_key", "sk-ant-api03-" + rand(93, URLSAFE) + "AA"),
    ("anthropic_api_key", "sk-ant-admin01-" + rand(93, URLSAFE) + "AA"),
    ("groq_api_key", "gsk_" + rand(52)),
    ("google_api_key", "AIza" + rand(35, URLSAFE)),
    ("kaggle_api_token", "KGAT_" + "".join(RNG.choice(HEX) for _ in range(32))),
    ("modal_token_id", "ak-" + rand(22)),
    ("modal_token_secret", "as-" + rand(22)),
]
FIRST: dict[str, str] = {}
for _kind, _secret in TOKENS:
    FIRST.setdefault(_kind, _secret)  # the first fake of each kind
KAGGLE_HEX = "".join(RNG.choice(HEX) for _ in range(32))

#: Every place a pasted key turns up; ``{s}`` is the secret.
CONTEXTS = [
    "here is my key {s} please use it",
    "{s}",
    "use {s}.",
    "keys: {s}, then train",
    "(the key is {s})",
    'value "{s}" set',
    "value '{s}' set",
    "<{s}>",
    "a&{s}&b",
    '{"api_key": "{s}", "epochs": 3}',
    '{"api_key":"{s}"}',
    "https://example.com/v1/models?token={s}&x=1",
    "https://example.com/v1/models?key={s}",
    "```bash\ncurl -H 'Authorization: Bearer {s}' https://x.test\n```\n",
    "```python\nclient = Client(api_key=\"{s}\")\n```",
    "task: predict churn\nllm:\n  provider: remote\n  api_key: {s}\ndata:\n  source: churn.csv\n",
    "export OPENAI_API_KEY={s}\nexport HF_TOKEN={s}\n",
    "**{s}** and `{s}`",
    "- [key]({s})\n- next",
    "first line\n{s}\nlast line",
]

#: Assigned values that only their key name gives away: (kind, template).
ASSIGNED = [
    ("generic_secret", "token = {v}"),
    ("generic_secret", "my token: {v}."),
    ("generic_secret", "api_key={v}&region=eu"),
    ("generic_secret", "https://host.test/download?access_token={v}&x=1"),
    ("generic_secret", '{"client_secret": "{v}", "id": 3}'),
    ("generic_secret", "apikey: '{v}'"),
    ("generic_secret", "settings:\n  secret: {v}\n  other: 1\n"),
    ("generic_secret", "X-Api-Key: {v}"),
    ("generic_secret", "```\nMY_SERVICE_TOKEN={v}\n```"),
    ("bearer_token", "curl -H 'Authorization: Bearer {v}' https://x.test"),
    ("password", "password: {v}"),
    ("password", 'db_password="{v}")'),
]

KAGGLE_CONTEXTS = [
    '{"username":"alice","key":"{k}"}',
    '{\n  "username": "alice",\n  "key": "{k}"\n}\n',
    "KAGGLE_USERNAME=alice\nKAGGLE_KEY={k}\n",
    "export KAGGLE_KEY={k}",
    "my kaggle username is alice and the key is {k}.",
    "kaggle.json: {\"username\": \"alice\", \"key\": \"{k}\"} (from my account page)",
]

FALSE_POSITIVES = [
    "I use sk-learn and scikit-learn for a risk-free baseline.",
    "The key: Understanding the data comes first, then a good token: embedding.",
    "token: embedding, key: target_column, password: short",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed the split",
    "the file's md5 is d41d8cd98f00b204e9800998ecf8427e, all good",
    "call hf_hub_download as-is; ask-me-anything; ak-47; task-based; desk-lamp",
    "api_key = os.environ['OPENAI_API_KEY'] and token=${HF_TOKEN} and key=$KAGGLE_KEY",
    "set api_key: YOUR_API_KEY and password: ******** in the file",
    "password = getpassword() then token = fetch_token(user)",
    "AIzaShort and gsk_short and hf_tooShort and KGAT_abc",
    "The keyboard: mechanical. A monkey=banana. Max tokens = 4096.",
    "task: predict whether a customer churns\ndata:\n  source: data/churn.csv\n  target: churned\n",
]


def fragments(secret: str, size: int = 12, visible: int = 0) -> list[str]:
    """Every ``size``-character piece of a secret, but those lying within its visible prefix."""
    return [secret[i:i + size] for i in range(len(secret) - size + 1) if i + size > visible]


def assert_gone(text: str, secret: str, visible: str = "") -> None:
    assert secret.startswith(visible) and secret not in text
    leaked = [f for f in fragments(secret, visible=len(visible)) if f in text]
    assert not leaked, f"fragment {leaked[0]!r} of a secret left in {text!r}"


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "vault.json")


@pytest.mark.parametrize("kind,secret", TOKENS, ids=[f"{k}:{s[:10]}" for k, s in TOKENS])
def test_every_token_format_is_found_in_every_context(vault: Vault, kind: str, secret: str) -> None:
    for context in CONTEXTS:
        text = context.replace("{s}", secret)
        out, findings = redact(text, vault, "job-a")
        assert findings, f"nothing found in {text!r}"
        assert {f.kind for f in findings} == {kind}, (context, findings)
        assert_gone(out, secret)
        ref = findings[0].ref
        assert ref == f"⟨secret:{kind}:1⟩" and ref in out
        assert vault.get("job-a", ref) == secret
        assert out == context.replace("{s}", ref)  # only the secret changed, context intact
        assert text[findings[0].start:findings[0].end] == secret


@pytest.mark.parametrize("kind,template", ASSIGNED)
def test_assigned_values_are_found_by_their_key_name(vault: Vault, kind: str, template: str) -> None:
    value = "correct-horse-battery!" if kind == "password" else rand(24, ALNUM + "+/")
    text = template.replace("{v}", value)
    out, findings = redact(text, vault, "job")
    assert [f.kind for f in findings] == [kind], text
    assert_gone(out, value)
    assert out == template.replace("{v}", findings[0].ref)


@pytest.mark.parametrize("context", KAGGLE_CONTEXTS)
def test_kaggle_hex_key_is_found_next_to_kaggle(vault: Vault, context: str) -> None:
    text = context.replace("{k}", KAGGLE_HEX)
    out, findings = redact(text, vault, "job")
    assert [f.kind for f in findings] == ["kaggle_key"]
    assert_gone(out, KAGGLE_HEX)
    assert ("alice" in out) == ("alice" in text)  # a user name is not a secret


@pytest.mark.parametrize("text", FALSE_POSITIVES)
def test_ordinary_text_stays_unchanged(vault: Vault, text: str) -> None:
    assert redact(text, vault, "job") == (text, [])
    assert mask(text) == text
    assert vault.refs("job") == {}


def test_anthropic_is_not_taken_for_openai(vault: Vault) -> None:
    anthropic = FIRST["anthropic_api_key"]
    _, findings = redact(f"OPENAI_API_KEY={anthropic}", vault, "job")
    assert [f.kind for f in findings] == ["anthropic_api_key"]


def test_many_secrets_in_one_multiline_message(vault: Vault) -> None:
    secrets = [s for _, s in TOKENS]
    text = "Keys for the job:\n" + "\n".join(f"{i}. {s}," for i, s in enumerate(secrets)) + "\nthanks"
    out, findings = redact(text, vault, "job")
    assert [f.kind for f in findings] == [k for k, _ in TOKENS]
    assert [f.ref for f in findings] == [f"⟨secret:{k}:{n}⟩" for n, (k, _) in enumerate(TOKENS, 1)]
    for secret in secrets:
        assert_gone(out, secret)
    assert out.startswith("Keys for the job:\n0. ⟨secret:hf_token:1⟩,\n") and out.endswith("\nthanks")


def test_redaction_is_idempotent(vault: Vault) -> None:
    text = "\n".join(c.replace("{s}", s) for c, (_, s) in zip(CONTEXTS, TOKENS, strict=False))
    out, findings = redact(text, vault, "job")
    before = vault.refs("job")
    assert len(findings) == len(before) > 5
    assert redact(out, vault, "job") == (out, [])
    assert vault.refs("job") == before
    assert mask(out) == out  # refs are not secrets


def test_a_known_value_is_redacted_even_without_a_pattern(vault: Vault) -> None:
    _, findings = redact("password: swordfish-tuna", vault, "job")
    out, again = redact("I said swordfish-tuna earlier", vault, "job")
    assert out == f"I said {findings[0].ref} earlier" and again[0].ref == findings[0].ref


def test_finding_repr_holds_no_value(vault: Vault) -> None:
    secret = FIRST["hf_token"]
    _, findings = redact(f"token {secret}", vault, "job")
    assert findings == [Finding("hf_token", "⟨secret:hf_token:1⟩", 6, 6 + len(secret))]
    assert secret not in repr(findings) and secret[3:15] not in repr(findings)


def test_vault_file_is_private_and_the_only_place_values_live(tmp_path: Path) -> None:
    vault = Vault()  # default path: under MLTRAINER_HOME
    assert vault.path == Path(os.environ["MLTRAINER_HOME"]) / "vault.json"
    assert stat.S_IMODE(os.stat(vault.path).st_mode) == 0o600
    secret = FIRST["groq_api_key"]
    out, findings = redact(f"GROQ_API_KEY={secret}", vault, "job")
    assert stat.S_IMODE(os.stat(vault.path).st_mode) == 0o600  # still private after os.replace
    assert secret in vault.path.read_text() and secret not in out
    assert out == f"GROQ_API_KEY={findings[0].ref}"
    assert not [p for p in vault.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert secret not in repr(vault)


def test_loosened_vault_is_tightened_and_corrupt_vault_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"version": 1, "jobs": {}}))
    os.chmod(path, 0o644)
    Vault(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.write_text("{not json")
    with pytest.raises(VaultError, match="not valid JSON") as err:
        Vault(path).refs("job")
    assert isinstance(err.value, CredentialError) and str(path) in str(err.value)


def test_put_get_refs_values_and_forget(vault: Vault) -> None:
    first = vault.put("a", "hf_token", "hf_value_one_1234")
    assert first == "⟨secret:hf_token:1⟩"
    assert vault.put("a", "hf_token", "hf_value_one_1234") == first  # same value, same ref
    second = vault.put("a", "openai_api_key", "sk-value-two-5678")
    assert second == "⟨secret:openai_api_key:2⟩"
    assert vault.put("b", "hf_token", "hf_value_bbb_9999") == "⟨secret:hf_token:1⟩"  # n is per job
    assert vault.get("a", first) == "hf_value_one_1234" and vault.get("b", first) == "hf_value_bbb_9999"
    assert vault.get("a", "⟨secret:hf_token:7⟩") is None
    assert vault.refs("a") == {first: "hf_token", second: "openai_api_key"}
    assert vault.values("a") == ["hf_value_one_1234", "sk-value-two-5678"]
    assert sorted(vault.values()) == ["hf_value_bbb_9999", "hf_value_one_1234", "sk-value-two-5678"]
    vault.forget("a")
    assert vault.refs("a") == {} and vault.values() == ["hf_value_bbb_9999"]
    with pytest.raises(VaultError):
        vault.put("a", "hf_token", "")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"

    def writer(n: int) -> list[str]:
        vault = Vault(path)  # its own handle, as another process would have
        return [vault.put("job", "generic_secret", f"value-{n}-{i}-Xy9") for i in range(10)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        refs = [ref for batch in pool.map(writer, range(6)) for ref in batch]
    assert len(set(refs)) == 60 and len(Vault(path).refs("job")) == 60
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_refs_resolve_only_for_their_own_job(vault: Vault) -> None:
    hf = vault.put("job-a", "hf_token", "hf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA11")
    only_a = vault.put("job-a", "kaggle_key", KAGGLE_HEX)
    vault.put("job-b", "hf_token", "hf_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB22")
    args = {"token": hf, "nested": [{"k": f"key={only_a};"}, (only_a, 3)], "n": 5, "flag": None}
    resolved = vault.resolve_arguments("job-a", args)
    assert resolved == {"token": "hf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA11",
                        "nested": [{"k": f"key={KAGGLE_HEX};"}, (KAGGLE_HEX, 3)], "n": 5, "flag": None}
    assert args["token"] == hf  # the caller's arguments are not modified
    # job-b has its own hf_token:1 and gets its own value; job-a's kaggle ref stays inert there
    in_b = vault.resolve_arguments("job-b", args)
    assert in_b["token"] == "hf_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB22"
    assert in_b["nested"] == [{"k": f"key={only_a};"}, (only_a, 3)]
    assert vault.resolve_arguments("job-c", args) == args


def test_forged_refs_stay_inert(vault: Vault) -> None:
    vault.put("job", "hf_token", "hf_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC33")
    forged = ["⟨secret:hf_token:2⟩", "⟨secret:openai_api_key:1⟩", "⟨secret:hf_token:01⟩",
              "⟨secret:HF_TOKEN:1⟩", "<secret:hf_token:1>"]
    text = " ".join(forged)
    assert vault.resolve_arguments("job", text) == text
    assert vault.resolve_arguments("job", {"x": forged}) == {"x": forged}


def test_mask_hides_secrets_the_vault_never_saw() -> None:
    text = (f"error: 401 for {FIRST['hf_token']}; retry with {FIRST['anthropic_api_key']} or "
            f"{FIRST['openai_api_key']} (GOOGLE {FIRST['google_api_key']}) token={rand(20)} "
            f'{{"username": "u", "key": "{KAGGLE_HEX}"}}')
    out = mask(text)
    for kind, visible in [("hf_token", "hf_"), ("anthropic_api_key", "sk-ant-api03-"),
                          ("openai_api_key", "sk-"), ("google_api_key", "AIza")]:
        assert_gone(out, FIRST[kind], visible)
    assert_gone(out, KAGGLE_HEX)
    assert "hf_***" in out and "sk-ant-api03-***" in out and "AIza***" in out and "token=***" in out
    assert '"key": "***"' in out


def test_mask_hides_known_values_of_the_job_or_of_all_jobs(vault: Vault) -> None:
    hf = FIRST["hf_token"]
    vault.put("a", "password", "swordfish-tuna")
    vault.put("a", "hf_token", hf)
    vault.put("b", "password", "marlin-bream")
    text = f"login swordfish-tuna / marlin-bream failed; url=https://x.test/{hf}/x"
    assert mask(text, vault, "a") == "login *** / marlin-bream failed; url=https://x.test/hf_***/x"
    assert mask(text, vault) == "login *** / *** failed; url=https://x.test/hf_***/x"


def test_mask_obj_walks_nested_structures(vault: Vault) -> None:
    secret = FIRST["openai_api_key"]
    vault.put("job", "password", "swordfish-tuna")
    obj = {"event": "tool_result", "args": ["--key", secret], "meta": {"pw": "swordfish-tuna", "n": 3},
           secret: (1, "ok")}
    out = mask_obj(obj, vault, "job")
    assert out == {"event": "tool_result", "args": ["--key", "sk-***"], "meta": {"pw": "***", "n": 3},
                   "sk-***": (1, "ok")}
    assert secret in obj["args"]  # input untouched


def test_patterns_table_is_well_formed() -> None:
    kinds = [p.kind for p in SECRET_PATTERNS]
    assert len(kinds) == len(set(kinds))
    assert {k for k, _ in TOKENS} | {"kaggle_key", "generic_secret", "password", "bearer_token"} <= set(kinds)
    assert set(kinds) <= set(CREDENTIAL_KINDS)  # every kind is documented in the table
    for pattern in SECRET_PATTERNS:
        assert pattern.description and pattern.regex.pattern
        with pytest.raises(AttributeError):
            pattern.kind = "x"  # type: ignore[misc]


# -- discovery ------------------------------------------------------------------------------------
def test_discover_reads_env_first(tmp_path: Path) -> None:
    env = {"HF_TOKEN": "hf_env", "HUGGING_FACE_HUB_TOKEN": "hf_legacy", "KAGGLE_USERNAME": "alice",
           "KAGGLE_KEY": KAGGLE_HEX, "KAGGLE_API_TOKEN": "KGAT_x", "MODAL_TOKEN_ID": "ak-1",
           "MODAL_TOKEN_SECRET": "as-2", "OPENAI_API_KEY": " sk-o \n", "ANTHROPIC_API_KEY": "sk-ant",
           "GROQ_API_KEY": "gsk", "GEMINI_API_KEY": "AIg", "GOOGLE_API_KEY": "AIo", "MISTRAL_API_KEY": "m",
           "TOGETHER_API_KEY": "t", "OPENROUTER_API_KEY": "or", "DEEPSEEK_API_KEY": "d", "PATH": "/bin",
           "GITHUB_TOKEN": "not-ours"}
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text('{"username": "bob", "key": "filekey"}')
    assert discover_credentials(env, home) == {
        "hf_token": "hf_env", "kaggle_username": "alice", "kaggle_key": KAGGLE_HEX,
        "kaggle_api_token": "KGAT_x", "modal_token_id": "ak-1", "modal_token_secret": "as-2",
        "openai_api_key": "sk-o", "anthropic_api_key": "sk-ant", "groq_api_key": "gsk",
        "gemini_api_key": "AIg", "google_api_key": "AIo", "mistral_api_key": "m", "together_api_key": "t",
        "openrouter_api_key": "or", "deepseek_api_key": "d"}
    assert set(discover_credentials(env, home)) <= set(CREDENTIAL_KINDS)
    assert discover_credentials({"HUGGING_FACE_HUB_TOKEN": "hf_legacy"}, home)["hf_token"] == "hf_legacy"


def test_discover_reads_the_files_cli_logins_leave(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".cache" / "huggingface").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "token").write_text("hf_saved_by_login\n")
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "alice", "key": KAGGLE_HEX}))
    (home / ".modal.toml").write_text('[dev]\ntoken_id = "ak-old"\ntoken_secret = "as-old"\n'
                                      '[main]\ntoken_id = "ak-main"\ntoken_secret = "as-main"\nactive = true\n')
    assert discover_credentials({}, home) == {
        "hf_token": "hf_saved_by_login", "kaggle_username": "alice", "kaggle_key": KAGGLE_HEX,
        "modal_token_id": "ak-main", "modal_token_secret": "as-main"}
    assert discover_credentials({"MODAL_PROFILE": "dev"}, home)["modal_token_id"] == "ak-old"


def test_discover_honours_hf_home_and_kaggle_config_dir(tmp_path: Path) -> None:
    hf_home, kaggle_dir = tmp_path / "hf", tmp_path / "kcfg"
    hf_home.mkdir()
    kaggle_dir.mkdir()
    (hf_home / "token").write_text("hf_from_hf_home")
    (kaggle_dir / "kaggle.json").write_text('{"username":"carol","key":"KGAT_abc"}')
    env = {"HF_HOME": str(hf_home), "KAGGLE_CONFIG_DIR": str(kaggle_dir)}
    assert discover_credentials(env, tmp_path / "nobody") == {
        "hf_token": "hf_from_hf_home", "kaggle_username": "carol", "kaggle_key": "KGAT_abc",
        "kaggle_api_token": "KGAT_abc"}


def test_discover_defaults_to_home_and_ignores_broken_files(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])  # the sealed user home from conftest
    assert discover_credentials({}) == {}
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text("{broken")
    (home / ".modal.toml").write_text("not = [toml")
    assert discover_credentials({"HOME": str(home), "HF_TOKEN": "  "}) == {}
    (home / ".kaggle" / "kaggle.json").write_text('{"username": "dave", "key": "k"}')
    assert discover_credentials({"HOME": str(home)}) == {"kaggle_username": "dave", "kaggle_key": "k"}
