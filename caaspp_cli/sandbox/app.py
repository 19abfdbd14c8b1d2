"""The sandbox's HTTP application: the ETS contract, served from a synthetic world.

Every path, header and payload shape comes from ``caaspp_cli.ets.contract``. On top of the
contract the sandbox can misbehave on purpose (latency, faults, rate limits, revoked tokens,
short-lived links) and counts what it was asked, so tests can compare a client's work with
the ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import hashlib
import hmac
import math
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from caaspp_cli import vocabulary
from caaspp_cli.ets import contract
from caaspp_cli.fsutil import write_private_bytes
from caaspp_cli.sandbox.render import render_report_html, render_report_pdf
from caaspp_cli.sandbox.world import SandboxReport, SandboxStudent, World

# Public demo credentials: they open nothing but a sandbox on this machine.
DEMO_CLIENT_KEY = "sandbox-client-key"
DEMO_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 - a published demo value

STATS_PATH = "/_sandbox/stats"
# Not part of the ETS wire: lets out the reports a release schedule holds back.
RELEASE_PATH = "/_sandbox/release"
DOWNLOAD_PREFIX = "/ssr/"
CHUNK_SIZE = 16 * 1024


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves. The defaults are a well-behaved production look-alike."""

    students: int = 200
    seed: int = 2026
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    rate_limit: float | None = None
    token_ttl: int = 3600
    link_ttl: int = contract.PRODUCTION_LINK_TTL_SECONDS
    revoke_every: int | None = None
    client_key: str = DEMO_CLIENT_KEY
    client_secret: str = field(default=DEMO_CLIENT_SECRET, repr=False)
    students_endpoint: str = contract.DEFAULT_STUDENTS_ENDPOINT
    reports_endpoint: str = contract.DEFAULT_REPORTS_ENDPOINT
    token_endpoint: str = contract.DEFAULT_TOKEN_ENDPOINT
    render_cache_size: int = 256
    # A folder keeping rendered reports across restarts (reports are deterministic for a
    # seed, and their IDs carry it): benchmarks and demos then serve without rendering.
    render_cache_dir: Path | None = None
    # A release schedule, as ETS releases reports over weeks: this share of the reports
    # (chosen by the seed) is not listed until ``release_at`` (a time.time() moment; None:
    # only a release call, POST RELEASE_PATH or SandboxState.release(), lets them out).
    held_back: float = 0.0
    release_at: float | None = None

    def __post_init__(self) -> None:
        if self.students < 1:
            raise ValueError("students must be at least 1")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        if not 0.0 <= self.held_back <= 1.0:
            raise ValueError("the share held back must be between 0 and 1")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate limit must be a positive number of requests per second")
        if self.latency_ms < 0:
            raise ValueError("latency must not be negative")
        if self.token_ttl < 1 or self.link_ttl < 1:
            raise ValueError("token and link lifetimes must be at least 1 second")
        if self.revoke_every is not None and self.revoke_every < 1:
            raise ValueError("revoke-every must be at least 1")


class _TokenBucket:
    """Requests per second, with a burst of one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> float:
        """0 if a request may pass now, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class SandboxState:
    """The world, the live tokens, the counters: everything one sandbox instance holds."""

    def __init__(self, config: SandboxConfig, world: World | None = None) -> None:
        self.config = config
        self.world = world if world is not None else World.build(config.students, config.seed)
        self.tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self.counters: Counter[str] = Counter()
        self.downloads: Counter[str] = Counter()  # report_id -> complete bodies sent
        self.faults = random.Random(config.seed ^ 0x5EED)
        self.link_key = secrets.token_bytes(32)
        self.bucket = _TokenBucket(config.rate_limit) if config.rate_limit else None
        self.lock = threading.Lock()  # counters are read from other threads in tests
        self._rendered = functools.lru_cache(maxsize=config.render_cache_size)(self._render)
        self._released = config.held_back == 0.0

    # -- the release schedule --------------------------------------------------------------
    def is_held_back(self, report_id: str) -> bool:
        """Whether a report is still kept back by the release schedule (not listed)."""
        if self._released:
            return False
        release_at = self.config.release_at
        if release_at is not None and time.time() >= release_at:
            self._released = True
            return False
        return self.world.held_back(report_id, self.config.held_back)

    def release(self) -> None:
        """Let out every report held back, now."""
        self._released = True
        self.count("releases")

    # -- counters --------------------------------------------------------------------------
    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counters[key] += n

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "counters": dict(self.counters),
                "downloads": dict(self.downloads),
                "live_tokens": len(self.tokens),
            }

    # -- tokens ----------------------------------------------------------------------------
    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.config.token_ttl
        return token

    def token_valid(self, token: str | None) -> bool:
        if token is None:
            return False
        expiry = self.tokens.get(token)
        if expiry is None:
            return False
        if time.monotonic() >= expiry:
            del self.tokens[token]
            return False
        return True

    def revoke_all(self) -> None:
        self.tokens.clear()

    # -- links -----------------------------------------------------------------------------
    def sign(self, report_id: str, expires: int) -> str:
        message = f"{report_id}:{expires}".encode()
        return hmac.new(self.link_key, message, hashlib.sha256).hexdigest()

    def link_valid(self, report_id: str, expires: str, signature: str) -> bool:
        try:
            expires_at = int(expires)
        except ValueError:
            return False
        if not hmac.compare_digest(self.sign(report_id, expires_at), signature):
            return False
        return time.time() <= expires_at

    # -- bodies ----------------------------------------------------------------------------
    def _render(self, report_id: str) -> bytes:
        found = self.world.find_report(report_id)
        if found is None:
            raise KeyError(report_id)
        student, report = found
        cached = None
        if self.config.render_cache_dir is not None:
            cached = self.config.render_cache_dir / f"{report_id}.{report.format}"
            with contextlib.suppress(OSError):
                return cached.read_bytes()
        if report.format == contract.FORMAT_HTML:
            body = render_report_html(self.world, student, report).encode("utf-8")
        else:
            body = render_report_pdf(self.world, student, report)
        if cached is not None:
            write_private_bytes(cached, body)
        return body

    def body(self, report_id: str) -> bytes:
        return self._rendered(report_id)


def _error(
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    status: int | None = None,
) -> Response:
    """An error as the contract sends it: the body of ``contract.ErrorBody``, with the status
    of ``code`` (or ``status``, for a transient error's other 5xx)."""
    return JSONResponse(
        contract.error_body(code, message),
        status_code=status if status is not None else contract.ERROR_STATUS[code],
        headers=headers,
    )


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


def create_app(state: SandboxState) -> Starlette:
    """The ASGI application serving ``state``."""
    config = state.config

    async def delay() -> None:
        if config.latency_ms > 0:
            await asyncio.sleep(config.latency_ms / 1000.0)

    def rate_limited() -> Response | None:
        if state.bucket is None:
            return None
        wait = state.bucket.take()
        if wait <= 0:
            return None
        state.count("rate_limited")
        seconds = max(1, math.ceil(wait))
        # Alternate the two forms the contract allows, so clients meet both.
        retry_after = str(seconds) if state.counters["rate_limited"] % 2 else _http_date(seconds)
        return _error(
            contract.ERR_RATE_LIMITED,
            "Too many requests.",
            {contract.HEADER_RETRY_AFTER: retry_after},
        )

    def fault_roll() -> bool:
        return config.fault_rate > 0 and state.faults.random() < config.fault_rate

    async def token(request: Request) -> Response:
        await delay()
        state.count("token_requests")
        credentials = contract.parse_basic_auth_header(request.headers.get("authorization"))
        if credentials is None or not (
            hmac.compare_digest(credentials[0], config.client_key)
            and hmac.compare_digest(credentials[1], config.client_secret)
        ):
            state.count("token_refused")
            return JSONResponse(
                contract.token_error_body(
                    contract.ERR_INVALID_CLIENT, "Client authentication failed."
                ),
                status_code=contract.ERROR_STATUS[contract.ERR_INVALID_CLIENT],
                headers={"WWW-Authenticate": 'Basic realm="score-reports"'},
            )
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        if form.get("grant_type") != [contract.GRANT_TYPE]:
            return JSONResponse(
                contract.token_error_body(
                    contract.ERR_INVALID_GRANT_TYPE, "grant_type must be client_credentials."
                ),
                status_code=contract.ERROR_STATUS[contract.ERR_INVALID_GRANT_TYPE],
            )
        granted = contract.TokenResponse(
            access_token=state.issue_token(), expires_in=config.token_ttl
        )
        return JSONResponse(
            # An extra field, as OAuth2 servers send: clients must ignore it.
            granted.model_dump(mode="json") | {"scope": "score-reports"},
            headers={"Cache-Control": "no-store"},
        )

    async def score_reports(request: Request) -> Response:
        await delay()
        state.count("data_requests")
        if (limited := rate_limited()) is not None:
            return limited
        bearer = contract.parse_bearer_header(request.headers.get("authorization"))
        if config.revoke_every and state.counters["data_requests"] % config.revoke_every == 0:
            state.count("revocations")
            state.revoke_all()
        if not state.token_valid(bearer):
            state.count("token_rejected")
            return _error(
                contract.ERR_INVALID_TOKEN,
                "The access token is missing, expired or revoked.",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if fault_roll():
            return _data_fault(state)
        ssid = request.path_params["ssid"]
        if not vocabulary.is_valid_ssid(ssid):
            return _error(contract.ERR_INVALID_SSID, "An SSID is exactly 10 digits.")
        filters, problem = _filters(request)
        if problem:
            return _error(contract.ERR_INVALID_PARAMETER, problem)
        student = state.world.students.get(ssid)
        if student is None:
            state.count("student_not_found")
            return _error(contract.ERR_STUDENT_NOT_FOUND, "No record of this student.")
        if not student.enrolled:
            state.count("not_enrolled")
            return _error(contract.ERR_NOT_ENROLLED, "The student is not enrolled in this LEA.")
        reports = [
            r for r in state.world.select(ssid, *filters) if not state.is_held_back(r.report_id)
        ]
        state.count("data_ok")
        base = str(request.base_url).rstrip("/")
        listing = contract.ReportList(
            ssid=ssid, reports=[_entry(state, base, student, r) for r in reports]
        )
        return JSONResponse(listing.model_dump(mode="json"))

    async def download(request: Request) -> Response:
        await delay()
        state.count("download_requests")
        if (limited := rate_limited()) is not None:
            return limited
        name = request.path_params["name"]
        report_id, _, extension = name.partition(".")
        expires = request.query_params.get("expires", "")
        signature = request.query_params.get("signature", "")
        if not state.link_valid(report_id, expires, signature):
            state.count("link_refused")
            return Response(
                '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                "<Message>Request has expired</Message></Error>",
                status_code=403,
                media_type="application/xml",
            )
        found = state.world.find_report(report_id)
        if found is None or extension != found[1].format:
            return Response("Not Found", status_code=404, media_type="text/plain")
        body = await asyncio.to_thread(state.body, report_id)
        if fault_roll():
            return _download_fault(state, body)
        if found[1].format == contract.FORMAT_HTML:
            state.count("downloads_html")
            return Response(body, media_type="text/html; charset=utf-8")
        return _pdf_response(state, report_id, body)

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def release(request: Request) -> Response:
        state.release()
        return JSONResponse({"released": True})

    reports_route = contract.reports_path(
        "{ssid}", config.students_endpoint, config.reports_endpoint
    )
    routes = [
        Route("/" + config.token_endpoint.strip("/") + "/", token, methods=["POST"]),
        Route(reports_route, score_reports, methods=["GET"]),
        Route(DOWNLOAD_PREFIX + "{name}", download, methods=["GET"]),
        Route(STATS_PATH, stats, methods=["GET"]),
        Route(RELEASE_PATH, release, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _filters(request: Request) -> tuple[tuple[str | None, str | None, int | None], str | None]:
    params = request.query_params
    test = params.get(contract.PARAM_TEST)
    language = params.get(contract.PARAM_LANGUAGE)
    year_text = params.get(contract.PARAM_YEAR)
    if test is not None and test not in vocabulary.TEST_CODES:
        return (None, None, None), f"Unknown test code: {test[:20]}."
    if language is not None and language not in vocabulary.LANGUAGES:
        return (None, None, None), f"Unknown language code: {language[:20]}."
    year: int | None = None
    if year_text is not None:
        if not (year_text.isdigit() and len(year_text) == 4):
            return (None, None, None), "year must be a four-digit year."
        year = int(year_text)
    return (test, language, year), None


def _entry(
    state: SandboxState, base: str, student: SandboxStudent, report: SandboxReport
) -> contract.ReportEntry:
    # Rounded up: a link lives at least link_ttl seconds (truncating gave a 1-second link
    # anything from 0 to 1 s, and runs with short links failed by chance).
    expires = math.ceil(time.time() + state.config.link_ttl)
    signature = state.sign(report.report_id, expires)
    url = (
        f"{base}{DOWNLOAD_PREFIX}{report.report_id}.{report.format}"
        f"?expires={expires}&signature={signature}"
    )
    # Extra fields, as the real service may send: clients must ignore them.
    extra: dict[str, Any] = {"report_id": report.report_id, "status": "available"}
    if report.subject:
        extra["subject"] = report.subject
    return contract.ReportEntry(
        test=report.test,
        year=report.year,
        grade=report.grade,
        language=report.language,
        format=report.format,
        url=url,
        expires_at=datetime.fromtimestamp(expires, UTC),
        **extra,
    )


def _data_fault(state: SandboxState) -> Response:
    kind = state.faults.choice(("500", "502", "503", "504", "html"))
    state.count(f"fault_data_{kind}")
    if kind == "html":
        # A proxy's maintenance page, with status 200: not JSON, must be retried.
        return Response(_MAINTENANCE_PAGE, status_code=200, media_type="text/html")
    return _error(contract.ERR_SERVER, "Temporary failure; try again.", status=int(kind))


def _download_fault(state: SandboxState, body: bytes) -> Response:
    kind = state.faults.choice(("5xx", "short", "cut", "html"))
    state.count(f"fault_download_{kind}")
    if kind == "5xx":
        status = state.faults.choice((500, 502, 503, 504))
        return Response("Service Unavailable", status_code=status, media_type="text/plain")
    if kind == "html":
        return Response(_MAINTENANCE_PAGE, status_code=200, media_type="text/html")
    cut_at = max(len(contract.PDF_HEADER), int(len(body) * state.faults.uniform(0.1, 0.9)))
    if kind == "short":
        # A complete HTTP response whose body is only the start of the PDF.
        return Response(body[:cut_at], media_type="application/pdf")

    async def broken() -> AsyncIterator[bytes]:
        # Chunked, then the connection drops mid-body: the client sees a protocol error.
        yield body[:cut_at]
        raise ConnectionResetError("sandbox fault: connection cut mid-body")

    return StreamingResponse(broken(), media_type="application/pdf")


def _pdf_response(state: SandboxState, report_id: str, body: bytes) -> Response:
    headers = {"Cache-Control": "private, no-store"}
    # Half the reports go chunked (no Content-Length), as the contract allows.
    if hashlib.sha256(report_id.encode()).digest()[0] % 2 == 0:

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), CHUNK_SIZE):
                yield body[start : start + CHUNK_SIZE]
            with state.lock:
                state.downloads[report_id] += 1
                state.counters["downloads_ok"] += 1

        return StreamingResponse(chunks(), media_type="application/pdf", headers=headers)
    with state.lock:
        state.downloads[report_id] += 1
        state.counters["downloads_ok"] += 1
    return Response(body, media_type="application/pdf", headers=headers)


_MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    "<body><h1>We'll be back soon</h1><p>The service is under maintenance.</p></body></html>"
)

__all__ = [
    "DEMO_CLIENT_KEY",
    "DEMO_CLIENT_SECRET",
    "SandboxConfig",
    "SandboxState",
    "create_app",
]
