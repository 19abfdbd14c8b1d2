"""From a roster file's bytes to checked CSV records.

Settles the encoding (UTF-8 with or without BOM, UTF-16 with BOM as Excel's "Unicode Text"
writes it, or Windows-1252 as Excel's plain "CSV" writes it on US Windows) and the delimiter
(comma, semicolon, tab or bar); refuses what is not a CSV at all (an Excel or OpenDocument
workbook, a zip, a PDF, HTML, XML, binary data, UTF-32) and what is a broken one (a line
too long to be a roster line, a quote left open that swallows the lines after it). Each
refusal is one :class:`BadInputError` saying what the file is and what to do instead.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Final

from caaspp_cli.errors import BadInputError
from caaspp_cli.roster.cells import is_blank_record

__all__ = [
    "HEAD_BYTES",
    "MAX_LINE_CHARS",
    "MAX_RECORD_LINES",
    "NotUtf8Error",
    "csv_error",
    "decode_head",
    "encoding_from_head",
    "read_head",
    "read_records",
    "refuse_non_csv_text",
    "refuse_non_text",
    "sniff_delimiter",
]

HEAD_BYTES: Final = 64 * 1024  # read to tell the encoding, the delimiter and the header
MAX_LINE_CHARS: Final = 1024 * 1024  # no roster line is this long; a binary blob may be
MAX_RECORD_LINES: Final = 50  # a quoted cell running on for more lines is a quote left open
_SNIFF_RECORDS: Final = 50
_DELIMITERS: Final = ("\t", ";", ",", "|")  # on a tie, the earlier one wins
_SAVE_AS_CSV: Final = "in Excel: File > Save As > CSV UTF-8 (Comma delimited), then use that file."
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0e-\x19\x1b-\x1f\x7f]")


class _ZipKind(StrEnum):
    """What a zip archive holds, told by the names inside it."""

    XLSX = "xlsx"
    ODS = "ods"
    ZIP = "zip"


class NotUtf8Error(BadInputError):
    """Raised when a byte sequence is not UTF-8; open_roster then reads as Windows-1252."""


# --- Bytes -----------------------------------------------------------------------------------
def _open_binary(path: Path) -> io.BufferedReader:
    try:
        return path.open("rb")
    except OSError as exc:
        raise _read_error(path, exc) from None


def read_head(path: Path) -> tuple[bytes, bool]:
    """The first :data:`HEAD_BYTES` of the file, and whether that is all of it."""
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


def refuse_non_text(path: Path, head: bytes) -> None:
    """BadInputError for an empty file, or one whose first bytes mark a workbook, a zip or a
    PDF."""
    if not head.strip(b" \t\r\n"):
        raise BadInputError(
            f"{path} is empty.",
            hint="export the roster again: it needs a header line with an SSID column.",
        )
    if head.startswith(b"PK\x03\x04"):
        kind = _zip_kind(path)
        if kind is _ZipKind.XLSX:
            raise BadInputError(f"{path} is an Excel workbook, not a CSV.", hint=_SAVE_AS_CSV)
        if kind is _ZipKind.ODS:
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


def _zip_kind(path: Path) -> _ZipKind:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return _ZipKind.ZIP
    if any(n.startswith("xl/") for n in names):
        return _ZipKind.XLSX
    if "content.xml" in names and "mimetype" in names:
        return _ZipKind.ODS
    return _ZipKind.ZIP


# --- Encoding --------------------------------------------------------------------------------
def encoding_from_head(path: Path, head: bytes) -> tuple[str, int]:
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


def decode_head(path: Path, head: bytes, at_eof: bool, encoding: str) -> str:
    """The head's whole lines as text; NotUtf8Error if UTF-8 was wrong."""
    decoder = codecs.getincrementaldecoder(encoding)(_errors_for(encoding))
    try:
        text = decoder.decode(head, final=at_eof)
    except UnicodeDecodeError:
        raise NotUtf8Error(f"{path} is not valid UTF-8 text.") from None
    if not at_eof:  # the last line may be cut short: leave it to the full read
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut < 0:
            raise BadInputError(
                f"line 1 of {path} is longer than {HEAD_BYTES // 1024} KiB: this is not a roster.",
                hint="export the roster as CSV from your student information system.",
            )
        text = text[: cut + 1]
    return text


def refuse_non_csv_text(path: Path, text: str) -> None:
    """BadInputError for text that is empty, binary, a web page or XML."""
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


# --- Delimiter -------------------------------------------------------------------------------
def sniff_delimiter(text: str) -> str:
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
            records = [r for r in reader if not is_blank_record(r)][:_SNIFF_RECORDS]
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


# --- Records ---------------------------------------------------------------------------------
def read_records(
    path: Path,
    *,
    encoding: str,
    skip_bytes: int,
    header_end: int,
    shape: tuple[int, int, str],
) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each non-blank record after line ``header_end``, checked.

    ``shape`` is (columns, position of the SSID column, delimiter). The file is read from
    its start (past ``skip_bytes``) as the records are asked for, never kept whole.
    """
    delimiter = shape[2]
    raw = _open_binary(path)
    if skip_bytes:
        raw.seek(skip_bytes)
    stream = io.TextIOWrapper(raw, encoding=encoding, errors=_errors_for(encoding), newline="")
    with stream:
        reader = csv.reader(_lines(stream, path), delimiter=delimiter)
        end = 0
        try:
            for record in reader:
                start, end = end + 1, reader.line_num
                if end <= header_end:
                    continue
                if end > start:
                    _check_multiline(path, start, end, record, shape)
                if is_blank_record(record):
                    continue
                yield start, record
        except csv.Error as exc:
            raise csv_error(path, end + 1, exc) from None
        except UnicodeDecodeError:
            raise NotUtf8Error(f"{path} is not valid UTF-8 text.") from None
        except OSError as exc:
            raise _read_error(path, exc) from None


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


def csv_error(path: Path, line: int, exc: csv.Error) -> BadInputError:
    """The BadInputError for a record the csv module could not read, starting at ``line``."""
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
