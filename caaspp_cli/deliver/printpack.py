"""The print pack: for families reached on paper, one PDF per school, ready to print and mail.

Each school's file (:func:`caaspp_cli.artifacts.print_pack_name`) opens with a list of its
students (grade, name, SSID, pages, the page each starts on), then every report of theirs,
ordered by grade (TK, K, 1 to 12, then anything else), last name, first name, SSID and
report. The reports' pages are copied as they are (pikepdf), not drawn again, and are not
protected: they go in an envelope. The list is drawn in Helvetica: a name it cannot show
(outside Windows-1252) is shown with '?' for the letters it lacks, the SSID always exactly.

The pack is rewritten at every run: files written atomically and owner-only inside the
print folder; a school's file from an earlier run that this run does not write is removed
(only files named as the pack names them). A report that cannot be read is returned as a
problem, never dropped silently, and the school's other reports still go in.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Final

import pikepdf

from caaspp_cli.artifacts import PRINT_PACK_NAME, print_pack_name
from caaspp_cli.fsutil import prepare_output_dir, refuse_link, write_private_bytes

_ROWS_PER_PAGE: Final = 42
_PAGE: Final = (612.0, 792.0)  # US Letter, in points
_WINDOWS_RESERVED: Final = frozenset(
    {
        "CON",
        "PRN",
        "AUX",
        "NUL",
        *(f"COM{n}" for n in range(1, 10)),
        *(f"LPT{n}" for n in range(1, 10)),
    }
)
_MAX_NAME: Final = 60


@dataclass(frozen=True)
class PrintItem:
    school: str
    grade: str
    last_name: str
    first_name: str
    ssid: str
    line: int
    file: Path  # the unprotected report
    new: bool = False  # not in an earlier pack: the list marks its student "new"


@dataclass
class SchoolPack:
    school: str
    path: Path
    students: int
    reports: int
    pages: int


@dataclass
class PrintPack:
    schools: list[SchoolPack] = field(default_factory=list)
    problems: list[tuple[PrintItem, str]] = field(default_factory=list)
    removed: int = 0  # files of an earlier pack no longer written


def grade_key(grade: str) -> tuple[int, str]:
    """TK, K, 1..12, then anything else (by its text)."""
    text = grade.strip().upper()
    if text in ("TK", "PK", "P"):
        return (-2, text)
    if text in ("K", "KN", "KG", "0"):
        return (-1, text)
    if text.isdigit():
        return (int(text), "")
    return (99, text)


def safe_stem(school: str) -> str:
    """A school's name as a file-name stem any file system takes."""
    text = unicodedata.normalize("NFC", school)
    kept = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in text)
    stem = "-".join(kept.split()).strip("._-")[:_MAX_NAME].strip("._-")
    if not stem:
        stem = "no-school"
    if stem.upper().split(".")[0] in _WINDOWS_RESERVED:
        stem = f"school-{stem}"
    return stem


def write_print_pack(folder: Path, items: Sequence[PrintItem], *, title_date: date) -> PrintPack:
    """Write one PDF per school of ``items`` into ``folder``; see the module docstring."""
    prepare_output_dir(folder, "print folder")
    refuse_link(folder)
    pack = PrintPack()
    by_school: dict[str, list[PrintItem]] = {}
    for item in items:
        by_school.setdefault(item.school.strip(), []).append(item)
    taken: set[str] = set()
    written: set[str] = set()
    for school in sorted(by_school, key=str.casefold):
        stem = safe_stem(school)
        candidate, number = stem, 1
        while candidate.casefold() in taken:
            number += 1
            candidate = f"{stem}-{number}"
        taken.add(candidate.casefold())
        name = print_pack_name(candidate)
        entry = _write_school(folder / name, school, by_school[school], title_date, pack)
        if entry is not None:
            pack.schools.append(entry)
            written.add(name)
    for old in folder.iterdir():
        if PRINT_PACK_NAME.match(old.name) and old.name not in written and not old.is_dir():
            old.unlink()
            pack.removed += 1
    return pack


def _write_school(
    path: Path, school: str, items: list[PrintItem], title_date: date, pack: PrintPack
) -> SchoolPack | None:
    ordered = sorted(
        items,
        key=lambda i: (
            grade_key(i.grade),
            i.last_name.casefold(),
            i.first_name.casefold(),
            i.ssid,
            i.file.name,
        ),
    )
    # One student's reports together, where the student first comes (two roster rows of
    # one SSID may disagree on grade or name): the list's start pages count on it.
    by_student: dict[str, list[PrintItem]] = {}
    for item in ordered:
        by_student.setdefault(item.ssid, []).append(item)
    ordered = [item for group in by_student.values() for item in group]
    sources: list[tuple[PrintItem, pikepdf.Pdf]] = []
    try:
        for item in ordered:
            try:
                refuse_link(item.file)
                source = pikepdf.open(item.file)
            except pikepdf.PasswordError:
                pack.problems.append((item, "is password-protected: the pack takes the originals"))
                continue
            except (OSError, pikepdf.PdfError) as exc:
                pack.problems.append((item, f"cannot be read: {exc}"))
                continue
            if source.is_encrypted:
                source.close()
                pack.problems.append((item, "is password-protected: the pack takes the originals"))
                continue
            sources.append((item, source))
        if not sources:
            return None
        students: list[tuple[PrintItem, int, int]] = []  # first item, pages, first page
        pages_of: dict[str, int] = {}
        first_of: dict[str, PrintItem] = {}
        new: set[str] = set()
        for item, source in sources:
            pages_of[item.ssid] = pages_of.get(item.ssid, 0) + len(source.pages)
            first_of.setdefault(item.ssid, item)
            if item.new:
                new.add(item.ssid)
        list_pages = max(1, math.ceil(len(first_of) / _ROWS_PER_PAGE))
        at = list_pages + 1
        for ssid, item in first_of.items():
            students.append((replace(item, new=ssid in new), pages_of[ssid], at))
            at += pages_of[ssid]
        out = pikepdf.new()
        _draw_list(out, school, title_date, students, list_pages)
        for _, source in sources:
            out.pages.extend(source.pages)
        buffer = io.BytesIO()
        out.save(buffer)
        total_pages = len(out.pages)
        out.close()
    finally:
        for _, source in sources:
            source.close()
    write_private_bytes(path, buffer.getvalue())
    return SchoolPack(school, path, len(first_of), len(sources), total_pages)


def _text(value: str) -> bytes:
    """A PDF literal string in WinAnsi (cp1252), '?' for what it cannot show."""
    data = unicodedata.normalize("NFC", value).encode("cp1252", errors="replace")
    return b"(" + data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _draw_list(
    pdf: pikepdf.Pdf,
    school: str,
    title_date: date,
    students: list[tuple[PrintItem, int, int]],
    list_pages: int,
) -> None:
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )
    bold = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name("/Helvetica-Bold"),
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )
    columns = (54.0, 96.0, 330.0, 420.0, 465.0, 520.0)
    new = sum(item.new for item, _, _ in students)
    for page_number in range(list_pages):
        chunk = students[page_number * _ROWS_PER_PAGE : (page_number + 1) * _ROWS_PER_PAGE]
        ops: list[bytes] = [b"BT", b"/F2 14 Tf", b"54 740 Td"]
        ops.append(_text(f"Score reports to mail: {school}") + b" Tj")
        ops += [b"/F1 10 Tf", b"0 -18 Td"]
        ops.append(
            _text(
                f"{len(students)} students ({new} new since the last pack), list page "
                f"{page_number + 1} of {list_pages}; prepared {title_date.isoformat()}. "
                "The reports follow in this order."
            )
            + b" Tj"
        )
        ops.append(b"ET")
        y = 690.0
        header = ("Grade", "Student", "SSID", "Pages", "Starts", "New")
        rows = [header] + [
            (
                item.grade,
                ", ".join(part for part in (item.last_name, item.first_name) if part),
                item.ssid,
                str(pages),
                f"p. {first}",
                "new" if item.new else "",
            )
            for item, pages, first in chunk
        ]
        for index, row in enumerate(rows):
            face = b"/F2" if index == 0 else b"/F1"
            for x, cell in zip(columns, row, strict=True):
                shown = cell if len(cell) <= 44 else cell[:43] + "..."
                ops.append(
                    b"BT "
                    + face
                    + b" 10 Tf "
                    + f"{x:.0f} {y:.0f} Td ".encode()
                    + _text(shown)
                    + b" Tj ET"
                )
            y -= 15.0
        page = pikepdf.Page(
            pikepdf.Dictionary(
                Type=pikepdf.Name.Page,
                MediaBox=pikepdf.Array([0, 0, *_PAGE]),
                Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font, F2=bold)),
                Contents=pdf.make_stream(b"\n".join(ops)),
            )
        )
        pdf.pages.append(page)
