from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from caaspp_cli import audit


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
