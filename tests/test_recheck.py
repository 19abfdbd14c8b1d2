"""Reports released later: `bulk --recheck-after` against a sandbox that holds some back."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from caaspp_cli.artifacts import BULK_LEDGER_NAME
from caaspp_cli.cli.sandbox import roster_csv
from caaspp_cli.fetch.bulk import BulkOptions, BulkRun
from caaspp_cli.fetch.ledger import Ledger
from caaspp_cli.roster.read import open_roster
from caaspp_cli.sandbox.app import (
    DEMO_CLIENT_KEY,
    DEMO_CLIENT_SECRET,
    RELEASE_PATH,
    SandboxConfig,
    SandboxState,
)
from caaspp_cli.sandbox.server import SandboxServer
from caaspp_cli.sandbox.world import World

STUDENTS, SEED, SHARE = 30, 5, 0.3


def released_files(state: SandboxState) -> set[str]:
    """The PDF reports the sandbox lists now, as bulk names them."""
    return {
        f"{s.ssid}_{r.test}_{r.year}_{r.language}.pdf"
        for s in state.world.students.values()
        if s.enrolled
        for r in s.reports
        if r.format == "pdf" and not state.is_held_back(r.report_id)
    }


@pytest.fixture
def season(profile_factory: Any, tmp_path: Path) -> Any:
    with SandboxServer(SandboxConfig(students=STUDENTS, seed=SEED, held_back=SHARE)) as server:
        profile_factory(
            "sandbox",
            base_url=server.base_url,
            client_key=DEMO_CLIENT_KEY,
            client_secret=DEMO_CLIENT_SECRET,
            make_default=True,
        )
        roster = tmp_path / "roster.csv"
        roster.write_text(roster_csv(server.state.world.roster_rows()), encoding="utf-8")
        yield server, roster


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def night(roster: Path, out: Path, recheck: float | None, clock: Clock | None = None) -> Any:
    run = BulkRun(
        open_roster(roster),
        BulkOptions(out_dir=out, concurrency=4, recheck_after=recheck),
        wall_clock=clock or time.time,
    )
    return asyncio.run(run.run())


def downloads(server: SandboxServer) -> int:
    return sum(server.state.stats()["downloads"].values())


def test_a_release_schedule_holds_back_whole_students_and_single_reports() -> None:
    state = SandboxState(SandboxConfig(students=STUDENTS, seed=SEED, held_back=SHARE))
    none_yet = some_now_more_later = 0
    for student in state.world.students.values():
        pdfs = [r for r in student.reports if r.format == "pdf"]
        held = [r for r in pdfs if state.is_held_back(r.report_id)]
        none_yet += bool(pdfs) and len(held) == len(pdfs)
        some_now_more_later += 0 < len(held) < len(pdfs)
    assert none_yet >= 1 and some_now_more_later >= 1
    state.release()
    assert not any(
        state.is_held_back(r.report_id) for s in state.world.students.values() for r in s.reports
    )


def test_night_two_fetches_only_the_reports_released_since(season: Any, tmp_path: Path) -> None:
    server, roster = season
    out = tmp_path / "out"
    first_files = released_files(server.state)

    first = night(roster, out, recheck=0)
    assert {p.name for p in out.glob("*.pdf")} == first_files
    assert downloads(server) == len(first_files)

    httpx.post(server.base_url + RELEASE_PATH).raise_for_status()
    second = night(roster, out, recheck=0)

    everything = released_files(server.state)
    assert everything > first_files
    assert {p.name for p in out.glob("*.pdf")} == everything
    # Each newly released report downloaded once; nothing saved before came again.
    assert downloads(server) == len(everything)
    assert second.reports_saved == len(everything - first_files)
    assert second.students_rechecked > 0
    assert first.reports_saved == len(first_files)
    # The day each report was first seen does not move on a later night.
    with Ledger.in_folder(out) as ledger:
        seen = {r.file: r.first_seen for r in ledger.all_reports() if r.file}
    assert all(seen[name] is not None for name in everything)


def test_without_recheck_a_settled_student_is_never_asked_again(
    season: Any, tmp_path: Path
) -> None:
    server, roster = season
    out = tmp_path / "out"
    night(roster, out, recheck=None)
    asked = server.state.stats()["counters"]["data_requests"]
    server.state.release()

    night(roster, out, recheck=None)

    assert server.state.stats()["counters"]["data_requests"] == asked
    assert {p.name for p in out.glob("*.pdf")} < released_files(server.state)


def test_recheck_after_a_day_waits_a_day(season: Any, tmp_path: Path) -> None:
    server, roster = season
    out = tmp_path / "out"
    clock = Clock()
    night(roster, out, recheck=1, clock=clock)
    asked = server.state.stats()["counters"]["data_requests"]
    server.state.release()

    clock.now += 23 * 3600
    early = night(roster, out, recheck=1, clock=clock)
    assert server.state.stats()["counters"]["data_requests"] == asked
    assert early.students_rechecked == 0

    clock.now += 2 * 3600
    later = night(roster, out, recheck=1, clock=clock)
    assert later.students_rechecked > 0
    assert {p.name for p in out.glob("*.pdf")} == released_files(server.state)


def test_the_cli_option_and_its_dry_run(cli: Any, season: Any, tmp_path: Path) -> None:
    server, roster = season
    out = tmp_path / "out"
    assert cli("bulk", str(roster), "--out", str(out)).exit_code == 0
    dry = cli("bulk", str(roster), "--out", str(out), "--dry-run", "--recheck-after", "0")
    assert dry.exit_code == 0, dry.stderr
    assert "Not asking again" not in dry.stdout
    server.state.release()
    result = cli("bulk", str(roster), "--out", str(out), "--recheck-after", "0", "--json")
    assert result.exit_code == 0, result.stderr
    assert '"students_rechecked"' in result.stdout
    assert {p.name for p in out.glob("*.pdf")} == released_files(server.state)
    bad = cli("bulk", str(roster), "--out", str(out), "--recheck-after", "-1")
    assert bad.exit_code == 2


V1_LEDGER = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL,
    finished REAL, outcome TEXT NOT NULL DEFAULT 'running');
CREATE TABLE students (ssid TEXT NOT NULL, query TEXT NOT NULL, status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '', profile TEXT NOT NULL DEFAULT '', updated REAL NOT NULL,
    PRIMARY KEY (ssid, query));
CREATE TABLE reports (ssid TEXT NOT NULL, query TEXT NOT NULL, test TEXT NOT NULL,
    year INTEGER NOT NULL, language TEXT NOT NULL, format TEXT NOT NULL, status TEXT NOT NULL,
    file TEXT NOT NULL DEFAULT '', size INTEGER, sha256 TEXT, detail TEXT NOT NULL DEFAULT '',
    run INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL,
    PRIMARY KEY (ssid, query, test, year, language, format));
INSERT INTO meta VALUES ('version', '1');
INSERT INTO students VALUES ('1234567890', '||', 'no_reports', '', 'p', 1000.0);
INSERT INTO reports VALUES ('2234567890', '||', 'CAASPP', 2025, 'en', 'pdf', 'downloaded',
    '2234567890_CAASPP_2025_en.pdf', 10, 'ab', '', 1, 2000.0);
"""


def test_a_schema_1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / BULK_LEDGER_NAME)
    db.executescript(V1_LEDGER)
    db.close()

    with Ledger.in_folder(tmp_path) as ledger:
        student = ledger.student("1234567890", "||")
        (report,) = ledger.all_reports()
    assert student is not None and student.asked == 1000.0
    assert report.first_seen == 2000.0
    with Ledger.in_folder(tmp_path) as ledger:  # opened again: already schema 2
        assert ledger.student("1234567890", "||") is not None


def test_world_release_share_is_stable_for_a_seed() -> None:
    world = World.build(STUDENTS, SEED)
    ids = [r.report_id for s in world.students.values() for r in s.reports]
    assert [world.held_back(i, SHARE) for i in ids] == [world.held_back(i, SHARE) for i in ids]
    assert not any(world.held_back(i, 0.0) for i in ids)


@pytest.mark.posix
@pytest.mark.slow
def test_a_reask_run_killed_midway_then_rerun_downloads_each_new_report_once(
    profile_factory: Any, tmp_path: Path
) -> None:
    import os
    from collections import Counter

    from helpers import Runs

    config = SandboxConfig(students=60, seed=SEED, held_back=0.5, latency_ms=20)
    env = {
        **os.environ,
        "CAASPP_CLIENT_KEY": DEMO_CLIENT_KEY,
        "CAASPP_CLIENT_SECRET": DEMO_CLIENT_SECRET,
    }
    out = tmp_path / "out"
    with SandboxServer(config) as server:
        profile_factory(
            "sandbox", base_url=server.base_url, make_default=True, credentials_source="env"
        )
        roster = tmp_path / "roster.csv"
        roster.write_text(roster_csv(server.state.world.roster_rows()), encoding="utf-8")
        args = [
            "bulk",
            str(roster),
            "--out",
            str(out),
            "--concurrency",
            "2",
            "--recheck-after",
            "0",
        ]
        runs = Runs(tmp_path, seed=7, env=env, progress=lambda: len(list(out.glob("*.pdf"))))
        assert runs.finish(*args) == 0, runs.stderr()
        first = {p.name for p in out.glob("*.pdf")}
        server.state.release()
        everything = released_files(server.state)
        before = Counter(server.state.stats()["downloads"])

        killed = runs.kill_midway(args, len(everything - first), 1)
        assert runs.finish(*args) == 0, runs.stderr()
        downloads = Counter(server.state.stats()["downloads"]) - before

    assert killed, "the kill landed after the run had finished"
    assert {p.name for p in out.glob("*.pdf")} == everything
    # Nothing saved before the re-ask came again; a new report came at most twice (once
    # more only if the kill caught it in flight, two at a time).
    assert sum(downloads.values()) <= len(everything - first) + 2
    assert all(count <= 2 for count in downloads.values())


@pytest.mark.parametrize(("when", "late"), [("90", True), ("2099-01-01T06:00", True), ("0", False)])
def test_release_after_takes_seconds_or_an_iso_time(when: str, late: bool) -> None:
    from caaspp_cli.cli.sandbox import _release_at

    assert (_release_at(when) > time.time() + 30) is late


def test_release_after_refuses_anything_else(cli: Any) -> None:
    result = cli("sandbox", "--release-after", "next tuesday")
    assert result.exit_code == 2 and "neither a number of seconds nor an ISO time" in result.stderr
