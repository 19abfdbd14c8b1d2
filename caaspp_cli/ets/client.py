"""The HTTP client of the ETS score-report service: token, report lists, downloads.

Modelled on the openai-python (Stainless) client: one exception per cause (see
:mod:`caaspp_cli.errors`); retries on 408, 429, 5xx and network failures with capped
exponential backoff and jitter, ``Retry-After`` honoured in seconds or as an HTTP date; an
access token cached, refreshed under a lock shortly before it expires, and renewed once
when a data call answers 401. Every wire detail comes from :mod:`caaspp_cli.ets.contract`.

This module says what to ask and what the answers mean; around it, ``session`` sends
requests (pools, pacing by ``throttle``, deadlines, the retry loop), ``body`` reads JSON
answers within their caps, ``download`` saves one link's PDF, ``failures`` turns statuses
and transport errors into the exceptions of :mod:`caaspp_cli.errors`, and ``urls`` keeps
link signatures out of logs.

Secrets stay out of messages and logs: the Client Key and Secret, the access token, and
the query string of a pre-signed link (a bearer secret while it lives) are never written;
SSIDs appear in DEBUG logs only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx

from caaspp_cli.config.credentials import Credentials
from caaspp_cli.errors import (
    AuthenticationError,
    BadInputError,
    BadRequestError,
    CaasppError,
    EtsError,
    LinkExpiredError,
    NotEnrolledError,
    StudentNotFoundError,
)
from caaspp_cli.ets import contract
from caaspp_cli.ets.body import DEFAULT_MAX_REPORT_BYTES, MAX_ERROR_BODY_BYTES, MAX_LIST_BYTES
from caaspp_cli.ets.contract import ReportEntry, ReportList, TokenResponse
from caaspp_cli.ets.download import DownloadResult, check_link, link_expired, save_report
from caaspp_cli.ets.failures import (
    BUSY_HINT,
    REFUSED_HINT,
    REFUSED_MESSAGE,
    LinkRefused,
    LinkStale,
    Unauthorized,
    error_body,
    parse_body,
    server_text,
    status_retry,
    unexpected_status,
)
from caaspp_cli.ets.session import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_DEADLINE,
    DEFAULT_TIMEOUT,
    RetryEvent,
    Session,
)
from caaspp_cli.ets.throttle import Clock, Sleep
from caaspp_cli.ets.urls import check_base_url, redact_httpx_log
from caaspp_cli.fsutil import ensure_private_dir
from caaspp_cli.retry import RetryPolicy
from caaspp_cli.vocabulary import is_valid_ssid
from caaspp_cli.words import plural

log = logging.getLogger(__name__)

T = TypeVar("T")

# The filters of a score-reports call: (test, language, year), None meaning all.
ReportQuery = tuple[str | None, str | None, int | None]

# Expired links are refreshed this many times per download before giving up.
DEFAULT_MAX_LINK_REFRESHES = 3
# A link that expires while its request waits for the throttle is renewed, this many times.
MAX_STALE_LINKS = 10
# A token is renewed this long before it expires (or at 90% of a shorter lifetime).
TOKEN_REFRESH_MARGIN = 60.0


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


# --- Results -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenInfo:
    """What `config test` shows about a freshly issued token (never the token itself)."""

    token_type: str
    expires_in: int


def _check_ssid(ssid: str) -> None:
    if not is_valid_ssid(ssid):
        raise BadInputError(
            "an SSID is exactly 10 digits; this one is not.",
            hint="check the Statewide Student Identifier in CALPADS.",
        )


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
        redact_httpx_log()
        self.endpoints = endpoints
        self._credentials = credentials
        self._max_report_bytes = max_report_bytes
        self._max_link_refreshes = max_link_refreshes
        self._max_list_bytes = max_list_bytes
        self._clock = clock
        self._token: _Token | None = None
        self._token_worked = False  # a data call has succeeded: the credentials are good
        self._token_lock = asyncio.Lock()
        self._session = Session(
            timeout=timeout,
            retry=retry,
            max_connections=max_connections,
            request_deadline=request_deadline,
            transport=transport,
            sleep=sleep,
            clock=clock,
            rand=rand,
            on_retry=on_retry,
        )
        self._retry = self._session.retry

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
        await self._session.aclose()

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
            request = self._session.build_request(
                "POST", url, headers=headers, data=contract.token_form()
            )
            async with self._session.exchange(request) as response:
                await self._session.read(response, MAX_ERROR_BODY_BYTES, "token request")
            if response.status_code == httpx.codes.OK:
                return parse_body(TokenResponse, response, "token request")
            raise self._token_error(response)

        payload = await self._session.with_retries("token request", attempt)
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
            return status_retry(response, "token request")
        body = error_body(response)
        code = body.error if body else None
        refused = contract.ERROR_STATUS[contract.ERR_INVALID_CLIENT]
        if status == refused or code == contract.ERR_INVALID_CLIENT:
            return AuthenticationError(REFUSED_MESSAGE, hint=REFUSED_HINT)
        return unexpected_status(response, "token request")

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
            request = self._session.build_request(
                "GET",
                url,
                params=params,
                headers={
                    contract.HEADER_AUTHORIZATION: contract.bearer_header(token),
                    contract.HEADER_ACCEPT: contract.ACCEPT_JSON,
                },
            )
            async with self._session.exchange(request) as response:
                await self._session.read(response, self._max_list_bytes, "score-reports call")
            if response.status_code == httpx.codes.OK:
                return parse_body(ReportList, response, "score-reports call")
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
                result = await self._session.with_retries(what, with_current_token)
            except Unauthorized:
                self._invalidate_token(token)
                refusals += 1
                if refusals >= (self._retry.max_attempts if self._token_worked else 2):
                    raise AuthenticationError(
                        "ETS refused a freshly issued access token.", hint=REFUSED_HINT
                    ) from None
                continue
            self._token_worked = True
            return result

    def _data_error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        if status == contract.ERROR_STATUS[contract.ERR_INVALID_TOKEN]:
            return Unauthorized()
        if status in contract.RETRYABLE_STATUSES:
            return status_retry(response, "score-reports call")
        body = error_body(response)
        code = body.error if body else None
        # A malformed SSID and an unknown filter share their status: both are bad requests.
        if status == contract.ERROR_STATUS[contract.ERR_INVALID_PARAMETER]:
            detail = server_text(body)
            return BadRequestError(
                "the score-report service rejected the request"
                + (f": {detail.rstrip('.')}." if detail else "."),
                hint="check the SSID and the test, language and year filters.",
            )
        if code == contract.ERR_NOT_ENROLLED and status == contract.ERROR_STATUS[code]:
            return NotEnrolledError(
                "this student is not (or no longer) enrolled in this LEA, so ETS does not "
                "show their reports.",
                hint="an LEA sees current students, and past years it was the last to enrol.",
            )
        if code == contract.ERR_STUDENT_NOT_FOUND and status == contract.ERROR_STATUS[code]:
            return StudentNotFoundError(
                "ETS has no record of this SSID.", hint="check the SSID against CALPADS."
            )
        return unexpected_status(response, "score-reports call")

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
            if attempts > 1 and link_expired(current):
                current = await self._fresh_entry(ssid, current, filters)
            check_link(current.url)
            return await save_report(self._session, current, dest, self._max_report_bytes)

        refusals = 0
        stale = 0
        while True:
            try:
                return await self._session.with_retries("download", attempt)
            except LinkStale:
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
            except LinkRefused:
                if refusals >= self._max_link_refreshes:
                    raise LinkExpiredError(
                        "the download link was refused as expired, even after "
                        f"{plural(refusals, 'fresh link')}.",
                        hint=BUSY_HINT,
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
