"""What went wrong in one exchange with the ETS service, as the client tells it.

The client's internal signals (an attempt worth another, a refused token, an expired link)
and the translation of statuses, error bodies and transport failures into the exceptions
of :mod:`caaspp_cli.errors`, each with one plain sentence and a hint. Messages never quote
a query string (a pre-signed link's signature) or a server body beyond its error text.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from caaspp_cli.errors import (
    BadInputError,
    EtsError,
    RateLimitedError,
    ServerError,
    ServiceConnectionError,
    TLSError,
)
from caaspp_cli.ets import contract
from caaspp_cli.ets.urls import origin, redact_url
from caaspp_cli.retry import parse_retry_after

M = TypeVar("M", bound=BaseModel)

REFUSED_MESSAGE = "ETS refused the Client Key and Client Secret of this profile."
REFUSED_HINT = (
    "they may have been regenerated in TOMS (for another vendor) or have expired: "
    "run `caaspp config rotate` to store the current pair."
)
TLS_HINT = (
    "if your network inspects HTTPS traffic, point SSL_CERT_FILE at your district's "
    "certificate bundle; verification is never turned off."
)
BUSY_HINT = "the service may be busy or down; try again later."
ENDPOINT_HINT = "check the base URL and endpoint paths of this profile."


# --- Internal signals ----------------------------------------------------------------------
class Retry(Exception):
    """An attempt failed in a way worth another; ``error`` is raised when none are left."""

    def __init__(self, error: EtsError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class Unauthorized(Exception):
    """A data call answered 401: the token was refused."""


class LinkRefused(Exception):
    """A pre-signed link was refused: it has expired."""


class LinkStale(Exception):
    """A pre-signed link ran out while its request waited for its turn: never sent."""


class GiveUp(Exception):
    """An attempt failed in a way another attempt would not mend."""

    def __init__(self, error: EtsError) -> None:
        super().__init__(error.message)
        self.error = error


# --- Answers -------------------------------------------------------------------------------
def status_retry(response: httpx.Response, what: str) -> Retry:
    """The retry signal for a status worth another try (429, 5xx, 408)."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get(contract.HEADER_RETRY_AFTER))
    error: EtsError
    if status == contract.ERROR_STATUS[contract.ERR_RATE_LIMITED]:
        error = RateLimitedError(
            f"the score-report service kept answering the {what} with 429 (too many requests).",
            hint="fetch fewer reports at once, or try again later.",
            retry_after=retry_after,
        )
    else:
        error = ServerError(
            f"the score-report service kept failing the {what} (HTTP {status}).",
            hint=BUSY_HINT,
            status=status,
        )
    return Retry(error, retry_after)


def parse_body(model: type[M], response: httpx.Response, what: str) -> M:
    """The body as ``model``; one that is not is worth another try (a proxy's page)."""
    # The ValidationError is not chained: its text quotes the input, tokens included.
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        problem = exc.errors()[0]["type"] if exc.error_count() else "invalid"
    raise Retry(
        ServerError(
            f"the score-report service answered the {what} with a body that is not the "
            f"expected JSON ({problem}).",
            hint="a proxy between you and ETS may be answering instead: " + BUSY_HINT,
            status=response.status_code,
        )
    )


def error_body(response: httpx.Response) -> contract.ErrorBody | None:
    """The error body of ``response``, or None when it is not one."""
    try:
        return contract.ErrorBody.model_validate_json(response.content)
    except (ValidationError, httpx.ResponseNotRead):
        return None


def server_text(body: contract.ErrorBody | None, limit: int = 200) -> str:
    """The server's message, printable and short, for ours."""
    if body is None:
        return ""
    text = " ".join(body.text.split())
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def unexpected_status(response: httpx.Response, what: str) -> EtsError:
    body = error_body(response)
    code = f" ({body.error[:60]})" if body and body.error != "unknown" else ""
    return EtsError(
        f"the score-report service answered the {what} with HTTP {response.status_code}{code}.",
        hint=ENDPOINT_HINT,
    )


# --- No answer -----------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def deadline(seconds: float, url: httpx.URL) -> AsyncIterator[None]:
    """Fail the request (worth another try) when it has not ended within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise Retry(
            ServiceConnectionError(
                f"{origin(url)} did not finish answering within {seconds:g} s.",
                hint=BUSY_HINT,
            )
        ) from None


def tls_failure_reason(exc: BaseException) -> str | None:
    """Why the TLS handshake failed, if that is what ``exc`` comes from."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return str(current.verify_message or current.reason or current)
        # An EOF mid-handshake is a dropped connection, worth another try.
        if isinstance(current, ssl.SSLError) and not isinstance(
            current, ssl.SSLEOFError | ssl.SSLZeroReturnError
        ):
            return str(current.reason or current)
        current = current.__cause__ or current.__context__
    return None


def transport_failure(exc: httpx.RequestError, url: httpx.URL) -> Exception:
    """The error (or retry signal) for a request that got no response."""
    where = origin(url)
    if isinstance(exc, httpx.ConnectError):
        reason = tls_failure_reason(exc)
        if reason is not None:
            return TLSError(f"the TLS connection to {where} failed: {reason}.", hint=TLS_HINT)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return BadInputError(f"{where} is not an address caaspp can reach.", hint=ENDPOINT_HINT)
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for an answer",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "talking to it")
        return Retry(ServiceConnectionError(f"{where} timed out ({phase}).", hint=BUSY_HINT))
    detail = (str(exc) or type(exc).__name__).replace(str(url), redact_url(url))
    return Retry(
        ServiceConnectionError(
            f"could not reach {where}: {detail}.",
            hint="check the network connection and the base URL of this profile.",
        )
    )
