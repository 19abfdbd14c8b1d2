"""`caaspp deliver`: two nights of a season on the sandbox, by the mail server's own log.

Night 1 delivers what ETS has released; the sandbox then releases the rest; night 2
delivers only what is new, to families not reached yet and to families already reached (a
new pair of messages). Families without a usable address are reached on paper (the print
pack), a record hold reaches nobody, and the follow-up list and `caaspp status` agree with
what happened.
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from helpers import RUN_TIMEOUT, Runs, SmtpServer, add_smtp_profile

from caaspp_cli.artifacts import FOLLOW_UP_NAME, SEASON_LEDGER_NAME
from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET, SandboxConfig
from caaspp_cli.sandbox.server import SandboxServer

STUDENTS, SEED, SHARE, YEAR = 24, 5, 0.3, 2025
NO_EMAIL = "4495728438"  # two reports now
NO_EMAIL_LATER = "9820019808"  # one report now, one later
BAD_ADDRESS = "0535044887"
HELD = "8228902339"
NONE_YET = "0266162455"  # its one report comes on night 2
SOME_NOW_MORE_LATER = "1675555059"
REPORT_FILE = re.compile(r"^(\d{10})_[A-Za-z]+_\d{4}_[A-Za-z-]+\.pdf$")


@dataclass
class Season:
    sandbox: SandboxServer
    mail: SmtpServer
    roster: Path
    out: Path
    passwords: Path

    def args(self, *extra: str) -> list[str]:
        return [
            "deliver",
            str(self.roster),
            "--out",
            str(self.out),
            "--passwords",
            str(self.passwords),
            "--mail",
            "district",
            "--year",
            str(YEAR),
            "--recheck-after",
            "0",
            "--print-pack",
            "--rate",
            "6000",
            *extra,
        ]

    def released(self, ssids: set[str]) -> set[str]:
        """The report files the sandbox lists now for these students, as named on disk."""
        state = self.sandbox.state
        return {
            f"{s.ssid}_{r.test}_{r.year}_{r.language}.pdf"
            for s in state.world.students.values()
            if s.ssid in ssids and s.enrolled
            for r in s.reports
            if r.format == "pdf" and r.year == YEAR and not state.is_held_back(r.report_id)
        }

    def email_students(self) -> set[str]:
        return {
            row["SSID"]
            for row in read_csv(self.roster)
            if row["Guardian Email"] and row["SSID"] not in (BAD_ADDRESS, HELD)
        }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def season_roster(rows: list[dict[str, str]], path: Path) -> Path:
    for row in rows:
        row["Do Not Release"] = "Y" if row["SSID"] == HELD else ""
        if row["SSID"] in (NO_EMAIL, NO_EMAIL_LATER):
            row["Guardian Email"] = ""
        if row["SSID"] == BAD_ADDRESS:
            row["Guardian Email"] = "call the office"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def season(profile_factory: Any, smtp_server: SmtpServer, tmp_path: Path) -> Any:
    config = SandboxConfig(students=STUDENTS, seed=SEED, held_back=SHARE)
    with SandboxServer(config) as server:
        profile_factory(
            "sandbox",
            base_url=server.base_url,
            client_key=DEMO_CLIENT_KEY,
            client_secret=DEMO_CLIENT_SECRET,
            make_default=True,
            credentials_source="env",
        )
        add_smtp_profile(smtp_server)
        roster = season_roster(server.state.world.roster_rows(), tmp_path / "roster.csv")
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        yield Season(server, smtp_server, roster, tmp_path / "season", private / "passwords.csv")


ENV = {"CAASPP_CLIENT_KEY": DEMO_CLIENT_KEY, "CAASPP_CLIENT_SECRET": DEMO_CLIENT_SECRET}


def reports_mailed(mail: SmtpServer) -> Counter[str]:
    """Each report file, by how many messages carried it."""
    carried: Counter[str] = Counter()
    for received in mail.received:
        for part in received.message.iter_attachments():
            carried[str(part.get_filename())] += 1
    return carried


def messages_by_kind(mail: SmtpServer) -> tuple[int, int]:
    with_files = sum(1 for r in mail.received if any(True for _ in r.message.iter_attachments()))
    return with_files, len(mail.received) - with_files


def pdftotext(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def page_count(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    found = re.search(r"Pages:\s+(\d+)", info.stdout)
    assert found is not None
    return int(found.group(1))


def print_pack_text(out: Path) -> str:
    return "\n".join(pdftotext(path) for path in sorted((out / "print").glob("print-*.pdf")))


@pytest.mark.slow
def test_two_nights_reach_every_family_once_per_report(cli: Any, season: Season) -> None:
    emailed = season.email_students()
    first_release = season.released(emailed)
    assert season.released({NONE_YET}) == set()  # the cases night 2 is about exist
    assert season.released({SOME_NOW_MORE_LATER})

    night1 = cli(*season.args("--json"), env=ENV)
    assert night1.exit_code == 0, night1.stderr + night1.stdout
    summary = json.loads(night1.stdout)
    assert set(reports_mailed(season.mail)) == first_release
    assert all(n == 1 for n in reports_mailed(season.mail).values())
    with_files, passwords = messages_by_kind(season.mail)
    assert with_files == passwords  # every report message has its password message
    pack_1 = print_pack_text(season.out)
    assert NO_EMAIL in pack_1 and BAD_ADDRESS in pack_1 and HELD not in pack_1
    assert summary["follow_ups"]["held"] == 1

    season.sandbox.state.release()
    night2 = cli(*season.args("--json"), env=ENV)
    assert night2.exit_code == 0, night2.stderr + night2.stdout

    everything = season.released(emailed)
    assert everything > first_release
    mailed = reports_mailed(season.mail)
    assert set(mailed) == everything
    assert all(count == 1 for count in mailed.values()), "a report went twice"
    with_files, passwords = messages_by_kind(season.mail)
    assert with_files == passwords
    # The family first reached on night 2, and the one reached again with a new pair.
    assert any(name.startswith(NONE_YET) for name in mailed)
    later = season.released({SOME_NOW_MORE_LATER}) - first_release
    assert later and all(name in mailed for name in later)
    # No report of a held student, or of a family on paper, went by mail.
    assert not any(
        name.startswith((HELD, NO_EMAIL, NO_EMAIL_LATER, BAD_ADDRESS)) for name in mailed
    )

    # Paper: every report of the families without a usable address, none of the held one.
    pack = print_pack_text(season.out)
    paper = season.released({NO_EMAIL, NO_EMAIL_LATER, BAD_ADDRESS})
    assert all(ssid in pack for ssid in (NO_EMAIL, NO_EMAIL_LATER, BAD_ADDRESS))
    assert HELD not in pack
    pages = sum(page_count(path) for path in (season.out / "print").glob("print-*.pdf"))
    assert pages >= len(paper) + 1

    follow_up = {(row["ssid"], row["reason"]) for row in read_csv(season.out / FOLLOW_UP_NAME)}
    assert (HELD, "held") in follow_up
    assert (NO_EMAIL, "no_email") in follow_up
    assert (BAD_ADDRESS, "bad_address") in follow_up
    unknown = season.sandbox.state.world.unknown_ssids[0]
    assert (unknown, "student_not_found") in follow_up
    assert ("3352292080", "not_enrolled") in follow_up
    assert all(ssid not in emailed or reason != "no_email" for ssid, reason in follow_up)

    # Night 3: nothing new, nothing sent.
    before = len(season.mail.received)
    night3 = cli(*season.args(), env=ENV)
    assert night3.exit_code == 0, night3.stderr
    assert len(season.mail.received) == before

    # `caaspp status` agrees with the mail server and the print pack.
    status = cli("status", str(season.out), "--json")
    assert status.exit_code == 0, status.stderr
    total = json.loads(status.stdout)["total"]
    assert total["emailed"] == len(everything)
    held_reports = season.released({HELD})
    assert total["reports"] == len(everything) + len(paper) + len(held_reports)
    assert total["printed"] == len(paper)
    assert total["held"] == 1
    assert total["overdue"] == 0
    follow_ups = len(read_csv(season.out / FOLLOW_UP_NAME))
    data = json.loads(status.stdout)
    assert total["follow_ups"] + data["follow_ups_without_ssid"] == follow_ups
    table = cli("status", str(season.out))
    assert table.exit_code == 0 and "Overdue" in table.stdout and "All" in table.stdout


def test_a_dry_run_fetches_and_protects_but_mails_nobody(cli: Any, season: Season) -> None:
    result = cli(*season.args("--dry-run", "--notify", "staff@example.org"), env=ENV)
    assert result.exit_code == 0, result.stderr + result.stdout
    assert season.mail.received == []
    outbox = season.out / "outbox"
    assert any(outbox.glob("*_report.eml")) and (outbox / "staff-summary.eml").is_file()
    summary = email.message_from_bytes(
        (outbox / "staff-summary.eml").read_bytes(), policy=email.policy.default
    )
    assert isinstance(summary, EmailMessage)
    assert not re.search(r"\d{10}", str(summary.get_content()) + str(summary["Subject"]))
    assert any((season.out / "protected").rglob("*.pdf"))


def test_staff_get_the_counts_and_nothing_personal(cli: Any, season: Season) -> None:
    result = cli(*season.args("--notify", "staff@example.org"), env=ENV)
    assert result.exit_code == 0, result.stderr
    (summary,) = [r for r in season.mail.received if "staff@example.org" in r.rcpt_tos]
    message = summary.message
    text = str(message.get_content()) + str(message["Subject"])
    assert "emailed" in text and "follow-up" in text
    assert not re.search(r"\d{10}", text), "an SSID in the staff summary"
    roster_names = [row["Last Name"] for row in read_csv(season.roster)]
    assert not any(name in text for name in roster_names if len(name) > 3)


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ("inside", "inside the season folder"),
        ("roster-inside", "roster"),
    ],
)
def test_files_that_belong_apart_are_refused(
    cli: Any, season: Season, where: str, words: str
) -> None:
    args = season.args()
    season.out.mkdir()
    if where == "inside":
        args[args.index("--passwords") + 1] = str(season.out / "passwords.csv")
    else:
        moved = season.out / "roster.csv"
        moved.write_bytes(season.roster.read_bytes())
        args[1] = str(moved)
    result = cli(*args, env=ENV)
    assert result.exit_code == 2
    assert words in result.stderr and "Traceback" not in result.stderr
    assert season.mail.received == []


def test_a_bad_notify_address_is_refused_before_anything(cli: Any, season: Season) -> None:
    result = cli(*season.args("--notify", "staff at district"), env=ENV)
    assert result.exit_code == 2
    assert "not an email address" in result.stderr
    assert not season.out.exists() or not any(season.out.iterdir())


def test_status_of_a_folder_deliver_never_ran_in(cli: Any, tmp_path: Path) -> None:
    result = cli("status", str(tmp_path))
    assert result.exit_code == 2
    assert "caaspp deliver" in result.stderr


@pytest.mark.posix
@pytest.mark.slow
def test_kill_9_in_each_stage_then_the_next_run_delivers_everything_once(
    season: Season, tmp_path: Path
) -> None:
    season.sandbox.state.release()
    env = {**os.environ, **ENV}
    args = season.args()
    reports = season.out / "reports"
    protected = season.out / "protected"

    def count_pdfs(folder: Path) -> int:
        return len(list(folder.rglob("*.pdf"))) if folder.is_dir() else 0

    runs = Runs(tmp_path, seed=3, env=env, progress=lambda: 0)
    moments = [
        lambda: count_pdfs(reports) >= 3,  # fetching
        lambda: count_pdfs(protected) >= 2,  # protecting
        lambda: len(season.mail.received) >= 1,  # after a report message, before its password
        lambda: len(season.mail.received) >= 6,  # sending
    ]
    kills = 0
    for reached in moments:
        process = runs.start(*args)
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            while not reached() and process.poll() is None:
                assert time.monotonic() < deadline, "the run made no progress"
                time.sleep(0.002)
        finally:
            alive = process.poll() is None
            if alive:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=RUN_TIMEOUT)
        kills += alive
    assert kills >= 3, "the kills landed after the runs had finished"
    code = runs.finish(*args)
    assert code in (0, 3), runs.stderr()
    if code == 3:  # a message left uncertain by a kill: staff would check the log
        follow = read_csv(season.out / FOLLOW_UP_NAME)
        assert any(row["reason"] == "uncertain" for row in follow)
    else:
        mailed = reports_mailed(season.mail)
        assert set(mailed) == season.released(season.email_students())
    mailed = reports_mailed(season.mail)
    assert all(count == 1 for count in mailed.values()), "a report went twice"
    assert (season.out / SEASON_LEDGER_NAME).is_file()


@pytest.mark.posix
def test_a_second_run_into_the_same_season_is_refused_at_once(
    cli: Any, season: Season, tmp_path: Path
) -> None:
    import sys

    season.out.mkdir()
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib\n"
            "from caaspp_cli.folderlock import FolderLock\n"
            "with FolderLock.for_folder(pathlib.Path(sys.argv[1]), 'deliver'):\n"
            "    pathlib.Path(sys.argv[2]).touch()\n"
            "    time.sleep(60)\n",
            str(season.out),
            str(ready),
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.02)
        result = cli(*season.args(), env=ENV)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 6, result.stderr
    assert "caaspp deliver" in result.stderr and f"PID {holder.pid}" in result.stderr
    assert season.mail.received == [] and not (season.out / "reports").exists()


def test_a_season_ledger_that_cannot_be_written_is_one_sentence(
    cli: Any, season: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from caaspp_cli.deliver.season import SeasonLedger

    def full(self: SeasonLedger, *args: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SeasonLedger, "put_report", full)
    result = cli(*season.args(), env=ENV)
    assert result.exit_code == 3, result.stderr
    assert "is full" in result.stderr and "Traceback" not in result.stderr
    assert "unexpected" not in result.stderr
