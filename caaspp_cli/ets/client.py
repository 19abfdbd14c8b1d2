"""The HTTP client of the ETS score-report service: token, report lists, downloads.

Modelled on the openai-python (Stainless) client: one exception per cause (see
:mod:`caaspp_cli.errors`); retries on 408, 429, 5xx and network failures with capped
exponential backoff and jitter, ``Retry-After`` honoured in seconds or as an HTTP date; an
access token cached, refreshed under a lock shortly before it expires, and renewed once
when a data call answers 401. Every wire detail comes from :mod:`caaspp_cli.ets.contract`.

Secrets stay out of messages and logs: the Client Key and Secret, the access token, and
the query string of a pre-signed link (a bearer secret while it lives) are never written;
SSIDs appear in DEBUG logs only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import random
import ssl
import tempfile
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from caaspp_cli import __version__
from caaspp_cli.config.credentials import Credentials
from caaspp_cli.errors import (
    AuthenticationError,
    BadInputError,
    BadRequestError,
    CaasppError,
    EtsError,
    InvalidReportError,
    LinkExpiredError,
    NotEnrolledError,
    RateLimitedError,
    ServerError,
    ServiceConnectionError,
    StudentNotFoundError,
    TLSError,
)
from caaspp_cli.ets import contract
from caaspp_cli.ets.contract import ReportEntry, ReportList, TokenResponse
from caaspp_cli.ets.pdfcheck import PdfStream, is_pdf_content_type, verify_pdf_file
from caaspp_cli.fsutil import (
    PRIVATE_FILE_MODE,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    FileHeldError,
    ensure_private_dir,
    replace_into_place,
)
from caaspp_cli.hosts import is_loopback_host
from caaspp_cli.words import plural

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
# The filters of a score-reports call: (test, language, year), None meaning all.
ReportQuery = tuple[str | None, str | None, int | None]

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=30.0)
# One AsyncClient degrades past 8-16 connections (measured); the LEA may ask for fewer.
DEFAULT_MAX_CONNECTIONS = 8
# --- Wire limits: what a hostile or broken service can cost us, at most ------------------
# An SSR is a few hundred kilobytes; a body this large is not one.
DEFAULT_MAX_REPORT_BYTES = 64 * 1024 * 1024
# A student's report list is a few kilobytes. The cap counts decompressed bytes, so a gzip
# bomb is cut off here too; memory grows by at most one inflated network read (64 KB of
# gzip, at most about 64 MB) beyond it.
MAX_LIST_BYTES = 1024 * 1024
# An error body is read only for its code and message.
MAX_ERROR_BODY_BYTES = 64 * 1024
# Every request, body included, ends within this many seconds: the read timeout alone is
# per read, so a server dripping a byte at a time would hold a connection forever.
DEFAULT_REQUEST_DEADLINE = 300.0
# Throttling (429 with Retry-After) does not spend attempts; but one request waits at most
# this long in total for the service to let it through, then fails with RateLimitedError.
DEFAULT_MAX_THROTTLE_WAIT = 900.0
# Adaptive pacing after a 429: the request rate is halved (and concurrency with it), then
# grows back by equal steps, one per successful request, regaining the halved rate after
# this many; past 90% of the rate the 429 came at, it grows 32 times slower, probing. So a
# run against a steady limit settles just under it (measured: 2-3% of requests met a 429
# over 290 requests against a 20/s limit, most of them in the first burst).
THROTTLE_DECREASE = 0.5
# The rate a 429 came at, times this, is where the climb back slows to a probe.
THROTTLE_CEILING = 0.9
THROTTLE_RECOVERY_REQUESTS = 64
THROTTLE_START_CONNECTIONS = 2
# Pacing never goes below one request a second: slower than that, the Retry-After pause
# the service asks for does the work.
THROTTLE_MIN_RATE = 1.0
# Expired links are refreshed this many times per download before giving up.
DEFAULT_MAX_LINK_REFRESHES = 3
# A link that expires while its request waits for the throttle is renewed, this many times.
MAX_STALE_LINKS = 10
CONNECTIONS_PER_POOL = 8
# A token is renewed this long before it expires (or at 90% of a shorter lifetime).
TOKEN_REFRESH_MARGIN = 60.0

_REFUSED_MESSAGE = "ETS refused the Client Key and Client Secret of this profile."
_REFUSED_HINT = (
    "they may have been regenerated in TOMS (for another vendor) or have expired: "
    "run `caaspp config rotate` to store the current pair."
)
_TLS_HINT = (
    "if your network inspects HTTPS traffic, point SSL_CERT_FILE at your district's "
    "certificate bundle; verification is never turned off."
)
_BUSY_HINT = "the service may be busy or down; try again later."
_ENDPOINT_HINT = "check the base URL and endpoint paths of this profile."


# --- Configuration -------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoints:
    """Where the service lives: a base URL and the three paths a profile stores."""

    base_url: str
    students_endpoint: str = contract.DEFAULT_STUDENTS_ENDPOINT
    reports_endpoint: str = contract.DEFAULT_REPORTS_ENDPOINT
    token_endpoint: str = contract.DEFAULT_TOKEN_ENDPOINT

    @property
    def token_url(self) -> str:
        return contract.join_url(self.base_url, self.token_endpoint)

    def reports_url(self, ssid: str) -> str:
        path = contract.reports_path(ssid, self.students_endpoint, self.reports_endpoint)
        return contract.join_url(self.base_url, path)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed attempt is tried again.

    The n-th retry waits ``min(base_delay * 2**(n-1), max_delay)`` less up to ``jitter`` of
    it (so many clients do not retry in step), unless the service said ``Retry-After``:
    that is honoured, up to ``max_retry_after``.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.25
    max_retry_after: float = 120.0
    # Total seconds one request may spend waiting on 429s that said when to come back.
    max_throttle_wait: float = DEFAULT_MAX_THROTTLE_WAIT

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, retry_number: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        backoff = min(self.base_delay * 2.0 ** (retry_number - 1), self.max_delay)
        return backoff * (1.0 - self.jitter * rand)


# --- Results -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenInfo:
    """What `config test` shows about a freshly issued token (never the token itself)."""

    token_type: str
    expires_in: int


@dataclass(frozen=True)
class DownloadResult:
    """A report saved under ``path``: its size and SHA-256, and the entry that served it."""

    path: Path
    size: int
    sha256: str
    entry: ReportEntry


@dataclass(frozen=True)
class RetryEvent:
    """Reported to ``on_retry`` before each wait, so a front end can say what is going on."""

    what: str
    attempt: int  # the attempt that failed, from 1
    max_attempts: int
    delay: float
    error: EtsError


# --- URL helpers ---------------------------------------------------------------------------
def redact_url(url: str | httpx.URL) -> str:
    """Scheme, host and path of ``url``: no user info, no query, no fragment.

    The query of a pre-signed link is its signature; this is the only form of a URL that
    may reach a log or a message.
    """
    return _origin(url, with_path=True)


def _origin(url: str | httpx.URL, *, with_path: bool = False) -> str:
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    path = parts.path if with_path else ""
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{path}"


def _is_secure_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and is_loopback_host(parts.hostname)


def check_base_url(url: str) -> str:
    """``url`` if it is https:// (or http:// on this machine); BadInputError otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(
            f"the base URL {redact_url(url)} is not an https:// address with a host name.",
            hint=f"the production service is {contract.PRODUCTION_BASE_URL}.",
        )
    if not _is_secure_url(url):
        raise BadInputError(
            f"the base URL {_origin(url)} uses plain http://, which would send credentials "
            "and children's reports unencrypted; only https:// is allowed, and http:// only "
            "for a sandbox on this machine (localhost, 127.0.0.1, ::1).",
            hint="use the https:// address of the service.",
        )
    return url


def _check_ssid(ssid: str) -> None:
    if not contract.is_valid_ssid(ssid):
        raise BadInputError(
            "an SSID is exactly 10 digits; this one is not.",
            hint="check the Statewide Student Identifier in CALPADS.",
        )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or HTTP date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is no answer
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max((when - current).total_seconds(), 0.0)


def _tls_failure_reason(exc: BaseException) -> str | None:
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


class _RedactRequestUrls(logging.Filter):
    """httpx logs each request at INFO with its full URL: keep only scheme, host and path."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, httpx.URL) for arg in record.args
        ):
            record.args = tuple(
                redact_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def _redact_httpx_log() -> None:
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactRequestUrls) for f in httpx_log.filters):
        httpx_log.addFilter(_RedactRequestUrls())


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); elsewhere, or if refused, the rename must do."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- Internal signals ----------------------------------------------------------------------
class _Retry(Exception):
    """An attempt failed in a way worth another; ``error`` is raised when none are left."""

    def __init__(self, error: EtsError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class _Unauthorized(Exception):
    """A data call answered 401: the token was refused."""


class _LinkRefused(Exception):
    """A pre-signed link was refused: it has expired."""


class _LinkStale(Exception):
    """A pre-signed link ran out while its request waited for its turn: never sent."""


class _GiveUp(Exception):
    """An attempt failed in a way another attempt would not mend."""

    def __init__(self, error: EtsError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    token_type: str
    expires_in: int
    refresh_at: float  # on the client's clock


# --- The client ----------------------------------------------------------------------------
class EtsClient:
    """One connection pool to the score-report service, with its credentials and token.

    Use it as ``async with EtsClient(...) as ets:``. Safe to share among tasks: at most
    ``max_connections`` requests are in flight, and concurrent callers share one token.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: Credentials,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES,
        max_link_refreshes: int = DEFAULT_MAX_LINK_REFRESHES,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        max_list_bytes: int = MAX_LIST_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rand: Callable[[], float] = random.random,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> None:
        check_base_url(endpoints.base_url)
        _redact_httpx_log()
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.endpoints = endpoints
        self._credentials = credentials
        self._retry = retry or RetryPolicy()
        self._max_report_bytes = max_report_bytes
        self._max_link_refreshes = max_link_refreshes
        self._request_deadline = request_deadline
        self._max_list_bytes = max_list_bytes
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._on_retry = on_retry
        self._token: _Token | None = None
        self._token_worked = False  # a data call has succeeded: the credentials are good
        self._token_lock = asyncio.Lock()
        # Callers beyond the pool wait here rather than in the pool, where they would
        # run into its timeout; the throttle also paces them when the service says 429.
        self._throttle = _Throttle(
            max_connections, max_pause=self._retry.max_retry_after, clock=clock, sleep=sleep
        )
        # One httpx pool slows down past 8-16 connections (its connection scan grows with
        # the square of their number): spread wider concurrency over several pools.
        pools = max(1, math.ceil(max_connections / CONNECTIONS_PER_POOL))
        per_pool = math.ceil(max_connections / pools)
        self._pools = [
            httpx.AsyncClient(
                timeout=timeout,
                limits=httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool),
                headers={
                    contract.HEADER_USER_AGENT: contract.user_agent(__version__, httpx.__version__)
                },
                transport=transport,
                follow_redirects=False,
            )
            for _ in range(pools)
        ]
        self._http = self._pools[0]
        self._next_pool = itertools.cycle(self._pools)

    async def __aenter__(self) -> EtsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    # --- Token -----------------------------------------------------------------------------
    async def get_token(self) -> str:
        """A valid access token: the cached one, or a new one shortly before it expires.

        However many tasks ask at once, one token request is made.
        """
        cached = self._token
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        async with self._token_lock:
            cached = self._token
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.value
            fresh = await self._request_token()
            self._token = fresh
            return fresh.value

    async def check_credentials(self) -> TokenInfo:
        """Ask for a fresh token now (for `config test`); AuthenticationError if refused."""
        async with self._token_lock:
            fresh = await self._request_token()
            self._token = fresh
        return TokenInfo(token_type=fresh.token_type, expires_in=fresh.expires_in)

    def _invalidate_token(self, failed: str) -> None:
        # Only the token that failed: a task whose 401 arrives after another task already
        # renewed the token must not throw the new one away.
        if self._token is not None and self._token.value == failed:
            log.debug("access token refused; renewing it")
            self._token = None

    async def _request_token(self) -> _Token:
        started = self._clock()
        url = self.endpoints.token_url
        headers = {
            contract.HEADER_AUTHORIZATION: contract.basic_auth_header(
                self._credentials.client_key, self._credentials.client_secret
            ),
            contract.HEADER_ACCEPT: contract.ACCEPT_JSON,
        }

        async def attempt() -> TokenResponse:
            request = self._http.build_request(
                "POST", url, headers=headers, data=contract.token_form()
            )
            async with self._exchange(request) as response:
                await self._read(response, MAX_ERROR_BODY_BYTES, "token request")
            if response.status_code == httpx.codes.OK:
                return self._parse(TokenResponse, response, "token request")
            raise self._token_error(response)

        payload = await self._with_retries("token request", attempt)
        lifetime = max(payload.expires_in, 0)
        margin = min(TOKEN_REFRESH_MARGIN, lifetime * 0.1)
        log.debug("access token issued, valid %d s", lifetime)
        return _Token(
            value=payload.access_token,
            token_type=payload.token_type,
            expires_in=payload.expires_in,
            refresh_at=started + lifetime - margin,
        )

    def _token_error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        if status in contract.RETRYABLE_STATUSES:
            return self._status_retry(response, "token request")
        body = _error_body(response)
        code = body.error if body else None
        if status == httpx.codes.UNAUTHORIZED or code == contract.ERR_INVALID_CLIENT:
            return AuthenticationError(_REFUSED_MESSAGE, hint=_REFUSED_HINT)
        return _unexpected_status(response, "token request")

    # --- Score reports ---------------------------------------------------------------------
    async def list_reports(
        self,
        ssid: str,
        *,
        test: str | None = None,
        language: str | None = None,
        year: int | None = None,
    ) -> list[ReportEntry]:
        """The report definitions of one student; omitted filters mean all.

        An empty list is an answer (the student is known, no report matches); HTML entries
        are returned too: callers that want PDFs skip them (``entry.is_pdf``).
        """
        _check_ssid(ssid)
        url = self.endpoints.reports_url(ssid)
        params = contract.reports_query(test=test, language=language, year=year)
        log.debug("listing reports of SSID %s %s", ssid, params or "")

        async def attempt(token: str) -> ReportList:
            request = self._http.build_request(
                "GET",
                url,
                params=params,
                headers={
                    contract.HEADER_AUTHORIZATION: contract.bearer_header(token),
                    contract.HEADER_ACCEPT: contract.ACCEPT_JSON,
                },
            )
            async with self._exchange(request) as response:
                await self._read(response, self._max_list_bytes, "score-reports call")
            if response.status_code == httpx.codes.OK:
                return self._parse(ReportList, response, "score-reports call")
            raise self._data_error(response)

        listing = await self._authorized("score-reports call", attempt)
        if listing.ssid != ssid:
            raise EtsError(
                "the score-report service answered for a different student than asked; "
                "nothing was saved.",
                hint="report this to the CDE/ETS help desk.",
            )
        log.debug("SSID %s: %d report(s)", ssid, len(listing.reports))
        return listing.reports

    async def _authorized(self, what: str, attempt: Callable[[str], Awaitable[T]]) -> T:
        """Run a data call with the current token; on 401 renew the token and try again.

        Each attempt takes the token of that moment: a retry after a wait must not carry
        one that another task has renewed since. Until a data call has succeeded, a token
        refused twice means refused credentials. After one has, the credentials are known
        to be good: a refused token was revoked or expired while the call waited (the
        renewal itself is refused at the token endpoint if the credentials were revoked),
        and it is renewed up to ``max_attempts`` times.
        """
        refusals = 0
        token = ""

        async def with_current_token() -> T:
            nonlocal token
            token = await self.get_token()
            return await attempt(token)

        while True:
            try:
                result = await self._with_retries(what, with_current_token)
            except _Unauthorized:
                self._invalidate_token(token)
                refusals += 1
                if refusals >= (self._retry.max_attempts if self._token_worked else 2):
                    raise AuthenticationError(
                        "ETS refused a freshly issued access token.", hint=_REFUSED_HINT
                    ) from None
                continue
            self._token_worked = True
            return result

    def _data_error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        if status == httpx.codes.UNAUTHORIZED:
            return _Unauthorized()
        if status in contract.RETRYABLE_STATUSES:
            return self._status_retry(response, "score-reports call")
        body = _error_body(response)
        code = body.error if body else None
        if status == httpx.codes.BAD_REQUEST:
            detail = _server_text(body)
            return BadRequestError(
                "the score-report service rejected the request"
                + (f": {detail.rstrip('.')}." if detail else "."),
                hint="check the SSID and the test, language and year filters.",
            )
        if status == httpx.codes.FORBIDDEN and code == contract.ERR_NOT_ENROLLED:
            return NotEnrolledError(
                "this student is not (or no longer) enrolled in this LEA, so ETS does not "
                "show their reports.",
                hint="an LEA sees current students, and past years it was the last to enrol.",
            )
        if status == httpx.codes.NOT_FOUND and code == contract.ERR_STUDENT_NOT_FOUND:
            return StudentNotFoundError(
                "ETS has no record of this SSID.", hint="check the SSID against CALPADS."
            )
        return _unexpected_status(response, "score-reports call")

    # --- Downloads -------------------------------------------------------------------------
    async def download_report(
        self,
        ssid: str,
        entry: ReportEntry,
        dest: Path,
        *,
        filters: ReportQuery = (None, None, None),
    ) -> DownloadResult:
        """Save the PDF of ``entry`` as ``dest`` (owner-only), complete or not at all.

        The body streams into a temp file beside ``dest``, is checked (PDF header and
        trailer, content type, pikepdf opens it) and only then renamed into place. A body
        that is cut short or not a PDF is retried like a 5xx. An expired link (403) is
        replaced by asking the score-reports call again with ``filters`` (``(test,
        language, year)`` as the entry was listed; ``None`` means all), up to
        ``max_link_refreshes`` times.
        """
        _check_ssid(ssid)
        if not entry.is_pdf:
            raise BadInputError(
                f"this {entry.test} {entry.year} report is {entry.format}, not a PDF; "
                "only PDF reports are downloaded."
            )
        dest = Path(dest)
        try:
            ensure_private_dir(dest.parent)
        except OSError as exc:
            raise CaasppError(
                f"could not create the folder {dest.parent}: {exc.strerror or exc}.",
                hint="check the path and its permissions.",
            ) from exc
        current = entry
        attempts = 0

        async def attempt() -> DownloadResult:
            # After a backoff the link may have run out: ask for a fresh one first rather
            # than spend an attempt on a certain 403.
            nonlocal current, attempts
            attempts += 1
            if attempts > 1 and _link_expired(current):
                current = await self._fresh_entry(ssid, current, filters)
            self._check_link(current.url)
            return await self._download_once(current, dest)

        refusals = 0
        stale = 0
        while True:
            try:
                return await self._with_retries("download", attempt)
            except _LinkStale:
                # Throttling held the request past the link's expiry: that is our pacing,
                # not the service refusing, so it spends no refusal; but it is bounded.
                stale += 1
                if stale > MAX_STALE_LINKS:
                    raise LinkExpiredError(
                        f"the download link expired {stale} times while the request waited "
                        "for its turn (the service is throttling).",
                        hint="fetch fewer reports at once, or try again later.",
                    ) from None
                attempts = 0
                current = await self._fresh_entry(ssid, current, filters)
            except _LinkRefused:
                if refusals >= self._max_link_refreshes:
                    raise LinkExpiredError(
                        "the download link was refused as expired, even after "
                        f"{plural(refusals, 'fresh link')}.",
                        hint=_BUSY_HINT,
                    ) from None
                refusals += 1
                attempts = 0
                log.debug("download link refused; asking for a fresh one (%d)", refusals)
                current = await self._fresh_entry(ssid, current, filters)

    async def _fresh_entry(
        self,
        ssid: str,
        entry: ReportEntry,
        filters: ReportQuery,
    ) -> ReportEntry:
        test, language, year = filters
        reports = await self.list_reports(ssid, test=test, language=language, year=year)
        for candidate in reports:
            if candidate.same_report(entry):
                return candidate
        raise LinkExpiredError(
            "the download link expired, and the report is no longer listed for this student.",
            hint="ETS may have withdrawn it; list the student's reports again.",
        )

    def _check_link(self, url: str) -> None:
        problem = contract.link_problem(url)
        if problem is not None:
            raise EtsError(
                f"the service gave a download link that cannot be used: {problem}.",
                hint="report this to the CDE/ETS help desk; the other reports go on.",
            )
        if not _is_secure_url(url):
            raise EtsError(
                f"the service gave a download link that is not https:// ({_origin(url)}); "
                "a child's report is never fetched unencrypted.",
                hint="report this to the CDE/ETS help desk.",
            )

    async def _download_once(self, entry: ReportEntry, dest: Path) -> DownloadResult:
        try:
            request = self._http.build_request("GET", entry.url)
        except httpx.InvalidURL as exc:
            raise EtsError(
                f"the service gave a download link that cannot be used: {_invalid_url(exc)}.",
                hint="report this to the CDE/ETS help desk; the other reports go on.",
            ) from None
        stream = PdfStream()
        temp: Path | None = None
        try:
            # Only a link that runs out while waiting for its turn is renewed before it is
            # sent: one already past its expiry by our clock is tried (clocks differ).
            fresh_now = not _link_expired(entry)
            async with self._exchange(
                request, still_valid=lambda: not fresh_now or not _link_expired(entry)
            ) as response:
                self._check_download_response(response)
                fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=dest.parent)
                temp = Path(name)
                with os.fdopen(fd, "wb") as handle:
                    os.chmod(temp, PRIVATE_FILE_MODE)
                    await self._stream_body(response, stream, handle)
                    stream.finish()
                    handle.flush()
                    # Off the event loop: a disk flush must not stall every other transfer.
                    await asyncio.to_thread(os.fsync, handle.fileno())
            # From here on nothing awaits: a cancellation cannot land between the checks
            # and the rename, so ``dest`` holds a complete report or nothing.
            verify_pdf_file(temp)
            # A report open in a PDF reader (Windows) is waited for at most a second, on
            # the loop itself: nothing may be awaited between the checks and the rename.
            replace_into_place(temp, dest)
        except InvalidReportError as exc:
            _remove(temp)
            raise _Retry(exc) from exc.__cause__
        except _GiveUp as give_up:
            _remove(temp)
            raise give_up.error from None
        except FileHeldError:
            _remove(temp)
            raise
        except OSError as exc:
            _remove(temp)
            raise CaasppError(
                f"could not save the report as {dest}: {exc.strerror or exc}.",
                hint="check the folder exists, is writable and has free space.",
            ) from exc
        except BaseException:
            _remove(temp)
            raise
        # The rename is made durable in the background: awaiting it here would let a
        # cancellation land after the file got its name but before the caller hears of it.
        asyncio.get_running_loop().run_in_executor(None, _fsync_dir, dest.parent)
        log.debug("saved %d bytes to %s", stream.size, dest)
        return DownloadResult(path=dest, size=stream.size, sha256=stream.sha256, entry=entry)

    def _check_download_response(self, response: httpx.Response) -> None:
        status = response.status_code
        if status in contract.LINK_EXPIRED_STATUSES:
            raise _LinkRefused()
        if status in contract.RETRYABLE_STATUSES:
            raise self._status_retry(response, "download")
        if status != httpx.codes.OK:
            raise _unexpected_status(response, "download")
        content_type = response.headers.get(contract.HEADER_CONTENT_TYPE)
        if not is_pdf_content_type(content_type):
            media_type = (content_type or "").split(";", 1)[0].strip()[:60]
            raise InvalidReportError(f"the download is {media_type}, not a PDF.")

    async def _stream_body(
        self, response: httpx.Response, stream: PdfStream, handle: BinaryIO
    ) -> None:
        try:
            async for chunk in response.aiter_bytes():
                if stream.size + len(chunk) > self._max_report_bytes:
                    raise _GiveUp(
                        InvalidReportError(
                            f"the download exceeds {self._max_report_bytes} bytes; an SSR is "
                            "far smaller."
                        )
                    )
                stream.feed(chunk)
                handle.write(chunk)
        except httpx.TimeoutException as exc:
            raise _Retry(
                ServiceConnectionError(
                    f"{_origin(response.request.url)} stopped sending the report.",
                    hint=_BUSY_HINT,
                )
            ) from exc
        except httpx.RequestError as exc:
            raise InvalidReportError(
                f"the download was cut short after {stream.size} bytes ({type(exc).__name__})."
            ) from exc

    # --- Plumbing --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _exchange(
        self, request: httpx.Request, still_valid: Callable[[], bool] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """Send ``request`` within a connection slot; the body is read by the caller.

        From the moment the request is sent until the caller is done with the body, the
        request deadline runs: past it the exchange ends as a timeout worth another try.
        """
        async with (
            self._throttle.slot() as started,
            _deadline(self._request_deadline, request.url),
        ):
            if still_valid is not None and not still_valid():
                raise _LinkStale()
            log.debug("%s %s", request.method, redact_url(request.url))
            try:
                response = await next(self._next_pool).send(request, stream=True)
            except httpx.RequestError as exc:
                raise _transport_failure(exc, request.url) from exc
            except (OverflowError, ValueError) as exc:
                # A port out of range or an address the socket layer refuses.
                raise BadInputError(
                    f"{_origin(request.url)} is not an address caaspp can reach "
                    f"({type(exc).__name__}).",
                    hint=_ENDPOINT_HINT,
                ) from None
            self._throttle.observe(
                response.status_code,
                parse_retry_after(response.headers.get(contract.HEADER_RETRY_AFTER)),
                started,
            )
            try:
                log.debug(
                    "%s %s -> %d", request.method, redact_url(request.url), response.status_code
                )
                yield response
            finally:
                await response.aclose()

    async def _read(self, response: httpx.Response, limit: int, what: str) -> None:
        """Read the body (decompressed) into ``response.content``, at most ``limit`` bytes.

        The body is decompressed here, never more than ``limit`` bytes at a time: httpx
        would inflate a whole network read at once, and a few kilobytes of gzip can hold
        hundreds of megabytes.
        """
        chunks: list[bytes] = []
        size = 0
        try:
            decoder, raw_chunks = _wire_body(response)
            async for raw in raw_chunks:
                chunks.append(decoder.feed(raw, limit - size + 1))
                size += len(chunks[-1])
                if size > limit:
                    break
            else:
                chunks.append(decoder.flush())  # counted too: nothing inflated goes unchecked
                size += len(chunks[-1])
            if size > limit:
                raise _Retry(
                    ServerError(
                        f"the score-report service answered the {what} with more than "
                        f"{limit} bytes; the answer was not read.",
                        hint="a proxy between you and ETS may be answering instead: " + _BUSY_HINT,
                        status=response.status_code,
                    )
                )
        except httpx.RequestError as exc:
            raise _transport_failure(exc, response.request.url) from exc
        except (httpx.DecodingError, zlib.error, _UnknownEncoding) as exc:
            raise _Retry(
                ServerError(
                    f"the score-report service answered the {what} with a body that could not "
                    "be decompressed.",
                    hint=_BUSY_HINT,
                    status=response.status_code,
                )
            ) from exc
        # What ``aread`` would have stored: the body as read, for ``response.content``.
        response._content = b"".join(chunks)

    async def _with_retries(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the attempts run out."""
        max_attempts = self._retry.max_attempts
        number = 1
        throttled_for = 0.0
        while True:
            try:
                return await attempt()
            except _Retry as retry:
                # A 429 that says when to come back is the service pacing us, not a
                # failure: it spends no attempt, only the (bounded) time this request waits.
                throttled = (
                    isinstance(retry.error, RateLimitedError) and retry.retry_after is not None
                )
                if throttled:
                    delay = self._retry.delay(number, retry.retry_after, self._rand())
                    throttled_for += delay
                    if throttled_for > self._retry.max_throttle_wait:
                        raise RateLimitedError(
                            f"the score-report service kept answering the {what} with 429 "
                            f"(too many requests) for over {self._retry.max_throttle_wait:.0f} s.",
                            hint="fetch fewer reports at once, or try again later.",
                            retry_after=retry.retry_after,
                        ) from None
                    log.debug("%s throttled (429); again in %.2f s", what, delay)
                    await self._sleep(delay)
                    continue
                if number >= max_attempts:
                    raise retry.error from retry.__cause__
                delay = self._retry.delay(number, retry.retry_after, self._rand())
                log.debug(
                    "%s failed (%s); attempt %d of %d in %.2f s",
                    what,
                    retry.error.message,
                    number + 1,
                    max_attempts,
                    delay,
                )
                if self._on_retry is not None:
                    self._on_retry(RetryEvent(what, number, max_attempts, delay, retry.error))
                await self._sleep(delay)
                number += 1

    def _status_retry(self, response: httpx.Response, what: str) -> _Retry:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get(contract.HEADER_RETRY_AFTER))
        error: EtsError
        if status == httpx.codes.TOO_MANY_REQUESTS:
            error = RateLimitedError(
                f"the score-report service kept answering the {what} with 429 (too many requests).",
                hint="fetch fewer reports at once, or try again later.",
                retry_after=retry_after,
            )
        else:
            error = ServerError(
                f"the score-report service kept failing the {what} (HTTP {status}).",
                hint=_BUSY_HINT,
                status=status,
            )
        return _Retry(error, retry_after)

    @staticmethod
    def _parse(model: type[M], response: httpx.Response, what: str) -> M:
        # The ValidationError is not chained: its text quotes the input, tokens included.
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            problem = exc.errors()[0]["type"] if exc.error_count() else "invalid"
        raise _Retry(
            ServerError(
                f"the score-report service answered the {what} with a body that is not the "
                f"expected JSON ({problem}).",
                hint="a proxy between you and ETS may be answering instead: " + _BUSY_HINT,
                status=response.status_code,
            )
        )


class _Throttle:
    """The client's shared gate: how many requests are in flight, and how fast they start.

    It starts wide open (``max_connections`` at once, no pacing). A 429 halves the
    concurrency and the request rate (once per round: 429s of requests sent before the last
    cut do not cut again) and holds every new request until the ``Retry-After`` moment;
    each success then raises concurrency by ``1/limit`` and the rate by a fixed step
    (additive increase, multiplicative decrease), so the run settles just under what the
    service allows instead of failing rows.
    """

    def __init__(
        self, max_connections: int, *, max_pause: float, clock: Clock, sleep: Sleep
    ) -> None:
        self._max = max_connections
        self._max_pause = max_pause
        self._clock = clock
        self._sleep = sleep
        # A slow start: a service that throttles answers the first burst with as many 429s
        # as there are requests in flight, so the run starts narrow and widens as answers
        # come (one more per round of successes: full width after a few dozen requests).
        self._limit = float(min(max_connections, THROTTLE_START_CONNECTIONS))
        self._in_flight = 0
        self._free = asyncio.Condition()
        self._rate: float | None = None  # requests per second; None: unpaced
        self._step = 0.0  # added to the rate per success
        # Just under the rate the last 429 came at: the rate climbs back to it at full step,
        # and beyond it only at an eighth (probing whether the service allows more again).
        self._ceiling = math.inf
        self._next_start = -math.inf
        self._paused_until = -math.inf
        self._cut_at = -math.inf
        self._recent: deque[float] = deque(maxlen=4096)  # start times, for the first cut

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Wait for a turn; yields the request's start time on the client's clock."""
        async with self._free:
            await self._free.wait_for(lambda: self._in_flight < max(1, int(self._limit)))
            self._in_flight += 1
        try:
            now = self._clock()
            start = max(now, self._next_start, self._paused_until)
            if self._rate is not None:
                self._next_start = start + 1.0 / self._rate
            if start > now:
                await self._sleep(start - now)
            started = self._clock()
            self._recent.append(started)
            yield started
        finally:
            async with self._free:
                self._in_flight -= 1
                self._free.notify_all()

    def observe(self, status: int, retry_after: float | None, started: float) -> None:
        now = self._clock()
        if status != httpx.codes.TOO_MANY_REQUESTS:
            if status < 400:
                self._limit = min(float(self._max), self._limit + 1.0 / self._limit)
                if self._rate is not None:
                    step = self._step if self._rate < self._ceiling else self._step / 32
                    self._rate += step
            return
        if retry_after is not None:
            pause = min(retry_after, self._max_pause)
            self._paused_until = max(self._paused_until, now + pause)
        if started < self._cut_at:
            return  # sent before the last cut: that cut already answered this burst
        self._cut_at = now
        self._limit = max(1.0, self._limit * THROTTLE_DECREASE)
        if self._rate is None:
            # The first 429: start pacing from what got through in the last second.
            recent = sum(1 for t in self._recent if t > now - 1.0)
            self._rate = float(max(recent, 1))
        self._ceiling = self._rate * THROTTLE_CEILING
        self._rate = max(THROTTLE_MIN_RATE, self._rate * THROTTLE_DECREASE)
        self._step = self._rate / THROTTLE_RECOVERY_REQUESTS
        log.debug("throttled: %d request(s) at once, %.2f per second", int(self._limit), self._rate)


def _wire_body(response: httpx.Response) -> tuple[_BoundedDecoder, AsyncIterator[bytes]]:
    """The body as it comes over the wire, and what undoes its Content-Encoding; a response
    already read (a test's mock) is given as httpx decoded it, with nothing left to undo."""
    try:
        content = response.content
    except httpx.ResponseNotRead:
        encoding = response.headers.get("content-encoding")
        return _BoundedDecoder(encoding), response.aiter_raw()

    async def once() -> AsyncIterator[bytes]:
        yield content

    return _BoundedDecoder(None), once()


class _UnknownEncoding(Exception):
    pass


class _BoundedDecoder:
    """Content-Encoding undone (identity, gzip or deflate) with a bound on each call's output:
    never more than ``max_out`` bytes are inflated in memory at once."""

    def __init__(self, encoding: str | None) -> None:
        name = (encoding or "identity").strip().lower()
        self._deflate = name == "deflate"
        if name in ("", "identity"):
            self._zlib = None
        elif name in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._deflate:
            self._zlib = zlib.decompressobj()
        else:  # we ask for gzip and deflate only (httpx's Accept-Encoding)
            raise _UnknownEncoding(name)

    def feed(self, data: bytes, max_out: int) -> bytes:
        if self._zlib is None:
            return data
        try:
            out = self._zlib.decompress(data, max_out)
        except zlib.error:
            if not self._deflate:
                raise
            # "deflate" is sent by some servers without its zlib header (as httpx allows).
            self._deflate = False
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, max_out)
        # Output was cut at max_out: the caller's limit is passed, whatever is left.
        return out

    def flush(self) -> bytes:
        return b"" if self._zlib is None else self._zlib.flush()


@contextlib.asynccontextmanager
async def _deadline(seconds: float, url: httpx.URL) -> AsyncIterator[None]:
    """Fail the request (worth another try) when it has not ended within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise _Retry(
            ServiceConnectionError(
                f"{_origin(url)} did not finish answering within {seconds:g} s.",
                hint=_BUSY_HINT,
            )
        ) from None


def _invalid_url(exc: httpx.InvalidURL) -> str:
    """httpx's reason, without the URL it may quote (a link's query is a secret)."""
    text = str(exc)
    return text.split(":", 1)[0].rstrip(".") if ":" in text else text.rstrip(".")


def _link_expired(entry: ReportEntry) -> bool:
    """True once the link's announced expiry has passed (unknown expiry: never)."""
    if entry.expires_at is None:
        return False
    expires_at = entry.expires_at
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return datetime.now(UTC) >= expires_at


def _remove(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _error_body(response: httpx.Response) -> contract.ErrorBody | None:
    try:
        return contract.ErrorBody.model_validate_json(response.content)
    except (ValidationError, httpx.ResponseNotRead):
        return None


def _server_text(body: contract.ErrorBody | None, limit: int = 200) -> str:
    if body is None:
        return ""
    text = " ".join(body.text.split())
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def _unexpected_status(response: httpx.Response, what: str) -> EtsError:
    body = _error_body(response)
    code = f" ({body.error[:60]})" if body and body.error != "unknown" else ""
    return EtsError(
        f"the score-report service answered the {what} with HTTP {response.status_code}{code}.",
        hint=_ENDPOINT_HINT,
    )


def _transport_failure(exc: httpx.RequestError, url: httpx.URL) -> Exception:
    """The error (or retry signal) for a request that got no response."""
    origin = _origin(url)
    if isinstance(exc, httpx.ConnectError):
        reason = _tls_failure_reason(exc)
        if reason is not None:
            return TLSError(f"the TLS connection to {origin} failed: {reason}.", hint=_TLS_HINT)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return BadInputError(f"{origin} is not an address caaspp can reach.", hint=_ENDPOINT_HINT)
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for an answer",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "talking to it")
        return _Retry(ServiceConnectionError(f"{origin} timed out ({phase}).", hint=_BUSY_HINT))
    detail = (str(exc) or type(exc).__name__).replace(str(url), redact_url(url))
    return _Retry(
        ServiceConnectionError(
            f"could not reach {origin}: {detail}.",
            hint="check the network connection and the base URL of this profile.",
        )
    )
