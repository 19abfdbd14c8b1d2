"""Properties, over inputs hypothesis makes up: reading rosters, and naming report files.

- Any bytes given as a roster give rows or one BadInputError, never another exception.
- The SSID classifier never guesses: an SSID it accepts is the ten digits of the cell, with
  nothing around them but what only wraps them (spaces, quotes, Excel's ``="..."``).
- A roster written in any encoding and delimiter Excel uses reads back the same.
- Whatever the roster holds and whatever valid ``--layout`` is given, every report path
  stays inside the output folder, is made of safe names (non-empty, no ``..``, no
  separator, bounded length, acceptable to Windows), and two reports never share a path.
"""

from __future__ import annotations

import csv
import io
import ntpath
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from caaspp_cli.errors import BadInputError, ExitCode, LayoutError
from caaspp_cli.fetch.layout import (
    MAX_PART,
    REPORT_FIELDS,
    REQUIRED_FIELDS,
    ROSTER_FIELDS,
    Layout,
    safe_component,
)
from caaspp_cli.roster.cells import classify_ssid
from caaspp_cli.roster.read import open_roster
from caaspp_cli.vocabulary import LANGUAGES, TEST_CODES

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every example of a module (tmp_path would be shared by them anyway)."""
    return tmp_path_factory.mktemp("properties")


def _scratch_file(folder: Path, content: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, suffix=".csv")
    with open(fd, "wb") as handle:
        handle.write(content)
    return Path(name)


# --- Any bytes ---------------------------------------------------------------------------------
FRAGMENTS = [
    b"SSID",
    b"State ID",
    b"First Name",
    b"Guardian Email",
    b",",
    b";",
    b"\t",
    b"|",
    b'"',
    b"'",
    b"=",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"1000000001",
    b"0123456789",
    b"123456789",
    b"1.23457E+09",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\x00",
    b"\xf1",
    b"\xc3\xb1",
    b"\xe2\x80\x8b",
    b"sep=;",
    b"PK\x03\x04",
    b"%PDF-",
    b"<html>",
    b"\x1a",
    b"\xed\xa0\x80",
]
roster_like_bytes = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join)


@SETTINGS
@given(
    st.binary(max_size=600)
    | roster_like_bytes
    | st.text(max_size=300).map(lambda text: text.encode("utf-16"))
)
def test_any_bytes_give_rows_or_one_bad_input_error(scratch: Path, content: bytes) -> None:
    path = _scratch_file(scratch, content)
    try:
        roster = open_roster(path)
    except BadInputError as error:
        assert error.exit_code == ExitCode.BAD_INPUT
        assert error.message and "\n" not in error.message
        path.unlink()
        return
    rows = list(roster)
    assert len(rows) == roster.row_count
    assert [row.line for row in rows] == sorted({row.line for row in rows})
    for row in rows:
        assert (row.ssid is not None) or row.detail  # a row is fetched or says why not
        if row.ok:
            assert row.ssid is not None and len(row.ssid) == 10 and row.ssid.isascii()
    assert list(roster) == rows  # a second reading gives the same rows
    path.unlink()


# --- The SSID classifier -----------------------------------------------------------------------
WRAPPERS = set("\"'=\u201c\u201d\u2018\u2019\u200b\u200c\u200d\u2060\ufeff\x1a")
digits = st.text(alphabet="0123456789", min_size=8, max_size=12)
around = st.text(alphabet=" \t\"'=\u201c\u201d\u200b\ufeff\xa0.,+-eE", max_size=4)
lookalikes = st.text(alphabet="0123456789\u0660\u0661\uff10\uff11\u00b2\u00b9 .,-", max_size=12)
cells = st.one_of(
    st.text(),
    st.tuples(around, digits, around).map("".join),
    st.tuples(around, lookalikes, around).map("".join),
    st.tuples(digits, st.sampled_from([".0", ".00", "E+09", ",0", " 1"])).map("".join),
    digits.map(lambda d: f' ="{d}" '),
)


@SETTINGS
@given(cells)
def test_the_ssid_classifier_never_guesses(cell: str) -> None:
    ssid, reason = classify_ssid(cell)
    if ssid is None:
        assert reason
        return
    assert reason == ""
    assert len(ssid) == 10 and all(ch in "0123456789" for ch in ssid)
    # The ten digits are in the cell as they are, and all around them only wraps them.
    at = cell.find(ssid)
    assert at >= 0
    rest = cell[:at] + cell[at + 10 :]
    assert all(ch in WRAPPERS or ch.isspace() for ch in rest), rest


# --- Rosters written as Excel and SIS exports write them ---------------------------------------
names = st.text(
    alphabet=st.characters(codec="cp1252", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Nd")),
    max_size=24,
)
multi_line = st.lists(names, min_size=1, max_size=3).map("\n".join)
emails = st.from_regex(
    r"[a-z]{1,8}(\.[a-z]{1,5})?@[a-z]{2,8}\.(org|net|k12\.ca\.us)", fullmatch=True
)
HEADER = [
    "SSID",
    "First Name",
    "Last Name",
    "School Name",
    "Grade",
    "Guardian Email",
    "Correspondence Language",
]
student_rows = st.lists(
    st.tuples(
        st.from_regex(r"[0-9]{10}", fullmatch=True),
        names,
        names,
        multi_line,
        st.sampled_from(["K", "1", "05", "11", "TK"]),
        emails,
        st.sampled_from([*LANGUAGES, *LANGUAGES.values()]),
    ),
    min_size=1,  # a roster without students is refused (tested apart)
    max_size=25,
    unique_by=lambda row: row[0],
)


@settings(SETTINGS, max_examples=200)
@given(
    rows=student_rows,
    delimiter=st.sampled_from([",", ";", "\t"]),
    ending=st.sampled_from(["\r\n", "\n"]),
    encoding=st.sampled_from(
        ["utf-8", "utf-8-sig", "cp1252", "utf-16", "utf-16-le", "utf-16-be-bom"]
    ),
    excel_sep_line=st.booleans(),
)
def test_a_roster_reads_back_in_every_encoding_and_delimiter(
    scratch: Path,
    rows: list[tuple[str, ...]],
    delimiter: str,
    ending: str,
    encoding: str,
    excel_sep_line: bool,
) -> None:
    buffer = io.StringIO()
    if excel_sep_line:
        buffer.write(f"sep={delimiter}{ending}")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=ending)
    writer.writerow(HEADER)
    writer.writerows(rows)
    text = buffer.getvalue()
    if encoding == "utf-16-be-bom":
        content = b"\xfe\xff" + text.encode("utf-16-be")
    else:
        content = text.encode(encoding)
    if encoding == "cp1252" and not content.isascii():
        # Windows-1252 bytes that are also UTF-8 ("Ã©" is "é") read as UTF-8, as they should:
        # no real name looks like that, and real UTF-8 files are far more common.
        try:
            content.decode("utf-8")
            assume(False)
        except UnicodeDecodeError:
            pass
    path = _scratch_file(scratch, content)

    roster = open_roster(path)
    read = list(roster)

    assert [row.ssid for row in read] == [row[0] for row in rows]
    assert all(row.ok for row in read)
    for row, (_, first, last, school, grade, email, language) in zip(read, rows, strict=True):
        assert (row.first_name, row.last_name) == (first.strip(), last.strip())
        assert row.school_name == school.strip()
        assert row.grade == grade
        assert row.emails == (email,)
        assert row.language == (
            language
            if language in LANGUAGES
            else next(c for c, n in LANGUAGES.items() if n == language)
        )
    if rows:
        assert roster.delimiter == delimiter
    path.unlink()


# --- Report paths from --layout ----------------------------------------------------------------
DANGEROUS = [
    "",
    " ",
    ".",
    "..",
    "...",
    "../..",
    "../../etc/passwd",
    "..\\..\\Windows\\System32",
    "/",
    "\\",
    "/abs/path",
    "C:\\Users",
    "C:",
    "a/b",
    "a\\b",
    "\x00",
    "a\x00b",
    "\x1b[2J",
    "CON",
    "con",
    "Con.txt",
    "CON .txt",
    "NUL.tar.gz",
    "AUX",
    "PRN",
    "COM1",
    "COM\u00b9",
    "LPT9",
    "LPT\u00b3.pdf",
    "CONIN$",
    "CONOUT$",
    "com0",
    "lpt10",
    "CON ",
    " . . ",
    "trailing.",
    "trailing ",
    ".hidden",
    ".caaspp-x.part",
    "~",
    "*",
    "?",
    '<>:"|',
    "\u202eevil",
    "\ud800",
    "e\u0301",
    "\uff0e\uff0e",
    "\u2024\u2024",
    "\u3000",
    "\t\n\r",
    "🙂" * 80,
    "王" * 200,
    "a" * 300,
    "É" * 130,
    "\x85",
    "\u2028",
]
values = st.one_of(st.sampled_from(DANGEROUS), st.text(), st.text(min_size=100, max_size=400))
FIELDS = sorted({*REPORT_FIELDS, *ROSTER_FIELDS, "guardian_email", "district"})
OPTIONAL = [field for field in FIELDS if field not in REQUIRED_FIELDS]
literals = st.text(alphabet=st.characters(exclude_characters="{}/\\"), max_size=12)


@st.composite
def templates(draw: st.DrawFn) -> str:
    """A --layout template: folders and a file name, literal text between placeholders,
    with the four fields that tell reports apart somewhere."""
    fields = draw(st.lists(st.sampled_from(OPTIONAL), max_size=5)) + list(REQUIRED_FIELDS)
    fields = draw(st.permutations(fields))
    pieces = [draw(literals) + "{" + field + "}" for field in fields]
    separators = [draw(st.sampled_from(["", "", "/", "_", "-", " ", "."])) for _ in pieces]
    template = "".join(p + s for p, s in zip(pieces, separators, strict=True))
    return template + draw(st.sampled_from(["", ".pdf", ".PDF", "_report.pdf"]))


def _layout(template: str) -> Layout:
    try:
        return Layout(template, FIELDS)
    except BadInputError:
        assume(False)
        raise


RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "CONIN$",
    "CONOUT$",
    *(f"{d}{n}" for d in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"),
}


def _windows_safe(name: str) -> bool:
    if any(ch in '<>:"/\\|?*' or ord(ch) < 32 for ch in name):
        return False
    if name.endswith((" ", ".")) or name.partition(".")[0].rstrip(" ").upper() in RESERVED:
        return False
    reserved = getattr(ntpath, "isreserved", None)  # Python 3.13 and later
    return not (reserved is not None and reserved(name))


@SETTINGS
@given(template=templates(), row=st.fixed_dictionaries({f: values for f in FIELDS}))
def test_a_report_path_stays_inside_the_folder_and_is_safe_everywhere(
    scratch: Path, template: str, row: dict[str, str]
) -> None:
    out = scratch / "out"
    layout = _layout(template)
    try:
        relative = layout.relative_path(row)
    except LayoutError:
        # Refused rather than cut, and only when a field that tells reports apart is longer
        # than an SSID, test, year or language code ever is.
        room = {"ssid": 10, "test": 10, "year": 4, "language": 10}
        assert any(len(safe_component(str(row[f]))) > room[f] for f in REQUIRED_FIELDS)
        return

    assert not relative.is_absolute()
    assert (out / relative).resolve().is_relative_to(out.resolve())
    assert relative.parts
    for name in relative.parts:
        assert name and name not in (".", "..") and not name.startswith(".")
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert len(name) <= 150 and len(name.encode("utf-8")) <= 255
        assert _windows_safe(name), name
    assert relative.name.lower().endswith(".pdf")
    # And the file system takes it: made for real, then removed.
    path = out / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    path.unlink()


reports = st.fixed_dictionaries(
    {
        "ssid": st.from_regex(r"[0-9]{10}", fullmatch=True),
        "test": st.sampled_from(TEST_CODES),
        "year": st.integers(2015, 2030),
        "language": st.sampled_from(list(LANGUAGES)),
    }
)


@SETTINGS
@given(
    template=templates(),
    row=st.fixed_dictionaries({f: values for f in OPTIONAL}),
    one=reports,
    other=reports,
)
def test_two_reports_never_share_a_path(
    template: str, row: dict[str, str], one: dict[str, object], other: dict[str, object]
) -> None:
    assume(one != other)
    layout = _layout(template)
    first = layout.relative_path({**row, **one})
    second = layout.relative_path({**row, **other})
    # Not even on a file system that ignores case (Windows, macOS).
    assert str(first).casefold() != str(second).casefold()


# Fixed text of any length, up to well past the longest name a file system takes.
long_literals = st.one_of(
    literals,
    st.integers(0, 200).map(lambda n: "r" * n),
    st.text(alphabet=st.characters(exclude_characters="{}/\\"), min_size=50, max_size=200),
)


@st.composite
def long_templates(draw: st.DrawFn) -> str:
    """Like ``templates``, with fixed text long enough to crowd out the fields."""
    fields = draw(st.lists(st.sampled_from(OPTIONAL), max_size=3)) + list(REQUIRED_FIELDS)
    fields = draw(st.permutations(fields))
    pieces = [draw(long_literals) + "{" + field + "}" for field in fields]
    separators = [draw(st.sampled_from(["", "_", "/"])) for _ in pieces]
    template = "".join(p + s for p, s in zip(pieces, separators, strict=True))
    return template + draw(st.sampled_from(["", ".pdf", draw(long_literals) + ".pdf"]))


@SETTINGS
@given(
    template=long_templates(),
    row=st.fixed_dictionaries({f: values for f in OPTIONAL}),
    one=reports,
    other=reports,
)
def test_a_layout_is_refused_or_keeps_every_report_apart(
    template: str, row: dict[str, str], one: dict[str, object], other: dict[str, object]
) -> None:
    """However long its fixed text: a layout is refused up front, or every report gets its
    own path, whole, and none is refused at run time."""
    assume(one != other)
    try:
        layout = Layout(template, FIELDS)
    except LayoutError:
        return
    first = layout.relative_path({**row, **one})
    second = layout.relative_path({**row, **other})
    assert str(first).casefold() != str(second).casefold()
    for relative in (first, second):
        assert all(len(name) <= MAX_PART for name in relative.parts)


def test_a_fixed_text_that_crowds_out_the_report_fields_is_refused() -> None:
    """174 characters of fixed text before the default name: with names cut to fit, every
    report of a roster became one file."""
    with pytest.raises(LayoutError, match="too long"):
        Layout("r" * 174 + "{ssid}_{test}_{year}_{language}.pdf", FIELDS)


def test_only_links_and_junctions_count_as_links_among_windows_reparse_points() -> None:
    """OneDrive's on-demand files are reparse points too, and plain files to the user."""
    import os as _os
    import stat as _stat

    from caaspp_cli.fsutil import is_link_stat

    class WindowsStat:
        def __init__(self, tag: int | None) -> None:
            self.st_mode = _stat.S_IFREG | 0o600
            self.st_file_attributes = 0x400 if tag is not None else 0x20
            if tag is not None:
                self.st_reparse_tag = tag

    def as_stat(info: WindowsStat) -> _os.stat_result:
        return info  # type: ignore[return-value]

    assert is_link_stat(as_stat(WindowsStat(0xA000000C)))  # symbolic link
    assert is_link_stat(as_stat(WindowsStat(0xA0000003)))  # junction
    assert not is_link_stat(as_stat(WindowsStat(0x9000001A)))  # OneDrive cloud file
    assert not is_link_stat(as_stat(WindowsStat(None)))  # a plain file


@pytest.mark.parametrize(
    "template",
    ["{school}/{ssid}.pdf", "{ssid}_{test}_{year}.pdf", "{name}_{test}_{year}_{language}"],
)
def test_a_layout_without_the_fields_that_tell_reports_apart_is_refused(template: str) -> None:
    with pytest.raises(BadInputError, match="must contain"):
        Layout(template, FIELDS)
