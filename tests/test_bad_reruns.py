"""Bad input after work was done: nothing done before is lost or done again.

See tests/bad_input_checks.py for what each refusal must look like.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from bad_input_checks import (
    ANA,
    BAD,
    BO,
    CY,
    MisbehavingServer,
    _report,
    _roster,
    bad_input,
    error_line,
    snapshot,
)
from helpers import SmtpServer, add_smtp_profile, write_send_inputs


# --- Nothing done before is lost or done again -------------------------------------------------
@pytest.fixture
def finished_bulk(cli: Any, sandbox: Any, sandbox_profile: Any, tmp_path: Path) -> Any:
    examples = sandbox.state.world.examples()
    ssids = [examples[case] for case in ("english_only", "spanish", "no_reports")]
    roster, out = _roster(tmp_path / "roster.csv", ssids), tmp_path / "out"
    first = cli("bulk", str(roster), "--out", str(out))
    assert first.exit_code == 0, first.output
    assert list(out.glob("*.pdf"))
    return roster, out


@pytest.mark.parametrize(
    "name",
    [
        "binary.csv",
        "empty.csv",
        "excel_workbook_renamed.csv",
        "html_saved_as_csv.csv",
        "no_ssid_column.csv",
        "quote_left_open.csv",
        "utf32.csv",
    ],
)
def test_rerun_of_bulk_with_a_roster_broken_since_touches_nothing(
    cli: Any, sandbox: Any, finished_bulk: Any, name: str
) -> None:
    roster, out = finished_bulk
    good, before = roster.read_bytes(), snapshot(out)

    roster.write_bytes((BAD / "rosters" / name).read_bytes())
    bad_input(cli("bulk", str(roster), "--out", str(out)))
    assert snapshot(out) == before  # the PDFs, the ledger and the manifest

    roster.write_bytes(good)
    downloads = sandbox.state.stats()["counters"].get("downloads_ok", 0)
    again = cli("bulk", str(roster), "--out", str(out), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["reports_saved"] == 0
    assert sandbox.state.stats()["counters"].get("downloads_ok", 0) == downloads
    pdfs = {k: v for k, v in before.items() if k.endswith(".pdf")}
    assert {k: v for k, v in snapshot(out).items() if k.endswith(".pdf")} == pdfs


def test_rerun_of_bulk_with_a_broken_config_or_options_touches_nothing(
    cli: Any, finished_bulk: Any, config_dir: Path
) -> None:
    roster, out = finished_bulk
    before = snapshot(out)
    bad_input(cli("bulk", str(roster), "--out", str(out), "--layout", "{ssid}.pdf"))
    bad_input(cli("bulk", str(roster), "--out", str(out), "--test", "SBAC"))
    config = config_dir / "config.toml"
    good = config.read_bytes()
    config.write_bytes((BAD / "config" / "not_toml.toml").read_bytes())
    bad_input(cli("bulk", str(roster), "--out", str(out)), "is not valid TOML")
    config.write_bytes(good)
    assert snapshot(out) == before


def test_rerun_of_protect_with_a_damaged_new_file_keeps_what_was_protected(
    cli: Any, tmp_path: Path
) -> None:
    reports, out, sheet = tmp_path / "reports", tmp_path / "protected", tmp_path / "pw.csv"
    for ssid in ("1000000001", "1000000002"):
        _report(reports / f"{ssid}_CAASPP_2025_en.pdf")
    first = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet))
    assert first.exit_code == 0, first.output
    before = snapshot(out) | snapshot(tmp_path / "pw.csv")

    shutil.copy(BAD / "pdfs" / "cut_in_half.pdf", reports / "1000000003_CAASPP_2025_en.pdf")
    again = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet), "--json")
    assert again.exit_code == 3
    error_line(again)
    outcomes = {Path(f["input"]).name[:10]: f["outcome"] for f in json.loads(again.stdout)["files"]}
    assert outcomes == {
        "1000000001": "already_protected",
        "1000000002": "already_protected",
        "1000000003": "skipped",
    }
    assert snapshot(out) | snapshot(tmp_path / "pw.csv") == before

    roster = tmp_path / "roster.csv"
    roster.write_bytes((BAD / "rosters" / "quote_left_open.csv").read_bytes())
    bad_input(
        cli(
            "protect",
            str(reports),
            "--out",
            str(out),
            "--passwords",
            str(sheet),
            "--roster",
            str(roster),
        ),
        "not closed",
    )
    assert snapshot(out) | snapshot(tmp_path / "pw.csv") == before


def test_rerun_of_send_after_bad_input_or_a_lost_server_sends_nothing_twice(
    cli: Any, quick_mail: None, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    add_smtp_profile(smtp_server)
    inputs = write_send_inputs(tmp_path / "case", [ANA, BO])
    assert cli(*inputs.args()).exit_code == 0
    assert len(smtp_server.received) == 4
    report = inputs.pdfs / "send-report.csv"
    before = report.read_bytes()

    for name in ("unknown_placeholder", "password_in_report_body"):
        bad_input(cli(*inputs.args(), "--templates", str(BAD / "templates" / name)))
    roster = inputs.roster.read_bytes()
    inputs.roster.write_bytes((BAD / "rosters" / "binary.csv").read_bytes())
    bad_input(cli(*inputs.args()), "binary data")
    inputs.roster.write_bytes(roster)
    assert report.read_bytes() == before
    assert len(smtp_server.received) == 4

    # A third family joins; the mail server then hangs up on every connection.
    more = write_send_inputs(tmp_path / "more", [ANA, BO, CY])
    shutil.copy(more.pdfs / CY.files()[0], inputs.pdfs / CY.files()[0])
    shutil.copy(more.roster, inputs.roster)
    with inputs.passwords.open("a", encoding="utf-8", newline="") as handle:
        handle.write(more.passwords.read_text("utf-8").splitlines()[-1] + "\r\n")
    hangs_up = MisbehavingServer(lambda conn: None)
    try:
        add_smtp_profile(hangs_up)
        lost = cli(*inputs.args(), "--json")
    finally:
        hangs_up.close()
    assert lost.exit_code == 3
    assert "could not be used after 4 attempts" in error_line(lost, only=False)
    rows = list(csv.DictReader(io.StringIO(report.read_text("utf-8-sig"))))
    assert [row["outcome"] for row in rows] == ["already_sent", "already_sent", "stopped"]

    add_smtp_profile(smtp_server)
    final = cli(*inputs.args(), "--json")
    assert final.exit_code == 0, final.output
    assert json.loads(final.stdout)["messages_sent"] == 2
    assert [m.rcpt_tos for m in smtp_server.received[4:]] == [(CY.email,), (CY.email,)]
