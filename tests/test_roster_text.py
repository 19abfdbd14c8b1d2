"""A roster's bytes to records: encodings, delimiters, files that are not a CSV (workbooks,
zips, PDFs, binary data) and broken structure (quotes left open, lines too long)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from roster_files import read_rows, refusal, write_roster

from caaspp_cli.errors import BadInputError
from caaspp_cli.roster.read import open_roster
from caaspp_cli.roster.text import MAX_LINE_CHARS

# --- Encodings ---------------------------------------------------------------------------------
ACCENTED = [("0123456789", "Muñoz", "Inés"), ("0234567891", "Lefèvre", "Zoë")]


@pytest.mark.parametrize(
    ("encoding", "delimiter", "expected"),
    [
        ("utf-8", ",", "utf-8"),
        ("utf-8-sig", ",", "utf-8-sig"),
        ("cp1252", ",", "cp1252"),
        ("utf-16", "\t", "utf-16"),  # Excel's "Unicode Text": little-endian, with a BOM
        ("utf-16-be", "\t", "utf-16-be"),  # without a BOM, told by the zero bytes
        ("utf-16-le", "\t", "utf-16-le"),
    ],
)
def test_encodings_are_recognised_and_decoded(
    tmp_path: Path, encoding: str, delimiter: str, expected: str
) -> None:
    lines = [delimiter.join(("SSID", "Last Name", "First Name"))]
    lines += [delimiter.join(row) for row in ACCENTED]
    path = write_roster(tmp_path, "\r\n".join(lines) + "\r\n", encoding=encoding)
    roster = open_roster(path)
    assert (roster.encoding, roster.delimiter) == (expected, delimiter)
    assert roster.headers == ("SSID", "Last Name", "First Name")
    assert [(r.ssid, r.display_name) for r in roster] == [
        ("0123456789", "Inés Muñoz"),
        ("0234567891", "Zoë Lefèvre"),
    ]


def test_utf16_big_endian_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_bytes(b"\xfe\xff" + "SSID\tName\n0123456789\tPeña\n".encode("utf-16-be"))
    assert [(r.ssid, r.display_name) for r in open_roster(path)] == [("0123456789", "Peña")]


def test_windows_1252_byte_far_past_the_start_is_still_found(tmp_path: Path) -> None:
    body = "".join(f"{1000000000 + i},Student {i}\r\n" for i in range(5000))  # ~120 KB ASCII
    path = tmp_path / "r.csv"
    path.write_bytes(("SSID,Name\r\n" + body).encode() + "0123456789,Muñoz\r\n".encode("cp1252"))
    roster = open_roster(path)
    assert roster.encoding == "cp1252"
    rows = list(roster)
    assert rows[-1].display_name == "Muñoz"
    assert len(rows) == 5001


def test_utf8_bom_then_windows_1252_bytes_loses_the_bom_not_the_header(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"\xef\xbb\xbfSSID,Name\r\n0123456789,Mu\xf1oz\r\n")
    roster = open_roster(path)
    assert roster.encoding == "cp1252"
    assert roster.headers == ("SSID", "Name")
    assert [r.display_name for r in roster] == ["Muñoz"]


def test_utf32_is_refused(tmp_path: Path) -> None:
    path = write_roster(tmp_path, "\ufeffSSID\n0123456789\n", encoding="utf-32")
    assert "UTF-32" in refusal(path).message


# --- Delimiters --------------------------------------------------------------------------------
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected_with_the_others_inside_cells(tmp_path: Path, delimiter: str) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["SSID", "Student Name", "Grade", "Guardian Email"])
    writer.writerow(["0123456789", "Lopez, Maria; Jr", "5", "a@example.org;b@example.org"])
    writer.writerow(["0234567891", "Perez\tJuan", "5", "c@example.org, d@example.org"])
    writer.writerow(["0345678912", "Reyes, Ana", "6", ""])
    roster = open_roster(write_roster(tmp_path, buffer.getvalue()))
    rows = list(roster)
    assert roster.delimiter == delimiter
    assert [r.ssid for r in rows] == ["0123456789", "0234567891", "0345678912"]
    assert rows[0].display_name == "Lopez, Maria; Jr"
    assert rows[0].emails == ("a@example.org", "b@example.org")
    assert rows[1].emails == ("c@example.org", "d@example.org")


def test_tab_file_with_unquoted_commas_in_every_row(tmp_path: Path) -> None:
    path = write_roster(
        tmp_path, "SSID\tName (Last, First)\n0123456789\tLopez, Maria\n0234567891\tPerez, Juan\n"
    )
    roster = open_roster(path)
    assert roster.delimiter == "\t"
    assert [r.display_name for r in roster] == ["Lopez, Maria", "Perez, Juan"]


def test_single_column_of_ssids(tmp_path: Path) -> None:
    roster = open_roster(write_roster(tmp_path, "SSID\n0123456789\n0234567891\n"))
    assert [r.ssid for r in roster] == ["0123456789", "0234567891"]


# --- Not a roster ----------------------------------------------------------------------------
def _xlsx(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return path


@pytest.mark.parametrize("name", ["roster.xlsx", "roster.csv"])
def test_excel_workbook_is_refused_with_the_way_out(tmp_path: Path, name: str) -> None:
    error = refusal(_xlsx(tmp_path / name))
    assert error.message == f"{tmp_path / name} is an Excel workbook, not a CSV."
    assert error.hint is not None and "File > Save As > CSV UTF-8" in error.hint


def test_old_excel_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "roster.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    error = refusal(path)
    assert "is an Excel workbook (.xls), not a CSV" in error.message
    assert error.hint is not None and "CSV UTF-8" in error.hint


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "is empty"),
        (b"\r\n  \r\n\t\n", "is empty"),
        (b"\xef\xbb\xbf", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00" + bytes(range(256)) * 4, "binary data"),
        (b"SSID,Name\n\x00\x01\x02\x03\xff\xfe\x00\x00\x07\x00\x00\x00\n", "binary data"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "is a PDF"),
        (b"<html><body><table><tr><td>SSID</td></tr></table></body></html>", "web page"),
        (b'<?xml version="1.0"?><Workbook/>', "XML file"),
        (b"\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0e\x0f\x10\x11" * 10 + b"\nSSID\n", "binary"),
    ],
)
def test_files_that_are_not_csv_get_one_sentence(
    tmp_path: Path, content: bytes, words: str
) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(content)
    assert words in refusal(path).message


def test_a_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "roster.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("roster.csv", "SSID\n0123456789\n")
    assert "is a zip archive" in refusal(path).message


def test_missing_file_folder_and_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "there is no file" in refusal(tmp_path / "nope.csv").message
    assert "is a folder" in refusal(tmp_path).message

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    path = write_roster(tmp_path, "SSID\n0123456789\n")
    monkeypatch.setattr(Path, "open", refuse)
    assert "permission denied" in refusal(path).message


def test_a_roster_deleted_before_it_is_read_again(tmp_path: Path) -> None:
    path = write_roster(tmp_path, "SSID\n0123456789\n")
    roster = open_roster(path)
    path.unlink()
    with pytest.raises(BadInputError, match="there is no file"):
        list(roster)


# --- Broken structure ------------------------------------------------------------------------
def test_a_stray_quote_mid_file_is_found_before_any_row_is_read(tmp_path: Path) -> None:
    good = "".join(f"{1000000000 + i},Student,{i}\n" for i in range(300))
    stray = '1999999999,"Broken,7\n'
    rest = "".join(f"{2000000000 + i},Student,{i}\n" for i in range(300))
    path = write_roster(tmp_path, "SSID,Name,Grade\n" + good + stray + rest)
    error = refusal(path)
    assert error.message.startswith("line 302 of ")
    assert "quote" in error.message


def test_a_quote_running_to_the_field_limit_names_its_line(tmp_path: Path) -> None:
    rows = "".join(f"{1000000000 + i},{'x' * 60}\n" for i in range(3000))
    path = write_roster(tmp_path, 'SSID,Name\n0123456789,"never closed\n' + rows)
    error = refusal(path)
    assert error.message.startswith("line 2 of ")
    assert "quote" in error.message


def test_a_cell_over_the_csv_field_limit_names_its_line(tmp_path: Path) -> None:
    path = write_roster(tmp_path, 'SSID,Notes\n0123456789,ok\n0234567891,"' + "x" * 200_000 + '"\n')
    error = refusal(path)
    assert error.message.startswith("line 3 of ")
    assert "longer than 131072 characters" in error.message


def test_a_huge_line_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = write_roster(tmp_path, "SSID,Notes\n0123456789," + "x" * (MAX_LINE_CHARS + 10) + "\n")
    error = refusal(path)
    assert error.message.startswith("line 2 of ")
    assert "longer than 1 MiB" in error.message


def test_a_huge_first_line_is_refused(tmp_path: Path) -> None:
    path = write_roster(tmp_path, "SSID," + "x" * 100_000 + "\n0123456789,a\n")
    assert "line 1" in refusal(path).message


def test_an_address_on_two_lines_is_not_an_open_quote(tmp_path: Path) -> None:
    path = write_roster(
        tmp_path,
        'SSID,Name,Address,Grade,School\n0123456789,Ana,"12 Oak St,\n'
        'Apt 3, Springfield, CA",5,Lincoln\n',
    )
    (row,) = read_rows(path)
    assert row.grade == "5"


# --- Properties ------------------------------------------------------------------------------
names = st.text(
    alphabet=st.characters(codec="cp1252", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    max_size=20,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(st.from_regex(r"[0-9]{10}", fullmatch=True), names), min_size=1, max_size=30
    ),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]),
)
def test_written_rosters_read_back_the_same(
    tmp_path: Path, rows: list[tuple[str, str]], delimiter: str, encoding: str
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["SSID", "Student Name"])
    writer.writerows(rows)
    text = buffer.getvalue()
    if encoding == "cp1252" and not text.isascii():
        # Windows-1252 bytes that also read as UTF-8 ("Ã©" is "é") are read as UTF-8, as
        # they should be: no real name looks like that, and UTF-8 files are far more common.
        try:
            text.encode("cp1252").decode("utf-8")
            assume(False)
        except UnicodeDecodeError:
            pass
    path = write_roster(tmp_path, text, encoding=encoding)
    roster = open_roster(path)
    read = list(roster)
    assert roster.delimiter == delimiter
    assert [r.ssid for r in read] == [ssid for ssid, _ in rows]
    assert [r.display_name for r in read] == [name.strip() for _, name in rows]
