"""The ETS client's base URL checks, URL redaction, retry settings and what reaches its logs."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import respx
from ets_fakes import (
    KEY,
    LINK,
    REPORTS_URL,
    SECRET,
    SIGNATURE,
    SSID,
    TOKEN_URL,
    FakeTime,
    entry,
    entry_json,
    listing_json,
    pdf_response,
    run,
    token_json,
)

from caaspp_cli.config.credentials import Credentials
from caaspp_cli.errors import (
    BadInputError,
)
from caaspp_cli.ets.client import Endpoints, EtsClient
from caaspp_cli.ets.urls import check_base_url, redact_url
from caaspp_cli.retry import RetryPolicy, parse_retry_after


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
