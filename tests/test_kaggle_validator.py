"""The Kaggle validator against a loopback fake that speaks kagglesdk's protocol."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fakes.kaggle_server import LIST_DATASETS_PATH, fake_kaggle
from tools.base_tool import ToolExecutor, ToolOutcome
from tools.kaggle_validator import KaggleValidator

USER = "ada"
LEGACY_KEY = "0123456789abcdef0123456789abcdef"
TOKEN = "KGAT_5f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _no_secret(outcome: ToolOutcome) -> None:
    text = outcome.for_model()
    for secret in (LEGACY_KEY, TOKEN, base64.b64encode(f"{USER}:{LEGACY_KEY}".encode()).decode()):
        assert secret not in text


@pytest.fixture
def fake():
    with fake_kaggle() as server:
        server.add_legacy_key(USER, LEGACY_KEY)
        server.add_token(TOKEN, USER)
        yield server


@pytest.fixture
def sealed(monkeypatch: pytest.MonkeyPatch):
    """Decoy credentials where the SDK would look on its own, and snapshots to prove nothing changes."""
    home = Path(os.environ["HOME"])  # conftest seals HOME to a temp dir
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_decoy_from_env")
    monkeypatch.setenv("KAGGLE_USERNAME", "decoy")
    monkeypatch.setenv("KAGGLE_KEY", "ffffffffffffffffffffffffffffffff")
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "decoy", "key": "e" * 32}))
    (home / ".kaggle" / "access_token").write_text("KGAT_decoy_from_file")

    def tree() -> dict[str, tuple[bytes, int]]:
        return {str(p.relative_to(home)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
                for p in home.rglob("*")}

    before_tree = tree()
    def snapshot() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # pytest's own bookkeeping

    before_env = snapshot()
    yield home
    assert snapshot() == before_env
    assert tree() == before_tree  # nothing written or created under HOME (decoys untouched)


def test_valid_legacy_username_and_key(fake, sealed) -> None:
    outcome = KaggleValidator(endpoint=fake.url).run(username=USER, key=LEGACY_KEY)
    assert outcome.ok, outcome.message
    assert USER in outcome.message and outcome.data["username"] == USER and outcome.data["auth"] == "legacy_key"
    [request] = fake.requests
    assert request["method"] == "POST" and request["path"] == LIST_DATASETS_PATH
    assert request["content_type"] == "application/json"
    assert request["authorization"] == "Basic " + base64.b64encode(f"{USER}:{LEGACY_KEY}".encode()).decode()
    assert request["body"] == {"page": 1, "pageSize": 1}
    _no_secret(outcome)


def test_valid_kgat_token_without_username(fake, sealed) -> None:
    outcome = KaggleValidator(endpoint=fake.url).run(api_token=TOKEN)
    assert outcome.ok, outcome.message
    assert outcome.data["auth"] == "api_token"
    [request] = fake.requests
    assert request["authorization"] == f"Bearer {TOKEN}"  # the given token, not KAGGLE_API_TOKEN's decoy
    _no_secret(outcome)


def test_kgat_token_with_username_and_token_saved_as_key(fake, sealed) -> None:
    validator = KaggleValidator(endpoint=fake.url)
    outcome = validator.run(username=USER, api_token=TOKEN)
    assert outcome.ok and USER in outcome.message
    outcome = validator.run(username=USER, key=TOKEN)  # kaggle.json may hold a KGAT_ token as "key"
    assert outcome.ok and outcome.data["auth"] == "api_token"
    assert [r["authorization"] for r in fake.requests] == [f"Bearer {TOKEN}"] * 2


def test_rejected_credentials_are_invalid_with_an_actionable_message(fake, sealed) -> None:
    outcome = KaggleValidator(endpoint=fake.url).run(username=USER, key="f" * 32)
    assert not outcome.ok
    assert "Kaggle rejected these credentials" in outcome.message
    assert "https://www.kaggle.com/settings" in outcome.message
    fake.status_override = 401
    for kwargs in ({"username": USER, "key": LEGACY_KEY}, {"api_token": TOKEN}):
        outcome = KaggleValidator(endpoint=fake.url).run(**kwargs)
        assert not outcome.ok and "create a new API token at https://www.kaggle.com/settings" in outcome.message
        _no_secret(outcome)
    fake.status_override = 403
    assert not KaggleValidator(endpoint=fake.url).run(api_token=TOKEN).ok


def test_rate_limited_means_accepted(fake, sealed) -> None:
    fake.status_override = 429
    outcome = KaggleValidator(endpoint=fake.url).run(username=USER, key=LEGACY_KEY)
    assert outcome.ok and outcome.data["rate_limited"] is True
    assert "rate-limiting" in outcome.message
    _no_secret(outcome)


def test_server_error_is_not_ok(fake, sealed) -> None:
    fake.status_override = 500
    outcome = KaggleValidator(endpoint=fake.url).run(api_token=TOKEN)
    assert not outcome.ok and "500" in outcome.message


def test_unreachable_endpoint(sealed) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    outcome = KaggleValidator(endpoint=f"http://127.0.0.1:{port}", timeout=2).run(username=USER, key=LEGACY_KEY)
    assert not outcome.ok
    assert "Could not reach Kaggle" in outcome.message and f"127.0.0.1:{port}" in outcome.message
    _no_secret(outcome)


@pytest.mark.parametrize("kwargs", [
    {"username": USER, "key": "⟨secret:kaggle_key:1⟩"},
    {"api_token": "⟨secret:kaggle_api_token:3⟩"},
    {"username": "⟨secret:kaggle_username:1⟩", "key": LEGACY_KEY},
])
def test_unresolved_reference_sends_nothing(fake, sealed, kwargs) -> None:
    outcome = KaggleValidator(endpoint=fake.url).run(**kwargs)
    assert not outcome.ok and "paste" in outcome.message
    assert fake.requests == []
    _no_secret(outcome)


def test_missing_pieces_send_nothing(fake, sealed) -> None:
    assert "user name" in KaggleValidator(endpoint=fake.url).run(key=LEGACY_KEY).message
    assert not KaggleValidator(endpoint=fake.url).run(username=USER).ok
    assert fake.requests == []


def test_through_the_executor_with_reference_ids(fake, sealed) -> None:
    from tools.vault import Vault

    vault = Vault()
    key_ref = vault.put("job-k", "kaggle_key", LEGACY_KEY)
    executor = ToolExecutor({"intake": [KaggleValidator(endpoint=fake.url)]}, vault=vault, job_id="job-k")
    assert executor.schemas("intake")[0]["function"]["name"] == "validate_kaggle_credentials"
    outcome = executor.execute("intake", "validate_kaggle_credentials", {"username": USER, "key": key_ref})
    assert outcome.ok, outcome.message
    assert fake.requests[0]["authorization"].startswith("Basic ")
    _no_secret(outcome)


def test_schema_is_openai_function_format() -> None:
    schema = KaggleValidator().schema()
    assert schema["type"] == "function"
    props = schema["function"]["parameters"]["properties"]
    assert set(props) == {"username", "key", "api_token"}
    json.dumps(schema)


def test_import_does_not_load_the_sdk() -> None:
    code = ("import sys, tools.kaggle_validator; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kaggle', 'kagglesdk')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
