"""Bad input: PDFs that are damaged or already encrypted, given to protect and send.

See tests/bad_input_checks.py for what each refusal must look like.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from bad_input_checks import (
    ANA,
    BAD,
    BO,
    _report,
    error_line,
)
from helpers import SmtpServer, add_smtp_profile, report_pdf, write_send_inputs


# --- PDFs that are damaged or already encrypted ------------------------------------------------
@dataclass(frozen=True)
class BrokenPdf:
    protect: str  # the reason `caaspp protect` gives, listed in its results
    send: str  # the reason `caaspp send` gives, in its send report


PDFS = {
    "empty.pdf": BrokenPdf("not a PDF", "it is not a readable PDF"),
    "cut_in_half.pdf": BrokenPdf("damaged PDF", "it opens without a password"),
    "header_only.pdf": BrokenPdf("damaged PDF", "it is not a readable PDF"),
    "notes_named_pdf.pdf": BrokenPdf("not a PDF", "it is not a readable PDF"),
    "html_error_page.pdf": BrokenPdf("not a PDF", "it is not a readable PDF"),
    "broken_xref.pdf": BrokenPdf("damaged PDF", "it opens without a password"),
    "no_pages.pdf": BrokenPdf("damaged PDF: it has no pages", "it opens without a password"),
    "encrypted_aes256.pdf": BrokenPdf(
        "already encrypted", "the password in the password file does not open it"
    ),
    "encrypted_rc4_40.pdf": BrokenPdf(
        "already encrypted", "the password in the password file does not open it"
    ),
    "encrypted_no_user_password.pdf": BrokenPdf("already encrypted", "it opens without a password"),
}
REPORT_NAME = "1000000001_CAASPP_2025_en.pdf"


@pytest.mark.parametrize("name", sorted(PDFS))
def test_pdf_given_to_protect(cli: Any, tmp_path: Path, name: str) -> None:
    reports, out, sheet = tmp_path / "reports", tmp_path / "protected", tmp_path / "pw.csv"
    reports.mkdir()
    shutil.copy(BAD / "pdfs" / name, reports / REPORT_NAME)
    _report(reports / "1000000002_CAASPP_2025_en.pdf")

    result = cli(
        "protect",
        str(reports),
        "--out",
        str(out),
        "--passwords",
        str(sheet),
        "--workers",
        "1",
        "--json",
    )

    # A damaged file among good ones is listed and the others are protected: exit 3
    # ("some work was not done"), one error line, the reason in the results.
    assert result.exit_code == 3, result.output
    error = error_line(result)
    assert "1 of 2 files could not be protected" in error
    files = {Path(f["input"]).name: f for f in json.loads(result.stdout)["files"]}
    assert files[REPORT_NAME]["outcome"] == "skipped"
    assert files[REPORT_NAME]["detail"].startswith(PDFS[name].protect)
    assert files["1000000002_CAASPP_2025_en.pdf"]["outcome"] == "protected"
    assert sorted(p.name for p in out.iterdir()) == ["1000000002_CAASPP_2025_en.pdf"]
    assert "1000000001" not in sheet.read_text("utf-8")
    assert (reports / REPORT_NAME).read_bytes() == (BAD / "pdfs" / name).read_bytes()


def _weakly_protected(path: Path, password: str) -> None:
    with report_pdf("Synthetic score report") as pdf:
        pdf.save(
            path,
            encryption=pikepdf.Encryption(owner="o", user=password, R=4, aes=False, metadata=False),
        )


def _protected_then_cut(path: Path, password: str) -> None:
    with report_pdf("Synthetic score report") as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="o" * 12, user=password, R=6))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


SEND_ONLY_PDFS: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "weak_encryption_with_the_right_password": (_weakly_protected, "weaker than AES-256"),
    "protected_then_cut_short": (_protected_then_cut, "it opens without a password"),
}


@pytest.mark.parametrize("name", sorted(PDFS) + sorted(SEND_ONLY_PDFS))
def test_pdf_given_to_send(cli: Any, smtp_server: SmtpServer, tmp_path: Path, name: str) -> None:
    add_smtp_profile(smtp_server)
    inputs = write_send_inputs(tmp_path / "case", [ANA, BO])
    target = inputs.pdfs / ANA.files()[0]
    if name in PDFS:
        shutil.copy(BAD / "pdfs" / name, target)
        reason = PDFS[name].send
    else:
        make, reason = SEND_ONLY_PDFS[name]
        make(target, ANA.password)

    result = cli(*inputs.args(), "--json")

    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output and "error:" not in result.stderr
    assert "1 of 2 roster rows was not sent and needs a person (1 not encrypted)" in result.stderr
    rows = {row["ssid"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows[ANA.ssid]["outcome"] == "not_encrypted"
    assert reason in rows[ANA.ssid]["detail"]
    assert rows[BO.ssid]["outcome"] == "sent"
    # Nothing at all went to Ana's family: no report, and no password for it.
    assert [m.rcpt_tos for m in smtp_server.received] == [(BO.email,), (BO.email,)]
