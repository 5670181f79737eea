"""Error classes a person can act on, and the table that says which ones a retry can fix.

Every message is one sentence that names the problem and what to do about it; the CLI prints it
as is, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class MltrainerError(Exception):
    """Base class: ``str(error)`` is the one sentence shown to the user."""

    #: Exit status of the CLI when this error ends a command.
    exit_code: int = 1


class SpecError(MltrainerError):
    """The spec file (or a CLI argument) is wrong; nothing was started."""

    exit_code = 2


class UsageError(MltrainerError):
    """A command was called in a way that cannot work (unknown job, job already exists…)."""

    exit_code = 2


class DataError(MltrainerError):
    """The data itself is unusable; retrying cannot help until the user fixes it."""


class CredentialError(MltrainerError):
    """A credential is missing, invalid or lacks a permission."""


class ClientError(MltrainerError):
    """A remote service answered 4xx: the request is wrong, so retrying it is pointless."""


class UnsupportedError(MltrainerError):
    """The job asks for something this version cannot do yet."""


class TransientError(MltrainerError):
    """A flaky outside condition (network, 5xx, rate limit): worth retrying with backoff."""


class TrainingError(MltrainerError):
    """The training script failed; its last error is fed back into the next attempt."""


class StageTimeout(MltrainerError):
    """A stage ran past its wall-clock limit."""


class BudgetExceeded(MltrainerError):
    """Going on would spend more than the spec's budget.cost; the job stops with its state kept."""


class JobLocked(UsageError):
    """Another process is running this job right now."""


@dataclass(frozen=True)
class ErrorClass:
    """How the orchestrator treats one kind of failure."""

    retryable: bool
    feed_back: bool  # put the error text in front of the next attempt


#: First match wins (checked with isinstance, in order). Anything unlisted is an unexpected bug in
#: a stage: retried with the error fed back, since an LLM-written artefact is a common cause.
ERROR_CLASSES: tuple[tuple[type[BaseException], ErrorClass], ...] = (
    (SpecError, ErrorClass(retryable=False, feed_back=False)),
    (UsageError, ErrorClass(retryable=False, feed_back=False)),
    (DataError, ErrorClass(retryable=False, feed_back=False)),
    (CredentialError, ErrorClass(retryable=False, feed_back=False)),
    (ClientError, ErrorClass(retryable=False, feed_back=False)),
    (UnsupportedError, ErrorClass(retryable=False, feed_back=False)),
    (BudgetExceeded, ErrorClass(retryable=False, feed_back=False)),
    (TransientError, ErrorClass(retryable=True, feed_back=False)),
    (TrainingError, ErrorClass(retryable=True, feed_back=True)),
    (StageTimeout, ErrorClass(retryable=True, feed_back=True)),
    (FileNotFoundError, ErrorClass(retryable=False, feed_back=False)),
    (PermissionError, ErrorClass(retryable=False, feed_back=False)),
    (MemoryError, ErrorClass(retryable=True, feed_back=True)),
    (ConnectionError, ErrorClass(retryable=True, feed_back=False)),
    (TimeoutError, ErrorClass(retryable=True, feed_back=False)),
)

DEFAULT_CLASS = ErrorClass(retryable=True, feed_back=True)


def classify(error: BaseException) -> ErrorClass:
    """Look up how a failure is handled: retried or not, fed back or not."""
    for kind, cls in ERROR_CLASSES:
        if isinstance(error, kind):
            return cls
    return DEFAULT_CLASS


def describe(error: BaseException) -> str:
    """One line for a person: our own errors as written, anything else with its type name."""
    if isinstance(error, MltrainerError):
        return str(error)
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
