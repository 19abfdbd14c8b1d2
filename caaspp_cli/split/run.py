"""A split run: TOMS downloads in, one PDF per student report out, the same folder bulk makes.

Three steps. *Read*: every input (PDFs, zips as TOMS delivers them, folders of either) is
read once, page by page, and each page's facts (``find.read_page``) are folded into reports:
a report starts at a first page and takes the pages that follow it with the same SSID, test
and year, in the order its page numbers say. *Decide*: a report with missing or misplaced
pages, two reports of one student for the same test, year and language, and (with a roster)
a student the roster does not hold are set aside for a person, with the input file and page
range in the manifest; nothing is guessed. *Write*: each remaining report's pages are copied
(not re-rendered) into a new owner-only PDF, named by ``--layout`` as bulk names its
downloads; a report already split and intact is kept. ``manifest.csv`` accounts for every
page and every roster row.

Over 600 lines on purpose: it is the three steps and the records they pass each other
(``_Report``, ``_Row``): apart, each step would need the others' private shapes. PDFium is
in ``split.pdf``, reading a page in ``split.find``, the manifest in ``artifacts``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from caaspp_cli.artifacts import REPORT_NAME_TEMPLATE, SPLIT_STATUSES, write_manifest
from caaspp_cli.artifacts import ManifestStatus as Status
from caaspp_cli.errors import BadInputError, InvalidReportError
from caaspp_cli.ets.pdfcheck import inspect_pdf_file
from caaspp_cli.fetch.layout import REPORT_FIELDS, ROSTER_FIELDS, Layout, column_key
from caaspp_cli.folderlock import FolderLock
from caaspp_cli.fsutil import (
    PRIVATE_FILE_MODE,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    prepare_output_dir,
    sweep_temp_files,
)
from caaspp_cli.roster.read import Roster, RosterRow
from caaspp_cli.split.find import PageFacts, read_page
from caaspp_cli.split.pdf import UnreadablePdfError, copy_pages, opened, page_texts

# A zip member larger than this is not read: TOMS's merged files run to hundreds of MB, and
# a member claiming (or inflating to) more is a mistake or a zip bomb.
MAX_MEMBER_BYTES: Final = 2 * 1024**3
# Statuses that leave pages or reports for a person: the run then exits 3.
# An invalid SSID in the roster needs one too, as in bulk and send (exit codes agree).
NEEDS_A_PERSON: Final = frozenset(
    {Status.UNASSIGNED, Status.NOT_IN_ROSTER, Status.DUPLICATE, Status.INVALID_SSID, Status.FAILED}
)


@dataclass(frozen=True)
class SplitOptions:
    out_dir: Path
    layout: str = REPORT_NAME_TEMPLATE
    max_member_bytes: int = MAX_MEMBER_BYTES


@dataclass
class SplitProgress:
    """Handed to the progress callback after each page read and each report written."""

    pages_read: int = 0
    reports_total: int = 0
    reports_done: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class SplitSummary:
    statuses: Counter[str]
    pages: int
    pages_in_reports: int
    reports_written: int
    reports_already: int
    elapsed: float
    manifest: Path

    @property
    def needs_a_person(self) -> int:
        return sum(self.statuses[s] for s in NEEDS_A_PERSON)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "pages_in_reports": self.pages_in_reports,
            "statuses": {status: self.statuses[status] for status in SPLIT_STATUSES},
            "reports_written": self.reports_written,
            "reports_already_split": self.reports_already,
            "needs_a_person": self.needs_a_person,
            "elapsed_seconds": round(self.elapsed, 3),
            "manifest": str(self.manifest),
        }


@dataclass(frozen=True)
class _Source:
    """One PDF to read: ``name`` for people (``grade5.zip:grade5.pdf``), ``path`` to read."""

    name: str
    path: Path


@dataclass
class _Report:
    source: int
    ssid: str
    test: str
    year: int
    language: str
    pages: list[int]  # 0-based page indexes in the source
    numbers: list[int | None]  # the page numbers the pages print
    count: int | None  # "of N"
    # The pages' text: the same report given twice (a zip and its PDF) is one report.
    digest: Any = field(default_factory=hashlib.sha256, repr=False)
    copies: list[str] = field(default_factory=list)  # where else the same report is

    def complete(self) -> bool:
        if self.count is None:
            return True
        return self.numbers == list(range(1, self.count + 1))


@dataclass
class _Row:
    """One manifest row; ``order`` keeps rows in input order."""

    ssid: str
    status: str
    test: str = ""
    year: str = ""
    language: str = ""
    file: str = ""
    detail: str = ""
    line: str = ""

    def cells(self) -> tuple[str, ...]:
        return (
            self.ssid,
            self.status,
            self.test,
            self.year,
            self.language,
            self.file,
            self.detail,
            self.line,
        )


def page_range(pages: Sequence[int]) -> str:
    """1-based page numbers as people read them: "page 3", "pages 5-8", "pages 2, 7"."""
    numbers = [p + 1 for p in pages]
    if len(numbers) == 1:
        return f"page {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"pages {numbers[0]}-{numbers[-1]}"
    return "pages " + ", ".join(str(n) for n in numbers)


class SplitRun:
    """``caaspp split``: construct with the inputs and options, then call ``run()``."""

    def __init__(
        self,
        inputs: Sequence[Path],
        options: SplitOptions,
        roster: Roster | None = None,
        on_progress: Callable[[SplitProgress], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        for given in inputs:
            if not given.exists():
                raise BadInputError(f"{given} does not exist.")
        if not inputs:
            raise BadInputError("give at least one PDF, zip or folder to split.")
        self.inputs = list(inputs)
        self.options = options
        self.roster = roster
        self.on_progress = on_progress
        self.on_warning = on_warning or (lambda message: None)
        available = {*REPORT_FIELDS, *ROSTER_FIELDS}
        if roster is not None:
            available |= {column_key(h) for h in roster.headers if h}
        available.discard("")
        self.layout = Layout(options.layout, available)
        self.progress = SplitProgress()
        self._roster_rows: dict[str, RosterRow] = {}
        if roster is not None:
            for row in roster:
                if row.ssid is not None and row.problem is None:
                    self._roster_rows.setdefault(row.ssid, row)

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> SplitSummary:
        out_dir = self.options.out_dir
        lock = take_folder(out_dir)
        try:
            sweep_temp_files(out_dir)
            with contextlib.ExitStack() as spools:
                sources, rows = self._sources(spools)
                reports, page_rows, pages = self._read(sources)
                rows += page_rows
                if pages and not reports and all("no text on the page" in r.detail for r in rows):
                    raise BadInputError(
                        "the input has no text layer: it is a scanned PDF, and caaspp split "
                        "reads the SSID from the text TOMS puts on each page.",
                        hint="download the reports from TOMS again rather than scanning them.",
                    )
                rows, keep = self._decide(sources, reports, rows)
                written, already = self._write(sources, keep, rows)
            rows += self._roster_rows_without_reports(rows)
            manifest, statuses = self._write_manifest(rows)
        finally:
            lock.release()
        return SplitSummary(
            statuses=statuses,
            pages=pages,
            pages_in_reports=sum(len(r.pages) for r in keep),
            reports_written=written,
            reports_already=already,
            elapsed=self.progress.elapsed,
            manifest=manifest,
        )

    # -- inputs ------------------------------------------------------------------------------
    def _sources(self, spools: contextlib.ExitStack) -> tuple[list[_Source], list[_Row]]:
        out_real = self.options.out_dir.resolve()
        sources: list[_Source] = []
        rows: list[_Row] = []
        for given in self.inputs:
            if given.is_dir():
                folder = given.resolve()
                for root, dirs, names in os.walk(folder):
                    root_path = Path(root)
                    dirs[:] = sorted(
                        d
                        for d in dirs
                        if not d.startswith(".") and (root_path / d).resolve() != out_real
                    )
                    for name in sorted(names):
                        path = root_path / name
                        if not name.startswith(".") and not path.is_symlink():
                            self._add(path, str(path), sources, rows, spools)
            else:
                self._add(given, str(given), sources, rows, spools, named=True)
        return sources, rows

    def _add(
        self,
        path: Path,
        name: str,
        sources: list[_Source],
        rows: list[_Row],
        spools: contextlib.ExitStack,
        *,
        named: bool = False,
    ) -> None:
        suffix = path.suffix.lower()
        if suffix == ".pdf":
            sources.append(_Source(name, path))
        elif suffix == ".zip":
            self._add_zip(path, name, sources, rows, spools)
        elif named:
            raise BadInputError(
                f"{path} is neither a PDF nor a zip.",
                hint="give the PDFs or zips TOMS delivers, or a folder of them.",
            )

    def _add_zip(
        self,
        path: Path,
        name: str,
        sources: list[_Source],
        rows: list[_Row],
        spools: contextlib.ExitStack,
    ) -> None:
        """A zip's PDF members, each copied (bounded) to an owner-only temp file in the
        output folder. A member's name is only ever shown, never used as a path: nothing
        is extracted where the zip says."""
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            rows.append(_Row("", Status.FAILED, detail=f"{name}: not a readable zip ({exc})"))
            return
        with archive:
            for member in archive.infolist():
                label = f"{name}:{member.filename}"
                mode = member.external_attr >> 16
                if member.is_dir():
                    continue
                if stat.S_ISLNK(mode):
                    rows.append(
                        _Row("", Status.FAILED, detail=f"{label}: a link, not a file; not read")
                    )
                    continue
                lower = member.filename.lower()
                if lower.endswith(".zip"):
                    rows.append(
                        _Row("", Status.FAILED, detail=f"{label}: a zip inside a zip; not read")
                    )
                    continue
                if not lower.endswith(".pdf"):
                    continue
                if member.file_size > self.options.max_member_bytes:
                    rows.append(_Row("", Status.FAILED, detail=f"{label}: too large to read"))
                    continue
                spool = spools.enter_context(_spool_file(self.options.out_dir))
                try:
                    copied = _bounded_copy(archive, member, spool, self.options.max_member_bytes)
                except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as exc:
                    rows.append(_Row("", Status.FAILED, detail=f"{label}: cannot be read ({exc})"))
                    continue
                if not copied:
                    rows.append(_Row("", Status.FAILED, detail=f"{label}: too large to read"))
                    continue
                sources.append(_Source(label, spool))

    # -- read --------------------------------------------------------------------------------
    def _read(self, sources: Sequence[_Source]) -> tuple[list[_Report], list[_Row], int]:
        reports: list[_Report] = []
        rows: list[_Row] = []
        total = 0
        roster_ssids = frozenset(self._roster_rows)
        for index, source in enumerate(sources):
            reader = _Reader(index, source.name)
            try:
                for text in page_texts(source.path):
                    reader.add(read_page(text, roster_ssids), text)
                    total += 1
                    self.progress.pages_read += 1
                    if self.on_progress is not None and self.progress.pages_read % 25 == 0:
                        self.on_progress(self.progress)
            except UnreadablePdfError as exc:
                reader.finish()
                rows += reader.rows
                rows.append(
                    _Row("", Status.FAILED, detail=f"{source.name}: not a readable PDF ({exc})")
                )
                continue
            reader.finish()
            reports += reader.reports
            rows += reader.rows
        return reports, rows, total

    # -- decide ------------------------------------------------------------------------------
    def _decide(
        self, sources: Sequence[_Source], reports: list[_Report], rows: list[_Row]
    ) -> tuple[list[_Row], list[_Report]]:
        by_key: dict[tuple[str, str, int, str], list[_Report]] = {}
        for report in reports:
            by_key.setdefault((report.ssid, report.test, report.year, report.language), []).append(
                report
            )
        for key, same in list(by_key.items()):
            if len(same) > 1 and len({r.digest.digest() for r in same}) == 1:
                # The very same report twice (the zip and its PDF both given): split once.
                same[0].copies = [
                    f"{sources[r.source].name} {page_range(r.pages)}" for r in same[1:]
                ]
                by_key[key] = same[:1]
        kept = {id(r) for same in by_key.values() for r in same}
        keep: list[_Report] = []
        for report in reports:
            if id(report) not in kept:
                continue
            where = f"{sources[report.source].name} {page_range(report.pages)}"
            same = by_key[(report.ssid, report.test, report.year, report.language)]
            if len(same) > 1:
                rows.append(
                    self._report_row(
                        report,
                        Status.DUPLICATE,
                        f"{where}: one of {len(same)} reports of this student for the same "
                        "test, year and language; a person must choose",
                    )
                )
            elif self.roster is not None and report.ssid not in self._roster_rows:
                rows.append(
                    self._report_row(report, Status.NOT_IN_ROSTER, f"{where}: not in the roster")
                )
            else:
                keep.append(report)
        return rows, keep

    def _report_row(self, report: _Report, status: str, detail: str, file: str = "") -> _Row:
        row = self._roster_rows.get(report.ssid)
        return _Row(
            report.ssid,
            status,
            report.test,
            str(report.year),
            report.language,
            file,
            detail,
            str(row.line) if row is not None else "",
        )

    def _roster_rows_without_reports(self, rows_so_far: Sequence[_Row]) -> list[_Row]:
        """Roster rows the download has nothing for (a student whose pages are set aside
        for a person has a row already, and is not said to have no report)."""
        if self.roster is None:
            return []
        found = {r.ssid for r in rows_so_far if r.ssid}
        rows: list[_Row] = []
        for row in self.roster:
            if row.problem is not None:
                rows.append(
                    _Row(row.raw_ssid, str(row.problem), detail=row.detail, line=str(row.line))
                )
            elif row.ssid not in found:
                rows.append(
                    _Row(
                        row.ssid or "",
                        Status.NO_REPORTS,
                        detail="no report for this student in the download",
                        line=str(row.line),
                    )
                )
        return rows

    # -- write -------------------------------------------------------------------------------
    def _write(
        self, sources: Sequence[_Source], keep: Sequence[_Report], rows: list[_Row]
    ) -> tuple[int, int]:
        written = already = 0
        self.progress.reports_total = len(keep)
        by_source: dict[int, list[_Report]] = {}
        for report in keep:
            by_source.setdefault(report.source, []).append(report)
        for index, reports in by_source.items():
            source = sources[index]
            for document, shown, report in opened(
                source.path, reports, [report.pages for report in reports]
            ):
                relative = self.layout.relative_path(self._layout_values(report))
                dest = self.options.out_dir / relative
                where = f"{source.name} {page_range(report.pages)}"
                if _intact(dest, report):
                    status = Status.ALREADY_SPLIT
                    already += 1
                else:
                    copy_pages(document, shown, dest)
                    status = Status.SPLIT
                    written += 1
                detail = f"from {where}" + "".join(
                    f"; the same report is also in {copy}" for copy in report.copies
                )
                rows.append(self._report_row(report, status, detail, relative.as_posix()))
                self.progress.reports_done += 1
                if self.on_progress is not None:
                    self.on_progress(self.progress)
        return written, already

    def _layout_values(self, report: _Report) -> dict[str, object]:
        values: dict[str, object] = {}
        row = self._roster_rows.get(report.ssid)
        if row is not None:
            values.update({column_key(k): v for k, v in row.fields.items() if k})
            values.update(
                first_name=row.first_name,
                last_name=row.last_name,
                name=row.display_name,
                school=row.school_name or row.school_code,
                school_code=row.school_code,
                school_name=row.school_name,
                grade=row.grade,
            )
        values.update(
            ssid=report.ssid,
            test=report.test,
            year=report.year,
            language=report.language,
            format="pdf",
        )
        return values

    def _write_manifest(self, rows: Sequence[_Row]) -> tuple[Path, Counter[str]]:
        statuses = Counter(row.status for row in rows)
        manifest = write_manifest(
            self.options.out_dir, [row.cells() for row in rows], self.on_warning
        )
        return manifest, statuses


class _Reader:
    """Folds one input's pages, in order, into reports and rows for pages no report takes."""

    def __init__(self, source: int, name: str) -> None:
        self.source = source
        self.name = name
        self.reports: list[_Report] = []
        self.rows: list[_Row] = []
        self._current: _Report | None = None
        self._index = 0
        self._loose: list[int] = []  # consecutive pages set aside for the same reason
        self._loose_reason = ""
        self._loose_ssid = ""

    def add(self, facts: PageFacts, text: str) -> None:
        index = self._index
        self._index += 1
        if not facts.has_text:
            self._set_aside(index, "no text on the page (a scan?)", "")
        elif facts.ambiguous:
            self._set_aside(index, "more than one SSID on the page", "")
        elif facts.ssid is None:
            self._set_aside(index, "no SSID on the page", "")
        elif facts.first_page:
            self._close()
            if facts.test is None or facts.year is None or facts.language is None:
                self._set_aside(
                    index, "the test, school year or language is not on the page", facts.ssid
                )
                return
            self._flush_loose()
            self._current = _Report(
                self.source,
                facts.ssid,
                facts.test,
                facts.year,
                facts.language,
                [index],
                [facts.page],
                facts.pages,
            )
            self._current.digest.update(text.encode("utf-8", "surrogatepass") + b"\f")
        elif self._follows(facts):
            assert self._current is not None
            self._current.pages.append(index)
            self._current.numbers.append(facts.page)
            self._current.digest.update(text.encode("utf-8", "surrogatepass") + b"\f")
        else:
            self._set_aside(
                index,
                "a later page of a report whose first page is not just before it",
                facts.ssid,
            )

    def _follows(self, facts: PageFacts) -> bool:
        current = self._current
        if current is None or facts.ssid != current.ssid:
            return False
        if facts.test is not None and facts.test != current.test:
            return False
        if facts.year is not None and facts.year != current.year:
            return False
        last = current.numbers[-1]
        return facts.page is None or last is None or facts.page == last + 1

    def _set_aside(self, index: int, reason: str, ssid: str) -> None:
        self._close()
        if self._loose and (reason != self._loose_reason or ssid != self._loose_ssid):
            self._flush_loose()
        self._loose.append(index)
        self._loose_reason, self._loose_ssid = reason, ssid

    def _flush_loose(self) -> None:
        if self._loose:
            self.rows.append(
                _Row(
                    self._loose_ssid,
                    Status.UNASSIGNED,
                    detail=f"{self.name} {page_range(self._loose)}: {self._loose_reason}",
                )
            )
            self._loose = []

    def _close(self) -> None:
        report, self._current = self._current, None
        if report is None:
            return
        if report.complete():
            self.reports.append(report)
            return
        self._flush_loose()
        self.rows.append(
            _Row(
                report.ssid,
                Status.UNASSIGNED,
                report.test,
                str(report.year),
                report.language,
                detail=f"{self.name} {page_range(report.pages)}: the report's pages are "
                f"incomplete or out of order ({len(report.pages)} of {report.count})",
            )
        )

    def finish(self) -> None:
        self._close()
        self._flush_loose()


def take_folder(out_dir: Path) -> FolderLock:
    """The output folder, checked and held for this run (the same lock every command that
    writes a folder takes, so a bulk or a protect there is refused too); ``release()``
    gives it back."""
    prepare_output_dir(out_dir)
    return FolderLock.for_folder(out_dir, "split")


@contextlib.contextmanager
def _spool_file(folder: Path) -> Iterator[Path]:
    """An owner-only temp file in ``folder``, removed afterwards (or swept by a re-run)."""
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    os.close(fd)
    path = Path(name)
    os.chmod(path, PRIVATE_FILE_MODE)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _bounded_copy(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, dest: Path, limit: int
) -> bool:
    """Copy a member's bytes; False (and nothing kept) if it inflates past ``limit``, as a
    member whose header lies about its size would."""
    copied = 0
    with archive.open(member) as source, dest.open("wb") as target:
        while chunk := source.read(1 << 20):
            copied += len(chunk)
            if copied > limit:
                target.truncate(0)
                return False
            target.write(chunk)
    return True


def _intact(dest: Path, report: _Report) -> bool:
    """A file an earlier run wrote for this report: a complete PDF of the same length whose
    first page is the report's first page (the same student, test and year)."""
    if not dest.is_file():
        return False
    try:
        inspect_pdf_file(dest)
        texts = list(page_texts(dest))
    except (OSError, InvalidReportError, UnreadablePdfError):
        return False
    if len(texts) != len(report.pages):
        return False
    first = read_page(texts[0])
    return (first.ssid, first.test, first.year, first.language) == (
        report.ssid,
        report.test,
        report.year,
        report.language,
    )
