"""The provider's limits: a daily sending limit, and throttling that slows the run."""

from __future__ import annotations

import time as real_time
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeTime, Family, SmtpServer, add_smtp_profile, send_run, write_send_inputs

from caaspp_cli.errors import ExitCode
from caaspp_cli.send.quota import DAY, DailyLimit, Throttled, documented_limit, throttle_wait
from caaspp_cli.send.transport import SmtpRefusal

FAMILIES = [
    Family("1000000001", "Ana", "Ruiz", email="ana@example.org"),
    Family("1000000002", "Ben", "Cho", email="ben@example.org"),
    Family("1000000003", "Cy", "Diaz", email="cy@example.org"),
]


@pytest.fixture
def server(smtp_server: SmtpServer) -> SmtpServer:
    add_smtp_profile(smtp_server)
    return smtp_server


send = send_run


def outcomes(summary: Any) -> list[str]:
    return [row.outcome.value for row in summary.rows]


# --- Daily limit ---------------------------------------------------------------------------
def test_documented_limits() -> None:
    assert documented_limit("microsoft") == DailyLimit(10_000, "recipients")
    assert documented_limit("Google") == DailyLimit(2_000, "messages")
    assert documented_limit(None) is None and documented_limit("smtp") is None


def test_a_daily_limit_stops_before_a_family_it_cannot_fit_and_the_next_day_goes_on(
    server: SmtpServer, tmp_path: Path
) -> None:
    inputs = write_send_inputs(tmp_path / "case", FAMILIES)
    first = send(inputs, daily_limit=DailyLimit(4))
    assert outcomes(first) == ["sent", "sent", "daily_limit"]
    assert len(server.received) == 4
    assert "1 family remains" in first.daily_limit_note
    assert "run the same command again after" in first.daily_limit_note
    assert "daily limit" in first.rows[2].detail
    # The same day, nothing more goes.
    again = send(inputs, daily_limit=DailyLimit(4))
    assert outcomes(again) == ["already_sent", "already_sent", "daily_limit"]
    assert len(server.received) == 4
    # The next day, the last family gets both its messages.
    tomorrow = send(inputs, daily_limit=DailyLimit(4), wall_clock=lambda: real_time.time() + DAY)
    assert outcomes(tomorrow) == ["already_sent", "already_sent", "sent"]
    assert len(server.received) == 6
    assert tomorrow.daily_limit_note == ""


def test_a_familys_pair_is_never_split_across_the_limit(server: SmtpServer, tmp_path: Path) -> None:
    inputs = write_send_inputs(tmp_path / "case", FAMILIES)
    summary = send(inputs, daily_limit=DailyLimit(3))
    assert outcomes(summary) == ["sent", "daily_limit", "daily_limit"]
    assert len(server.received) == 2
    assert "2 families remain" in summary.daily_limit_note


def test_a_limit_in_recipients_counts_each_address(server: SmtpServer, tmp_path: Path) -> None:
    families = [Family("1000000004", "Di", "Oh", email="a@example.org; b@example.org")]
    inputs = write_send_inputs(tmp_path / "case", [*families, FAMILIES[0]])
    summary = send(inputs, daily_limit=DailyLimit(5, "recipients"))
    assert outcomes(summary) == ["sent", "daily_limit"]  # 4 used, 2 more would be 6


def test_the_cli_daily_limit_exits_3_with_the_line(
    server: SmtpServer, tmp_path: Path, cli: Any
) -> None:
    inputs = write_send_inputs(tmp_path / "case", FAMILIES)
    result = cli(*inputs.args(), "--daily-limit", "4")
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "1 family remains to send; run the same command again after" in result.stderr
    assert len(server.received) == 4


# --- Throttling ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reply",
    [
        "452 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
        "451 4.7.0 Temporary server error: message throttled",
        "421 4.7.0 Try again later, closing connection",
        "450 4.7.28 Our system has detected an unusual rate of unsolicited mail",
    ],
)
def test_smtp_throttling_waits_and_slows_without_spending_attempts(
    server: SmtpServer, tmp_path: Path, reply: str
) -> None:
    inputs = write_send_inputs(tmp_path / "case", FAMILIES[:1])
    server.handler.data_replies = [reply] * 5  # more than the row's attempts
    time = FakeTime()
    summary = send(inputs, time, rate=60, retry_delays=(1.0,))
    assert outcomes(summary) == ["sent"]
    assert len(server.received) == 2
    # Five waits, growing; then the password message waits for the lowered rate (60 a
    # minute halved five times: one message every 32 s).
    assert [s for s in time.sleeps if s >= 30] == [30.0, 60.0, 120.0, 240.0, 480.0, 32.0]


def test_other_temporary_refusals_still_fail_after_the_retries(
    server: SmtpServer, tmp_path: Path
) -> None:
    inputs = write_send_inputs(tmp_path / "case", FAMILIES[:1])
    server.handler.data_replies = ["451 4.3.0 Try again later"] * 2
    summary = send(inputs, retry_delays=(1.0,))
    assert outcomes(summary) == ["failed"]


def test_throttle_wait() -> None:
    assert throttle_wait(Throttled(451, "429", "Graph", 7.0), 0) == 7.0
    assert throttle_wait(Throttled(451, "429", "Graph", 99_999.0), 0) == 900.0
    assert throttle_wait(Throttled(451, "429", "Graph", None), 2) == 120.0
    assert throttle_wait(SmtpRefusal(451, "4.3.0 Try again later", "DATA"), 0) is None
    assert throttle_wait(SmtpRefusal(550, "throttled", "DATA"), 0) is None
