"""Every litellm exception, as one table: retry it, show it to the model, and what it means.

Modelled on aider's ``exceptions.py``. The router retries the rows marked ``retry`` with backoff and
raises the others at once; ``feed_back`` marks errors the caller can fix by changing the prompt
(too long, refused content, JSON that misses the schema), so an agent may put the sentence in front
of its next attempt. ``tests/test_llm.py`` fails when litellm grows a class this table lacks.

This module does not import litellm: classification goes by class name along the MRO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LLMErrorInfo:
    name: str  # the litellm class name that matched
    retry: bool  # transient: retry with exponential backoff
    feed_back: bool  # the caller can fix it by changing what it sends
    description: str  # one line, lower case, no trailing period


#: litellm exception class name -> (retry with backoff, feed back to the model, description).
LLM_ERRORS: dict[str, tuple[bool, bool, str]] = {
    "APIConnectionError": (True, False, "the provider could not be reached (network, DNS or refused connection)"),
    "APIError": (True, False, "the provider answered with an unexpected error"),
    "APIResponseValidationError": (True, False, "the provider's answer did not have the expected shape"),
    "AuthenticationError": (False, False, "the provider rejected the API key"),
    "BadGatewayError": (True, False, "the provider's gateway failed (502)"),
    "BadRequestError": (False, False, "the provider rejected the request as invalid"),
    "BlockedPiiEntityError": (False, True, "a guardrail blocked personal data in the prompt"),
    "BudgetExceededError": (False, False, "the configured spending budget is used up"),
    "ContentPolicyViolationError": (False, True, "the provider refused the content under its safety policy"),
    "ContextWindowExceededError": (False, True, "the prompt is longer than the model's context window"),
    "GuardrailRaisedException": (False, True, "a guardrail rejected the request"),
    "ImageFetchError": (False, False, "an image in the prompt could not be fetched"),
    "InternalServerError": (True, False, "the provider had an internal error (5xx) or dropped the connection"),
    "InvalidRequestError": (False, False, "the request is invalid for this provider"),
    "JSONSchemaValidationError": (False, True, "the model's JSON did not match the requested schema"),
    "LiteLLMUnknownProvider": (False, False, "the model string names no provider litellm knows"),
    "MidStreamFallbackError": (True, False, "the provider's stream broke off midway"),
    "MockException": (False, False, "a mocked error raised by litellm's test hooks"),
    "ModelNotMappedError": (False, False, "the model is not in litellm's model map"),
    "ModifyResponseException": (False, False, "a litellm hook replaced the response"),
    "NotFoundError": (False, False, "the model or endpoint does not exist at this provider"),
    "OpenAIError": (True, False, "the OpenAI client failed"),
    "PaymentRequiredError": (False, False, "the provider account needs payment or credit (402)"),
    "PermissionDeniedError": (False, False, "the API key lacks permission for this model or endpoint"),
    "RateLimitError": (True, False, "the provider rate-limited the request (429)"),
    "RejectedRequestError": (False, True, "the provider rejected the request's content"),
    "SensitiveDataRouteException": (False, False, "the request was stopped for containing sensitive data"),
    "ServiceUnavailableError": (True, False, "the provider is overloaded or down (503)"),
    "Timeout": (True, False, "the provider did not answer in time"),
    "UnprocessableEntityError": (False, True, "the provider could not process the request (422)"),
    "UnsupportedParamsError": (False, False, "the model does not support a parameter of the request"),
    "VectorStoreSearchError": (False, False, "a vector store search failed"),
}

#: Names whose cause is the credential, not the request: raised as ``CredentialError``.
CREDENTIAL_ERRORS: frozenset[str] = frozenset({"AuthenticationError", "PermissionDeniedError"})

#: litellm maps some statuses by message text, so a 401 can arrive as BadRequestError and a 403 as a
#: generic APIError; the HTTP status, when litellm kept it, decides for these.
STATUS_ERRORS: dict[int, str] = {
    401: "AuthenticationError",
    402: "PaymentRequiredError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
}

#: Text litellm leaves unmapped (the OpenAI SDK's own "no key" error arrives as a 500) -> the real class.
MESSAGE_ERRORS: dict[str, str] = {
    "Missing credentials": "AuthenticationError",
    "api_key client option must be set": "AuthenticationError",
}

#: 4xx statuses that are still worth retrying.
RETRYABLE_4XX: frozenset[int] = frozenset({408, 409, 425, 429})

#: Python's own network errors, for anything that escapes litellm's mapping.
BUILTIN_ERRORS: dict[type[BaseException], str] = {
    TimeoutError: "Timeout",
    ConnectionError: "APIConnectionError",
}


def _info(name: str) -> LLMErrorInfo:
    retry, feed_back, description = LLM_ERRORS[name]
    return LLMErrorInfo(name, retry, feed_back, description)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status litellm attached to an error, if any."""
    status: Any = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def classify_llm_error(exc: BaseException) -> LLMErrorInfo | None:
    """How to treat an exception from ``litellm.completion``; None when it is not an LLM error.

    The nearest class along the MRO that the table names wins, so a class litellm adds later still
    gets its parent's row; a 4xx status then overrides a row that would retry.
    """
    info: LLMErrorInfo | None = None
    for klass in type(exc).__mro__:
        if klass.__name__ in LLM_ERRORS and klass.__module__.split(".")[0] in ("litellm", "openai"):
            info = _info(klass.__name__)
            break
    if info is None:
        for kind, name in BUILTIN_ERRORS.items():
            if isinstance(exc, kind):
                return _info(name)
        return None
    text = str(exc)
    for marker, name in MESSAGE_ERRORS.items():
        if marker in text:
            return _info(name)
    status = status_of(exc)
    if status in STATUS_ERRORS:
        return _info(STATUS_ERRORS[status])
    if info.retry and status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX:
        return LLMErrorInfo(info.name, False, False, f"the provider rejected the request ({status})")
    return info
