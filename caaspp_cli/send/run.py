"""``caaspp send``: each family's two messages, one row at a time, never a second copy.

For each roster row with a guardian email and protected reports, the run sends the *report
message* (the protected PDFs) and then, once it is recorded as accepted and to the addresses
that accepted it, the *password message* (see :mod:`caaspp_cli.send.compose`). A student's
files are their rows of the password file; a report no earlier pair carried (protected after
the family was reached) goes in a new pair, carrying only the new files and saying another
report is now available; a pair whose password has not gone is finished first, and then,
in the same run, the new one. A held row (a record hold in the roster) is sent nothing,
not even an unfinished pair's password. Everything
the input lacks is an error before anything is sent: the roster, the templates
(:mod:`caaspp_cli.send.templates`), the SMTP profile, the folder of PDFs and the password
file. Before anything goes to a family, both its messages are composed and checked (a
password that can be read elsewhere fails that row, and the run goes on), and every PDF is
checked before it is attached: a file that opens without a password, or that the student's
password does not open, is refused. Recipients are the addresses of the roster's cell as
:mod:`caaspp_cli.addresses` reads it: never text of a name or a comment; a cell that reads
two ways sends nothing.

Messages go one at a time through one transport (:mod:`caaspp_cli.send.transport`), at most
``rate`` a minute. A temporary refusal (4xx) or a lost connection is retried with a growing
delay; a permanent one (5xx) is recorded and the run goes on. A refusal that says the
provider is throttling the mailbox (:func:`caaspp_cli.send.quota.throttle_wait`: Graph's
429, Exchange's and Gmail's 4xx "slow down" replies) is waited out and lowers the rate for
the rest of the run, without spending the message's attempts. The send ledger
(:class:`caaspp_cli.send.ledger.SendLedger`) is written around each transaction: *sending*
once the server is ready for the body and before it goes, *accepted* the moment it answers.
A message whose body went out without an answer being recorded (the connection lost while
waiting, the process killed) is *uncertain*: it is not sent again unless asked
(``resend_uncertain``), and the report lists it with its Message-ID, to look up in the mail
server's log. A re-sent message keeps its Message-ID, so a mail client that got both shows
one. Each row's outcome goes into ``send-report.csv`` (:mod:`caaspp_cli.send.outcomes`).
With a daily limit (:mod:`caaspp_cli.send.quota`), the run stops before the first family
whose two messages would pass it; the rows left say so, and the next run goes on.

Over 600 lines on purpose: a row's two messages and the retry loop around each are one
protocol with the send ledger, whose exactly-once argument is best read in one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path, PurePosixPath
from typing import Final

from caaspp_cli.addresses import is_address
from caaspp_cli.artifacts import (
    OUTBOX_MESSAGE_NAME,
    PasswordSheet,
    outbox_message_name,
    report_ssids_in,
    unneutralize_cell,
    write_send_report,
)
from caaspp_cli.config.mail_profiles import GRAPH_URL, MailProfile, get_smtp_profile, smtp_password
from caaspp_cli.errors import BadInputError, CaasppError, MailConnectionError
from caaspp_cli.fsutil import prepare_output_dir, write_private_bytes
from caaspp_cli.protect.verify import protection_problem
from caaspp_cli.roster.read import RosterRow, RowProblem, open_roster
from caaspp_cli.send.compose import Attachment, Composer, password_shown_in
from caaspp_cli.send.graph import GraphTransport
from caaspp_cli.send.ledger import PASSWORD, REPORT, MessageRecord, Pair, SendLedger
from caaspp_cli.send.oauth import token_provider
from caaspp_cli.send.outcomes import (
    FINAL_OUTCOMES,
    UNCERTAIN_HINT,
    MessageOutcome,
    RowResult,
    SendOutcome,
    SendProgress,
    SendSummary,
)
from caaspp_cli.send.quota import DAY, DailyCount, DailyLimit, documented_limit, throttle_wait
from caaspp_cli.send.templates import load_templates
from caaspp_cli.send.transport import (
    ConnectionLost,
    MailTransport,
    RateLimiter,
    SmtpRefusal,
    UncertainDelivery,
    tls_context,
)

# The transport a run (and `caaspp config smtp-test`) opens, looked up here when used: the
# one place to replace it (the tests shorten its timeout).
from caaspp_cli.send.transport import MailServer as MailServer

log = logging.getLogger(__name__)

DEFAULT_RATE: Final = 30  # messages a minute: Exchange Online's limit for one mailbox
RETRY_DELAYS: Final[tuple[float, ...]] = (10.0, 30.0, 90.0)  # then the message has failed
MAX_THROTTLED: Final = 12  # waits for a throttling provider, per message; then as any 4xx
DEFAULT_OUTBOX: Final = Path("caaspp-outbox")

_SHOWN_DETAIL: Final = (
    "the password appears in the {} message's text (its subject, names or body), so it "
    "would reach the family without the separate password message; nothing was sent: use "
    "passwords that are not the student's or guardian's name (let `caaspp protect` make them)"
)


@dataclass(frozen=True)
class SendOptions:
    roster: Path
    pdfs: Path
    passwords: Path
    smtp: str
    email_column: str | None = None
    language_column: str | None = None
    hold_column: str | None = None
    templates: Path | None = None
    rate: int = DEFAULT_RATE
    dry_run: bool = False
    outbox: Path = DEFAULT_OUTBOX
    resend_uncertain: bool = False
    mark_uncertain_sent: bool = False
    retry_delays: tuple[float, ...] = RETRY_DELAYS
    # None: the provider's documented limit, where the profile tells the provider
    # (quota.documented_limit), unless no_daily_limit.
    daily_limit: DailyLimit | None = None
    no_daily_limit: bool = False


@dataclass(frozen=True)
class _Entry:
    file: str  # relative to the PDFs folder, as in the password file
    password: str = field(repr=False)


def send_reports(
    options: SendOptions,
    *,
    on_progress: Callable[[SendProgress], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    server: MailTransport | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> SendSummary:
    """Send each family its reports and, separately, its password; or, with ``dry_run``,
    write those messages into the outbox. Everything the input lacks is an error before
    anything is sent; each row's outcome goes into the send report."""
    run = SendRun(
        options,
        clock=clock,
        sleep=sleep,
        server=server,
        on_progress=on_progress,
        wall_clock=wall_clock,
    )
    return run.run()


class SendRun:
    """One ``caaspp send``: checked inputs, then the rows one at a time."""

    def __init__(
        self,
        options: SendOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        server: MailTransport | None = None,
        on_progress: Callable[[SendProgress], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if options.resend_uncertain and options.mark_uncertain_sent:
            raise BadInputError(
                "--resend-uncertain and --mark-uncertain-sent contradict each other.",
                hint="check the mail server's log, then pass the one that fits.",
            )
        self.options = options
        self.roster = open_roster(
            options.roster,
            email_column=options.email_column,
            language_column=options.language_column,
            hold_column=options.hold_column,
        )
        self.roster.require("email")
        self.templates = load_templates(options.templates)
        self.profile = get_smtp_profile(options.smtp)
        if self.profile.ca_file and not options.dry_run:
            tls_context(self.profile.ca_file)  # a CA file gone since: refused before any row
        self.composer = Composer(self.profile, self.templates)
        if not options.pdfs.is_dir():
            raise BadInputError(f"the folder of protected PDFs {options.pdfs} does not exist.")
        if not options.passwords.is_file():
            raise BadInputError(
                f"the password file {options.passwords} does not exist.",
                hint="give the --passwords file that `caaspp protect` wrote.",
            )
        sheet = PasswordSheet(options.passwords)
        self.entries: dict[str, list[_Entry]] = {}
        for row in sheet.rows:
            if row.ssid:
                self.entries.setdefault(row.ssid, []).append(
                    _Entry(unneutralize_cell(row.file), row.password)
                )
        self.pdf_ssids = report_ssids_in(options.pdfs)
        if options.dry_run:
            outbox = options.outbox.resolve()
            if outbox == options.pdfs.resolve() or outbox.is_relative_to(options.pdfs.resolve()):
                raise BadInputError(
                    f"the outbox {options.outbox} is inside the folder of PDFs.",
                    hint="the review copies hold the passwords: choose an --outbox elsewhere.",
                )
        self._clock = clock
        self._sleep = sleep
        self._server = server
        self._on_progress = on_progress
        self._limiter = RateLimiter(options.rate, clock, sleep)
        self._wall_clock = wall_clock
        self._quota: DailyCount | None = None
        self._ledger: SendLedger | None = None
        self._current: RowResult | None = None
        self._run_id = 0
        self._sent = 0
        self._written = 0
        self._pair: tuple[int, tuple[str, ...]] = (1, ())  # the row's pair: number, files

    # --- the run -------------------------------------------------------------------------------
    def run(self) -> SendSummary:
        options = self.options
        started = self._clock()
        if options.dry_run:
            self._prepare_outbox()
            self._ledger = SendLedger.existing(options.pdfs)
        else:
            password = smtp_password(self.profile)
            if self._server is None:
                self._server = open_transport(self.profile, password, clock=self._clock)
            self._ledger = SendLedger.in_folder(options.pdfs)
            self._run_id = self._ledger.start_run()
            limit = options.daily_limit
            if limit is None and not options.no_daily_limit:
                limit = documented_limit(self.profile.provider)
            if limit is not None:
                since = self._wall_clock() - DAY
                self._quota = DailyCount(limit, self._ledger.accepted_since(since))
        results: list[RowResult] = []
        rows = iter(self.roster)
        stopped: BaseException | None = None
        sent = problems = 0
        try:
            for row in rows:
                self._current = self._result(row)
                result = self._row(row, self._current)
                self._current = None
                results.append(result)
                sent += result.outcome is SendOutcome.SENT
                problems += result.outcome not in FINAL_OUTCOMES
                if self._on_progress is not None:
                    self._on_progress(
                        SendProgress(self.roster.row_count, len(results), sent, problems)
                    )
        except (CaasppError, KeyboardInterrupt) as exc:
            stopped = exc
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
            current = self._current
            if current is not None:  # the row in hand: what it got so far, and why not more
                if self._ledger is not None and current.ssid:
                    current.recorded(self._ledger.message(current.ssid, REPORT, self._pair[0]))
                    current.recorded(self._ledger.message(current.ssid, PASSWORD, self._pair[0]))
                results.append(
                    current.done(SendOutcome.STOPPED, f"the run stopped here ({reason})")
                )
            for row in rows:
                results.append(
                    replace(
                        self._result(row),
                        outcome=SendOutcome.STOPPED,
                        detail=f"not attempted: the run stopped ({reason})",
                    )
                )
        finally:
            if self._server is not None:
                self._server.close()
            ledger = self._ledger
            if ledger is not None:
                if not options.dry_run:
                    ledger.finish_run(
                        self._run_id, "stopped" if stopped is not None else "finished"
                    )
                ledger.close()
        report = self._write_report(results)
        if isinstance(stopped, CaasppError):
            stopped.hint = (f"{stopped.hint} " if stopped.hint else "") + (
                f"What was done is in {report}; run the same command again to go on: "
                "nothing accepted is sent twice."
            )
            raise stopped
        if stopped is not None:
            raise stopped
        return SendSummary(
            results,
            report,
            options.dry_run,
            options.outbox if options.dry_run else None,
            self._sent,
            self._written,
            self._clock() - started,
            self._quota.note(sum(r.outcome is SendOutcome.DAILY_LIMIT for r in results))
            if self._quota is not None
            else "",
        )

    def _within_limit(self, result: RowResult, recipients: int, messages: int) -> bool:
        """Whether ``messages`` more messages to ``recipients`` addresses keep within the
        daily limit; if not, the row is not sent, nor is any later one (``result`` says so)."""
        quota = self._quota
        if quota is None or quota.admits(self._wall_clock(), recipients, messages):
            return True
        result.done(SendOutcome.DAILY_LIMIT, quota.row_detail())
        return False

    def _result(self, row: RosterRow) -> RowResult:
        return RowResult(
            line=row.line,
            ssid=row.ssid or row.raw_ssid,
            student_name=row.display_name,
            language=row.language or "",
            emails=row.emails + row.invalid_emails,
        )

    def _row(self, row: RosterRow, result: RowResult) -> RowResult:
        if row.problem is RowProblem.DUPLICATE:
            return result.done(SendOutcome.DUPLICATE, row.detail)
        if row.ssid is None:
            return result.done(SendOutcome.INVALID_SSID, row.detail or "no SSID")
        ssid = row.ssid
        ledger = self._ledger
        pairs = ledger.pairs(ssid) if ledger else []
        for earlier in pairs:
            result.recorded(earlier.report)
            result.recorded(earlier.password)
        entries = self.entries.get(ssid, [])
        all_files = tuple(dict.fromkeys(entry.file for entry in entries))
        result.files = all_files
        if row.held:
            # Before anything, even the password of a pair begun before the hold: the
            # report carries the guardian's address, and a hold releases nothing.
            return result.done(
                SendOutcome.HELD,
                "; ".join(
                    part for part in ("a record hold: nothing was sent", row.hold_detail) if part
                ),
            )
        last = pairs[-1] if pairs else None
        finishing = last is not None and _unfinished(last)
        self._next_pair(row, result, pairs, entries, all_files)
        if (
            finishing
            and result.outcome is SendOutcome.SENT
            and ledger is not None
            and not self.options.dry_run
        ):
            # That pair finished, a report protected since then goes in a new pair now.
            pairs = ledger.pairs(ssid)
            if set(all_files) - self._sent_files(pairs, all_files):
                result.add_detail(f"the password of pair {pairs[-1].number} was sent first")
                result.report_message = result.password_message = None
                result.report_message_id = result.password_message_id = ""
                result.sent_to = ()
                self._next_pair(row, result, pairs, entries, all_files)
        return result

    def _next_pair(
        self,
        row: RosterRow,
        result: RowResult,
        pairs: Sequence[Pair],
        entries: Sequence[_Entry],
        all_files: tuple[str, ...],
    ) -> RowResult:
        """The row's next step: finish its unfinished pair, or send the files no pair
        carries yet in a new one (or retry a pair whose report message was not accepted)."""
        assert row.ssid is not None
        ssid = row.ssid
        last = pairs[-1] if pairs else None
        pair_number = 1
        report_record = password_record = None
        if last is not None and _unfinished(last):
            # A pair begun and not finished: finish it before anything new (its files are
            # what its password message names; a schema-1 pair's, those it can have carried).
            pair_number = last.number
            report_record, password_record = last.report, last.password
            carried = self._sent_files([last], all_files)
            files = last.files or tuple(f for f in all_files if f in carried) or all_files
        else:
            sent = self._sent_files(pairs, all_files)
            files = tuple(file for file in all_files if file not in sent)
            if not files:
                if any(earlier.complete for earlier in pairs):
                    result.pair, result.earlier_reports = pairs[-1].number, len(sent)
                    return result.done(SendOutcome.ALREADY_SENT)
                if not entries:
                    if ssid in self.pdf_ssids or pairs:
                        return result.done(
                            SendOutcome.MISSING_PASSWORD,
                            "the password file has no password for this student's reports",
                        )
                    return result.done(SendOutcome.NO_REPORT)
                files = all_files
            if (
                last is not None
                and last.report is not None
                and not (last.report.is_accepted or last.report.is_uncertain)
            ):
                # That pair's report message was never accepted: it is tried again.
                pair_number, report_record = last.number, last.report
            elif last is not None:
                pair_number = last.number + 1
        before = [earlier for earlier in pairs if earlier.number < pair_number]
        # The family was sent reports before: this pair's report message says another one
        # is now available (send.phrases).
        later = any(p.report is not None and p.report.is_accepted for p in before)
        if pair_number > 1 and any(earlier.complete for earlier in pairs):
            result.add_detail(f"a new report since the family was last reached: pair {pair_number}")
        result.files = files
        result.pair = pair_number
        result.earlier_reports = len(self._sent_files(before, all_files))
        self._pair = (pair_number, files)
        passwords = {entry.password for entry in entries}
        if not passwords:
            return result.done(
                SendOutcome.MISSING_PASSWORD,
                "the password file has no password for this student's reports",
            )
        if len(passwords) > 1:
            return result.done(
                SendOutcome.MISSING_PASSWORD,
                "the password file holds several passwords for this student",
            )
        password = passwords.pop()

        # Message 1: the reports.
        reserved = False
        if report_record is not None and report_record.is_accepted:
            recipients = report_record.recipients
        elif (
            report_record is not None
            and report_record.is_uncertain
            and not (self.options.resend_uncertain)
        ):
            if not self.options.mark_uncertain_sent:
                return result.done(
                    SendOutcome.UNCERTAIN,
                    f"the report message ({report_record.message_id}): {UNCERTAIN_HINT}",
                )
            recipients = self._mark_sent(result, report_record)
        else:
            accepted_by = self._send_report(
                row, result, report_record, files, password, later=later
            )
            if accepted_by is None:
                return result
            recipients, reserved = accepted_by, True

        # Message 2: the password, to those who accepted the reports.
        if password_record is not None and password_record.is_uncertain:
            if self.options.mark_uncertain_sent:
                self._mark_sent(result, password_record)
                return result.done(SendOutcome.SENT)
            if not self.options.resend_uncertain:
                return result.done(
                    SendOutcome.UNCERTAIN,
                    f"the password message ({password_record.message_id}): {UNCERTAIN_HINT}",
                )
        message_id = _message_id(password_record, self.composer)
        message = self.composer.password_message(
            row, recipients, files, password, message_id, row.language
        )
        if password_shown_in(message, password, attachments=False):
            return result.done(SendOutcome.PASSWORD_IN_MESSAGE, _SHOWN_DETAIL.format("password"))
        unusable = [address for address in recipients if not is_address(address)]
        if unusable:  # read back from the ledger: the one check of an address applies too
            return result.done(
                SendOutcome.BAD_ADDRESS,
                "the send ledger records recipients that are not email addresses ("
                + ", ".join(unusable)
                + "): the password was not sent",
            )
        # A report sent just now was let through the limit with its password.
        if not reserved and not self._within_limit(result, len(recipients), 1):
            return result
        outcome = self._deliver(row, result, PASSWORD, message, recipients)
        if outcome is not None:
            return result.done(
                outcome[0], "the reports were sent; the password was not: " + outcome[1]
            )
        return result.done(SendOutcome.WOULD_SEND if self.options.dry_run else SendOutcome.SENT)

    def _send_report(
        self,
        row: RosterRow,
        result: RowResult,
        record: MessageRecord | None,
        files: Sequence[str],
        password: str,
        *,
        later: bool = False,
    ) -> tuple[str, ...] | None:
        """Check and send the report message (``later``: saying another report is now
        available); the addresses that accepted it, or None (``result`` then says why)."""
        if row.email_problem:
            result.done(SendOutcome.BAD_ADDRESS, row.email_problem + "; nothing was sent")
            return None
        if not row.emails:
            if row.invalid_emails:
                result.done(
                    SendOutcome.BAD_ADDRESS,
                    "not an email address: " + ", ".join(row.invalid_emails),
                )
            else:
                result.done(SendOutcome.NO_EMAIL, "the roster has no guardian email")
            return None
        attachments: list[Attachment] = []
        for file in files:
            attachment, problem = self._attachment(file, password)
            if attachment is None:
                result.done(*problem)
                return None
            attachments.append(attachment)
        recipients = row.emails
        message_id = _message_id(record, self.composer)
        message = self.composer.report_message(
            row, recipients, attachments, message_id, row.language, later=later
        )
        # The templates keep {password} out of it, but a value may be the password itself
        # (a password column holding the student's first name): then nothing goes.
        if password_shown_in(message, password, attachments=True):
            result.done(SendOutcome.PASSWORD_IN_MESSAGE, _SHOWN_DETAIL.format("report"))
            return None
        password_message = self.composer.password_message(
            row, recipients, files, password, self.composer.new_message_id(), row.language
        )
        if password_shown_in(password_message, password, attachments=False):
            result.done(SendOutcome.PASSWORD_IN_MESSAGE, _SHOWN_DETAIL.format("password"))
            return None
        # Both messages within the day's limit, or neither: a pair is never split.
        if not self._within_limit(result, len(recipients), 2):
            return None
        outcome = self._deliver(row, result, REPORT, message, recipients)
        if outcome is not None:
            result.done(*outcome)
            return None
        if row.invalid_emails:
            result.add_detail("not an email address, not sent to: " + ", ".join(row.invalid_emails))
        if row.emails_in_names:
            result.add_detail(
                "in a name or a comment, not an address, not sent to: "
                + ", ".join(row.emails_in_names),
            )
        return result.sent_to

    def _attachment(
        self, file: str, password: str
    ) -> tuple[Attachment | None, tuple[SendOutcome, str]]:
        folder = self.options.pdfs.resolve()
        path = (folder / PurePosixPath(file)).resolve()
        if not path.is_relative_to(folder):
            return None, (
                SendOutcome.MISSING_PDF,
                f"{file} is outside the folder of PDFs: it is not sent",
            )
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, (SendOutcome.MISSING_PDF, f"{file} is not in {self.options.pdfs}")
        except OSError as exc:
            return None, (SendOutcome.MISSING_PDF, f"{file} cannot be read: {exc.strerror}")
        problem = protection_problem(data, password)
        if problem is not None:
            return None, (SendOutcome.NOT_ENCRYPTED, f"{file}: {problem}; it is not sent")
        return Attachment(PurePosixPath(file).name, data), (SendOutcome.SENT, "")

    def _sent_files(self, pairs: Sequence[Pair], files: Sequence[str]) -> set[str]:
        """The files a report message already carries: accepted, or perhaps accepted
        (uncertain). A pair recorded before the ledger named its files carried every file
        protected before it went (protect and send share the folder's lock, so a file
        older than the message was in the password file when it was read)."""
        sent: set[str] = set()
        for pair in pairs:
            report = pair.report
            if report is None or not (report.is_accepted or report.is_uncertain):
                continue
            if pair.files:
                sent.update(pair.files)
                continue
            when = report.accepted or report.started
            for file in files:
                try:
                    written = (self.options.pdfs / PurePosixPath(file)).stat().st_mtime
                except OSError:
                    written = None
                if when is None or written is None or written <= when:
                    sent.add(file)
        return sent

    def _mark_sent(self, result: RowResult, record: MessageRecord) -> tuple[str, ...]:
        note = "recorded as accepted with --mark-uncertain-sent"
        if self._ledger is not None and not self.options.dry_run:
            self._ledger.mark_accepted(
                record.ssid, record.kind, record.recipients, note, pair=record.pair
            )
        result.set_message(record.kind, MessageOutcome.ACCEPTED)
        if record.kind == REPORT:
            result.sent_to = record.recipients
        result.add_detail(f"the {record.kind} message was {note}")
        return record.recipients

    # --- one message -----------------------------------------------------------------------------
    def _deliver(
        self,
        row: RosterRow,
        result: RowResult,
        kind: str,
        message: EmailMessage,
        recipients: Sequence[str],
    ) -> tuple[SendOutcome, str] | None:
        """Send (or, in a dry run, write) one message; None once accepted, else why not."""
        message_id = str(message["Message-ID"])
        assert row.ssid is not None
        ssid = row.ssid
        if kind == REPORT:
            result.report_message_id = message_id
        else:
            result.password_message_id = message_id
        data = message.as_bytes(policy=SMTP_POLICY)
        if self.options.dry_run:
            number = 1 if kind == REPORT else 2
            write_private_bytes(
                self.options.outbox / outbox_message_name(row.line, ssid, number, kind), data
            )
            self._written += 1
            result.set_message(kind, MessageOutcome.WOULD_SEND)
            if kind == REPORT:
                result.sent_to = tuple(recipients)
            return None
        ledger, server = self._ledger, self._server
        assert ledger is not None and server is not None
        pair, files = self._pair
        recipients = tuple(recipients)
        sender = self.composer.sender.addr_spec
        problem = ""
        unreachable = False
        attempt = throttled = 0
        wait = 0.0
        while attempt <= len(self.options.retry_delays):
            if wait:
                self._sleep(wait)
            self._limiter.wait()

            def not_accepted(problem: str) -> None:
                ledger.mark_not_accepted(
                    ssid,
                    kind,
                    message_id,
                    recipients,
                    problem,
                    self._run_id,
                    pair=pair,
                    files=files,
                )

            def before_body() -> None:
                ledger.mark_sending(
                    ssid, kind, message_id, recipients, self._run_id, pair=pair, files=files
                )

            try:
                delivery = server.deliver(sender, recipients, data, before_body)
            except UncertainDelivery as exc:
                log.warning(
                    "line %d: the %s message may or may not have been accepted: %s",
                    row.line,
                    kind,
                    exc,
                )
                result.set_message(kind, MessageOutcome.UNCERTAIN)
                return SendOutcome.UNCERTAIN, f"the {kind} message ({message_id}): {exc}; " + (
                    UNCERTAIN_HINT
                )
            except SmtpRefusal as exc:
                unreachable = False
                problem = str(exc)
                not_accepted(problem)
                throttle = throttle_wait(exc, throttled) if throttled < MAX_THROTTLED else None
                if throttle is not None:
                    # The provider says the mailbox sends too fast: wait, and send slower
                    # from now on; the message's attempts are not spent.
                    throttled += 1
                    wait = throttle
                    self._limiter.interval = min(self._limiter.interval * 2, 60.0)
                    log.info(
                        "line %d: %s; the provider is throttling: waiting %.0f s, then "
                        "%.1f messages a minute",
                        row.line,
                        problem,
                        throttle,
                        60.0 / self._limiter.interval,
                    )
                    continue
                if exc.temporary:
                    log.info("line %d: %s; retrying", row.line, problem)
                    attempt, wait = self._next_attempt(attempt)
                    continue
                result.set_message(kind, MessageOutcome.NOT_ACCEPTED)
                return SendOutcome.REFUSED, f"the mail server refused the {kind} message: " + (
                    problem
                )
            except ConnectionLost as exc:
                unreachable = True
                problem = f"the connection to the mail server failed ({exc})"
                not_accepted(problem)
                log.info("line %d: %s; retrying", row.line, problem)
                attempt, wait = self._next_attempt(attempt)
                continue
            # Recorded the moment the server has said 250: the window in which a kill
            # leaves an accepted message uncertain is this one statement.
            detail = "; ".join(f"refused {a}: {why}" for a, why in delivery.refused.items())
            ledger.mark_accepted(ssid, kind, delivery.accepted, detail, pair=pair)
            self._sent += 1
            if self._quota is not None:
                self._quota.add(self._wall_clock(), len(delivery.accepted))
            result.set_message(kind, MessageOutcome.ACCEPTED)
            if kind == REPORT:
                result.sent_to = delivery.accepted
            result.add_detail(detail)
            log.debug("line %d: the %s message was accepted", row.line, kind)
            return None
        result.set_message(kind, MessageOutcome.NOT_ACCEPTED)
        if unreachable:
            raise MailConnectionError(
                f"the mail server {self.profile.host}:{self.profile.port} could not be used "
                f"after {len(self.options.retry_delays) + 1} attempts: {problem}.",
                hint="check the network and the SMTP profile (`caaspp config smtp-test "
                f"{self.profile.name}`).",
            )
        return SendOutcome.FAILED, (
            f"the {kind} message was still refused after "
            f"{len(self.options.retry_delays) + 1} attempts: {problem}"
        )

    def _next_attempt(self, attempt: int) -> tuple[int, float]:
        """The attempt after ``attempt``, and the delay before it."""
        delays = self.options.retry_delays
        return attempt + 1, delays[attempt] if attempt < len(delays) else 0.0

    # --- files -----------------------------------------------------------------------------------
    def _prepare_outbox(self) -> None:
        """The outbox, owner-only, without the messages of an earlier dry run."""
        outbox = self.options.outbox
        prepare_output_dir(outbox, "outbox", "choose another --outbox folder.")
        for entry in outbox.iterdir():
            if OUTBOX_MESSAGE_NAME.match(entry.name) and entry.is_file():
                entry.unlink()

    def _write_report(self, results: Sequence[RowResult]) -> Path:
        folder = self.options.outbox if self.options.dry_run else self.options.pdfs
        return write_send_report(folder, (r.report_row() for r in results))


def _unfinished(pair: Pair) -> bool:
    """A pair whose report message went (or may have) and whose password has not."""
    report = pair.report
    return report is not None and not pair.complete and (report.is_accepted or report.is_uncertain)


def _message_id(record: MessageRecord | None, composer: Composer) -> str:
    # A message sent again keeps its Message-ID: a mail client that gets both shows one.
    return (
        record.message_id
        if record is not None and record.message_id
        else (composer.new_message_id())
    )


def open_transport(
    profile: MailProfile, password: str | None, *, clock: Callable[[], float] = time.monotonic
) -> MailTransport:
    """The transport a mail profile sends through: Microsoft Graph for ``--via graph``, else
    SMTP, logging in with the password or, for an OAuth profile, a bearer token."""
    tokens = token_provider(profile) if profile.oauth else None
    if profile.via == "graph":
        if tokens is None:  # a graph profile is always OAuth; the model says so too
            raise BadInputError(f"mail profile '{profile.name}' sends via Graph without OAuth.")
        return GraphTransport(
            profile.mailbox, profile.graph_url or GRAPH_URL, tokens, ca_file=profile.ca_file
        )
    return MailServer(profile, password, tokens=tokens, clock=clock)
