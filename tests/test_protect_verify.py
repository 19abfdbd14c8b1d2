"""One definition of a protected report, for protect and for send: V=5, R=6, AES-256,
opened by the student's password and by nothing else, no changes allowed."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pikepdf
import pytest
from helpers import report_pdf

from caaspp_cli.protect.policy import PERMISSIONS
from caaspp_cli.protect.run import protect_reports
from caaspp_cli.protect.verify import ProtectionCheckError, protection_problem, verify_protected_pdf
from caaspp_cli.send import run as send

PASSWORD = "tiger-lunch-cloak"


def _encrypted(**options: object) -> bytes:
    """A one-page report, encrypted by pikepdf with ``options`` (R=6, our permissions,
    the student's password and a random owner password unless told)."""
    settings: dict[str, object] = {
        "user": PASSWORD,
        "owner": "owner-password-9x8y",
        "R": 6,
        "allow": PERMISSIONS,
        **options,
    }
    buffer = io.BytesIO()
    with report_pdf("Synthetic score report") as pdf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pikepdf warns that R=5 is deprecated
        pdf.save(buffer, encryption=pikepdf.Encryption(**settings))  # type: ignore[arg-type]
    return buffer.getvalue()


def _plain() -> bytes:
    buffer = io.BytesIO()
    with report_pdf("Synthetic score report") as pdf:
        pdf.save(buffer)
    return buffer.getvalue()


def test_a_report_caaspp_protect_wrote_is_accepted_as_a_file_and_as_bytes(
    tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "1000000001_CAASPP_2025_en.pdf").write_bytes(_plain())
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    summary = protect_reports([reports], out, sheet, workers=1)
    assert [result.ok for result in summary.files] == [True]
    password = sheet.read_text("utf-8").splitlines()[1].split(",")[2]
    written = out / "1000000001_CAASPP_2025_en.pdf"
    assert protection_problem(written, password) is None
    assert protection_problem(written.read_bytes(), password) is None
    assert send.protection_problem(written.read_bytes(), password) is None
    key = verify_protected_pdf(written, password)
    assert verify_protected_pdf(written.read_bytes(), password) == key


def test_an_r6_file_with_our_permissions_is_accepted() -> None:
    data = _encrypted()
    assert protection_problem(data, PASSWORD) is None
    assert len(verify_protected_pdf(data, PASSWORD)) == 32


def test_an_r5_file_is_refused_though_its_password_opens_it() -> None:
    data = _encrypted(R=5)
    with pikepdf.open(io.BytesIO(data), password=PASSWORD) as pdf:  # it does open
        assert pdf.encryption.R == 5
        assert pdf.encryption.bits == 256
    with pytest.raises(ProtectionCheckError, match=r"revision 5 \(R=5\)") as caught:
        verify_protected_pdf(data, PASSWORD)
    assert caught.value.other_encryption
    problem = protection_problem(data, PASSWORD)
    assert problem is not None and "revision 5 (R=5)" in problem
    assert send.protection_problem(data, PASSWORD) == problem


def test_an_r5_file_is_refused_by_send_with_a_clear_detail(tmp_path: Path) -> None:
    path = tmp_path / "r5.pdf"
    path.write_bytes(_encrypted(R=5))
    assert protection_problem(path, PASSWORD) == (
        "it is encrypted with AES-256 revision 5 (R=5), which PDF 2.0 withdrew because its "
        "password check is weak; a protected report uses revision 6 (R=6)"
    )


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"R": 4, "aes": False, "metadata": False}, id="rc4-128"),
        pytest.param({"R": 4, "aes": True}, id="aesv2"),
        pytest.param({"R": 3, "aes": False, "metadata": False}, id="rc4-r3"),
    ],
)
def test_weaker_encryptions_are_refused(options: dict[str, object]) -> None:
    data = _encrypted(**options)
    assert protection_problem(data, PASSWORD) == "its encryption is weaker than AES-256"
    assert protection_problem(data, "another-password-1") == (
        "the password in the password file does not open it"
    )
    with pytest.raises(ProtectionCheckError, match="weaker than AES-256"):
        verify_protected_pdf(data, PASSWORD)


def test_what_send_refused_before_it_still_refuses_in_the_same_words() -> None:
    assert protection_problem(_plain(), PASSWORD) == (
        "it opens without a password (it is not encrypted)"
    )
    assert protection_problem(b"Not a PDF\n", PASSWORD) == "it is not a readable PDF"
    assert protection_problem(_encrypted(), "another-password-1") == (
        "the password in the password file does not open it"
    )
    assert protection_problem(_encrypted(user=""), PASSWORD) == (
        "it opens without a password (it is not encrypted)"
    )


def test_permissions_that_allow_changes_or_an_empty_owner_password_are_refused() -> None:
    lax = protection_problem(_encrypted(allow=pikepdf.Permissions()), PASSWORD)
    assert lax == "its permissions allow changes"
    no_owner = _encrypted(owner="")
    assert protection_problem(no_owner, PASSWORD) == (
        "it opens without a password (it is not encrypted)"  # qpdf opens it as its owner
    )
    with pytest.raises(ProtectionCheckError, match="without a password, as its owner"):
        verify_protected_pdf(no_owner, PASSWORD)
