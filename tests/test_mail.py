"""The send engine against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import csv
import io
import re
import stat
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from aiosmtpd.smtp import AuthResult
from helpers import (
    FakeTime,
    Family,
    SmtpServer,
    add_smtp_profile,
    outcomes,
    send_run,
    write_send_inputs,
)

from caaspp_cli.artifacts import SEND_LEDGER_NAME
from caaspp_cli.errors import (
    BadInputError,
    MailAuthenticationError,
    MailConnectionError,
    MailTLSError,
)
from caaspp_cli.send.ledger import SendInProgressError, SendLedger
from caaspp_cli.send.outcomes import SendOutcome
from caaspp_cli.send.templates import load_templates

JOSE = Family(
    "1000000001",
    "José",
    "Ñúñez",
    guardian="María Ñúñez",
    email="maria@example.org",
    language="Spanish",
)
HOA = Family(
    "1000000002",
    "Hoa",
    "Nguyễn Thị",
    guardian="Nguyễn Văn An",
    email="an@example.org; binh@example.net",
    language="English",
    tests=("CAASPP", "ELPAC"),
)
SAM = Family("1000000003", "Sam", "Lee", guardian="Pat Lee", email="pat@example.org")


run = send_run


def messages_to(server: SmtpServer, address: str) -> list[EmailMessage]:
    return [r.message for r in server.received if address in r.rcpt_tos]


def part_text(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def body_text(message: EmailMessage) -> str:
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_attachment():
            parts.append(part.get_content())
    return "\n".join(parts)


def attachments(message: EmailMessage) -> list[EmailMessage]:
    return list(message.iter_attachments())


@pytest.fixture
def server(smtp_server: SmtpServer) -> SmtpServer:
    add_smtp_profile(smtp_server)
    return smtp_server


@pytest.fixture
def inputs(tmp_path: Path) -> Any:
    return write_send_inputs(tmp_path / "case", [JOSE, HOA, SAM])


# --- Two messages per family --------------------------------------------------------------
def test_each_family_gets_the_reports_then_the_password_in_a_separate_message(
    server: SmtpServer, inputs: Any
) -> None:
    summary = run(inputs)

    assert outcomes(summary) == {JOSE.ssid: "sent", HOA.ssid: "sent", SAM.ssid: "sent"}
    assert len(server.received) == 6
    for family in (JOSE, HOA, SAM):
        first_address = family.email.split(";")[0].strip()
        report, password = messages_to(server, first_address)
        # Message 1: the PDF(s), which open only with the password, and no password.
        files = attachments(report)
        assert [f.get_filename() for f in files] == family.files()
        assert all(f.get_content_type() == "application/pdf" for f in files)
        for attached in files:
            data = attached.get_content()
            with pytest.raises(pikepdf.PasswordError):
                pikepdf.open(io.BytesIO(data))
            with pikepdf.open(io.BytesIO(data), password=family.password) as pdf:
                assert len(pdf.pages) == 1
            assert family.password.encode() not in data
        assert family.password not in body_text(report)
        # Message 2: the password, and nothing attached.
        assert attachments(password) == []
        assert family.password in body_text(password)
    for received in server.received:  # the raw bytes too
        if attachments(received.message):
            assert all(f.password.encode() not in received.data for f in (JOSE, HOA, SAM))
    # The report of each family came before its password.
    order = [(r.rcpt_tos[0], bool(attachments(r.message))) for r in server.received]
    for family in (JOSE, HOA, SAM):
        mine = [has_pdf for to, has_pdf in order if to == family.email.split(";")[0].strip()]
        assert mine == [True, False]


def test_messages_have_correct_headers_and_utf8_names_survive(
    server: SmtpServer, inputs: Any
) -> None:
    run(inputs)

    report, password = messages_to(server, "maria@example.org")
    for message in (report, password):
        assert message["From"].addresses[0].display_name == "Distrito Escolar Ñandú"
        assert message["From"].addresses[0].addr_spec == "reports@lincoln.example.org"
        assert message["To"].addresses[0].display_name == "María Ñúñez"
        assert str(message["Reply-To"]) == "help@lincoln.example.org"
        assert message["MIME-Version"] == "1.0"
        assert message["Date"].datetime is not None
        assert message["Message-ID"].endswith("@lincoln.example.org>")
        assert "José Ñúñez" in str(message["Subject"])
        assert "José Ñúñez" in body_text(message)
    assert report["Message-ID"] != password["Message-ID"]
    # Several addresses in one cell: one message to all of them, without a guessed name.
    hoa = [r for r in server.received if "an@example.org" in r.rcpt_tos]
    assert [r.rcpt_tos for r in hoa] == [("an@example.org", "binh@example.net")] * 2
    assert [a.addr_spec for a in hoa[0].message["To"].addresses] == [
        "an@example.org",
        "binh@example.net",
    ]
    assert "Hoa Nguyễn Thị" in str(hoa[0].message["Subject"])
    # The envelope sender is the From address; raw headers are 7-bit (RFC 2047 words).
    assert {r.mail_from for r in server.received} == {"reports@lincoln.example.org"}
    header_block = server.received[0].data.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()


def test_spanish_correspondence_gets_the_spanish_messages_and_others_english(
    server: SmtpServer, inputs: Any
) -> None:
    run(inputs)

    report, password = messages_to(server, "maria@example.org")
    assert report["Content-Language"] == "es"
    assert "Informe de Calificaciones del Estudiante" in str(report["Subject"])
    assert "Contraseña" in str(password["Subject"])
    assert "contraseña" in body_text(report)
    english = messages_to(server, "pat@example.org")[0]  # no language: English
    assert english["Content-Language"] == "en"
    assert str(english["Subject"]) == "Student Score Report for Sam Lee"
    html_part = english.get_body(("html",))
    assert html_part is not None
    # The guardian's name is in the roster: the greeting is to them, by name.
    assert "Dear Pat Lee," in html_part.get_content()
    assert "Sam&#x27;s Student Score Report" in html_part.get_content()


def test_names_are_escaped_in_the_html_body(smtp_server: SmtpServer, tmp_path: Path) -> None:
    add_smtp_profile(smtp_server)
    family = Family("1000000009", "<b>Ann", "& Co", email="ann@example.org")
    run(write_send_inputs(tmp_path / "case", [family]))

    html = part_text(messages_to(smtp_server, "ann@example.org")[0], "html")
    assert "&lt;b&gt;Ann &amp; Co" in html
    assert "<b>Ann" not in html


# --- Re-runs and the ledger -----------------------------------------------------------------
@pytest.mark.posix
def test_a_rerun_sends_nothing_new(server: SmtpServer, inputs: Any) -> None:
    run(inputs)
    again = run(inputs)

    assert len(server.received) == 6
    assert set(outcomes(again).values()) == {"already_sent"}
    assert again.messages_sent == 0
    with SendLedger.in_folder(inputs.pdfs) as ledger:
        assert ledger.counts() == {("report", "accepted"): 3, ("password", "accepted"): 3}
    assert stat.S_IMODE((inputs.pdfs / SEND_LEDGER_NAME).stat().st_mode) == 0o600


def test_a_second_run_at_the_same_time_is_refused(server: SmtpServer, inputs: Any) -> None:
    with SendLedger.in_folder(inputs.pdfs), pytest.raises(SendInProgressError):
        run(inputs)
    assert server.received == []


def test_a_message_cut_off_after_acceptance_is_uncertain_and_never_sent_twice(
    server: SmtpServer, inputs: Any
) -> None:
    server.handler.drop_after_accepting = 1  # José's report: kept, and no answer sent

    first = run(inputs)

    assert outcomes(first)[JOSE.ssid] == "uncertain"
    assert outcomes(first)[HOA.ssid] == outcomes(first)[SAM.ssid] == "sent"
    jose = first.rows[0]
    assert jose.report_message == "uncertain" and jose.password_message is None
    assert jose.report_message_id in jose.detail and "mail server's log" in jose.detail
    assert len(messages_to(server, "maria@example.org")) == 1  # no password without a 250

    second = run(inputs)
    assert outcomes(second)[JOSE.ssid] == "uncertain"
    assert len(server.received) == 5

    third = run(inputs, resend_uncertain=True)
    assert outcomes(third)[JOSE.ssid] == "sent"
    first_copy, second_copy, password = messages_to(server, "maria@example.org")
    assert first_copy["Message-ID"] == second_copy["Message-ID"]  # clients show one
    assert attachments(password) == []


def test_a_kill_between_the_servers_250_and_the_ledger_leaves_it_uncertain(
    server: SmtpServer, inputs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = SendLedger.mark_accepted

    class Killed(BaseException):
        pass

    def killed_after_250(self: SendLedger, *args: Any, **kwargs: Any) -> None:
        raise Killed

    monkeypatch.setattr(SendLedger, "mark_accepted", killed_after_250)
    with pytest.raises(Killed):
        run(inputs)
    monkeypatch.setattr(SendLedger, "mark_accepted", original)
    assert len(server.received) == 1

    again = run(inputs)

    assert outcomes(again)[JOSE.ssid] == "uncertain"
    assert len(messages_to(server, "maria@example.org")) == 1
    # Staff find it in the mail server's log: record it, and the password follows.
    confirmed = run(inputs, mark_uncertain_sent=True)
    assert outcomes(confirmed)[JOSE.ssid] == "sent"
    report, password = messages_to(server, "maria@example.org")
    assert attachments(report) and not attachments(password)
    assert "--mark-uncertain-sent" in confirmed.rows[0].detail


def test_a_kill_before_the_body_went_out_sends_it_on_the_rerun(
    server: SmtpServer, inputs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Killed(BaseException):
        pass

    def killed(self: SendLedger, *args: Any, **kwargs: Any) -> None:
        raise Killed

    original = SendLedger.mark_sending
    monkeypatch.setattr(SendLedger, "mark_sending", killed)
    with pytest.raises(Killed):
        run(inputs)
    monkeypatch.setattr(SendLedger, "mark_sending", original)
    assert server.received == []

    again = run(inputs)
    assert outcomes(again)[JOSE.ssid] == "sent"
    assert len(messages_to(server, "maria@example.org")) == 2


# --- Refusals and retries --------------------------------------------------------------------
def test_a_refused_recipient_is_recorded_and_the_others_proceed(
    server: SmtpServer, inputs: Any
) -> None:
    server.handler.refuse["pat@example.org"] = "550 5.1.1 No such mailbox"
    server.handler.refuse["binh@example.net"] = "550 5.1.1 No such mailbox"

    summary = run(inputs)

    assert outcomes(summary) == {JOSE.ssid: "sent", HOA.ssid: "sent", SAM.ssid: "refused"}
    sam = summary.rows[2]
    assert "550 5.1.1 No such mailbox" in sam.detail
    assert sam.report_message == "not_accepted" and sam.password_message is None
    # Of two addresses, the one refused gets neither message; the other gets both.
    hoa = [r for r in server.received if "an@example.org" in r.rcpt_tos]
    assert [r.rcpt_tos for r in hoa] == [("an@example.org",)] * 2
    assert summary.rows[1].sent_to == ("an@example.org",)
    assert "binh@example.net" in summary.rows[1].detail
    report = list(csv.DictReader(summary.report.read_text("utf-8-sig").splitlines()))
    assert report[2]["outcome"] == "refused" and "550" in report[2]["detail"]
    with SendLedger.in_folder(inputs.pdfs) as ledger:
        record = ledger.message(SAM.ssid, "report")
        assert record is not None and record.status == "failed"


def test_a_temporary_refusal_is_retried_and_then_succeeds(
    server: SmtpServer, tmp_path: Path
) -> None:
    inputs = write_send_inputs(tmp_path / "case", [SAM])
    server.handler.data_replies = ["451 4.3.0 Try again later"]
    time = FakeTime()

    summary = run(inputs, time)

    assert outcomes(summary) == {SAM.ssid: "sent"}
    assert server.handler.bodies == 3  # refused once, then report and password
    assert len(server.received) == 2
    assert 10.0 in time.sleeps


def test_a_temporary_refusal_that_lasts_fails_the_row_after_every_retry(
    server: SmtpServer, tmp_path: Path
) -> None:
    inputs = write_send_inputs(tmp_path / "case", [SAM])
    server.handler.data_replies = ["452 4.3.1 Insufficient storage"] * 4
    time = FakeTime()

    summary = run(inputs, time)

    assert outcomes(summary) == {SAM.ssid: "failed"}
    assert "452" in summary.rows[0].detail and "4 attempts" in summary.rows[0].detail
    assert server.received == []
    assert [s for s in time.sleeps if s >= 10] == [10.0, 30.0, 90.0]
    server.handler.data_replies = []
    assert outcomes(run(inputs)) == {SAM.ssid: "sent"}  # a re-run tries it again


def test_a_permanent_refusal_is_not_retried(server: SmtpServer, tmp_path: Path) -> None:
    inputs = write_send_inputs(tmp_path / "case", [SAM])
    server.handler.data_replies = ["554 5.7.1 Message rejected as spam"]

    summary = run(inputs)

    assert outcomes(summary) == {SAM.ssid: "refused"}
    assert server.handler.bodies == 1
    assert server.received == []


def test_rate_spaces_the_messages_evenly(server: SmtpServer, inputs: Any) -> None:
    time = FakeTime()

    run(inputs, time, rate=6)  # one every 10 s

    assert len(server.received) == 6
    assert time.sleeps == [10.0] * 5
    assert time.now == 1050.0


# --- Rows that cannot be sent ----------------------------------------------------------------
def test_rows_that_cannot_be_sent_are_recorded_with_their_reason_and_the_run_goes_on(
    server: SmtpServer, tmp_path: Path
) -> None:
    families = [
        Family("1000000011", "No", "Email", email=""),
        Family("1000000012", "Bad", "Address", email="not-an-address"),
        Family("1000000013", "Plain", "Pdf", email="plain@example.org", encrypted=False),
        Family("1000000014", "No", "Password", email="np@example.org", in_sheet=False),
        Family("1000000015", "Gone", "Pdf", email="gone@example.org"),
        SAM,
    ]
    inputs = write_send_inputs(tmp_path / "case", families)
    (inputs.pdfs / families[4].files()[0]).unlink()
    with inputs.roster.open("a", encoding="utf-8") as roster:
        roster.write("1000000016,No,Report,Lincoln Elementary,,nr@example.org,\n")
        roster.write(f"{SAM.ssid},Sam,Again,Lincoln Elementary,,pat@example.org,\n")

    summary = run(inputs)

    assert [row.outcome.value for row in summary.rows] == [
        "no_email",
        "bad_address",
        "not_encrypted",
        "missing_password",
        "missing_pdf",
        "sent",
        "no_report",
        "duplicate",
    ]
    assert "opens without a password" in summary.rows[2].detail
    assert "not-an-address" in summary.rows[1].detail
    assert [r.rcpt_tos for r in server.received] == [("pat@example.org",)] * 2
    assert {row.outcome for row in summary.problems} == {
        SendOutcome.NO_EMAIL,
        SendOutcome.BAD_ADDRESS,
        SendOutcome.NOT_ENCRYPTED,
        SendOutcome.MISSING_PASSWORD,
        SendOutcome.MISSING_PDF,
        SendOutcome.DUPLICATE,  # may carry another guardian's address: a person looks
    }
    report = list(csv.DictReader(summary.report.read_text("utf-8-sig").splitlines()))
    assert [r["outcome"] for r in report] == [row.outcome.value for row in summary.rows]


def test_a_pdf_its_password_does_not_open_is_refused(server: SmtpServer, tmp_path: Path) -> None:
    inputs = write_send_inputs(tmp_path / "case", [SAM])
    sheet = inputs.passwords.read_text("utf-8").replace(SAM.password, "wrong-pass-word-here")
    inputs.passwords.write_text(sheet, "utf-8")

    summary = run(inputs)

    assert outcomes(summary) == {SAM.ssid: "not_encrypted"}
    assert "does not open it" in summary.rows[0].detail
    assert server.received == []


def test_a_password_file_path_outside_the_folder_is_not_attached(
    server: SmtpServer, tmp_path: Path
) -> None:
    inputs = write_send_inputs(tmp_path / "case", [SAM])
    secret = tmp_path / "case" / "secret.pdf"
    secret.write_bytes(b"%PDF-1.7 not for families")
    sheet = inputs.passwords.read_text("utf-8").replace(SAM.files()[0], "../secret.pdf")
    inputs.passwords.write_text(sheet, "utf-8")

    summary = run(inputs)

    assert outcomes(summary) == {SAM.ssid: "missing_pdf"}
    assert server.received == []


# --- Templates --------------------------------------------------------------------------------
def write_templates(folder: Path, language: str = "en", **overrides: str) -> Path:
    target = folder / language
    target.mkdir(parents=True)
    files = {
        "report.subject.txt": "Report of {student_name}",
        "report.txt": "{student_name} ({school}, {test} {year}): see the attachment.",
        "password.subject.txt": "Password for {student_name}",
        "password.txt": "The password: {password}",
    }
    files.update(
        {name.replace("_", ".", 1).replace("_", "."): text for name, text in overrides.items()}
    )
    for name, text in files.items():
        (target / name).write_text(text, "utf-8")
    return folder


def test_user_templates_replace_the_built_in_ones_for_their_language(
    server: SmtpServer, inputs: Any, tmp_path: Path
) -> None:
    templates = write_templates(tmp_path / "templates")

    run(inputs, templates=templates)

    report, password = messages_to(server, "pat@example.org")
    assert str(report["Subject"]) == "Report of Sam Lee"
    assert part_text(report, "plain").strip() == (
        "Sam Lee (Lincoln Elementary, CAASPP 2025): see the attachment."
    )
    assert report.get_body(("html",)) is None  # none given: plain text only
    assert password.get_content().strip() == f"The password: {SAM.password}"
    # No Spanish folder: Spanish rows keep the built-in Spanish messages.
    assert "Informe" in str(messages_to(server, "maria@example.org")[0]["Subject"])


def test_a_template_with_an_unknown_placeholder_fails_before_anything_is_sent(
    server: SmtpServer, inputs: Any, tmp_path: Path
) -> None:
    templates = write_templates(tmp_path / "templates", report_txt="Dear {parent_name},")

    with pytest.raises(BadInputError) as caught:
        run(inputs, templates=templates)

    assert "unknown placeholder {parent_name}" in caught.value.message
    assert "report.txt" in caught.value.message
    assert "{student_name}" in (caught.value.hint or "")
    assert server.received == [] and server.handler.sessions == 0
    assert not (inputs.pdfs / SEND_LEDGER_NAME).exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"report_txt": "The password is {password}"}, "may appear only in the body"),
        ({"password_subject_txt": "Your password: {password}"}, "may appear only in the body"),
        ({"password_txt": "Your password comes later."}, "has no {password}"),
        ({"report_txt": "{student_name!r}"}, "unknown placeholder {student_name!r}"),
        ({"report_txt": "style { color: red }"}, "report.txt"),
        ({"report_subject_txt": "Two\nlines"}, "one line"),
    ],
)
def test_templates_that_could_leak_or_lose_the_password_are_refused(
    tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    with pytest.raises(BadInputError, match=re.escape(expected)):
        load_templates(write_templates(tmp_path / "templates", **overrides))


def test_the_built_in_templates_load_in_every_report_language() -> None:
    templates = load_templates()

    assert set(templates.builtin) == {"en", "es", "vi", "fil", "ko", "zh-Hant", "ar"}
    assert templates.for_language("ko").language == "ko"
    assert templates.for_language("es").language == "es"
    assert templates.for_language(None).language == "en"  # blank or unknown: English


# --- Dry run ---------------------------------------------------------------------------------
@pytest.mark.posix
def test_dry_run_writes_owner_only_eml_files_and_sends_nothing(
    server: SmtpServer, inputs: Any, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"

    summary = run(inputs, dry_run=True, outbox=outbox)

    assert server.handler.sessions == 0 and server.received == []
    assert set(outcomes(summary).values()) == {"would_send"}
    names = sorted(p.name for p in outbox.glob("*.eml"))
    assert names == [
        f"00002_{JOSE.ssid}_1_report.eml",
        f"00002_{JOSE.ssid}_2_password.eml",
        f"00003_{HOA.ssid}_1_report.eml",
        f"00003_{HOA.ssid}_2_password.eml",
        f"00004_{SAM.ssid}_1_report.eml",
        f"00004_{SAM.ssid}_2_password.eml",
    ]
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    for path in outbox.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    import email
    import email.policy

    report = email.message_from_bytes((outbox / names[4]).read_bytes(), policy=email.policy.default)
    assert isinstance(report, EmailMessage)
    assert [a.get_filename() for a in report.iter_attachments()] == SAM.files()
    assert SAM.password not in body_text(report)
    assert SAM.password in (outbox / names[5]).read_text("ascii")
    assert (outbox / "send-report.csv").is_file()
    assert not (inputs.pdfs / SEND_LEDGER_NAME).exists()
    assert not (inputs.pdfs / "send-report.csv").exists()


def test_dry_run_refuses_an_outbox_inside_the_folder_of_pdfs(
    server: SmtpServer, inputs: Any
) -> None:
    with pytest.raises(BadInputError, match="inside the folder of PDFs"):
        run(inputs, dry_run=True, outbox=inputs.pdfs / "review")


# --- Connections: TLS and login --------------------------------------------------------------
def test_starttls_with_a_trusted_ca_file_delivers(
    smtp_server_factory: Any, tls_files: Any, tmp_path: Path
) -> None:
    server = smtp_server_factory(tls_context=tls_files.server_context(), require_starttls=True)
    add_smtp_profile(server, security="starttls", ca_file=str(tls_files.ca_file))
    inputs = write_send_inputs(tmp_path / "case", [SAM])

    assert outcomes(run(inputs)) == {SAM.ssid: "sent"}
    assert len(server.received) == 2


def test_starttls_refuses_a_certificate_it_does_not_trust(
    smtp_server_factory: Any, tls_files: Any, tmp_path: Path
) -> None:
    server = smtp_server_factory(tls_context=tls_files.server_context(), require_starttls=True)
    add_smtp_profile(server, security="starttls")
    inputs = write_send_inputs(tmp_path / "case", [SAM, JOSE])

    with pytest.raises(MailTLSError) as caught:
        run(inputs)

    assert "not trusted" in caught.value.message
    assert "--ca-file" in (caught.value.hint or "")
    assert server.received == []
    report = list(
        csv.DictReader((inputs.pdfs / "send-report.csv").read_text("utf-8-sig").splitlines())
    )
    assert [r["outcome"] for r in report] == ["stopped", "stopped"]


def test_ssl_from_the_first_byte_with_a_trusted_ca_file_delivers(
    smtp_server_factory: Any, tls_files: Any, tmp_path: Path
) -> None:
    server = smtp_server_factory(ssl_context=tls_files.server_context())
    add_smtp_profile(server, security="ssl", ca_file=str(tls_files.ca_file))
    inputs = write_send_inputs(tmp_path / "case", [SAM])

    assert outcomes(run(inputs)) == {SAM.ssid: "sent"}


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = auth_data.login == b"reports@lincoln.example.org" and auth_data.password == b"s3cret!"
    return AuthResult(success=ok, handled=False)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_the_password_from_the_keyring(
    smtp_server_factory: Any, tmp_path: Path, memory_keyring: Any
) -> None:
    server = smtp_server_factory(
        authenticator=_authenticator, auth_require_tls=False, auth_required=True
    )
    add_smtp_profile(server, user="reports@lincoln.example.org", password="s3cret!")
    assert memory_keyring.entries[("caaspp", "smtp:district")] == "s3cret!"
    inputs = write_send_inputs(tmp_path / "case", [SAM])

    assert outcomes(run(inputs)) == {SAM.ssid: "sent"}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_refused_login_stops_before_anything_is_sent(
    smtp_server_factory: Any, tmp_path: Path
) -> None:
    server = smtp_server_factory(
        authenticator=_authenticator, auth_require_tls=False, auth_required=True
    )
    add_smtp_profile(server, user="reports@lincoln.example.org", password="wrong")
    inputs = write_send_inputs(tmp_path / "case", [SAM])

    with pytest.raises(MailAuthenticationError) as caught:
        run(inputs)

    assert caught.value.exit_code == 4
    assert "wrong" not in caught.value.message
    assert server.received == []


def test_an_unreachable_server_stops_the_run_after_the_retries(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    from helpers import free_port

    smtp_server.port = free_port()  # nothing listens there
    add_smtp_profile(smtp_server)
    inputs = write_send_inputs(tmp_path / "case", [SAM, JOSE])
    time = FakeTime()

    with pytest.raises(MailConnectionError) as caught:
        run(inputs, time)

    assert "4 attempts" in caught.value.message
    assert "send-report.csv" in (caught.value.hint or "")
    report = list(
        csv.DictReader((inputs.pdfs / "send-report.csv").read_text("utf-8-sig").splitlines())
    )
    assert [r["outcome"] for r in report] == ["stopped", "stopped"]
    assert "the run stopped here" in report[0]["detail"]
