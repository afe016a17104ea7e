"""GLM failures as one exception type, classified by what the caller should do about them,
and the retry policy built on that classification.

The zhipuai SDK raises one class per HTTP status, an ``APIResponseError`` for an error
object inside the stream, and lets httpx transport errors escape from stream iteration.
The actual reason is often only in Zhipu's business code in the JSON body (a 429 can be
"slow down" or "account in arrears"), so the code wins over the status when both exist.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import tenacity
import zhipuai


class ErrorKind(enum.Enum):
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER = "server"
    TIMEOUT = "timeout"
    NETWORK = "network"
    STALLED = "stalled"
    PROMPT_TOO_LONG = "prompt_too_long"
    FILTERED = "filtered"
    NO_BALANCE = "no_balance"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    UNKNOWN = "unknown"
    # Not from GLM: the circuit breaker (bot/breaker.py) refuses while GLM keeps failing.
    UNAVAILABLE = "unavailable"


RETRYABLE_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER,
        ErrorKind.TIMEOUT,
        ErrorKind.NETWORK,
    }
)

# Zhipu business codes (the "code" string of the error body).
BUSINESS_CODES: Mapping[str, ErrorKind] = {
    "1000": ErrorKind.AUTH,
    "1001": ErrorKind.AUTH,
    "1002": ErrorKind.AUTH,
    "1003": ErrorKind.AUTH,
    "1004": ErrorKind.AUTH,
    # 1113 arrives as HTTP 429 but waiting does not refill an account.
    "1113": ErrorKind.NO_BALANCE,
    "1210": ErrorKind.BAD_REQUEST,
    "1211": ErrorKind.BAD_REQUEST,
    "1214": ErrorKind.BAD_REQUEST,
    "1261": ErrorKind.PROMPT_TOO_LONG,
    "1301": ErrorKind.FILTERED,
    "1302": ErrorKind.RATE_LIMITED,
    "1303": ErrorKind.RATE_LIMITED,
    "1305": ErrorKind.OVERLOADED,
}

# Zhipu's messages are short; a long one is more likely an echo of something we sent.
_MAX_DETAIL = 160


class GLMError(Exception):
    """A failed GLM request. ``str()`` never holds the API key or the request content."""

    kind: ErrorKind
    code: str | None
    status: int | None
    detail: str

    def __init__(
        self,
        kind: ErrorKind,
        detail: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        self.kind = kind
        self.code = code
        self.status = status
        self.detail = detail
        super().__init__(self._describe())

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def _describe(self) -> str:
        where = []
        if self.status is not None:
            where.append(f"HTTP {self.status}")
        if self.code is not None:
            where.append(f"code {self.code}")
        text = f"GLM {self.kind.name}"
        if where:
            text += f" ({', '.join(where)})"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.kind, self.detail, self.code, self.status))


def _rebuild(kind: ErrorKind, detail: str, code: str | None, status: int | None) -> GLMError:
    return GLMError(kind, detail, code=code, status=status)


def kind_for_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 408:
        return ErrorKind.TIMEOUT
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status == 503:
        return ErrorKind.OVERLOADED
    if status >= 500:
        return ErrorKind.SERVER
    if status >= 400:
        return ErrorKind.BAD_REQUEST
    return ErrorKind.UNKNOWN


def redact(text: str, secret: str) -> str:
    """``text`` cut to a short single line without the secret or either half of it
    (Zhipu keys are ``id.secret``)."""
    parts = [secret, *secret.split(".")]
    for part in sorted(parts, key=len, reverse=True):
        if len(part) >= 6:
            text = text.replace(part, "***")
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 1] + "…"
    return text


def parse_error_body(data: object) -> tuple[str | None, str]:
    """(code, message) from ``{"error": {"code": ..., "message": ...}}`` or the inner dict."""
    if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
        data = data["error"]
    if not isinstance(data, Mapping):
        return None, ""
    raw_code = data.get("code")
    code = str(raw_code) if isinstance(raw_code, str | int) and raw_code != "" else None
    message = data.get("message")
    return code, message if isinstance(message, str) else ""


def _from_status(exc: Any, secret: str) -> GLMError:
    status = int(exc.status_code)
    try:
        body = exc.response.json()
    except (ValueError, httpx.HTTPError):
        body = None
    code, message = parse_error_body(body)
    kind = BUSINESS_CODES.get(code or "") or kind_for_status(status)
    return GLMError(kind, redact(message, secret), code=code, status=status)


def error_from_exception(exc: BaseException, *, secret: str, after_first_chunk: bool) -> GLMError:
    """Classify anything the SDK (or httpx under it) raised during one request.

    ``after_first_chunk`` tells a read timeout mid-stream (STALLED) from one while waiting
    for the answer to start (TIMEOUT). Exceptions whose text holds the response body (the
    SDK's status errors) are not chained, so tracebacks cannot leak it either.
    """
    if isinstance(exc, GLMError):
        return exc
    error: GLMError
    cause: BaseException | None = None
    if isinstance(exc, zhipuai.APIStatusError):
        error = _from_status(exc, secret)
    elif isinstance(exc, zhipuai.APITimeoutError):
        error, cause = GLMError(ErrorKind.TIMEOUT, "request timed out"), exc.__cause__
    elif isinstance(exc, zhipuai.APIConnectionError):
        original = exc.__cause__
        detail = _describe_exception(original, secret) if original else "connection error"
        error, cause = GLMError(ErrorKind.NETWORK, detail), original
    elif isinstance(exc, zhipuai.APIResponseValidationError):
        error = GLMError(ErrorKind.UNKNOWN, "malformed response", status=exc.status_code)
    elif isinstance(exc, zhipuai.APIResponseError):
        error = error_from_stream_event(exc.json_data, secret=secret)
    elif isinstance(exc, httpx.TimeoutException):
        kind = ErrorKind.STALLED if after_first_chunk else ErrorKind.TIMEOUT
        error, cause = GLMError(kind, _describe_exception(exc, secret)), exc
    elif isinstance(exc, httpx.TransportError):
        # includes RemoteProtocolError: the body ended mid-message (a cut connection)
        error, cause = GLMError(ErrorKind.NETWORK, _describe_exception(exc, secret)), exc
    elif isinstance(exc, ValueError):
        error, cause = GLMError(ErrorKind.UNKNOWN, "malformed stream data"), None
    else:
        error, cause = GLMError(ErrorKind.UNKNOWN, type(exc).__name__), None
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error


def _describe_exception(exc: BaseException, secret: str) -> str:
    text = str(exc)
    name = type(exc).__name__
    return redact(f"{name}: {text}" if text else name, secret)


def error_from_stream_event(data: object, *, secret: str) -> GLMError:
    """An error object inside the stream: no HTTP status, but usually a business code."""
    code, message = parse_error_body(data)
    kind = BUSINESS_CODES.get(code or "", ErrorKind.SERVER)
    return GLMError(kind, redact(message or "error event in stream", secret), code=code)


def _elapsed(retry_state: tenacity.RetryCallState) -> float:
    return retry_state.seconds_since_start or 0.0


class _TimeBudget(tenacity.stop.stop_base):
    """Stop when the next attempt would start with nothing left of the budget, counted
    from the first attempt (the attempts' own time included, not only the waits)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        # tenacity computes the wait before asking whether to stop
        return _elapsed(retry_state) + retry_state.upcoming_sleep >= self.seconds


class _BudgetedWait(tenacity.wait.wait_base):
    """Exponential backoff with full jitter, cut to what is left of the budget."""

    def __init__(self, initial: float, budget: float) -> None:
        self.backoff = tenacity.wait_random_exponential(multiplier=initial, max=budget)
        self.budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        left = max(0.0, self.budget - _elapsed(retry_state))
        return min(self.backoff(retry_state), left)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, GLMError) and exc.retryable


def retry_policy(
    *, attempts: int, max_seconds: float, initial_wait: float, log: logging.Logger
) -> tenacity.AsyncRetrying:
    """Retry retryable GLMErrors: at most ``attempts`` attempts, none started once
    ``max_seconds`` have passed since the first began (the caller cuts each retry's
    own waiting to that budget too)."""

    def log_retry(retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        log.warning(
            "GLM attempt %d failed (%s), retrying in %.2fs",
            retry_state.attempt_number,
            outcome.exception() if outcome is not None else None,
            retry_state.upcoming_sleep,
        )

    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(max(1, attempts)) | _TimeBudget(max_seconds),
        wait=_BudgetedWait(initial_wait, max_seconds),
        retry=tenacity.retry_if_exception(_is_retryable),
        before_sleep=log_retry,
        reraise=True,
    )
