"""Credential validators, as tools the intake agent calls: each answers valid/invalid in words a
person can act on. A rate limit (429) means the credential was accepted, so it counts as valid."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from tools.base_tool import BaseTool, ToolOutcome, unresolved_reference

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
TOKENS_PAGE = "https://huggingface.co/settings/tokens"


def hf_endpoint() -> str:
    """The Hub endpoint, honouring ``HF_ENDPOINT`` as huggingface_hub does."""
    return os.environ.get("HF_ENDPOINT", DEFAULT_HF_ENDPOINT).rstrip("/")


def _token_can_write(auth: dict[str, Any]) -> bool:
    token = (auth or {}).get("accessToken") or {}
    role = token.get("role")
    if role == "write":
        return True
    if role == "fineGrained":
        grained = token.get("fineGrained") or {}
        scopes = list(grained.get("global") or [])
        for scoped in grained.get("scoped") or []:
            scopes.extend(scoped.get("permissions") or [])
        return any(str(s).startswith("repo.write") or s == "repo.content.write" for s in scopes)
    return False


class HFTokenValidator(BaseTool):
    name = "validate_hf_token"
    description = (
        "Check a HuggingFace token against the Hub (whoami). Pass the token's reference id exactly as it "
        "appears in the conversation; set need_write when the user wants to publish a model."
    )
    parameters = {
        "type": "object",
        "properties": {
            "token": {"type": "string", "description": "the token's reference id, e.g. ⟨secret:hf_token:1⟩"},
            "need_write": {"type": "boolean", "description": "whether pushing to the Hub is needed"},
        },
        "required": ["token"],
    }

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def run(self, token: str, need_write: bool = False, **_: Any) -> ToolOutcome:
        refused = unresolved_reference(token)
        if refused:
            return refused
        endpoint = hf_endpoint()
        request = urllib.request.Request(f"{endpoint}/api/whoami-v2", headers={"Authorization": f"Bearer {token}",
                                                                              "User-Agent": "mltrainer"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read().decode("utf-8") or "{}")
        except urllib.error.HTTPError as err:
            if err.code == 429:
                return ToolOutcome(True, "The Hub is rate-limiting us, which means it accepted the token; treating it as valid.",
                                   {"rate_limited": True})
            if err.code in (401, 403):
                return ToolOutcome(False, f"The Hub rejected this token ({err.code}); create a new one at {TOKENS_PAGE} and paste it.")
            return ToolOutcome(False, f"The Hub answered {err.code} while checking the token; try again in a moment.")
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            return ToolOutcome(False, f"Could not reach {endpoint} to check the token ({reason}); check the network.")
        username = body.get("name")
        can_write = _token_can_write(body.get("auth") or {})
        orgs = [o.get("name") for o in body.get("orgs") or [] if o.get("name")]
        data = {"username": username, "can_write": can_write, "orgs": orgs}
        if need_write and not can_write:
            return ToolOutcome(False, f"This token (user {username}) is read-only: pushing needs write access; "
                                      f"create a write token at {TOKENS_PAGE}.", data)
        return ToolOutcome(True, f"Valid HuggingFace token for user {username}" + (" with write access." if can_write else " (read-only)."), data)


class LLMKeyValidator(BaseTool):
    name = "validate_llm_key"
    description = (
        "Check an LLM provider key with a one-token completion. Pass the model as provider/model and the "
        "key's reference id exactly as it appears in the conversation."
    )
    parameters = {
        "type": "object",
        "properties": {
            "model": {"type": "string", "description": "provider/model, e.g. openai/gpt-4.1-mini"},
            "api_key": {"type": "string", "description": "the key's reference id, e.g. ⟨secret:openai_api_key:1⟩"},
            "api_base": {"type": "string", "description": "only for a self-hosted OpenAI-compatible server"},
        },
        "required": ["model", "api_key"],
    }

    def run(self, model: str, api_key: str, api_base: str | None = None, **_: Any) -> ToolOutcome:
        from orchestrator.errors import CredentialError, MltrainerError
        from tools.llm import LLMRouter

        refused = unresolved_reference(api_key)
        if refused:
            return refused
        router = LLMRouter(model, api_key=api_key, api_base=api_base or None, max_retries=0, timeout=20.0)
        try:
            router.complete("Answer with the single word OK.", [{"role": "user", "content": "ping"}], stage="intake")
        except CredentialError as err:
            return ToolOutcome(False, f"{model} rejected this key: {err}")
        except MltrainerError as err:
            if getattr(err, "llm_error", "") == "RateLimitError":
                return ToolOutcome(True, f"{model} is rate-limiting us, which means it accepted the key; treating it as valid.",
                                   {"rate_limited": True})
            return ToolOutcome(False, f"Could not check the key with {model}: {err}")
        return ToolOutcome(True, f"The key works with {model}.", {"model": model})
