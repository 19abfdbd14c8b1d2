"""``caaspp deliver``: one night of the reporting season, fetch → protect → send, then paper.

A season lives in one folder (``--out``). Each run does only what is new or unfinished:

1. **fetch** the roster into ``reports/`` (:mod:`caaspp_cli.fetch.bulk`), asking ETS again
   about every student whose last answer is at least ``recheck_after`` days old, since a
   report released later (another test, another year, a translated copy) must still reach
   its family; only reports not seen before are downloaded;
2. **protect** what is new into ``protected/`` (:mod:`caaspp_cli.protect.run`), each family
   keeping its password in the password sheet, which lives outside the season folder;
3. **send** each family what it has not had (:mod:`caaspp_cli.send.run`): a report that
   arrives after the family was reached goes in a new pair of messages; a roster row on a
   record hold gets nothing;
4. **record** where each report stands in the season ledger (:mod:`caaspp_cli.deliver.season`):
   the day caaspp first saw it (the legal clock starts then), protected, emailed, printed;
5. **follow up**: ``follow-up.csv`` lists every student who needs a person, and why
   (:mod:`caaspp_cli.deliver.followup`); with ``print_pack``, the families to reach on paper
   get their reports in one merged PDF per school (:mod:`caaspp_cli.deliver.printpack`).

Every stage is the command of the same name, with its own ledger, lock and exactly-once
rules; this module only runs them in order, under one lock on the season folder, and reads
their artifacts. A run killed at any moment (kill -9 included) leaves each stage's ledger
consistent, and the next run finishes the work: nothing is fetched, protected or sent twice.
A stage that cannot go on (ETS or the mail server unreachable, the daily limit) stops for
tonight; the stages after it still do their part with what the folder holds, and the
bookkeeping always runs: the follow-up list and the season ledger are written all the
same, and the summary says what stopped.

With ``dry_run``, reports are fetched and protected as usual (nobody is reached by that), and
the messages are written to ``outbox/`` for review instead of being sent.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Final

from caaspp_cli.addresses import is_address
from caaspp_cli.artifacts import (
    SEASON_LEDGER_NAME,
    SEASON_OUTBOX_DIR,
    SEASON_PRINT_DIR,
    SEASON_PROTECTED_DIR,
    SEASON_REPORTS_DIR,
    PasswordSheet,
    is_report_candidate,
    read_manifest,
    unneutralize_cell,
)
from caaspp_cli.artifacts import ManifestStatus as Status
from caaspp_cli.deliver.followup import find_follow_ups, write_follow_ups
from caaspp_cli.deliver.season import EMAIL, HELD, PAPER, ReportState, SeasonLedger, StudentState
from caaspp_cli.deliver.status import season_counts
from caaspp_cli.errors import BadInputError, CaasppError
from caaspp_cli.fetch.student import ReportFilters
from caaspp_cli.folderlock import FolderLock
from caaspp_cli.fsutil import prepare_output_dir
from caaspp_cli.ledger import ledger_error
from caaspp_cli.roster.read import Roster, RosterRow, RowProblem, open_roster
from caaspp_cli.send.quota import DailyLimit

DAY: Final = 86_400.0
DEFAULT_RECHECK_DAYS: Final = 1.0
DEFAULT_MISSING_DAYS: Final = 14.0


@dataclass(frozen=True)
class DeliverOptions:
    roster: Path
    out_dir: Path
    passwords: Path
    mail: str
    filters: ReportFilters = field(default_factory=ReportFilters)
    recheck_after: float = DEFAULT_RECHECK_DAYS  # days
    missing_after: float = DEFAULT_MISSING_DAYS  # days without a report before a follow-up
    daily_limit: DailyLimit | None = None
    no_daily_limit: bool = False
    rate: int = 30  # messages a minute
    print_pack: bool = False
    notify: tuple[str, ...] = ()
    dry_run: bool = False
    ssid_column: str | None = None
    email_column: str | None = None
    language_column: str | None = None
    hold_column: str | None = None
    templates: Path | None = None
    profile: str | None = None  # one ETS profile for every row
    concurrency: int = 8
    holidays: frozenset[date] = frozenset()  # the district's days off, for the legal clock

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(os.path.realpath(self.out_dir)))
        bad = [address for address in self.notify if not is_address(address)]
        if bad:
            raise BadInputError(f"--notify {bad[0]!r} is not an email address.")
        if self.recheck_after < 0:
            raise BadInputError("--recheck-after must be 0 days or more.")
        if self.missing_after < 0:
            raise BadInputError("--missing-after must be 0 days or more.")

    @property
    def reports_dir(self) -> Path:
        return self.out_dir / SEASON_REPORTS_DIR

    @property
    def protected_dir(self) -> Path:
        return self.out_dir / SEASON_PROTECTED_DIR

    @property
    def print_dir(self) -> Path:
        return self.out_dir / SEASON_PRINT_DIR

    @property
    def outbox(self) -> Path:
        return self.out_dir / SEASON_OUTBOX_DIR


@dataclass
class StageResult:
    """What one stage did tonight: its counts, and why it stopped if it did."""

    name: str
    counts: dict[str, int] = field(default_factory=dict)
    stopped: str = ""  # one sentence: why this stage (and the ones after it) stopped
    skipped: str = ""  # why it did not run at all

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            **({"stopped": self.stopped} if self.stopped else {}),
            **({"skipped": self.skipped} if self.skipped else {}),
        }


@dataclass
class DeliverSummary:
    out_dir: Path
    stages: list[StageResult]
    follow_up: Path | None
    follow_ups: Counter[str]
    season: dict[str, int]
    print_pack: list[Path] = field(default_factory=list)
    dry_run: bool = False
    elapsed: float = 0.0
    interrupted: bool = False
    notify_problem: str = ""

    @property
    def stopped(self) -> list[StageResult]:
        return [stage for stage in self.stages if stage.stopped]

    def counts(self) -> dict[str, int]:
        """Tonight's numbers, flat (the audit line and the staff summary)."""
        flat = {
            f"{stage.name}_{key}": value
            for stage in self.stages
            for key, value in stage.counts.items()
        }
        flat.update({f"season_{key}": value for key, value in self.season.items()})
        flat["follow_ups"] = sum(self.follow_ups.values())
        return flat

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out_dir),
            "dry_run": self.dry_run,
            "interrupted": self.interrupted,
            "elapsed_seconds": round(self.elapsed, 3),
            "stages": {stage.name: stage.as_dict() for stage in self.stages},
            "season": self.season,
            "follow_ups": dict(sorted(self.follow_ups.items())),
            "follow_up_file": str(self.follow_up) if self.follow_up else None,
            "print_pack": [str(path) for path in self.print_pack],
            **({"notify_problem": self.notify_problem} if self.notify_problem else {}),
        }


class DeliverRun:
    """One night: the stages in order under the season folder's lock."""

    def __init__(
        self,
        options: DeliverOptions,
        *,
        on_stage: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.on_stage = on_stage or (lambda name: None)
        self.on_warning = on_warning or (lambda message: None)
        self.wall_clock = wall_clock
        self._check_locations()
        self.roster = self._open_roster()

    # -- checks before anything is written ---------------------------------------------------
    def _check_locations(self) -> None:
        options = self.options
        passwords = Path(os.path.realpath(options.passwords))
        if passwords.is_relative_to(options.out_dir):
            raise BadInputError(
                f"the password file {options.passwords} is inside the season folder "
                f"{options.out_dir}.",
                hint="keep the passwords apart from the reports: give a --passwords file "
                "outside --out.",
            )
        roster = Path(os.path.realpath(options.roster))
        if roster.is_relative_to(options.out_dir):
            raise BadInputError(
                f"the roster {options.roster} is inside the season folder {options.out_dir}.",
                hint="keep the roster where the district keeps it, outside --out.",
            )

    def _open_roster(self) -> Roster:
        options = self.options
        roster = open_roster(
            options.roster,
            ssid_column=options.ssid_column,
            email_column=options.email_column,
            language_column=options.language_column,
            hold_column=options.hold_column,
        )
        return roster

    # -- the night ------------------------------------------------------------------------------
    def run(self) -> DeliverSummary:
        options = self.options
        started = time.monotonic()
        prepare_output_dir(options.out_dir)
        try:
            with (
                FolderLock.for_folder(options.out_dir, "deliver"),
                SeasonLedger.in_folder(options.out_dir) as season,
            ):
                run_id = season.start_run()
                stages: list[StageResult] = []
                interrupted = False
                try:
                    self._stages(stages)
                except KeyboardInterrupt:
                    interrupted = True
                finally:
                    # The bookkeeping runs whatever stopped the stages: it only reads what
                    # each stage's own ledger already holds.
                    rows = list(self.roster)
                    students = self._record(season, rows, stages)
                    follow_ups = self._follow_up(season, rows, students, stages)
                    pack = self._print_pack(season, rows, students) if options.print_pack else []
                    totals = season_counts(season, date.today(), options.holidays)
                    summary = DeliverSummary(
                        out_dir=options.out_dir,
                        stages=stages,
                        follow_up=follow_ups[0],
                        follow_ups=follow_ups[1],
                        season=totals,
                        print_pack=pack,
                        dry_run=options.dry_run,
                        elapsed=time.monotonic() - started,
                        interrupted=interrupted,
                    )
                    season.set_run_counts(run_id, summary.counts())
                    season.finish_run(
                        run_id,
                        "interrupted"
                        if interrupted
                        else ("stopped" if summary.stopped else "finished"),
                    )
        except sqlite3.DatabaseError as exc:  # the season ledger: a full disk, say
            raise ledger_error(options.out_dir / SEASON_LEDGER_NAME, exc) from None
        if interrupted:
            raise KeyboardInterrupt
        if options.notify:
            summary.notify_problem = self._notify(summary)
        return summary

    def _notify(self, summary: DeliverSummary) -> str:
        """Mail staff the night's counts; a failure is reported, never lost work."""
        from caaspp_cli.send.notify import notify_staff

        options = self.options
        lines: list[tuple[str, int]] = [
            (f"{stage.name}: {key.replace('_', ' ')}", value)
            for stage in summary.stages
            for key, value in stage.counts.items()
        ]
        lines += [(f"season: {key}", value) for key, value in summary.season.items()]
        lines += [
            (f"follow-up: {key.replace('_', ' ')}", n)
            for key, n in sorted(summary.follow_ups.items())
        ]
        stopped = [stage.name for stage in summary.stages if stage.stopped]
        subject = "caaspp deliver: " + (
            f"stopped in {', '.join(stopped)}" if stopped else "the night's run is done"
        )
        try:
            notify_staff(
                options.mail,
                options.notify,
                subject,
                lines,
                outbox=options.outbox if options.dry_run else None,
            )
        except CaasppError as exc:
            return f"the staff summary was not sent: {exc.message}"
        return ""

    def _stages(self, stages: list[StageResult]) -> None:
        # Each stage works on what the folder holds, so one that stops does not keep the
        # next from its part: with ETS unreachable tonight, what was fetched before is
        # still protected and sent.
        stages.append(self._fetch())
        stages.append(self._protect())
        stages.append(self._send())

    # -- fetch ----------------------------------------------------------------------------------
    def _fetch(self) -> StageResult:
        from caaspp_cli.fetch.bulk import BulkOptions, BulkRun

        options = self.options
        self.on_stage("fetch")
        bulk = BulkRun(
            self.roster,
            BulkOptions(
                out_dir=options.reports_dir,
                filters=options.filters,
                concurrency=options.concurrency,
                profile=options.profile,
                recheck_after=options.recheck_after,
            ),
            on_warning=self.on_warning,
        )
        result = StageResult("fetch")
        try:
            summary = asyncio.run(bulk.run())
        except CaasppError as exc:
            result.stopped = exc.message
            return result
        result.counts = {
            "students_asked": summary.students_to_ask,
            "reports_new": summary.reports_saved,
            "reports_already": summary.reports_already,
            "failed": summary.failed,
        }
        if summary.interrupted:
            raise KeyboardInterrupt
        return result

    # -- protect --------------------------------------------------------------------------------
    def _protect(self) -> StageResult:
        from caaspp_cli.protect.run import protect_reports

        options = self.options
        result = StageResult("protect")
        reports = options.reports_dir
        if not reports.is_dir() or not any(
            is_report_candidate(path.name) for path in reports.rglob("*.pdf")
        ):
            result.skipped = "no reports yet"
            return result
        self.on_stage("protect")
        try:
            summary = protect_reports(
                [reports], options.protected_dir, options.passwords, roster=options.roster
            )
        except CaasppError as exc:
            result.stopped = exc.message
            return result
        counts = summary.counts()
        result.counts = {
            "protected": counts.get("protected", 0),
            "already": counts.get("already_protected", 0),
            "failed": len(summary.failed),
            "new_passwords": summary.new_passwords,
        }
        return result

    # -- send -----------------------------------------------------------------------------------
    def _send(self) -> StageResult:
        from caaspp_cli.send.outcomes import SendOutcome
        from caaspp_cli.send.run import SendOptions, send_reports

        options = self.options
        result = StageResult("send")
        self._send_outcomes: dict[str, tuple[SendOutcome, str]] = {}
        if self.roster.columns.email is None:
            result.skipped = "the roster has no guardian email column: every family is on paper"
            return result
        if not options.passwords.is_file() or not options.protected_dir.is_dir():
            result.skipped = "nothing protected yet"
            return result
        self.on_stage("send")
        try:
            summary = send_reports(
                SendOptions(
                    roster=options.roster,
                    pdfs=options.protected_dir,
                    passwords=options.passwords,
                    smtp=options.mail,
                    email_column=options.email_column,
                    language_column=options.language_column,
                    hold_column=options.hold_column,
                    templates=options.templates,
                    dry_run=options.dry_run,
                    outbox=options.outbox,
                    daily_limit=options.daily_limit,
                    no_daily_limit=options.no_daily_limit,
                    rate=options.rate,
                )
            )
        except CaasppError as exc:
            result.stopped = exc.message
            return result
        for row in summary.rows:
            self._send_outcomes[row.ssid] = (row.outcome, row.detail)
        counts = summary.counts()
        result.counts = {key: value for key, value in counts.items() if value}
        result.counts["messages_sent"] = summary.messages_sent
        if summary.daily_limit_note:
            result.stopped = summary.daily_limit_note
        return result

    # -- the season ledger ----------------------------------------------------------------------
    def _record(
        self, season: SeasonLedger, rows: list[RosterRow], stages: list[StageResult]
    ) -> dict[str, StudentState]:
        """Where every student and report stands, from the stages' own artifacts."""
        from caaspp_cli.fetch.ledger import Ledger as BulkLedger
        from caaspp_cli.send.ledger import SendLedger
        from caaspp_cli.send.outcomes import SendOutcome

        options = self.options
        now = self.wall_clock()
        outcomes = getattr(self, "_send_outcomes", {})
        students: dict[str, StudentState] = {}
        for row in rows:
            if row.problem is RowProblem.DUPLICATE or row.ssid is None:
                continue
            channel = _channel(row)
            outcome = outcomes.get(row.ssid)
            if channel == EMAIL and outcome is not None and outcome[0] is SendOutcome.REFUSED:
                channel = PAPER  # the mail server refuses this family's address for good
            state = StudentState(
                ssid=row.ssid,
                line=row.line,
                school=row.school_name or row.school_code,
                grade=row.grade,
                channel=channel,
                first_asked=now if row.ok else None,
            )
            students[row.ssid] = state
            season.put_student(state)

        first_seen: dict[tuple[str, str], float] = {}
        bulk = BulkLedger.existing(options.reports_dir)
        if bulk is not None:
            with bulk:
                for record in bulk.all_reports():
                    if record.status == Status.DOWNLOADED and record.file:
                        first_seen[(record.ssid, record.file)] = record.first_seen or now
        protected: set[str] = set()
        if options.passwords.is_file():
            for sheet_row in PasswordSheet(options.passwords).rows:
                protected.add(unneutralize_cell(sheet_row.file))
        emailed: dict[str, float] = {}
        ledger = SendLedger.existing(options.protected_dir)
        if ledger is not None and not options.dry_run:
            with ledger:
                for _ssid, file, accepted in ledger.delivered_files():
                    emailed[file] = accepted
        for line in read_manifest(options.reports_dir):
            if line.status not in (Status.DOWNLOADED, Status.ALREADY_DOWNLOADED) or not line.file:
                continue
            seen = first_seen.get((line.ssid, line.file), now)
            done = (options.protected_dir / line.file).is_file() and line.file in protected
            season.put_report(
                ReportState(
                    ssid=line.ssid,
                    file=line.file,
                    test=line.test,
                    year=int(line.year) if line.year.isdigit() else 0,
                    language=line.language,
                    first_seen=seen,
                    protected=now if done else None,
                    emailed=emailed.get(line.file),
                )
            )
        return students

    # -- follow-up and paper --------------------------------------------------------------------
    def _follow_up(
        self,
        season: SeasonLedger,
        rows: list[RosterRow],
        students: dict[str, StudentState],
        stages: list[StageResult],
    ) -> tuple[Path | None, Counter[str]]:
        options = self.options
        now = self.wall_clock()
        answers = {
            line.ssid: line
            for line in read_manifest(options.reports_dir)
            if line.status
            in (Status.NO_REPORTS, Status.STUDENT_NOT_FOUND, Status.NOT_ENROLLED, Status.FAILED)
        }
        has_report = {report.ssid for report in season.reports()}
        first_asked = {
            student.ssid: student.first_asked
            for student in season.students()
            if student.first_asked is not None
        }
        found = find_follow_ups(
            rows,
            {ssid: state.channel for ssid, state in students.items()},
            answers,
            has_report,
            first_asked,
            getattr(self, "_send_outcomes", {}),
            now=now,
            missing_after=options.missing_after * DAY,
        )
        for entry in found:
            if entry.ssid in students:
                season.put_student(replace(students[entry.ssid], follow_up=entry.reason.value))
        path = write_follow_ups(options.out_dir, found)
        return path, Counter(row.reason.value for row in found)

    def _print_pack(
        self, season: SeasonLedger, rows: list[RosterRow], students: dict[str, StudentState]
    ) -> list[Path]:
        from caaspp_cli.deliver.printpack import PrintItem, write_print_pack

        options = self.options
        paper = {
            row.ssid: row
            for row in rows
            if row.ssid is not None
            and row.problem is not RowProblem.DUPLICATE
            and students[row.ssid].channel == PAPER
        }
        items: list[PrintItem] = []
        reports = [
            report for report in season.reports() if report.ssid in paper and report.emailed is None
        ]
        for report in reports:
            row = paper[report.ssid]
            items.append(
                PrintItem(
                    school=row.school_name or row.school_code,
                    grade=row.grade,
                    last_name=row.last_name or row.display_name,
                    first_name=row.first_name,
                    ssid=report.ssid,
                    line=row.line,
                    file=options.reports_dir / report.file,
                    new=report.printed is None,
                )
            )
        pack = write_print_pack(options.print_dir, items, title_date=date.today())
        if pack.problems:
            lines = ", ".join(str(problem[0].line) for problem in pack.problems[:10])
            self.on_warning(
                f"the print pack leaves out {len(pack.problems)} report(s) that could not be "
                f"read (roster lines {lines}): fetch them again or print them by hand."
            )
        now = self.wall_clock()
        for report in reports:
            season.put_report(
                ReportState(
                    report.ssid,
                    report.file,
                    report.test,
                    report.year,
                    report.language,
                    report.first_seen,
                    printed=now,
                )
            )
        return [school.path for school in pack.schools]


def _channel(row: RosterRow) -> str:
    if getattr(row, "held", False):
        return HELD
    if row.emails and not row.email_problem:
        return EMAIL
    return PAPER
