"""What became of each roster row of ``caaspp send``, in the words of its send report.

:class:`SendOutcome` is a row's outcome, :class:`MessageOutcome` that of each of its two
messages; :data:`FINAL_OUTCOMES` are the outcomes that need no person. A :class:`RowResult`
is one row of ``send-report.csv`` (it holds no password), a :class:`SendSummary` the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from caaspp_cli.send.ledger import REPORT, MessageRecord


class SendOutcome(StrEnum):
    """What became of one roster row."""

    SENT = "sent"  # both messages accepted in this run
    ALREADY_SENT = "already_sent"  # both accepted by an earlier run
    WOULD_SEND = "would_send"  # dry run: its messages are in the outbox
    NO_REPORT = "no_report"  # nothing for this student in the password file or the folder
    DUPLICATE = "duplicate"  # another row of the roster has the same SSID
    INVALID_SSID = "invalid_ssid"
    NO_EMAIL = "no_email"
    BAD_ADDRESS = "bad_address"
    PASSWORD_IN_MESSAGE = "password_in_message"  # noqa: S105 - the name of an outcome
    MISSING_PDF = "missing_pdf"
    MISSING_PASSWORD = "missing_password"  # noqa: S105 - the name of an outcome
    NOT_ENCRYPTED = "not_encrypted"  # a PDF opens without a password, or not with its own
    REFUSED = "refused"  # the server refused a message for good (5xx)
    FAILED = "failed"  # still refused for now (4xx) or unreachable after every retry
    UNCERTAIN = "uncertain"  # a message may or may not have been accepted: not re-sent
    STOPPED = "stopped"  # the run stopped before this row
    DAILY_LIMIT = "daily_limit"  # not sent: the mailbox's daily limit was reached before it
    HELD = "held"  # a record hold in the roster: nothing of this student's is sent


class MessageOutcome(StrEnum):
    """What became of one of a row's two messages (send-report.csv's report_message and
    password_message columns; blank when the message was not tried)."""

    ACCEPTED = "accepted"  # the server accepted it, in this run or an earlier one
    UNCERTAIN = "uncertain"  # its body went out and no answer was recorded: not re-sent
    NOT_ACCEPTED = "not_accepted"  # refused, or the connection failed before its end
    WOULD_SEND = "would_send"  # dry run: it is in the outbox


FINAL_OUTCOMES: Final = frozenset(
    {
        SendOutcome.SENT,
        SendOutcome.ALREADY_SENT,
        SendOutcome.WOULD_SEND,
        SendOutcome.NO_REPORT,
        SendOutcome.HELD,
    }
)
"""Outcomes that need nothing more; any other one makes the run end with exit code 3.

The rule is bulk's: a row is done when it reached an answer no person can improve on (sent,
sent before, nothing to send). A duplicate row needs a person: it may carry another
guardian's address that got nothing, or be a second student given the same SSID. A row with
no email needs a person too: its family has a report and was sent nothing (print it, or add
the address and run again). A record hold is the district's decision, not a failure: the
row is done until the roster lifts it."""

UNCERTAIN_HINT: Final = (
    "the server may have accepted it before the connection was lost or caaspp stopped: look "
    "up its Message-ID in the mail server's log; run again with --resend-uncertain to send "
    "it again, or with --mark-uncertain-sent if the log shows it was accepted"
)


@dataclass
class RowResult:
    """One roster row's outcome; holds no password."""

    line: int
    ssid: str
    student_name: str
    language: str
    outcome: SendOutcome = SendOutcome.STOPPED
    detail: str = ""
    emails: tuple[str, ...] = ()  # the roster's, valid or not
    sent_to: tuple[str, ...] = ()  # those that accepted the reports (dry run: would get them)
    files: tuple[str, ...] = ()
    report_message: MessageOutcome | None = None  # None: not tried
    password_message: MessageOutcome | None = None
    report_message_id: str = ""
    password_message_id: str = ""
    # Which of the family's pairs of messages the two message columns are about (None: no
    # pair), and how many of the student's reports earlier pairs carried: with ``files``
    # (this pair's), what this run sent and what the family had before.
    pair: int | None = None
    earlier_reports: int = 0

    def report_row(self) -> dict[str, object]:
        """The row's cells in ``send-report.csv``, by the names of
        :data:`caaspp_cli.artifacts.SEND_REPORT_COLUMNS`."""
        return {
            "line": self.line,
            "ssid": self.ssid,
            "student_name": self.student_name,
            "emails": "; ".join(self.emails),
            "sent_to": "; ".join(self.sent_to),
            "language": self.language,
            "reports": len(self.files),
            "outcome": self.outcome.value,
            "report_message": self.report_message or "",
            "password_message": self.password_message or "",
            "detail": self.detail,
            "report_message_id": self.report_message_id,
            "password_message_id": self.password_message_id,
            "pair": self.pair if self.pair is not None else "",
            "earlier_reports": self.earlier_reports,
        }

    def done(self, outcome: SendOutcome, detail: str = "") -> RowResult:
        """The row's outcome, and why (added to what its detail already says)."""
        self.outcome = outcome
        self.add_detail(detail)
        return self

    def add_detail(self, detail: str) -> None:
        self.detail = "; ".join(part for part in (self.detail, detail) if part)

    def set_message(self, kind: str, outcome: MessageOutcome) -> None:
        """What became of the row's message of ``kind`` (REPORT or PASSWORD)."""
        if kind == REPORT:
            self.report_message = outcome
        else:
            self.password_message = outcome

    def recorded(self, record: MessageRecord | None) -> None:
        """What the send ledger records of one of the row's messages, as it stands."""
        if record is None:
            return
        if record.is_accepted:
            outcome = MessageOutcome.ACCEPTED
        elif record.is_uncertain:
            outcome = MessageOutcome.UNCERTAIN
        else:
            outcome = MessageOutcome.NOT_ACCEPTED
        self.set_message(record.kind, outcome)
        if record.kind == REPORT:
            self.report_message_id = record.message_id
            if record.is_accepted:
                self.sent_to = record.recipients
        else:
            self.password_message_id = record.message_id


@dataclass(frozen=True)
class SendProgress:
    """Handed to the progress callback after each row."""

    total: int
    done: int
    sent: int
    problems: int


@dataclass
class SendSummary:
    """What ``caaspp send`` did: every row's result, and where the send report is."""

    rows: list[RowResult]
    report: Path
    dry_run: bool
    outbox: Path | None
    messages_sent: int
    messages_written: int
    elapsed: float
    daily_limit_note: str = ""  # the daily limit stopped the run: how many remain, and when

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((o.value for o in SendOutcome), 0)
        for row in self.rows:
            counts[row.outcome.value] += 1
        return counts

    @property
    def problems(self) -> list[RowResult]:
        return [row for row in self.rows if row.outcome not in FINAL_OUTCOMES]
