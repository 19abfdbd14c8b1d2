from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import command_paths

from caaspp_cli import audit
from caaspp_cli.cli.sandbox import roster_csv


@pytest.fixture(autouse=True)
def students_audited(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are of the request lines, which a district turns on."""
    monkeypatch.setenv(audit.STUDENTS_ENV, "1")


def test_record_appends_one_tab_separated_line_per_request(data_dir: Path) -> None:
    moment = datetime(2025, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=-8)))
    audit.record("district", "1234567890", "saved", "2 reports", when=moment)
    audit.record("district", "0987654321", "not_enrolled")
    lines = (data_dir / "audit.log").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "2025-03-01T16:30:00+00:00\tdistrict\t1234567890\tsaved\t2 reports"
    when, profile, ssid, outcome, detail = lines[1].split("\t")
    assert datetime.fromisoformat(when).tzinfo == UTC
    assert (profile, ssid, outcome, detail) == ("district", "0987654321", "not_enrolled", "")


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_audit_log_is_owner_only(data_dir: Path) -> None:
    audit.record("district", "1234567890", "saved")
    assert audit.audit_path() == data_dir / "audit.log"
    assert stat.S_IMODE((data_dir / "audit.log").stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_values_cannot_forge_or_split_lines(data_dir: Path) -> None:
    audit.record("district", "123\n2025-01-01\tfake", "saved\r", "a\tb\x1b[31m")
    lines = (data_dir / "audit.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert lines[0].split("\t")[2:] == ["123 2025-01-01 fake", "saved", "a b [31m"]


def test_presigned_link_queries_never_reach_the_log(data_dir: Path) -> None:
    audit.record(
        "district",
        "1234567890",
        "failed",
        "download https://ets.example.org/ssr/5c1f.pdf?expires=1&signature=abc123 refused",
    )
    text = (data_dir / "audit.log").read_text(encoding="utf-8")
    assert "signature" not in text and "abc123" not in text
    assert "https://ets.example.org/ssr/5c1f.pdf?<hidden> refused" in text


# --- A run line for every run of every command ------------------------------------------
def run_lines(data_dir: Path) -> list[list[str]]:
    log = data_dir / "audit.log"
    if not log.exists():
        return []
    lines = [line.split("\t") for line in log.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line[1] == audit.RUN]


@pytest.mark.parametrize("words", [path for path in command_paths() if path], ids=" ".join)
def test_every_command_leaves_one_run_line_even_refused(
    cli: Any, data_dir: Path, words: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(audit.STUDENTS_ENV)
    # A bad option after the command: refused as bad usage, and still recorded.
    result = cli(*words, "--no-such-option", "1234567890")
    assert result.exit_code == 2
    (line,) = run_lines(data_dir)
    when, _kind, user, command, code, counts = line
    assert command == " ".join(words) and code == "exit 2" and counts == ""
    assert user and datetime.fromisoformat(when).tzinfo == UTC
    assert "1234567890" not in (data_dir / "audit.log").read_text()


def test_a_run_line_has_the_commands_counts_and_no_ssid_name_or_value(
    cli: Any,
    data_dir: Path,
    sandbox: Any,
    sandbox_profile: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(audit.STUDENTS_ENV)
    world = sandbox.state.world
    roster = tmp_path / "Roster of Lincoln.csv"
    roster.write_text(roster_csv(world.roster_rows()[:5]), encoding="utf-8")
    out = tmp_path / "out"
    result = cli("bulk", str(roster), "--out", str(out))
    assert result.exit_code in (0, 3), result.stderr
    ssid = world.roster_rows()[0]["SSID"]
    fetched = cli("fetch", "--ssid", ssid, "--out", str(tmp_path / "one"))
    assert fetched.exit_code == 0, fetched.stderr

    (bulk, fetch) = run_lines(data_dir)
    assert bulk[3] == "bulk" and "reports_saved=" in bulk[5] and "statuses_downloaded=" in bulk[5]
    assert fetch[3] == "fetch" and "reports=" in fetch[5]
    text = (data_dir / "audit.log").read_text(encoding="utf-8")
    assert len(text.splitlines()) == 2  # no request lines unless the district asks
    names = [row["Last Name"] for row in world.roster_rows()[:5]]
    assert not re.search(r"\d{10}", text)
    assert not any(name in text for name in names) and "Lincoln" not in text


def test_a_log_that_cannot_be_written_warns_and_keeps_the_commands_outcome(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the data folder should be")
    monkeypatch.setenv("CAASPP_DATA_DIR", str(blocked))
    result = cli("config", "list")
    assert result.exit_code == 0
    assert "audit log" in result.stderr and "Traceback" not in result.stderr


def test_counts_keep_numbers_and_drop_what_could_be_personal() -> None:
    data = {
        "rows": 3,
        "dry_run": True,
        "statuses": {"downloaded": 2, "failed": 0},
        "by_profile": {"district": 3, "1234567890": 1, "a@b.org": 1},
        "manifest": "/x/manifest.csv",
        "rows_list": [1, 2],
    }
    assert audit.flat_counts(data) == {
        "rows": 3,
        "statuses_downloaded": 2,
        "by_profile_district": 3,
    }


def test_a_word_that_is_no_command_is_recorded_without_the_word(cli: Any, data_dir: Path) -> None:
    result = cli("1234567890")
    assert result.exit_code == 2
    (line,) = run_lines(data_dir)
    assert line[3] == "(unknown command)" and line[4] == "exit 2"
    assert "1234567890" not in (data_dir / "audit.log").read_text()
    assert cli("--version").exit_code == 0
    assert len(run_lines(data_dir)) == 1
