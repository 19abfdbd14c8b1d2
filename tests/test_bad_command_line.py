"""Bad input: the command line used wrong, and folders that are files or read-only.

See tests/bad_input_checks.py for what each refusal must look like.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bad_input_checks import (
    ANA,
    _report,
    _roster,
    bad_input,
    read_only,
    snapshot,
)
from helpers import SmtpServer, add_smtp_profile, write_send_inputs


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
