"""The ETS client's downloads: streaming to owner-only files, checking the PDF, size limit."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import httpx
import pytest
import respx
from ets_fakes import (
    LINK,
    SSID,
    FakeTime,
    cut_off_response,
    entry,
    folder_names,
    mock_token,
    pdf_response,
    run,
)

from caaspp_cli.errors import (
    InvalidReportError,
)
from caaspp_cli.ets.download import DownloadResult
from caaspp_cli.retry import RetryPolicy


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
