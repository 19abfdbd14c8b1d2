"""kill -9 at random moments: bulk, protect and send, killed and restarted until done.

Each command runs as a real process, killed with SIGKILL (its whole process group: the
worker processes of `caaspp protect` die with it, as in a power cut) at moments drawn from
a seeded generator, then run again. What must hold at every kill and at the end:

- bulk: a file under a report's name is always the whole report; the end state (files,
  bytes, manifest) is the one an uninterrupted run leaves; no temp file is left behind.
- protect: no protected file without its password in the sheet; a student's password
  never changes once written; every report protected in the end, once in the sheet.
- send: no family ever gets a message twice; what is missing after the kills is exactly
  what the send report lists as uncertain, and resolving those as the report says
  (look the Message-ID up in the mail server's log, then --mark-uncertain-sent or
  --resend-uncertain) leaves every family with one report message and one password.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from helpers import (
    RUN_TIMEOUT,
    Family,
    Runs,
    SmtpRecorder,
    SmtpServer,
    add_smtp_profile,
    free_port,
    write_send_inputs,
)

from caaspp_cli.cli.sandbox import roster_csv
from caaspp_cli.fetch.ledger import Ledger
from caaspp_cli.fsutil import is_temp_name
from caaspp_cli.protect.verify import verify_protected_pdf
from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET, SandboxConfig
from caaspp_cli.sandbox.render import render_report_pdf
from caaspp_cli.sandbox.server import SandboxServer
from caaspp_cli.sandbox.world import World

KILLS = 4


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if is_temp_name(p.name)]


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*.pdf")
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


# --- bulk ---------------------------------------------------------------------------------
def manifest_rows(out: Path) -> list[tuple[str, ...]]:
    """The manifest, with "already_downloaded" (saved by an earlier run) as "downloaded"."""
    return [
        (
            r["line"],
            r["ssid"],
            "downloaded" if r["status"] == "already_downloaded" else r["status"],
            r["test"],
            r["year"],
            r["language"],
            r["file"],
            r["detail"],
        )
        for r in read_csv(out / "manifest.csv")
    ]


@pytest.mark.slow
def test_bulk_killed_four_times_ends_as_an_uninterrupted_run(
    tmp_path: Path, profile_factory: Any
) -> None:
    world = World.build(60, 41)
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv(world.roster_rows()), encoding="utf-8")
    config = SandboxConfig(
        students=60, seed=41, latency_ms=20, fault_rate=0.05, revoke_every=50, render_cache_size=512
    )
    env = {
        **os.environ,
        "CAASPP_CLIENT_KEY": DEMO_CLIENT_KEY,
        "CAASPP_CLIENT_SECRET": DEMO_CLIENT_SECRET,
    }
    reference, out = tmp_path / "reference", tmp_path / "out"

    with SandboxServer(config) as server:
        profile_factory(
            "sandbox", base_url=server.base_url, make_default=True, credentials_source="env"
        )
        args = ["bulk", str(roster), "--concurrency", "4", "--out"]
        runs = Runs(tmp_path, seed=1, env=env, progress=lambda: len(list(out.glob("*.pdf"))))
        assert runs.finish(*args, str(reference)) == 0, runs.stderr()
        expected = digests(reference)
        before = Counter(server.state.stats()["downloads"])

        for k in range(KILLS):
            runs.kill_midway([*args, str(out)], len(expected) - runs.progress(), KILLS - k)
            # Whatever has a report's name is that whole report, byte for byte.
            for name, digest in digests(out).items():
                assert digest == expected[name], f"{name} is not the whole report"
        assert runs.finish(*args, str(out)) == 0, runs.stderr()
        downloads = Counter(server.state.stats()["downloads"]) - before

    print(
        f"bulk: {runs.kills} kills; {sum(downloads.values())} whole bodies sent for "
        f"{len(expected)} reports"
    )
    assert runs.kills >= 3, "the kills landed after the runs had finished"
    assert digests(out) == expected
    assert manifest_rows(out) == manifest_rows(reference)
    assert not temp_files(out)
    with Ledger.in_folder(out) as ledger, Ledger.in_folder(reference) as ledger_ref:
        assert {r.file: r.sha256 for r in ledger.all_reports()} == {
            r.file: r.sha256 for r in ledger_ref.all_reports()
        }
    # Each report came whole once, but for those in flight at a kill (4 at a time).
    assert sum(downloads.values()) - len(expected) <= KILLS * 4, downloads


# --- protect ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bulk_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `caaspp bulk` folder of 600 reports of 300 students (each student's two reports
    are copies of sandbox reports: rendering 600 would take longer than protecting them)."""
    world = World.build(20, 43)
    pdfs = [render_report_pdf(world, s, r) for s, r in world.iter_reports() if r.format == "pdf"][
        :20
    ]
    folder = tmp_path_factory.mktemp("bulk")
    for n in range(300):
        for k, (test, language) in enumerate((("CAASPP", "en"), ("ELPAC", "es"))):
            name = f"{3000000000 + n}_{test}_2025_{language}.pdf"
            (folder / name).write_bytes(pdfs[(2 * n + k) % len(pdfs)])
    return folder


def check_sheet_and_files(out: Path, sheet: Path) -> dict[str, str]:
    """Every protected file has its row, and opens with that row's password; a file has
    one row, a student one password. Returns the password of each SSID."""
    rows = read_csv(sheet) if sheet.exists() else []
    by_file = Counter(r["file"] for r in rows)
    assert max(by_file.values(), default=1) == 1, "a file has two rows"
    passwords: dict[str, set[str]] = {}
    for row in rows:
        passwords.setdefault(row["ssid"], set()).add(row["password"])
    assert all(len(p) == 1 for p in passwords.values()), "a student has two passwords"
    password_of = {row["file"]: row["password"] for row in rows}
    for path in out.glob("*.pdf"):
        assert path.name in password_of, f"{path.name} is there without its password"
        verify_protected_pdf(path, password_of[path.name])
    return {ssid: next(iter(p)) for ssid, p in passwords.items()}


@pytest.mark.slow
def test_protect_killed_four_times_never_leaves_a_file_without_its_password(
    tmp_path: Path, bulk_folder: Path
) -> None:
    out, sheet = tmp_path / "protected", tmp_path / "passwords.csv"
    args = [
        "protect",
        str(bulk_folder),
        "--out",
        str(out),
        "--passwords",
        str(sheet),
        "--workers",
        "2",
    ]
    inputs = sorted(p.name for p in bulk_folder.glob("*.pdf"))
    runs = Runs(tmp_path, seed=2, progress=lambda: len(list(out.glob("*.pdf"))))
    told: dict[str, str] = {}  # passwords once written: a family may have been given one
    left = 0

    for k in range(KILLS):
        runs.kill_midway(args, len(inputs) - runs.progress(), KILLS - k)
        passwords = check_sheet_and_files(out, sheet)
        assert {ssid: passwords[ssid] for ssid in told} == told
        told = passwords
        left = max(left, len(temp_files(out)))
    assert runs.finish(*args) == 0, runs.stderr()
    print(f"protect: {runs.kills} kills; up to {left} temp files left by a kill")

    assert runs.kills >= 3, "the kills landed after the runs had finished"
    passwords = check_sheet_and_files(out, sheet)
    assert {ssid: passwords[ssid] for ssid in told} == told
    assert sorted(p.name for p in out.glob("*.pdf")) == inputs
    assert sorted(r["file"] for r in read_csv(sheet)) == inputs
    assert len(passwords) == 300
    assert not temp_files(out)


# --- send ---------------------------------------------------------------------------------
class SlowSmtpRecorder(SmtpRecorder):
    """A mail server that takes its time over each message, so that kills land mid-run:
    over RCPT (nothing sent yet), before it keeps a body (a kill then loses the message),
    and after (the message kept, its 250 never read).

    ``before_keeping`` and ``after_keeping``: run once at that moment (to kill the sender
    there); the server then waits until the lost connection cancels the message's handling.
    """

    def __init__(self) -> None:
        super().__init__()
        self.before_keeping: Callable[[], None] | None = None
        self.after_keeping: Callable[[], None] | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        await asyncio.sleep(0.02)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await self._pause("before_keeping")  # a lost connection cancels it: nothing kept
        answer = await super().handle_DATA(server, session, envelope)
        await self._pause("after_keeping")
        return answer

    async def _pause(self, moment: str) -> None:
        hook = getattr(self, moment)
        if hook is None:
            await asyncio.sleep(0.02)
            return
        setattr(self, moment, None)
        hook()
        await asyncio.sleep(RUN_TIMEOUT)  # cancelled as soon as the connection is seen lost


@pytest.fixture
def slow_smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller

    handler = SlowSmtpRecorder()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield SmtpServer(handler, "127.0.0.1", controller.port)
    controller.stop()


def received(server: SmtpServer) -> Counter[tuple[str, str]]:
    """(recipient, kind) -> messages the server kept."""
    counts: Counter[tuple[str, str]] = Counter()
    for message in server.received:
        kind = "report" if any(message.message.iter_attachments()) else "password"
        for recipient in message.rcpt_tos:
            counts[(recipient, kind)] += 1
    return counts


def write_roster_of(inputs: Any, ssids: set[str], path: Path) -> Path:
    with inputs.roster.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([rows[0], *(r for r in rows[1:] if r[0] in ssids)])
    return path


@pytest.mark.posix
@pytest.mark.slow
def test_send_killed_four_times_never_sends_a_family_a_second_copy(
    tmp_path: Path, slow_smtp_server: SmtpServer
) -> None:
    server = slow_smtp_server
    add_smtp_profile(server)
    families = [
        Family(f"40000000{n:02d}", f"Kid{n}", "Doe", email=f"family{n}@example.org")
        for n in range(24)
    ]
    inputs = write_send_inputs(tmp_path / "case", families)
    args = inputs.args()
    runs = Runs(tmp_path, seed=3, progress=lambda: server.handler.bodies)

    for k in range(KILLS):
        runs.kill_midway(args, 2 * len(families) - len(server.received), KILLS - k)
        assert max(received(server).values(), default=1) == 1, "a family got a second copy"
    # And, whatever the random kills hit, one kill at each moment that leaves a message
    # uncertain: its body sent and not yet kept by the server, and kept but not answered.
    for moment in ("before_keeping", "after_keeping"):
        process = runs.start(*args)

        def kill(process: subprocess.Popen[bytes] = process) -> None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

        setattr(server.handler, moment, kill)
        assert runs.finish(process=process) == -signal.SIGKILL, runs.stderr()
        assert max(received(server).values()) == 1, "a family got a second copy"
    code = runs.finish(*args)
    assert runs.kills >= 3, "the kills landed after the runs had finished"

    # Nothing twice. What is missing is what the send report lists as uncertain.
    counts = received(server)
    assert max(counts.values()) == 1, "a family got a second copy"
    rows = {r["ssid"]: r for r in read_csv(inputs.pdfs / "send-report.csv")}
    uncertain = {ssid for ssid, r in rows.items() if r["outcome"] == "uncertain"}
    assert code == (3 if uncertain else 0), runs.stderr()
    assert {r["outcome"] for r in rows.values()} <= {"sent", "already_sent", "uncertain"}
    for family in families:
        got = {kind for (to, kind), n in counts.items() if to == family.email}
        if family.ssid not in uncertain:
            assert got == {"report", "password"}, family.ssid
        else:
            row = rows[family.ssid]
            assert "uncertain" in (row["report_message"], row["password_message"])
            if "report" not in got:
                assert row["report_message"] == "uncertain"

    # As the report says: look each uncertain Message-ID up in the server's log, then
    # record the ones it holds as sent, and send the others again.
    kept = {str(m.message["Message-ID"]) for m in server.received}
    found: set[str] = set()
    lost: set[str] = set()
    for ssid in uncertain:
        row = rows[ssid]
        message_id = (
            row["report_message_id"]
            if row["report_message"] == "uncertain"
            else row["password_message_id"]
        )
        (found if message_id in kept else lost).add(ssid)
    if found:
        roster = write_roster_of(inputs, found, tmp_path / "found.csv")
        assert runs.finish(*args, "--roster", str(roster), "--mark-uncertain-sent") == 0, (
            runs.stderr()
        )
    if lost:
        roster = write_roster_of(inputs, lost, tmp_path / "lost.csv")
        assert runs.finish(*args, "--roster", str(roster), "--resend-uncertain") == 0, runs.stderr()
    assert runs.finish(*args) == 0, runs.stderr()
    assert found and lost
    print(
        f"send: {runs.kills} kills; {len(uncertain)} rows uncertain: {len(found)} messages "
        f"kept by the server, {len(lost)} lost"
    )

    assert received(server) == Counter(
        {(f.email, kind): 1 for f in families for kind in ("report", "password")}
    ), f"uncertain: {len(uncertain)} ({len(found)} kept by the server, {len(lost)} lost)"
    outcomes = {r["outcome"] for r in read_csv(inputs.pdfs / "send-report.csv")}
    assert outcomes == {"already_sent"}
    # The report messages open with the password the second message carries.
    for message in server.received:
        attachments = list(message.message.iter_attachments())
        if attachments:
            data = attachments[0].get_content()
            family = next(f for f in families if f.email in message.rcpt_tos)
            with pikepdf.open(io.BytesIO(data), password=family.password):
                pass
