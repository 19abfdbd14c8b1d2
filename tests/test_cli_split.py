"""`caaspp split` at the command line, and the TOMS route end to end: the sandbox's
TOMS-style download -> split -> protect -> send --dry-run, each family's message holding
its own child's reports."""

from __future__ import annotations

import csv
import email
import email.policy
import json
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from helpers import SmtpServer, add_smtp_profile

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("qpdf") is None,
    reason="poppler-utils and qpdf needed",
)


@pytest.fixture
def download(cli: Any, tmp_path: Path) -> tuple[Path, Path]:
    """The sandbox's TOMS-style download of 12 students, and its roster."""
    folder, roster = tmp_path / "toms", tmp_path / "roster.csv"
    result = cli(
        "sandbox", "--students", "12", "--toms-export", str(folder), "--roster-out", str(roster)
    )
    assert result.exit_code == 0, result.output
    assert "TOMS-style download:" in result.stderr
    assert stat.S_IMODE((folder / "toms-download.zip").stat().st_mode) == 0o600
    return folder, roster


def _manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_split_help_names_every_option(cli: Any) -> None:
    result = cli("split", "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--out", "--roster", "--layout", "--json"):
        assert option in result.output


@pytest.mark.posix
def test_split_prints_a_summary_and_no_ssid_or_name(
    cli: Any, download: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, roster = download
    result = cli("split", str(folder / "toms-download.zip"), "--out", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert "caaspp split:" in result.output and "written, " in result.stderr
    students = list(csv.DictReader(roster.open(encoding="utf-8")))
    for row in students:
        assert row["SSID"] not in result.output
        assert row["Last Name"] not in result.output


@pytest.mark.posix
def test_split_json_summary_and_exit_3_when_pages_need_a_person(
    cli: Any, download: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, _ = download
    merged = next(iter(sorted(folder.glob("*.pdf"))))
    extra = tmp_path / "with-a-stray-page.pdf"
    with pikepdf.open(merged) as pdf:
        pdf.add_blank_page()
        pdf.save(extra)

    result = cli("split", str(extra), "--out", str(tmp_path / "out"), "--json")

    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["statuses"]["unassigned"] == 1 and summary["needs_a_person"] == 1
    assert (
        "1 manifest row needs a person (1 unassigned)" in result.stderr
        and "error:" not in result.stderr
    )
    (row,) = [r for r in _manifest(tmp_path / "out") if r["status"] == "unassigned"]
    with pikepdf.open(extra) as pdf:
        assert row["detail"] == f"{extra} page {len(pdf.pages)}: no text on the page (a scan?)"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p / "missing.pdf", "does not exist"),
        (lambda p: (p / "notes.txt", (p / "notes.txt").write_text("x"))[0], "neither a PDF"),
    ],
)
def test_split_bad_input_is_one_sentence_and_exit_2(
    cli: Any, tmp_path: Path, make: Any, expected: str
) -> None:
    result = cli("split", str(make(tmp_path)), "--out", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert expected in result.stderr and "Traceback" not in result.output


def test_a_scanned_download_is_refused_with_exit_2(cli: Any, tmp_path: Path) -> None:
    scan = tmp_path / "scan.pdf"
    with pikepdf.new() as pdf:
        pdf.add_blank_page()
        pdf.save(scan)

    result = cli("split", str(scan), "--out", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert "scanned PDF" in result.stderr and "Traceback" not in result.output


@pytest.mark.posix
def test_the_toms_route_reaches_each_family_with_its_own_childs_reports(
    cli: Any, download: tuple[Path, Path], smtp_server: SmtpServer, tmp_path: Path
) -> None:
    folder, roster = download
    split_dir, protected, sheet = tmp_path / "split", tmp_path / "protected", tmp_path / "pw.csv"
    outbox = tmp_path / "outbox"

    split = cli(
        "split", str(folder / "toms-download.zip"), "--out", str(split_dir), "--roster", str(roster)
    )
    assert split.exit_code == 0, split.output
    rows = _manifest(split_dir)
    # The manifest accounts for every page of the download.
    total = 0
    for merged in folder.glob("*.pdf"):
        with pikepdf.open(merged) as pdf:
            total += len(pdf.pages)
    in_rows = 0
    for row in rows:
        if row["status"] == "split":
            with pikepdf.open(split_dir / row["file"]) as pdf:
                in_rows += len(pdf.pages)
    assert in_rows == total
    assert {r["status"] for r in rows} <= {"split", "no_reports"}

    protect = cli(
        "protect",
        str(split_dir),
        "--out",
        str(protected),
        "--passwords",
        str(sheet),
        "--roster",
        str(roster),
        "--workers",
        "1",
    )
    assert protect.exit_code == 0, protect.output

    add_smtp_profile(smtp_server)
    send = cli(
        "send",
        "--roster",
        str(roster),
        "--pdfs",
        str(protected),
        "--passwords",
        str(sheet),
        "--smtp",
        "district",
        "--dry-run",
        "--outbox",
        str(outbox),
        "--rate",
        "6000",
    )
    assert send.exit_code in (0, 3), send.output
    assert smtp_server.handler.sessions == 0

    students = list(csv.DictReader(roster.open(encoding="utf-8")))
    ssids_of: dict[str, set[str]] = {}
    for student in students:
        if student["Guardian Email"]:
            ssids_of.setdefault(student["Guardian Email"].lower(), set()).add(student["SSID"])
    passwords: dict[str, str] = {}
    with sheet.open(newline="", encoding="utf-8-sig") as handle:
        for entry in csv.DictReader(handle):
            passwords[entry["ssid"]] = entry["password"]
    all_ssids = {s["SSID"] for s in students}

    attachments = 0
    for eml in sorted(outbox.glob("*.eml")):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        family = ssids_of[str(message["To"]).split("<")[-1].rstrip(">").strip().lower()]
        for part in message.iter_attachments():
            data = part.get_content()
            opened = None
            for ssid in family:
                try:
                    opened = pikepdf.open(_bytes_io(data), password=passwords[ssid])
                    break
                except (pikepdf.PasswordError, KeyError):
                    continue
            assert opened is not None, f"{eml.name}: no password of this family opens it"
            plain = tmp_path / "plain.pdf"
            with opened:
                opened.save(plain)
            text = subprocess.run(
                ["pdftotext", str(plain), "-"], capture_output=True, text=True, check=True
            ).stdout
            on_page = set(re.findall(r"(?<!\d)\d{10}(?!\d)", text)) & all_ssids
            assert on_page and on_page <= family, eml.name
            attachments += 1
    split_reports = sum(
        1
        for r in rows
        if r["status"] == "split"
        and any(s["SSID"] == r["ssid"] and s["Guardian Email"] for s in students)
    )
    assert attachments == split_reports > 0


def _bytes_io(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


@pytest.mark.posix
def test_split_with_an_invalid_roster_ssid_exits_3_as_bulk_and_send_do(
    cli: Any, download: tuple[Path, Path], tmp_path: Path
) -> None:
    """Every page split, but a roster row Excel damaged: a person must look, as in bulk."""
    folder, roster = download
    with roster.open("a", encoding="utf-8") as handle:
        handle.write("1.23457E+09,Bad,Row,Alder,5\n")
    out = tmp_path / "out"
    result = cli(
        "split", str(folder / "toms-download.zip"), "--out", str(out), "--roster", str(roster)
    )

    assert result.exit_code == 3, result.output
    assert (
        "1 manifest row needs a person (1 invalid SSID)" in result.stderr
        and "error:" not in result.stderr
    )
    assert [r["status"] for r in _manifest(out) if r["ssid"] == "1.23457E+09"] == ["invalid_ssid"]
