"""Reading and checking rosters: the CSV files staff export from their SIS, CALPADS or TOMS.

``open_roster(path)`` reads the file once, start to end, without keeping it: it settles the
encoding (UTF-8 with or without BOM, UTF-16 with BOM as Excel's "Unicode Text" writes it, or
Windows-1252 as Excel's plain "CSV" writes it on US Windows), the delimiter (comma,
semicolon or tab), the header line and which column holds what. Everything wrong with the
*file* is a :class:`BadInputError` raised there, before any work starts: an Excel workbook,
binary data, no SSID column, a quote left open that swallows the rest of the file.

Iterating the :class:`Roster` then streams one :class:`RosterRow` per student line, reading
the file again as it goes, so a 100,000-line roster costs about what a 1,000-line one does.
Everything wrong with a *row* is marked on the row and never stops the run: a blank SSID,
one Excel has mangled (scientific notation, a lost leading zero, an added ``.0``), another
row's SSID again. An SSID is never repaired: a guessed SSID fetches another child's report.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Final

from caaspp_cli.addresses import parse_address_cell
from caaspp_cli.errors import BadInputError
from caaspp_cli.vocabulary import is_valid_ssid, normalize_language

__all__ = [
    "Roster",
    "RosterColumns",
    "RosterRow",
    "RowFields",
    "RowProblem",
    "classify_ssid",
    "neutralize_cell",
    "open_roster",
    "parse_emails",
]

# --- Column names ----------------------------------------------------------------------------
# Header names are compared folded: lower case, letters and digits only, so "State_ID",
# "state id" and "STATE-ID" are one name. Within a role, earlier names win over later ones.
SSID_NAMES: Final[tuple[str, ...]] = (
    "SSID",
    "Statewide Student Identifier",
    "Statewide Student ID",
    "State Student ID",
    "State Student Identifier",
    "StateStudentID",
    "State ID",
    "State ID Number",
    "State Identifier",
    "SSID Number",
    "SSID No",
    "SSID Num",
    "Student SSID",
    "Student State ID",
    "State Student Number",
    "CALPADS SSID",
    "CALPADS ID",
)
COLUMN_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "first_name": (
        "First Name",
        "Student First Name",
        "Legal First Name",
        "Student Legal First Name",
        "Given Name",
        "Student Given Name",
        "First",
        "FName",
    ),
    "last_name": (
        "Last Name",
        "Student Last Name",
        "Legal Last Name",
        "Student Legal Last Name",
        "Surname",
        "Family Name",
        "Student Surname",
        "Last",
        "LName",
    ),
    # One column holding the whole name, usually "Last, First": shown as it is.
    "name": (
        "Student Name",
        "Name",
        "Full Name",
        "Student Full Name",
        "LastFirst",
        "Last Name, First Name",
    ),
    "school_code": (
        "School Code",
        "CDS School Code",
        "School CDS Code",
        "CDS Code",
        "SchoolCode",
        "School ID",
        "Site Code",
    ),
    "school_name": ("School Name", "School", "Site Name", "School Site", "Site"),
    "grade": (
        "Grade",
        "Grade Level",
        "Current Grade",
        "Student Grade",
        "Enrollment Grade",
        "Gr",
        "Grd",
    ),
    "language": (
        "Correspondence Language",
        "Parent Correspondence Language",
        "Guardian Correspondence Language",
        "Preferred Language",
        "Parent Preferred Language",
        "Guardian Preferred Language",
        "Parent Language",
        "Guardian Language",
        "Home Language",
        "Language",
    ),
    "guardian_name": (
        "Guardian Name",
        "Parent/Guardian Name",
        "Parent Name",
        "Guardian 1 Name",
        "Parent 1 Name",
        "Primary Guardian Name",
        "Guardian",
        "Parent/Guardian",
        "Parent",
        "Contact Name",
    ),
    "email": (
        "Guardian Email",
        "Guardian Email Address",
        "Parent/Guardian Email",
        "Parent/Guardian Email Address",
        "Parent Email",
        "Parent Email Address",
        "Guardian 1 Email",
        "Parent 1 Email",
        "Primary Guardian Email",
        "Family Email",
        "Household Email",
        "Contact Email",
        "Contact Email Address",
        "Email",
        "Email Address",
    ),
}
# Roles only ever taken from a column the caller names.
EXPLICIT_ONLY_ROLES: Final = ("password",)
ROLES: Final[tuple[str, ...]] = ("ssid", *COLUMN_NAMES, *EXPLICIT_ONLY_ROLES)

# What each role is called in messages, and the option that names its column (if any).
_ROLE_LABELS: Final[dict[str, tuple[str, str | None]]] = {
    "ssid": ("SSID", "--ssid-column"),
    "first_name": ("first name", None),
    "last_name": ("last name", None),
    "name": ("student name", None),
    "school_code": ("school code", None),
    "school_name": ("school name", None),
    "grade": ("grade", None),
    "language": ("correspondence language", "--language-column"),
    "guardian_name": ("guardian name", None),
    "email": ("guardian email", "--email-column"),
    "password": ("password", "--password-column"),
}

# --- Limits ----------------------------------------------------------------------------------
HEAD_BYTES: Final = 64 * 1024  # read to tell the encoding, the delimiter and the header
MAX_LINE_CHARS: Final = 1024 * 1024  # no roster line is this long; a binary blob may be
MAX_RECORD_LINES: Final = 50  # a quoted cell running on for more lines is a quote left open
_SNIFF_RECORDS: Final = 50
_HEADER_SEARCH_RECORDS: Final = 10  # title lines an export may put above the header
_DELIMITERS: Final = ("\t", ";", ",", "|")  # on a tie, the earlier one wins
_MAX_LISTED: Final = 15


class RowProblem(StrEnum):
    """Why a roster row cannot be fetched."""

    INVALID_SSID = "invalid_ssid"
    DUPLICATE = "duplicate"


class RowFields(Mapping[str, str]):
    """A row's cells by column header, sharing one header index among all rows."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: Mapping[str, int], values: Sequence[str]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: str) -> str:
        return self._values[self._index[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"RowFields({dict(self)!r})"


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One student line of a roster.

    ``problem`` None means the row can be fetched with ``ssid``. A ``DUPLICATE`` row keeps
    its (valid) ``ssid`` so it can be shown, but must not be fetched twice; an
    ``INVALID_SSID`` row has ``ssid`` None. ``detail`` says why, in words for staff.
    """

    line: int  # 1-based line of the file where the row starts (the header is line 1)
    raw_ssid: str  # the SSID cell as it is in the file
    ssid: str | None
    problem: RowProblem | None = None
    detail: str = ""
    first_name: str = ""
    last_name: str = ""
    display_name: str = ""  # "First Last", or the single name column as it is
    school_code: str = ""
    school_name: str = ""
    grade: str = ""
    raw_language: str = ""
    language: str | None = None  # a code of vocabulary.LANGUAGES; None if blank or unknown
    guardian_name: str = ""
    emails: tuple[str, ...] = ()
    invalid_emails: tuple[str, ...] = ()
    email_problem: str = ""  # why the email cell cannot be read (then no address is taken)
    emails_in_names: tuple[str, ...] = ()  # address-like text in names/comments: not sent to
    password: str | None = field(default=None, repr=False)
    fields: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the row can be fetched."""
        return self.problem is None


@dataclass(frozen=True)
class RosterColumns:
    """The header of the column found for each role (None: the roster has none).

    ``ambiguous`` lists, for an optional role left None, the columns that matched equally
    well: caaspp does not pick one (``Roster.require`` explains it to the user).
    """

    ssid: str
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    school_code: str | None = None
    school_name: str | None = None
    grade: str | None = None
    language: str | None = None
    guardian_name: str | None = None
    email: str | None = None
    password: str | None = None
    ambiguous: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict, compare=False, hash=False
    )


class Roster:
    """A checked roster file. Iterate it for its rows; each iteration reads the file anew."""

    def __init__(
        self,
        *,
        path: Path,
        encoding: str,
        delimiter: str,
        headers: tuple[str, ...],
        header_line: int,
        columns: RosterColumns,
        positions: Mapping[str, int],
        skip_bytes: int = 0,
        header_end_line: int | None = None,
    ) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.headers = headers
        self.header_line = header_line  # usually 1; later when title lines come first
        self.columns = columns
        self.row_count = 0  # student lines (blank lines aside); set by open_roster
        self._skip_bytes = skip_bytes
        self._header_end = header_line if header_end_line is None else header_end_line
        self._index: dict[str, int] = {}
        for position, header in enumerate(headers):
            if header and header not in self._index:
                self._index[header] = position
        self._role_index = dict(positions)

    def __repr__(self) -> str:
        return (
            f"Roster({str(self.path)!r}, encoding={self.encoding!r}, "
            f"delimiter={self.delimiter!r}, rows={self.row_count})"
        )

    def require(self, role: str) -> str:
        """The header of the column for ``role``; BadInputError if there is none or several."""
        if role not in _ROLE_LABELS:
            raise ValueError(f"unknown roster role {role!r}")
        header: str | None = getattr(self.columns, role)
        if header is not None:
            return header
        label, option = _ROLE_LABELS[role]
        tied = self.columns.ambiguous.get(role)
        if tied:
            raise BadInputError(
                f"{self.path} has {len(tied)} {label} columns ({_listing(tied)}): "
                "caaspp does not choose between them.",
                hint=f"name the one to use with {option}."
                if option
                else "rename or remove the others in the file.",
            )
        names = COLUMN_NAMES.get(role, ())
        accepted = f" (accepted names: {_listing(names)})" if names else ""
        raise BadInputError(
            f"{self.path} has no {label} column{accepted}; its columns are "
            f"{_listing(self.headers)}.",
            hint=f"name the column with {option}." if option else None,
        )

    def __iter__(self) -> Iterator[RosterRow]:
        index = self._index
        width = len(self.headers)
        # Each record is padded with one blank cell past the last column: a role the roster
        # lacks points there, so the loop below needs no test per role.
        at = {role: self._role_index.get(role, width) for role in ROLES}
        ssid_at, first_at, last_at, name_at = (
            at["ssid"],
            at["first_name"],
            at["last_name"],
            at["name"],
        )
        code_at, school_at, grade_at, language_at = (
            at["school_code"],
            at["school_name"],
            at["grade"],
            at["language"],
        )
        guardian_at, email_at, password_at = at["guardian_name"], at["email"], at["password"]
        has_password = "password" in self._role_index
        padding = [""] * (width + 1)
        seen = _FirstLines(self.row_count)
        for line, record in self._records():
            if len(record) != width:
                record = record[:width]
            record += padding[len(record) :]
            values = tuple(map(_strip, record))
            raw_ssid = record[ssid_at]
            ssid, detail = classify_ssid(raw_ssid)
            problem = None
            if ssid is None:
                problem = RowProblem.INVALID_SSID
            else:
                first_line = seen.first_line(int(ssid), line)
                if first_line is not None:
                    problem, detail = RowProblem.DUPLICATE, f"same SSID as line {first_line}"
            first, last = values[first_at], values[last_at]
            raw_language = values[language_at]
            addresses = parse_address_cell(values[email_at])
            yield RosterRow(
                line=line,
                raw_ssid=raw_ssid,
                ssid=ssid,
                problem=problem,
                detail=detail,
                first_name=first,
                last_name=last,
                display_name=f"{first} {last}".strip() if first or last else values[name_at],
                school_code=_school_code(values[code_at]),
                school_name=values[school_at],
                grade=_unwrap(values[grade_at]),
                raw_language=raw_language,
                language=_language(raw_language) if raw_language else None,
                guardian_name=values[guardian_at],
                emails=addresses.valid,
                invalid_emails=addresses.invalid,
                email_problem=addresses.problem,
                emails_in_names=addresses.in_names,
                password=(values[password_at] or None) if has_password else None,
                fields=RowFields(index, values),
            )

    # --- Reading -----------------------------------------------------------------------------
    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(first line, cells) of each non-blank record after the header, checked."""
        shape = (len(self.headers), self._role_index["ssid"], self.delimiter)
        raw = _open_binary(self.path)
        if self._skip_bytes:
            raw.seek(self._skip_bytes)
        stream = io.TextIOWrapper(
            raw, encoding=self.encoding, errors=_errors_for(self.encoding), newline=""
        )
        with stream:
            reader = csv.reader(_lines(stream, self.path), delimiter=self.delimiter)
            end = 0
            try:
                for record in reader:
                    start, end = end + 1, reader.line_num
                    if end <= self._header_end:
                        continue
                    if end > start:
                        _check_multiline(self.path, start, end, record, shape)
                    if _is_blank(record):
                        continue
                    yield start, record
            except csv.Error as exc:
                raise _csv_error(self.path, end + 1, exc) from None
            except UnicodeDecodeError:
                raise _NotUtf8Error(f"{self.path} is not valid UTF-8 text.") from None
            except OSError as exc:
                raise _read_error(self.path, exc) from None


# --- Opening ---------------------------------------------------------------------------------
def open_roster(
    path: Path | str,
    *,
    ssid_column: str | None = None,
    email_column: str | None = None,
    language_column: str | None = None,
    password_column: str | None = None,
) -> Roster:
    """Check a roster file and settle how to read it; BadInputError if it cannot be used.

    Reads the whole file once, in pieces: a file-level problem anywhere (a quote left open
    at line 90,000) is reported now rather than halfway through a run. Named columns must
    exist; an ``ssid_column`` also overrides the search by header names.
    """
    path = Path(path)
    head, at_eof = _read_head(path)
    _refuse_non_text(path, head)
    encoding, skip = _encoding_from_head(path, head)
    named = {
        "ssid": ssid_column,
        "email": email_column,
        "language": language_column,
        "password": password_column,
    }
    try:
        return _open_as(path, head, at_eof, encoding, skip, named)
    except _NotUtf8Error:
        # Excel's plain "CSV" on US Windows writes Windows-1252: ñ is the byte 0xF1.
        return _open_as(path, head, at_eof, "cp1252", skip, named)


class _NotUtf8Error(BadInputError):
    """Raised when a byte sequence is not UTF-8; open_roster then reads as Windows-1252."""


def _open_as(
    path: Path,
    head: bytes,
    at_eof: bool,
    encoding: str,
    skip: int,
    named: Mapping[str, str | None],
) -> Roster:
    text = _decode_head(path, head[skip:], at_eof, encoding)
    _refuse_non_csv_text(path, text)
    delimiter = _sniff_delimiter(text)
    header_start, header_end, headers = _find_header(path, text, delimiter, named.get("ssid"))
    columns, positions = _resolve_columns(path, headers, named)
    roster = Roster(
        path=path,
        encoding=encoding,
        delimiter=delimiter,
        headers=headers,
        header_line=header_start,
        header_end_line=header_end,
        columns=columns,
        positions=positions,
        skip_bytes=skip if encoding == "cp1252" else 0,
    )
    roster.row_count = sum(1 for _ in roster._records())
    if roster.row_count == 0:
        # A run over no students would "succeed" having done nothing: an exporter that
        # wrote only the header, or the wrong sheet saved.
        raise BadInputError(
            f"{path} has a header but no student rows.",
            hint="export the roster again with its students (check the school and filters "
            "chosen in the SIS).",
        )
    return roster


def _open_binary(path: Path) -> io.BufferedReader:
    try:
        return path.open("rb")
    except OSError as exc:
        raise _read_error(path, exc) from None


def _read_head(path: Path) -> tuple[bytes, bool]:
    if path.is_dir():
        raise BadInputError(
            f"{path} is a folder, not a roster file.",
            hint="give the path of the roster's .csv file.",
        )
    with _open_binary(path) as handle:
        try:
            head = handle.read(HEAD_BYTES)
            at_eof = not handle.peek(1)
        except OSError as exc:
            raise _read_error(path, exc) from None
    return head, at_eof


def _read_error(path: Path, exc: OSError) -> BadInputError:
    if isinstance(exc, FileNotFoundError):
        return BadInputError(f"there is no file {path}.", hint="check the roster's path.")
    if isinstance(exc, IsADirectoryError):
        return BadInputError(
            f"{path} is a folder, not a roster file.",
            hint="give the path of the roster's .csv file.",
        )
    if isinstance(exc, PermissionError):
        return BadInputError(
            f"caaspp may not read {path} (permission denied).",
            hint="copy the roster somewhere you can read it, or fix its permissions.",
        )
    reason = exc.strerror or str(exc)
    return BadInputError(f"{path} cannot be read: {reason}.")


_SAVE_AS_CSV: Final = "in Excel: File > Save As > CSV UTF-8 (Comma delimited), then use that file."


def _refuse_non_text(path: Path, head: bytes) -> None:
    if not head.strip(b" \t\r\n"):
        raise BadInputError(
            f"{path} is empty.",
            hint="export the roster again: it needs a header line with an SSID column.",
        )
    if head.startswith(b"PK\x03\x04"):
        kind = _zip_kind(path)
        if kind == "xlsx":
            raise BadInputError(f"{path} is an Excel workbook, not a CSV.", hint=_SAVE_AS_CSV)
        if kind == "ods":
            raise BadInputError(
                f"{path} is an OpenDocument spreadsheet, not a CSV.",
                hint="in LibreOffice: File > Save As > Text CSV, then use that file.",
            )
        raise BadInputError(
            f"{path} is a zip archive, not a CSV.",
            hint="extract the roster's .csv file from it first.",
        )
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise BadInputError(f"{path} is an Excel workbook (.xls), not a CSV.", hint=_SAVE_AS_CSV)
    if head.startswith(b"%PDF-"):
        raise BadInputError(
            f"{path} is a PDF, not a CSV.",
            hint="export the roster from your student information system as CSV.",
        )


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return "zip"
    if any(n.startswith("xl/") for n in names):
        return "xlsx"
    if "content.xml" in names and "mimetype" in names:
        return "ods"
    return "zip"


def _encoding_from_head(path: Path, head: bytes) -> tuple[str, int]:
    """The codec to try first, and how many BOM bytes a fallback to cp1252 must skip."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", len(codecs.BOM_UTF8)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise BadInputError(
            f"{path} is UTF-32 text, which caaspp does not read.", hint=_SAVE_AS_CSV
        )
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", 0
    if b"\x00" in head:
        sample = head[:4096]
        even, odd = sample[0::2], sample[1::2]
        # ASCII text in UTF-16 without a BOM: every other byte is zero.
        if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le", 0
        if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be", 0
        raise BadInputError(
            f"{path} contains binary data, not text: it is not a CSV.",
            hint="export the roster as CSV from your student information system, or "
            + _SAVE_AS_CSV,
        )
    return "utf-8", 0


def _errors_for(encoding: str) -> str:
    # UTF-8 is tried strictly, so that a Windows-1252 file is recognised as such; the
    # last resort encodings replace what they cannot read (only a name could suffer).
    return "strict" if encoding.startswith("utf-8") else "replace"


def _decode_head(path: Path, head: bytes, at_eof: bool, encoding: str) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(_errors_for(encoding))
    try:
        text = decoder.decode(head, final=at_eof)
    except UnicodeDecodeError:
        raise _NotUtf8Error(f"{path} is not valid UTF-8 text.") from None
    if not at_eof:  # the last line may be cut short: leave it to the full read
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut < 0:
            raise BadInputError(
                f"line 1 of {path} is longer than {HEAD_BYTES // 1024} KiB: this is not a roster.",
                hint="export the roster as CSV from your student information system.",
            )
        text = text[: cut + 1]
    return text


_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0e-\x19\x1b-\x1f\x7f]")


def _refuse_non_csv_text(path: Path, text: str) -> None:
    if not text.strip(" \t\r\n\x1a\ufeff"):
        raise BadInputError(
            f"{path} is empty.",
            hint="export the roster again: it needs a header line with an SSID column.",
        )
    controls = len(_CONTROL.findall(text))
    if controls >= 8 and controls > 0.02 * len(text):
        raise BadInputError(
            f"{path} contains binary data, not text: it is not a CSV.",
            hint="export the roster as CSV from your student information system, or "
            + _SAVE_AS_CSV,
        )
    start = text.lstrip(" \t\r\n\ufeff")[:100].lower()
    if start.startswith(("<!doctype html", "<html", "<table")):
        raise BadInputError(
            f"{path} is a web page (HTML), not a CSV, even if its name says otherwise.",
            hint="open it in Excel, then File > Save As > CSV UTF-8 (Comma delimited).",
        )
    if start.startswith("<?xml"):
        raise BadInputError(
            f"{path} is an XML file (perhaps an Excel XML spreadsheet), not a CSV.",
            hint="open it in Excel, then File > Save As > CSV UTF-8 (Comma delimited).",
        )


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the most consistent columns.

    csv.Sniffer guesses from character frequencies and is easily fooled by names like
    "Lopez, Maria"; here each candidate parses the sample (quotes respected) and the one
    under which the lines, header first, agree on a column count of two or more wins.
    """
    excel_hint = re.match(r"sep=(.)\r?\n", text, re.IGNORECASE)  # Excel's own first line
    if excel_hint and excel_hint.group(1) in _DELIMITERS:
        return excel_hint.group(1)
    best: tuple[bool, float, int, int] | None = None
    chosen = ","
    for order, delimiter in enumerate(_DELIMITERS):
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            records = [r for r in reader if not _is_blank(r)][:_SNIFF_RECORDS]
        except csv.Error:
            continue
        if not records:
            continue
        counts = Counter(len(r) for r in records)
        width, frequency = max(counts.items(), key=lambda item: (item[1], item[0]))
        if width < 2:
            continue
        score = (len(records[0]) == width, frequency / len(records), width, -order)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _find_header(
    path: Path, text: str, delimiter: str, ssid_column: str | None
) -> tuple[int, int, tuple[str, ...]]:
    """(first line, last line, cells) of the header: the first record naming an SSID
    column, allowing a few title lines above it."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, int, tuple[str, ...]]] = []
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if _is_blank(record):
                continue
            records.append((start, end, tuple(_strip(cell) for cell in record)))
            if len(records) == _HEADER_SEARCH_RECORDS:
                break
    except csv.Error as exc:
        raise _csv_error(path, end + 1, exc) from None
    if not records:
        raise BadInputError(
            f"{path} is empty.", hint="export the roster again: it needs a header line."
        )
    if ssid_column is not None:
        named = [found for found in records if _named_matches(found[2], ssid_column)]
        if named:
            return named[0]
    else:
        # The best-named SSID column marks the header, so that a title line such as
        # "SSID list, spring 2025" above it is not taken for one.
        tiers = [
            (min(tier for tier, _ in candidates), order)
            for order, found in enumerate(records)
            if (candidates := _ssid_candidates(found[2]))
        ]
        if tiers:
            return records[min(tiers)[1]]
    first_line, _, headers = records[0]
    if ssid_column is not None:
        _find_named(path, headers, ssid_column, "ssid")  # raises, naming the headers found
    holding_ssid = next((cell for cell in headers if is_valid_ssid(cell)), None)
    if holding_ssid is not None:
        raise BadInputError(
            f"line {first_line} of {path} holds an SSID ({holding_ssid}) where the column "
            "names belong: the file has no header line.",
            hint="add a first line naming the columns, e.g. SSID,First Name,Last Name.",
        )
    raise BadInputError(
        f"{path} has no SSID column; its columns are {_listing(headers)}.",
        hint="name the column with --ssid-column, or head it with one of "
        f"{_listing(SSID_NAMES[:5])} (or another usual name of the SSID).",
    )


# --- Columns ---------------------------------------------------------------------------------
def _fold(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


_PARENTHESES: Final = re.compile(r"\(([^()]*)\)")


def _header_keys(header: str) -> set[str]:
    """The folded names a header answers to: "Statewide Student Identifier (SSID)" is
    both "statewidestudentidentifier" and "ssid"."""
    keys = {_fold(header), _fold(_PARENTHESES.sub(" ", header))}
    keys.update(_fold(inner) for inner in _PARENTHESES.findall(header))
    keys.discard("")
    return keys


def _words(header: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", header)}


_SSID_KEYS: Final = frozenset(_fold(name) for name in SSID_NAMES)
_RANKS: Final[dict[str, dict[str, int]]] = {
    role: {_fold(name): rank for rank, name in reversed(list(enumerate(names)))}
    for role, names in COLUMN_NAMES.items()
}


def _ssid_candidates(headers: Sequence[str]) -> list[tuple[int, int]]:
    """(tier, position) of each column that looks like the SSID: tier 0 is "SSID" itself,
    1 another accepted name, 2 a header with the word SSID in it."""
    found: list[tuple[int, int]] = []
    for position, header in enumerate(headers):
        keys = _header_keys(header)
        if "ssid" in keys:
            found.append((0, position))
        elif keys & _SSID_KEYS:
            found.append((1, position))
        elif "ssid" in _words(header):
            found.append((2, position))
    return found


def _named_matches(headers: Sequence[str], name: str) -> list[int]:
    wanted = name.strip()
    matches = [i for i, h in enumerate(headers) if h == wanted]
    if not matches and _fold(wanted):
        matches = [i for i, h in enumerate(headers) if _fold(h) == _fold(wanted)]
    return matches


def _find_named(path: Path, headers: Sequence[str], name: str, role: str) -> int:
    option = _ROLE_LABELS[role][1]
    matches = _named_matches(headers, name)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise BadInputError(
            f"{path} has no column named {name!r}; its columns are {_listing(headers)}.",
            hint=f"give {option} one of those names.",
        )
    raise BadInputError(
        f"{path} has {len(matches)} columns named {name!r} (columns "
        + ", ".join(str(i + 1) for i in matches)
        + ").",
        hint="rename all but one of them in the file.",
    )


def _resolve_columns(
    path: Path, headers: tuple[str, ...], named: Mapping[str, str | None]
) -> tuple[RosterColumns, dict[str, int]]:
    chosen: dict[str, int] = {}
    for role, name in named.items():
        if name is not None:
            chosen[role] = _find_named(path, headers, name, role)
    if "ssid" not in chosen:
        candidates = _ssid_candidates(headers)
        best_tier = min(tier for tier, _ in candidates)
        best = [position for tier, position in candidates if tier == best_tier]
        if len(best) > 1:
            raise BadInputError(
                f"{path} has {len(best)} columns that could hold the SSID "
                f"({_listing([headers[i] for i in best])}).",
                hint="name the one to use with --ssid-column.",
            )
        chosen["ssid"] = best[0]
    taken = set(chosen.values())
    ambiguous: dict[str, tuple[str, ...]] = {}
    for role, ranks in _RANKS.items():
        if role in chosen:
            continue
        ranked = [
            (min(ranks[key] for key in keys), position)
            for position, header in enumerate(headers)
            if position not in taken and (keys := _header_keys(header) & ranks.keys())
        ]
        if not ranked:
            continue
        top = min(rank for rank, _ in ranked)
        best = [position for rank, position in ranked if rank == top]
        if len(best) == 1:
            chosen[role] = best[0]
            taken.add(best[0])
        else:
            ambiguous[role] = tuple(headers[i] for i in best)
    found = {role: headers[position] for role, position in chosen.items() if role != "ssid"}
    columns = RosterColumns(ssid=headers[chosen["ssid"]], ambiguous=ambiguous, **found)
    return columns, chosen


# --- Cells -----------------------------------------------------------------------------------
# Beside spaces (the non-breaking one too): zero-width characters, a BOM, DOS's end of file.
_INVISIBLE: Final = "\u200b\u200c\u200d\u2060\ufeff\x1a"
_EDGES: Final = re.compile(f"^[\\s{_INVISIBLE}]+|[\\s{_INVISIBLE}]+$")
_QUOTE_PAIRS: Final = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}
_WRAPPERS: Final = frozenset("=" + "".join(_QUOTE_PAIRS))
_EXCEL_TEXT: Final = re.compile(r'=\s*"(.*)"', re.DOTALL)  # ="0123456789"
_SCIENTIFIC: Final = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]*)?[eE][+-]?[0-9]+")
_DECIMAL: Final = re.compile(r"[0-9]+[.,]([0-9]+)")
_GROUPED: Final = re.compile(r"[0-9]{1,3}(?:[,.\u00a0\u202f ][0-9]{3})+")
_REEXPORT: Final = "re-export the roster with the SSID column formatted as Text"


def _strip(value: str) -> str:
    text = value.strip()
    if text and (text[0] in _INVISIBLE or text[-1] in _INVISIBLE):
        return _EDGES.sub("", text)
    return text


def _is_blank(record: Sequence[str]) -> bool:
    return not any(map(_strip, record))


def _unwrap(value: str) -> str:
    """A cell without what only wraps it: spaces, quotes, Excel's ="..." text form, and the
    apostrophe Excel uses to keep a number as text."""
    text = _strip(value)
    while text and text[0] in _WRAPPERS:
        excel = _EXCEL_TEXT.fullmatch(text)
        if excel:
            text = _strip(excel.group(1))
        elif len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
            text = _strip(text[1:-1])
        elif text[0] == "'":
            text = _strip(text[1:])
        else:
            break
    return text


def _shown(text: str) -> str:
    return text if len(text) <= 30 else text[:29] + "…"


def classify_ssid(value: str) -> tuple[str | None, str]:
    """(ssid, "") for a cell holding an SSID, else (None, why not) in words for staff.

    Only what surrounds the ten digits is taken off (spaces, quotes, ``="..."``); a cell
    that needs a digit added, dropped or converted is refused, never repaired.
    """
    if is_valid_ssid(value):
        return value, ""
    text = _unwrap(value)
    if not text:
        return None, "blank SSID"
    if is_valid_ssid(text):
        return text, ""
    shown = _shown(text)
    if _SCIENTIFIC.fullmatch(text):
        return None, (
            f"Excel turned the SSID into a number in scientific notation ({shown}), so digits "
            f"may be lost; {_REEXPORT}"
        )
    decimal = _DECIMAL.fullmatch(text)
    if decimal:
        if set(decimal.group(1)) == {"0"}:
            return None, f"Excel added a decimal part to the SSID ({shown}); {_REEXPORT}"
        return None, f"the SSID is a decimal number ({shown}); an SSID is 10 digits"
    if _GROUPED.fullmatch(text):
        return None, f"Excel added thousands separators to the SSID ({shown}); {_REEXPORT}"
    if text.isascii() and text.isdigit():
        digits = len(text)
        if digits == 9:
            return None, (
                f"the SSID has 9 digits ({shown}): a leading zero was probably lost to an "
                f"Excel number format; {_REEXPORT}"
            )
        if digits < 9:
            return None, (
                f"the SSID has {digits} digits ({shown}): leading zeros were probably lost to "
                "an Excel number format, or this is not an SSID"
            )
        return None, f"the SSID has {digits} digits ({shown}); an SSID has exactly 10"
    odd = list(dict.fromkeys(ch for ch in text if ch not in "0123456789"))
    named = ", ".join(repr(ch) for ch in odd[:3]) + (", …" if len(odd) > 3 else "")
    return None, f"the SSID ({shown}) contains characters other than digits: {named}"


def _school_code(value: str) -> str:
    code = _unwrap(value)
    # A 14-digit CDS code is county (2) + district (5) + school (7): the school's is the end.
    if len(code) == 14 and code.isascii() and code.isdigit():
        return code[7:]
    return code


@lru_cache(maxsize=512)
def _language(value: str) -> str | None:
    return normalize_language(value)


def parse_emails(cell: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(valid, invalid) addresses of a guardian email cell; nothing for an ambiguous cell
    (see :func:`caaspp_cli.addresses.parse_address_cell`, which also says why)."""
    read = parse_address_cell(_strip(cell))
    return read.valid, read.invalid


_DANGEROUS_START: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralize_cell(value: str) -> str:
    """A cell safe to write into a CSV that staff will open in a spreadsheet.

    A leading ``=``, ``+``, ``-``, ``@``, tab or carriage return would make Excel read the
    cell as a formula (OWASP "CSV injection"); a leading apostrophe makes it text. A
    negative number gets one too: it is shown as text, which is harmless in our files.
    """
    return "'" + value if value.startswith(_DANGEROUS_START) else value


# --- Reading helpers -------------------------------------------------------------------------
def _lines(stream: io.TextIOWrapper, path: Path) -> Iterator[str]:
    """The lines of a stream, refusing one so long that it cannot be a roster line (the
    limit also keeps a binary blob from being read into memory whole)."""
    number = 0
    while True:
        line = stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise BadInputError(
                f"line {number} of {path} is longer than {MAX_LINE_CHARS // (1024 * 1024)} "
                "MiB: this is not a roster.",
                hint="export the roster as CSV from your student information system.",
            )
        yield line


def _check_multiline(
    path: Path,
    start: int,
    end: int,
    record: Sequence[str],
    shape: tuple[int, int, str],
) -> None:
    """Refuse a record whose quoted cell swallowed the lines after it.

    ``shape`` is (columns, position of the SSID column, delimiter). A cell may hold a line
    break (an address), but not a line shaped like a roster row, with an SSID where the SSID
    column is: those are students the stray quote hid.
    """
    width, ssid_at, delimiter = shape
    swallowed = width == 1 or end - start + 1 > MAX_RECORD_LINES
    for cell in record:
        if swallowed:
            break
        if "\n" in cell or "\r" in cell:
            swallowed = any(
                _looks_like_row(line, width, ssid_at, delimiter) for line in cell.splitlines()[1:]
            )
    if swallowed:
        raise BadInputError(
            f'line {start} of {path} opens a quote (") that is not closed, so the lines '
            f"after it (to line {end}) read as one cell.",
            hint=f"close or remove the stray quote on line {start}, then save the file again.",
        )


def _looks_like_row(line: str, width: int, ssid_at: int, delimiter: str) -> bool:
    if line.count(delimiter) < width - 1:
        return False
    try:
        cells = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return False
    return len(cells) >= width and any(ch.isdigit() for ch in cells[ssid_at])


def _csv_error(path: Path, line: int, exc: csv.Error) -> BadInputError:
    text = str(exc)
    if "field larger than field limit" in text:
        return BadInputError(
            f"line {line} of {path} has a cell longer than {csv.field_size_limit()} "
            'characters: probably a quote (") opened there is never closed.',
            hint=f"close or remove the stray quote on line {line}, then save the file again.",
        )
    return BadInputError(
        f"line {line} of {path} cannot be read as CSV ({text}).",
        hint="fix that line, then save the file again.",
    )


def _listing(names: Sequence[str]) -> str:
    shown = [repr(n) if n else "(blank)" for n in names[:_MAX_LISTED]]
    if len(names) > _MAX_LISTED:
        shown.append(f"and {len(names) - _MAX_LISTED} more")
    return ", ".join(shown) if shown else "(none)"


class _FirstLines:
    """The line each SSID was first seen on, in one 8-byte slot per SSID.

    An open-addressing table of ``ssid << 30 | line`` in an array: a dict of ints would
    cost over 100 bytes an entry, and a big roster's memory must stay flat.
    """

    __slots__ = ("_count", "_shift", "_slots")
    _LINE_BITS: Final = 30
    _LINE_MASK: Final = (1 << 30) - 1

    def __init__(self, expected: int = 0) -> None:
        size = 1024
        while size * 3 < expected * 4:  # at most three quarters full
            size *= 2
        self._allocate(size)

    def _allocate(self, size: int) -> None:
        self._slots = array("Q", [0]) * size
        self._shift = 64 - (size.bit_length() - 1)
        self._count = 0

    def first_line(self, ssid: int, line: int) -> int | None:
        """The line recorded for ``ssid``, or None after recording ``line`` for it."""
        if not 0 < line <= self._LINE_MASK:
            raise BadInputError("the roster has more than a billion lines: it is not a roster.")
        slots = self._slots
        mask = len(slots) - 1
        slot = ((ssid * 0x9E3779B97F4A7C15) & 0xFFFF_FFFF_FFFF_FFFF) >> self._shift
        while packed := slots[slot]:
            if packed >> self._LINE_BITS == ssid:
                return int(packed & self._LINE_MASK)
            slot = (slot + 1) & mask
        slots[slot] = (ssid << self._LINE_BITS) | line
        self._count += 1
        if self._count * 4 > len(slots) * 3:
            self._grow()
        return None

    def _grow(self) -> None:
        old = self._slots
        self._allocate(len(old) * 2)
        for packed in old:
            if packed:
                self.first_line(packed >> self._LINE_BITS, packed & self._LINE_MASK)
