"""A whole roster's score reports: one PDF per student and report, resumable, never twice.

The pipeline: the roster streams through a bounded queue to ``concurrency`` workers; each
worker takes one student at a time (list the reports, then download each PDF) through the
ETS client of the profile that serves the student's school. Every answer and every saved
file is committed to the ledger in the output folder as it completes, so an interrupted
run, however it ends, resumes where it stopped. At the end ``manifest.csv`` gives one row
per roster row and report, with the reason where there is no report.

Over 600 lines on purpose: it is one state machine, BulkRun: the queue, a student's
listing and downloads, and the manifest lines that read back what the ledger recorded.
They share the run's ledger, clients and counters; split apart they would pass all of it
around. Who serves which row is in fetch.routing, the files' names and columns in
artifacts, one student's fetch in fetch.student.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from caaspp_cli.artifacts import (
    BULK_LEDGER_NAME,
    BULK_STATUSES,
    NEEDS_A_PERSON,
    REPORT_NAME_TEMPLATE,
    existing_report,
    write_manifest,
)
from caaspp_cli.artifacts import ManifestStatus as Status
from caaspp_cli.config.profiles import Profile, load_store
from caaspp_cli.errors import (
    AuthenticationError,
    BadInputError,
    CaasppError,
    CredentialsError,
    InvalidReportError,
    LayoutError,
    LinkRefusedError,
    NotEnrolledError,
    StudentNotFoundError,
)
from caaspp_cli.ets import contract
from caaspp_cli.ets.client import EtsClient
from caaspp_cli.ets.connect import connect
from caaspp_cli.ets.contract import ReportEntry
from caaspp_cli.ets.pdfcheck import inspect_pdf_file
from caaspp_cli.fetch.layout import (
    REPORT_FIELDS,
    ROSTER_FIELDS,
    Layout,
    column_key,
)
from caaspp_cli.fetch.ledger import Ledger, ReportRecord, StudentRecord
from caaspp_cli.fetch.routing import ProfileRouter
from caaspp_cli.fetch.student import DUPLICATE_DETAIL, ReportFilters, duplicate_entries
from caaspp_cli.folderlock import FolderLock
from caaspp_cli.fsutil import (
    no_links_within,
    prepare_output_dir,
    private_dirs_within,
    refuse_link,
    sweep_temp_files,
)
from caaspp_cli.ledger import ledger_error
from caaspp_cli.roster.read import Roster, RosterRow
from caaspp_cli.words import plural

# Answers ETS gave about a student that a re-run does not ask again.
FINAL_ANSWERS: Final = frozenset({Status.NO_REPORTS, Status.STUDENT_NOT_FOUND, Status.NOT_ENROLLED})
LISTED: Final = "listed"
HTML: Final = "html"


@dataclass(frozen=True)
class BulkOptions:
    out_dir: Path
    filters: ReportFilters = field(default_factory=ReportFilters)
    concurrency: int = 8
    layout: str = REPORT_NAME_TEMPLATE
    profile: str | None = None  # forces one profile for every row
    # Days after which a student an earlier run settled is asked again (reports come out
    # over weeks); None: a settled student is never asked again.
    recheck_after: float | None = None

    def __post_init__(self) -> None:
        # Resolved once: "a/new/../../b" names the folder the OS will use, ./b, and every
        # path of the run is then checked below that one folder.
        object.__setattr__(self, "out_dir", Path(os.path.realpath(self.out_dir)))
        if not 1 <= self.concurrency <= 64:
            raise BadInputError("--concurrency must be between 1 and 64.")
        if self.recheck_after is not None and not self.recheck_after >= 0:
            raise BadInputError("--recheck-after must be 0 days or more.")


@dataclass
class BulkProgress:
    """What the run has done so far; handed to the progress callback after each student."""

    students_total: int = 0
    students_done: int = 0
    reports_saved: int = 0
    reports_already: int = 0
    failures: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Students per second."""
        return self.students_done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class BulkSummary:
    statuses: Counter[str]
    rows: int
    students_to_ask: int
    reports_saved: int
    reports_already: int
    elapsed: float
    manifest: Path | None
    interrupted: bool = False
    by_profile: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    # Dry run: students an earlier run into the folder settled, so not asked again.
    students_settled: int = 0
    # Students an earlier run settled, asked again (recheck_after) in this run.
    students_rechecked: int = 0
    # One outcome per roster row (statuses count manifest lines: one per report): a row
    # with any status of NEEDS_A_PERSON counts under the first of them, else under
    # not_reached, downloaded or already_downloaded, in that order, else its one answer.
    row_outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return self.statuses[Status.FAILED]

    @property
    def rows_needing_a_person(self) -> int:
        return sum(self.row_outcomes[status] for status in NEEDS_A_PERSON)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "students_to_ask": self.students_to_ask,
            "students_settled": self.students_settled,
            "students_rechecked": self.students_rechecked,
            "statuses": {status: self.statuses[status] for status in BULK_STATUSES},
            "roster_rows": {status: self.row_outcomes[status] for status in BULK_STATUSES},
            "rows_needing_a_person": self.rows_needing_a_person,
            "reports_saved": self.reports_saved,
            "reports_already_downloaded": self.reports_already,
            "elapsed_seconds": round(self.elapsed, 3),
            "manifest": str(self.manifest) if self.manifest else None,
            "interrupted": self.interrupted,
            "dry_run": self.dry_run,
            "by_profile": self.by_profile,
        }


# --- The run ------------------------------------------------------------------------------
def _query_key(filters: ReportFilters) -> str:
    return "|".join(
        "" if v is None else str(v) for v in (filters.test, filters.language, filters.year)
    )


def _layout_for(roster: Roster, template: str) -> Layout:
    available = {*REPORT_FIELDS, *ROSTER_FIELDS, *(column_key(h) for h in roster.headers if h)}
    available.discard("")
    return Layout(template, available)


def _layout_values(row: RosterRow, entry: ReportEntry) -> dict[str, object]:
    values: dict[str, object] = {column_key(k): v for k, v in row.fields.items() if k}
    values.update(
        first_name=row.first_name,
        last_name=row.last_name,
        name=row.display_name,
        school=row.school_name or row.school_code,
        school_code=row.school_code,
        school_name=row.school_name,
        ssid=row.ssid,
        test=entry.test,
        year=entry.year,
        language=entry.language,
        grade=entry.grade or row.grade,
        format=entry.format,
    )
    return values


class BulkRun:
    """One run of ``caaspp bulk`` over a roster into a folder."""

    def __init__(
        self,
        roster: Roster,
        options: BulkOptions,
        *,
        on_progress: Callable[[BulkProgress], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        client_factory: Callable[[Profile], EtsClient] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.roster = roster
        self.wall_clock = wall_clock
        self.rechecked = 0
        self.options = options
        self.layout = _layout_for(roster, options.layout)
        self.query = _query_key(options.filters)
        self.on_progress = on_progress or (lambda progress: None)
        self.on_warning = on_warning or (lambda message: None)
        self._client_factory = client_factory or self._open_client
        self._clients: dict[str, EtsClient] = {}
        self.progress = BulkProgress()
        self._router: ProfileRouter | None = None
        # Which report each file of this run belongs to, by its name as a file system that
        # ignores case sees it: a second report rendered to the same file fails, never adopts.
        self._files: dict[str, tuple[str, str, int, str]] = {}

    # -- profiles and clients ---------------------------------------------------------------
    def router(self) -> ProfileRouter:
        if self._router is None:
            self._router = ProfileRouter(load_store(), self.options.profile)
        return self._router

    def _open_client(self, profile: Profile) -> EtsClient:
        _, client = connect(
            profile.name, warn=self.on_warning, max_connections=self.options.concurrency
        )
        return client

    def client(self, profile: Profile) -> EtsClient:
        client = self._clients.get(profile.name)
        if client is None:
            client = self._clients[profile.name] = self._client_factory(profile)
        return client

    # -- planning ---------------------------------------------------------------------------
    def plan(self) -> Iterator[tuple[RosterRow, Profile | None]]:
        """Every roster row with the profile that serves it (None: no profile, or a bad row)."""
        router = self.router()
        for row in self.roster:
            yield row, (router.profile_for(row) if row.ok else None)

    def dry_run(self) -> BulkSummary:
        """Read and check the roster; say what would be asked. Writes nothing: an earlier
        run's ledger in the folder is read, so students it settled are not counted."""
        started = time.monotonic()
        statuses: Counter[str] = Counter()
        by_profile: Counter[str] = Counter()
        rows = settled = 0
        with contextlib.ExitStack() as stack:
            ledger = None
            if (self.options.out_dir / BULK_LEDGER_NAME).is_file():
                ledger = stack.enter_context(Ledger.in_folder(self.options.out_dir))
            for row, profile in self.plan():
                rows += 1
                if row.problem is not None:
                    statuses[str(row.problem)] += 1
                elif profile is None:
                    statuses[Status.NO_PROFILE] += 1
                elif (
                    ledger is not None and row.ssid and self._settled(ledger, row.ssid) is not None
                ):
                    settled += 1
                else:
                    by_profile[profile.name] += 1
        return BulkSummary(
            statuses=statuses,
            row_outcomes=Counter(statuses),
            rows=rows,
            students_to_ask=sum(by_profile.values()),
            reports_saved=0,
            reports_already=0,
            elapsed=time.monotonic() - started,
            manifest=None,
            by_profile=dict(by_profile),
            dry_run=True,
            students_settled=settled,
        )

    async def run(self) -> BulkSummary:
        """Fetch every report of the roster; returns the summary (also when interrupted)."""
        out = self.options.out_dir
        self.router()  # the profiles checked before anything is written
        prepare_output_dir(out)
        # Taken before the sweep, which would remove the files that another run is writing.
        with FolderLock.for_folder(out, "bulk"):
            try:
                return await self._run_locked(out)
            except sqlite3.DatabaseError as exc:
                raise ledger_error(out / BULK_LEDGER_NAME, exc) from None

    async def _run_locked(self, out: Path) -> BulkSummary:
        removed = sweep_temp_files(out)
        if removed:
            self.on_warning(
                f"removed {plural(removed, 'unfinished download')} left by an earlier run."
            )
        self.progress = BulkProgress(students_total=self.roster.row_count)
        self._open_clients()
        interrupted = False
        fatal: CaasppError | None = None
        with Ledger.in_folder(out) as ledger:
            run_id = ledger.start_run()
            try:
                await self._work(ledger, run_id)
            except asyncio.CancelledError:
                interrupted = True
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
            except (AuthenticationError, CredentialsError) as exc:
                fatal = exc
            finally:
                for client in self._clients.values():
                    with contextlib.suppress(Exception):
                        await client.aclose()
            manifest, statuses, row_outcomes = self._write_manifest(ledger, run_id)
            ledger.finish_run(run_id, "interrupted" if interrupted else "finished")
        if fatal is not None:
            raise fatal
        return BulkSummary(
            statuses=statuses,
            row_outcomes=row_outcomes,
            rows=self.roster.row_count,
            students_to_ask=self.progress.students_total,
            reports_saved=self.progress.reports_saved,
            reports_already=self.progress.reports_already,
            elapsed=self.progress.elapsed,
            manifest=manifest,
            interrupted=interrupted,
            students_rechecked=self.rechecked,
        )

    def _open_clients(self) -> None:
        """Check every profile the run may use before the first request: an expired or
        missing credential stops the run at once, not after half the roster."""
        router = self.router()
        for profile in {p.name: p for p in router.profiles()}.values():
            self.client(profile)

    async def _work(self, ledger: Ledger, run_id: int) -> None:
        queue: asyncio.Queue[tuple[RosterRow, Profile] | None] = asyncio.Queue(
            maxsize=self.options.concurrency * 4
        )
        fatal: list[BaseException] = []

        async def produce() -> None:
            for row, profile in self.plan():
                if profile is None or not row.ok:
                    self._student_done()
                    continue
                await queue.put((row, profile))
            for _ in range(self.options.concurrency):
                await queue.put(None)

        async def work() -> None:
            while (item := await queue.get()) is not None:
                if fatal:
                    continue
                row, profile = item
                try:
                    await self._student(ledger, run_id, row, profile)
                except (AuthenticationError, CredentialsError) as exc:
                    fatal.append(exc)
                self._student_done()

        producer = asyncio.create_task(produce())
        workers = [asyncio.create_task(work()) for _ in range(self.options.concurrency)]
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        stop_on_term = current is not None and _add_sigterm(loop, current)
        try:
            await asyncio.gather(producer, *workers)
        except BaseException:
            for task in (producer, *workers):
                task.cancel()
            await asyncio.gather(producer, *workers, return_exceptions=True)
            raise
        finally:
            if stop_on_term:
                loop.remove_signal_handler(signal.SIGTERM)
        if fatal:
            raise fatal[0]

    def _student_done(self) -> None:
        self.progress.students_done += 1
        self.on_progress(self.progress)

    async def _student(self, ledger: Ledger, run_id: int, row: RosterRow, profile: Profile) -> None:
        ssid = row.ssid
        assert ssid is not None
        settled = self._settled(ledger, ssid)
        if settled is not None:
            self.progress.reports_already += sum(r.status == Status.DOWNLOADED for r in settled)
            return
        if self._recheck_due(ledger.student(ssid, self.query)):
            self.rechecked += 1
        asked = self.wall_clock()
        client = self.client(profile)
        filters = self.options.filters
        try:
            entries = await client.list_reports(
                ssid, test=filters.test, language=filters.language, year=filters.year
            )
        except StudentNotFoundError:
            ledger.record_student(
                ssid, self.query, Status.STUDENT_NOT_FOUND, "", profile.name, asked=asked
            )
            return
        except NotEnrolledError:
            ledger.record_student(
                ssid, self.query, Status.NOT_ENROLLED, "", profile.name, asked=asked
            )
            return
        except (AuthenticationError, CredentialsError):
            raise
        except CaasppError as exc:
            ledger.record_student(ssid, self.query, Status.FAILED, exc.message, profile.name)
            self.progress.failures += 1
            return
        if not any(e.is_pdf for e in entries):
            if any(r.status == Status.DOWNLOADED for r in ledger.reports(ssid, self.query)):
                # Asked again, and ETS lists nothing now: what was saved stays saved.
                ledger.record_student(ssid, self.query, LISTED, "", profile.name, asked=asked)
                return
            detail = "only HTML reports" if entries else ""
            ledger.record_student(
                ssid, self.query, Status.NO_REPORTS, detail, profile.name, asked=asked
            )
            return
        previous = {
            (r.test, r.year, r.language, r.format): r for r in ledger.reports(ssid, self.query)
        }
        query = (filters.test, filters.language, filters.year)

        def record(
            entry: ReportEntry,
            status: str,
            file: str,
            saved: tuple[int, str] | None = None,
            detail: str = "",
            run: int = run_id,
        ) -> None:
            size, sha256 = saved if saved is not None else (None, None)
            ledger.record_report(
                self.query,
                ReportRecord(
                    ssid,
                    entry.test,
                    entry.year,
                    entry.language,
                    "pdf",
                    status,
                    file,
                    size,
                    sha256,
                    detail,
                    run,
                    asked,
                ),
            )

        def fail(entry: ReportEntry, file: str, detail: str) -> None:
            record(entry, Status.FAILED, file, detail=detail)
            self.progress.failures += 1

        repeats = duplicate_entries(entries)
        for position, entry in enumerate(entries):
            key = (entry.test, entry.year, entry.language, entry.format.lower())
            if position in repeats:
                self._record_bad_entry(
                    ledger,
                    run_id,
                    ssid,
                    entry,
                    Status.DUPLICATE_ENTRY,
                    DUPLICATE_DETAIL,
                    f"#{position + 1}",
                )
                continue
            if (problem := contract.entry_problem(entry)) is not None:
                # Its fields would become a path: nothing is requested or written for it.
                self._record_bad_entry(
                    ledger, run_id, ssid, entry, Status.FAILED, problem + "; not saved"
                )
                self.progress.failures += 1
                continue
            if not entry.is_pdf:
                ledger.record_report(
                    self.query,
                    ReportRecord(
                        ssid,
                        entry.test,
                        entry.year,
                        entry.language,
                        entry.format.lower(),
                        HTML,
                        "",
                        None,
                        None,
                        "HTML report, not downloaded",
                        run_id,
                    ),
                )
                continue
            try:
                relative = self.layout.relative_path(_layout_values(row, entry))
            except LayoutError as exc:
                fail(entry, "", exc.message)
                continue
            claimed = self._files.setdefault(
                relative.as_posix().casefold(), (ssid, entry.test, entry.year, entry.language)
            )
            if claimed != (ssid, entry.test, entry.year, entry.language):
                fail(
                    entry,
                    relative.as_posix(),
                    f"the layout gives this report the same file as the {claimed[1]} "
                    f"{claimed[2]} {claimed[3]} report of SSID {claimed[0]}; neither is "
                    "saved over the other (choose a layout that tells them apart)",
                )
                continue
            dest = self.options.out_dir / relative
            old = previous.get(key)
            if old is not None and old.status == Status.DOWNLOADED and self._still_good(old):
                self.progress.reports_already += 1
                continue
            try:
                # No folder of the path, nor the file, may be a link: a linked folder leads
                # outside the output folder, a linked file to another child's report.
                private_dirs_within(self.options.out_dir, relative.parent)
                refuse_link(dest)
            except LinkRefusedError as exc:
                fail(entry, relative.as_posix(), exc.message)
                continue
            except OSError as exc:
                fail(entry, relative.as_posix(), f"cannot write {dest}: {exc.strerror or exc}")
                continue
            try:
                adopted = existing_report(dest)
            except LinkRefusedError as exc:
                fail(entry, relative.as_posix(), exc.message)
                continue
            if adopted is not None:
                # Saved by an earlier run that was killed before it could tell the ledger.
                record(entry, Status.DOWNLOADED, relative.as_posix(), adopted, run=0)
                self.progress.reports_already += 1
                continue
            try:
                saved = await client.download_report(ssid, entry, dest, filters=query)
            except (AuthenticationError, CredentialsError):
                raise
            except CaasppError as exc:
                fail(entry, relative.as_posix(), exc.message)
                continue
            try:
                # A folder swapped for a link while the report was downloading: the file is
                # not where the ledger would say, so it is not recorded as saved.
                no_links_within(self.options.out_dir, dest)
            except LinkRefusedError as exc:
                fail(entry, relative.as_posix(), exc.message)
                continue
            record(entry, Status.DOWNLOADED, relative.as_posix(), (saved.size, saved.sha256))
            self.progress.reports_saved += 1
        # Only now is the student's list of reports complete in the ledger: a run killed
        # before this line lists the student again and adopts what was already saved.
        ledger.record_student(ssid, self.query, LISTED, "", profile.name, asked=asked)

    def _record_bad_entry(
        self,
        ledger: Ledger,
        run_id: int,
        ssid: str,
        entry: ReportEntry,
        status: str,
        detail: str,
        tag: str = "",
    ) -> None:
        """Record a listed entry that is not downloaded; ``tag`` keeps a repeat's ledger key
        apart from the first listing's."""
        ledger.record_report(
            self.query,
            ReportRecord(
                ssid,
                entry.test,
                entry.year,
                entry.language,
                entry.format.lower() + tag,
                status,
                "",
                None,
                None,
                detail,
                run_id,
            ),
        )

    def _settled(self, ledger: Ledger, ssid: str) -> list[ReportRecord] | None:
        """What an earlier run settled for this student, so that it is not asked again: a
        final answer (no records), or every report saved and intact. None: ask."""
        known = ledger.student(ssid, self.query)
        if self._recheck_due(known):
            return None
        if known is not None and known.status in FINAL_ANSWERS:
            return []
        if known is not None and known.status == LISTED:
            records = ledger.reports(ssid, self.query)
            if records and all(self._still_good(r) for r in records):
                return records
        return None

    def _recheck_due(self, known: StudentRecord | None) -> bool:
        """Whether a student an earlier run settled is due to be asked again."""
        days = self.options.recheck_after
        if days is None or known is None or known.asked is None:
            return False
        if known.status not in FINAL_ANSWERS and known.status != LISTED:
            return False
        return self.wall_clock() - known.asked >= days * 86_400.0

    def _still_good(self, record: ReportRecord) -> bool:
        """A ledger row is done when its file is there with the recorded checksum."""
        if record.status in (HTML, Status.DUPLICATE_ENTRY):
            return True
        if record.status != Status.DOWNLOADED:
            return False
        path = self.options.out_dir / record.file
        try:
            no_links_within(self.options.out_dir, path)
            if path.stat().st_size != record.size:
                return False
            size, digest = inspect_pdf_file(path)
        except (OSError, InvalidReportError, LinkRefusedError):
            return False
        return size == record.size and digest == record.sha256

    # -- the manifest -----------------------------------------------------------------------
    def _write_manifest(
        self, ledger: Ledger, run_id: int
    ) -> tuple[Path, Counter[str], Counter[str]]:
        statuses: Counter[str] = Counter()
        row_outcomes: Counter[str] = Counter()
        lines: list[tuple[Any, ...]] = []
        router = self.router()
        for row in self.roster:
            seen: set[str] = set()
            for cells in self._manifest_rows(ledger, run_id, row, router):
                statuses[cells[1]] += 1
                seen.add(cells[1])
                lines.append(cells)
            row_outcomes[_row_outcome(seen)] += 1
        manifest = write_manifest(self.options.out_dir, lines, self.on_warning)
        return manifest, statuses, row_outcomes

    def _manifest_rows(
        self, ledger: Ledger, run_id: int, row: RosterRow, router: ProfileRouter
    ) -> Iterator[tuple[Any, ...]]:
        line = row.line
        if row.problem is not None:
            yield (row.raw_ssid, str(row.problem), "", "", "", "", row.detail, line)
            return
        ssid = row.ssid
        assert ssid is not None
        if router.profile_for(row) is None:
            yield (ssid, Status.NO_PROFILE, "", "", "", "", router.describe_miss(row), line)
            return
        student = ledger.student(ssid, self.query)
        if student is None:
            # Stopped before its listing was complete: what it already has (reports saved
            # are kept, and a re-run adopts them) is listed, then the row as not reached.
            yield from self._report_lines(ledger, run_id, ssid, line)
            yield (
                ssid,
                Status.NOT_REACHED,
                "",
                "",
                "",
                "",
                "the run was stopped before this student was done; run the same command "
                "again to go on",
                line,
            )
            return
        if student.status != LISTED:
            yield (ssid, student.status, "", "", "", "", student.detail, line)
            return
        yield from self._report_lines(ledger, run_id, ssid, line)

    def _report_lines(
        self, ledger: Ledger, run_id: int, ssid: str, line: int
    ) -> Iterator[tuple[Any, ...]]:
        for record in ledger.reports(ssid, self.query):
            if record.status == HTML:
                continue
            if record.status == Status.DOWNLOADED:
                status = Status.DOWNLOADED if record.run == run_id else Status.ALREADY_DOWNLOADED
            elif record.status == Status.DUPLICATE_ENTRY:
                status = Status.DUPLICATE_ENTRY
            else:
                status = Status.FAILED
            yield (
                ssid,
                status,
                record.test,
                record.year,
                record.language,
                record.file,
                record.detail,
                line,
            )


def _row_outcome(statuses: set[str]) -> str:
    """The one outcome a roster row is counted under, from its manifest lines' statuses."""
    for status in (
        *NEEDS_A_PERSON,
        Status.NOT_REACHED,
        Status.DOWNLOADED,
        Status.ALREADY_DOWNLOADED,
    ):
        if status in statuses:
            return status
    return min(statuses) if statuses else Status.NOT_REACHED


def _add_sigterm(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> bool:
    """Make SIGTERM stop the run as Ctrl-C does (unattended jobs get stopped that way)."""
    try:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not main thread
        return False
    return True
