"""The exception tree of stt_frames.

Every error the package raises is an ``STTError``, except ``Interrupted`` (a ``KeyboardInterrupt``)::

    STTError                       .partial: the finished rows, when the error stopped a run
    ├── AudioError                 bad local input (missing, empty, wrong format, too large ...)
    ├── APIStatusError             the server answered with an error status
    │   ├── BadRequestError        400
    │   ├── AuthenticationError    401
    │   ├── PaymentRequiredError   402 (no credits)
    │   ├── NotFoundError          404
    │   ├── RequestTimeoutError    408
    │   ├── RateLimitError         429
    │   ├── InternalServerError    500 (and any other 5xx)
    │   ├── BadGatewayError        502
    │   └── ServiceUnavailableError 503
    ├── APIConnectionError         the server could not be reached or dropped the connection
    │   └── APITimeoutError        no answer in time
    ├── MalformedResponseError     a 2xx answer that is not the JSON the contract promises
    ├── InsecureTransportError     refusing to send the API key over plain http to a non-loopback host
    ├── BudgetExceededError        ``max_cost`` would be exceeded: the row was not sent
    ├── NotSentError               the row was not sent: the run stopped first (an earlier error, Ctrl-C)
    ├── CacheError                 the answer cache cannot be opened or written
    ├── MissingExtraError          an optional dependency is not installed
    └── CLIError                   the command line reports it as one line and exits with ``status``
        ├── UsageError             a bad argument found after parsing (exit status 2)
        └── MissingKeyError        OpenRouter is the target and no key is set (exit status 3)
    Interrupted (KeyboardInterrupt) Ctrl-C stopped the run; .partial holds the finished rows

Each failed row of ``transcribe_column`` names its error's class in the ``error_type`` column.

Example::

    try:
        client.transcribe("a.wav", model="openai/whisper-1")
    except stt_frames.RateLimitError as e:
        print(e.status, e.message)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AudioError",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "BudgetExceededError",
    "CacheError",
    "InsecureTransportError",
    "InternalServerError",
    "Interrupted",
    "MalformedResponseError",
    "MissingExtraError",
    "NotFoundError",
    "NotSentError",
    "PaymentRequiredError",
    "RateLimitError",
    "RequestTimeoutError",
    "STTError",
    "ServiceUnavailableError",
    "status_error",
]


class STTError(Exception):
    """Base class of every error raised by stt_frames.

    ``partial`` is set when the error stopped a run: the result frame with the rows finished so far
    (the rest say ``not run``); otherwise None.
    """

    partial: Any = None


class AudioError(STTError, ValueError):
    """A local audio input cannot be sent: missing, a directory, empty, unknown format or too large."""


class InsecureTransportError(STTError):
    """The API key would be sent over plain http to a host that is not loopback."""


class BudgetExceededError(STTError):
    """Sending this request would take spent cost past ``max_cost``, so it was not sent."""


class NotSentError(STTError):
    """The row was not sent because the run stopped before it (an earlier error that ends a run, or Ctrl-C)."""


class CacheError(STTError):
    """The cache cannot be opened or written (read-only directory, disk full, corrupt file)."""


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C / kernel interrupt). ``partial`` holds the rows finished so far.

    Everything finished is in the cache: run the same call again to resume where it stopped.
    """

    def __init__(self, message: str, partial: Any) -> None:
        super().__init__(message)
        self.partial = partial


class CLIError(STTError):
    """An error the command line reports as one line, exiting with ``status`` (see ``stt_frames.cli.ExitCode``)."""

    status: int = 2


class UsageError(CLIError):
    """A bad argument found after parsing (missing input, unknown column, unreadable file): exit status 2."""


class MissingKeyError(CLIError):
    """OpenRouter is the target and ``OPENROUTER_API_KEY`` is not set: exit status 3, before any upload."""

    status = 3


class RunAborted(Exception):
    """Internal: stop a run at once, carrying the error to raise once the finished rows are gathered."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class MissingExtraError(STTError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class MalformedResponseError(STTError):
    """The server answered 2xx with something that is not the contract's JSON (HTML, cut-off JSON, no text)."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class APIConnectionError(STTError):
    """The server could not be reached, or it dropped the connection before answering.

    ``request_sent`` is True when the whole request had gone out before the failure: the server may have
    processed it, and billed it, so it is sent again at most once.
    """

    request_sent: bool = False


class APITimeoutError(APIConnectionError):
    """The server did not answer within the timeout."""


class APIStatusError(STTError):
    """The server answered with an error status. Carries ``status``, ``code``, ``message`` and ``metadata``."""

    status: int = 0
    hint: str = "see the message above"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        metadata: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        self.code = code if code is not None else self.status
        self.message = message
        self.metadata = metadata or {}
        self.retry_after = retry_after
        super().__init__(f"{self.status}: {message}; {self.hint}")


class BadRequestError(APIStatusError):
    """400: the server rejected the request (for example audio it cannot decode)."""

    status = 400
    hint = "check the audio file and the request parameters"


class AuthenticationError(APIStatusError):
    """401: the API key is missing or was rejected."""

    status = 401
    hint = "check OPENROUTER_API_KEY (or pass api_key=...)"


class PaymentRequiredError(APIStatusError):
    """402: the account has no credits left."""

    status = 402
    hint = "add credits to your OpenRouter account, then rerun: finished rows are cached"


class NotFoundError(APIStatusError):
    """404: the model (or endpoint) does not exist."""

    status = 404
    hint = "check the model id (list them with GET /models) and the base URL"


class RequestTimeoutError(APIStatusError):
    """408: the server timed out waiting for the request."""

    status = 408
    hint = "retry later"


class RateLimitError(APIStatusError):
    """429: too many requests; retried automatically, raised only when retries run out."""

    status = 429
    hint = "lower concurrency or wait, then rerun: finished rows are cached"


class InternalServerError(APIStatusError):
    """500 (or another 5xx): the server failed; retried automatically."""

    status = 500
    hint = "the server failed; retry later"


class BadGatewayError(APIStatusError):
    """502: the upstream provider failed; retried automatically."""

    status = 502
    hint = "the upstream provider failed; retry later or pick another provider"


class ServiceUnavailableError(APIStatusError):
    """503: the service is temporarily unavailable; retried automatically."""

    status = 503
    hint = "the service is temporarily unavailable; retry later"


_BY_STATUS: dict[int, type[APIStatusError]] = {
    cls.status: cls
    for cls in (
        BadRequestError,
        AuthenticationError,
        PaymentRequiredError,
        NotFoundError,
        RequestTimeoutError,
        RateLimitError,
        InternalServerError,
        BadGatewayError,
        ServiceUnavailableError,
    )
}


def status_error(
    status: int,
    message: str,
    *,
    code: int | str | None = None,
    metadata: dict[str, Any] | None = None,
    retry_after: float | None = None,
) -> APIStatusError:
    """Build the exception for an HTTP error ``status`` (unknown 5xx map to InternalServerError)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    return cls(message, status=status, code=code, metadata=metadata, retry_after=retry_after)
