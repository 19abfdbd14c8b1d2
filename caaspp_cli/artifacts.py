"""The files caaspp's stages hand each other: their names, columns, statuses, readers and writers.

fetch/bulk and split write report PDFs and ``manifest.csv``; protect reads them and writes
protected copies and the password sheet; send reads those and writes ``send-report.csv``;
purge reads all of them to know what it may delete. Each of these files is defined here,
once, so that no stage parses another stage's output by a convention of its own:

- **report files**: ``{ssid}_{test}_{year}_{language}.pdf`` (the name TOMS users expect;
  ``--layout`` can place them in folders, and the SSID still starts the file name);
- **the manifest**: one row per report, or per roster row without one, with its status;
- **the password sheet**: the passwords ``protect`` made, one row per protected file;
- **the send report**: one row per roster row, with what ``send`` did for its family;
- **the ledgers' and the folder lock's names**, so that purge knows a stage's folder;
- **the CSV-formula guard**: every CSV we write is opened by staff in a spreadsheet.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Final

from caaspp_cli.errors import (
    BadInputError,
    InvalidReportError,
    LinkRefusedError,
    ManifestError,
    PasswordFileError,
)
from caaspp_cli.ets.pdfcheck import inspect_pdf_file
from caaspp_cli.fsutil import (
    HELD_HINT,
    PRIVATE_FILE_MODE,
    ensure_private_dir,
    held_by_another_program,
    is_link_stat,
    make_private,
    prepare_output_dir,
    write_private_bytes,
)

# --- CSV cells ------------------------------------------------------------------------------
# A leading =, +, -, @, tab or carriage return makes a spreadsheet read a cell as a formula.
FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralize_cell(value: str) -> str:
    """A cell safe to write into a CSV that staff will open in a spreadsheet.

    A leading ``=``, ``+``, ``-``, ``@``, tab or carriage return would make Excel read the
    cell as a formula (OWASP "CSV injection"); a leading apostrophe makes it text. A
    negative number gets one too: it is shown as text, which is harmless in our files.
    """
    return "'" + value if value.startswith(FORMULA_START) or _guarded(value) else value


def unneutralize_cell(cell: str) -> str:
    """The value :func:`neutralize_cell` was given, from the cell it wrote."""
    return cell[1:] if _guarded(cell) else cell


def _guarded(cell: str) -> bool:
    """Apostrophes, then what a spreadsheet takes for a formula. A value that already looks
    so gets one apostrophe more, so that reading a cell back is never ambiguous."""
    return cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_START)


def _csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """A CSV for spreadsheets: CRLF lines, every cell guarded, UTF-8 with a BOM (Excel
    then shows accented names correctly)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([neutralize_cell(str(cell)) for cell in row])
    return buffer.getvalue().encode("utf-8-sig")


# --- Report files ----------------------------------------------------------------------------
# The default layout of a report under its folder (``--layout`` may add folders in front).
REPORT_NAME_TEMPLATE: Final = "{ssid}_{test}_{year}_{language}.pdf"
# A report's file name as the template writes it, and the SSID that starts every report's
# name whatever the layout (layouts must keep it: see fetch.layout).
REPORT_NAME: Final = re.compile(r"^(\d{10})_(.+)_(\d{4})_([A-Za-z]{2,3}(?:-[A-Za-z]{4})?)\.pdf$")
_SSID_PREFIX: Final = re.compile(r"^(\d{10})_")


def report_file_name(ssid: str, test: str, year: int | str, language: str) -> str:
    """``{ssid}_{test}_{year}_{language}.pdf``, from values already checked against the
    contract's vocabulary (they end up in a path)."""
    return REPORT_NAME_TEMPLATE.format(ssid=ssid, test=test, year=year, language=language)


def ssid_of_file_name(name: str) -> str | None:
    """The SSID a report's file name starts with, else None."""
    match = _SSID_PREFIX.match(name)
    return match.group(1) if match else None


def is_report_candidate(name: str) -> bool:
    """A visible PDF by its name. Hidden files include the ``._x.pdf`` that macOS leaves on
    USB drives, and caaspp's own temp files."""
    return name.lower().endswith(".pdf") and not name.startswith(".")


def existing_report(path: Path) -> tuple[int, str] | None:
    """(size, sha256) of a complete PDF already at ``path``, else None (nothing there, or a
    partial or damaged file). LinkRefusedError for a link: it could lead to another child's
    report, so it is neither taken for this one nor replaced."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if is_link_stat(info):
        raise LinkRefusedError(path)
    try:
        return inspect_pdf_file(path)
    except (OSError, InvalidReportError):
        return None


def report_ssids_in(folder: Path) -> set[str]:
    """The SSIDs that report files in ``folder`` are named by, at any depth (hidden folders
    left out)."""
    found: set[str] = set()
    for _root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if is_report_candidate(name) and (ssid := ssid_of_file_name(name)):
                found.add(ssid)
    return found


# --- Ledgers ---------------------------------------------------------------------------------
# SQLite ledgers kept beside the files, so that a re-run resumes (see ledger.py).
BULK_LEDGER_NAME: Final = ".caaspp-ledger.sqlite"
SEND_LEDGER_NAME: Final = ".caaspp-send-ledger.sqlite"
SEASON_LEDGER_NAME: Final = ".caaspp-season.sqlite"


# --- The manifest ----------------------------------------------------------------------------
MANIFEST_NAME: Final = "manifest.csv"
MANIFEST_COLUMNS: Final = ("ssid", "status", "test", "year", "language", "file", "detail", "line")


class ManifestStatus(StrEnum):
    """What a manifest line says of a report, or of a roster row without one."""

    DOWNLOADED = "downloaded"
    ALREADY_DOWNLOADED = "already_downloaded"
    NO_REPORTS = "no_reports"
    STUDENT_NOT_FOUND = "student_not_found"
    NOT_ENROLLED = "not_enrolled"
    INVALID_SSID = "invalid_ssid"
    DUPLICATE = "duplicate"
    # ETS listed the same test, year and language twice for a student: the first is kept.
    DUPLICATE_ENTRY = "duplicate_entry"
    NO_PROFILE = "no_profile"
    FAILED = "failed"
    # The run was stopped (Ctrl-C, SIGTERM) before it asked about this row: not a failure;
    # the same command run again asks.
    NOT_REACHED = "not_reached"
    # Only `caaspp split` writes these (it reuses NO_REPORTS, DUPLICATE, INVALID_SSID and
    # FAILED too): a report split out of a TOMS download, one an earlier run split, pages no
    # report could take, and a report of a student the roster does not hold.
    SPLIT = "split"
    ALREADY_SPLIT = "already_split"
    UNASSIGNED = "unassigned"
    NOT_IN_ROSTER = "not_in_roster"


_S = ManifestStatus
# The statuses bulk writes, in the order its summary lists them.
BULK_STATUSES: Final = (
    _S.DOWNLOADED,
    _S.ALREADY_DOWNLOADED,
    _S.NO_REPORTS,
    _S.STUDENT_NOT_FOUND,
    _S.NOT_ENROLLED,
    _S.INVALID_SSID,
    _S.DUPLICATE,
    _S.DUPLICATE_ENTRY,
    _S.NO_PROFILE,
    _S.FAILED,
    _S.NOT_REACHED,
)
# The statuses split writes, in the order its summary lists them.
SPLIT_STATUSES: Final = (
    _S.SPLIT,
    _S.ALREADY_SPLIT,
    _S.UNASSIGNED,
    _S.NOT_IN_ROSTER,
    _S.DUPLICATE,
    _S.NO_REPORTS,
    _S.INVALID_SSID,
    _S.FAILED,
)
# Statuses that leave a roster row for a person: the run exits 3 (see the README's exit
# codes). Every other one is a final answer that needs nobody: saved, already there, or what
# ETS said of the student (no report, not found, not enrolled, a listing repeated).
NEEDS_A_PERSON: Final = (_S.INVALID_SSID, _S.DUPLICATE, _S.NO_PROFILE, _S.FAILED)
# Statuses a manifest line can have for one report (the others are one line per roster row).
REPORT_STATUSES: Final = frozenset(
    {_S.DOWNLOADED, _S.ALREADY_DOWNLOADED, _S.DUPLICATE_ENTRY, _S.FAILED}
)


def write_manifest(
    folder: Path, rows: Iterable[Sequence[object]], on_warning: Callable[[str], None]
) -> Path:
    """Write ``manifest.csv`` (rows in :data:`MANIFEST_COLUMNS` order) into ``folder``;
    returns where it went.

    When manifest.csv cannot be replaced (a folder by that name; on Windows, open in
    Excel), the manifest goes beside it under a dated name, ``on_warning`` says so, and the
    run's work stands; ManifestError when neither can be written.
    """
    manifest = folder / MANIFEST_NAME
    data = _csv_bytes(MANIFEST_COLUMNS, rows)
    try:
        write_private_bytes(manifest, data)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        beside = manifest.with_name(f"manifest-{time.strftime('%Y%m%d-%H%M%S')}.csv")
        try:
            write_private_bytes(beside, data)
        except OSError:
            raise ManifestError(
                f"the manifest {manifest} cannot be written ({reason}), nor one beside it; "
                "every report saved is in the folder and its ledger.",
                hint="close the program holding manifest.csv (or free space), then run the "
                "same command again: it downloads nothing twice and writes the manifest.",
            ) from None
        on_warning(
            f"{manifest} cannot be replaced ({reason}): this run's manifest is {beside.name}."
        )
        return beside
    return manifest


def manifest_ssids(folder: Path) -> dict[str, str]:
    """file (a POSIX path relative to ``folder``) -> SSID, from the folder's manifest.csv;
    empty when there is none."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    mapping: dict[str, str] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                file = unneutralize_cell((row.get("file") or "").strip())
                ssid = (row.get("ssid") or "").strip()
                if file and re.fullmatch(r"\d{10}", ssid):
                    mapping[PurePosixPath(file.replace("\\", "/")).as_posix()] = ssid
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInputError(f"{path} cannot be read: {exc}.") from None
    return mapping


@dataclass(frozen=True, slots=True)
class ManifestLine:
    """One line of a folder's manifest.csv, as :func:`write_manifest` wrote it."""

    ssid: str
    status: str
    test: str
    year: str
    language: str
    file: str  # a POSIX path relative to the folder; "" for a row without a report
    detail: str
    line: int


def read_manifest(folder: Path) -> list[ManifestLine]:
    """The lines of ``folder``'s manifest.csv (empty when there is none)."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return []
    lines: list[ManifestLine] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                cells = {k: unneutralize_cell((row.get(k) or "").strip()) for k in MANIFEST_COLUMNS}
                line = cells.pop("line")
                cells["file"] = cells["file"].replace("\\", "/")
                lines.append(ManifestLine(**cells, line=int(line) if line.isdigit() else 0))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInputError(f"{path} cannot be read: {exc}.") from None
    return lines


# --- A season folder (`caaspp deliver`) -------------------------------------------------------
# The folders `caaspp deliver` keeps inside its --out folder: the reports as fetched, their
# protected copies (with the send ledger and send-report.csv), the print pack, and a dry
# run's outbox; and, at its top, the follow-up list for staff.
SEASON_REPORTS_DIR: Final = "reports"
SEASON_PROTECTED_DIR: Final = "protected"
SEASON_PRINT_DIR: Final = "print"
SEASON_OUTBOX_DIR: Final = "outbox"
FOLLOW_UP_NAME: Final = "follow-up.csv"
FOLLOW_UP_COLUMNS: Final = (
    "school",
    "grade",
    "line",
    "ssid",
    "student_name",
    "reason",
    "what_to_do",
    "detail",
)


class FollowUp(StrEnum):
    """Why a student is on the follow-up list; :attr:`advice` says what staff can do."""

    NO_EMAIL = "no_email"
    BAD_ADDRESS = "bad_address"
    REFUSED = "refused"
    HELD = "held"
    INVALID_SSID = "invalid_ssid"
    STUDENT_NOT_FOUND = "student_not_found"
    NOT_ENROLLED = "not_enrolled"
    REPORT_MISSING = "report_missing"
    FAILED = "failed"
    UNCERTAIN = "uncertain"

    @property
    def advice(self) -> str:
        return _FOLLOW_UP_ADVICE[self]


_FOLLOW_UP_ADVICE: Final = {
    FollowUp.NO_EMAIL: "no guardian email: mail the printed report (--print-pack), or add "
    "the address to the roster for the next run",
    FollowUp.BAD_ADDRESS: "the email cell is not an address: correct it in the roster, or "
    "mail the printed report",
    FollowUp.REFUSED: "the mail server refused the address for good: check it with the "
    "family; the report is in the print pack",
    FollowUp.HELD: "a record hold: nothing is sent or printed; release it in the roster "
    "only when the hold is lifted",
    FollowUp.INVALID_SSID: "the SSID is not 10 digits: correct it in the SIS export",
    FollowUp.STUDENT_NOT_FOUND: "ETS does not know this SSID: check it in CALPADS",
    FollowUp.NOT_ENROLLED: "ETS says the student is not enrolled in this LEA: check the "
    "enrollment in CALPADS",
    FollowUp.REPORT_MISSING: "still no report from ETS: check the student's tests in TOMS "
    "(not tested, or a score still pending)",
    FollowUp.FAILED: "a step failed (see detail); the next run tries again",
    FollowUp.UNCERTAIN: "a message may or may not have reached the family: look up its "
    "Message-ID in the mail server's log, then `caaspp send` with --mark-uncertain-sent or "
    "--resend-uncertain on the protected folder",
}


# The print pack (`deliver --print-pack`): one PDF per school in the print folder.
PRINT_PACK_NAME: Final = re.compile(r"^print-[^/\\]+\.pdf$")


def print_pack_name(stem: str) -> str:
    """A school's print-pack file name, from its name made safe for a file system."""
    return f"print-{stem}.pdf"


# The staff summary a dry run of `deliver --notify` writes into its outbox.
STAFF_SUMMARY_NAME: Final = "staff-summary.eml"


def write_follow_up(folder: Path, rows: Iterable[Sequence[object]]) -> Path:
    """Write ``follow-up.csv`` (rows in :data:`FOLLOW_UP_COLUMNS` order) into ``folder``."""
    path = folder / FOLLOW_UP_NAME
    write_private_bytes(path, _csv_bytes(FOLLOW_UP_COLUMNS, rows))
    return path


# --- The send report -------------------------------------------------------------------------
SEND_REPORT_NAME: Final = "send-report.csv"
SEND_REPORT_COLUMNS: Final = (
    "line",
    "ssid",
    "student_name",
    "emails",
    "sent_to",
    "language",
    "reports",
    "outcome",
    "report_message",
    "password_message",
    "detail",
    "report_message_id",
    "password_message_id",
    # Which of the family's pairs of messages (1, 2, ...) the row's message columns are
    # about; how many of the student's reports earlier pairs carried (``reports``: this
    # pair's, so a new report for a family already reached reads pair 2, 1 report, 1 earlier).
    "pair",
    "earlier_reports",
)


def write_send_report(folder: Path, rows: Iterable[Mapping[str, object]]) -> Path:
    """Write ``send-report.csv`` into ``folder`` from rows keyed by
    :data:`SEND_REPORT_COLUMNS`; returns its path."""
    path = folder / SEND_REPORT_NAME
    cells = ([row[column] for column in SEND_REPORT_COLUMNS] for row in rows)
    write_private_bytes(path, _csv_bytes(SEND_REPORT_COLUMNS, cells))
    return path


# --- The dry run's outbox -------------------------------------------------------------------
# `send --dry-run` writes each message it would send as a file: the roster line, the SSID,
# 1 for the report's message or 2 for the password's, and the kind. The password's message
# holds the password: the outbox is as private as the password sheet.
OUTBOX_MESSAGE_NAME: Final = re.compile(r"^\d{5}_\d{10}_[12]_(report|password)\.eml$")


def outbox_message_name(line: int, ssid: str, number: int, kind: str) -> str:
    """The file name of a dry run's message (see :data:`OUTBOX_MESSAGE_NAME`)."""
    return f"{line:05d}_{ssid}_{number}_{kind}.eml"


# --- The password sheet ----------------------------------------------------------------------
SHEET_COLUMNS: Final[tuple[str, ...]] = (
    "ssid",
    "file",
    "password",
    "student_name",
    "guardian_name",
    "email",
    "language",
)
_REQUIRED_SHEET_COLUMNS: Final = ("ssid", "file", "password")


@dataclass(frozen=True, slots=True)
class SheetRow:
    ssid: str
    file: str
    password: str = field(repr=False)


class PasswordSheet:
    """The CSV of passwords: read once, then only ever appended to (and fsynced).

    Cells are written through :func:`neutralize_cell`; passwords never need it, since a
    password that a spreadsheet would take for a formula is refused.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[SheetRow] = []
        self.columns: tuple[str, ...] = SHEET_COLUMNS
        self._exists = False
        self._needs_newline = False  # an edited file may end without one
        self._private = False
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            return
        except UnicodeDecodeError:
            raise BadInputError(
                f"{self.path} is not UTF-8 text: it is not a caaspp password file; it is left "
                "as it is.",
                hint="name another file with --passwords.",
            ) from None
        except OSError as exc:
            raise BadInputError(
                f"the password file {self.path} cannot be read ({exc.strerror or exc})."
            ) from None
        self._exists = True
        if not text.strip():
            return
        self._needs_newline = not text.endswith(("\n", "\r"))
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = tuple(reader.fieldnames or ())
        if not set(_REQUIRED_SHEET_COLUMNS) <= set(header):
            raise BadInputError(
                f"{self.path} is not a caaspp password file (it has no "
                f"{', '.join(_REQUIRED_SHEET_COLUMNS)} columns); it is left as it is.",
                hint="name another file with --passwords.",
            )
        self.columns = header
        for record in reader:
            password = record.get("password") or ""
            if password:
                self.rows.append(
                    SheetRow((record.get("ssid") or "").strip(), record.get("file") or "", password)
                )

    def passwords_by_ssid(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for row in self.rows:
            if row.ssid:
                found[row.ssid].add(row.password)
        return found

    def rows_by_file(self) -> dict[str, SheetRow]:
        """Rows by their ``file`` cell as written: look a path up by ``neutralize_cell(path)``."""
        return {row.file: row for row in self.rows}

    def check_writable(self) -> None:
        """BadInputError now if the sheet cannot be written, rather than once the first
        files are protected; creates nothing but a missing folder."""
        hint = "name a --passwords file in a folder you may write in."
        if not self.path.exists():
            prepare_output_dir(self.path.parent, "folder of the password file", hint)
            return
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))
        except OSError as exc:
            raise BadInputError(
                f"caaspp cannot write the password file {self.path} ({exc.strerror or exc}).",
                hint=hint,
            ) from None

    def append(self, records: Sequence[Mapping[str, str]]) -> None:
        """Append rows (dicts by column name) and fsync before returning."""
        if not records:
            return
        buffer = io.StringIO()
        if self._needs_newline:
            buffer.write("\r\n")
        writer = csv.writer(buffer)
        if not self._exists or self.path.stat().st_size == 0:
            writer.writerow(self.columns)
        for record in records:
            writer.writerow([neutralize_cell(record.get(column, "")) for column in self.columns])
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        try:
            ensure_private_dir(self.path.parent)
            fd = os.open(self.path, flags, PRIVATE_FILE_MODE)
        except OSError as exc:
            raise PasswordFileError(
                f"cannot write the password file {self.path}: {exc.strerror or exc}.",
                hint=HELD_HINT if held_by_another_program(exc) else None,
            ) from None
        try:
            if not self._private:  # ours now, or the user's: passwords stay owner-only
                with contextlib.suppress(PermissionError):
                    make_private(self.path)
                self._private = True
            view = memoryview(buffer.getvalue().encode("utf-8"))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise PasswordFileError(
                f"cannot write the password file {self.path}: {exc.strerror or exc}.",
                hint=HELD_HINT if held_by_another_program(exc) else None,
            ) from None
        finally:
            os.close(fd)
        self._exists, self._needs_newline = True, False
        for record in records:
            self.rows.append(
                SheetRow(record["ssid"], neutralize_cell(record["file"]), record["password"])
            )
