"""The season ledger: where each student and each report of a season folder stands.

``caaspp deliver`` writes it at the end of every run, from what each stage's own ledger
and files say (:mod:`caaspp_cli.deliver.run`); ``caaspp status`` only reads it. It holds no
name and no address: a student is an SSID, a roster line, a school and a grade, and the way
the family is reached (``channel``); a report is its file and the moments it was first
seen (the LEA received it: the legal clock starts), protected, emailed and put in the print
pack. A moment once recorded never moves later and is never cleared: a report first seen on
August 12 stays first seen on August 12 whatever later runs find.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from caaspp_cli.artifacts import SEASON_LEDGER_NAME
from caaspp_cli.ledger import RUN_TABLES, RunLedger, open_database

SEASON_SCHEMA_VERSION: Final = 1

_SCHEMA: Final = (
    RUN_TABLES
    + """
CREATE TABLE IF NOT EXISTS students (
    ssid TEXT PRIMARY KEY,
    line INTEGER NOT NULL,
    school TEXT NOT NULL DEFAULT '',
    grade TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,        -- email | paper | held | none
    follow_up TEXT NOT NULL DEFAULT '',
    first_asked REAL,             -- the first run that asked ETS about the student
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    ssid TEXT NOT NULL,
    file TEXT NOT NULL,           -- relative to the season's reports/ (and protected/)
    test TEXT NOT NULL,
    year INTEGER NOT NULL,
    language TEXT NOT NULL,
    first_seen REAL NOT NULL,
    protected REAL,
    emailed REAL,
    printed REAL,
    updated REAL NOT NULL,
    PRIMARY KEY (ssid, file)
);
CREATE TABLE IF NOT EXISTS run_counts (
    run INTEGER PRIMARY KEY,
    counts TEXT NOT NULL          -- JSON: label -> number (never a name or an SSID)
);
"""
)

# Channels: how a family gets its reports.
EMAIL: Final = "email"
PAPER: Final = "paper"
HELD: Final = "held"
NONE: Final = "none"
CHANNELS: Final = (EMAIL, PAPER, HELD, NONE)


@dataclass(frozen=True)
class StudentState:
    ssid: str
    line: int
    school: str
    grade: str
    channel: str  # EMAIL | PAPER | HELD | NONE
    follow_up: str = ""  # a FollowUp reason, "" = none
    first_asked: float | None = None


@dataclass(frozen=True)
class ReportState:
    ssid: str
    file: str
    test: str
    year: int
    language: str
    first_seen: float
    protected: float | None = None
    emailed: float | None = None
    printed: float | None = None

    @property
    def delivered(self) -> bool:
        return self.emailed is not None or self.printed is not None


@dataclass(frozen=True)
class RunRecord:
    started: float
    finished: float | None
    status: str
    counts: dict[str, int]


class SeasonLedger(RunLedger):
    """Where each student and report of a season folder stands."""

    def __init__(self, path: Path) -> None:
        self._db = open_database(
            path,
            _SCHEMA,
            SEASON_SCHEMA_VERSION,
            damaged_hint="move it aside and run `caaspp deliver` again: it is rebuilt from "
            "the stages' own ledgers, though the days reports were first seen restart.",
            version_hint="use that version of caaspp for this season folder.",
        )
        self.path = path

    @classmethod
    def in_folder(cls, folder: Path) -> SeasonLedger:
        return cls(folder / SEASON_LEDGER_NAME)

    @classmethod
    def existing(cls, folder: Path) -> SeasonLedger | None:
        """The folder's season ledger, or None when ``caaspp deliver`` never ran there."""
        path = folder / SEASON_LEDGER_NAME
        return cls(path) if path.is_file() else None

    # --- students ------------------------------------------------------------------------
    def put_student(self, state: StudentState) -> None:
        """Record a student as the roster and the stages say tonight (``first_asked`` keeps
        its earliest value)."""
        self._db.execute(
            "INSERT INTO students VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ssid) DO UPDATE "
            "SET line=excluded.line, school=excluded.school, grade=excluded.grade, "
            "channel=excluded.channel, follow_up=excluded.follow_up, "
            "first_asked=COALESCE(MIN(students.first_asked, excluded.first_asked), "
            "students.first_asked, excluded.first_asked), updated=excluded.updated",
            (
                state.ssid,
                state.line,
                state.school,
                state.grade,
                state.channel,
                state.follow_up,
                state.first_asked,
                time.time(),
            ),
        )

    def students(self) -> Iterator[StudentState]:
        cursor = self._db.execute(
            "SELECT ssid, line, school, grade, channel, follow_up, first_asked FROM students "
            "ORDER BY line"
        )
        for row in cursor:
            yield StudentState(*row)

    def forget_students_except(self, ssids: set[str]) -> None:
        """Drop students no longer in the roster (their reports stay, for the record)."""
        known = [row[0] for row in self._db.execute("SELECT ssid FROM students")]
        for ssid in known:
            if ssid not in ssids:
                self._db.execute("DELETE FROM students WHERE ssid=?", (ssid,))

    # --- reports -------------------------------------------------------------------------
    def put_report(self, state: ReportState) -> None:
        """Record a report; the earliest ``first_seen`` wins, and a moment already set
        (protected, emailed, printed) is kept, or moved earlier, never cleared."""
        self._db.execute(
            "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (ssid, file) DO UPDATE SET test=excluded.test, year=excluded.year, "
            "language=excluded.language, "
            "first_seen=MIN(reports.first_seen, excluded.first_seen), "
            "protected=COALESCE(MIN(reports.protected, excluded.protected), "
            "reports.protected, excluded.protected), "
            "emailed=COALESCE(MIN(reports.emailed, excluded.emailed), "
            "reports.emailed, excluded.emailed), "
            "printed=COALESCE(MIN(reports.printed, excluded.printed), "
            "reports.printed, excluded.printed), "
            "updated=excluded.updated",
            (
                state.ssid,
                state.file,
                state.test,
                state.year,
                state.language,
                state.first_seen,
                state.protected,
                state.emailed,
                state.printed,
                time.time(),
            ),
        )

    def reports(self) -> Iterator[ReportState]:
        cursor = self._db.execute(
            "SELECT ssid, file, test, year, language, first_seen, protected, emailed, printed "
            "FROM reports ORDER BY ssid, file"
        )
        for row in cursor:
            yield ReportState(*row)

    # --- runs ----------------------------------------------------------------------------
    def set_run_counts(self, run_id: int, counts: Mapping[str, int]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO run_counts VALUES (?, ?)",
            (run_id, json.dumps(dict(counts), sort_keys=True)),
        )

    def last_run(self) -> RunRecord | None:
        row = self._db.execute(
            "SELECT runs.started, runs.finished, runs.outcome, run_counts.counts FROM runs "
            "LEFT JOIN run_counts ON run_counts.run = runs.id ORDER BY runs.id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        started, finished, outcome, counts = row
        return RunRecord(started, finished, outcome, json.loads(counts) if counts else {})
