"""Reading a roster: the CSV files staff export from their SIS, CALPADS or TOMS.

``open_roster(path)`` reads the file once, start to end, without keeping it: it settles the
encoding and the delimiter (:mod:`caaspp_cli.roster.text`), the header line and which column
holds what (:mod:`caaspp_cli.roster.columns`). Everything wrong with the *file* is a
:class:`BadInputError` raised there, before any work starts: an Excel workbook, binary data,
no SSID column, a quote left open that swallows the rest of the file.

Iterating the :class:`Roster` then streams one :class:`RosterRow` per student line, reading
the file again as it goes, so a 100,000-line roster costs about what a 1,000-line one does.
Everything wrong with a *row* is marked on the row and never stops the run: a blank SSID,
one Excel has mangled (scientific notation, a lost leading zero, an added ``.0``), another
row's SSID again. An SSID is never repaired (:mod:`caaspp_cli.roster.cells`): a guessed SSID
fetches another child's report.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from caaspp_cli.addresses import parse_address_cell
from caaspp_cli.errors import BadInputError
from caaspp_cli.roster.cells import (
    classify_ssid,
    parse_hold,
    parse_language,
    parse_school_code,
    strip_cell,
    unwrap_cell,
)
from caaspp_cli.roster.columns import (
    ROLES,
    RosterColumns,
    find_header,
    require_column,
    resolve_columns,
)
from caaspp_cli.roster.text import (
    NotUtf8Error,
    decode_head,
    encoding_from_head,
    read_head,
    read_records,
    refuse_non_csv_text,
    refuse_non_text,
    sniff_delimiter,
)

__all__ = [
    "Roster",
    "RosterRow",
    "RowFields",
    "RowProblem",
    "open_roster",
]


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
    held: bool = False  # a record hold: nothing of this student's is released
    hold_detail: str = ""  # a hold cell read as held though it said neither yes nor no
    fields: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the row can be fetched."""
        return self.problem is None


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
        return require_column(self.path, self.headers, self.columns, role)

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
        hold_at = at["hold"]
        has_password = "password" in self._role_index
        padding = [""] * (width + 1)
        seen = _FirstLines(self.row_count)
        for line, record in self._records():
            if len(record) != width:
                record = record[:width]
            record += padding[len(record) :]
            values = tuple(map(strip_cell, record))
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
            held, hold_detail = parse_hold(values[hold_at])
            yield RosterRow(
                line=line,
                raw_ssid=raw_ssid,
                ssid=ssid,
                problem=problem,
                detail=detail,
                first_name=first,
                last_name=last,
                display_name=f"{first} {last}".strip() if first or last else values[name_at],
                school_code=parse_school_code(values[code_at]),
                school_name=values[school_at],
                grade=unwrap_cell(values[grade_at]),
                raw_language=raw_language,
                language=parse_language(raw_language) if raw_language else None,
                guardian_name=values[guardian_at],
                emails=addresses.valid,
                invalid_emails=addresses.invalid,
                email_problem=addresses.problem,
                emails_in_names=addresses.in_names,
                password=(values[password_at] or None) if has_password else None,
                held=held,
                hold_detail=hold_detail,
                fields=RowFields(index, values),
            )

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(first line, cells) of each non-blank record after the header, checked."""
        yield from read_records(
            self.path,
            encoding=self.encoding,
            skip_bytes=self._skip_bytes,
            header_end=self._header_end,
            shape=(len(self.headers), self._role_index["ssid"], self.delimiter),
        )


# --- Opening ---------------------------------------------------------------------------------
def open_roster(
    path: Path | str,
    *,
    ssid_column: str | None = None,
    email_column: str | None = None,
    language_column: str | None = None,
    password_column: str | None = None,
    hold_column: str | None = None,
) -> Roster:
    """Check a roster file and settle how to read it; BadInputError if it cannot be used.

    Reads the whole file once, in pieces: a file-level problem anywhere (a quote left open
    at line 90,000) is reported now rather than halfway through a run. Named columns must
    exist; an ``ssid_column`` also overrides the search by header names.
    """
    path = Path(path)
    head, at_eof = read_head(path)
    refuse_non_text(path, head)
    encoding, skip = encoding_from_head(path, head)
    named = {
        "ssid": ssid_column,
        "email": email_column,
        "language": language_column,
        "password": password_column,
        "hold": hold_column,
    }
    try:
        return _open_as(path, head, at_eof, encoding, skip, named)
    except NotUtf8Error:
        # Excel's plain "CSV" on US Windows writes Windows-1252: ñ is the byte 0xF1.
        return _open_as(path, head, at_eof, "cp1252", skip, named)


def _open_as(
    path: Path,
    head: bytes,
    at_eof: bool,
    encoding: str,
    skip: int,
    named: Mapping[str, str | None],
) -> Roster:
    text = decode_head(path, head[skip:], at_eof, encoding)
    refuse_non_csv_text(path, text)
    delimiter = sniff_delimiter(text)
    header_start, header_end, headers = find_header(path, text, delimiter, named.get("ssid"))
    columns, positions = resolve_columns(path, headers, named)
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
