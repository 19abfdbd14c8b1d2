"""`caaspp config smtp` and `caaspp send`, run as a user would, against a real SMTP server."""

from __future__ import annotations

import csv
import io
import json
import stat
import tomllib
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from aiosmtpd.smtp import AuthResult
from helpers import Family, SmtpServer, add_smtp_profile, report_pdf, write_send_inputs

from caaspp_cli.cli import prompts
from caaspp_cli.config.secrets import SERVICE_NAME

SMTP_PASSWORD = "smtp-Pa55-w0rd!"
USER = "reports@lincoln.example.org"
JOSE = Family(
    "1000000001",
    "José",
    "Ñúñez",
    guardian="María Ñúñez",
    email="maria@example.org",
    language="Spanish",
)
SAM = Family("1000000003", "Sam", "Lee", guardian="Pat Lee", email="pat@example.org")


def _config(config_dir: Path) -> dict[str, Any]:
    return tomllib.loads((config_dir / "config.toml").read_text(encoding="utf-8"))


def _smtp(
    cli: Any,
    *extra: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    host: str = "smtp.lincoln.example.org",
) -> Any:
    return cli(
        "config",
        "smtp",
        "district",
        "--host",
        host,
        "--from",
        "Lincoln Unified <reports@lincoln.example.org>",
        *extra,
        env=env,
        input=input,
    )


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = auth_data.login == USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


def _passwords_of(inputs: Any) -> list[str]:
    return [family.password for family in inputs.families]


def _assert_no_password_in(text: str, inputs: Any) -> None:
    for password in [*_passwords_of(inputs), SMTP_PASSWORD]:
        assert password not in text


# --- config smtp -----------------------------------------------------------------------------
def test_config_smtp_puts_the_password_in_the_keyring_and_never_in_the_config_file(
    cli: Any, config_dir: Path, memory_keyring: Any
) -> None:
    result = _smtp(
        cli,
        "--user",
        USER,
        "--reply-to",
        "help@lincoln.example.org",
        env={"CAASPP_SMTP_PASSWORD": SMTP_PASSWORD},
    )

    assert result.exit_code == 0, result.output
    assert "Added SMTP profile district: smtp.lincoln.example.org:587 (starttls)" in result.stdout
    assert memory_keyring.entries == {(SERVICE_NAME, "smtp:district"): SMTP_PASSWORD}
    assert _config(config_dir)["smtp"] == {
        "district": {
            "host": "smtp.lincoln.example.org",
            "port": 587,
            "security": "starttls",
            "user": USER,
            "from": "Lincoln Unified <reports@lincoln.example.org>",
            "reply_to": "help@lincoln.example.org",
            "credentials_source": "keyring",
        }
    }
    assert SMTP_PASSWORD not in (config_dir / "config.toml").read_text("utf-8")
    assert SMTP_PASSWORD not in result.output


def test_config_smtp_reads_the_password_from_stdin_and_replaces_the_profile(
    cli: Any, memory_keyring: Any
) -> None:
    _smtp(cli, "--user", USER, env={"CAASPP_SMTP_PASSWORD": "old-password"})

    result = _smtp(
        cli, "--user", USER, "--port", "2525", "--password-stdin", input=SMTP_PASSWORD + "\n"
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Replaced SMTP profile district")
    assert memory_keyring.entries[(SERVICE_NAME, "smtp:district")] == SMTP_PASSWORD


def test_config_smtp_asks_for_the_password_with_hidden_input_on_a_terminal(
    cli: Any, memory_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts, "stdin_is_terminal", lambda: True)

    result = _smtp(cli, "--user", USER, input=SMTP_PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert "SMTP password of reports@lincoln.example.org (input hidden)" in result.stderr
    assert SMTP_PASSWORD not in result.output
    assert memory_keyring.entries[(SERVICE_NAME, "smtp:district")] == SMTP_PASSWORD


def test_config_smtp_without_a_terminal_or_password_says_how_to_give_one(
    cli: Any, config_dir: Path
) -> None:
    result = _smtp(cli, "--user", USER)

    assert result.exit_code == 4
    assert "no SMTP password given" in result.stderr
    assert "CAASPP_SMTP_PASSWORD" in result.stderr
    assert not (config_dir / "config.toml").exists()


def test_config_smtp_has_no_option_for_the_password(cli: Any) -> None:
    result = _smtp(cli, "--user", USER, "--password", SMTP_PASSWORD)

    assert result.exit_code == 2
    assert "No such option" in result.stderr


def test_config_smtp_refuses_security_none_for_a_host_that_is_not_this_machine(
    cli: Any, config_dir: Path
) -> None:
    refused = _smtp(cli, "--security", "none")
    assert refused.exit_code == 2
    assert "allowed only for a server on this machine" in refused.stderr
    assert not (config_dir / "config.toml").exists()

    accepted = _smtp(cli, "--security", "none", host="127.0.0.1")
    assert accepted.exit_code == 0, accepted.output
    assert _config(config_dir)["smtp"]["district"]["port"] == 25


def test_config_smtp_refuses_a_from_that_is_not_one_address(cli: Any) -> None:
    result = cli(
        "config",
        "smtp",
        "district",
        "--host",
        "smtp.example.org",
        "--from",
        "a@example.org, b@example.org",
    )

    assert result.exit_code == 2
    assert "is not one email address" in result.stderr


@pytest.mark.parametrize("option", ["--from", "--reply-to"])
@pytest.mark.parametrize(
    "value",
    [
        "x@y.example\nBcc: eve@attacker.example",
        "x@y.example\r\nBcc: eve@attacker.example",
        "Lincoln\r <x@y.example>",
        "x@y.example\x00",
    ],
)
def test_config_smtp_refuses_an_address_with_a_line_break_naming_the_option(
    cli: Any, config_dir: Path, option: str, value: str
) -> None:
    addresses = {"--from": "reports@lincoln.example.org", "--reply-to": "help@lincoln.example.org"}
    addresses[option] = value
    result = cli(
        "config",
        "smtp",
        "district",
        "--host",
        "smtp.example.org",
        "--from",
        addresses["--from"],
        "--reply-to",
        addresses["--reply-to"],
    )

    assert result.exit_code == 2, result.output
    assert option in result.stderr
    assert "line break or another control character" in result.stderr
    assert "Traceback" not in result.output and "eve@" not in result.output
    stored = config_dir / "config.toml"
    assert not stored.exists() or "smtp" not in _config(config_dir)


def test_config_smtp_refuses_a_reply_to_that_is_not_one_address(cli: Any) -> None:
    result = _smtp(cli, "--reply-to", '"help@district.example" help@lincoln.example.org')

    assert result.exit_code == 2
    assert "--reply-to" in result.stderr


def test_config_smtp_keeps_the_ets_profiles_and_they_keep_it(
    cli: Any, config_dir: Path, profile_factory: Any
) -> None:
    profile_factory("ets")
    assert _smtp(cli).exit_code == 0
    profile_factory("other")

    document = _config(config_dir)
    assert set(document["profiles"]) == {"ets", "other"}
    assert set(document["smtp"]) == {"district"}


def test_config_smtp_test_checks_the_certificate_and_login(
    cli: Any, smtp_server_factory: Any, tls_files: Any
) -> None:
    server = smtp_server_factory(
        tls_context=tls_files.server_context(),
        require_starttls=True,
        authenticator=_authenticator,
    )
    trusted = _smtp(
        cli,
        "--port",
        str(server.port),
        "--user",
        USER,
        "--ca-file",
        str(tls_files.ca_file),
        host="127.0.0.1",
        env={"CAASPP_SMTP_PASSWORD": SMTP_PASSWORD},
    )
    assert trusted.exit_code == 0, trusted.output

    result = cli("config", "smtp-test", "district")
    assert result.exit_code == 0, result.output
    assert "answered over TLS, logged in as reports@lincoln.example.org" in result.stdout

    untrusted = _smtp(
        cli,
        "--port",
        str(server.port),
        "--user",
        USER,
        host="127.0.0.1",
        env={"CAASPP_SMTP_PASSWORD": SMTP_PASSWORD},
    )
    assert untrusted.exit_code == 0
    refused = cli("config", "smtp-test", "district")
    assert refused.exit_code == 3
    assert "is not trusted" in refused.stderr
    assert "--ca-file" in refused.stderr
    assert server.received == []


# --- send ----------------------------------------------------------------------------------
@pytest.fixture
def server(smtp_server: SmtpServer) -> SmtpServer:
    add_smtp_profile(smtp_server)
    return smtp_server


@pytest.fixture
def inputs(tmp_path: Path) -> Any:
    return write_send_inputs(tmp_path / "case", [JOSE, SAM])


@pytest.mark.posix
def test_send_delivers_prints_a_summary_and_no_password_even_with_debug(
    cli: Any, server: SmtpServer, inputs: Any
) -> None:
    result = cli("--debug", *inputs.args())

    assert result.exit_code == 0, result.output
    assert "sent" in result.stdout and "2" in result.stdout
    assert "4 messages sent" in result.stderr
    assert len(server.received) == 4
    _assert_no_password_in(result.output, inputs)
    report = inputs.pdfs / "send-report.csv"
    _assert_no_password_in(report.read_text("utf-8-sig"), inputs)
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    rows = list(csv.DictReader(report.read_text("utf-8-sig").splitlines()))
    assert [(r["ssid"], r["outcome"], r["student_name"]) for r in rows] == [
        (JOSE.ssid, "sent", "José Ñúñez"),
        (SAM.ssid, "sent", "Sam Lee"),
    ]
    for path in inputs.pdfs.iterdir():  # the ledger, its WAL, the report: no password
        if path.suffix != ".pdf" and path.is_file():
            for password in _passwords_of(inputs):
                assert password.encode() not in path.read_bytes()


def test_send_logs_no_ssid_or_name_at_the_default_level(
    cli: Any, server: SmtpServer, inputs: Any
) -> None:
    server.handler.drop_after_accepting = 1  # something worth a warning

    result = cli(*inputs.args())

    assert result.exit_code == 3
    assert "may or may not have been accepted" in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert warnings
    for line in warnings:
        assert JOSE.ssid not in line and "José" not in line and "maria@" not in line


def test_send_json_summary_holds_no_password(cli: Any, server: SmtpServer, inputs: Any) -> None:
    result = cli(*inputs.args(), "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["messages_sent"] == 4
    assert summary["counts"]["sent"] == 2
    assert [r["outcome"] for r in summary["rows"]] == ["sent", "sent"]
    assert summary["rows"][0]["report_message"] == "accepted"
    _assert_no_password_in(result.output, inputs)

    again = json.loads(cli(*inputs.args(), "--json").stdout)
    assert again["messages_sent"] == 0 and again["counts"]["already_sent"] == 2
    assert len(server.received) == 4


def test_send_exits_3_and_lists_the_rows_that_were_not_sent(
    cli: Any, server: SmtpServer, inputs: Any
) -> None:
    server.handler.refuse["pat@example.org"] = "550 5.1.1 No such mailbox"

    result = cli(*inputs.args())

    assert result.exit_code == 3
    assert "1 of 2 roster rows was not sent and needs a person (1 refused)" in result.stderr
    assert "send-report.csv" in result.stderr and "error:" not in result.stderr
    assert "refused" in result.stdout and "550 5.1.1 No such mailbox" in result.stdout
    assert len(server.received) == 2  # José's two


def test_send_takes_the_email_column_named_by_the_user(
    cli: Any, server: SmtpServer, inputs: Any
) -> None:
    text = inputs.roster.read_text("utf-8").replace("Guardian Email", "Correo de la familia")
    inputs.roster.write_text(text, "utf-8")

    refused = cli(*inputs.args())
    assert refused.exit_code == 2
    assert "has no guardian email column" in refused.stderr
    assert "--email-column" in refused.stderr
    assert server.received == []

    result = cli(*inputs.args(), "--email-column", "Correo de la familia")
    assert result.exit_code == 0, result.output
    assert len(server.received) == 4


def test_send_exits_2_for_a_password_file_that_is_missing_or_not_one(
    cli: Any, server: SmtpServer, inputs: Any
) -> None:
    inputs.passwords.write_text("ssid,name\n1000000001,José\n", "utf-8")
    result = cli(*inputs.args())
    assert result.exit_code == 2
    assert "not a caaspp password file" in result.stderr

    inputs.passwords.unlink()
    result = cli(*inputs.args())
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert server.received == []


def test_send_exits_2_for_a_template_error_before_sending_anything(
    cli: Any, server: SmtpServer, inputs: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "templates" / "es"
    folder.mkdir(parents=True)
    for name, text in {
        "report.subject.txt": "Informe de {student_name}",
        "report.txt": "Hola {nombre}",
        "password.subject.txt": "Contraseña",
        "password.txt": "{password}",
    }.items():
        (folder / name).write_text(text, "utf-8")

    result = cli(*inputs.args(), "--templates", str(tmp_path / "templates"))

    assert result.exit_code == 2
    assert "unknown placeholder {nombre}" in result.stderr
    assert server.handler.sessions == 0


def test_send_exits_4_when_the_mail_server_refuses_the_login(
    cli: Any, smtp_server_factory: Any, inputs: Any
) -> None:
    server = smtp_server_factory(authenticator=_authenticator, auth_require_tls=False)
    add_smtp_profile(server, user=USER, password="not-the-password")

    result = cli(*inputs.args())

    assert result.exit_code == 4
    assert "refused the login of reports@lincoln.example.org" in result.stderr
    assert "not-the-password" not in result.output
    assert server.received == []


def test_send_takes_caaspp_smtp_password_over_the_keyring(
    cli: Any, smtp_server_factory: Any, inputs: Any
) -> None:
    server = smtp_server_factory(authenticator=_authenticator, auth_require_tls=False)
    add_smtp_profile(server, user=USER, password="stale-keyring-password")

    result = cli(*inputs.args(), env={"CAASPP_SMTP_PASSWORD": SMTP_PASSWORD})

    assert result.exit_code == 0, result.output
    assert len(server.received) == 4


def test_send_with_env_password_profile_and_no_variable_exits_4(
    cli: Any, smtp_server: SmtpServer, inputs: Any
) -> None:
    add_smtp_profile(smtp_server, user=USER, credentials_source="env")

    result = cli(*inputs.args())

    assert result.exit_code == 4
    assert "CAASPP_SMTP_PASSWORD is not set" in result.stderr


@pytest.mark.posix
def test_send_dry_run_writes_the_outbox_sends_nothing_and_says_to_delete_it(
    cli: Any, server: SmtpServer, inputs: Any, tmp_path: Path
) -> None:
    outbox = tmp_path / "review"

    result = cli(*inputs.args(), "--dry-run", "--outbox", str(outbox))

    assert result.exit_code == 0, result.output
    assert server.handler.sessions == 0
    emls = sorted(outbox.glob("*.eml"))
    assert len(emls) == 4
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in emls)
    assert "4 messages written to" in result.stderr and "delete the folder" in result.stderr
    _assert_no_password_in(result.output, inputs)

    # A second dry run replaces the first one's messages.
    again = cli(*inputs.args(), "--dry-run", "--outbox", str(outbox))
    assert again.exit_code == 0
    assert sorted(outbox.glob("*.eml")) == emls


def test_send_after_caaspp_protect_delivers_reports_that_open_with_the_second_message(
    cli: Any, server: SmtpServer, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    for family in (JOSE, SAM):
        with report_pdf(f"Score report {family.ssid}") as pdf:
            pdf.save(reports / family.files()[0])
    inputs = write_send_inputs(tmp_path / "case", [])
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "SSID,First Name,Last Name,Guardian Email,Correspondence Language\n"
        f"{JOSE.ssid},José,Ñúñez,maria@example.org,Spanish\n"
        f"{SAM.ssid},Sam,Lee,pat@example.org,\n",
        "utf-8",
    )
    out, sheet = tmp_path / "protected", tmp_path / "passwords.csv"
    protected = cli(
        "protect",
        str(reports),
        "--out",
        str(out),
        "--passwords",
        str(sheet),
        "--roster",
        str(roster),
        "--workers",
        "1",
    )
    assert protected.exit_code == 0, protected.output
    del inputs

    result = cli(
        "send",
        "--roster",
        str(roster),
        "--pdfs",
        str(out),
        "--passwords",
        str(sheet),
        "--smtp",
        "district",
        "--language-column",
        "Correspondence Language",
        "--rate",
        "6000",
    )

    assert result.exit_code == 0, result.output
    assert len(server.received) == 4
    for address in ("maria@example.org", "pat@example.org"):
        report, password_message = [r.message for r in server.received if r.rcpt_tos == (address,)]
        data = next(report.iter_attachments()).get_content()
        with pytest.raises(pikepdf.PasswordError):
            pikepdf.open(io.BytesIO(data))
        text = password_message.get_body(("plain",)).get_content()
        password = next(line.strip() for line in text.splitlines() if line.startswith("    "))
        with pikepdf.open(io.BytesIO(data), password=password) as opened:
            assert len(opened.pages) == 1
        assert password not in report.get_body(("plain",)).get_content()


@pytest.mark.posix
def test_send_killed_while_the_server_accepts_never_sends_a_second_copy(
    server: SmtpServer, inputs: Any
) -> None:
    import os
    import signal
    import subprocess
    import sys

    child: list[subprocess.Popen[bytes]] = []

    def kill_the_sender(received: Any) -> None:
        if len(server.received) == 3:  # Sam's report: kept, and the sender dies unanswered
            os.kill(child[0].pid, signal.SIGKILL)
            child[0].wait()

    server.handler.after_accepting = kill_the_sender
    command = [sys.executable, "-m", "caaspp_cli", *inputs.args()]
    child.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    child[0].communicate(timeout=60)
    assert child[0].returncode == -signal.SIGKILL
    server.handler.after_accepting = None
    assert len(server.received) == 3

    again = subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert again.returncode == 3, again.stderr
    assert len(server.received) == 3  # José had both; Sam's report is not sent again
    rows = list(
        csv.DictReader((inputs.pdfs / "send-report.csv").read_text("utf-8-sig").splitlines())
    )
    assert [(r["outcome"], r["report_message"]) for r in rows] == [
        ("already_sent", "accepted"),
        ("uncertain", "uncertain"),
    ]


def _report_rows(inputs: Any) -> list[dict[str, str]]:
    text = (inputs.pdfs / "send-report.csv").read_text("utf-8-sig")
    return list(csv.DictReader(text.splitlines()))


def test_send_mails_only_the_address_never_one_in_a_name_or_a_comment(
    cli: Any, server: SmtpServer, tmp_path: Path
) -> None:
    oscar = Family(
        "1000000005",
        "Oscar",
        "Ibanez",
        email="Oscar Ibanez (old: oscar@former-isp.example) <oscar.ibanez@example.net>",
    )
    jane = Family("1000000006", "Jane", "Doe", email='"jane@gmail.example" <jdoe@parent.example>')
    both = Family("1000000007", "Ana", "Ruiz", email="rosa@example.org; abuelo@example.org,")
    muddled = Family(
        "1000000008", "Bo", "Lee", email='kim@example.org, "Kim Lee <kim.lee@example.net>'
    )
    two_readings = Family("1000000009", "Cy", "Paz", email="lu@example.org <lu.paz@example.net>")
    inputs = write_send_inputs(tmp_path / "case", [oscar, jane, both, muddled, two_readings])

    result = cli(*inputs.args())

    assert result.exit_code == 3, result.output
    assert "unexpected" not in result.output
    assert [m.rcpt_tos for m in server.received] == [
        ("oscar.ibanez@example.net",),
        ("oscar.ibanez@example.net",),
        ("jdoe@parent.example",),
        ("jdoe@parent.example",),
        ("rosa@example.org", "abuelo@example.org"),
        ("rosa@example.org", "abuelo@example.org"),
    ]
    for received in server.received:
        to = str(received.message["To"])
        assert "former-isp" not in to and "gmail" not in to
    rows = _report_rows(inputs)
    assert [r["outcome"] for r in rows] == ["sent", "sent", "sent", "bad_address", "bad_address"]
    assert "oscar@former-isp.example" in rows[0]["detail"] and "not sent to" in rows[0]["detail"]
    assert "jane@gmail.example" in rows[1]["detail"]
    assert "never closed" in rows[3]["detail"]
    assert "ambiguous" in rows[4]["detail"]
    assert rows[3]["sent_to"] == rows[4]["sent_to"] == ""


def test_send_fails_the_row_whose_password_is_in_its_message_and_goes_on(
    cli: Any, server: SmtpServer, tmp_path: Path
) -> None:
    # A password column holding the student's first name: the greeting would give it away.
    sam = Family("1000000003", "Sam", "Lee", email="pat@example.org", password="Sam")
    inputs = write_send_inputs(tmp_path / "case", [sam, JOSE])

    for later in ("sent", "already_sent"):  # a re-run does not stop at that row either
        result = cli(*inputs.args())

        assert result.exit_code == 3, result.output
        assert "unexpected" not in result.output and "AssertionError" not in result.output
        assert [m.rcpt_tos for m in server.received] == [("maria@example.org",)] * 2
        rows = _report_rows(inputs)
        assert [r["outcome"] for r in rows] == ["password_in_message", later]
        assert "the password appears in the report message" in rows[0]["detail"]
        assert rows[0]["report_message"] == rows[0]["password_message"] == ""
        assert "password_in_message" in result.stdout


def test_send_sends_neither_message_when_the_password_is_in_the_password_subject(
    cli: Any, server: SmtpServer, tmp_path: Path
) -> None:
    templates = tmp_path / "templates" / "en"
    templates.mkdir(parents=True)
    (templates / "report.subject.txt").write_text("Your score report\n", "utf-8")
    (templates / "report.txt").write_text("The report is attached.\n", "utf-8")
    (templates / "password.subject.txt").write_text("For {student_first_name}\n", "utf-8")
    (templates / "password.txt").write_text("Password: {password}\n", "utf-8")
    sam = Family("1000000003", "Sam", "Lee", email="pat@example.org", password="SAM")
    inputs = write_send_inputs(tmp_path / "case", [sam])

    result = cli(*inputs.args(), "--templates", str(tmp_path / "templates"))

    assert result.exit_code == 3, result.output
    assert server.received == []  # not even the report: its password could not follow
    (row,) = _report_rows(inputs)
    assert row["outcome"] == "password_in_message"
    assert "the password appears in the password message" in row["detail"]


def _index_page(ledger: Path, index: str) -> tuple[int, int]:
    """(offset, size) of the root page of an index b-tree in a SQLite file."""
    import sqlite3

    db = sqlite3.connect(ledger)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (index,)).fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    finally:
        db.close()
    return (root - 1) * page_size, page_size


def _checks(ledger: Path) -> tuple[str, str]:
    import sqlite3

    db = sqlite3.connect(ledger)
    try:
        quick = db.execute("PRAGMA quick_check").fetchone()[0]
        full = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    return quick, full


def test_send_refuses_a_ledger_whose_index_is_damaged_and_sends_nothing_again(
    cli: Any, server: SmtpServer, inputs: Any
) -> None:
    from caaspp_cli.artifacts import SEND_LEDGER_NAME

    first = cli(*inputs.args())
    assert first.exit_code == 0, first.output
    assert len(server.received) == 4
    ledger = inputs.pdfs / SEND_LEDGER_NAME
    # One SSID flipped inside the b-tree of the messages' primary key, the table untouched:
    # a lookup by SSID no longer finds Sam's messages.
    _flip_ssid_in_index(ledger, "sqlite_autoindex_messages_1", SAM.ssid)
    quick, full = _checks(ledger)
    assert quick == "ok" and full != "ok"  # the damage only the full check sees

    again = cli(*inputs.args())

    assert again.exit_code == 2, again.output
    assert "unexpected" not in again.output
    assert f"the ledger {ledger} is damaged" in " ".join(again.stderr.split())
    assert "backup" in again.stderr  # the hint: what to do
    assert len(server.received) == 4  # nobody got a second copy
    dry = cli(*inputs.args(), "--dry-run", "--outbox", str(inputs.pdfs.parent / "review"))
    assert dry.exit_code == 2 and "is damaged" in dry.stderr


def _flip_ssid_in_index(ledger: Path, index: str, ssid: str) -> None:
    """Change one digit of ``ssid`` in the index b-tree ``index``, the table untouched."""
    offset, size = _index_page(ledger, index)
    data = bytearray(ledger.read_bytes())
    at = bytes(data[offset : offset + size]).index(ssid.encode())
    data[offset + at + 9] = ord("7") if data[offset + at + 9] != ord("7") else ord("8")
    ledger.write_bytes(bytes(data))


def test_the_bulk_ledger_is_checked_the_same_way(tmp_path: Path) -> None:
    from caaspp_cli.errors import BadInputError
    from caaspp_cli.fetch.ledger import Ledger, ReportRecord

    with Ledger.in_folder(tmp_path) as ledger:
        for ssid in ("1000000001", "1000000002", "1000000003"):
            ledger.record_report(
                "",
                ReportRecord(ssid, "CAASPP", 2025, "en", "pdf", "downloaded", "f.pdf", 1, "0", ""),
            )
    path = ledger.path
    _flip_ssid_in_index(path, "sqlite_autoindex_reports_1", "1000000002")
    quick, full = _checks(path)
    assert quick == "ok" and full != "ok"

    with pytest.raises(BadInputError, match="is damaged") as caught:
        Ledger.in_folder(tmp_path)
    assert caught.value.hint is not None and "move it aside" in caught.value.hint


def test_send_and_the_smtp_commands_have_help(cli: Any) -> None:
    for args in (("send",), ("config", "smtp"), ("config", "smtp-test")):
        result = cli(*args, "--help")
        assert result.exit_code == 0, args
        assert "Usage: caaspp " + " ".join(args) in result.stdout
    assert "--resend-uncertain" in cli("send", "--help").stdout
