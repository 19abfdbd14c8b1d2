"""The ETS client's retries against a mocked service: statuses, Retry-After, backoff, throttling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from ets_fakes import (
    REPORTS_URL,
    SSID,
    FakeTime,
    entry_json,
    listing_json,
    mock_token,
    run,
)

from caaspp_cli.errors import (
    EtsError,
    RateLimitedError,
    ServerError,
    ServiceConnectionError,
)
from caaspp_cli.ets import contract
from caaspp_cli.ets.session import RetryEvent
from caaspp_cli.retry import RetryPolicy


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
