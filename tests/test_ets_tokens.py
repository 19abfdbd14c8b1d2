"""The ETS client's token: request, caching, renewal, refusal, and 401s on data calls."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from ets_fakes import (
    KEY,
    LINK,
    REPORTS_URL,
    SECRET,
    SSID,
    TOKEN_URL,
    FakeTime,
    entry_json,
    listing_json,
    mock_token,
    run,
    token_json,
)

from caaspp_cli import __version__
from caaspp_cli.errors import (
    AuthenticationError,
    EtsError,
)
from caaspp_cli.ets import contract
from caaspp_cli.ets.client import EtsClient, TokenInfo
from caaspp_cli.ets.contract import ReportEntry


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
