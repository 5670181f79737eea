"""Kaggle credential validator, as a tool the intake agent calls.

It makes one authenticated list call (``datasets.DatasetApiService/ListDatasets``, the call behind
``kaggle datasets list``) through ``kagglesdk``'s own HTTP client, with the credentials given and
nothing else: the SDK's fallbacks to ``KAGGLE_API_TOKEN``, ``~/.kaggle/access_token`` and
``~/.kaggle/kaggle.json`` are switched off, nothing is written to ``os.environ`` or ``~/.kaggle``,
and nothing is printed. The SDK is imported only inside :meth:`KaggleValidator.run` (``import
kaggle`` would authenticate and print at import time, so this module never imports it).

Legacy keys go out as HTTP Basic (``username:key``), ``KGAT_…`` access tokens as ``Bearer``. On
api.kaggle.com the call is ``POST https://api.kaggle.com/v1/datasets.DatasetApiService/ListDatasets``
with a JSON body; an explicit ``endpoint`` replaces ``https://api.kaggle.com`` and keeps that path.
"""

from __future__ import annotations

from typing import Any

from tools.base_tool import BaseTool, ToolOutcome, unresolved_reference

SETTINGS_PAGE = "https://www.kaggle.com/settings"


def _sdk_client(*, endpoint: str | None, auth: Any, timeout: float) -> tuple[Any, str]:
    """A kagglesdk HTTP client that uses only ``auth`` (never env or ~/.kaggle) and ``timeout``.

    Returns the client and the base URL it talks to. Imports kagglesdk (and requests) here, lazily.
    """
    import requests
    from kagglesdk.kaggle_env import KaggleEnv, get_env
    from kagglesdk.kaggle_http_client import KaggleHttpClient

    hooks = ("_try_fill_auth", "_init_session", "_get_request_url")
    if not all(callable(getattr(KaggleHttpClient, hook, None)) for hook in hooks):
        # Without these hooks the SDK would fall back to env / ~/.kaggle credentials: refuse instead.
        raise RuntimeError(f"this kagglesdk version lacks {', '.join(hooks)}; pin the tested one (kaggle==2.2.4)")

    class _TimeoutAdapter(requests.adapters.HTTPAdapter):
        # kagglesdk sends without a timeout; a default here keeps a dead network from hanging the tool.
        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().send(request, **kwargs)

    class _ExplicitClient(KaggleHttpClient):
        def _try_fill_auth(self) -> None:  # the SDK would otherwise read KAGGLE_API_TOKEN / ~/.kaggle
            self._session.auth = auth
            self._signed_in = True

        def _init_session(self) -> Any:
            fresh = self._session is None
            super()._init_session()
            if fresh:
                adapter = _TimeoutAdapter(max_retries=0)
                self._session.mount("http://", adapter)
                self._session.mount("https://", adapter)
            return self._session

    if endpoint:
        # Same URL shape as production (``{base}/v1/{service}/{method}``), only the base replaced.
        client = _ExplicitClient(env=KaggleEnv.PROD, verbose=False, user_agent="mltrainer")
        client._endpoint = endpoint.rstrip("/")
    else:
        client = _ExplicitClient(env=get_env(), verbose=False, user_agent="mltrainer")  # honours KAGGLE_API_ENVIRONMENT
    # The SDK serves PROD under {endpoint}/v1/… and its other environments under {endpoint}/api/v1/….
    base = client._endpoint if client._env == KaggleEnv.PROD else f"{client._endpoint}/api"
    return client, base


class KaggleValidator(BaseTool):
    name = "validate_kaggle_credentials"
    description = (
        "Check Kaggle credentials with one authenticated list call. Pass either username plus the legacy "
        "key's reference id, or the KGAT_ API token's reference id (username optional), exactly as they "
        "appear in the conversation."
    )
    parameters = {
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "the Kaggle user name (needed with a legacy key)"},
            "key": {"type": "string", "description": "the legacy 32-hex key's reference id, e.g. ⟨secret:kaggle_key:1⟩"},
            "api_token": {"type": "string",
                          "description": "the KGAT_ API token's reference id, e.g. ⟨secret:kaggle_api_token:1⟩"},
        },
        "required": [],
    }

    def __init__(self, endpoint: str | None = None, timeout: float = 10.0) -> None:
        self.endpoint = endpoint  # None: the SDK's own (https://api.kaggle.com, or KAGGLE_API_ENVIRONMENT's)
        self.timeout = timeout

    def run(self, username: str | None = None, key: str | None = None, api_token: str | None = None,
            **_: Any) -> ToolOutcome:
        username = (username or "").strip() or None
        key = (key or "").strip() or None
        api_token = (api_token or "").strip() or None
        refused = unresolved_reference(username, key, api_token)
        if refused:
            return refused
        if key and not api_token and key.startswith("KGAT_"):
            api_token, key = key, None  # an access token saved where the legacy key goes (kaggle.json "key")
        if not api_token and not key:
            return ToolOutcome(False, "No Kaggle credential to check: pass the KGAT_ API token, or the user name "
                                      f"and legacy key (both from {SETTINGS_PAGE}).")
        if not api_token and not username:
            return ToolOutcome(False, "A legacy Kaggle key needs the Kaggle user name too; ask the user for it "
                                      f"(it is shown at {SETTINGS_PAGE}).")
        secrets = [s for s in (key, api_token) if s]

        def scrub(text: str) -> str:
            for secret in secrets:
                text = text.replace(secret, "[redacted]")
            return text

        method = "api_token" if api_token else "legacy_key"
        try:
            import requests
            from kagglesdk.datasets.types.dataset_api_service import ApiListDatasetsRequest
            from kagglesdk.kaggle_http_client import KaggleHttpClient

            auth: Any = KaggleHttpClient.BearerAuth(api_token) if api_token else (username, key)
            client, base = _sdk_client(endpoint=self.endpoint, auth=auth, timeout=self.timeout)
        except ImportError as err:
            return ToolOutcome(False, f"The Kaggle SDK is not installed ({err.name}); install the 'kaggle' package.")
        except Exception as err:  # e.g. an unknown KAGGLE_API_ENVIRONMENT
            return ToolOutcome(False, scrub(f"Could not set up the Kaggle client: {err}"))

        from kagglesdk.datasets.services.dataset_api_service import DatasetApiClient

        request = ApiListDatasetsRequest()
        request.page = 1
        request.page_size = 1
        data: dict[str, Any] = {"username": username, "auth": method, "endpoint": base}
        try:
            with client:
                response = DatasetApiClient(client).list_datasets(request)
        except requests.exceptions.HTTPError as err:
            status = getattr(err.response, "status_code", None)
            if status == 429:
                return ToolOutcome(True, "Kaggle is rate-limiting us, which means it accepted the credentials; "
                                         "treating them as valid.", {**data, "rate_limited": True})
            if status in (401, 403):
                return ToolOutcome(False, f"Kaggle rejected these credentials ({status}); create a new API token "
                                          f"at {SETTINGS_PAGE} and paste it.", data)
            return ToolOutcome(False, f"Kaggle answered {status} while checking the credentials; try again in a "
                                      "moment.", data)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
            reason = type(err).__name__
            return ToolOutcome(False, f"Could not reach Kaggle at {base} to check the credentials ({reason}); "
                                      "check the network and try again.", data)
        except Exception as err:
            return ToolOutcome(False, scrub(f"Could not check the Kaggle credentials: {type(err).__name__}: {err}"), data)
        data["datasets_seen"] = len(response.datasets or [])
        if username:
            return ToolOutcome(True, f"Valid Kaggle credentials for user {username}.", data)
        return ToolOutcome(True, "The Kaggle API token is valid.", data)
