"""`caaspp purge`: the reports of a folder deleted after distribution, and nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import SmtpServer, add_smtp_profile, report_pdf

from caaspp_cli.artifacts import PasswordSheet
from caaspp_cli.cli import purge as purge_cli
from caaspp_cli.cli.sandbox import roster_csv
from caaspp_cli.errors import LinkRefusedError
from caaspp_cli.fetch.ledger import Ledger
from caaspp_cli.fsutil import TEMP_PREFIX, TEMP_SUFFIX
from caaspp_cli.purge.run import PURGE_LOG

DAY = 86_400


@pytest.fixture
def bulk_out(cli: Any, sandbox: Any, sandbox_profile: Any, tmp_path: Path) -> Path:
    """A real `caaspp bulk` folder: a dozen students' reports, a manifest and a ledger."""
    rows = sandbox.state.world.roster_rows()[:12]
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv(rows), encoding="utf-8")
    out = tmp_path / "reports"
    result = cli(
        "bulk",
        str(roster),
        "--out",
        str(out),
        "--layout",
        "{grade}/{ssid}_{test}_{year}_{language}.pdf",
    )
    assert result.exit_code == 0, result.stderr
    assert len(pdfs(out)) >= 10
    return out


def pdfs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.pdf"))


def everything(folder: Path) -> set[str]:
    """Every path under ``folder`` but caaspp's own data folder (its audit log)."""
    data = Path(os.environ["CAASPP_DATA_DIR"])
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p != data and not p.is_relative_to(data)
    }


def ssids_in(folder: Path) -> set[str]:
    return {p.name[:10] for p in pdfs(folder)}


def make_folder(path: Path, *, marker: bool = True, n: int = 3) -> Path:
    """A folder with ``n`` report-named PDFs and, unless told otherwise, a manifest."""
    path.mkdir(parents=True)
    for k in range(n):
        (path / f"100000000{k}_CAASPP_2025_en.pdf").write_bytes(b"%PDF-1.7\n" + b"x" * 100)
    if marker:
        (path / "manifest.csv").write_text("ssid,status\n", encoding="utf-8")
    return path


def age(path: Path, days: float) -> None:
    moment = time.time() - days * DAY
    os.utime(path, (moment, moment))


def test_purge_deletes_every_report_and_temp_file_and_keeps_manifest_and_ledger(
    cli: Any, bulk_out: Path
) -> None:
    ssids = ssids_in(bulk_out)
    count = len(pdfs(bulk_out))
    temp = bulk_out / f"{TEMP_PREFIX}killed{TEMP_SUFFIX}"
    temp.write_bytes(b"%PDF-1.7 half of a report")
    kept = everything(bulk_out) - {
        p.relative_to(bulk_out).as_posix() for p in [*pdfs(bulk_out), temp]
    }

    result = cli("purge", str(bulk_out), "--yes")

    assert result.exit_code == 0, result.output
    assert pdfs(bulk_out) == [] and not temp.exists()
    assert everything(bulk_out) == kept | {PURGE_LOG}
    assert {"manifest.csv", ".caaspp-ledger.sqlite"} <= kept
    assert f"Deleted {count} PDF files and 1 temp file" in result.stdout
    log = (bulk_out / PURGE_LOG).read_text(encoding="utf-8")
    assert f"removed {count} PDF file(s) and 1 temp file(s)" in log
    assert len(log.splitlines()) == 1
    for ssid in ssids:  # counts only: no report's name, which carries the SSID
        assert ssid not in result.output and ssid not in log
    with Ledger.in_folder(bulk_out) as ledger:  # what was fetched stays on record
        assert ledger.counts()["downloaded"] == count


def test_purge_without_yes_and_without_a_terminal_exits_2_and_deletes_nothing(
    cli: Any, bulk_out: Path
) -> None:
    before = everything(bulk_out)

    result = cli("purge", str(bulk_out))

    assert result.exit_code == 2
    assert "nothing deleted" in result.stderr and "--yes" in result.stderr
    assert everything(bulk_out) == before


def test_purge_asks_showing_count_size_and_dates_and_keeps_everything_on_no(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_folder(tmp_path / "reports", n=3)
    age(folder / "1000000000_CAASPP_2025_en.pdf", 10)
    monkeypatch.setattr(purge_cli, "_stdin_is_terminal", lambda: True)
    before = everything(folder)

    result = cli("purge", str(folder), input="n\n")

    assert result.exit_code == 0
    assert "3 PDF files, 327 bytes" in result.stderr
    oldest = time.strftime("%Y-%m-%d", time.localtime(time.time() - 10 * DAY))
    assert f"from {oldest} " in result.stderr
    assert "Delete them? [y/N]" in result.stderr
    assert "not shredded" in result.stderr
    assert "1000000000" not in result.output
    assert everything(folder) == before

    yes = cli("purge", str(folder), input="y\n")

    assert yes.exit_code == 0
    assert pdfs(folder) == []


def test_purge_refuses_a_folder_caaspp_did_not_write_unless_forced(
    cli: Any, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path / "Documents", marker=False)
    (folder / "budget.pdf").write_bytes(b"%PDF-1.7\n")  # not only reports: not fetch's
    before = everything(folder)

    refused = cli("purge", str(folder), "--yes")

    assert refused.exit_code == 2
    assert "no caaspp ledger, manifest or send report" in refused.stderr
    assert "--force" in refused.stderr
    assert everything(folder) == before

    forced = cli("purge", str(folder), "--yes", "--force")

    assert forced.exit_code == 0, forced.output
    assert pdfs(folder) == []


@pytest.mark.parametrize("marker", [".caaspp-send-ledger.sqlite", "send-report.csv"])
def test_a_send_folder_with_nothing_recorded_as_delivered_is_recognised_and_refused(
    cli: Any, tmp_path: Path, marker: str
) -> None:
    folder = make_folder(tmp_path / "protected", marker=False)
    (folder / marker).write_bytes(b"")

    result = cli("purge", str(folder), "--yes")

    assert result.exit_code == 3, result.output
    assert "does not look like" not in result.stderr
    assert "3 reports" in result.stderr and "--force" in result.stderr
    assert len(pdfs(folder)) == 3


def test_purge_refuses_the_root_even_with_force(cli: Any) -> None:
    # No --yes: were the refusal ever to fail, the missing confirmation still stops it.
    result = cli("purge", "/", "--force")

    assert result.exit_code == 2
    assert "root of the file system" in result.stderr


def test_purge_refuses_the_home_folder_and_the_folders_above_it(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_folder(tmp_path / "users" / "coordinator")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    before = everything(tmp_path)

    mine = cli("purge", str(home), "--yes", "--force")
    above = cli("purge", str(tmp_path / "users"), "--yes", "--force")

    assert mine.exit_code == 2 and "your home folder" in mine.stderr
    assert above.exit_code == 2 and "holding your home folder" in above.stderr
    assert everything(tmp_path) == before


def test_purge_never_follows_or_removes_a_link_out_of_the_folder(cli: Any, tmp_path: Path) -> None:
    elsewhere = make_folder(tmp_path / "elsewhere", marker=False, n=2)
    folder = make_folder(tmp_path / "reports", n=1)
    (folder / "linked-folder").symlink_to(elsewhere, target_is_directory=True)
    (folder / "2000000000_CAASPP_2025_en.pdf").symlink_to(
        elsewhere / "1000000000_CAASPP_2025_en.pdf"
    )

    result = cli("purge", str(folder), "--yes", "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pdfs_removed"] == 1
    assert summary["links_skipped"] == 1
    assert len(pdfs(elsewhere)) == 2
    assert (folder / "2000000000_CAASPP_2025_en.pdf").is_symlink()
    assert (folder / "linked-folder").is_symlink()


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")
def test_a_linked_purge_log_is_refused_before_anything_is_removed(cli: Any, tmp_path: Path) -> None:
    """A purge.log that is a link was appended to, outside the folder."""
    folder = make_folder(tmp_path / "reports", n=2)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    (folder / PURGE_LOG).symlink_to(victim)
    before = everything(folder)

    result = cli("purge", str(folder), "--yes")

    assert result.exit_code == 2, result.output
    assert str(folder.resolve() / PURGE_LOG) in result.stderr.replace("\n", "")
    assert "symbolic link" in result.stderr
    assert victim.read_text(encoding="utf-8") == "keep me\n"
    assert everything(folder) == before  # nothing removed that the log would not record


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")
def test_a_log_swapped_for_a_link_after_the_plan_is_not_appended_to(tmp_path: Path) -> None:
    """Between the plan and the log line, the log became a link: the append refuses it."""
    from caaspp_cli.purge.run import plan_purge, purge

    folder = make_folder(tmp_path / "reports", n=2)
    plan = plan_purge(folder)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    (folder / PURGE_LOG).symlink_to(victim)
    with pytest.raises(LinkRefusedError):
        purge(plan)
    assert victim.read_text(encoding="utf-8") == "keep me\n"


def test_older_than_removes_only_files_last_modified_before_then(cli: Any, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "reports", n=4)
    old = sorted(folder.glob("*.pdf"))[:3]
    for path in old:
        age(path, 31)
    young = sorted(folder.glob("*.pdf"))[3]
    age(young, 29)

    result = cli("purge", str(folder), "--older-than", "30", "--yes", "--json")

    assert result.exit_code == 0, result.output
    assert pdfs(folder) == [young]
    summary = json.loads(result.stdout)
    assert (summary["pdfs_removed"], summary["kept_newer"]) == (3, 1)
    assert summary["older_than_days"] == 30
    assert "older than 30 day(s); 1 newer kept" in (folder / PURGE_LOG).read_text("utf-8")


def _sheet(path: Path) -> Path:
    PasswordSheet(path).append(
        [
            {
                "ssid": "1000000000",
                "file": "1000000000_CAASPP_2025_en.pdf",
                "password": "maple-river-0000-stone",
            }
        ]
    )
    return path


def test_passwords_option_deletes_the_password_file_too(cli: Any, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "protected")
    sheet = _sheet(tmp_path / "private" / "passwords.csv")

    result = cli("purge", str(folder), "--passwords", str(sheet), "--yes")

    assert result.exit_code == 0, result.output
    assert not sheet.exists() and pdfs(folder) == []
    assert f"Deleted the password file {sheet}" in result.stdout
    assert "password file" in (folder / PURGE_LOG).read_text("utf-8")
    assert "maple-river" not in result.output


def test_a_password_file_newer_than_older_than_is_kept(cli: Any, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "protected")
    for path in folder.glob("*.pdf"):
        age(path, 60)
    sheet = _sheet(tmp_path / "passwords.csv")  # a row added today: its family may wait

    result = cli("purge", str(folder), "--passwords", str(sheet), "--older-than", "30", "--yes")

    assert result.exit_code == 0, result.output
    assert sheet.exists() and pdfs(folder) == []
    assert "Kept the password file" in result.stdout


def test_a_passwords_file_that_is_not_a_password_sheet_is_refused_and_nothing_deleted(
    cli: Any, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path / "reports")
    thesis = tmp_path / "thesis.csv"
    thesis.write_text("chapter,words\n1,5000\n", encoding="utf-8")
    before = everything(folder)

    result = cli("purge", str(folder), "--passwords", str(thesis), "--yes")

    assert result.exit_code == 2
    assert "not a caaspp password file" in result.stderr
    assert thesis.exists() and everything(folder) == before


def test_purge_of_a_folder_that_does_not_exist_is_bad_input(cli: Any, tmp_path: Path) -> None:
    result = cli("purge", str(tmp_path / "nowhere"), "--yes")

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_nothing_to_delete_is_said_and_logs_nothing(cli: Any, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "reports", n=0)

    result = cli("purge", str(folder), "--json")  # nothing to confirm: no --yes needed

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pdfs_removed"] == 0
    assert not (folder / PURGE_LOG).exists()


@contextmanager
def undeletable(folder: Path) -> Iterator[None]:
    """Files in ``folder`` cannot be deleted: the folder read-only, or immutable for root
    (whom permissions do not stop)."""
    if os.name != "posix":
        pytest.skip("needs POSIX permissions")
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    chattr = shutil.which("chattr")
    if (
        chattr is None
        or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0
    ):
        pytest.skip("root, and no immutable attribute on this file system")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


@pytest.mark.posix
def test_a_file_that_cannot_be_deleted_is_exit_3_with_the_reason(cli: Any, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "reports", n=1)
    locked = folder / "locked"
    locked.mkdir()
    (locked / "3000000000_CAASPP_2025_en.pdf").write_bytes(b"%PDF-1.7")
    with undeletable(locked):
        result = cli("purge", str(folder), "--yes")

    assert result.exit_code == 3
    assert "1 file could not be deleted (" in result.stderr
    assert "3000000000" not in result.output
    assert pdfs(folder) == [locked / "3000000000_CAASPP_2025_en.pdf"]
    assert "Deleted 1 PDF file" in result.stdout
    assert "1 could not be removed" in (folder / PURGE_LOG).read_text("utf-8")


def test_purge_help_says_deleted_not_shredded_and_what_it_refuses(cli: Any) -> None:
    result = cli("purge", "--help")

    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Deleted, not shredded" in text and "encrypted storage" in text
    assert "--force" in text and "--older-than" in text and "--passwords" in text


def test_a_folder_swapped_for_a_link_after_the_plan_leads_nowhere_outside(
    tmp_path: Path,
) -> None:
    from caaspp_cli.purge.run import plan_purge, purge

    folder = make_folder(tmp_path / "reports", n=0)
    make_folder(folder / "grade-5", marker=False, n=1)
    elsewhere = make_folder(tmp_path / "elsewhere", marker=False, n=1)
    plan = plan_purge(folder)
    assert len(plan.pdfs) == 1
    (folder / "grade-5").rename(tmp_path / "moved")
    (folder / "grade-5").symlink_to(elsewhere, target_is_directory=True)

    summary = purge(plan)

    assert summary.pdfs_removed == 0
    assert summary.failed == [
        (
            "grade-5/1000000000_CAASPP_2025_en.pdf",
            "its folder now leads outside the folder being purged",
        )
    ]
    assert len(pdfs(elsewhere)) == 1


# --- Folders of `caaspp protect` and `caaspp send`: nothing undelivered goes without --force ------
def _protect_and_send(
    cli: Any, tmp_path: Path, smtp_server: SmtpServer, *, students: int, emailed: int
) -> tuple[Path, Path]:
    """Real reports protected by `caaspp protect`, then `caaspp send` to the first
    ``emailed`` students only (the roster has no email for the others)."""
    reports = tmp_path / "reports"
    reports.mkdir()
    lines = ["SSID,First Name,Last Name,Guardian Email"]
    for n in range(students):
        ssid = f"{2000000000 + n}"
        for test in ("CAASPP", "ELPAC"):
            with report_pdf(f"Score report {ssid} {test}") as pdf:
                pdf.save(reports / f"{ssid}_{test}_2025_en.pdf")
        email = f"family{n}@example.org" if n < emailed else ""
        lines.append(f"{ssid},Student{n},Lee,{email}")
    roster = tmp_path / "roster.csv"
    roster.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out, sheet = tmp_path / "protected", tmp_path / "private" / "passwords.csv"
    protected = cli(
        "protect", str(reports), "--out", str(out), "--passwords", str(sheet), "--workers", "1"
    )
    assert protected.exit_code == 0, protected.output
    if emailed:
        add_smtp_profile(smtp_server)
        sent = cli(
            "send",
            "--roster",
            str(roster),
            "--pdfs",
            str(out),
            "--passwords",
            str(sheet),
            "--smtp",
            "district",
            "--rate",
            "6000",
        )
        assert sent.exit_code == (0 if emailed == students else 3), sent.output
        assert len(smtp_server.received) == 2 * emailed
    return out, sheet


def test_purge_refuses_a_protect_folder_whose_families_were_not_all_sent_unless_forced(
    cli: Any, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    out, sheet = _protect_and_send(cli, tmp_path, smtp_server, students=5, emailed=2)
    before = everything(out)

    refused = cli("purge", str(out), "--passwords", str(sheet), "--yes")

    assert refused.exit_code == 3, refused.output
    said = " ".join(refused.stderr.split())
    assert "nothing deleted" in said
    assert "3 of 5 families" in said and "6 of 10 reports" in said
    assert "send-report.csv" in said and "--force" in said
    assert everything(out) == before and sheet.exists()

    forced = cli("purge", str(out), "--passwords", str(sheet), "--yes", "--force")

    assert forced.exit_code == 0, forced.output
    assert pdfs(out) == [] and not sheet.exists()
    assert "6 of them were not recorded as delivered (--force)." in forced.stdout
    assert "send-report.csv" in everything(out)
    logged = (out / PURGE_LOG).read_text("utf-8")
    assert "removed 10 PDF file(s)" in logged
    assert "6 not recorded as delivered (--force)" in logged


def test_purge_of_a_protect_folder_no_send_has_used_is_recognised_by_its_password_sheet(
    cli: Any, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    out, sheet = _protect_and_send(cli, tmp_path, smtp_server, students=3, emailed=0)

    refused = cli("purge", str(out), "--passwords", str(sheet), "--yes")

    assert refused.exit_code == 3, refused.output
    said = " ".join(refused.stderr.split())
    assert "does not look like" not in said
    assert "no `caaspp send` has run" in said and "6 reports" in said and "3 families" in said
    assert len(pdfs(out)) == 6 and sheet.exists()

    # Without the sheet, nothing says this folder is caaspp's: refused as before.
    unknown = cli("purge", str(out), "--yes")
    assert unknown.exit_code == 2 and "--passwords" in unknown.stderr

    forced = cli("purge", str(out), "--passwords", str(sheet), "--yes", "--force")
    assert forced.exit_code == 0, forced.output
    assert pdfs(out) == [] and not sheet.exists()


def test_purge_of_a_protect_folder_every_family_got_needs_no_force(
    cli: Any, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    out, sheet = _protect_and_send(cli, tmp_path, smtp_server, students=2, emailed=2)

    result = cli("purge", str(out), "--passwords", str(sheet), "--yes")

    assert result.exit_code == 0, result.output
    assert pdfs(out) == [] and not sheet.exists()


def test_purge_of_a_bulk_folder_says_what_it_cannot_check_before_asking(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_folder(tmp_path / "reports", n=2)
    monkeypatch.setattr(purge_cli, "_stdin_is_terminal", lambda: True)

    result = cli("purge", str(folder), input="n\n")

    said = " ".join(result.stderr.split())
    assert "cannot tell whether" in said and "unprotected" in said
    assert len(pdfs(folder)) == 2


def test_deliveries_still_in_the_ledgers_write_ahead_log_count(cli: Any, tmp_path: Path) -> None:
    from caaspp_cli.send.ledger import PASSWORD, REPORT, SendLedger

    folder = make_folder(tmp_path / "protected", marker=False, n=2)
    ledger = SendLedger.in_folder(folder, lock=False)  # open: as a run killed mid-way leaves it
    try:
        run = ledger.start_run()
        for ssid in ("1000000000", "1000000001"):
            for kind in (REPORT, PASSWORD):
                ledger.mark_sending(ssid, kind, f"<{ssid}.{kind}@x>", ("a@example.org",), run)
                ledger.mark_accepted(ssid, kind, ("a@example.org",))
        assert Path(f"{ledger.path}-wal").exists()

        result = cli("purge", str(folder), "--yes")

        assert result.exit_code == 0, result.output
        assert pdfs(folder) == []
    finally:
        ledger.close()


def test_the_password_sheet_is_kept_while_a_newer_report_is_not_sent(
    cli: Any, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    out, sheet = _protect_and_send(cli, tmp_path, smtp_server, students=3, emailed=2)
    for path in pdfs(out):
        if not path.name.startswith("2000000002"):  # the family not sent: its reports newer
            age(path, 60)
    age(sheet, 60)

    # The old reports were all delivered: they go, and the sheet is not asked for.
    alone = cli("purge", str(out), "--older-than", "30", "--yes")
    assert alone.exit_code == 0, alone.output
    assert [p.name[:10] for p in pdfs(out)] == ["2000000002", "2000000002"]

    # The sheet holds the password of the family still to be sent: refused.
    refused = cli("purge", str(out), "--older-than", "30", "--passwords", str(sheet), "--yes")
    assert refused.exit_code == 3, refused.output
    assert "1 of 1 families" in " ".join(refused.stderr.split())
    assert sheet.exists() and len(pdfs(out)) == 2


def test_a_sent_protect_folder_inside_a_bulk_folder_is_checked_too(
    cli: Any, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    _out, _sheet = _protect_and_send(cli, tmp_path, smtp_server, students=3, emailed=1)
    (tmp_path / "manifest.csv").write_text("ssid,status\n", encoding="utf-8")
    before = len(pdfs(tmp_path))

    result = cli("purge", str(tmp_path), "--yes")

    assert result.exit_code == 3, result.output
    assert "2 of 3 families" in " ".join(result.stderr.split())
    assert len(pdfs(tmp_path)) == before


def test_a_fetch_folder_is_known_by_holding_only_reports(
    cli: Any, sandbox: Any, sandbox_profile: Any, tmp_path: Path
) -> None:
    """`caaspp fetch` writes no ledger or manifest: a folder of nothing but reports named as
    caaspp names them is one, and purge takes it without --force."""
    out = tmp_path / "one-student"
    ssid = sandbox.state.world.examples()["spanish"]
    assert cli("fetch", "--ssid", ssid, "--out", str(out)).exit_code == 0
    assert len(pdfs(out)) >= 2

    result = cli("purge", str(out), "--yes")

    assert result.exit_code == 0, result.output
    assert pdfs(out) == []
    assert everything(out) == {PURGE_LOG}


def test_a_dry_run_outbox_is_purged_password_messages_and_all(
    cli: Any, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A dry run writes every message it would send, the password's message with the
    password in it: purge removes them and keeps the send report."""
    out, sheet = _protect_and_send(cli, tmp_path, smtp_server, students=3, emailed=0)
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "SSID,First Name,Last Name,Guardian Email\n"
        + "".join(f"{2000000000 + n},Student{n},Lee,family{n}@example.org\n" for n in range(3)),
        encoding="utf-8",
    )
    add_smtp_profile(smtp_server)
    outbox = tmp_path / "review"
    args = ("--roster", str(roster), "--pdfs", str(out), "--passwords", str(sheet))
    dry = cli("send", *args, "--smtp", "district", "--dry-run", "--outbox", str(outbox))
    assert dry.exit_code == 0, dry.output
    assert len(list(outbox.glob("*_password.eml"))) == 3
    passwords = {row.password for row in PasswordSheet(sheet).rows}
    assert any(p in e.read_text() for e in outbox.glob("*.eml") for p in passwords)

    result = cli("purge", str(outbox), "--yes", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outbox_messages_removed"] == 6
    said = cli("purge", str(outbox), "--yes")  # nothing left: said so
    assert said.exit_code == 0 and "Nothing to delete" in said.stdout
    assert everything(outbox) == {"send-report.csv", PURGE_LOG}
    assert smtp_server.received == []
