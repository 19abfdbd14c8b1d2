"""The ETS client against a mocked service (respx): token, report lists, downloads, retries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import shutil
import ssl
import stat
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pikepdf
import pytest
import respx

from caaspp_cli import __version__
from caaspp_cli.config.credentials import Credentials
from caaspp_cli.errors import (
    AuthenticationError,
    BadInputError,
    BadRequestError,
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
from caaspp_cli.ets.client import Endpoints, EtsClient, TokenInfo
from caaspp_cli.ets.contract import ReportEntry
from caaspp_cli.ets.download import DownloadResult
from caaspp_cli.ets.session import RetryEvent
from caaspp_cli.ets.urls import check_base_url, redact_url
from caaspp_cli.fsutil import is_temp_name
from caaspp_cli.retry import RetryPolicy, parse_retry_after

BASE = "https://ets.test"
ENDPOINTS = Endpoints(BASE)
TOKEN_URL = ENDPOINTS.token_url
SSID = "1234567890"
REPORTS_URL = ENDPOINTS.reports_url(SSID)
KEY = "key-KKKK-1111"
SECRET = "secret-SSSS-2222"
SIGNATURE = "SIGNATURE-0f9e8d"
LINK = f"https://cdn.ets.test/ssr/5c1f.pdf?expires=1732262400&signature={SIGNATURE}"
FRESH_LINK = "https://cdn.ets.test/ssr/5c1f.pdf?expires=1732264200&signature=FRESH-77"


# --- Fixtures ------------------------------------------------------------------------------
class FakeTime:
    """A clock that only moves when the client sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(assert_all_called=False)


@pytest.fixture(scope="session")
def pdf_bytes() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(612, 792))
    buffer = io.BytesIO()
    pdf.save(buffer)
    data = buffer.getvalue()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    return data


def make_client(
    router: respx.Router, fake: FakeTime, *, base_url: str = BASE, **kwargs: Any
) -> EtsClient:
    kwargs.setdefault("rand", lambda: 0.0)
    return EtsClient(
        Endpoints(base_url),
        Credentials(KEY, SECRET),
        transport=httpx.MockTransport(router.async_handler),
        sleep=fake.sleep,
        clock=fake.clock,
        **kwargs,
    )


def run(
    router: respx.Router,
    fake: FakeTime,
    action: Callable[[EtsClient], Awaitable[Any]],
    **kwargs: Any,
) -> Any:
    async def main() -> Any:
        async with make_client(router, fake, **kwargs) as ets:
            return await action(ets)

    return asyncio.run(main())


def token_json(
    token: str = "tok-1",
    expires_in: int = 3600,
    **extra: Any,
) -> dict[str, Any]:
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in, **extra}


def entry_json(url: str = LINK, **overrides: Any) -> dict[str, Any]:
    entry = {
        "test": "CAASPP",
        "year": 2024,
        "grade": "05",
        "language": "en",
        "format": "pdf",
        "url": url,
        "expires_at": "2099-11-22T08:00:00Z",
    }
    entry.update(overrides)
    return entry


def listing_json(*entries: dict[str, Any], ssid: str = SSID) -> dict[str, Any]:
    return {"ssid": ssid, "reports": list(entries)}


def entry(url: str = LINK, **overrides: Any) -> ReportEntry:
    return ReportEntry.model_validate(entry_json(url, **overrides))


def mock_token(router: respx.Router, *tokens: str) -> respx.Route:
    responses = [httpx.Response(200, json=token_json(t)) for t in (tokens or ("tok-1",))]
    if len(responses) == 1:
        return router.post(TOKEN_URL).mock(return_value=responses[0])
    return router.post(TOKEN_URL).mock(side_effect=responses)


def pdf_response(
    body: bytes, *, chunks: int = 3, content_type: str = "application/pdf"
) -> httpx.Response:
    """A chunked body (no Content-Length), as the service may send it."""
    size = max(1, len(body) // chunks + 1)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            await asyncio.sleep(0)
            yield body[start : start + size]

    return httpx.Response(200, headers={"Content-Type": content_type}, content=stream())


def cut_off_response(body: bytes) -> httpx.Response:
    """Half the body, then the connection drops."""

    async def stream() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    return httpx.Response(200, headers={"Content-Type": "application/pdf"}, content=stream())


def folder_names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# --- Configuration and URLs ----------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://ets.example.org",
        "http://10.0.0.5:8080",
        "http://localhost.example.org",
        "ftp://ets.test",
        "ets.test",
        "https://",
    ],
)
def test_base_url_refused_when_not_https_or_loopback(url: str) -> None:
    with pytest.raises(BadInputError) as caught:
        EtsClient(Endpoints(url), Credentials(KEY, SECRET))
    assert "https://" in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://caaspp-aws.ets.org",
        "http://127.0.0.1:8765",
        "http://127.8.9.10",
        "http://localhost:8000/",
        "http://[::1]:8000",
    ],
)
def test_base_url_allowed_for_https_and_loopback_http(url: str) -> None:
    assert check_base_url(url) == url


def test_http_loopback_base_url_is_used_for_requests(router: respx.Router, fake: FakeTime) -> None:
    base = "http://127.0.0.1:8765"
    endpoints = Endpoints(base)
    router.post(endpoints.token_url).respond(200, json=token_json())
    router.get(endpoints.reports_url(SSID)).respond(200, json=listing_json(entry_json()))

    reports = run(router, fake, lambda ets: ets.list_reports(SSID), base_url=base)

    assert len(reports) == 1


def test_redact_url_keeps_scheme_host_and_path_only() -> None:
    assert redact_url(LINK) == "https://cdn.ets.test/ssr/5c1f.pdf"
    assert redact_url("https://user:pw@h.test:8443/a/b?q=1#frag") == "https://h.test:8443/a/b"
    assert redact_url("http://[::1]:8000/x?y") == "http://[::1]:8000/x"


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2024, 11, 22, 8, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=42), usegmt=True), now) == 42
    assert parse_retry_after(format_datetime(now - timedelta(seconds=42), usegmt=True), now) == 0
    assert parse_retry_after("-3", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2.0)


# --- Token ---------------------------------------------------------------------------------
def test_token_request_sends_basic_auth_form_body_and_user_agent(
    router: respx.Router, fake: FakeTime
) -> None:
    token_route = mock_token(router)
    reports_route = router.get(REPORTS_URL).respond(200, json=listing_json())

    run(router, fake, lambda ets: ets.list_reports(SSID))

    request = token_route.calls.last.request
    assert request.method == "POST"
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{KEY}:{SECRET}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {"grant_type": ["client_credentials"]}
    user_agent = request.headers["User-Agent"]
    assert user_agent == f"caaspp/{__version__} (+python-httpx/{httpx.__version__})"
    data_request = reports_route.calls.last.request
    assert data_request.headers["Authorization"] == "Bearer tok-1"
    assert data_request.headers["User-Agent"] == user_agent


def test_token_is_cached_across_calls(router: respx.Router, fake: FakeTime) -> None:
    token_route = mock_token(router)
    reports_route = router.get(REPORTS_URL).respond(200, json=listing_json())

    async def twice(ets: EtsClient) -> None:
        await ets.list_reports(SSID)
        await ets.list_reports(SSID, test="CAASPP")

    run(router, fake, twice)

    assert token_route.call_count == 1
    assert reports_route.call_count == 2


def test_token_is_renewed_a_minute_before_it_expires(router: respx.Router, fake: FakeTime) -> None:
    token_route = mock_token(router, "tok-1", "tok-2")
    reports_route = router.get(REPORTS_URL).respond(200, json=listing_json())

    async def over_time(ets: EtsClient) -> None:
        await ets.list_reports(SSID)
        fake.now += 3600 - 61
        await ets.list_reports(SSID)
        fake.now += 2
        await ets.list_reports(SSID)

    run(router, fake, over_time)

    assert token_route.call_count == 2
    sent = [call.request.headers["Authorization"] for call in reports_route.calls]
    assert sent == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_short_lived_token_is_renewed_at_ninety_percent(
    router: respx.Router, fake: FakeTime
) -> None:
    token_route = router.post(TOKEN_URL).mock(
        side_effect=[
            httpx.Response(200, json=token_json("tok-1", expires_in=100)),
            httpx.Response(200, json=token_json("tok-2", expires_in=100)),
        ]
    )

    async def over_time(ets: EtsClient) -> list[str]:
        first = await ets.get_token()
        fake.now += 89
        second = await ets.get_token()
        fake.now += 2
        third = await ets.get_token()
        return [first, second, third]

    assert run(router, fake, over_time) == ["tok-1", "tok-1", "tok-2"]
    assert token_route.call_count == 2


def test_concurrent_callers_share_one_token_request(router: respx.Router, fake: FakeTime) -> None:
    async def slow_token(request: httpx.Request) -> httpx.Response:
        for _ in range(5):
            await asyncio.sleep(0)
        return httpx.Response(200, json=token_json())

    token_route = router.post(TOKEN_URL).mock(side_effect=slow_token)
    reports_route = router.get(REPORTS_URL).respond(200, json=listing_json(entry_json()))

    async def many(ets: EtsClient) -> list[list[ReportEntry]]:
        return await asyncio.gather(*(ets.list_reports(SSID) for _ in range(20)))

    results = run(router, fake, many)

    assert token_route.call_count == 1
    assert reports_route.call_count == 20
    assert all(len(r) == 1 for r in results)


def test_check_credentials_asks_for_a_fresh_token(router: respx.Router, fake: FakeTime) -> None:
    token_route = router.post(TOKEN_URL).mock(
        side_effect=[
            httpx.Response(200, json=token_json("tok-1")),
            httpx.Response(200, json=token_json("tok-2", expires_in=1800, scope="ssr")),
        ]
    )

    async def check(ets: EtsClient) -> tuple[TokenInfo, str]:
        await ets.get_token()
        info = await ets.check_credentials()
        return info, await ets.get_token()

    info, token_after = run(router, fake, check)

    assert info == TokenInfo(token_type="Bearer", expires_in=1800)
    assert "tok-" not in repr(info)
    assert token_after == "tok-2"
    assert token_route.call_count == 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, contract.token_error_body("invalid_client", "client authentication failed")),
        (400, contract.token_error_body("invalid_client", "unknown client")),
        (401, None),
    ],
)
def test_refused_credentials_raise_authentication_error_without_secrets(
    router: respx.Router, fake: FakeTime, status: int, body: dict[str, str] | None
) -> None:
    token_route = router.post(TOKEN_URL).respond(status, json=body)
    reports_route = router.get(REPORTS_URL).respond(200, json=listing_json())

    with pytest.raises(AuthenticationError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID))

    error = caught.value
    assert "refused the Client Key and Client Secret" in error.message
    assert error.hint is not None
    assert "TOMS" in error.hint and "caaspp config rotate" in error.hint
    basic = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    for text in (str(error), error.hint, repr(error)):
        assert KEY not in text and SECRET not in text and basic not in text
    assert token_route.call_count == 1
    assert reports_route.call_count == 0
    assert fake.sleeps == []


def test_token_endpoint_outage_is_retried(router: respx.Router, fake: FakeTime) -> None:
    token_route = router.post(TOKEN_URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=token_json())]
    )

    assert run(router, fake, lambda ets: ets.get_token()) == "tok-1"
    assert token_route.call_count == 2
    assert fake.sleeps == [0.5]


def test_unexpected_token_answer_names_the_status_and_points_at_the_profile(
    router: respx.Router, fake: FakeTime
) -> None:
    router.post(TOKEN_URL).respond(404, text="<html>Not Found</html>")

    with pytest.raises(EtsError) as caught:
        run(router, fake, lambda ets: ets.get_token())

    assert type(caught.value) is EtsError
    assert "HTTP 404" in caught.value.message
    assert caught.value.hint is not None and "endpoint" in caught.value.hint


# --- 401 on data calls ---------------------------------------------------------------------
def test_data_call_401_renews_the_token_and_retries_once(
    router: respx.Router, fake: FakeTime
) -> None:
    token_route = mock_token(router, "tok-1", "tok-2")
    reports_route = router.get(REPORTS_URL).mock(
        side_effect=[
            httpx.Response(401, json=contract.error_body("invalid_token", "revoked")),
            httpx.Response(200, json=listing_json(entry_json())),
        ]
    )

    reports = run(router, fake, lambda ets: ets.list_reports(SSID))

    assert [r.url for r in reports] == [LINK]
    assert token_route.call_count == 2
    sent = [call.request.headers["Authorization"] for call in reports_route.calls]
    assert sent == ["Bearer tok-1", "Bearer tok-2"]


def test_second_401_raises_authentication_error(router: respx.Router, fake: FakeTime) -> None:
    token_route = mock_token(router, "tok-1", "tok-2")
    reports_route = router.get(REPORTS_URL).respond(
        401, json=contract.error_body("invalid_token", "revoked")
    )

    with pytest.raises(AuthenticationError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID))

    assert "caaspp config rotate" in (caught.value.hint or "")
    assert token_route.call_count == 2
    assert reports_route.call_count == 2


def test_concurrent_401s_cause_one_token_renewal(router: respx.Router, fake: FakeTime) -> None:
    issued: list[str] = []

    async def token(request: httpx.Request) -> httpx.Response:
        issued.append(f"tok-{len(issued) + 1}")
        await asyncio.sleep(0)
        return httpx.Response(200, json=token_json(issued[-1]))

    async def reports(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        if request.headers["Authorization"] == "Bearer tok-1":
            return httpx.Response(401, json=contract.error_body("invalid_token", "revoked"))
        return httpx.Response(200, json=listing_json(entry_json()))

    router.post(TOKEN_URL).mock(side_effect=token)
    router.get(REPORTS_URL).mock(side_effect=reports)

    async def many(ets: EtsClient) -> list[list[ReportEntry]]:
        return await asyncio.gather(*(ets.list_reports(SSID) for _ in range(12)))

    results = run(router, fake, many)

    assert issued == ["tok-1", "tok-2"]
    assert all(len(r) == 1 for r in results)


# --- Status mapping ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (400, contract.ERR_INVALID_SSID, BadRequestError),
        (400, contract.ERR_INVALID_PARAMETER, BadRequestError),
        (403, contract.ERR_NOT_ENROLLED, NotEnrolledError),
        (404, contract.ERR_STUDENT_NOT_FOUND, StudentNotFoundError),
    ],
)
def test_error_statuses_map_to_their_exception_without_retry(
    router: respx.Router, fake: FakeTime, status: int, code: str, error_class: type[EtsError]
) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).respond(status, json=contract.error_body(code, "no"))

    with pytest.raises(error_class) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID))

    assert type(caught.value) is error_class
    assert route.call_count == 1
    assert fake.sleeps == []


def test_bad_request_quotes_the_service_message(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    router.get(REPORTS_URL).respond(
        400, json=contract.error_body("invalid_parameter", "Unknown test code 'XYZ'.")
    )

    with pytest.raises(BadRequestError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID, test="XYZ"))

    assert caught.value.message.endswith(": Unknown test code 'XYZ'.")


def test_404_without_the_student_code_points_at_the_endpoints(
    router: respx.Router, fake: FakeTime
) -> None:
    mock_token(router)
    router.get(REPORTS_URL).respond(404, text="<html>No such route</html>")

    with pytest.raises(EtsError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID))

    assert not isinstance(caught.value, StudentNotFoundError)
    assert "endpoint" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "bad", ["123456789", "12345678901", "12345abcde", "１２３４５６７８９０", " 1234567890", ""]
)
def test_malformed_ssid_is_refused_before_any_request(
    router: respx.Router, fake: FakeTime, tmp_path: Path, bad: str
) -> None:
    token_route = mock_token(router)
    link_route = router.get(LINK).respond(200)

    with pytest.raises(BadInputError):
        run(router, fake, lambda ets: ets.list_reports(bad))
    with pytest.raises(BadInputError):
        run(router, fake, lambda ets: ets.download_report(bad, entry(), tmp_path / "r.pdf"))

    assert token_route.call_count == 0
    assert link_route.call_count == 0


def test_filters_become_query_parameters(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).respond(200, json=listing_json())

    run(router, fake, lambda ets: ets.list_reports(SSID, test="ELPAC", language="es", year=2023))

    assert dict(route.calls.last.request.url.params) == {
        "test": "ELPAC",
        "language": "es",
        "year": "2023",
    }


# --- Retries -------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_retryable_status_is_retried_then_succeeds(
    router: respx.Router, fake: FakeTime, status: int
) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).mock(
        side_effect=[
            httpx.Response(status, json=contract.error_body("server_error", "busy")),
            httpx.Response(200, json=listing_json(entry_json())),
        ]
    )

    reports = run(router, fake, lambda ets: ets.list_reports(SSID))

    assert len(reports) == 1
    assert route.call_count == 2
    assert fake.sleeps == [0.5]


def test_retry_after_in_seconds_is_honoured(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    router.get(REPORTS_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json=listing_json()),
        ]
    )

    run(router, fake, lambda ets: ets.list_reports(SSID))

    assert fake.sleeps == [7.0]


def test_retry_after_as_http_date_is_honoured(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    router.get(REPORTS_URL).mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": when}),
            httpx.Response(200, json=listing_json()),
        ]
    )

    run(router, fake, lambda ets: ets.list_reports(SSID))

    assert len(fake.sleeps) == 1
    assert 27.0 <= fake.sleeps[0] <= 30.0


def test_huge_retry_after_waits_the_cap(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    router.get(REPORTS_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "86400"}),
            httpx.Response(200, json=listing_json()),
        ]
    )

    run(router, fake, lambda ets: ets.list_reports(SSID))

    assert fake.sleeps == [120.0]


def test_backoff_doubles_up_to_its_cap(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).respond(503)
    policy = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=4.0)

    with pytest.raises(ServerError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID), retry=policy)

    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert route.call_count == 8
    assert caught.value.status == 503


def test_jitter_shortens_the_wait_by_at_most_its_share(
    router: respx.Router, fake: FakeTime
) -> None:
    mock_token(router)
    router.get(REPORTS_URL).respond(503)
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, jitter=0.25)

    with pytest.raises(ServerError):
        run(router, fake, lambda ets: ets.list_reports(SSID), retry=policy, rand=lambda: 1.0)

    assert fake.sleeps == [0.75, 1.5]


@pytest.mark.parametrize(
    ("response", "error_class"),
    [
        (httpx.Response(429), RateLimitedError),
        (httpx.Response(500), ServerError),
        (httpx.Response(504), ServerError),
        (httpx.Response(408), ServerError),
        (httpx.Response(200, text="<html>proxy login</html>"), ServerError),
        (httpx.ConnectError("[Errno 111] Connection refused"), ServiceConnectionError),
        (httpx.ReadTimeout("timed out"), ServiceConnectionError),
    ],
)
def test_giving_up_after_the_last_attempt_raises_the_cause(
    router: respx.Router, fake: FakeTime, response: Any, error_class: type[EtsError]
) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).mock(side_effect=lambda request: _raise_or(response))

    with pytest.raises(error_class) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID), retry=RetryPolicy(max_attempts=4))

    assert type(caught.value) is error_class
    assert route.call_count == 4
    assert len(fake.sleeps) == 3
    if isinstance(caught.value, RateLimitedError):
        assert caught.value.retry_after is None
    if isinstance(caught.value, ServerError):
        assert caught.value.status == getattr(response, "status_code", None)


def test_throttling_with_retry_after_spends_no_attempt(
    router: respx.Router, fake: FakeTime
) -> None:
    # Five 429s that say when to come back, then an answer: with two attempts allowed,
    # the pacing of the service is not a failure.
    mock_token(router)
    route = router.get(REPORTS_URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "5"})] * 5
        + [httpx.Response(200, json=listing_json(entry_json()))]
    )

    reports = run(
        router, fake, lambda ets: ets.list_reports(SSID), retry=RetryPolicy(max_attempts=2)
    )

    assert len(reports) == 1
    assert route.call_count == 6
    assert fake.sleeps == [5.0] * 5


def test_an_endless_429_storm_ends_at_the_throttle_wait_bound(
    router: respx.Router, fake: FakeTime
) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).respond(429, headers={"Retry-After": "5"})
    policy = RetryPolicy(max_attempts=2, max_throttle_wait=60.0)

    with pytest.raises(RateLimitedError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID), retry=policy)

    assert "for over 60 s" in caught.value.message
    assert route.call_count == 13  # 12 waits of 5 s fit in 60 s; the 13th would not
    assert sum(fake.sleeps) == 60.0


def _raise_or(response: Any) -> httpx.Response:
    if isinstance(response, Exception):
        raise response
    return httpx.Response(response.status_code, headers=response.headers, content=response.content)


def test_timeouts_and_connection_errors_are_retried(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).mock(
        side_effect=[
            httpx.ConnectTimeout("connect timed out"),
            httpx.ReadTimeout("read timed out"),
            httpx.ConnectError("[Errno 104] Connection reset by peer"),
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            httpx.Response(200, json=listing_json(entry_json())),
        ]
    )
    events: list[RetryEvent] = []

    reports = run(router, fake, lambda ets: ets.list_reports(SSID), on_retry=events.append)

    assert len(reports) == 1
    assert route.call_count == 5
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert [e.attempt for e in events] == [1, 2, 3, 4]
    assert all(isinstance(e.error, ServiceConnectionError) for e in events)


def test_unexpected_body_with_200_is_retried(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).mock(
        side_effect=[
            httpx.Response(200, text="<html>Please sign in to the proxy</html>"),
            httpx.Response(200, json={"ssid": SSID}),
            httpx.Response(200, json=listing_json(entry_json())),
        ]
    )

    reports = run(router, fake, lambda ets: ets.list_reports(SSID))

    assert len(reports) == 1
    assert route.call_count == 3


def test_tls_certificate_failure_is_not_retried(fake: FakeTime) -> None:
    attempts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        # A plain MockTransport: respx would replace the exception's cause with its own.
        attempts.append(request)
        cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
        cause.verify_message = "self-signed certificate in certificate chain"
        raise httpx.ConnectError(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
        ) from cause

    async def main() -> None:
        async with EtsClient(
            ENDPOINTS,
            Credentials(KEY, SECRET),
            transport=httpx.MockTransport(handler),
            sleep=fake.sleep,
        ) as ets:
            await ets.get_token()

    with pytest.raises(TLSError) as caught:
        asyncio.run(main())

    assert "self-signed certificate in certificate chain" in caught.value.message
    assert "SSL_CERT_FILE" in (caught.value.hint or "")
    assert len(attempts) == 1
    assert fake.sleeps == []


@pytest.fixture(scope="session")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_untrusted_certificate_of_a_real_server_raises_tls_error(
    self_signed_cert: tuple[Path, Path], fake: FakeTime
) -> None:
    cert, key = self_signed_cert
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)  # the refused handshake
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            async with EtsClient(
                Endpoints(f"https://127.0.0.1:{port}"),
                Credentials(KEY, SECRET),
                sleep=fake.sleep,
            ) as ets:
                await ets.get_token()
        finally:
            server.close()
            await server.wait_closed()

    with pytest.raises(TLSError) as caught:
        asyncio.run(main())

    assert "certificate" in caught.value.message
    assert fake.sleeps == []


def test_real_connection_dropped_mid_body_is_retried(
    fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    """Over a real socket: Content-Length promised, half sent, connection closed."""
    connections = 0

    async def main() -> DownloadResult:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.readuntil(b"\r\n\r\n")
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                f"Content-Length: {len(pdf_bytes)}\r\n\r\n"
            ).encode()
            body = pdf_bytes if connections > 1 else pdf_bytes[: len(pdf_bytes) // 2]
            writer.write(head + body)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        try:
            async with EtsClient(
                Endpoints(base), Credentials(KEY, SECRET), sleep=fake.sleep
            ) as ets:
                link = entry(f"{base}/ssr/5c1f.pdf?signature={SIGNATURE}")
                return await ets.download_report(SSID, link, tmp_path / "r.pdf")
        finally:
            server.close()
            await server.wait_closed()

    result = asyncio.run(main())

    assert connections == 2
    assert len(fake.sleeps) == 1
    assert (tmp_path / "r.pdf").read_bytes() == pdf_bytes
    assert result.size == len(pdf_bytes)
    assert folder_names(tmp_path) == ["r.pdf"]


# --- Payloads ------------------------------------------------------------------------------
def test_extra_fields_in_payloads_are_ignored(router: respx.Router, fake: FakeTime) -> None:
    router.post(TOKEN_URL).respond(200, json=token_json(scope="ssr", issued_at=12345))
    router.get(REPORTS_URL).respond(
        200,
        json={
            **listing_json(entry_json(status="final", report_id="r-1")),
            "lea": "0123456",
            "next": None,
        },
    )

    reports = run(router, fake, lambda ets: ets.list_reports(SSID))

    assert len(reports) == 1
    assert (reports[0].test, reports[0].year, reports[0].language) == ("CAASPP", 2024, "en")


def test_html_entries_are_returned_for_the_caller_to_skip(
    router: respx.Router, fake: FakeTime
) -> None:
    mock_token(router)
    html = entry_json("https://cdn.ets.test/ssr/math.html", format="html", language="es")
    router.get(REPORTS_URL).respond(200, json=listing_json(entry_json(), html))

    reports = run(router, fake, lambda ets: ets.list_reports(SSID))

    assert [r.is_pdf for r in reports] == [True, False]


def test_no_reports_is_an_empty_list(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    router.get(REPORTS_URL).respond(200, json=listing_json())

    assert run(router, fake, lambda ets: ets.list_reports(SSID, year=2019)) == []


def test_answer_for_another_student_is_refused(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    router.get(REPORTS_URL).respond(200, json=listing_json(entry_json(), ssid="9999999999"))

    with pytest.raises(EtsError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID))

    assert "different student" in caught.value.message


# --- Downloads -----------------------------------------------------------------------------
@pytest.mark.posix
def test_download_streams_a_chunked_pdf_to_an_owner_only_file(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    token_route = mock_token(router)
    link_route = router.get(LINK).mock(
        return_value=pdf_response(
            pdf_bytes, chunks=4, content_type="application/pdf; charset=binary"
        )
    )
    dest = tmp_path / "out" / "reports" / f"{SSID}_CAASPP_2024_en.pdf"

    result = run(router, fake, lambda ets: ets.download_report(SSID, entry(), dest))

    assert isinstance(result, DownloadResult)
    assert dest.read_bytes() == pdf_bytes
    assert result.path == dest
    assert result.size == len(pdf_bytes)
    assert result.sha256 == hashlib.sha256(pdf_bytes).hexdigest()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    assert folder_names(dest.parent) == [dest.name]
    request = link_route.calls.last.request
    assert "Authorization" not in request.headers
    assert request.headers["User-Agent"].startswith("caaspp/")
    assert "content-length" not in link_route.calls.last.response.headers
    assert token_route.call_count == 0


def test_download_accepts_octet_stream_and_whitespace_after_the_trailer(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    body = pdf_bytes + b"\r\n\n  \n"
    router.get(LINK).mock(return_value=pdf_response(body, content_type="application/octet-stream"))
    dest = tmp_path / "r.pdf"

    run(router, fake, lambda ets: ets.download_report(SSID, entry(), dest))

    assert dest.read_bytes() == body


def test_truncated_download_is_retried_then_fails_leaving_nothing(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    truncated = pdf_bytes[: len(pdf_bytes) * 2 // 3]
    route = router.get(LINK).mock(side_effect=lambda request: pdf_response(truncated))
    dest = tmp_path / "r.pdf"

    with pytest.raises(InvalidReportError) as caught:
        run(
            router,
            fake,
            lambda ets: ets.download_report(SSID, entry(), dest),
            retry=RetryPolicy(max_attempts=3),
        )

    assert "cut short" in caught.value.message
    assert route.call_count == 3
    assert fake.sleeps == [0.5, 1.0]
    assert folder_names(tmp_path) == []


def test_connection_dropped_mid_body_is_retried(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    route = router.get(LINK).mock(
        side_effect=[cut_off_response(pdf_bytes), pdf_response(pdf_bytes)]
    )
    dest = tmp_path / "r.pdf"

    result = run(router, fake, lambda ets: ets.download_report(SSID, entry(), dest))

    assert route.call_count == 2
    assert dest.read_bytes() == pdf_bytes
    assert result.sha256 == hashlib.sha256(pdf_bytes).hexdigest()
    assert folder_names(tmp_path) == ["r.pdf"]


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/pdf"])
def test_html_page_with_200_is_retried(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path, content_type: str
) -> None:
    page = b"<!DOCTYPE html><html><body>Session expired</body></html>"
    route = router.get(LINK).mock(
        side_effect=[
            httpx.Response(200, headers={"Content-Type": content_type}, content=page),
            pdf_response(pdf_bytes),
        ]
    )
    dest = tmp_path / "r.pdf"

    run(router, fake, lambda ets: ets.download_report(SSID, entry(), dest))

    assert route.call_count == 2
    assert dest.read_bytes() == pdf_bytes


def test_html_page_every_time_ends_in_invalid_report(
    router: respx.Router, fake: FakeTime, tmp_path: Path
) -> None:
    page = b"<html><body>Access denied by proxy</body></html>"
    router.get(LINK).respond(200, headers={"Content-Type": "application/pdf"}, content=page)
    dest = tmp_path / "r.pdf"

    with pytest.raises(InvalidReportError) as caught:
        run(
            router,
            fake,
            lambda ets: ets.download_report(SSID, entry(), dest),
            retry=RetryPolicy(max_attempts=2),
        )

    assert "HTML" in caught.value.message
    assert folder_names(tmp_path) == []


def test_body_that_only_looks_like_a_pdf_is_refused_by_pikepdf(
    router: respx.Router, fake: FakeTime, tmp_path: Path
) -> None:
    router.get(LINK).mock(side_effect=lambda request: pdf_response(b"%PDF-1.7\ngarbage\n%%EOF\n"))
    dest = tmp_path / "r.pdf"

    with pytest.raises(InvalidReportError):
        run(
            router,
            fake,
            lambda ets: ets.download_report(SSID, entry(), dest),
            retry=RetryPolicy(max_attempts=2),
        )

    assert folder_names(tmp_path) == []


def test_failed_download_leaves_an_existing_file_untouched(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    router.get(LINK).mock(side_effect=lambda request: pdf_response(pdf_bytes[:100]))
    dest = tmp_path / "r.pdf"
    dest.write_bytes(b"previous report")

    with pytest.raises(InvalidReportError):
        run(
            router,
            fake,
            lambda ets: ets.download_report(SSID, entry(), dest),
            retry=RetryPolicy(max_attempts=2),
        )

    assert dest.read_bytes() == b"previous report"
    assert folder_names(tmp_path) == ["r.pdf"]


def test_oversized_download_is_refused_without_retry(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    route = router.get(LINK).mock(side_effect=lambda request: pdf_response(pdf_bytes))

    with pytest.raises(InvalidReportError) as caught:
        run(
            router,
            fake,
            lambda ets: ets.download_report(SSID, entry(), tmp_path / "r.pdf"),
            max_report_bytes=100,
        )

    assert "exceeds 100 bytes" in caught.value.message
    assert route.call_count == 1
    assert folder_names(tmp_path) == []


def test_download_retries_a_503_then_saves(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    route = router.get(LINK).mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "3"}), pdf_response(pdf_bytes)]
    )
    dest = tmp_path / "r.pdf"

    run(router, fake, lambda ets: ets.download_report(SSID, entry(), dest))

    assert route.call_count == 2
    assert fake.sleeps == [3.0]
    assert dest.read_bytes() == pdf_bytes


def test_expired_link_is_refreshed_by_listing_again(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    mock_token(router)
    old_route = router.get(LINK).respond(403, text="<Error>Request has expired</Error>")
    other = entry_json("https://cdn.ets.test/ssr/other.pdf", language="es")
    list_route = router.get(REPORTS_URL).respond(
        200, json=listing_json(other, entry_json(FRESH_LINK))
    )
    fresh_route = router.get(FRESH_LINK).mock(return_value=pdf_response(pdf_bytes))
    dest = tmp_path / "r.pdf"

    result = run(
        router,
        fake,
        lambda ets: ets.download_report(SSID, entry(), dest, filters=("CAASPP", None, 2024)),
    )

    assert old_route.call_count == 1
    assert list_route.call_count == 1
    assert dict(list_route.calls.last.request.url.params) == {"test": "CAASPP", "year": "2024"}
    assert fresh_route.call_count == 1
    assert result.entry.url == FRESH_LINK
    assert dest.read_bytes() == pdf_bytes
    assert fake.sleeps == []


def test_link_refused_after_every_refresh_raises_link_expired(
    router: respx.Router, fake: FakeTime, tmp_path: Path
) -> None:
    mock_token(router)
    link_route = router.get(LINK).respond(403)
    list_route = router.get(REPORTS_URL).respond(200, json=listing_json(entry_json()))

    with pytest.raises(LinkExpiredError):
        run(
            router,
            fake,
            lambda ets: ets.download_report(SSID, entry(), tmp_path / "r.pdf"),
            max_link_refreshes=2,
        )

    assert list_route.call_count == 2
    assert link_route.call_count == 3
    assert folder_names(tmp_path) == []


def test_link_past_its_expiry_after_a_backoff_is_refreshed_before_the_retry(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    mock_token(router)
    old_route = router.get(LINK).respond(503)
    list_route = router.get(REPORTS_URL).respond(200, json=listing_json(entry_json(FRESH_LINK)))
    fresh_route = router.get(FRESH_LINK).mock(return_value=pdf_response(pdf_bytes))
    stale = entry(expires_at="2000-01-01T00:00:00Z")

    result = run(router, fake, lambda ets: ets.download_report(SSID, stale, tmp_path / "r.pdf"))

    # One failed attempt on the old link, then a fresh link instead of a certain 403.
    assert old_route.call_count == 1
    assert list_route.call_count == 1
    assert fresh_route.call_count == 1
    assert result.entry.url == FRESH_LINK
    assert len(fake.sleeps) == 1


def test_expired_link_of_a_report_no_longer_listed_raises_link_expired(
    router: respx.Router, fake: FakeTime, tmp_path: Path
) -> None:
    mock_token(router)
    router.get(LINK).respond(403)
    router.get(REPORTS_URL).respond(200, json=listing_json(entry_json(language="es")))

    with pytest.raises(LinkExpiredError) as caught:
        run(router, fake, lambda ets: ets.download_report(SSID, entry(), tmp_path / "r.pdf"))

    assert "no longer listed" in caught.value.message


def test_cancelled_download_leaves_no_files(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    async def main() -> None:
        started = asyncio.Event()
        never = asyncio.Event()

        async def stalling() -> AsyncIterator[bytes]:
            yield pdf_bytes[:200]
            started.set()
            await never.wait()
            yield pdf_bytes[200:]

        router.get(LINK).mock(
            return_value=httpx.Response(
                200, headers={"Content-Type": "application/pdf"}, content=stalling()
            )
        )
        async with make_client(router, fake) as ets:
            task = asyncio.create_task(ets.download_report(SSID, entry(), tmp_path / "r.pdf"))
            await asyncio.wait_for(started.wait(), timeout=5)
            names = folder_names(tmp_path)
            assert len(names) == 1 and is_temp_name(names[0])
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())

    assert folder_names(tmp_path) == []


def test_html_entry_is_not_downloaded(router: respx.Router, fake: FakeTime, tmp_path: Path) -> None:
    html = entry("https://cdn.ets.test/ssr/math.html", format="html")

    with pytest.raises(BadInputError):
        run(router, fake, lambda ets: ets.download_report(SSID, html, tmp_path / "r.pdf"))


def test_plain_http_download_link_is_refused(
    router: respx.Router, fake: FakeTime, tmp_path: Path
) -> None:
    route = router.get("http://cdn.ets.test/ssr/5c1f.pdf").respond(200)
    insecure = entry("http://cdn.ets.test/ssr/5c1f.pdf?signature=x")

    with pytest.raises(EtsError) as caught:
        run(router, fake, lambda ets: ets.download_report(SSID, insecure, tmp_path / "r.pdf"))

    assert "https://" in caught.value.message
    assert route.call_count == 0


def test_requests_in_flight_never_exceed_max_connections(
    router: respx.Router, fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    in_flight = 0
    peak = 0

    def counted(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)

        async def stream() -> AsyncIterator[bytes]:
            nonlocal in_flight
            try:
                for _ in range(3):
                    await asyncio.sleep(0)
                yield pdf_bytes
            finally:
                in_flight -= 1

        return httpx.Response(200, headers={"Content-Type": "application/pdf"}, content=stream())

    router.get(url__startswith="https://cdn.ets.test/").mock(side_effect=counted)

    async def many(ets: EtsClient) -> list[DownloadResult]:
        return await asyncio.gather(
            *(
                ets.download_report(
                    SSID, entry(f"https://cdn.ets.test/{i}.pdf?sig=x"), tmp_path / f"{i}.pdf"
                )
                for i in range(12)
            )
        )

    results = run(router, fake, many, max_connections=3)

    assert len(results) == 12
    # Never more than max_connections; the slow start (two at first) may keep it under.
    assert 2 <= peak <= 3
    assert len(folder_names(tmp_path)) == 12


# --- What reaches the logs -----------------------------------------------------------------
def test_debug_log_never_shows_secrets_tokens_or_link_signatures(
    router: respx.Router,
    fake: FakeTime,
    pdf_bytes: bytes,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    router.post(TOKEN_URL).respond(200, json=token_json("tok-SECRET-abc"))
    listing = listing_json(entry_json())
    router.get(REPORTS_URL).mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(200, json=listing),
            httpx.Response(200, json=listing),
        ]
    )
    router.get(LINK).mock(side_effect=[httpx.Response(403), pdf_response(pdf_bytes)])

    async def flow(ets: EtsClient) -> None:
        [report] = await ets.list_reports(SSID)
        await ets.download_report(SSID, report, tmp_path / "r.pdf")

    with caplog.at_level(logging.DEBUG):
        run(router, fake, flow)

    text = caplog.text
    assert "GET https://cdn.ets.test/ssr/5c1f.pdf -> 200" in text
    assert 'HTTP Request: GET https://cdn.ets.test/ssr/5c1f.pdf "HTTP/1.1 200 OK"' in text
    basic = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    for secret in (SIGNATURE, "expires=", "tok-SECRET-abc", KEY, SECRET, basic):
        assert secret not in text
    assert all(
        record.levelno == logging.DEBUG
        for record in caplog.records
        if record.name.startswith("caaspp_cli.ets")
    )


def test_report_entry_repr_hides_the_link() -> None:
    assert SIGNATURE not in repr(entry())
    assert SIGNATURE not in str(entry())
