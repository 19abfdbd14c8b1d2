"""A report that arrives after the family was reached goes in a new pair of messages; a
record hold sends nothing. Against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import csv
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from helpers import (
    Family,
    Runs,
    SmtpRecorder,
    SmtpServer,
    add_smtp_profile,
    free_port,
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


@pytest.mark.parametrize(
    "header",
    ["Do Not Release", "Records Release Hold", "Release Hold", "Record Hold", "Hold", "Withhold"],
)
@pytest.mark.parametrize("value", ["Y", "yes", "X", "1", "TRUE", "Hold", "held"])
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


@pytest.mark.parametrize("value", ["", "N", "no", "False", "0", "none"])
def test_a_hold_cell_that_says_no_sends_as_usual(
    server: SmtpServer, inputs: Any, value: str
) -> None:
    rewrite_roster(inputs, "Do Not Release", {JOSE.ssid: value, SAM.ssid: value})

    assert outcomes(run(inputs)) == {JOSE.ssid: "sent", SAM.ssid: "sent"}


def test_held_rows_are_counted_apart_and_the_cli_takes_a_hold_column(
    server: SmtpServer, inputs: Any, cli: Any
) -> None:
    rewrite_roster(inputs, "Privacy Flag", {JOSE.ssid: "Y"})

    result = cli(*inputs.args(), "--hold-column", "Privacy Flag", "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["held"] == 1 and summary["counts"]["sent"] == 1
    assert mail_to(server, JOSE.email) == []


# --- What a later pair says, and what the send report says of it ---------------------------
def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return f"{message['Subject']}\n{body.get_content()}"


def test_a_later_pairs_report_message_says_another_report_is_now_available(
    server: SmtpServer, tmp_path: Path
) -> None:
    rosa = Family(
        "1000000005", "Rosa", "Díaz", guardian="Ana Díaz", email="ana@example.org", language="es"
    )
    inputs = write_send_inputs(tmp_path / "case", [JOSE, rosa])
    run(inputs)
    add_report(inputs, JOSE, "ELPAC")
    add_report(inputs, rosa, "ELPAC")
    add_report(inputs, rosa, "CAST")

    run(inputs)

    first, _, later, _ = mail_to(server, JOSE.email)
    assert "now available" not in text_of(first)
    assert "Another of José's Student Score Reports is now available" in text_of(later)
    assert str(later["Subject"]).startswith("New Student Score Report for")
    primero, _, despues, _ = mail_to(server, rosa.email)
    assert "disponible" not in text_of(primero)
    assert "Ya están disponibles 2 Informes de Calificaciones" in text_of(despues)
    assert str(despues["Subject"]).startswith("Nuevos Informes de Calificaciones")


def test_the_send_report_tells_this_runs_reports_from_earlier_ones(
    server: SmtpServer, inputs: Any
) -> None:
    first = {r["ssid"]: r for r in report_rows(inputs, run(inputs))}
    assert (first[JOSE.ssid]["pair"], first[JOSE.ssid]["earlier_reports"]) == ("1", "0")
    add_report(inputs, JOSE, "ELPAC")

    second = {r["ssid"]: r for r in report_rows(inputs, run(inputs))}

    jose, sam = second[JOSE.ssid], second[SAM.ssid]
    assert (jose["outcome"], jose["pair"], jose["reports"]) == ("sent", "2", "1")
    assert jose["earlier_reports"] == str(len(JOSE.files()))
    assert (sam["outcome"], sam["pair"], sam["reports"]) == ("already_sent", "1", "1")
    assert sam["earlier_reports"] == "1"


def report_rows(inputs: Any, summary: Any) -> list[dict[str, str]]:
    with summary.report.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_migrated_pair_whose_password_never_went_is_finished_first(
    server: SmtpServer, inputs: Any
) -> None:
    accepted_at = time.time() - 3600
    db = sqlite3.connect(inputs.pdfs / SEND_LEDGER_NAME)
    db.executescript(V1_SCHEMA)
    db.execute(
        "INSERT INTO messages VALUES (?, 'report', 'accepted', '<r@x>', ?, 1, '', 1, ?, ?, ?)",
        (JOSE.ssid, JOSE.email, accepted_at, accepted_at, accepted_at),
    )
    db.execute(
        "INSERT INTO messages VALUES (?, 'password', 'failed', '<p@x>', ?, 1, '', 1, ?, NULL, ?)",
        (JOSE.ssid, JOSE.email, accepted_at, accepted_at),
    )
    db.commit()
    db.close()
    for name in JOSE.files():
        os.utime(inputs.pdfs / name, (accepted_at - 60, accepted_at - 60))
    later = add_report(inputs, JOSE, "ELPAC")

    second = run(inputs)

    # The password of the pair that went (its own Message-ID kept, naming only the report
    # it carried), then the later report in a pair of its own.
    jose = next(row for row in second.rows if row.ssid == JOSE.ssid)
    assert (jose.outcome.value, jose.files, jose.pair) == ("sent", (later,), 2)
    assert "the password of pair 1 was sent first" in jose.detail
    messages = mail_to(server, JOSE.email)
    assert [attached(m) for m in messages] == [[], [later], []]
    assert str(messages[0]["Message-ID"]) == "<p@x>"
    assert "Student Score Report as a protected" in text_of(messages[0])  # one report
    assert outcomes(run(inputs))[JOSE.ssid] == "already_sent"
    assert len(mail_to(server, JOSE.email)) == 3


def test_an_unfinished_later_pair_is_finished_then_a_newer_report_gets_its_own(
    server: SmtpServer, inputs: Any
) -> None:
    run(inputs)
    second = add_report(inputs, JOSE, "ELPAC")
    refused: list[int] = []

    def refuse_password(message: Any) -> None:
        refused.append(1)
        if len(refused) == 1:
            server.handler.data_replies.append("550 5.7.1 policy")

    server.handler.after_accepting = refuse_password
    assert outcomes(run(inputs))[JOSE.ssid] == "refused"
    server.handler.after_accepting = None
    third = add_report(inputs, JOSE, "CAST")

    summary = run(inputs)

    assert outcomes(summary)[JOSE.ssid] == "sent"
    assert [attached(m) for m in mail_to(server, JOSE.email)] == [
        JOSE.files(),
        [],
        [second],
        [],
        [third],
        [],
    ]
    rows = {r["ssid"]: r for r in report_rows(inputs, summary)}
    assert (rows[JOSE.ssid]["pair"], rows[JOSE.ssid]["earlier_reports"]) == ("3", "2")
    assert outcomes(run(inputs))[JOSE.ssid] == "already_sent"


# --- kill -9 between the two messages of a later pair -------------------------------------
class KillingRecorder(SmtpRecorder):
    """A mail server that runs ``at_rcpt`` once, when the ``rcpt``-th RCPT from now comes
    (the sender is then killed before that message's body has started)."""

    def __init__(self) -> None:
        super().__init__()
        self.at_rcpt: Callable[[], None] | None = None
        self.rcpt = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        self.rcpt -= 1
        if self.rcpt == 0 and self.at_rcpt is not None:
            hook, self.at_rcpt = self.at_rcpt, None
            hook()
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def killing_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller

    handler = KillingRecorder()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    smtp = SmtpServer(handler, "127.0.0.1", controller.port)
    add_smtp_profile(smtp)
    yield smtp
    controller.stop()


@pytest.mark.posix
@pytest.mark.parametrize("moment", ["before_the_password", "password_unanswered"])
def test_a_kill_9_between_a_later_pairs_messages_never_sends_its_password_twice(
    killing_server: SmtpServer, inputs: Any, tmp_path: Path, moment: str
) -> None:
    server = killing_server
    handler = server.handler
    assert isinstance(handler, KillingRecorder)
    run(inputs)
    later = add_report(inputs, JOSE, "ELPAC")
    runs = Runs(tmp_path, seed=1, progress=lambda: handler.bodies)
    process = runs.start(*inputs.args())

    def kill(*_: Any, process: subprocess.Popen[bytes] = process) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    if moment == "before_the_password":
        # Killed as the password message starts: the report of pair 2 is accepted.
        handler.at_rcpt, handler.rcpt = kill, 2
    else:
        # Killed once the password's body is kept, before its 250 is read: uncertain.
        kept: list[int] = []

        def kill_at_password(message: Any) -> None:
            kept.append(1)
            if len(kept) == 2:
                handler.after_accepting = None
                kill()

        handler.after_accepting = kill_at_password
    assert runs.finish(process=process) == -signal.SIGKILL, runs.stderr()
    with SendLedger.in_folder(inputs.pdfs) as ledger:
        report = ledger.message(JOSE.ssid, "report", 2)
    assert report is not None and report.is_accepted and report.files == (later,)

    again = run(inputs)

    if moment == "password_unanswered":
        assert outcomes(again)[JOSE.ssid] == "uncertain"  # never re-sent on its own
        assert len(mail_to(server, JOSE.email)) == 4
        again = run(inputs, mark_uncertain_sent=True)  # the server's log shows it
    assert outcomes(again)[JOSE.ssid] == "sent"
    assert [attached(m) for m in mail_to(server, JOSE.email)] == [JOSE.files(), [], [later], []]
    assert outcomes(run(inputs)) == {JOSE.ssid: "already_sent", SAM.ssid: "already_sent"}
    assert len(mail_to(server, JOSE.email)) == 4
