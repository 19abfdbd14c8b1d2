"""Bad input, tried the way hurried staff will.

Every file of ``tests/data/bad/`` (see its README) and every misuse of the command line
below is one test id. Each must end with a documented exit code (bad input: 2), one
``error:`` line on stderr (plus at most one ``hint:`` line) and no traceback; where a
run had done work before, that work is neither lost nor done again.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from conftest import Family, SmtpServer, add_smtp_profile, report_pdf, write_send_inputs

from caaspp_cli.send import run as mail

BAD = Path(__file__).parent / "data" / "bad"
ANA = Family("1000000001", "Ana", "Ruiz", guardian="Rosa Ruiz", email="rosa@example.org")
BO = Family("1000000002", "Bo", "Lee", guardian="Kim Lee", email="kim@example.org")
CY = Family("1000000003", "Cy", "Paz", guardian="Lu Paz", email="lu@example.org")


# --- What every failure must look like ---------------------------------------------------------
def error_line(result: Any, *, only: bool = True) -> str:
    """The one ``error:`` line of a run, checked: no traceback, at most one ``hint:`` right
    after it, and (``only``) nothing else on stderr."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    hints = [line for line in lines if line.startswith("hint: ")]
    assert len(hints) <= 1, result.stderr
    if hints:
        assert lines[errors[0] + 1] == hints[0], result.stderr
    if only:
        assert lines == [lines[errors[0]], *hints], result.stderr
    error = lines[errors[0]]
    assert not error.startswith("error: unexpected") and "[Errno" not in error, error
    return error


def bad_input(result: Any, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    error = error_line(result)
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    return error


def snapshot(*folders: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under the folders: bytes, mtime and mode."""
    found: dict[str, tuple[bytes, int, int]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = path.stat()
                found[str(path)] = (path.read_bytes(), info.st_mtime_ns, info.st_mode)
    return found


def _writable(folder: Path) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only: mode 0500, and immutable (chattr +i) where the tests run
    as root, which modes do not stop. Skips where neither works."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o500)
    immutable = False
    try:
        if _writable(folder):
            with contextlib.suppress(OSError):
                immutable = (
                    subprocess.run(
                        ["chattr", "+i", str(folder)], capture_output=True, check=False
                    ).returncode
                    == 0
                )
        if _writable(folder):
            pytest.skip("no way to make a folder read-only here")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=False)
        os.chmod(folder, 0o700)


def _roster(path: Path, ssids: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "SSID,First Name,Last Name\r\n"
        + "".join(f"{ssid},Student{i},Test\r\n" for i, ssid in enumerate(ssids)),
        encoding="utf-8",
    )
    return path


def _report(path: Path, text: str = "Synthetic score report") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with report_pdf(text) as pdf:
        pdf.save(path)
    return path


# --- Rosters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refused:
    """The roster is refused as a whole: exit 2, and these words in the error."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class Read:
    """The roster is read: this many students to ask ETS about, these rows set aside."""

    to_ask: int
    invalid_ssid: int = 0
    duplicate: int = 0


ROSTERS: dict[str, Refused | Read] = {
    "empty.csv": Refused(("is empty",)),
    "blank_lines.csv": Refused(("is empty",)),
    "bom_only.csv": Refused(("is empty",)),
    "only_delimiters.csv": Refused(("is empty",)),
    "binary.csv": Refused(("binary data", "not a CSV")),
    "gzip_compressed.csv": Refused(("binary data",)),
    "excel_workbook_renamed.csv": Refused(("Excel workbook",)),
    "old_excel_renamed.csv": Refused(("Excel workbook (.xls)",)),
    "pdf_renamed.csv": Refused(("is a PDF",)),
    "html_saved_as_csv.csv": Refused(("web page",)),
    "xml_spreadsheet.csv": Refused(("XML file",)),
    "utf32.csv": Refused(("UTF-32",)),
    "nul_in_a_cell.csv": Refused(("binary data",)),
    "headerless.csv": Refused(("no header line",)),
    "no_ssid_column.csv": Refused(("has no SSID column", "'Student ID'")),
    "two_ssid_columns.csv": Refused(("2 columns that could hold the SSID",)),
    "quote_left_open.csv": Refused(("line 2", "quote", "not closed")),
    "header_only.csv": Refused(("has a header but no student rows",)),
    "utf16le_bom_tab.txt": Read(to_ask=2),
    "utf16le_no_bom.csv": Read(to_ask=2),
    "utf16be_bom.csv": Read(to_ask=1),
    "utf16_cut_odd_byte.csv": Read(to_ask=1, invalid_ssid=1),
    "mixed_delimiters.csv": Read(to_ask=1, invalid_ssid=2),
    "semicolon_header_comma_rows.csv": Read(to_ask=2),
    "mixed_line_endings.csv": Read(to_ask=3),
    "junk_after_closing_quote.csv": Read(to_ask=1, invalid_ssid=1),
    "quote_open_on_last_line.csv": Read(to_ask=2),
    "formulas_in_cells.csv": Read(to_ask=1, invalid_ssid=1),
    "excel_mangled_ssids.csv": Read(to_ask=1, invalid_ssid=4, duplicate=1),
}


def test_every_file_of_the_corpus_has_a_case() -> None:
    for folder, cases in (
        ("rosters", ROSTERS),
        ("config", CONFIGS),
        ("pdfs", PDFS),
        ("templates", TEMPLATES),
    ):
        on_disk = {p.name for p in (BAD / folder).iterdir() if not p.name.startswith(".")}
        assert on_disk == set(cases), folder


@pytest.fixture
def district(profile_factory: Any) -> Any:
    """A default profile whose host is never reached: these runs stop before the network."""
    return profile_factory("district", make_default=True)


@pytest.mark.parametrize("name", sorted(ROSTERS))
def test_roster(cli: Any, district: Any, tmp_path: Path, name: str) -> None:
    roster, out = BAD / "rosters" / name, tmp_path / "out"
    case = ROSTERS[name]
    if isinstance(case, Refused):
        for args in ((), ("--dry-run",)):
            result = cli("bulk", str(roster), "--out", str(out), *args)
            error = bad_input(result, str(roster), *case.words)
            assert len(error) < 400
            assert not out.exists()
        return
    result = cli("bulk", str(roster), "--out", str(out), "--dry-run", "--json")
    # Rows a person must fix (invalid SSIDs, duplicates) make the dry run exit 3 as the run
    # would, with one notice on stderr, never an error.
    bad_rows = case.invalid_ssid + case.duplicate
    assert result.exit_code == (3 if bad_rows else 0), result.output
    assert "error:" not in result.stderr
    assert ("would need a person" in result.stderr) == bool(bad_rows), result.stderr
    summary = json.loads(result.stdout)
    assert summary["students_to_ask"] == case.to_ask
    assert summary["statuses"]["invalid_ssid"] == case.invalid_ssid
    assert summary["statuses"]["duplicate"] == case.duplicate
    assert not out.exists()


def _generated_rosters() -> dict[str, tuple[Callable[[Path], None], tuple[str, ...]]]:
    def huge_line(path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write("SSID,First Name\r\n1000000001,Ana\r\n")
            handle.write("1000000002," + "x" * (2 * 1024 * 1024) + "\r\n")
            handle.write("1000000003,Mia\r\n")

    def huge_first_line(path: Path) -> None:
        path.write_text("SSID," + ",".join(f"Column {i}" for i in range(20_000)), "utf-8")

    def quote_open_for_pages(path: Path) -> None:
        path.write_text(
            'SSID,First Name\r\n1000000001,"Ana\r\n' + "a note that runs on\r\n" * 80, "utf-8"
        )

    return {
        "a_line_of_two_mib": (huge_line, ("line 3", "longer than 1 MiB")),
        "a_first_line_with_no_end": (huge_first_line, ("line 1", "longer than 64 KiB")),
        "a_quote_open_for_80_lines": (quote_open_for_pages, ("line 2", "not closed")),
    }


@pytest.mark.parametrize("name", sorted(_generated_rosters()))
def test_big_broken_roster(cli: Any, district: Any, tmp_path: Path, name: str) -> None:
    make, words = _generated_rosters()[name]
    roster, out = tmp_path / "roster.csv", tmp_path / "out"
    make(roster)
    bad_input(cli("bulk", str(roster), "--out", str(out)), *words)
    assert not out.exists()


def test_ten_thousand_copies_of_one_student_ask_ets_once(
    cli: Any, sandbox: Any, sandbox_profile: Any, tmp_path: Path
) -> None:
    ssid = sandbox.state.world.examples()["english_only"]
    roster, out = tmp_path / "roster.csv", tmp_path / "out"

    def data_requests() -> int:
        return int(sandbox.state.stats()["counters"].get("data_requests", 0))

    before = data_requests()
    once = cli("bulk", str(_roster(tmp_path / "one.csv", [ssid])), "--out", str(tmp_path / "one"))
    assert once.exit_code == 0, once.output
    asking_once = data_requests() - before
    roster.write_text("SSID,First Name\r\n" + f"{ssid},Ana\r\n" * 10_000, "utf-8")

    dry = cli("bulk", str(roster), "--out", str(out), "--dry-run", "--json")
    assert dry.exit_code == 3, dry.output  # 9,999 duplicate rows for a person to look at
    assert json.loads(dry.stdout)["students_to_ask"] == 1
    assert json.loads(dry.stdout)["statuses"]["duplicate"] == 9_999

    before = data_requests()
    result = cli("bulk", str(roster), "--out", str(out), "--json")
    assert result.exit_code == 3, result.output
    assert "9999 of 10000 roster rows need a person (9999 duplicate)" in result.stderr
    assert data_requests() - before == asking_once
    summary = json.loads(result.stdout)
    assert summary["statuses"]["duplicate"] == 9_999
    assert summary["statuses"]["downloaded"] >= 1
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(row["status"] == "duplicate" for row in rows) == 9_999
    assert {row["detail"] for row in rows if row["status"] == "duplicate"} == {
        "same SSID as line 2"
    }


# --- config.toml, edited by hand ---------------------------------------------------------------
@dataclass(frozen=True)
class BrokenConfig:
    """config.toml as found: the commands of ``kind`` refuse it, naming ``words``; ``never``
    must not be echoed (a secret pasted into the file)."""

    kind: str  # "ets": every command reading profiles; "smtp": those using the SMTP profile
    words: tuple[str, ...]
    never: str | None = None
    names_the_file: bool = True


CONFIGS: dict[str, BrokenConfig | None] = {
    "not_toml.toml": BrokenConfig("ets", ("is not valid TOML", "line 2")),
    "not_utf8.toml": BrokenConfig("ets", ("is not UTF-8 text",)),
    "duplicate_profile.toml": BrokenConfig("ets", ("is not valid TOML", "twice")),
    "schools_not_a_list.toml": BrokenConfig("ets", ("profile 'district'", "schools")),
    "base_url_a_number.toml": BrokenConfig("ets", ("profile 'district'", "base_url")),
    "expires_not_a_date.toml": BrokenConfig("ets", ("profile 'district'", "expires")),
    "secret_in_config.toml": BrokenConfig(
        "ets", ("unknown key 'client_secret'",), never="hand-pasted-SECRET-9d41c"
    ),
    "profile_without_base_url.toml": BrokenConfig("ets", ("base_url: field required",)),
    "profiles_not_a_table.toml": BrokenConfig("ets", ("'profiles' key that is not a table",)),
    "profile_not_a_table.toml": BrokenConfig("ets", ("profile 'district' that is not a table",)),
    "default_names_no_profile.toml": BrokenConfig("ets", ("'distrcit' as the default",)),
    "version_from_the_future.toml": BrokenConfig("ets", ("has version 2",)),
    "http_to_a_remote_host.toml": BrokenConfig("ets", ("http://", "HTTPS")),
    "profile_name_with_spaces.toml": BrokenConfig("ets", ("'my district' is not a valid",)),
    "credentials_source_unknown.toml": BrokenConfig("ets", ("credentials_source",)),
    "smtp_not_a_table.toml": BrokenConfig("smtp", ("'smtp' key that is not a table",)),
    "smtp_profile_not_a_table.toml": BrokenConfig(
        "smtp", ("SMTP profile 'district' that is not a table",)
    ),
    "smtp_without_host.toml": BrokenConfig("smtp", ("host: field required",)),
    "smtp_without_from.toml": BrokenConfig("smtp", ("from: field required",)),
    "smtp_port_as_text.toml": BrokenConfig("smtp", ("port",)),
    "smtp_port_out_of_range.toml": BrokenConfig("smtp", ("port", "65535")),
    "smtp_security_unknown.toml": BrokenConfig("smtp", ("security",)),
    "smtp_from_not_an_address.toml": BrokenConfig("smtp", ("From address",)),
    "smtp_password_in_config.toml": BrokenConfig(
        "smtp", ("unknown key 'password'",), never="hand-pasted-PASSWORD-51e7"
    ),
    "smtp_clear_text_to_remote.toml": BrokenConfig("smtp", ("clear text",)),
    "smtp_host_is_a_url.toml": BrokenConfig("smtp", ("not a mail server host name",)),
    "smtp_empty_user.toml": BrokenConfig("smtp", ("user name is empty",)),
    "smtp_ca_file_missing.toml": BrokenConfig(
        "smtp", ("the CA file /nonexistent/district-ca.pem cannot be read",), names_the_file=False
    ),
    "utf8_with_bom.toml": None,  # Notepad's UTF-8: read as it is
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_file(cli: Any, config_dir: Path, tmp_path: Path, name: str) -> None:
    config_dir.mkdir()
    config = config_dir / "config.toml"
    config.write_bytes((BAD / "config" / name).read_bytes())
    case = CONFIGS[name]
    roster = _roster(tmp_path / "roster.csv", ["1000000001"])
    inputs = write_send_inputs(tmp_path / "send", [ANA])
    ets_commands = [
        ("config", "list"),
        ("config", "show", "district"),
        ("fetch", "--ssid", "1000000001"),
        ("bulk", str(roster), "--out", str(tmp_path / "out")),
    ]
    smtp_commands = [("config", "smtp-test", "district"), tuple(inputs.args())]
    if case is None:
        listed = cli("config", "list", "--json")
        assert listed.exit_code == 0, listed.output
        assert [p["name"] for p in json.loads(listed.stdout)] == ["district"]
        return
    before = config.read_bytes()
    for command in ets_commands if case.kind == "ets" else smtp_commands:
        result = cli(*command)
        error = bad_input(result, *case.words)
        if case.names_the_file:
            assert str(config) in error
        if case.never is not None:
            assert case.never not in result.output
    assert config.read_bytes() == before  # never "repaired" behind the user's back
    assert not (tmp_path / "out").exists()
    # Refused before any row: no ledger, no send report beside the PDFs.
    assert sorted(p.name for p in inputs.pdfs.iterdir()) == sorted(ANA.files())


def test_config_dir_that_is_a_file_and_config_toml_that_is_a_folder(
    cli: Any, config_dir: Path, tmp_path: Path
) -> None:
    config_dir.parent.mkdir(parents=True, exist_ok=True)
    config_dir.write_text("not a folder", "utf-8")
    bad_input(cli("config", "list"), "config.toml cannot be read")
    config_dir.unlink()
    (config_dir / "config.toml").mkdir(parents=True)
    bad_input(cli("config", "list"), "config.toml cannot be read")
    bad_input(
        cli(
            "config",
            "add",
            "x",
            "--base-url",
            "https://caaspp.example.org",
            env={"CAASPP_CLIENT_KEY": "k", "CAASPP_CLIENT_SECRET": "s"},
        ),
        "config.toml cannot be read",
    )


# --- PDFs that are damaged or already encrypted ------------------------------------------------
@dataclass(frozen=True)
class BrokenPdf:
    protect: str  # the reason `caaspp protect` gives, listed in its results
    send: str  # the reason `caaspp send` gives, in its send report


PDFS = {
    "empty.pdf": BrokenPdf("not a PDF", "it is not a readable PDF"),
    "cut_in_half.pdf": BrokenPdf("damaged PDF", "it opens without a password"),
    "header_only.pdf": BrokenPdf("damaged PDF", "it is not a readable PDF"),
    "notes_named_pdf.pdf": BrokenPdf("not a PDF", "it is not a readable PDF"),
    "html_error_page.pdf": BrokenPdf("not a PDF", "it is not a readable PDF"),
    "broken_xref.pdf": BrokenPdf("damaged PDF", "it opens without a password"),
    "no_pages.pdf": BrokenPdf("damaged PDF: it has no pages", "it opens without a password"),
    "encrypted_aes256.pdf": BrokenPdf(
        "already encrypted", "the password in the password file does not open it"
    ),
    "encrypted_rc4_40.pdf": BrokenPdf(
        "already encrypted", "the password in the password file does not open it"
    ),
    "encrypted_no_user_password.pdf": BrokenPdf("already encrypted", "it opens without a password"),
}
REPORT_NAME = "1000000001_CAASPP_2025_en.pdf"


@pytest.mark.parametrize("name", sorted(PDFS))
def test_pdf_given_to_protect(cli: Any, tmp_path: Path, name: str) -> None:
    reports, out, sheet = tmp_path / "reports", tmp_path / "protected", tmp_path / "pw.csv"
    reports.mkdir()
    shutil.copy(BAD / "pdfs" / name, reports / REPORT_NAME)
    _report(reports / "1000000002_CAASPP_2025_en.pdf")

    result = cli(
        "protect",
        str(reports),
        "--out",
        str(out),
        "--passwords",
        str(sheet),
        "--workers",
        "1",
        "--json",
    )

    # A damaged file among good ones is listed and the others are protected: exit 3
    # ("some work was not done"), one error line, the reason in the results.
    assert result.exit_code == 3, result.output
    error = error_line(result)
    assert "1 of 2 files could not be protected" in error
    files = {Path(f["input"]).name: f for f in json.loads(result.stdout)["files"]}
    assert files[REPORT_NAME]["outcome"] == "skipped"
    assert files[REPORT_NAME]["detail"].startswith(PDFS[name].protect)
    assert files["1000000002_CAASPP_2025_en.pdf"]["outcome"] == "protected"
    assert sorted(p.name for p in out.iterdir()) == ["1000000002_CAASPP_2025_en.pdf"]
    assert "1000000001" not in sheet.read_text("utf-8")
    assert (reports / REPORT_NAME).read_bytes() == (BAD / "pdfs" / name).read_bytes()


def _weakly_protected(path: Path, password: str) -> None:
    with report_pdf("Synthetic score report") as pdf:
        pdf.save(
            path,
            encryption=pikepdf.Encryption(owner="o", user=password, R=4, aes=False, metadata=False),
        )


def _protected_then_cut(path: Path, password: str) -> None:
    with report_pdf("Synthetic score report") as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="o" * 12, user=password, R=6))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


SEND_ONLY_PDFS: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "weak_encryption_with_the_right_password": (_weakly_protected, "weaker than AES-256"),
    "protected_then_cut_short": (_protected_then_cut, "it opens without a password"),
}


@pytest.fixture
def quick_mail(monkeypatch: pytest.MonkeyPatch) -> None:
    """`caaspp send` without its waits: no pause between retries, a 0.5 s SMTP timeout."""
    real = mail.send_reports
    monkeypatch.setattr(
        mail,
        "send_reports",
        lambda options, **kwargs: real(options, sleep=lambda seconds: None, **kwargs),
    )
    monkeypatch.setattr(mail, "MailServer", functools.partial(mail.MailServer, timeout=0.5))


@pytest.mark.parametrize("name", sorted(PDFS) + sorted(SEND_ONLY_PDFS))
def test_pdf_given_to_send(cli: Any, smtp_server: SmtpServer, tmp_path: Path, name: str) -> None:
    add_smtp_profile(smtp_server)
    inputs = write_send_inputs(tmp_path / "case", [ANA, BO])
    target = inputs.pdfs / ANA.files()[0]
    if name in PDFS:
        shutil.copy(BAD / "pdfs" / name, target)
        reason = PDFS[name].send
    else:
        make, reason = SEND_ONLY_PDFS[name]
        make(target, ANA.password)

    result = cli(*inputs.args(), "--json")

    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output and "error:" not in result.stderr
    assert "1 of 2 roster rows was not sent and needs a person (1 not encrypted)" in result.stderr
    rows = {row["ssid"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows[ANA.ssid]["outcome"] == "not_encrypted"
    assert reason in rows[ANA.ssid]["detail"]
    assert rows[BO.ssid]["outcome"] == "sent"
    # Nothing at all went to Ana's family: no report, and no password for it.
    assert [m.rcpt_tos for m in smtp_server.received] == [(BO.email,), (BO.email,)]


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
class MisbehavingServer:
    """A loopback TCP server whose every connection is handled by ``behaviour``."""

    def __init__(self, behaviour: Callable[[socket.socket], None]) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self.listener.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self.behaviour(conn)

    def wait(self) -> None:
        self.stopping.wait(30)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()


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


# --- The command line used wrong ---------------------------------------------------------------
@dataclass
class Setup:
    tmp: Path
    roster: Path
    reports: Path
    a_file: Path
    a_folder: Path
    out: Path
    send: Any
    ssid: str

    def send_args(self, *extra: str) -> list[str]:
        return [*self.send.args(), *extra]


@pytest.fixture
def setup(tmp_path: Path, sandbox: Any, sandbox_profile: Any, smtp_server: SmtpServer) -> Setup:
    add_smtp_profile(smtp_server)
    ssid = sandbox.state.world.examples()["english_only"]
    inputs = tmp_path / "inputs"
    roster = _roster(inputs / "roster.csv", [ssid])
    reports = inputs / "reports"
    _report(reports / f"{ssid}_CAASPP_2025_en.pdf")
    a_file = inputs / "notes.txt"
    a_file.write_text("not a folder", "utf-8")
    a_folder = inputs / "folder"
    a_folder.mkdir()
    send = write_send_inputs(tmp_path / "send", [ANA])
    return Setup(tmp_path, roster, reports, a_file, a_folder, tmp_path / "out", send, ssid)


MISUSES: dict[str, tuple[Callable[[Setup], list[str]], tuple[str, ...]]] = {
    "unknown_command": (lambda s: ["fecth", "--ssid", s.ssid], ("No such command 'fecth'",)),
    "unknown_option": (
        lambda s: ["bulk", str(s.roster), "--out", str(s.out), "--colour"],
        ("No such option: --colour",),
    ),
    "missing_out": (lambda s: ["bulk", str(s.roster)], ("Missing option '--out'",)),
    "missing_roster": (lambda s: ["bulk", "--out", str(s.out)], ("Missing argument",)),
    "missing_ssid": (lambda s: ["fetch"], ("Missing option '--ssid'",)),
    "missing_smtp": (
        lambda s: [*s.send_args()[:-4], "--rate", "60"],
        ("Missing option '--mail' / '--smtp'",),
    ),
    "missing_passwords": (
        lambda s: ["protect", str(s.reports), "--out", str(s.out)],
        ("Missing option '--passwords'",),
    ),
    "concurrency_zero": (
        lambda s: ["bulk", str(s.roster), "--out", str(s.out), "--concurrency", "0"],
        ("'--concurrency'",),
    ),
    "concurrency_in_words": (
        lambda s: ["bulk", str(s.roster), "--out", str(s.out), "--concurrency", "eight"],
        ("'--concurrency'",),
    ),
    "rate_zero": (lambda s: s.send_args("--rate", "0"), ("'--rate'",)),
    "workers_zero": (
        lambda s: [
            "protect",
            str(s.reports),
            "--out",
            str(s.out),
            "--passwords",
            str(s.tmp / "pw.csv"),
            "--workers",
            "0",
        ],
        ("'--workers'",),
    ),
    "year_of_two_digits": (
        lambda s: ["fetch", "--ssid", s.ssid, "--year", "25"],
        ("year '25' is not a school year",),
    ),
    "unknown_test": (
        lambda s: ["bulk", str(s.roster), "--out", str(s.out), "--test", "SBAC"],
        ("unknown test 'SBAC'",),
    ),
    "unknown_language": (
        lambda s: ["fetch", "--ssid", s.ssid, "--language", "Klingon"],
        ("unknown language 'Klingon'",),
    ),
    "ssid_of_nine_digits": (lambda s: ["fetch", "--ssid", s.ssid[1:]], ("is not an SSID",)),
    "expiry_in_us_format": (
        lambda s: [
            "config",
            "add",
            "new",
            "--base-url",
            "https://caaspp.example.org",
            "--expires",
            "06/30/2026",
        ],
        ("'--expires'",),
    ),
    "base_url_over_http": (
        lambda s: ["config", "add", "new", "--base-url", "http://caaspp.example.org"],
        ("HTTPS",),
    ),
    "profile_unknown": (
        lambda s: ["--profile", "distrcit", "fetch", "--ssid", s.ssid],
        ("no profile named 'distrcit'",),
    ),
    "smtp_profile_unknown": (
        lambda s: s.send_args("--smtp", "districk"),
        ("no SMTP profile named 'districk'",),
    ),
    "roster_is_a_folder": (
        lambda s: ["bulk", str(s.a_folder), "--out", str(s.out)],
        ("is a folder",),
    ),
    "roster_does_not_exist": (
        lambda s: ["bulk", str(s.tmp / "rooster.csv"), "--out", str(s.out)],
        ("there is no file",),
    ),
    "send_roster_is_a_folder": (
        lambda s: s.send_args("--roster", str(s.a_folder)),
        ("'--roster'", "is a directory"),
    ),
    "send_passwords_is_a_folder": (
        lambda s: s.send_args("--passwords", str(s.a_folder)),
        ("'--passwords'", "is a directory"),
    ),
    "protect_passwords_is_a_folder": (
        lambda s: ["protect", str(s.reports), "--out", str(s.out), "--passwords", str(s.a_folder)],
        ("'--passwords'",),
    ),
    "protect_passwords_under_a_file": (
        lambda s: [
            "protect",
            str(s.reports),
            "--out",
            str(s.out),
            "--passwords",
            str(s.a_file / "pw.csv"),
        ],
        ("is a file, not a folder",),
    ),
    "protect_passwords_inside_out": (
        lambda s: [
            "protect",
            str(s.reports),
            "--out",
            str(s.out),
            "--passwords",
            str(s.out / "pw.csv"),
        ],
        ("inside the output folder",),
    ),
    "protect_input_without_pdfs": (
        lambda s: [
            "protect",
            str(s.a_folder),
            "--out",
            str(s.out),
            "--passwords",
            str(s.tmp / "pw.csv"),
        ],
        ("no PDF files found",),
    ),
    "protect_password_column_without_roster": (
        lambda s: [
            "protect",
            str(s.reports),
            "--out",
            str(s.out),
            "--passwords",
            str(s.tmp / "pw.csv"),
            "--password-column",
            "Password",
        ],
        ("--password-column needs --roster",),
    ),
    "ca_file_is_a_folder": (
        lambda s: [
            "config",
            "smtp",
            "x",
            "--host",
            "smtp.example.org",
            "--from",
            "a@example.org",
            "--ca-file",
            str(s.a_folder),
        ],
        ("'--ca-file'",),
    ),
    "templates_is_a_file": (
        lambda s: s.send_args("--templates", str(s.a_file)),
        ("'--templates'",),
    ),
    "send_contradictory_options": (
        lambda s: s.send_args("--resend-uncertain", "--mark-uncertain-sent"),
        ("contradict",),
    ),
    "bulk_out_is_a_file": (
        lambda s: ["bulk", str(s.roster), "--out", str(s.a_file)],
        ("output folder", "is a file, not a folder"),
    ),
    "bulk_out_under_a_file": (
        lambda s: ["bulk", str(s.roster), "--out", str(s.a_file / "reports")],
        ("cannot write in the output folder", "Not a directory"),
    ),
    "fetch_out_is_a_file": (
        lambda s: ["fetch", "--ssid", s.ssid, "--out", str(s.a_file)],
        ("'--out'", "is a file"),
    ),
    "fetch_out_under_a_file": (
        lambda s: ["fetch", "--ssid", s.ssid, "--out", str(s.a_file / "reports")],
        ("cannot write in the output folder",),
    ),
    "protect_out_is_a_file": (
        lambda s: [
            "protect",
            str(s.reports),
            "--out",
            str(s.a_file),
            "--passwords",
            str(s.tmp / "pw.csv"),
        ],
        ("'--out'", "is a file"),
    ),
    "protect_out_under_a_file": (
        lambda s: [
            "protect",
            str(s.reports),
            "--out",
            str(s.a_file / "p"),
            "--passwords",
            str(s.tmp / "pw.csv"),
        ],
        ("cannot write in the output folder",),
    ),
    "outbox_is_a_file": (
        lambda s: s.send_args("--dry-run", "--outbox", str(s.a_file)),
        ("'--outbox'",),
    ),
    "outbox_under_a_file": (
        lambda s: s.send_args("--dry-run", "--outbox", str(s.a_file / "outbox")),
        ("cannot write in the outbox",),
    ),
    "sandbox_roster_out_is_a_folder": (
        lambda s: ["sandbox", "--roster-out", str(s.a_folder)],
        ("'--roster-out'",),
    ),
    "sandbox_port_out_of_range": (lambda s: ["sandbox", "--port", "70000"], ("'--port'",)),
    "layout_climbing_out": (
        lambda s: [
            "bulk",
            str(s.roster),
            "--out",
            str(s.out),
            "--layout",
            "../{ssid}_{test}_{year}_{language}.pdf",
        ],
        ("'..'",),
    ),
    "layout_unknown_field": (
        lambda s: [
            "bulk",
            str(s.roster),
            "--out",
            str(s.out),
            "--layout",
            "{teacher}/{ssid}_{test}_{year}_{language}.pdf",
        ],
        ("unknown field {teacher}",),
    ),
    "layout_brace_never_closed": (
        lambda s: [
            "bulk",
            str(s.roster),
            "--out",
            str(s.out),
            "--layout",
            "{school/{ssid}_{test}_{year}_{language}.pdf",
        ],
        ("not a valid template",),
    ),
    "ssid_column_not_in_roster": (
        lambda s: ["bulk", str(s.roster), "--out", str(s.out), "--ssid-column", "Student #"],
        ("no column named 'Student #'",),
    ),
}


@pytest.mark.parametrize("name", sorted(MISUSES))
def test_command_line_used_wrong(cli: Any, setup: Setup, name: str) -> None:
    make_args, words = MISUSES[name]
    before = snapshot(setup.tmp / "inputs", setup.send.pdfs)
    result = cli(*make_args(setup))
    bad_input(result, *words)
    assert not setup.out.exists()
    assert snapshot(setup.tmp / "inputs", setup.send.pdfs) == before


def test_a_folder_for_data_or_config_that_is_a_file(cli: Any, setup: Setup) -> None:
    bad_input(
        cli(
            "fetch",
            "--ssid",
            setup.ssid,
            "--out",
            str(setup.out),
            env={"CAASPP_DATA_DIR": str(setup.a_file)},
        ),
        "cannot write its audit log",
        "Not a directory",
    )
    assert not setup.out.exists()  # no request goes unrecorded: none was made
    bad_input(
        cli("config", "list", env={"CAASPP_CONFIG_DIR": str(setup.a_file)}),
        "cannot be read (Not a directory)",
    )


# --- Read-only folders -------------------------------------------------------------------------
READ_ONLY: dict[str, tuple[Callable[[Setup, Path], list[str]], tuple[str, ...]]] = {
    "bulk_out": (
        lambda s, ro: ["bulk", str(s.roster), "--out", str(ro)],
        ("cannot write in the output folder",),
    ),
    "bulk_out_below": (
        lambda s, ro: ["bulk", str(s.roster), "--out", str(ro / "reports")],
        ("cannot write in the output folder",),
    ),
    "fetch_out": (
        lambda s, ro: ["fetch", "--ssid", s.ssid, "--out", str(ro)],
        ("cannot write in the output folder",),
    ),
    "protect_out": (
        lambda s, ro: [
            "protect",
            str(s.reports),
            "--out",
            str(ro),
            "--passwords",
            str(s.tmp / "pw.csv"),
        ],
        ("cannot write in the output folder",),
    ),
    "protect_passwords": (
        lambda s, ro: [
            "protect",
            str(s.reports),
            "--out",
            str(s.out),
            "--passwords",
            str(ro / "pw.csv"),
        ],
        ("cannot write in the folder of the password file",),
    ),
    "send_outbox": (
        lambda s, ro: s.send_args("--dry-run", "--outbox", str(ro)),
        ("cannot write in the outbox",),
    ),
    "sandbox_roster_out": (
        lambda s, ro: ["sandbox", "--roster-out", str(ro / "roster.csv")],
        ("cannot write in the folder of --roster-out",),
    ),
    "data_dir": (
        lambda s, ro: ["fetch", "--ssid", s.ssid, "--out", str(s.out)],
        ("cannot write its audit log",),
    ),
    "config_dir": (
        lambda s, ro: [
            "config",
            "add",
            "more",
            "--base-url",
            "https://caaspp.example.org",
            "--env-credentials",
        ],
        ("could not write",),
    ),
}


@pytest.mark.parametrize("name", sorted(READ_ONLY))
def test_read_only_folder(cli: Any, setup: Setup, name: str) -> None:
    make_args, words = READ_ONLY[name]
    env = {}
    folder = setup.tmp / "read-only"
    if name == "data_dir":
        env["CAASPP_DATA_DIR"] = str(folder)
    if name == "config_dir":
        config = Path(os.environ["CAASPP_CONFIG_DIR"])
        folder = config
    with read_only(folder) as ro:
        result = cli(*make_args(setup, ro), env=env)
        bad_input(result, *words)
        assert list(ro.iterdir()) == [] or name == "config_dir"
    assert not setup.out.exists()


def test_send_from_a_read_only_folder_of_pdfs_sends_nothing(
    cli: Any, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    add_smtp_profile(smtp_server)
    inputs = write_send_inputs(tmp_path / "case", [ANA])
    with read_only(inputs.pdfs):
        bad_input(cli(*inputs.args()), "cannot write in the folder", str(inputs.pdfs))
    assert smtp_server.handler.sessions == 0


# --- Nothing done before is lost or done again -------------------------------------------------
@pytest.fixture
def finished_bulk(cli: Any, sandbox: Any, sandbox_profile: Any, tmp_path: Path) -> Any:
    examples = sandbox.state.world.examples()
    ssids = [examples[case] for case in ("english_only", "spanish", "no_reports")]
    roster, out = _roster(tmp_path / "roster.csv", ssids), tmp_path / "out"
    first = cli("bulk", str(roster), "--out", str(out))
    assert first.exit_code == 0, first.output
    assert list(out.glob("*.pdf"))
    return roster, out


@pytest.mark.parametrize(
    "name",
    [
        "binary.csv",
        "empty.csv",
        "excel_workbook_renamed.csv",
        "html_saved_as_csv.csv",
        "no_ssid_column.csv",
        "quote_left_open.csv",
        "utf32.csv",
    ],
)
def test_rerun_of_bulk_with_a_roster_broken_since_touches_nothing(
    cli: Any, sandbox: Any, finished_bulk: Any, name: str
) -> None:
    roster, out = finished_bulk
    good, before = roster.read_bytes(), snapshot(out)

    roster.write_bytes((BAD / "rosters" / name).read_bytes())
    bad_input(cli("bulk", str(roster), "--out", str(out)))
    assert snapshot(out) == before  # the PDFs, the ledger and the manifest

    roster.write_bytes(good)
    downloads = sandbox.state.stats()["counters"].get("downloads_ok", 0)
    again = cli("bulk", str(roster), "--out", str(out), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["reports_saved"] == 0
    assert sandbox.state.stats()["counters"].get("downloads_ok", 0) == downloads
    pdfs = {k: v for k, v in before.items() if k.endswith(".pdf")}
    assert {k: v for k, v in snapshot(out).items() if k.endswith(".pdf")} == pdfs


def test_rerun_of_bulk_with_a_broken_config_or_options_touches_nothing(
    cli: Any, finished_bulk: Any, config_dir: Path
) -> None:
    roster, out = finished_bulk
    before = snapshot(out)
    bad_input(cli("bulk", str(roster), "--out", str(out), "--layout", "{ssid}.pdf"))
    bad_input(cli("bulk", str(roster), "--out", str(out), "--test", "SBAC"))
    config = config_dir / "config.toml"
    good = config.read_bytes()
    config.write_bytes((BAD / "config" / "not_toml.toml").read_bytes())
    bad_input(cli("bulk", str(roster), "--out", str(out)), "is not valid TOML")
    config.write_bytes(good)
    assert snapshot(out) == before


def test_rerun_of_protect_with_a_damaged_new_file_keeps_what_was_protected(
    cli: Any, tmp_path: Path
) -> None:
    reports, out, sheet = tmp_path / "reports", tmp_path / "protected", tmp_path / "pw.csv"
    for ssid in ("1000000001", "1000000002"):
        _report(reports / f"{ssid}_CAASPP_2025_en.pdf")
    first = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet))
    assert first.exit_code == 0, first.output
    before = snapshot(out) | snapshot(tmp_path / "pw.csv")

    shutil.copy(BAD / "pdfs" / "cut_in_half.pdf", reports / "1000000003_CAASPP_2025_en.pdf")
    again = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet), "--json")
    assert again.exit_code == 3
    error_line(again)
    outcomes = {Path(f["input"]).name[:10]: f["outcome"] for f in json.loads(again.stdout)["files"]}
    assert outcomes == {
        "1000000001": "already_protected",
        "1000000002": "already_protected",
        "1000000003": "skipped",
    }
    assert snapshot(out) | snapshot(tmp_path / "pw.csv") == before

    roster = tmp_path / "roster.csv"
    roster.write_bytes((BAD / "rosters" / "quote_left_open.csv").read_bytes())
    bad_input(
        cli(
            "protect",
            str(reports),
            "--out",
            str(out),
            "--passwords",
            str(sheet),
            "--roster",
            str(roster),
        ),
        "not closed",
    )
    assert snapshot(out) | snapshot(tmp_path / "pw.csv") == before


def test_rerun_of_send_after_bad_input_or_a_lost_server_sends_nothing_twice(
    cli: Any, quick_mail: None, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    add_smtp_profile(smtp_server)
    inputs = write_send_inputs(tmp_path / "case", [ANA, BO])
    assert cli(*inputs.args()).exit_code == 0
    assert len(smtp_server.received) == 4
    report = inputs.pdfs / "send-report.csv"
    before = report.read_bytes()

    for name in ("unknown_placeholder", "password_in_report_body"):
        bad_input(cli(*inputs.args(), "--templates", str(BAD / "templates" / name)))
    roster = inputs.roster.read_bytes()
    inputs.roster.write_bytes((BAD / "rosters" / "binary.csv").read_bytes())
    bad_input(cli(*inputs.args()), "binary data")
    inputs.roster.write_bytes(roster)
    assert report.read_bytes() == before
    assert len(smtp_server.received) == 4

    # A third family joins; the mail server then hangs up on every connection.
    more = write_send_inputs(tmp_path / "more", [ANA, BO, CY])
    shutil.copy(more.pdfs / CY.files()[0], inputs.pdfs / CY.files()[0])
    shutil.copy(more.roster, inputs.roster)
    with inputs.passwords.open("a", encoding="utf-8", newline="") as handle:
        handle.write(more.passwords.read_text("utf-8").splitlines()[-1] + "\r\n")
    hangs_up = MisbehavingServer(lambda conn: None)
    try:
        add_smtp_profile(hangs_up)
        lost = cli(*inputs.args(), "--json")
    finally:
        hangs_up.close()
    assert lost.exit_code == 3
    assert "could not be used after 4 attempts" in error_line(lost, only=False)
    rows = list(csv.DictReader(io.StringIO(report.read_text("utf-8-sig"))))
    assert [row["outcome"] for row in rows] == ["already_sent", "already_sent", "stopped"]

    add_smtp_profile(smtp_server)
    final = cli(*inputs.args(), "--json")
    assert final.exit_code == 0, final.output
    assert json.loads(final.stdout)["messages_sent"] == 2
    assert [m.rcpt_tos for m in smtp_server.received[4:]] == [(CY.email,), (CY.email,)]
