"""The bulk ledger: what a ``caaspp bulk`` run into one folder has done so far.

Each student's answer and each saved report is committed as it completes (WAL, so a kill at
any moment leaves a database the next run trusts). A report counts as done only when the
file it names is on disk with the size and checksum recorded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from caaspp_cli.artifacts import BULK_LEDGER_NAME
from caaspp_cli.ledger import RUN_TABLES, RunLedger, open_database

SCHEMA_VERSION = 2
# Schema 1 had neither when a student was last asked nor when a report was first seen.
_MIGRATIONS: dict[int, str] = {
    1: """
ALTER TABLE students ADD COLUMN asked REAL;
UPDATE students SET asked = updated;
ALTER TABLE reports ADD COLUMN first_seen REAL;
UPDATE reports SET first_seen = updated
""",
}

_SCHEMA = (
    RUN_TABLES
    + """
CREATE TABLE IF NOT EXISTS students (
    ssid TEXT NOT NULL,
    query TEXT NOT NULL,          -- the filters asked, e.g. "CAASPP|en|2025" ('' = all)
    status TEXT NOT NULL,         -- listed | no_reports | student_not_found | not_enrolled | failed
    detail TEXT NOT NULL DEFAULT '',
    profile TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    asked REAL,                   -- when ETS last answered about this student
    PRIMARY KEY (ssid, query)
);
CREATE TABLE IF NOT EXISTS reports (
    ssid TEXT NOT NULL,
    query TEXT NOT NULL,
    test TEXT NOT NULL,
    year INTEGER NOT NULL,
    language TEXT NOT NULL,
    format TEXT NOT NULL,
    status TEXT NOT NULL,         -- downloaded | failed | html
    file TEXT NOT NULL DEFAULT '',
    size INTEGER,
    sha256 TEXT,
    detail TEXT NOT NULL DEFAULT '',
    run INTEGER NOT NULL DEFAULT 0,   -- the run that last wrote this row
    updated REAL NOT NULL,
    first_seen REAL,              -- when ETS first listed this report to caaspp
    PRIMARY KEY (ssid, query, test, year, language, format)
);
"""
)


@dataclass(frozen=True, slots=True)
class StudentRecord:
    ssid: str
    status: str
    detail: str
    profile: str
    asked: float | None = None


@dataclass(frozen=True, slots=True)
class ReportRecord:
    ssid: str
    test: str
    year: int
    language: str
    format: str
    status: str
    file: str
    size: int | None
    sha256: str | None
    detail: str
    run: int = 0
    first_seen: float | None = None  # kept from the first time it was recorded (None: now)


class Ledger(RunLedger):
    """What a bulk run into one folder has done so far."""

    def __init__(self, path: Path) -> None:
        self._db = open_database(
            path,
            _SCHEMA,
            SCHEMA_VERSION,
            damaged_hint="move it aside to start this folder afresh; files already saved are "
            "adopted without downloading them again.",
            version_hint="use that version, or move the ledger aside to start afresh.",
            migrations=_MIGRATIONS,
        )
        self.path = path

    @classmethod
    def in_folder(cls, folder: Path) -> Ledger:
        return cls(folder / BULK_LEDGER_NAME)

    @classmethod
    def existing(cls, folder: Path) -> Ledger | None:
        """The folder's ledger to read, or None when no bulk run wrote there."""
        path = folder / BULK_LEDGER_NAME
        return cls(path) if path.is_file() else None

    # --- students --------------------------------------------------------------------------
    def student(self, ssid: str, query: str) -> StudentRecord | None:
        row = self._db.execute(
            "SELECT ssid, status, detail, profile, asked FROM students WHERE ssid=? AND query=?",
            (ssid, query),
        ).fetchone()
        return StudentRecord(*row) if row else None

    def record_student(
        self,
        ssid: str,
        query: str,
        status: str,
        detail: str = "",
        profile: str = "",
        *,
        asked: float | None = None,
    ) -> None:
        """Record ETS's answer about a student (``asked``: when; now if not given)."""
        now = time.time()
        self._db.execute(
            "INSERT OR REPLACE INTO students VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ssid, query, status, detail, profile, now, now if asked is None else asked),
        )

    # --- reports ---------------------------------------------------------------------------
    def reports(self, ssid: str, query: str) -> list[ReportRecord]:
        rows = self._db.execute(
            "SELECT ssid, test, year, language, format, status, file, size, sha256, detail, run, "
            "first_seen "
            "FROM reports WHERE ssid=? AND query=? ORDER BY test, year, language, format",
            (ssid, query),
        ).fetchall()
        return [ReportRecord(*row) for row in rows]

    def record_report(self, query: str, record: ReportRecord) -> None:
        """Record what became of a report; the moment it was first seen is kept."""
        self._db.execute(
            "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (ssid, query, test, year, language, format) DO UPDATE SET "
            "status=excluded.status, file=excluded.file, size=excluded.size, "
            "sha256=excluded.sha256, detail=excluded.detail, run=excluded.run, "
            "updated=excluded.updated, "
            "first_seen=COALESCE(reports.first_seen, excluded.first_seen)",
            (
                record.ssid,
                query,
                record.test,
                record.year,
                record.language,
                record.format,
                record.status,
                record.file,
                record.size,
                record.sha256,
                record.detail,
                record.run,
                time.time(),
                record.first_seen if record.first_seen is not None else time.time(),
            ),
        )

    def counts(self) -> dict[str, int]:
        """Report statuses and their counts, for summaries and tests."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM reports GROUP BY status")
        return {status: n for status, n in rows}

    def all_reports(self) -> Iterator[ReportRecord]:
        cursor = self._db.execute(
            "SELECT ssid, test, year, language, format, status, file, size, sha256, detail, run, "
            "first_seen "
            "FROM reports ORDER BY ssid, test, year, language"
        )
        for row in cursor:
            yield ReportRecord(*row)
