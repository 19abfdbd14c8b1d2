"""Bad input: rosters that are damaged, mangled by spreadsheets, or huge.

See tests/bad_input_checks.py for what each refusal must look like.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bad_input_checks import (
    BAD,
    _roster,
    bad_input,
)


# --- Rosters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refused:
    """The roster is refused as a whole: exit 2, and these words in the error."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class Read:
    """The roster is read: this many students to ask ETS about, these rows set aside."""

    to_ask: int
    invalid_ssid: int = 0
    duplicate: int = 0


ROSTERS: dict[str, Refused | Read] = {
    "empty.csv": Refused(("is empty",)),
    "blank_lines.csv": Refused(("is empty",)),
    "bom_only.csv": Refused(("is empty",)),
    "only_delimiters.csv": Refused(("is empty",)),
    "binary.csv": Refused(("binary data", "not a CSV")),
    "gzip_compressed.csv": Refused(("binary data",)),
    "excel_workbook_renamed.csv": Refused(("Excel workbook",)),
    "old_excel_renamed.csv": Refused(("Excel workbook (.xls)",)),
    "pdf_renamed.csv": Refused(("is a PDF",)),
    "html_saved_as_csv.csv": Refused(("web page",)),
    "xml_spreadsheet.csv": Refused(("XML file",)),
    "utf32.csv": Refused(("UTF-32",)),
    "nul_in_a_cell.csv": Refused(("binary data",)),
    "headerless.csv": Refused(("no header line",)),
    "no_ssid_column.csv": Refused(("has no SSID column", "'Student ID'")),
    "two_ssid_columns.csv": Refused(("2 columns that could hold the SSID",)),
    "quote_left_open.csv": Refused(("line 2", "quote", "not closed")),
    "header_only.csv": Refused(("has a header but no student rows",)),
    "utf16le_bom_tab.txt": Read(to_ask=2),
    "utf16le_no_bom.csv": Read(to_ask=2),
    "utf16be_bom.csv": Read(to_ask=1),
    "utf16_cut_odd_byte.csv": Read(to_ask=1, invalid_ssid=1),
    "mixed_delimiters.csv": Read(to_ask=1, invalid_ssid=2),
    "semicolon_header_comma_rows.csv": Read(to_ask=2),
    "mixed_line_endings.csv": Read(to_ask=3),
    "junk_after_closing_quote.csv": Read(to_ask=1, invalid_ssid=1),
    "quote_open_on_last_line.csv": Read(to_ask=2),
    "formulas_in_cells.csv": Read(to_ask=1, invalid_ssid=1),
    "excel_mangled_ssids.csv": Read(to_ask=1, invalid_ssid=4, duplicate=1),
}


@pytest.mark.parametrize("name", sorted(ROSTERS))
def test_roster(cli: Any, district: Any, tmp_path: Path, name: str) -> None:
    roster, out = BAD / "rosters" / name, tmp_path / "out"
    case = ROSTERS[name]
    if isinstance(case, Refused):
        for args in ((), ("--dry-run",)):
            result = cli("bulk", str(roster), "--out", str(out), *args)
            error = bad_input(result, str(roster), *case.words)
            assert len(error) < 400
            assert not out.exists()
        return
    result = cli("bulk", str(roster), "--out", str(out), "--dry-run", "--json")
    # Rows a person must fix (invalid SSIDs, duplicates) make the dry run exit 3 as the run
    # would, with one notice on stderr, never an error.
    bad_rows = case.invalid_ssid + case.duplicate
    assert result.exit_code == (3 if bad_rows else 0), result.output
    assert "error:" not in result.stderr
    assert ("would need a person" in result.stderr) == bool(bad_rows), result.stderr
    summary = json.loads(result.stdout)
    assert summary["students_to_ask"] == case.to_ask
    assert summary["statuses"]["invalid_ssid"] == case.invalid_ssid
    assert summary["statuses"]["duplicate"] == case.duplicate
    assert not out.exists()


def _generated_rosters() -> dict[str, tuple[Callable[[Path], None], tuple[str, ...]]]:
    def huge_line(path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write("SSID,First Name\r\n1000000001,Ana\r\n")
            handle.write("1000000002," + "x" * (2 * 1024 * 1024) + "\r\n")
            handle.write("1000000003,Mia\r\n")

    def huge_first_line(path: Path) -> None:
        path.write_text("SSID," + ",".join(f"Column {i}" for i in range(20_000)), "utf-8")

    def quote_open_for_pages(path: Path) -> None:
        path.write_text(
            'SSID,First Name\r\n1000000001,"Ana\r\n' + "a note that runs on\r\n" * 80, "utf-8"
        )

    return {
        "a_line_of_two_mib": (huge_line, ("line 3", "longer than 1 MiB")),
        "a_first_line_with_no_end": (huge_first_line, ("line 1", "longer than 64 KiB")),
        "a_quote_open_for_80_lines": (quote_open_for_pages, ("line 2", "not closed")),
    }


@pytest.mark.parametrize("name", sorted(_generated_rosters()))
def test_big_broken_roster(cli: Any, district: Any, tmp_path: Path, name: str) -> None:
    make, words = _generated_rosters()[name]
    roster, out = tmp_path / "roster.csv", tmp_path / "out"
    make(roster)
    bad_input(cli("bulk", str(roster), "--out", str(out)), *words)
    assert not out.exists()


def test_ten_thousand_copies_of_one_student_ask_ets_once(
    cli: Any, sandbox: Any, sandbox_profile: Any, tmp_path: Path
) -> None:
    ssid = sandbox.state.world.examples()["english_only"]
    roster, out = tmp_path / "roster.csv", tmp_path / "out"

    def data_requests() -> int:
        return int(sandbox.state.stats()["counters"].get("data_requests", 0))

    before = data_requests()
    once = cli("bulk", str(_roster(tmp_path / "one.csv", [ssid])), "--out", str(tmp_path / "one"))
    assert once.exit_code == 0, once.output
    asking_once = data_requests() - before
    roster.write_text("SSID,First Name\r\n" + f"{ssid},Ana\r\n" * 10_000, "utf-8")

    dry = cli("bulk", str(roster), "--out", str(out), "--dry-run", "--json")
    assert dry.exit_code == 3, dry.output  # 9,999 duplicate rows for a person to look at
    assert json.loads(dry.stdout)["students_to_ask"] == 1
    assert json.loads(dry.stdout)["statuses"]["duplicate"] == 9_999

    before = data_requests()
    result = cli("bulk", str(roster), "--out", str(out), "--json")
    assert result.exit_code == 3, result.output
    assert "9999 of 10000 roster rows need a person (9999 duplicate)" in result.stderr
    assert data_requests() - before == asking_once
    summary = json.loads(result.stdout)
    assert summary["statuses"]["duplicate"] == 9_999
    assert summary["statuses"]["downloaded"] >= 1
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(row["status"] == "duplicate" for row in rows) == 9_999
    assert {row["detail"] for row in rows if row["status"] == "duplicate"} == {
        "same SSID as line 2"
    }
