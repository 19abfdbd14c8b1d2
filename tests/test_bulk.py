"""`caaspp bulk` against the sandbox: ground truth, resume, bad rows, layouts, profiles."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pikepdf
import pytest

from caaspp_cli.artifacts import BULK_LEDGER_NAME
from caaspp_cli.cli.sandbox import roster_csv
from caaspp_cli.ets.client import EtsClient
from caaspp_cli.fetch.bulk import BulkOptions, BulkRun
from caaspp_cli.fetch.ledger import Ledger
from caaspp_cli.fsutil import TEMP_PREFIX, TEMP_SUFFIX, is_temp_name, sweep_temp_files
from caaspp_cli.retry import RetryPolicy
from caaspp_cli.roster.read import open_roster
from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET, SandboxConfig
from caaspp_cli.sandbox.server import SandboxServer
from caaspp_cli.sandbox.world import World


def write_roster(path: Path, world: World) -> Path:
    path.write_text(roster_csv(world.roster_rows()), encoding="utf-8")
    return path


def expected_files(world: World) -> set[str]:
    return {
        f"{s.ssid}_{r.test}_{r.year}_{r.language}.pdf"
        for s in world.students.values()
        if s.enrolled
        for r in s.reports
        if r.format == "pdf"
    }


def expected_status(world: World, ssid: str) -> str:
    if ssid in world.unknown_ssids:
        return "student_not_found"
    student = world.students[ssid]
    if not student.enrolled:
        return "not_enrolled"
    if not any(r.format == "pdf" for r in student.reports):
        return "no_reports"
    return "downloaded"


def manifest(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def pdf_names(out: Path) -> set[str]:
    return {p.name for p in out.rglob("*.pdf")}


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if is_temp_name(p.name)]


@pytest.fixture
def roster(tmp_path, sandbox):
    return write_roster(tmp_path / "roster.csv", sandbox.state.world)


@pytest.mark.posix
def test_bulk_saves_every_available_report_and_a_manifest_matching_the_truth(
    cli, sandbox, sandbox_profile, roster, tmp_path
):
    out = tmp_path / "out"
    result = cli("bulk", str(roster), "--out", str(out), "--concurrency", "6")
    assert result.exit_code == 0, result.stderr
    world = sandbox.state.world
    assert pdf_names(out) == expected_files(world)
    for path in out.glob("*.pdf"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    rows = manifest(out)
    by_ssid: dict[str, set[str]] = {}
    for row in rows:
        by_ssid.setdefault(row["ssid"], set()).add(row["status"])
    roster_ssids = [r["SSID"] for r in world.roster_rows()]
    assert set(by_ssid) == set(roster_ssids)
    for ssid in roster_ssids:
        assert by_ssid[ssid] == {expected_status(world, ssid)}, ssid
    downloaded = [r for r in rows if r["status"] == "downloaded"]
    assert {Path(r["file"]).name for r in downloaded} == expected_files(world)
    assert not temp_files(out)
    assert stat.S_IMODE((out / "manifest.csv").stat().st_mode) == 0o600


def test_rerun_downloads_nothing_and_marks_already_downloaded(
    cli, sandbox, sandbox_profile, roster, tmp_path
):
    out = tmp_path / "out"
    assert cli("bulk", str(roster), "--out", str(out)).exit_code == 0
    before = sandbox.state.stats()["counters"]
    again = cli("bulk", str(roster), "--out", str(out), "--json")
    assert again.exit_code == 0, again.stderr
    after = sandbox.state.stats()["counters"]
    assert after.get("downloads_ok", 0) == before.get("downloads_ok", 0)
    assert after.get("data_requests", 0) == before.get("data_requests", 0)
    summary = json.loads(again.stdout)
    assert summary["statuses"]["downloaded"] == 0
    assert summary["statuses"]["already_downloaded"] == len(expected_files(sandbox.state.world))


def test_a_damaged_file_is_downloaded_again_on_rerun(
    cli, sandbox, sandbox_profile, roster, tmp_path
):
    out = tmp_path / "out"
    assert cli("bulk", str(roster), "--out", str(out)).exit_code == 0
    victim = sorted(out.glob("*.pdf"))[0]
    victim.write_bytes(victim.read_bytes()[:1000])
    again = cli("bulk", str(roster), "--out", str(out), "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["statuses"]["downloaded"] == 1
    with pikepdf.open(victim):
        pass


def test_bad_rows_are_reported_never_guessed(cli, sandbox, sandbox_profile, tmp_path):
    good = sandbox.state.world.examples()["english_only"]
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Student Name,SSID,School\n"
        f"Ana,{good},X\n"
        "Bo,1.23457E+09,X\n"
        "Cy,123456789,X\n"
        "Di,1234567890.0,X\n"
        "Ed,,X\n"
        f"Fe,{good},X\n"
        '"Gi","=HYPERLINK(""http://x"")",X\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = cli("bulk", str(roster), "--out", str(out))
    # Rows a person must fix: exit 3, said as a notice naming how many and where, not as an
    # error (the run itself did all it could).
    assert result.exit_code == 3, result.stderr
    assert "error:" not in result.stderr
    assert "6 of 7 roster rows need a person (5 invalid SSID, 1 duplicate)" in result.stderr
    assert str(out / "manifest.csv") in result.stderr
    # The same roster in a dry run: the same code, said as what would happen.
    dry = cli("bulk", str(roster), "--out", str(tmp_path / "dry"), "--dry-run")
    assert dry.exit_code == 3, dry.stderr
    assert "6 of 7 roster rows would need a person" in dry.stderr
    assert "error:" not in dry.stderr
    rows = manifest(out)
    statuses = [(r["line"], r["status"]) for r in rows if r["status"] != "downloaded"]
    assert statuses == [
        ("3", "invalid_ssid"),
        ("4", "invalid_ssid"),
        ("5", "invalid_ssid"),
        ("6", "invalid_ssid"),
        ("7", "duplicate"),
        ("8", "invalid_ssid"),
    ]
    details = {r["line"]: r["detail"] for r in rows}
    assert "scientific" in details["3"]
    assert "leading zero" in details["4"]
    assert "line 2" in details["7"]
    # Formula cells never reach Excel as formulas.
    raw = (out / "manifest.csv").read_text(encoding="utf-8-sig")
    assert "\n=HYPERLINK" not in raw and ",=HYPERLINK" not in raw
    assert "'=HYPERLINK" in raw


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("Name,Grade\nAna,5\n", "no SSID column"),
        ("", "empty"),
    ],
)
def test_unusable_roster_is_exit_2(cli, sandbox_profile, tmp_path, content, words):
    roster = tmp_path / "roster.csv"
    roster.write_text(content)
    result = cli("bulk", str(roster), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert words in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_dry_run_checks_and_touches_nothing(cli, sandbox, sandbox_profile, roster, tmp_path):
    before = sandbox.state.stats()["counters"].get("data_requests", 0)
    out = tmp_path / "out"
    result = cli("bulk", str(roster), "--out", str(out), "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dry_run"] is True
    assert summary["students_to_ask"] == len(sandbox.state.world.roster_rows())
    assert summary["by_profile"] == {"sandbox": summary["students_to_ask"]}
    assert not out.exists()
    assert sandbox.state.stats()["counters"].get("data_requests", 0) == before


def test_dry_run_after_a_run_does_not_count_the_students_it_settled(
    cli, sandbox, sandbox_profile, tmp_path
):
    """A dry run before a re-run says what the re-run will ask: the students an earlier run
    settled (reports saved and intact, or ETS's answer recorded) are not counted."""
    rows = sandbox.state.world.roster_rows()[:6]
    roster = tmp_path / "six.csv"
    roster.write_text(roster_csv(rows), encoding="utf-8")
    out = tmp_path / "out"
    assert cli("bulk", str(roster), "--out", str(out)).exit_code == 0
    one = sorted(out.rglob("*.pdf"))[0]
    one.unlink()  # that student's reports are no longer all there: asked again
    ledger_before = (out / BULK_LEDGER_NAME).read_bytes()

    result = cli("bulk", str(roster), "--out", str(out), "--dry-run", "--json")

    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["students_to_ask"], summary["students_settled"]) == (1, 5)
    assert (out / BULK_LEDGER_NAME).read_bytes() == ledger_before
    said = cli("bulk", str(roster), "--out", str(out), "--dry-run")
    assert "Would ask ETS about 1 student" in said.stdout
    assert "Not asking again about 5 students" in said.stdout


def test_layout_puts_files_in_school_and_grade_folders_inside_out(
    cli, sandbox, sandbox_profile, tmp_path
):
    ssid = sandbox.state.world.examples()["spanish"]
    roster = tmp_path / "roster.csv"
    roster.write_text(
        f"SSID,School Name,Grade\n{ssid},../../Escaped: Elementary?,05\n", encoding="utf-8"
    )
    out = tmp_path / "out"
    result = cli(
        "bulk",
        str(roster),
        "--out",
        str(out),
        "--layout",
        "{school}/{grade}/{ssid}_{test}_{year}_{language}.pdf",
    )
    assert result.exit_code == 0, result.stderr
    files = sorted(out.rglob("*.pdf"))
    assert files
    for path in files:
        assert path.resolve().is_relative_to(out.resolve())
        school_folder = path.relative_to(out).parts[0]
        assert school_folder not in ("..", ".")
        assert not set(school_folder) & set('/\\:?*"<>|')
    assert not list(tmp_path.glob("Escaped*"))
    rows = manifest(out)
    assert all((out / r["file"]).exists() for r in rows if r["status"] == "downloaded")


def test_layout_with_unknown_field_is_exit_2(cli, sandbox_profile, roster, tmp_path):
    result = cli(
        "bulk",
        str(roster),
        "--out",
        str(tmp_path / "out"),
        "--layout",
        "{teacher}/{ssid}_{test}_{year}_{language}.pdf",
    )
    assert result.exit_code == 2
    assert "{teacher}" in result.stderr


def test_rows_go_through_the_profile_serving_their_school(cli, sandbox, profile_factory, tmp_path):
    world = sandbox.state.world
    student = world.students[world.examples()["english_only"]]
    other_school = next(s for s in world.students.values() if s.school_code != student.school_code)
    profile_factory(
        "district",
        base_url=sandbox.base_url,
        client_key=DEMO_CLIENT_KEY,
        client_secret=DEMO_CLIENT_SECRET,
        make_default=True,
        schools=[student.school_code],
    )
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "SSID,School Code\n"
        f"{student.ssid},{student.school_code}\n"
        f"{other_school.ssid},{other_school.school_code}\n"
    )
    out = tmp_path / "out"
    result = cli("bulk", str(roster), "--out", str(out))
    assert result.exit_code == 3, result.stderr  # the row no profile serves needs a person
    assert "1 of 2 roster rows needs a person (1 no profile)" in result.stderr
    statuses = {r["ssid"]: r["status"] for r in manifest(out)}
    assert statuses[student.ssid] == "downloaded"
    assert statuses[other_school.ssid] == "no_profile"
    forced = cli("--profile", "district", "bulk", str(roster), "--out", str(out), "--json")
    assert forced.exit_code == 0
    statuses = {r["ssid"]: r["status"] for r in manifest(out)}
    assert "no_profile" not in statuses.values()


def test_wrong_credentials_stop_the_run_with_exit_4(
    cli, sandbox, profile_factory, roster, tmp_path
):
    profile_factory(
        "wrong",
        base_url=sandbox.base_url,
        client_key="k",
        client_secret="not-it",
        make_default=True,
    )
    result = cli("bulk", str(roster), "--out", str(tmp_path / "out"))
    assert result.exit_code == 4
    assert "TOMS" in result.stderr
    assert "not-it" not in result.output


def _fast_client_factory(base_url: str, attempts: int = 2):
    from caaspp_cli.config.credentials import Credentials
    from caaspp_cli.ets.client import Endpoints

    def make(profile):
        return EtsClient(
            Endpoints(base_url),
            Credentials(DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET),
            retry=RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.05),
            max_connections=4,
        )

    return make


def test_failed_rows_are_exit_3_and_a_rerun_retries_just_those(cli, profile_factory, tmp_path):
    world = World.build(30, seed=5)
    roster = write_roster(tmp_path / "roster.csv", world)
    out = tmp_path / "out"
    with SandboxServer(SandboxConfig(students=30, seed=5, fault_rate=0.5)) as broken:
        profile_factory("p", base_url=broken.base_url, make_default=True)
        run = BulkRun(
            open_roster(roster),
            BulkOptions(out_dir=out, concurrency=4),
            client_factory=_fast_client_factory(broken.base_url, attempts=1),
        )
        summary = asyncio.run(run.run())
    assert summary.failed > 0
    failed_rows = {r["ssid"] for r in manifest(out) if r["status"] == "failed"}
    saved_before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pdf")}
    with SandboxServer(SandboxConfig(students=30, seed=5)) as healthy:
        profile_factory(
            "healthy",
            base_url=healthy.base_url,
            client_key=DEMO_CLIENT_KEY,
            client_secret=DEMO_CLIENT_SECRET,
            make_default=True,
        )
        result = cli("--profile", "healthy", "bulk", str(roster), "--out", str(out))
        assert result.exit_code == 0, result.stderr
        asked = healthy.state.stats()["counters"]["data_requests"]
    assert pdf_names(out) == expected_files(world)
    # Only the students that had failed were asked again; saved files were left alone.
    assert asked <= len(failed_rows)
    for name, mtime in saved_before.items():
        assert (out / name).stat().st_mtime_ns == mtime


def test_faulty_service_still_yields_every_available_report(profile_factory, tmp_path):
    world = World.build(80, seed=9)
    roster = write_roster(tmp_path / "roster.csv", world)
    out = tmp_path / "out"
    config = SandboxConfig(
        students=80, seed=9, fault_rate=0.1, revoke_every=50, link_ttl=1, rate_limit=40
    )
    with SandboxServer(config) as server:
        profile_factory(
            "faulty",
            base_url=server.base_url,
            client_key=DEMO_CLIENT_KEY,
            client_secret=DEMO_CLIENT_SECRET,
            make_default=True,
        )
        run = BulkRun(open_roster(roster), BulkOptions(out_dir=out, concurrency=8))
        summary = asyncio.run(run.run())
        stats = server.state.stats()
    assert summary.failed == 0, [r for r in manifest(out) if r["status"] == "failed"]
    assert pdf_names(out) == expected_files(world)
    assert not temp_files(out)
    counters = stats["counters"]
    assert counters.get("revocations", 0) >= 1
    assert counters.get("rate_limited", 0) >= 1
    # No runaway retries: each report's body was sent whole at most a few times.
    assert max(stats["downloads"].values()) <= 3


def test_sweep_removes_only_our_temp_files(tmp_path):
    (tmp_path / "sub").mkdir()
    ours = tmp_path / "sub" / f"{TEMP_PREFIX}abc{TEMP_SUFFIX}"
    ours.write_bytes(b"%PDF-")
    theirs = tmp_path / "sub" / "notes.part"
    theirs.write_text("keep")
    assert sweep_temp_files(tmp_path) == 1
    assert not ours.exists() and theirs.exists()


def _start_bulk(roster: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "caaspp_cli",
            "bulk",
            str(roster),
            "--out",
            str(out),
            "--concurrency",
            "4",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _env_for(server: SandboxServer, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CAASPP_CONFIG_DIR=os.environ["CAASPP_CONFIG_DIR"],
        CAASPP_DATA_DIR=os.environ["CAASPP_DATA_DIR"],
        CAASPP_CLIENT_KEY=DEMO_CLIENT_KEY,
        CAASPP_CLIENT_SECRET=DEMO_CLIENT_SECRET,
    )
    return env


def _wait_for_files(out: Path, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and len(list(out.glob("*.pdf"))) >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError("the bulk run saved nothing in time")


@pytest.mark.slow
def test_killed_run_resumes_without_downloading_saved_reports_again(profile_factory, tmp_path):
    world = World.build(60, seed=21)
    roster = write_roster(tmp_path / "roster.csv", world)
    out = tmp_path / "out"
    with SandboxServer(SandboxConfig(students=60, seed=21, latency_ms=30)) as server:
        profile_factory("s", base_url=server.base_url, make_default=True, credentials_source="env")
        env = _env_for(server, tmp_path)
        process = _start_bulk(roster, out, env)
        _wait_for_files(out, 10)
        process.kill()
        process.wait()
        saved_at_kill = {p.name for p in out.glob("*.pdf")}
        for name in saved_at_kill:  # whatever carries a final name is complete
            with pikepdf.open(out / name):
                pass
        resumed = _start_bulk(roster, out, env)
        _, stderr = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, stderr
        downloads = server.state.stats()["downloads"]
    assert pdf_names(out) == expected_files(world)
    assert not temp_files(out)
    by_name = {}
    for student in world.students.values():
        for report in student.reports:
            if report.format != "pdf":
                continue
            name = f"{student.ssid}_{report.test}_{report.year}_{report.language}.pdf"
            by_name[name] = report.report_id
    for name in saved_at_kill:
        assert downloads[by_name[name]] == 1, name
    # At most the few downloads in flight at the kill were sent twice.
    assert sum(n - 1 for n in downloads.values()) <= 4


@pytest.mark.posix
def test_ctrl_c_leaves_rows_not_reached_not_failed_and_lists_every_saved_file(
    profile_factory, tmp_path
):
    """Interrupted: rows the run never got to are "not reached" (their own count, not
    failures), and every PDF already saved, even of a student half done, is in the manifest."""
    world = World.build(80, seed=23)
    roster = write_roster(tmp_path / "roster.csv", world)
    out = tmp_path / "out"
    with SandboxServer(SandboxConfig(students=80, seed=23, latency_ms=40)) as server:
        profile_factory("s", base_url=server.base_url, make_default=True, credentials_source="env")
        process = _start_bulk(roster, out, _env_for(server, tmp_path))
        _wait_for_files(out, 6)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    rows = manifest(out)
    assert not [r for r in rows if r["status"] == "failed"], rows
    not_reached = [r for r in rows if r["status"] == "not_reached"]
    assert not_reached and all("stopped" in r["detail"] for r in not_reached)
    listed = {r["file"] for r in rows if r["status"] == "downloaded"}
    assert {p.name for p in out.glob("*.pdf")} == listed
    # Every roster row is in the manifest once at least, and the table counts them apart.
    assert {r["line"] for r in rows} == {str(n) for n in range(2, len(world.roster_rows()) + 2)}
    assert "not reached" in stdout and "failed" not in stdout
    assert f"Interrupted: {len(not_reached)} roster rows not reached" in stderr
    assert "error:" not in stderr and "resume" in stderr


@pytest.mark.posix
@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(profile_factory, tmp_path):
    world = World.build(60, seed=22)
    roster = write_roster(tmp_path / "roster.csv", world)
    out = tmp_path / "out"
    with SandboxServer(SandboxConfig(students=60, seed=22, latency_ms=30)) as server:
        profile_factory("s", base_url=server.base_url, make_default=True, credentials_source="env")
        process = _start_bulk(roster, out, _env_for(server, tmp_path))
        _wait_for_files(out, 5)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "resume" in stderr
    assert "Traceback" not in stderr
    assert (out / "manifest.csv").exists()
    assert not temp_files(out)
    with Ledger.in_folder(out) as ledger:
        assert ledger.counts().get("downloaded", 0) == len(list(out.glob("*.pdf")))


def test_sandbox_stats_endpoint_is_reachable(sandbox):
    assert httpx.get(sandbox.base_url + "/_sandbox/stats").status_code == 200


# --- Names and links under the output folder -------------------------------------------------
def _students_with_pdfs(world: World, count: int) -> list[dict[str, str]]:
    """Roster rows of ``count`` enrolled students who each have PDF reports."""
    rows = [
        row
        for row in world.roster_rows()
        if row["SSID"] in world.students
        and world.students[row["SSID"]].enrolled
        and any(r.format == "pdf" for r in world.students[row["SSID"]].reports)
    ]
    assert len(rows) >= count
    return rows[:count]


def _pdf_reports(world: World, ssid: str) -> list[str]:
    return [
        f"{ssid}_{r.test}_{r.year}_{r.language}.pdf"
        for r in world.students[ssid].reports
        if r.format == "pdf"
    ]


def test_a_layout_too_long_to_keep_reports_apart_is_refused(
    cli, sandbox, sandbox_profile, tmp_path
):
    """174 characters of fixed text before the report's own fields: names cut to fit made
    every report of 30 students one file, the others "adopted" as already there."""
    world = sandbox.state.world
    rows = _students_with_pdfs(world, 30)
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv(rows), encoding="utf-8")
    out = tmp_path / "out"
    layout = "r" * 174 + "{ssid}_{test}_{year}_{language}.pdf"
    result = cli("bulk", str(roster), "--out", str(out), "--layout", layout)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "too long" in result.stderr and "Traceback" not in result.stderr
    assert not list(out.rglob("*.pdf")) if out.exists() else True
    # The same fixed text spread over folders keeps every report apart.
    spread = "r" * 120 + "/" + "r" * 54 + "{ssid}_{test}_{year}_{language}.pdf"
    result = cli("bulk", str(roster), "--out", str(out), "--layout", spread)
    assert result.exit_code == 0, result.stderr
    expected = sum(len(_pdf_reports(world, row["SSID"])) for row in rows)
    assert len(list(out.rglob("*.pdf"))) == expected
    assert {r["status"] for r in manifest(out)} == {"downloaded"}


def test_two_reports_rendered_to_one_file_fail_the_second_never_adopt(
    cli, sandbox, sandbox_profile, tmp_path, monkeypatch
):
    """Should a layout ever render two reports to one path, the second fails with a reason
    and is never adopted as already there, in this run or the next."""
    from pathlib import PurePosixPath

    from caaspp_cli.fetch.layout import Layout

    world = sandbox.state.world
    row = next(
        r for r in _students_with_pdfs(world, 20) if len(_pdf_reports(world, r["SSID"])) >= 2
    )
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv([row]), encoding="utf-8")
    # One name for every report of the student: what a cut name used to give.
    monkeypatch.setattr(
        Layout, "relative_path", lambda self, values: PurePosixPath(f"{values['ssid']}.pdf")
    )
    out = tmp_path / "out"
    kept = []
    for expected in ("downloaded", "already_downloaded"):
        result = cli("bulk", str(roster), "--out", str(out))
        assert result.exit_code == 3, result.stderr
        rows = manifest(out)
        failed = [r for r in rows if r["status"] == "failed"]
        assert len(failed) == len(rows) - 1 >= 1, rows
        assert all("same file as" in r["detail"] for r in failed)
        [saved] = [r for r in rows if r["status"] != "failed"]
        assert saved["status"] == expected
        kept.append((saved["test"], saved["year"], saved["language"]))
    assert kept[0] == kept[1]  # the file's own report, not one of the others
    assert [p.name for p in out.rglob("*.pdf")] == [f"{row['SSID']}.pdf"]


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symlinks")
def test_a_link_at_a_reports_name_is_never_adopted(cli, sandbox, sandbox_profile, tmp_path):
    """A link planted at one child's report name, pointing to another child's report, was
    adopted as already downloaded (then protected and mailed to this family)."""
    world = sandbox.state.world
    first, second = _students_with_pdfs(world, 2)
    roster = tmp_path / "roster.csv"
    other = tmp_path / "other"
    roster.write_text(roster_csv([second]), encoding="utf-8")
    assert cli("bulk", str(roster), "--out", str(other)).exit_code == 0
    victim = other / _pdf_reports(world, second["SSID"])[0]
    before = victim.read_bytes()

    out = tmp_path / "out"
    out.mkdir()
    planted = out / _pdf_reports(world, first["SSID"])[0]
    planted.symlink_to(victim)
    roster.write_text(roster_csv([first]), encoding="utf-8")
    result = cli("bulk", str(roster), "--out", str(out))
    assert result.exit_code == 3, result.stderr
    rows = {r["file"]: r for r in manifest(out)}
    row = rows[planted.name]
    assert row["status"] == "failed"
    assert str(planted) in row["detail"] and "symbolic link" in row["detail"]
    assert planted.is_symlink() and victim.read_bytes() == before
    # The student's other reports are saved as usual.
    assert all(r["status"] == "downloaded" for f, r in rows.items() if f != planted.name)


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symlinks")
def test_a_linked_school_folder_sends_nothing_outside_out(cli, sandbox, sandbox_profile, tmp_path):
    world = sandbox.state.world
    row = _students_with_pdfs(world, 1)[0]
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv([row]), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    linked = out / row["School Name"]
    linked.symlink_to(outside, target_is_directory=True)
    layout = "{school}/{ssid}_{test}_{year}_{language}"
    result = cli("bulk", str(roster), "--out", str(out), "--layout", layout)
    assert result.exit_code == 3, result.stderr
    assert list(outside.iterdir()) == []
    rows = manifest(out)
    assert rows and all(r["status"] == "failed" for r in rows)
    assert all(str(linked) in r["detail"] for r in rows)


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symlinks")
def test_a_linked_ledger_is_refused_and_a_linked_manifest_replaced_not_followed(
    cli, sandbox, sandbox_profile, tmp_path
):
    world = sandbox.state.world
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv(_students_with_pdfs(world, 1)), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere.sqlite"
    ledger_link = out / ".caaspp-ledger.sqlite"
    ledger_link.symlink_to(elsewhere)
    result = cli("bulk", str(roster), "--out", str(out))
    assert result.exit_code == 2, result.stderr
    assert str(ledger_link) in result.stderr.replace("\n", "")
    assert not elsewhere.exists()

    ledger_link.unlink()
    victim = tmp_path / "victim.csv"
    victim.write_text("keep me\n", encoding="utf-8")
    (out / "manifest.csv").symlink_to(victim)
    result = cli("bulk", str(roster), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert victim.read_text(encoding="utf-8") == "keep me\n"
    assert not (out / "manifest.csv").is_symlink()


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_out_with_dot_dots_changes_no_existing_folders_mode(
    cli, sandbox, sandbox_profile, tmp_path, monkeypatch
):
    """`--out a/new/../../b` walked as text chmodded the existing a and . to 0700."""
    world = sandbox.state.world
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv(_students_with_pdfs(world, 1)), encoding="utf-8")
    work = tmp_path / "work"
    (work / "a").mkdir(parents=True)
    os.chmod(work, 0o750)  # noqa: S103 (a folder the user shares with their group)
    os.chmod(work / "a", 0o750)  # noqa: S103
    monkeypatch.chdir(work)
    result = cli("bulk", str(roster), "--out", "a/new/../../b")
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(work.stat().st_mode) == 0o750
    assert stat.S_IMODE((work / "a").stat().st_mode) == 0o750
    assert not (work / "a" / "new").exists()
    assert stat.S_IMODE((work / "b").stat().st_mode) == 0o700
    assert list((work / "b").glob("*.pdf"))


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")
def test_a_folder_swapped_for_a_link_during_the_run_is_not_recorded_as_saved(
    sandbox, sandbox_profile, tmp_path
):
    """A school folder replaced by a link to another place between the check and the
    download: what landed there is not recorded as saved, nor listed in the manifest."""
    world = sandbox.state.world
    row = _students_with_pdfs(world, 1)[0]
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv([row]), encoding="utf-8")
    out = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    real = _fast_client_factory(sandbox.base_url)

    class SwappingClient(EtsClient):
        async def download_report(self, ssid, entry, dest, **kwargs):
            folder = dest.parent
            if not folder.is_symlink():
                folder.rmdir()
                folder.symlink_to(outside, target_is_directory=True)
            return await super().download_report(ssid, entry, dest, **kwargs)

    def factory(profile):
        client = real(profile)
        client.__class__ = SwappingClient
        return client

    options = BulkOptions(
        out_dir=out, concurrency=1, layout="{school}/{ssid}_{test}_{year}_{language}"
    )
    run = BulkRun(open_roster(roster), options, client_factory=factory)
    summary = asyncio.run(run.run())
    rows = manifest(out)
    assert summary.failed == len(rows) >= 1
    assert all("symbolic link" in r["detail"] for r in rows)
    with Ledger.in_folder(out) as ledger:
        records = ledger.reports(row["SSID"], "||")
    assert records and all(r.status == "failed" for r in records)


@pytest.mark.slow
def test_a_rate_limited_service_slows_the_run_down_instead_of_failing_rows(
    profile_factory, tmp_path
):
    # The sandbox's token bucket answers 429 with Retry-After once more than `rate_limit`
    # requests a second arrive. At the default concurrency the run must pace itself: every
    # report saved, and under 5% of the requests spent on 429s. The first burst always
    # meets a few 429s (the requests in flight when the service's burst allowance runs out),
    # so the run is long enough (about 290 requests, 20 s) for the share to mean something:
    # measured 1.7-2.8% here.
    rate_limit, students = 20.0, 60
    world = World.build(students, seed=21)
    roster = write_roster(tmp_path / "roster.csv", world)
    out = tmp_path / "out"
    config = SandboxConfig(students=students, seed=21, rate_limit=rate_limit)
    with SandboxServer(config) as server:
        profile_factory(
            "paced",
            base_url=server.base_url,
            client_key=DEMO_CLIENT_KEY,
            client_secret=DEMO_CLIENT_SECRET,
            make_default=True,
        )
        started = time.monotonic()
        summary = asyncio.run(BulkRun(open_roster(roster), BulkOptions(out_dir=out)).run())
        elapsed = time.monotonic() - started
        counters = server.state.stats()["counters"]
    assert summary.failed == 0, [r for r in manifest(out) if r["status"] == "failed"]
    assert pdf_names(out) == expected_files(world)
    requests = counters.get("data_requests", 0) + counters.get("download_requests", 0)
    limited = counters.get("rate_limited", 0)
    print(f"rate {rate_limit}/s: {requests} requests, {limited} 429s, {elapsed:.1f} s")
    assert limited >= 1  # the limit was really reached
    assert limited / requests < 0.05
