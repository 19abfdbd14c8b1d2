"""The ETS client's download links: expiry and refresh, cancellation, refused links, and the
limit on connections in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx
from ets_fakes import (
    FRESH_LINK,
    LINK,
    REPORTS_URL,
    SSID,
    FakeTime,
    entry,
    entry_json,
    folder_names,
    listing_json,
    make_client,
    mock_token,
    pdf_response,
    run,
)

from caaspp_cli.errors import (
    BadInputError,
    EtsError,
    LinkExpiredError,
)
from caaspp_cli.ets.client import EtsClient
from caaspp_cli.ets.download import DownloadResult
from caaspp_cli.fsutil import is_temp_name


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
