"""Bad input: mail templates with errors, and mail servers that hang up.

See tests/bad_input_checks.py for what each refusal must look like.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bad_input_checks import (
    ANA,
    BAD,
    BO,
    MisbehavingServer,
    bad_input,
    error_line,
)
from helpers import SmtpServer, add_smtp_profile, write_send_inputs

# --- Templates with errors ---------------------------------------------------------------------
TEMPLATES = {
    "unknown_placeholder": ("unknown placeholder {parent_name}", "report.txt"),
    "brace_never_closed": ("unmatched '{'", "report.txt"),
    "lone_closing_brace": ("Single '}'", "report.txt"),
    "format_spec": ("unknown placeholder {guardian_name:>20}", "report.txt"),
    "indexed_placeholder": ("unknown placeholder {student_name[0]}", "report.subject.txt"),
    "positional_placeholder": ("unknown placeholder {}", "report.subject.txt"),
    "password_file_missing": ("lack password.txt", "en"),
    "subject_file_missing": ("lack report.subject.txt", "en"),
    "windows_1252_text": ("is not UTF-8 text", "report.txt"),
    "utf16_with_bom": ("is not UTF-8 text", "report.txt"),
    "utf16_without_bom": ("control characters", "report.txt"),
    "password_in_report_body": ("{password} may appear only in the body", "report.txt"),
    "password_in_subject": ("{password} may appear only in the body", "password.subject.txt"),
    "password_body_without_password": ("has no {password}", "password.txt"),
    "subject_on_two_lines": ("a subject must be one line", "report.subject.txt"),
    "misspelled_file_name": ("is not a template caaspp knows", "reports.txt"),
    "html_brace_never_closed": ("expected '}' before end of string", "report.html"),
    "folder_not_a_language": ("is not named after a language", "english-US"),
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template(cli: Any, smtp_server: SmtpServer, tmp_path: Path, name: str) -> None:
    add_smtp_profile(smtp_server)
    inputs = write_send_inputs(tmp_path / "case", [ANA])
    words, where = TEMPLATES[name]
    for extra in ((), ("--dry-run", "--outbox", str(tmp_path / "outbox"))):
        result = cli(*inputs.args(), "--templates", str(BAD / "templates" / name), *extra)
        bad_input(result, words, where)
        assert ANA.password not in result.output
    assert smtp_server.handler.sessions == 0
    assert not (tmp_path / "outbox").exists()
    assert not (inputs.pdfs / "send-report.csv").exists()


def test_template_folders_that_are_missing_empty_or_a_file(
    cli: Any, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    add_smtp_profile(smtp_server)
    inputs = write_send_inputs(tmp_path / "case", [ANA])
    (tmp_path / "empty").mkdir()
    bad_input(cli(*inputs.args(), "--templates", str(tmp_path / "nowhere")), "does not exist")
    bad_input(cli(*inputs.args(), "--templates", str(tmp_path / "empty")), "has no language folder")
    bad_input(cli(*inputs.args(), "--templates", str(inputs.roster)), "--templates")
    assert smtp_server.handler.sessions == 0


# --- Mail servers that hang up -----------------------------------------------------------------
def _read_line(conn: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            raise OSError("closed")
        line += byte
    return line


def _up_to_data(conn: socket.socket) -> bool:
    """Play a plain SMTP server up to its 354 answer to DATA; False at QUIT."""
    conn.sendall(b"220 mail.example.org ESMTP\r\n")
    while True:
        command = _read_line(conn)[:4].upper()
        if command in (b"EHLO", b"HELO"):
            conn.sendall(b"250-mail.example.org\r\n250 8BITMIME\r\n")
        elif command == b"DATA":
            conn.sendall(b"354 end with <CRLF>.<CRLF>\r\n")
            return True
        elif command == b"QUIT":
            conn.sendall(b"221 bye\r\n")
            return False
        else:
            conn.sendall(b"250 OK\r\n")


def _body(conn: socket.socket) -> None:
    data = b""
    while not data.endswith(b"\r\n.\r\n"):
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk


def _accepts_then_closes(server: MisbehavingServer, conn: socket.socket) -> None:
    pass


def _never_answers(server: MisbehavingServer, conn: socket.socket) -> None:
    server.wait()


def _greets_with_421(server: MisbehavingServer, conn: socket.socket) -> None:
    conn.sendall(b"421 4.3.2 Service not available\r\n")


def _is_a_web_server(server: MisbehavingServer, conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def _closes_in_the_middle_of_data(server: MisbehavingServer, conn: socket.socket) -> None:
    if _up_to_data(conn):
        conn.recv(100)  # the first bytes of the body, then the line goes dead


def _never_answers_the_body(server: MisbehavingServer, conn: socket.socket) -> None:
    if _up_to_data(conn):
        _body(conn)
        server.wait()


SERVERS: dict[str, tuple[Callable[[MisbehavingServer, socket.socket], None], str, str]] = {
    # behaviour; what `config smtp-test` says ("" when it passes); the rows' outcome.
    # A body sent in full and never answered may have been accepted: "uncertain", not sent
    # again unless asked. caaspp cannot tell a line cut mid-body from one cut after it.
    "accepts_then_closes": (_accepts_then_closes, "Connection unexpectedly closed", "stopped"),
    "never_answers": (_never_answers, "timed out", "stopped"),
    "greets_with_421": (_greets_with_421, "421 4.3.2 Service not available", "stopped"),
    "is_a_web_server": (_is_a_web_server, "does not answer as a mail server", "stopped"),
    "closes_in_the_middle_of_data": (_closes_in_the_middle_of_data, "", "uncertain"),
    "never_answers_the_body": (_never_answers_the_body, "", "uncertain"),
}


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_mail_server_that_hangs_up(
    cli: Any, quick_mail: None, smtp_server: SmtpServer, tmp_path: Path, name: str
) -> None:
    behaviour, checked, outcome = SERVERS[name]
    bad = MisbehavingServer(lambda conn: behaviour(bad, conn))
    try:
        add_smtp_profile(bad)
        inputs = write_send_inputs(tmp_path / "case", [ANA, BO])

        check = cli("config", "smtp-test", "district")
        if checked:
            assert check.exit_code == 3, check.output
            assert checked in error_line(check)
        else:
            assert check.exit_code == 0, check.output

        started = time.monotonic()
        result = cli(*inputs.args())
        assert time.monotonic() - started < 20
        assert result.exit_code == 3, result.output
        if outcome == "stopped":
            error = error_line(result, only=False)
            assert "could not be used" in error or "does not answer as a mail server" in error
        else:  # rows left for a person: a notice, not an error
            assert "error:" not in result.stderr and "need a person" in result.stderr
        report = inputs.pdfs / "send-report.csv"
        rows = list(csv.DictReader(io.StringIO(report.read_text("utf-8-sig"))))
        assert [row["outcome"] for row in rows] == [outcome, outcome]
    finally:
        bad.close()

    # The good server again: what may have been accepted is not sent twice, the rest goes.
    add_smtp_profile(smtp_server)
    again = cli(*inputs.args(), "--json")
    summary = json.loads(again.stdout)
    if outcome == "stopped":
        assert again.exit_code == 0, again.output
        assert summary["messages_sent"] == 4 and len(smtp_server.received) == 4
    else:
        assert again.exit_code == 3
        assert summary["counts"]["uncertain"] == 2 and smtp_server.received == []
        resent = cli(*inputs.args(), "--resend-uncertain")
        assert resent.exit_code == 0, resent.output
        assert len(smtp_server.received) == 4
