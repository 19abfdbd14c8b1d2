"""Expected failures of the file system and the ledger during a run: one sentence naming
the file and what to do, a documented exit code, and nothing already done lost."""

from __future__ import annotations

import csv
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from caaspp_cli.artifacts import BULK_LEDGER_NAME as LEDGER_NAME
from caaspp_cli.cli.sandbox import roster_csv
from caaspp_cli.errors import ExitCode


@pytest.fixture
def roster(tmp_path: Path, sandbox: Any) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(roster_csv(sandbox.state.world.roster_rows()), encoding="utf-8")
    return path


def _said(result: Any) -> str:
    return " ".join((result.stdout + result.stderr).split())


def test_a_manifest_that_is_a_folder_gets_the_manifest_written_beside_it(
    cli: Any, sandbox_profile: Any, roster: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "manifest.csv").mkdir(parents=True)
    result = cli("bulk", str(roster), "--out", str(out))
    said = _said(result)
    assert result.exit_code == ExitCode.OK, said
    assert "unexpected" not in said.lower() and "manifest.csv" in said
    beside = list(out.glob("manifest-*.csv"))
    assert len(beside) == 1 and beside[0].name in said
    with beside[0].open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["status"] for row in rows} >= {"downloaded"}


def test_a_ledger_with_a_damaged_page_is_named_with_the_move_aside_hint(
    cli: Any, sandbox: Any, sandbox_profile: Any, roster: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert cli("bulk", str(roster), "--out", str(out)).exit_code == ExitCode.OK
    ledger = out / LEDGER_NAME
    with sqlite3.connect(ledger) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    assert pages > 4
    data = bytearray(ledger.read_bytes())
    for page in range(2, pages):  # every page but the schema's: a damaged table
        data[page * page_size + 8 : page * page_size + 64] = b"\xff" * 56
    ledger.write_bytes(bytes(data))
    pdfs = sorted(p.name for p in out.rglob("*.pdf"))

    result = cli("bulk", str(roster), "--out", str(out))
    said = _said(result)
    assert result.exit_code == ExitCode.BAD_INPUT, said
    assert "unexpected" not in said.lower()
    assert str(ledger) in said and "move it aside" in said
    assert sorted(p.name for p in out.rglob("*.pdf")) == pdfs

    # Following the hint: nothing downloaded again.
    shutil.move(ledger, tmp_path / "damaged-ledger.sqlite")
    before = Counter(sandbox.state.stats()["downloads"])
    assert cli("bulk", str(roster), "--out", str(out)).exit_code == ExitCode.OK
    assert Counter(sandbox.state.stats()["downloads"]) == before


def _can_mount_tmpfs(target: Path) -> bool:
    if sys.platform != "linux" or shutil.which("mount") is None:
        return False
    target.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k,mode=0700", "caaspp-test", str(target)],
        capture_output=True,
    )
    return done.returncode == 0


def test_a_full_disk_during_bulk_is_one_sentence_and_keeps_what_was_saved(
    cli: Any, sandbox: Any, sandbox_profile: Any, roster: Path, tmp_path: Path
) -> None:
    out = tmp_path / "small"
    if not _can_mount_tmpfs(out):
        pytest.skip("mounting a small tmpfs is not possible here")
    try:
        result = cli("bulk", str(roster), "--out", str(out), "--concurrency", "2")
        said = _said(result)
        assert "unexpected" not in said.lower(), said
        assert result.exit_code == ExitCode.FAILED, said
        assert "full" in said and str(out) in said
        saved = list(out.rglob("*.pdf"))
        assert saved, "the disk filled before any report"
        for pdf in saved:
            assert pdf.read_bytes().rstrip().endswith(b"%%EOF")
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


def _purgeable(folder: Path, count: int) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "manifest.csv").write_text("ssid\n", encoding="utf-8")
    for number in range(count):
        (folder / f"{1000000000 + number}_CAASPP_2025_en.pdf").write_bytes(b"%PDF-1.7\n%%EOF\n")


def test_purge_that_cannot_write_its_log_says_what_it_removed_and_what_not(
    cli: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "reports"
    _purgeable(folder, 3)
    (folder / "purge.log").mkdir()
    result = cli("purge", str(folder), "--yes")
    said = _said(result)
    assert result.exit_code == ExitCode.FAILED, said
    assert "unexpected" not in said.lower()
    assert "removed 3 files" in said and "purge.log" in said


def test_purge_on_a_read_only_file_system_is_refused_before_anything(
    cli: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "ro"
    if not _can_mount_tmpfs(folder):
        pytest.skip("mounting a small tmpfs is not possible here")
    try:
        _purgeable(folder, 3)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        result = cli("purge", str(folder), "--yes")
        said = _said(result)
        assert result.exit_code == ExitCode.BAD_INPUT, said
        assert "unexpected" not in said.lower()
        assert str(folder) in said and "Read-only file system" in said
        assert len(list(folder.glob("*.pdf"))) == 3
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
