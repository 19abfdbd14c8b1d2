"""What the SQLite ledgers of bulk and send share: opening one, and its runs.

Each stage keeps its own ledger beside its files, so a re-run resumes: the bulk ledger
(:mod:`caaspp_cli.fetch.ledger`) and the send ledger (:mod:`caaspp_cli.send.ledger`). This
module opens them the same way (owner-only, WAL, links refused, integrity and schema version
checked: :func:`open_database`), keeps the runs table every ledger has (:class:`RunLedger`),
and words the errors a ledger meets during a run (:func:`ledger_error`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal, Self

from caaspp_cli.errors import BadInputError, CaasppError, LedgerError, LinkRefusedError
from caaspp_cli.fsutil import (
    PRIVATE_FILE_MODE,
    open_nofollow,
    prepare_output_dir,
    refuse_link,
)

# Tables every ledger has: its schema version, and its runs (see RunLedger).
RUN_TABLES: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    outcome TEXT NOT NULL DEFAULT 'running'
);
"""


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
    migrations: Mapping[int, str] | None = None,
) -> sqlite3.Connection:
    """An owner-only SQLite file in WAL mode with ``schema``, checked to be ``version``.

    Autocommit (``isolation_level=None``): every statement is committed when it returns.
    ``migrations`` maps an older schema version to the SQL that brings it to the next
    one; they run in order, in one transaction with the new version number, so a kill
    leaves the old schema or the new one, never half of it. A file that is not SQLite, or
    is damaged, or has another schema version, is a BadInputError with the hint given.
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
    elif migrations and found[0].isdigit() and int(found[0]) in migrations:
        _migrate(db, path, int(found[0]), version, migrations, damaged_hint)
    elif found[0] != str(version):
        db.close()
        raise BadInputError(
            f"the ledger {path} was written by another version of caaspp (schema {found[0]}).",
            hint=version_hint,
        )
    return db


def _migrate(
    db: sqlite3.Connection,
    path: Path,
    found: int,
    version: int,
    migrations: Mapping[int, str],
    damaged_hint: str,
) -> None:
    try:
        db.execute("BEGIN IMMEDIATE")
        step = found
        while step < version:
            for statement in _statements(migrations[step]):
                db.execute(statement)
            step += 1
        db.execute("UPDATE meta SET value=? WHERE key='version'", (str(version),))
        db.execute("COMMIT")
    except (sqlite3.DatabaseError, KeyError) as exc:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        db.close()
        raise BadInputError(
            f"the ledger {path} could not be brought to this version of caaspp ({exc}).",
            hint=damaged_hint,
        ) from None


def _statements(script: str) -> list[str]:
    """The statements of an SQL script (a ';' in a comment or a string does not end one)."""
    found: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending)
            pending = ""
    if pending.strip(" \n;"):
        found.append(pending)
    return found


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


class RunLedger:
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
