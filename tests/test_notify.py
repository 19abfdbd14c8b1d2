"""The staff summary: counts only, through the district's mail profile, to a real SMTP server."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SmtpServer, add_smtp_profile, assert_owner_only

from caaspp_cli.errors import BadInputError, MailError
from caaspp_cli.send.notify import notify_staff, staff_message

LINES = [("fetch: reports new", 12), ("send: messages sent", 24), ("follow-up: no email", 3)]


@pytest.fixture
def server(smtp_server: SmtpServer) -> SmtpServer:
    add_smtp_profile(smtp_server)
    return smtp_server


def test_staff_get_one_plain_message_of_counts(server: SmtpServer) -> None:
    notify_staff(
        "district", ["staff@example.org", "lead@example.org"], "caaspp deliver: done", LINES
    )

    (received,) = server.received
    assert set(received.rcpt_tos) == {"staff@example.org", "lead@example.org"}
    message = received.message
    assert message["Subject"] == "caaspp deliver: done"
    body = str(message.get_content())
    assert "fetch: reports new" in body and "12" in body and "follow-up: no email" in body
    assert not list(message.iter_attachments())


def test_a_recipient_the_server_refuses_is_an_error_saying_who(server: SmtpServer) -> None:
    server.handler.refuse["gone@example.org"] = "550 5.1.1 no such user"
    with pytest.raises(MailError, match=r"gone@example\.org"):
        notify_staff("district", ["staff@example.org", "gone@example.org"], "summary", LINES)


def test_a_bad_address_is_refused_before_anything(server: SmtpServer) -> None:
    with pytest.raises(BadInputError, match="not an email address"):
        notify_staff("district", ["staff at district"], "summary", LINES)
    assert server.received == []


@pytest.mark.parametrize(
    "lines", [[("1234567890", 1)], [("family maria@example.org", 1)], [("reports", "12")]]
)
def test_it_cannot_carry_an_ssid_an_address_or_anything_but_numbers(
    lines: list[tuple[str, object]],
) -> None:
    with pytest.raises(ValueError, match="labels and numbers"):
        staff_message("reports@example.org", ["staff@example.org"], "summary", lines)  # type: ignore[arg-type]


def test_a_dry_run_writes_it_to_the_outbox(server: SmtpServer, tmp_path: Path) -> None:
    notify_staff("district", ["staff@example.org"], "summary", LINES, outbox=tmp_path / "outbox")
    assert server.received == []
    written = tmp_path / "outbox" / "staff-summary.eml"
    assert written.is_file()
    assert_owner_only(written)
