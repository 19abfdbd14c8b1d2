"""Reading a roster whole: real exports end to end, rows and their line numbers, duplicate
SSIDs, memory that stays flat, any file giving rows or one clear error."""

from __future__ import annotations

import time
import tracemalloc
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roster_files import DATA, read_rows, refusal, write_roster

from caaspp_cli.errors import BadInputError
from caaspp_cli.roster.read import Roster, RowProblem, open_roster


# --- The corpus of real-world shapes (tests/data/rosters) -----------------------------------
def test_aeries_export_in_utf8_with_bom_takes_the_state_id_not_the_local_one() -> None:
    roster = open_roster(DATA / "aeries_utf8_bom.csv")
    rows = list(roster)
    assert (roster.encoding, roster.delimiter) == ("utf-8-sig", ",")
    assert roster.headers[0] == "Student ID"  # no BOM glued to the first header
    assert roster.columns.ssid == "State Student ID"
    assert roster.columns.email == "Parent Email"
    assert [r.ssid for r in rows] == ["0123456789", "0234567891", "0345678912"]
    assert [r.display_name for r in rows] == ["José Peña", "Thảo Nguyễn", "Siobhán O'Brien"]
    assert [r.language for r in rows] == ["es", "vi", "en"]
    assert rows[0].emails == ("jpena.family@example.org",)
    assert rows[2].emails == ()
    assert [r.line for r in rows] == [2, 3, 4]
    assert all(r.ok for r in rows)


def test_powerschool_export_resaved_by_excel_in_windows_1252() -> None:
    roster = open_roster(DATA / "powerschool_excel_cp1252.csv")
    rows = list(roster)
    assert roster.encoding == "cp1252"
    assert roster.columns.ssid == "State_StudentNumber"
    assert roster.columns.name == "LastFirst"
    assert roster.columns.school_code == "SchoolID"
    assert [r.display_name for r in rows] == [
        "Muñoz, Inés",
        "Hernández, José",
        "Lefèvre, Zoë",
        "García, Dolores",
    ]
    assert [r.problem for r in rows] == [
        None,
        RowProblem.INVALID_SSID,
        RowProblem.INVALID_SSID,
        None,
    ]
    assert "scientific notation" in rows[1].detail
    assert "leading zero" in rows[2].detail
    assert (rows[2].raw_language, rows[2].language) == ("French", None)
    assert rows[3].emails == ("garcia@example.org", "abuela.garcia@example.org")
    assert rows[0].school_code == "0130450"


def test_excel_unicode_text_is_utf16_and_tab_delimited() -> None:
    roster = open_roster(DATA / "excel_unicode_text.txt")
    rows = list(roster)
    assert (roster.encoding, roster.delimiter) == ("utf-16", "\t")
    assert [r.display_name for r in rows] == ["Trần, Minh", "Kim, Ji-woo", "Santos, Maria Clara"]
    assert [r.language for r in rows] == ["vi", "ko", "fil"]
    assert [r.grade for r in rows] == ["3", "3", "4"]
    assert rows[0].emails == ("tran.family@example.com",)


def test_semicolon_export_keeps_commas_inside_names() -> None:
    roster = open_roster(DATA / "synergy_semicolon.csv")
    rows = list(roster)
    assert roster.delimiter == ";"
    assert roster.columns.ssid == "Statewide Student ID"
    assert [r.display_name for r in rows] == ["Wang, Li", "Haddad, Omar"]
    assert rows[0].emails == ("wang.parent@example.com", "li.mom@example.com")
    assert rows[0].school_name == "Roosevelt High"


def test_toms_export_with_text_forced_cells_and_a_cds_code() -> None:
    roster = open_roster(DATA / "toms_export.csv")
    rows = list(roster)
    assert roster.columns.ssid == "Statewide Student Identifier (SSID)"
    assert [r.ssid for r in rows] == ["0123456789", "0987654321"]
    assert [r.raw_ssid for r in rows] == ['="0123456789"', '="0987654321"']
    assert rows[0].school_code == "0130450"  # the school's 7 digits of the 14-digit CDS code
    assert rows[0].fields["CDS Code"] == "01611270130450"
    assert rows[0].display_name == "Ana Reyes"


def test_title_lines_above_the_header_are_skipped() -> None:
    roster = open_roster(DATA / "title_lines.csv")
    rows = list(roster)
    assert roster.header_line == 4
    assert roster.headers == ("SSID", "Last Name", "First Name", "Grade")
    assert [(r.line, r.ssid) for r in rows] == [(5, "1122334455"), (6, "2233445566")]


def test_a_title_line_naming_the_ssid_is_not_the_header(tmp_path: Path) -> None:
    path = write_roster(tmp_path, "SSID list for spring\nState ID,Name\n0123456789,Ana\n")
    roster = open_roster(path)
    assert (roster.header_line, roster.columns.ssid) == (2, "State ID")
    assert [(r.line, r.ssid) for r in roster] == [(3, "0123456789")]


def test_excel_sep_line_names_the_delimiter() -> None:
    roster = open_roster(DATA / "excel_sep_line.csv")
    rows = list(roster)
    assert roster.delimiter == ";"
    assert roster.header_line == 2
    assert [(r.line, r.ssid, r.display_name) for r in rows] == [(3, "3344556677", "Amara Diallo")]


def test_mangled_ssids_are_marked_row_by_row_and_never_repaired() -> None:
    rows = read_rows(DATA / "mangled_ssids.csv")
    by_line = {r.line: r for r in rows}
    assert len(rows) == 10
    assert by_line[2].ok and by_line[2].ssid == "0123456789"
    for line, words in [
        (3, "scientific notation"),
        (4, "decimal part"),
        (5, "leading zero"),
        (6, "11 digits"),
        (7, "blank SSID"),
        (11, "other than digits"),
    ]:
        assert by_line[line].problem is RowProblem.INVALID_SSID
        assert by_line[line].ssid is None
        assert words in by_line[line].detail
    assert by_line[8].ssid == "0234567891" and by_line[8].ok  # ="0234567891"
    assert by_line[9].ssid == "0345678912" and by_line[9].ok  # spaces around it
    assert by_line[10].problem is RowProblem.DUPLICATE
    assert by_line[10].detail == "same SSID as line 2"


def test_header_only_roster_is_refused_as_a_bad_roster() -> None:
    error = refusal(DATA / "header_only.csv")
    assert error.message.endswith("header_only.csv has a header but no student rows.")
    assert error.exit_code == 2


def test_roster_without_a_header_line_says_so() -> None:
    error = refusal(DATA / "headerless.csv")
    assert "no header line" in error.message
    assert "line 1" in error.message


def test_no_ssid_column_names_the_headers_found_and_the_option() -> None:
    error = refusal(DATA / "no_ssid_column.csv")
    assert "no SSID column" in error.message
    assert "'Student ID', 'Last Name', 'First Name', 'Grade'" in error.message
    assert error.hint is not None
    assert "--ssid-column" in error.hint
    assert "'Statewide Student Identifier'" in error.hint


def test_two_columns_that_could_be_the_ssid_ask_for_the_option() -> None:
    error = refusal(DATA / "two_ssid_columns.csv")
    assert "'State ID', 'Statewide Student Identifier'" in error.message
    assert error.hint == "name the one to use with --ssid-column."
    roster = open_roster(DATA / "two_ssid_columns.csv", ssid_column="State ID")
    assert roster.columns.ssid == "State ID"
    assert [r.ssid for r in roster] == ["0123456789"]


def test_a_quote_left_open_is_refused_naming_its_line() -> None:
    error = refusal(DATA / "open_quote.csv")
    assert error.message.startswith("line 2 of ")
    assert "quote" in error.message
    assert error.hint is not None and "line 2" in error.hint


def test_duplicates_name_the_first_line(tmp_path: Path) -> None:
    path = write_roster(
        tmp_path,
        'SSID,Name\n0123456789,A\n0234567891,B\n\n="0123456789",C\n0123456789 ,D\n0234567891,E\n',
    )
    rows = read_rows(path)
    assert [(r.line, r.problem, r.detail) for r in rows] == [
        (2, None, ""),
        (3, None, ""),
        (5, RowProblem.DUPLICATE, "same SSID as line 2"),
        (6, RowProblem.DUPLICATE, "same SSID as line 2"),
        (7, RowProblem.DUPLICATE, "same SSID as line 3"),
    ]
    assert rows[2].ssid == "0123456789"  # shown, but not to be fetched twice
    assert not rows[2].ok


def test_ten_thousand_copies_of_one_ssid_are_quick(tmp_path: Path) -> None:
    path = write_roster(tmp_path, "SSID,Name\n" + "0123456789,Same\n" * 10_000)
    started = time.perf_counter()
    rows = read_rows(path)
    assert time.perf_counter() - started < 10  # about 0.2 s; a quadratic check takes minutes
    assert rows[0].ok
    assert len(rows) == 10_000
    assert all(r.problem is RowProblem.DUPLICATE for r in rows[1:])
    assert {r.detail for r in rows[1:]} == {"same SSID as line 2"}


def test_ssid_zero_and_ssids_sharing_low_digits_are_told_apart(tmp_path: Path) -> None:
    ssids = ["0000000000"] + [f"{k * 1024:010d}" for k in range(1, 3000)]
    path = write_roster(tmp_path, "SSID\n" + "\n".join(ssids + ssids[:2]) + "\n")
    rows = read_rows(path)
    assert all(r.ok for r in rows[:3000])
    assert [r.detail for r in rows[3000:]] == ["same SSID as line 2", "same SSID as line 3"]


# --- Rows: lines, blanks, fields ------------------------------------------------------------
def test_line_numbers_count_blank_lines_and_line_breaks_inside_cells(tmp_path: Path) -> None:
    text = (
        "SSID,Name,Address,Grade\r\n"
        "\r\n"
        '0123456789,Ana,"12 Oak St\r\nApt 3",5\r\n'
        ",,,\r\n"
        "0234567891,Juan,,5\r\n"
    )
    rows = read_rows(write_roster(tmp_path, text))
    assert [(r.line, r.ssid) for r in rows] == [(3, "0123456789"), (6, "0234567891")]
    assert rows[0].fields["Address"] == "12 Oak St\r\nApt 3"


def test_old_mac_line_endings(tmp_path: Path) -> None:
    rows = read_rows(write_roster(tmp_path, "SSID,Name\r0123456789,Ana\r0234567891,Juan\r"))
    assert [(r.line, r.ssid) for r in rows] == [(2, "0123456789"), (3, "0234567891")]


def test_short_and_long_rows_are_read_without_stopping(tmp_path: Path) -> None:
    rows = read_rows(
        write_roster(tmp_path, "SSID,Name,Grade\n0123456789\n0234567891,Juan,5,extra\n")
    )
    assert [(r.ssid, r.display_name, r.grade) for r in rows] == [
        ("0123456789", "", ""),
        ("0234567891", "Juan", "5"),
    ]
    assert dict(rows[1].fields) == {"SSID": "0234567891", "Name": "Juan", "Grade": "5"}


def test_fields_map_every_named_column_by_its_header(tmp_path: Path) -> None:
    path = write_roster(tmp_path, "SSID, Home Room ,,Home Room\n 0123456789 , 12B ,x,dup\n")
    (row,) = read_rows(path)
    assert dict(row.fields) == {"SSID": "0123456789", "Home Room": "12B"}
    assert len(row.fields) == 2
    assert list(row.fields) == ["SSID", "Home Room"]
    assert row.raw_ssid == " 0123456789 "


def test_each_iteration_reads_the_file_again(tmp_path: Path) -> None:
    roster = open_roster(write_roster(tmp_path, "SSID\n0123456789\n0123456789\n"))
    assert list(roster) == list(roster)
    assert [r.problem for r in roster] == [None, RowProblem.DUPLICATE]
    assert roster.row_count == 2


# --- Memory ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_iterating_200000_rows_keeps_memory_flat(tmp_path: Path) -> None:
    """Rows stream. tracemalloc slows every allocation tenfold, so it watches the first
    10,000 of the 200,000 rows and the rest are iterated untraced: keeping rows (about 1 KB
    each) would pass the bound within the window, and a roster read whole at the first row
    would show its full size (200 MB) at once."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("SSID,First Name,Last Name,Grade,Guardian Email\n")
        handle.writelines(
            f"{1000000000 + i * 7},First{i},Last{i},{i % 13},p{i}@example.org\n"
            for i in range(200_000)
        )
    roster = open_roster(path)
    assert roster.row_count == 200_000
    rows = iter(roster)
    tracemalloc.start()
    try:
        window = sum(1 for _ in islice(rows, 10_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rest = sum(1 for _ in rows)
    assert (window, rest) == (10_000, 190_000)
    # The duplicate table for 200,000 SSIDs is 4 MiB; beside it, a row or two at a time.
    assert peak < 8 * 1024 * 1024


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | st.text(max_size=200).map(lambda t: ("SSID\n" + t).encode()))
def test_any_file_gives_rows_or_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    try:
        roster = open_roster(path)
    except BadInputError as error:
        assert error.message
        return
    assert isinstance(roster, Roster)
    for row in roster:
        assert row.ok or row.detail
