"""The files the stages hand each other, as one module defines them (caaspp_cli.artifacts)."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caaspp_cli import artifacts
from caaspp_cli.artifacts import (
    FORMULA_START,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    REPORT_NAME,
    REPORT_NAME_TEMPLATE,
    SEND_REPORT_COLUMNS,
    ManifestStatus,
    manifest_ssids,
    neutralize_cell,
    report_file_name,
    report_ssids_in,
    ssid_of_file_name,
    unneutralize_cell,
    write_manifest,
    write_send_report,
)
from caaspp_cli.errors import ManifestError

PACKAGE = Path(artifacts.__file__).resolve().parent


def _read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize(
    "value",
    [
        "=1+1",
        "+33 1 23",
        "-5",
        "@SUM(A1)",
        "\tx",
        "\rx",
        "'=already",
        "''-x",
        "plain",
        "",
        "'",
        "0123",
    ],
)
def test_unneutralize_gives_back_what_neutralize_was_given(value: str) -> None:
    cell = neutralize_cell(value)
    assert not cell.startswith(FORMULA_START)
    assert unneutralize_cell(cell) == value


def test_a_report_name_carries_its_fields_and_its_ssid() -> None:
    name = report_file_name("1234567890", "CAASPP", 2025, "zh-Hant")
    assert name == REPORT_NAME_TEMPLATE.format(
        ssid="1234567890", test="CAASPP", year=2025, language="zh-Hant"
    )
    match = REPORT_NAME.match(name)
    assert match is not None
    assert match.groups() == ("1234567890", "CAASPP", "2025", "zh-Hant")
    assert ssid_of_file_name(name) == "1234567890"
    assert ssid_of_file_name("123456789_CAASPP_2025_en.pdf") is None  # nine digits
    assert ssid_of_file_name("notes.pdf") is None


def test_report_ssids_leave_out_hidden_files_folders_and_other_files(tmp_path: Path) -> None:
    (tmp_path / "school" / "grade5").mkdir(parents=True)
    (tmp_path / "school" / "grade5" / "1111111111_CAASPP_2025_en.pdf").write_bytes(b"%PDF-")
    (tmp_path / "2222222222_ELPAC_2025_es.PDF").write_bytes(b"%PDF-")
    (tmp_path / "._3333333333_CAASPP_2025_en.pdf").write_bytes(b"")  # macOS USB leftovers
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "4444444444_CAASPP_2025_en.pdf").write_bytes(b"%PDF-")
    (tmp_path / "5555555555_notes.txt").write_text("x")
    assert report_ssids_in(tmp_path) == {"1111111111", "2222222222"}


def test_manifest_round_trips_a_file_cell_a_spreadsheet_would_take_for_a_formula(
    tmp_path: Path,
) -> None:
    rows = [
        (
            "1234567890",
            ManifestStatus.DOWNLOADED,
            "CAASPP",
            2025,
            "en",
            "=evil/1234567890.pdf",
            "",
            2,
        ),
        ("0987654321", ManifestStatus.NO_REPORTS, "", "", "", "", "none yet", 3),
        ("12345", ManifestStatus.INVALID_SSID, "", "", "", "x.pdf", "", 4),
    ]
    path = write_manifest(tmp_path, rows, on_warning=pytest.fail)
    assert path == tmp_path / MANIFEST_NAME
    table = _read_csv(path)
    assert tuple(table[0]) == MANIFEST_COLUMNS
    assert table[1][5] == "'=evil/1234567890.pdf"
    assert table[1][1] == "downloaded"
    assert manifest_ssids(tmp_path) == {"=evil/1234567890.pdf": "1234567890"}


def test_a_manifest_that_cannot_be_replaced_goes_beside_it(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).mkdir()  # as a folder by that name, or Excel holding it
    warnings: list[str] = []
    path = write_manifest(tmp_path, [("1234567890", "downloaded")], on_warning=warnings.append)
    assert path.parent == tmp_path
    assert path.name.startswith("manifest-")
    assert path.name.endswith(".csv")
    assert _read_csv(path)[1][:2] == ["1234567890", "downloaded"]
    assert len(warnings) == 1
    assert path.name in warnings[0]


def test_a_manifest_that_cannot_be_written_anywhere_is_one_error(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(ManifestError) as caught:
        write_manifest(blocked, [("1234567890", "failed")], on_warning=pytest.fail)
    assert "nor one beside it" in caught.value.message


def test_send_report_writes_its_columns_in_order_and_guards_cells(tmp_path: Path) -> None:
    row = {column: f"v-{column}" for column in SEND_REPORT_COLUMNS}
    row["student_name"] = "=HYPERLINK(x)"
    path = write_send_report(tmp_path, [row])
    table = _read_csv(path)
    assert tuple(table[0]) == SEND_REPORT_COLUMNS
    assert table[1][SEND_REPORT_COLUMNS.index("student_name")] == "'=HYPERLINK(x)"
    assert table[1][0] == "v-line"


ARTIFACT_NAMES = {
    artifacts.MANIFEST_NAME,
    artifacts.SEND_REPORT_NAME,
    artifacts.BULK_LEDGER_NAME,
    artifacts.SEND_LEDGER_NAME,
    artifacts.REPORT_NAME_TEMPLATE,
    artifacts.REPORT_NAME.pattern,
}


def test_no_module_but_artifacts_spells_an_artifacts_name_or_columns() -> None:
    """Names, the report-name pattern and column lists are written in artifacts.py only:
    a stage that needs one imports it."""
    columns = {tuple(artifacts.MANIFEST_COLUMNS), tuple(artifacts.SEND_REPORT_COLUMNS)}
    columns.add(tuple(artifacts.SHEET_COLUMNS))
    offenders: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "artifacts.py":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and node.value in ARTIFACT_NAMES:
                offenders.append(f"{where} {node.value!r}")
            elif isinstance(node, ast.Tuple) and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
            ):
                values = tuple(e.value for e in node.elts if isinstance(e, ast.Constant))
                if values in columns:
                    offenders.append(f"{where} {values!r}")
    assert offenders == []


# --- Every cell ------------------------------------------------------------------------------
@given(st.text())
def test_neutralized_cells_never_start_a_formula(value: str) -> None:
    safe = neutralize_cell(value)
    assert not safe.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert safe in (value, "'" + value)
    assert unneutralize_cell(safe) == value


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Ana", "Ana"),
        ("", ""),
        ("a=b", "a=b"),
        ("'=x", "''=x"),
    ],
)
def test_neutralize_cell(value: str, safe: str) -> None:
    assert neutralize_cell(value) == safe
