"""The send ledger: which messages of ``caaspp send`` the mail server has accepted.

It is kept beside the PDFs (:data:`caaspp_cli.artifacts.SEND_LEDGER_NAME`) and written around
each message's transaction so that no family ever gets a second copy, even after a crash
(see :class:`SendLedger`). This module owns the kinds of message (:data:`REPORT`,
:data:`PASSWORD`) and the statuses the ledger records for them (:data:`SENDING`,
:data:`ACCEPTED`, :data:`NOT_ACCEPTED`); ``caaspp purge`` reads them too.

Messages belong to a numbered *pair* per student (1, 2, ...): a report protected after
the family was reached goes in a new pair, the report message carrying only the new files
(recorded in ``files``, relative names as in the password sheet), then the password
message. Schema 1 had one pair per student and did not record its files; opening such a
ledger migrates it in place, each row becoming its student's pair 1 with its files
unknown (:data:`UNKNOWN_FILES`). What such a pair carried is then decided conservatively,
because a family must never get the same report twice: a file is taken as sent unless it
can be proved newer than the pair, that is unless its protected copy was written after
the pair's report message was accepted (or, uncertain, started); a file that cannot be
read is taken as sent too. ``protect`` and ``send`` share the folder's lock, so a file
older than the message was in the password sheet when that run read it. The cost of the
choice is a report rewritten in place after the pair went (its copy newer) going out
again; the other way, a report never sent, is what the follow-up list and ``status``
show (see :meth:`SendLedger.delivered_files`, which lists no file of an unknown pair).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from caaspp_cli.artifacts import SEND_LEDGER_NAME
from caaspp_cli.errors import FolderBusyError
from caaspp_cli.folderlock import FOLDER_LOCK_NAME, FolderLock
from caaspp_cli.ledger import RUN_TABLES, RunLedger, open_database

SEND_LOCK_NAME: Final = FOLDER_LOCK_NAME
SEND_SCHEMA_VERSION: Final = 2

# The two kinds of message a family gets, in the order they are sent.
REPORT: Final = "report"
PASSWORD: Final = "password"  # noqa: S105 - the name of a kind of message

# A message's status. "sending" that outlives its run is *uncertain*: the server may have
# accepted it (see SendLedger).
SENDING: Final = "sending"
ACCEPTED: Final = "accepted"
NOT_ACCEPTED: Final = "failed"

_MESSAGES_COLUMNS: Final = f"""
    ssid TEXT NOT NULL,
    pair INTEGER NOT NULL DEFAULT 1,      -- the family's first pair of messages, second, ...
    kind TEXT NOT NULL,                   -- {REPORT} (carries the PDFs) | {PASSWORD}
    status TEXT NOT NULL,                 -- {SENDING} | {ACCEPTED} | {NOT_ACCEPTED}
    message_id TEXT NOT NULL,             -- its Message-ID header, kept across attempts
    recipients TEXT NOT NULL DEFAULT '',  -- '; '-joined; once accepted, those who took it
    attempts INTEGER NOT NULL DEFAULT 0,  -- message bodies started (DATA)
    detail TEXT NOT NULL DEFAULT '',
    run INTEGER NOT NULL DEFAULT 0,       -- the run that last wrote this row
    started REAL,                         -- when the last body started
    accepted REAL,                        -- when the server's 250 was recorded
    updated REAL NOT NULL,
    files TEXT NOT NULL DEFAULT '',       -- '; '-joined: the reports the pair carries
    PRIMARY KEY (ssid, pair, kind)
"""
_SEND_SCHEMA: Final = RUN_TABLES + f"CREATE TABLE IF NOT EXISTS messages ({_MESSAGES_COLUMNS});"
# Schema 1 had one pair per student and did not record its files (UNKNOWN_FILES): the
# table is rebuilt with the same rows as each student's pair 1.
_COLUMNS_1: Final = (
    "ssid, kind, status, message_id, recipients, attempts, detail, run, started, accepted, updated"
)
_MIGRATIONS: Final = {
    1: f"""
CREATE TABLE messages_2 ({_MESSAGES_COLUMNS});
INSERT INTO messages_2 ({_COLUMNS_1}, pair, files) SELECT {_COLUMNS_1}, 1, '' FROM messages;
DROP TABLE messages;
ALTER TABLE messages_2 RENAME TO messages
""",  # noqa: S608 - constant SQL
}
UNKNOWN_FILES: Final = ""  # a pair recorded by schema 1: which files it carried is unknown
_SELECT: Final = (
    "SELECT ssid, kind, status, message_id, recipients, attempts, detail, run, started, "
    "accepted, pair, files FROM messages"
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
    pair: int = 1
    files: tuple[str, ...] = ()  # () for a schema-1 pair: unknown

    @property
    def is_accepted(self) -> bool:
        return self.status == ACCEPTED

    @property
    def is_uncertain(self) -> bool:
        """Its body was on its way to the server, and no answer was ever recorded."""
        return self.status == SENDING


def _split(joined: str) -> tuple[str, ...]:
    return tuple(part for part in joined.split("; ") if part)


def _record(row: tuple[Any, ...]) -> MessageRecord:
    (ssid, kind, status, message_id, recipients, attempts, detail, run, started, accepted) = row[
        :10
    ]
    pair, files = row[10], row[11]
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
        pair,
        _split(files),
    )


@dataclass(frozen=True, slots=True)
class Pair:
    """One of a family's pairs of messages: the report message, then the password's."""

    number: int
    report: MessageRecord | None
    password: MessageRecord | None

    @property
    def files(self) -> tuple[str, ...]:
        """The reports it carries; () when a schema-1 ledger did not record them."""
        return self.report.files if self.report is not None else ()

    @property
    def complete(self) -> bool:
        return bool(
            self.report
            and self.report.is_accepted
            and self.password
            and (self.password.is_accepted)
        )


class SendLedger(RunLedger):
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
                migrations=_MIGRATIONS,
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
    def message(self, ssid: str, kind: str, pair: int = 1) -> MessageRecord | None:
        row = self._db.execute(
            _SELECT + " WHERE ssid=? AND kind=? AND pair=?", (ssid, kind, pair)
        ).fetchone()
        return _record(row) if row else None

    def messages(self) -> Iterator[MessageRecord]:
        cursor = self._db.execute(_SELECT + " ORDER BY ssid, pair, kind DESC")
        for row in cursor:
            yield _record(row)

    def pairs(self, ssid: str) -> list[Pair]:
        """A student's pairs of messages, first to last."""
        found: dict[int, dict[str, MessageRecord]] = {}
        for row in self._db.execute(_SELECT + " WHERE ssid=? ORDER BY pair", (ssid,)):
            record = _record(row)
            found.setdefault(record.pair, {})[record.kind] = record
        return [
            Pair(number, kinds.get(REPORT), kinds.get(PASSWORD))
            for number, kinds in sorted(found.items())
        ]

    def delivered_files(self) -> Iterator[tuple[str, str, float]]:
        """(SSID, file, when its password was accepted) for every report whose pair of
        messages was accepted whole; a schema-1 pair's files are unknown and not listed."""
        rows = self._db.execute(
            "SELECT r.ssid, r.files, p.accepted FROM messages r JOIN messages p "
            "ON p.ssid = r.ssid AND p.pair = r.pair AND p.kind = ? "
            "WHERE r.kind = ? AND r.status = ? AND p.status = ?",
            (PASSWORD, REPORT, ACCEPTED, ACCEPTED),
        )
        for ssid, files, accepted in rows:
            for file in _split(files):
                yield ssid, file, accepted

    def mark_sending(
        self,
        ssid: str,
        kind: str,
        message_id: str,
        recipients: tuple[str, ...],
        run: int,
        *,
        pair: int = 1,
        files: tuple[str, ...] = (),
    ) -> None:
        """The body is about to go: from now on the server may accept it."""
        now = time.time()
        cursor = self._db.execute(
            "INSERT INTO messages (ssid, pair, kind, status, message_id, recipients, attempts, "
            "detail, run, started, updated, files) VALUES (?, ?, ?, ?, ?, ?, 1, '', ?, ?, ?, ?) "
            "ON CONFLICT (ssid, pair, kind) DO UPDATE SET status=excluded.status, "
            "message_id=excluded.message_id, recipients=excluded.recipients, "
            "attempts=attempts + 1, detail='', run=excluded.run, started=excluded.started, "
            "updated=excluded.updated, files=excluded.files WHERE status != ?",
            (
                ssid,
                pair,
                kind,
                SENDING,
                message_id,
                "; ".join(recipients),
                run,
                now,
                now,
                "; ".join(files),
                ACCEPTED,
            ),
        )
        if cursor.rowcount != 1:
            raise RuntimeError("a message recorded as accepted is being sent again")

    def mark_accepted(
        self,
        ssid: str,
        kind: str,
        recipients: tuple[str, ...],
        detail: str = "",
        *,
        pair: int = 1,
    ) -> None:
        """The server answered 250: the message is delivered to its care."""
        now = time.time()
        self._db.execute(
            "UPDATE messages SET status=?, recipients=?, detail=?, accepted=?, "
            "updated=? WHERE ssid=? AND kind=? AND pair=?",
            (ACCEPTED, "; ".join(recipients), detail, now, now, ssid, kind, pair),
        )

    def mark_not_accepted(
        self,
        ssid: str,
        kind: str,
        message_id: str,
        recipients: tuple[str, ...],
        detail: str,
        run: int,
        *,
        pair: int = 1,
        files: tuple[str, ...] = (),
    ) -> None:
        """The server certainly did not take the message (it said so, or never got its end)."""
        now = time.time()
        self._db.execute(
            "INSERT INTO messages (ssid, pair, kind, status, message_id, recipients, detail, "
            "run, updated, files) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (ssid, pair, kind) DO UPDATE SET status=excluded.status, "
            "message_id=excluded.message_id, recipients=excluded.recipients, "
            "detail=excluded.detail, run=excluded.run, updated=excluded.updated, "
            "files=excluded.files WHERE status != ?",
            (
                ssid,
                pair,
                kind,
                NOT_ACCEPTED,
                message_id,
                "; ".join(recipients),
                detail,
                run,
                now,
                "; ".join(files),
                ACCEPTED,
            ),
        )

    def accepted_since(self, since: float) -> list[tuple[float, int]]:
        """Each message accepted at ``since`` or later: when, and to how many recipients
        (what a daily sending limit counts, see :mod:`caaspp_cli.send.quota`)."""
        rows = self._db.execute(
            "SELECT accepted, recipients FROM messages WHERE status=? AND accepted >= ? "
            "ORDER BY accepted",
            (ACCEPTED, since),
        )
        return [(when, len([r for r in recipients.split("; ") if r])) for when, recipients in rows]

    def counts(self) -> dict[tuple[str, str], int]:
        """(kind, status) and their counts, for summaries and tests."""
        rows = self._db.execute("SELECT kind, status, COUNT(*) FROM messages GROUP BY 1, 2")
        return {(kind, status): n for kind, status, n in rows}


# The send ledger's folder lock is the one every command takes (see folderlock).
SendInProgressError = FolderBusyError
