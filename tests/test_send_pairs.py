"""A report that arrives after the family was reached goes in a new pair of messages; a
record hold sends nothing. Against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import csv
import os
import secrets
import sqlite3
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from helpers import (
    Family,
    SmtpServer,
    add_smtp_profile,
    outcomes,
    report_pdf,
    send_run,
    write_send_inputs,
)

from caaspp_cli.artifacts import SEND_LEDGER_NAME, PasswordSheet
from caaspp_cli.protect.policy import PERMISSIONS
from caaspp_cli.send.ledger import SendLedger

JOSE = Family("1000000001", "José", "Ñúñez", guardian="María Ñúñez", email="maria@example.org")
SAM = Family("1000000003", "Sam", "Lee", guardian="Pat Lee", email="pat@example.org")


run = send_run


def add_report(inputs: Any, family: Family, test: str) -> str:
    """A report protected later for a family, with the family's password (as protect does)."""
    name = f"{family.ssid}_{test}_2025_en.pdf"
    with report_pdf(f"Score report {name}") as pdf:
        pdf.save(
            inputs.pdfs / name,
            encryption=pikepdf.Encryption(
                owner=secrets.token_urlsafe(16), user=family.password, R=6, allow=PERMISSIONS
            ),
        )
    PasswordSheet(inputs.passwords).append(
        [{"ssid": family.ssid, "file": name, "password": family.password}]
    )
    return name


def attached(message: EmailMessage) -> list[str]:
    return [str(part.get_filename()) for part in message.iter_attachments()]


def mail_to(server: SmtpServer, address: str) -> list[EmailMessage]:
    return [r.message for r in server.received if address in r.rcpt_tos]


@pytest.fixture
def server(smtp_server: SmtpServer) -> SmtpServer:
    add_smtp_profile(smtp_server)
    return smtp_server


@pytest.fixture
def inputs(tmp_path: Path) -> Any:
    return write_send_inputs(tmp_path / "case", [JOSE, SAM])


def test_a_report_protected_after_the_family_was_reached_goes_in_a_new_pair(
    server: SmtpServer, inputs: Any
) -> None:
    first = run(inputs)
    assert outcomes(first) == {JOSE.ssid: "sent", SAM.ssid: "sent"}
    later = add_report(inputs, JOSE, "ELPAC")

    second = run(inputs)

    assert outcomes(second) == {JOSE.ssid: "sent", SAM.ssid: "already_sent"}
    jose = next(row for row in second.rows if row.ssid == JOSE.ssid)
    assert jose.files == (later,)
    assert "pair 2" in jose.detail
    report_1, password_1, report_2, password_2 = mail_to(server, JOSE.email)
    # By the mail server's own log: the first report once, the later one once, each with
    # its password after it; the password messages carry no file.
    assert attached(report_1) == JOSE.files()
    assert attached(report_2) == [later]
    assert attached(password_1) == attached(password_2) == []
    plain = password_2.get_body(("plain",))
    assert plain is not None and JOSE.password in str(plain.get_content())
    assert len(mail_to(server, SAM.email)) == 2

    third = run(inputs)
    assert outcomes(third) == {JOSE.ssid: "already_sent", SAM.ssid: "already_sent"}
    assert len(server.received) == 6
    with SendLedger.in_folder(inputs.pdfs) as ledger:
        delivered = {file for ssid, file, _ in ledger.delivered_files() if ssid == JOSE.ssid}
    assert delivered == {*JOSE.files(), later}


def test_reports_arriving_over_three_runs_reach_the_family_once_each(
    server: SmtpServer, inputs: Any
) -> None:
    run(inputs)
    names = [add_report(inputs, JOSE, "ELPAC")]
    run(inputs)
    names.append(add_report(inputs, JOSE, "CAST"))
    names.append(add_report(inputs, JOSE, "CAA"))
    run(inputs)
    run(inputs)

    reports = [m for m in mail_to(server, JOSE.email) if attached(m)]
    carried = [name for message in reports for name in attached(message)]
    assert sorted(carried) == sorted([*JOSE.files(), *names])  # each once
    assert [set(attached(m)) for m in reports] == [
        set(JOSE.files()),
        {names[0]},
        set(names[1:]),
    ]
    assert len(mail_to(server, JOSE.email)) == 6  # three pairs


def test_a_refused_password_of_the_second_pair_is_sent_alone_next_time(
    server: SmtpServer, inputs: Any
) -> None:
    run(inputs)
    later = add_report(inputs, JOSE, "ELPAC")
    # The report message of pair 2 goes; its password message is refused for good.
    accepted: list[int] = []

    def refuse_password(message: Any) -> None:
        accepted.append(1)
        if len(accepted) == 1:
            server.handler.data_replies.append("550 5.7.1 policy")

    server.handler.after_accepting = refuse_password
    second = run(inputs)
    server.handler.after_accepting = None
    assert outcomes(second)[JOSE.ssid] == "refused"

    third = run(inputs)

    assert outcomes(third)[JOSE.ssid] == "sent"
    messages = mail_to(server, JOSE.email)
    assert [attached(m) for m in messages] == [JOSE.files(), [], [later], []]


def test_a_kill_between_the_second_pairs_messages_sends_the_password_once(
    server: SmtpServer, inputs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(inputs)
    later = add_report(inputs, JOSE, "ELPAC")

    class Killed(BaseException):
        pass

    original = SendLedger.mark_sending

    def killed_before_password(self: SendLedger, ssid: str, kind: str, *a: Any, **k: Any) -> None:
        if kind == "password":
            raise Killed
        original(self, ssid, kind, *a, **k)

    monkeypatch.setattr(SendLedger, "mark_sending", killed_before_password)
    with pytest.raises(Killed):
        run(inputs)
    monkeypatch.setattr(SendLedger, "mark_sending", original)

    again = run(inputs)

    assert outcomes(again)[JOSE.ssid] == "sent"
    messages = mail_to(server, JOSE.email)
    assert [attached(m) for m in messages] == [JOSE.files(), [], [later], []]
    assert outcomes(run(inputs))[JOSE.ssid] == "already_sent"
    assert len(mail_to(server, JOSE.email)) == 4


def test_a_dry_run_writes_only_the_new_pair(
    server: SmtpServer, inputs: Any, tmp_path: Path
) -> None:
    run(inputs)
    later = add_report(inputs, JOSE, "ELPAC")

    summary = run(inputs, dry_run=True, outbox=tmp_path / "outbox")

    assert outcomes(summary) == {JOSE.ssid: "would_send", SAM.ssid: "already_sent"}
    written = sorted(p.name for p in (tmp_path / "outbox").glob("*.eml"))
    assert len(written) == 2 and all(JOSE.ssid in name for name in written)
    report = next(p for p in (tmp_path / "outbox").glob("*_report.eml"))
    assert later.encode() in report.read_bytes()
    assert JOSE.files()[0].encode() not in report.read_bytes()


# --- A ledger written before pairs were recorded ------------------------------------------
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL,
    finished REAL, outcome TEXT NOT NULL DEFAULT 'running');
CREATE TABLE messages (ssid TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    message_id TEXT NOT NULL, recipients TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '',
    run INTEGER NOT NULL DEFAULT 0, started REAL, accepted REAL, updated REAL NOT NULL,
    PRIMARY KEY (ssid, kind));
INSERT INTO meta VALUES ('version', '1');
"""


def test_a_schema_1_ledger_is_migrated_and_only_reports_newer_than_its_pair_go(
    server: SmtpServer, inputs: Any
) -> None:
    accepted_at = time.time() - 3600
    db = sqlite3.connect(inputs.pdfs / SEND_LEDGER_NAME)
    db.executescript(V1_SCHEMA)
    for family in (JOSE, SAM):
        for kind in ("report", "password"):
            db.execute(
                "INSERT INTO messages VALUES (?, ?, 'accepted', ?, ?, 1, '', 1, ?, ?, ?)",
                (
                    family.ssid,
                    kind,
                    f"<{family.ssid}.{kind}@x>",
                    family.email,
                    accepted_at,
                    accepted_at,
                    accepted_at,
                ),
            )
    db.commit()
    db.close()
    for name in (*JOSE.files(), *SAM.files()):  # protected before the pair went
        os.utime(inputs.pdfs / name, (accepted_at - 60, accepted_at - 60))
    later = add_report(inputs, JOSE, "ELPAC")  # protected now, after it

    summary = run(inputs)

    assert outcomes(summary) == {JOSE.ssid: "sent", SAM.ssid: "already_sent"}
    assert [attached(r.message) for r in server.received[0:1]] == [[later]]
    assert len(server.received) == 2
    with SendLedger.in_folder(inputs.pdfs) as ledger:
        pairs = ledger.pairs(JOSE.ssid)
    assert [pair.number for pair in pairs] == [1, 2]
    assert pairs[0].files == () and pairs[1].files == (later,)


# --- Record holds --------------------------------------------------------------------------
def rewrite_roster(inputs: Any, header: str, values: dict[str, str]) -> None:
    rows = list(csv.reader(inputs.roster.open(encoding="utf-8")))
    rows[0].append(header)
    for row in rows[1:]:
        row.append(values.get(row[0], ""))
    with inputs.roster.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


@pytest.mark.parametrize("header", ["Do Not Release", "Records Release Hold", "Release Hold"])
@pytest.mark.parametrize("value", ["Y", "yes", "X", "1", "TRUE"])
def test_a_held_student_is_sent_nothing(
    server: SmtpServer, inputs: Any, header: str, value: str
) -> None:
    rewrite_roster(inputs, header, {JOSE.ssid: value, SAM.ssid: "N"})

    summary = run(inputs)

    assert outcomes(summary) == {JOSE.ssid: "held", SAM.ssid: "sent"}
    assert mail_to(server, JOSE.email) == []
    assert summary.problems == []  # a hold is a decision, not a failure


def test_a_hold_value_that_is_neither_yes_nor_no_holds_and_says_so(
    server: SmtpServer, inputs: Any
) -> None:
    rewrite_roster(inputs, "Hold Status", {JOSE.ssid: "pending review"})

    summary = run(inputs, hold_column="Hold Status")

    jose = next(row for row in summary.rows if row.ssid == JOSE.ssid)
    assert jose.outcome.value == "held"
    assert "pending review" in jose.detail and "read as held" in jose.detail
    assert mail_to(server, JOSE.email) == []


def test_a_hold_placed_after_the_report_went_keeps_the_password_back(
    server: SmtpServer, inputs: Any
) -> None:
    def refuse_passwords(message: Any) -> None:
        server.handler.data_replies.append("451 4.3.0 try later")

    server.handler.after_accepting = refuse_passwords
    first = run(inputs, retry_delays=())
    server.handler.after_accepting = None
    server.handler.data_replies = []
    assert outcomes(first)[JOSE.ssid] == "failed"  # the report went, the password did not
    rewrite_roster(inputs, "Do Not Release", {JOSE.ssid: "Y"})

    second = run(inputs)

    assert outcomes(second)[JOSE.ssid] == "held"
    assert [attached(m) for m in mail_to(server, JOSE.email)] == [JOSE.files()]
