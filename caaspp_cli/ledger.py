"""The SQLite ledgers that bulk and send keep beside their files, so a re-run resumes.

:class:`Ledger` (bulk): each student's answer and each saved report is committed as it
completes (WAL, so a kill at any moment leaves a database the next run trusts). A report
counts as done only when the file it names is on disk with the size and checksum recorded.

:class:`SendLedger` (send): each message to a family, recorded around its SMTP transaction
so that no family ever gets a second copy, even after a crash (see its docstring).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Self

from caaspp_cli.artifacts import BULK_LEDGER_NAME, SEND_LEDGER_NAME
from caaspp_cli.errors import BadInputError, CaasppError, ExitCode
from caaspp_cli.folderlock import FOLDER_LOCK_NAME, FolderBusyError, FolderLock
from caaspp_cli.fsutil import (
    PRIVATE_FILE_MODE,
    LinkRefusedError,
    open_nofollow,
    prepare_output_dir,
    refuse_link,
)

# Tables every ledger has: its schema version, and its runs (see _RunLedger).
_RUN_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    outcome TEXT NOT NULL DEFAULT 'running'
);
"""
SCHEMA_VERSION = 1

_SCHEMA = (
    _RUN_TABLES
    + """
CREATE TABLE IF NOT EXISTS students (
    ssid TEXT NOT NULL,
    query TEXT NOT NULL,          -- the filters asked, e.g. "CAASPP|en|2025" ('' = all)
    status TEXT NOT NULL,         -- listed | no_reports | student_not_found | not_enrolled | failed
    detail TEXT NOT NULL DEFAULT '',
    profile TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
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
    PRIMARY KEY (ssid, query, test, year, language, format)
);
"""
)


_LEDGER_FOLDER_HINT: Final = (
    "caaspp keeps its ledger in the folder it writes to: choose a folder you may write in."
)


def open_database(
    path: Path,
    schema: str,
    version: int,
    *,
    damaged_hint: str,
    version_hint: str,
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
) -> sqlite3.Connection:
    """An owner-only SQLite file in WAL mode with ``schema``, checked to be ``version``.

    Autocommit (``isolation_level=None``): every statement is committed when it returns.
    A file that is not SQLite, or is damaged, or has another schema version, is a
    BadInputError with the hint given.
    """
    prepare_output_dir(path.parent, "folder", _LEDGER_FOLDER_HINT)
    try:
        # A link at the ledger (or its journal files) would have SQLite create or write a
        # file elsewhere: refused, with the link named.
        for companion in ("", "-wal", "-shm", "-journal"):
            refuse_link(path.with_name(path.name + companion))
        if not os.path.lexists(path):
            # Created owner-only before SQLite opens it; its -wal and -shm files copy the
            # mode. O_NOFOLLOW: a link planted since the check above is refused too.
            os.close(open_nofollow(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE_MODE))
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except LinkRefusedError:
        raise
    except OSError as exc:
        raise BadInputError(
            f"the ledger {path} cannot be opened ({exc.strerror or exc}).",
            hint=_LEDGER_FOLDER_HINT,
        ) from None
    except sqlite3.Error as exc:
        raise BadInputError(f"the ledger {path} cannot be opened ({exc}).") from None
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt; FULL
        # also makes each commit durable across a power cut (one fsync per commit).
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        check_integrity(db, path, damaged_hint)
        db.executescript(schema)
        found = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise BadInputError(
            f"the ledger {path} is not a caaspp ledger or is damaged ({exc}).",
            hint=damaged_hint,
        ) from None
    if found is None:
        db.execute("INSERT INTO meta VALUES ('version', ?)", (str(version),))
    elif found[0] != str(version):
        db.close()
        raise BadInputError(
            f"the ledger {path} was written by another version of caaspp (schema {found[0]}).",
            hint=version_hint,
        )
    return db


def check_integrity(db: sqlite3.Connection, path: Path, damaged_hint: str) -> None:
    """BadInputError if SQLite's full integrity check finds the ledger damaged.

    ``quick_check`` is not enough: it does not compare indexes with their tables, and a
    damaged index makes a lookup miss a recorded message, which would then be sent again.
    The full check reads the whole file once (milliseconds for a send ledger).
    """
    problems = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
    if problems != ["ok"]:
        db.close()
        raise BadInputError(
            f"the ledger {path} is damaged (SQLite's integrity check: {problems[0]}).",
            hint=damaged_hint,
        )


@dataclass(frozen=True, slots=True)
class StudentRecord:
    ssid: str
    status: str
    detail: str
    profile: str


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


class _RunLedger:
    """What both ledgers share: the database, its runs, and closing it."""

    _db: sqlite3.Connection

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_run(self) -> int:
        cursor = self._db.execute("INSERT INTO runs (started) VALUES (?)", (time.time(),))
        return int(cursor.lastrowid or 0)

    def finish_run(self, run: int, outcome: str) -> None:
        self._db.execute(
            "UPDATE runs SET finished=?, outcome=? WHERE id=?", (time.time(), outcome, run)
        )


class Ledger(_RunLedger):
    """What a bulk run into one folder has done so far."""

    def __init__(self, path: Path) -> None:
        self._db = open_database(
            path,
            _SCHEMA,
            SCHEMA_VERSION,
            damaged_hint="move it aside to start this folder afresh; files already saved are "
            "adopted without downloading them again.",
            version_hint="use that version, or move the ledger aside to start afresh.",
        )
        self.path = path

    @classmethod
    def in_folder(cls, folder: Path) -> Ledger:
        return cls(folder / BULK_LEDGER_NAME)

    # --- students --------------------------------------------------------------------------
    def student(self, ssid: str, query: str) -> StudentRecord | None:
        row = self._db.execute(
            "SELECT ssid, status, detail, profile FROM students WHERE ssid=? AND query=?",
            (ssid, query),
        ).fetchone()
        return StudentRecord(*row) if row else None

    def record_student(
        self, ssid: str, query: str, status: str, detail: str = "", profile: str = ""
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO students VALUES (?, ?, ?, ?, ?, ?)",
            (ssid, query, status, detail, profile, time.time()),
        )

    # --- reports ---------------------------------------------------------------------------
    def reports(self, ssid: str, query: str) -> list[ReportRecord]:
        rows = self._db.execute(
            "SELECT ssid, test, year, language, format, status, file, size, sha256, detail, run "
            "FROM reports WHERE ssid=? AND query=? ORDER BY test, year, language, format",
            (ssid, query),
        ).fetchall()
        return [ReportRecord(*row) for row in rows]

    def record_report(self, query: str, record: ReportRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )

    def counts(self) -> dict[str, int]:
        """Report statuses and their counts, for summaries and tests."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM reports GROUP BY status")
        return {status: n for status, n in rows}

    def all_reports(self) -> Iterator[ReportRecord]:
        cursor = self._db.execute(
            "SELECT ssid, test, year, language, format, status, file, size, sha256, detail, run "
            "FROM reports ORDER BY ssid, test, year, language"
        )
        for row in cursor:
            yield ReportRecord(*row)


# --- The send ledger -----------------------------------------------------------------------
SEND_LOCK_NAME: Final = FOLDER_LOCK_NAME
SEND_SCHEMA_VERSION: Final = 1

MessageKind = Literal["report", "password"]
REPORT: Final = "report"
PASSWORD: Final = "password"  # noqa: S105 - the name of a kind of message

# A message's status. "sending" that outlives its run is *uncertain*: the server may have
# accepted it (see SendLedger).
SENDING: Final = "sending"
ACCEPTED: Final = "accepted"
NOT_ACCEPTED: Final = "failed"

_SEND_SCHEMA = (
    _RUN_TABLES
    + """
CREATE TABLE IF NOT EXISTS messages (
    ssid TEXT NOT NULL,
    kind TEXT NOT NULL,                   -- report (carries the PDFs) | password
    status TEXT NOT NULL,                 -- sending | accepted | failed
    message_id TEXT NOT NULL,             -- its Message-ID header, kept across attempts
    recipients TEXT NOT NULL DEFAULT '',  -- '; '-joined; once accepted, those who took it
    attempts INTEGER NOT NULL DEFAULT 0,  -- message bodies started (DATA)
    detail TEXT NOT NULL DEFAULT '',
    run INTEGER NOT NULL DEFAULT 0,       -- the run that last wrote this row
    started REAL,                         -- when the last body started
    accepted REAL,                        -- when the server's 250 was recorded
    updated REAL NOT NULL,
    PRIMARY KEY (ssid, kind)
);
"""
)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    ssid: str
    kind: str
    status: str
    message_id: str
    recipients: tuple[str, ...]
    attempts: int
    detail: str
    run: int
    started: float | None
    accepted: float | None

    @property
    def is_accepted(self) -> bool:
        return self.status == ACCEPTED

    @property
    def is_uncertain(self) -> bool:
        """Its body was on its way to the server, and no answer was ever recorded."""
        return self.status == SENDING


def _record(row: tuple[Any, ...]) -> MessageRecord:
    ssid, kind, status, message_id, recipients, attempts, detail, run, started, accepted = row
    return MessageRecord(
        ssid,
        kind,
        status,
        message_id,
        tuple(r for r in recipients.split("; ") if r),
        attempts,
        detail,
        run,
        started,
        accepted,
    )


class SendLedger(_RunLedger):
    """Which messages of ``caaspp send`` the mail server has accepted, kept beside the PDFs.

    One row per student and kind of message (``report``, then ``password``). Around each
    SMTP transaction the sender records, each time committed and fsynced before going on:

    1. ``sending`` (:meth:`mark_sending`) once the server has said 354 to DATA and before
       the body is written: until the body's final dot, the server cannot accept it;
    2. ``accepted`` (:meth:`mark_accepted`) as soon as the server answers 250 to the body;
       ``failed`` (:meth:`mark_not_accepted`) when it answers anything else, or refuses
       before DATA: the message was certainly not taken, and a re-run sends it again.

    A row left ``sending`` (killed, or the connection lost while waiting for the answer)
    is *uncertain*: the server may have accepted it. It is never sent again on its own: a
    re-run lists it, and sends it only when asked (``--resend-uncertain``), or records it
    as accepted once staff have found it in the mail server's log. Messages are sent one
    at a time, so a crash leaves at most one uncertain message. The password message of a
    student is sent only once the report message is recorded ``accepted``.

    Opening it takes a lock on the folder (released when the process ends, however it
    ends): two runs at once could each send the same message.
    """

    def __init__(self, path: Path, *, lock: bool = True) -> None:
        self._lock = FolderLock(path.parent / SEND_LOCK_NAME, "send") if lock else None
        try:
            self._db = open_database(
                path,
                _SEND_SCHEMA,
                SEND_SCHEMA_VERSION,
                damaged_hint="do not delete it: it is what keeps families from getting a "
                "second copy. Restore it from a backup, or check send-report.csv and the mail "
                "server's log before sending again into this folder.",
                version_hint="use that version of caaspp to send from this folder.",
                synchronous="FULL",
            )
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self.path = path

    @classmethod
    def in_folder(cls, folder: Path, *, lock: bool = True) -> SendLedger:
        return cls(folder / SEND_LEDGER_NAME, lock=lock)

    @classmethod
    def existing(cls, folder: Path) -> SendLedger | None:
        """The folder's ledger to read (no lock, nothing created), or None if it has none."""
        path = folder / SEND_LEDGER_NAME
        return cls(path, lock=False) if path.is_file() else None

    def close(self) -> None:
        super().close()
        if self._lock is not None:
            self._lock.release()

    # --- messages --------------------------------------------------------------------------
    def message(self, ssid: str, kind: str) -> MessageRecord | None:
        row = self._db.execute(
            "SELECT ssid, kind, status, message_id, recipients, attempts, detail, run, "
            "started, accepted FROM messages WHERE ssid=? AND kind=?",
            (ssid, kind),
        ).fetchone()
        return _record(row) if row else None

    def messages(self) -> Iterator[MessageRecord]:
        cursor = self._db.execute(
            "SELECT ssid, kind, status, message_id, recipients, attempts, detail, run, "
            "started, accepted FROM messages ORDER BY ssid, kind DESC"
        )
        for row in cursor:
            yield _record(row)

    def mark_sending(
        self, ssid: str, kind: str, message_id: str, recipients: tuple[str, ...], run: int
    ) -> None:
        """The body is about to go: from now on the server may accept it."""
        now = time.time()
        cursor = self._db.execute(
            "INSERT INTO messages (ssid, kind, status, message_id, recipients, attempts, "
            "detail, run, started, updated) VALUES (?, ?, 'sending', ?, ?, 1, '', ?, ?, ?) "
            "ON CONFLICT (ssid, kind) DO UPDATE SET status='sending', "
            "message_id=excluded.message_id, recipients=excluded.recipients, "
            "attempts=attempts + 1, detail='', run=excluded.run, started=excluded.started, "
            "updated=excluded.updated WHERE status != 'accepted'",
            (ssid, kind, message_id, "; ".join(recipients), run, now, now),
        )
        if cursor.rowcount != 1:
            raise RuntimeError("a message recorded as accepted is being sent again")

    def mark_accepted(
        self, ssid: str, kind: str, recipients: tuple[str, ...], detail: str = ""
    ) -> None:
        """The server answered 250: the message is delivered to its care."""
        now = time.time()
        self._db.execute(
            "UPDATE messages SET status='accepted', recipients=?, detail=?, accepted=?, "
            "updated=? WHERE ssid=? AND kind=?",
            ("; ".join(recipients), detail, now, now, ssid, kind),
        )

    def mark_not_accepted(
        self,
        ssid: str,
        kind: str,
        message_id: str,
        recipients: tuple[str, ...],
        detail: str,
        run: int,
    ) -> None:
        """The server certainly did not take the message (it said so, or never got its end)."""
        now = time.time()
        self._db.execute(
            "INSERT INTO messages (ssid, kind, status, message_id, recipients, detail, run, "
            "updated) VALUES (?, ?, 'failed', ?, ?, ?, ?, ?) "
            "ON CONFLICT (ssid, kind) DO UPDATE SET status='failed', "
            "message_id=excluded.message_id, recipients=excluded.recipients, "
            "detail=excluded.detail, run=excluded.run, updated=excluded.updated "
            "WHERE status != 'accepted'",
            (ssid, kind, message_id, "; ".join(recipients), detail, run, now),
        )

    def counts(self) -> dict[tuple[str, str], int]:
        """(kind, status) and their counts, for summaries and tests."""
        rows = self._db.execute("SELECT kind, status, COUNT(*) FROM messages GROUP BY 1, 2")
        return {(kind, status): n for kind, status, n in rows}


# The send ledger's folder lock is the one every command takes (see folderlock).
SendInProgressError = FolderBusyError


class LedgerError(CaasppError):
    """A ledger went bad during a run: a full disk, or a damaged file."""

    exit_code = ExitCode.FAILED


def ledger_error(path: Path, exc: sqlite3.DatabaseError) -> CaasppError:
    """The sentence for a ledger error met during a run (opening has its own)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "full" in str(exc):
        return LedgerError(
            f"the disk holding the ledger {path} is full.",
            hint="free some space, then run the same command again: what was saved and "
            "recorded is kept, and nothing is downloaded twice.",
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in str(exc):
        return BadInputError(
            f"the ledger {path} is damaged ({exc}).",
            hint="move it aside (do not delete it) and run the same command again: the "
            "reports already in the folder are checked and kept, not downloaded again.",
        )
    return LedgerError(
        f"the ledger {path} cannot be used ({exc}).",
        hint="check the disk and the folder, then run the same command again.",
    )
