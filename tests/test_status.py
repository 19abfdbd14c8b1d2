"""The season ledger, the legal clock and `caaspp status` (table, JSON, and an HTML page
checked in a real headless browser)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_owner_only
from hypothesis import given
from hypothesis import strategies as st

from caaspp_cli.deliver.deadlines import (
    add_working_days,
    due_date,
    is_working_day,
    parse_holidays,
    working_days_between,
)
from caaspp_cli.deliver.html import render_html
from caaspp_cli.deliver.season import ReportState, SeasonLedger, StudentState
from caaspp_cli.deliver.status import compute_status
from caaspp_cli.errors import BadInputError


def moment(day: date) -> float:
    return datetime(day.year, day.month, day.day, 9, 0).timestamp()


# --- The season ledger -------------------------------------------------------------------
def test_a_report_keeps_the_day_it_was_first_seen_and_no_moment_is_ever_cleared(
    tmp_path: Path,
) -> None:
    with SeasonLedger.in_folder(tmp_path) as ledger:
        ledger.put_report(ReportState("1", "a.pdf", "CAASPP", 2025, "en", 200.0))
        ledger.put_report(ReportState("1", "a.pdf", "CAASPP", 2025, "en", 100.0, protected=150.0))
        ledger.put_report(ReportState("1", "a.pdf", "CAASPP", 2025, "en", 300.0, emailed=400.0))
        ledger.put_report(ReportState("1", "a.pdf", "CAASPP", 2025, "en", 500.0, protected=160.0))
        ledger.put_student(StudentState("1", 2, "Lincoln", "5", "email", first_asked=90.0))
        ledger.put_student(StudentState("1", 2, "Lincoln", "5", "paper", first_asked=95.0))
        run = ledger.start_run()
        ledger.set_run_counts(run, {"season_reports": 1})
        ledger.finish_run(run, "finished")
    with SeasonLedger.in_folder(tmp_path) as ledger:
        (report,) = ledger.reports()
        (student,) = ledger.students()
        last = ledger.last_run()
    assert (report.first_seen, report.protected, report.emailed) == (100.0, 150.0, 400.0)
    assert student.channel == "paper" and student.first_asked == 90.0
    assert last is not None and last.status == "finished"
    assert last.counts == {"season_reports": 1}
    assert_owner_only(tmp_path / ".caaspp-season.sqlite")


_WRITER = """
import sys, pathlib
from caaspp_cli.deliver.season import ReportState, SeasonLedger, StudentState
folder, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with SeasonLedger.in_folder(folder) as ledger:
    run = ledger.start_run()
    number = 0
    while True:
        number += 1
        ssid = str(1000000000 + number % 500)
        ledger.put_student(StudentState(ssid, number % 500 + 2, "Lincoln", "5", "email"))
        ledger.put_report(
            ReportState(ssid, "a.pdf", "CAASPP", 2025, "en", 1000.0 + number, emailed=5e9 - number)
        )
        ledger.set_run_counts(run, {"reports": number})
        if number == 200:
            ready.touch()
"""


@pytest.mark.posix
def test_a_ledger_killed_mid_write_reopens_whole_and_goes_on(cli: Any, tmp_path: Path) -> None:
    import signal
    import sys
    import time

    folder, ready = tmp_path / "season", tmp_path / "ready"
    folder.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(folder), str(ready)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert writer.poll() is None, "the writer stopped"
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.01)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    assert writer.returncode == -signal.SIGKILL
    with SeasonLedger.in_folder(folder) as ledger:
        reports = list(ledger.reports())
        students = list(ledger.students())  # one more than reports if killed between the puts
        last = ledger.last_run()
        # Every report keeps the first moment it was given, whatever the later puts said.
        assert len(reports) >= 200
        for report in reports:
            number = int(report.ssid) - 1000000000 or 500
            assert report.first_seen == 1000.0 + number
        assert last is not None and last.finished is None and last.counts["reports"] >= 200
        ledger.put_report(ReportState("1000000001", "a.pdf", "CAASPP", 2025, "en", 1.0))
        (first,) = (r for r in ledger.reports() if r.ssid == "1000000001")
        assert first.first_seen == 1.0 and first.emailed is not None
    result = cli("status", str(folder), "--today", "2026-12-04", "--json")
    assert result.exit_code == 0, result.stderr
    total = json.loads(result.stdout)["total"]
    assert (total["students"], total["reports"]) == (len(students), len(reports))


def test_status_of_a_folder_deliver_never_ran_into_is_one_sentence_and_exit_2(
    cli: Any, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, tmp_path / "missing"):
        result = cli("status", str(folder))
        assert result.exit_code == 2, result.stderr
        assert "Traceback" not in result.stderr and str(folder) in result.stderr
        assert result.stdout == ""
    assert list(empty.iterdir()) == []  # status created no ledger there


# --- The clock ---------------------------------------------------------------------------
THANKSGIVING = frozenset({date(2026, 11, 26), date(2026, 11, 27)})


def test_caaspp_is_due_in_20_working_days_and_elpac_in_30_calendar_days() -> None:
    received = date(2026, 11, 16)  # a Monday
    assert due_date("CAASPP", received, frozenset()) == date(2026, 12, 14)
    assert due_date("CAASPP", received, THANKSGIVING) == date(2026, 12, 16)
    assert due_date("CAST", received, THANKSGIVING) == date(2026, 12, 16)
    assert due_date("ELPAC", received, THANKSGIVING) == date(2026, 12, 16)
    assert due_date("ELPAC", date(2026, 8, 3), frozenset()) == date(2026, 9, 2)


@given(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(min_value=0, max_value=60),
    st.frozensets(st.dates(min_value=date(2024, 1, 1), max_value=date(2031, 6, 30)), max_size=30),
)
def test_working_days_count_back_to_what_was_added(
    start: date, days: int, holidays: frozenset[date]
) -> None:
    end = add_working_days(start, days, holidays)
    assert working_days_between(start, end, holidays) == days
    assert days == 0 or is_working_day(end, holidays)
    assert working_days_between(end, start, holidays) == -days
    # Never fewer calendar days than working days.
    assert (end - start).days >= days


DAYS = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
HOLIDAYS = st.frozensets(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2031, 6, 30)), max_size=30
)


@given(DAYS, HOLIDAYS, HOLIDAYS, st.sampled_from(["CAASPP", "CAST", "CAAS", "ELPAC"]))
def test_a_due_date_is_a_working_day_and_days_off_only_move_it_later(
    received: date, holidays: frozenset[date], more: frozenset[date], test: str
) -> None:
    due = due_date(test, received, holidays)
    if test == "ELPAC":  # calendar days: the district's days off change nothing
        assert due == received + timedelta(days=30) == due_date(test, received, holidays | more)
        return
    assert is_working_day(due, holidays)
    assert working_days_between(received, due, holidays) == 20
    # 20 working days take four weeks at least (26 calendar days from a Sunday).
    assert (due - received).days >= 26
    assert due_date(test, received, holidays | more) >= due


def test_the_holidays_file_takes_dates_ranges_labels_and_comments() -> None:
    days = parse_holidays(
        [
            "# district calendar 2026-27",
            "2026-11-11 Veterans Day",
            "2026-11-26..2026-11-27  Thanksgiving",
            "",
            "2026-12-21 .. 2027-01-01, winter break",
        ]
    )
    assert date(2026, 11, 11) in days and date(2026, 11, 27) in days
    assert date(2026, 12, 25) in days and date(2027, 1, 1) in days
    assert len(days) == 1 + 2 + 12


@pytest.mark.parametrize(
    "line", ["11/26/2026", "2026-02-30", "2026-12-21..2026-12-01", "2026-01-01..2028-01-01"]
)
def test_a_bad_holidays_line_is_named(line: str) -> None:
    with pytest.raises(BadInputError, match="line 2"):
        parse_holidays(["2026-01-01", line], "holidays.txt")


# --- Where the season stands ---------------------------------------------------------------
TODAY = date(2026, 12, 4)


def sample() -> tuple[list[StudentState], list[ReportState]]:
    students = [
        StudentState("1000000001", 2, "Lincoln Elementary", "3", "email"),
        StudentState("1000000002", 3, "Lincoln Elementary", "4", "paper", "no_email"),
        StudentState("1000000003", 4, "Lincoln Elementary", "5", "held", "held"),
        StudentState("1000000004", 5, "Roosevelt Middle", "7", "email"),
        StudentState("1000000005", 6, "Roosevelt Middle", "8", "email"),
    ]
    old = moment(TODAY - timedelta(days=40))
    recent = moment(TODAY - timedelta(days=23))
    reports = [
        ReportState("1000000001", "a.pdf", "CAASPP", 2025, "en", old, old, emailed=old),
        ReportState("1000000001", "b.pdf", "ELPAC", 2025, "en", recent, recent),  # due soon
        ReportState("1000000002", "c.pdf", "CAASPP", 2025, "en", old, old, printed=old),
        ReportState("1000000003", "d.pdf", "CAASPP", 2025, "en", old),  # held: off the clock
        ReportState("1000000004", "e.pdf", "CAASPP", 2025, "en", old, old),  # overdue
    ]
    return students, reports


def season_folder(tmp_path: Path, students: list[StudentState], reports: list[ReportState]) -> Path:
    folder = tmp_path / "season"
    folder.mkdir()
    with SeasonLedger.in_folder(folder) as ledger:
        for student in students:
            ledger.put_student(student)
        for report in reports:
            ledger.put_report(report)
    return folder


def test_the_numbers_per_school_and_the_clock() -> None:
    students, reports = sample()
    status = compute_status(students, reports, TODAY)
    lincoln, roosevelt = status.schools["Lincoln Elementary"], status.schools["Roosevelt Middle"]
    assert (lincoln.students, lincoln.reports, lincoln.emailed, lincoln.printed) == (3, 4, 1, 1)
    assert (lincoln.held, lincoln.follow_ups, lincoln.waiting) == (1, 2, 0)
    assert (lincoln.due_soon, lincoln.overdue) == (1, 0)
    assert (roosevelt.waiting, roosevelt.overdue, roosevelt.due_soon) == (1, 1, 0)
    assert status.total.overdue == 1 and status.total.due_soon == 1
    assert status.total.next_due == due_date("CAASPP", TODAY - timedelta(days=40), frozenset())
    data = json.loads(json.dumps(status.as_dict()))
    assert data["total"]["reports"] == 5 and data["schools"]["Roosevelt Middle"]["waiting"] == 1


def test_holidays_move_the_clock(cli: Any, tmp_path: Path) -> None:
    students, reports = sample()
    folder = season_folder(tmp_path, students, reports)
    holidays = tmp_path / "holidays.txt"
    holidays.write_text("2026-11-16..2026-11-30 a long break\n")
    plain = cli("status", str(folder), "--today", TODAY.isoformat(), "--json")
    given_days = cli(
        "status", str(folder), "--today", TODAY.isoformat(), "--holidays", str(holidays), "--json"
    )
    assert plain.exit_code == given_days.exit_code == 0, plain.stderr + given_days.stderr
    assert json.loads(plain.stdout)["total"]["overdue"] == 1
    assert json.loads(given_days.stdout)["total"]["overdue"] == 0
    table = cli("status", str(folder), "--today", TODAY.isoformat())
    assert "Lincoln Elementary" in table.stdout and "overdue" in table.stderr
    bad = cli("status", str(folder), "--today", "tomorrow")
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr


def test_the_tables_keep_every_heading_whole_in_80_columns(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caaspp_cli.cli import render

    students, reports = sample()
    students.append(StudentState("1000000006", 7, "Theodore Roosevelt Middle School", "8", "none"))
    folder = season_folder(tmp_path, students, reports)
    monkeypatch.setattr(render.stdout, "width", 80)  # a terminal's default; cron's mail
    result = cli("status", str(folder), "--today", TODAY.isoformat())
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    for heading in ("Students", "Waiting", "Held", "Follow-up", "Reports", "Protected"):
        assert heading in result.stdout
    for heading in ("Emailed", "Printed", "Overdue", "Next due", "Lincoln Elementary"):
        assert heading in result.stdout
    assert "2026-11-20" in result.stdout  # the earliest due date, whole


# --- The HTML page in a real browser --------------------------------------------------------
def chromium() -> str:
    """The browser; a skip only off CI where nobody asked for it (CAASPP_REQUIRE_BROWSER=1,
    set by tests/run.py, or CI set): a browser test that skips on CI tests nothing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CAASPP_REQUIRE_BROWSER") == "1" or on_ci():
            pytest.fail("chromium is not installed, and this run requires it (CI or tests/run.py)")
        pytest.skip("chromium is not installed (tests/run.py installs it on Debian)")
    return found


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
def watcher() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every request it gets."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def browse(page: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def png_rows(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the raw (filtered) scanlines of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    position, idat = 8, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            idat += data[position + 8 : position + 8 + length]
        position += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.mark.slow
def test_the_html_page_renders_the_numbers_and_fetches_nothing(
    cli: Any, tmp_path: Path, watcher: tuple[str, list[str]]
) -> None:
    base, seen = watcher
    students, reports = sample()
    hostile = f'<img src="{base}/leak"><script>fetch("{base}/js")</script>'
    students.append(StudentState("1000000006", 7, hostile, "2", "email"))
    folder = season_folder(tmp_path, students, reports)
    page = tmp_path / "status.html"
    result = cli("status", str(folder), "--today", TODAY.isoformat(), "--html", str(page))
    assert result.exit_code == 0, result.stderr
    assert_owner_only(page)
    html = page.read_text()
    assert "<img" not in html.replace("&lt;img", "") and "1000000001" not in html

    dom = browse(page, "--dump-dom", tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr
    assert 'data-school="Lincoln Elementary"' in dom.stdout
    assert "Roosevelt Middle" in dom.stdout
    assert '<div class="card bad" data-count="overdue"><b>1</b>' in dom.stdout
    assert "&lt;img src=" in dom.stdout  # the hostile name is text, not an element
    assert "<img" not in dom.stdout and "<script>" not in dom.stdout

    shot = tmp_path / "status.png"
    taken = browse(page, f"--screenshot={shot}", "--window-size=1200,900", tmp_path=tmp_path)
    assert taken.returncode == 0 and shot.is_file(), taken.stderr
    width, height, rows = png_rows(shot.read_bytes())
    assert (width, height) == (1200, 900)
    assert len(set(rows)) > 16, "the screenshot is blank"
    assert seen == [], f"the page made requests: {seen}"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler) not installed")
def test_the_page_prints_whole_on_paper(cli: Any, tmp_path: Path) -> None:
    """A coordinator prints the page for a meeting: the clock's columns must not fall off
    the paper's edge, nor the dates break across lines."""
    students, reports = sample()
    folder = season_folder(tmp_path, students, reports)
    page = tmp_path / "status.html"
    assert (
        cli("status", str(folder), "--today", TODAY.isoformat(), "--html", str(page)).exit_code == 0
    )
    paper = tmp_path / "status.pdf"
    printed = browse(page, "--no-pdf-header-footer", f"--print-to-pdf={paper}", tmp_path=tmp_path)
    assert printed.returncode == 0 and paper.is_file(), printed.stderr
    text = subprocess.run(
        ["pdftotext", "-layout", str(paper), "-"], capture_output=True, text=True, check=True
    ).stdout
    for heading in ("Students", "Protected", "Emailed", "Printed", "Overdue", "Next due"):
        assert heading in text, f"{heading!r} is not on the paper"
    assert "2026-11-20" in text and "2026-12-11" in text  # due dates whole, on the paper


def test_the_page_says_what_it_counts_without_a_browser() -> None:
    students, reports = sample()
    html = render_html(compute_status(students, reports, TODAY))
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "<script" not in html and "http" not in html.split("</head>")[1]
    assert html.count("<tr data-school=") == 3  # two schools and the total
