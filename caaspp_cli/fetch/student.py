"""Fetching one student's score reports: list them, then save each PDF.

The library half of `caaspp fetch`. It talks to ETS only through ``EtsClient`` and knows
nothing of the terminal.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from caaspp_cli import audit, vocabulary
from caaspp_cli.artifacts import existing_report, report_file_name
from caaspp_cli.errors import (
    BadInputError,
    CaasppError,
    EtsError,
    LinkRefusedError,
    NoReportsError,
    NotEnrolledError,
    StudentNotFoundError,
)
from caaspp_cli.ets import contract
from caaspp_cli.ets.client import EtsClient
from caaspp_cli.ets.contract import ReportEntry
from caaspp_cli.fsutil import prepare_output_dir, refuse_link


class Outcome(StrEnum):
    """What became of one report of the student."""

    SAVED = "saved"
    ALREADY_SAVED = "already_saved"
    LISTED = "listed"  # --list: nothing downloaded
    HTML_SKIPPED = "html_skipped"
    DUPLICATE = "duplicate"
    FAILED = "failed"


@dataclass(frozen=True)
class ReportFilters:
    """The three optional filters of the score-reports call; None means all."""

    test: str | None = None
    language: str | None = None
    year: int | None = None

    @classmethod
    def parse(cls, test: str | None, language: str | None, year: int | str | None) -> ReportFilters:
        """Check filters as typed by a person; raise BadInputError naming the bad one."""
        test_code = None
        if test is not None:
            test_code = vocabulary.normalize_test(test)
            if test_code is None:
                raise BadInputError(
                    f"unknown test {test!r}.",
                    hint="use one of: " + ", ".join(vocabulary.TEST_CODES) + ".",
                )
        language_code = None
        if language is not None:
            language_code = vocabulary.normalize_language(language)
            if language_code is None:
                names = ", ".join(f"{c} ({n})" for c, n in vocabulary.LANGUAGES.items())
                raise BadInputError(f"unknown language {language!r}.", hint=f"use one of: {names}.")
        return cls(test_code, language_code, None if year is None else parse_year(year))


def parse_year(value: int | str) -> int:
    """A school year as a person writes it: the spring year (``2025``) or the school year
    the reports print (``2024-25``, ``2024–2025``, ``2024/25``). Returns the spring year."""
    text = str(value).strip()
    match = re.fullmatch(r"(\d{4})(?:\s*[-–—/]\s*(\d{2}|\d{4}))?", text)
    spring: int | None = None
    if match:
        first, second = match.groups()
        if second is None:
            spring = int(first)
        else:
            following = int(first) + 1
            if second in (str(following), str(following)[-2:]):
                spring = following
    if spring is None or not 2000 <= spring <= 2100:
        raise BadInputError(
            f"year {text!r} is not a school year.",
            hint="give the spring year of the administration, e.g. 2025, or the school year "
            "as the reports print it, e.g. 2024-25.",
        )
    return spring


def check_ssid(ssid: str) -> str:
    value = ssid.strip()
    if not vocabulary.is_valid_ssid(value):
        raise BadInputError(
            f"{ssid!r} is not an SSID: a Statewide Student Identifier is exactly 10 digits.",
            hint="check for a lost leading zero or an Excel number format.",
        )
    return value


def report_filename(ssid: str, entry: ReportEntry) -> str:
    """`{ssid}_{test}_{year}_{language}.pdf`, the name TOMS users expect.

    Only for an entry whose fields are in the contract's vocabulary (``check_entry``): the
    values come from the server and end up in a path.
    """
    check_ssid(ssid)
    problem = contract.entry_problem(entry)
    if problem is not None:
        raise EtsError(
            f"{problem}; it was not saved.", hint="report this to the CDE/ETS help desk."
        )
    return report_file_name(ssid, entry.test, entry.year, entry.language)


def duplicate_entries(entries: list[ReportEntry]) -> set[int]:
    """Positions of PDF entries that repeat an earlier one's test, year and language.

    The first listing is the one kept; a repeat would be saved over it (or taken for it).
    HTML entries are only links to open, never files: ETS lists several for one test.
    """
    seen: set[tuple[str, int, str, str]] = set()
    repeats: set[int] = set()
    for position, entry in enumerate(entries):
        if not entry.is_pdf:
            continue
        key = (entry.test, entry.year, entry.language, entry.format.lower())
        if key in seen:
            repeats.add(position)
        seen.add(key)
    return repeats


DUPLICATE_DETAIL = "ETS listed this test, year and language twice; the first listing is kept"


@dataclass
class FetchedReport:
    entry: ReportEntry
    outcome: Outcome
    path: Path | None = None
    size: int | None = None
    sha256: str | None = None
    detail: str = ""


@dataclass
class FetchResult:
    ssid: str
    reports: list[FetchedReport] = field(default_factory=list)

    @property
    def failed(self) -> list[FetchedReport]:
        return [r for r in self.reports if r.outcome == Outcome.FAILED]


async def fetch_student(
    client: EtsClient,
    ssid: str,
    filters: ReportFilters,
    out_dir: Path,
    *,
    profile: str,
    list_only: bool = False,
    force: bool = False,
    on_saved: Callable[[FetchedReport], None] | None = None,
) -> FetchResult:
    """List a student's reports and save each PDF into ``out_dir``.

    Raises StudentNotFoundError, NotEnrolledError or NoReportsError when there is nothing
    to fetch. A report that fails after retries is recorded as ``failed``; the others are
    still saved.
    """
    ssid = check_ssid(ssid)
    audit.check_writable()
    try:
        entries = await client.list_reports(
            ssid, test=filters.test, language=filters.language, year=filters.year
        )
    except StudentNotFoundError:
        audit.record(profile, ssid, "student_not_found")
        raise StudentNotFoundError(
            f"ETS has no record of SSID {ssid}.",
            hint="check the SSID in CALPADS; a student without an SSID has no report.",
        ) from None
    except NotEnrolledError:
        audit.record(profile, ssid, "not_enrolled")
        raise NotEnrolledError(
            f"the student {ssid} is not enrolled in this LEA, so its reports are not visible.",
            hint="an LEA sees current students and past years where it was the last "
            "enrolling LEA; check the profile (--profile) for charters and county offices.",
        ) from None
    except CaasppError as exc:
        audit.record(profile, ssid, "failed", type(exc).__name__)
        raise
    if not entries:
        audit.record(profile, ssid, "no_reports")
        raise NoReportsError(
            f"the student {ssid} has no score report{_describe(filters)}.",
            hint="try without filters to see every available test, language and year."
            if filters != ReportFilters()
            else None,
        )
    audit.record(profile, ssid, "listed", f"{len(entries)} reports")
    result = FetchResult(ssid)
    if list_only:
        result.reports = [FetchedReport(entry, Outcome.LISTED) for entry in entries]
        return result
    # Resolved once: "a/new/../../b" is ./b, whatever exists on the way.
    out_dir = Path(os.path.realpath(out_dir))
    prepare_output_dir(out_dir)

    repeats = duplicate_entries(entries)

    async def save(position: int, entry: ReportEntry) -> FetchedReport:
        if position in repeats:
            audit.record(profile, ssid, "duplicate_entry", f"{entry.test} {entry.year}")
            return FetchedReport(entry, Outcome.DUPLICATE, detail=DUPLICATE_DETAIL)
        if not entry.is_pdf:
            return FetchedReport(entry, Outcome.HTML_SKIPPED, detail="HTML report: open the link")
        try:
            dest = out_dir / report_filename(ssid, entry)
            # A link there could be another child's report: neither adopted nor replaced.
            refuse_link(dest)
        except (EtsError, LinkRefusedError) as exc:
            audit.record(profile, ssid, "download_failed", type(exc).__name__)
            return FetchedReport(entry, Outcome.FAILED, detail=exc.message)
        if not force and (existing := existing_report(dest)) is not None:
            return FetchedReport(entry, Outcome.ALREADY_SAVED, dest, *existing)
        try:
            saved = await client.download_report(
                ssid,
                entry,
                dest,
                filters=(
                    filters.test,
                    filters.language,
                    filters.year,
                ),
            )
        except CaasppError as exc:
            audit.record(profile, ssid, "download_failed", type(exc).__name__)
            return FetchedReport(entry, Outcome.FAILED, detail=exc.message)
        audit.record(profile, ssid, "downloaded", f"{entry.test} {entry.year} {entry.language}")
        report = FetchedReport(entry, Outcome.SAVED, saved.path, saved.size, saved.sha256)
        if on_saved is not None:
            on_saved(report)
        return report

    from caaspp_cli.folderlock import FolderLock

    with FolderLock.for_folder(out_dir, "fetch"):
        result.reports = list(await asyncio.gather(*(save(i, e) for i, e in enumerate(entries))))
    return result


def _describe(filters: ReportFilters) -> str:
    which = " ".join(str(part) for part in (filters.test, filters.year) if part)
    text = f" for {which}" if which else ""
    if filters.language:
        text += f" in {vocabulary.LANGUAGES[filters.language]}"
    return text
