from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
import shutil
import stat
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caaspp_cli.errors import BadInputError
from caaspp_cli.fsutil import is_temp_name
from caaspp_cli.protect import handler, passwords, pdfsyntax, verify, worker
from caaspp_cli.protect.handler import (
    carrier_pdf,
    new_security_handler,
    open_with_key,
    protect_pdf,
)
from caaspp_cli.protect.inputs import open_input
from caaspp_cli.protect.pdfcrypt import (
    EncryptValues,
    aes_cbc_decrypt,
    encrypt_values,
    hash_r6,
    new_encrypt_values,
    unlock,
)
from caaspp_cli.protect.policy import (
    PERMISSION_BITS,
    PERMISSIONS,
    check_password,
    encode_password,
    permission_bits,
)
from caaspp_cli.protect.results import Outcome
from caaspp_cli.protect.run import protect_reports
from caaspp_cli.protect.verify import ProtectionCheckError, probe_content, verify_protected_pdf

# sha256 of caaspp_cli/data/eff_short_wordlist_1.txt: the 1,296 words of EFF Short
# Wordlist #1 in their published (dice) order, one a line.
WORDLIST_SHA256 = "36ecca49e4fa20ca84b176c32f2e9c82f98f446585190e75f9879a95c08247bf"

needs_qpdf = pytest.mark.skipif(shutil.which("qpdf") is None, reason="qpdf is not installed")
needs_pdftoppm = pytest.mark.skipif(
    shutil.which("pdftoppm") is None, reason="poppler-utils is not installed"
)


# --- Fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sandbox score reports of three students with several reports each, named as
    `caaspp bulk` names them."""
    from caaspp_cli.sandbox.render import render_report_pdf
    from caaspp_cli.sandbox.world import World

    folder = tmp_path_factory.mktemp("corpus")
    world = World.build(30)
    students = [
        s for s in world.students.values() if sum(r.format == "pdf" for r in s.reports) >= 2
    ][:3]
    for student in students:
        pdfs = [r for r in student.reports if r.format == "pdf"][:3]
        for report in pdfs:
            name = f"{student.ssid}_{report.test}_{report.year}_{report.language}.pdf"
            (folder / name).write_bytes(render_report_pdf(world, student, report))
    return folder


@pytest.fixture
def reports(corpus: Path, tmp_path: Path) -> Path:
    """A fresh copy of the corpus for one test."""
    folder = tmp_path / "reports"
    shutil.copytree(corpus, folder)
    return folder


def _sheet(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _password_of(sheet: Path, file: str) -> str:
    (row,) = [row for row in _sheet(sheet) if row["file"] == file]
    return row["password"]


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _encrypt_with_pikepdf(source: Path, target: Path, **kwargs: object) -> None:
    options: dict[str, object] = {"R": 6, "allow": PERMISSIONS, **kwargs}
    with pikepdf.open(source) as pdf:
        pdf.save(target, encryption=pikepdf.Encryption(**options))  # type: ignore[arg-type]


def _first(folder: Path) -> Path:
    return sorted(folder.glob("*.pdf"))[0]


# --- Passwords ------------------------------------------------------------------------------
def test_wordlist_is_the_published_eff_short_list() -> None:
    data = Path(passwords.__file__).parent.parent / passwords.WORDLIST_RESOURCE
    assert hashlib.sha256(data.read_bytes()).hexdigest() == WORDLIST_SHA256
    published = data.read_text("utf-8").split()
    assert len(published) == 6**4  # four dice
    assert passwords.wordlist() == tuple(w for w in published if w != "yo-yo")


def test_generated_password_has_at_least_60_bits_of_entropy() -> None:
    # Six words drawn again until they fit in 32 characters: uniform over the sequences
    # that fit. Count them here independently of the generator's own count.
    words, separators = passwords.WORDS_PER_PASSWORD, passwords.WORDS_PER_PASSWORD - 1
    room = passwords.MAX_LENGTH - separators * len(passwords.SEPARATOR)
    lengths = [len(word) for word in passwords.wordlist()]
    ways = [0] * (room + 1)  # ways[n]: sequences so far with n letters
    ways[0] = 1
    for _ in range(words):
        ways = [sum(ways[n - k] for k in lengths if n - k >= 0) for n in range(room + 1)]
    bits = math.log2(sum(ways))
    assert bits >= 60
    assert passwords.entropy_bits() == pytest.approx(bits)
    assert passwords.entropy_bits(max_length=10**6) == pytest.approx(
        words * math.log2(len(lengths))
    )


def test_generated_password_is_lowercase_words_a_phone_can_type() -> None:
    words = set(passwords.wordlist())
    seen = set()
    for _ in range(200):
        password = passwords.generate_password()
        parts = password.split("-")
        assert len(parts) == passwords.WORDS_PER_PASSWORD
        assert all(part in words for part in parts)
        assert re.fullmatch(r"[a-z]{3,5}(-[a-z]{3,5}){5}", password)
        assert len(password) <= 32
        assert check_password(password) is None
        seen.add(password)
    assert len(seen) == 200


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "shorter than 8"),
        ("=cmd|' /C calc'!A0", "formula"),
        ("-leading-dash", "formula"),
        ("tab\tinside-it", "control character"),
        (" spaced-out ", "space"),
        ("x" * 33, "longer than 32 bytes"),
        ("ñ" * 17, "longer than 32 bytes"),
    ],
)
def test_check_password_refuses_unusable_passwords(password: str, reason: str) -> None:
    assert reason in (check_password(password) or "")


# --- Algorithm 2.B against qpdf -------------------------------------------------------------
def test_unlock_finds_the_same_file_key_as_qpdf(reports: Path, tmp_path: Path) -> None:
    target = tmp_path / "qpdf.pdf"
    _encrypt_with_pikepdf(_first(reports), target, user="cañón-secret", owner="owner-secret-x")
    with pikepdf.open(target, password="cañón-secret") as pdf:
        qpdf_key = pdf.encryption.encryption_key
        values = EncryptValues.of(pdf)
    assert unlock(values, "cañón-secret".encode()) == qpdf_key
    owner_hash = hash_r6(b"owner-secret-x", values.O[32:40], values.U[:48])
    assert owner_hash == values.O[:32]


# --- Reading /Encrypt in place ----------------------------------------------------------------
def _literal(data: bytes) -> bytes:
    escaped = data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"(" + escaped.replace(b"\r", b"\\r") + b")"


@given(st.binary(max_size=64))
def test_literal_and_hex_strings_read_back(data: bytes) -> None:
    assert pdfsyntax.parse_object(_literal(data), 0)[0] == data
    assert pdfsyntax.parse_object(b"<" + data.hex().encode() + b">", 0)[0] == data


def test_a_dictionary_with_escapes_comments_and_references_reads() -> None:
    text = (
        b"<< /Filter /Standard % a comment\n /P -1324 /O (a\\053b\\)\\\r\nc(d)) "
        b"/CF << /StdCF << /CFM /AES#563 >> >> /U <41 42 4> /Ref 12 0 R /A [1 2.5 true null] >>"
    )
    value, end = pdfsyntax.parse_object(text, 0)
    assert end == len(text)
    assert value == {
        "/Filter": "/Standard",
        "/P": -1324,
        "/O": b"a+b)c(d)",
        "/CF": {"/StdCF": {"/CFM": "/AESV3"}},
        "/U": b"AB@",
        "/Ref": ("R", 12, 0),
        "/A": [1, 2.5, True, None],
    }


def test_encrypt_values_read_in_place_agree_with_qpdf(reports: Path, tmp_path: Path) -> None:
    target = tmp_path / "qpdf.pdf"
    for number in range(5):
        _encrypt_with_pikepdf(_first(reports), target, user=f"pw-{number}-long-enough", owner="o")
        with pikepdf.open(target, password=f"pw-{number}-long-enough") as pdf:
            assert EncryptValues.read(target.read_bytes()) == EncryptValues.of(pdf)


# --- The verifier -----------------------------------------------------------------------------
def test_verifier_accepts_a_qpdf_encrypted_copy_of_the_input(reports: Path, tmp_path: Path) -> None:
    source = _first(reports)
    target = tmp_path / "ok.pdf"
    _encrypt_with_pikepdf(source, target, user="tiger-lunch-cloak", owner="another-one-9")
    with open_input(source) as pdf:
        probe = probe_content(pdf)
    assert len(verify_protected_pdf(target, "tiger-lunch-cloak", probe=probe)) == 32


def test_verifier_rejects_a_file_encrypted_with_another_password(
    reports: Path, tmp_path: Path
) -> None:
    target = tmp_path / "other.pdf"
    _encrypt_with_pikepdf(_first(reports), target, user="other-password-1", owner="owner-pass-2")
    with pytest.raises(ProtectionCheckError, match="password does not open it") as caught:
        verify_protected_pdf(target, "tiger-lunch-cloak")
    assert caught.value.wrong_password


def test_verifier_rejects_an_unencrypted_file(reports: Path) -> None:
    with pytest.raises(ProtectionCheckError, match="not encrypted"):
        verify_protected_pdf(_first(reports), "tiger-lunch-cloak")


def test_verifier_rejects_a_file_that_opens_without_a_password(
    reports: Path, tmp_path: Path
) -> None:
    target = tmp_path / "open.pdf"
    _encrypt_with_pikepdf(_first(reports), target, user="", owner="")
    with pytest.raises(ProtectionCheckError, match=r"without a password|empty password"):
        verify_protected_pdf(target, "")
    with pytest.raises(ProtectionCheckError, match="password does not open it"):
        verify_protected_pdf(target, "tiger-lunch-cloak")


def test_verifier_rejects_an_empty_owner_password(reports: Path, tmp_path: Path) -> None:
    target = tmp_path / "owner.pdf"
    _encrypt_with_pikepdf(_first(reports), target, user="tiger-lunch-cloak", owner="")
    with pytest.raises(ProtectionCheckError, match="without a password, as its owner"):
        verify_protected_pdf(target, "tiger-lunch-cloak")


def test_verifier_rejects_aes_128_and_permissions_that_allow_changes(
    reports: Path, tmp_path: Path
) -> None:
    weak = tmp_path / "r4.pdf"
    _encrypt_with_pikepdf(_first(reports), weak, user="tiger-lunch-cloak", owner="o-9x8y7z6", R=4)
    with pytest.raises(ProtectionCheckError, match="AES-256"):
        verify_protected_pdf(weak, "tiger-lunch-cloak")
    lax = tmp_path / "lax.pdf"
    _encrypt_with_pikepdf(
        _first(reports),
        lax,
        user="tiger-lunch-cloak",
        owner="o-9x8y7z6",
        allow=pikepdf.Permissions(),
    )
    with pytest.raises(ProtectionCheckError, match="allow changes"):
        verify_protected_pdf(lax, "tiger-lunch-cloak")


def test_verifier_rejects_another_reports_content(reports: Path, tmp_path: Path) -> None:
    first, second = sorted(reports.glob("*.pdf"))[:2]
    target = tmp_path / "first.pdf"
    _encrypt_with_pikepdf(first, target, user="tiger-lunch-cloak", owner="o-9x8y7z6")
    with open_input(second) as pdf:
        probe = probe_content(pdf)
    with pytest.raises(ProtectionCheckError, match=r"differs|pages"):
        verify_protected_pdf(target, "tiger-lunch-cloak", probe=probe)


def test_verifier_rejects_a_damaged_content_stream(reports: Path, tmp_path: Path) -> None:
    source = _first(reports)
    with open_input(source) as pdf:
        probe = probe_content(pdf)
        handler = new_security_handler("tiger-lunch-cloak")
        target = tmp_path / "protected.pdf"
        protect_pdf(pdf, source, target, handler)
    verify_protected_pdf(target, "tiger-lunch-cloak", probe=probe)
    with open_with_key(target, handler.file_key) as pdf:
        stream = verify.first_content_stream(pdf)
        assert stream is not None
        offset = verify.offset_of(pdf, target.read_bytes(), stream)
    data = bytearray(target.read_bytes())
    start = data.index(b"stream", offset) + len(b"stream\n")
    data[start + 40] ^= 0xFF  # one byte in the middle of the ciphertext
    target.write_bytes(bytes(data))
    with pytest.raises(ProtectionCheckError):
        verify_protected_pdf(target, "tiger-lunch-cloak", probe=probe)


def test_a_report_with_object_streams_is_protected_and_verified(
    reports: Path, tmp_path: Path
) -> None:
    compact = tmp_path / "in" / "0000000001_OBJSTM_2025_en.pdf"
    compact.parent.mkdir()
    with pikepdf.open(_first(reports)) as pdf:
        pdf.save(compact, object_stream_mode=pikepdf.ObjectStreamMode.generate, min_version="2.0")
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    summary = protect_reports([compact.parent], out, sheet, workers=1)
    assert [r.outcome for r in summary.files] == [Outcome.PROTECTED]
    password = _password_of(sheet, compact.name)
    with pikepdf.open(out / compact.name, password=password) as pdf:
        assert pdf.pdf_version == "2.0"
        assert any(
            obj.get("/Type") == pikepdf.Name.ObjStm
            for obj in pdf.objects
            if isinstance(obj, pikepdf.Stream)
        )
    verify_protected_pdf(out / compact.name, password)


def test_one_security_handler_serves_several_reports_with_their_own_ids(
    reports: Path, tmp_path: Path
) -> None:
    handler = new_security_handler("tiger-lunch-cloak")
    for source in sorted(reports.glob("*.pdf"))[:2]:
        target = tmp_path / source.name
        with open_input(source) as pdf:
            protect_pdf(pdf, source, target, handler)
            original_id = bytes(pdf.trailer.ID[0])
        with pikepdf.open(target, password="tiger-lunch-cloak") as protected:
            assert protected.encryption.encryption_key == handler.file_key
            assert bytes(protected.trailer.ID[0]) == original_id


# --- Our own R=6 values (algorithms 8, 9 and 10) against qpdf ---------------------------------
@pytest.mark.parametrize(
    "allow",
    [
        PERMISSIONS,
        pikepdf.Permissions(),
        pikepdf.Permissions(print_lowres=False, print_highres=False, extract=False),
        pikepdf.Permissions(modify_form=False, modify_annotation=False, accessibility=False),
    ],
)
def test_permission_bits_are_what_qpdf_writes(allow: pikepdf.Permissions) -> None:
    buffer = io.BytesIO()
    with pikepdf.new() as pdf:
        pdf.save(buffer, encryption=pikepdf.Encryption(user="u" * 9, owner="o" * 9, allow=allow))
    assert permission_bits(allow) == EncryptValues.read(buffer.getvalue()).P
    assert permission_bits(PERMISSIONS) == PERMISSION_BITS


_PASSWORD_TEXT = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=20
)


@settings(max_examples=25)
@given(user=_PASSWORD_TEXT, owner=_PASSWORD_TEXT)
def test_qpdf_opens_our_values_with_the_user_and_the_owner_password(user: str, owner: str) -> None:
    user_bytes, owner_bytes = encode_password(user), encode_password(owner)
    key = bytes(range(32))
    values = encrypt_values(user_bytes, owner_bytes, key, PERMISSION_BITS, bytes(range(36)))
    carrier = io.BytesIO(carrier_pdf(values, b"\x01" * 16))
    for password in {user_bytes, owner_bytes}:
        with pikepdf.open(carrier, password=password) as pdf:
            assert pdf.encryption.encryption_key == key
            assert pdf.encryption.R == 6
            assert pdf.encryption.P == PERMISSION_BITS
    if user_bytes != owner_bytes:
        assert unlock(values, user_bytes) == key
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(carrier)


def test_new_values_draw_a_fresh_key_salts_and_owner_password_each_time() -> None:
    first, first_key = new_encrypt_values(b"tiger-lunch-cloak", PERMISSION_BITS)
    second, second_key = new_encrypt_values(b"tiger-lunch-cloak", PERMISSION_BITS)
    assert first_key != second_key
    assert len({first.U, second.U}) == len({first.O, second.O}) == 2
    assert unlock(first, b"tiger-lunch-cloak") == first_key
    assert unlock(second, b"tiger-lunch-cloak") == second_key


def test_a_failed_check_against_qpdf_fails_every_file_and_writes_none(
    reports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = handler.encrypt_values

    def wrong_key(user: bytes, owner: bytes, key: bytes, *args: Any) -> EncryptValues:
        return real(user, owner, bytes(32), *args)  # wraps another key than the one given

    handler.check_against_qpdf.cache_clear()
    monkeypatch.setattr(handler, "encrypt_values", wrong_key)
    try:
        out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
        summary = protect_reports([reports], out, sheet, workers=1)
    finally:
        handler.check_against_qpdf.cache_clear()
    assert {r.outcome for r in summary.files} == {Outcome.FAILED}
    assert all("qpdf reads another key" in r.detail for r in summary.files)
    assert list(out.iterdir()) == []


@needs_qpdf
def test_written_files_owner_values_refuse_the_empty_password_and_pass_qpdf_check(
    reports: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    protect_reports([reports], out, sheet, workers=2)
    rows = _sheet(sheet)
    assert len(rows) == len(list(reports.glob("*.pdf")))
    for row in rows:
        path = out / row["file"]
        values = EncryptValues.read(path.read_bytes())
        key = unlock(values, row["password"].encode())
        # /O does not validate the empty password, and /OE does not give the key with it.
        assert hash_r6(b"", values.O[32:40], values.U[:48]) != values.O[:32]
        empty_owner_key = hash_r6(b"", values.O[40:48], values.U[:48])
        assert aes_cbc_decrypt(empty_owner_key, bytes(16), values.OE[:32]) != key
        # Nor does the student's password open it as its owner: the owner password is another.
        assert hash_r6(row["password"].encode(), values.O[32:40], values.U[:48]) != values.O[:32]
        checked = subprocess.run(
            ["qpdf", "--check", f"--password={row['password']}", str(path)],
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "No syntax or stream encoding errors found" in checked.stdout
        # qpdf (Debian's build, another crypto library) tries the empty password as owner
        # and as user, and neither works.
        required = subprocess.run(["qpdf", "--requires-password", str(path)], check=False)
        assert required.returncode == 0  # 0: "a password is required"
        shown = subprocess.run(
            ["qpdf", "--show-encryption", "--password=", str(path)],
            capture_output=True,
            text=True,
        )
        assert "Incorrect password supplied" in shown.stdout


def test_batches_keep_each_students_files_together_and_in_order() -> None:
    def task(number: int) -> worker.Task:
        count = number % 4 + 1
        files = (worker.FileTask(number * 10 + i, Path(), Path(), Path()) for i in range(count))
        return worker.Task(f"password-{number}", tuple(files))

    tasks = [task(number) for number in range(200)]
    found = worker.batches(tasks, workers=2)
    assert [task for batch in found for task in batch] == tasks
    sizes = [sum(len(task.files) for task in batch) for batch in found]
    assert max(sizes) <= 16 + 3  # a batch closes at 16 files, a task is never split
    assert len(found) >= 2 * 8
    small = worker.batches(tasks[:5], workers=2)
    assert [len(batch) for batch in small] == [1] * 5  # few files: one task a batch


# --- Protecting folders -----------------------------------------------------------------------
@needs_qpdf
def test_protected_files_are_aes256_r6_for_qpdf(reports: Path, tmp_path: Path) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    summary = protect_reports([reports], out, sheet, workers=1)
    assert summary.counts()["protected"] == len(list(reports.glob("*.pdf")))
    for row in _sheet(sheet):
        shown = subprocess.run(
            ["qpdf", "--show-encryption", f"--password={row['password']}", str(out / row["file"])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "R = 6" in shown
        assert "Supplied password is user password" in shown
        assert "stream encryption method: AESv3" in shown
        assert "string encryption method: AESv3" in shown
        assert "print high resolution: allowed" in shown
        assert "modify anything: not allowed" in shown
        checked = subprocess.run(
            ["qpdf", "--check", f"--password={row['password']}", str(out / row["file"])],
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        refused = subprocess.run(
            ["qpdf", "--check", str(out / row["file"])], capture_output=True, text=True
        )
        assert refused.returncode != 0
        assert "invalid password" in refused.stderr


@needs_pdftoppm
def test_pdftoppm_opens_a_roster_password_with_accents(reports: Path, tmp_path: Path) -> None:
    ssids = sorted({p.name[:10] for p in reports.glob("*.pdf")})
    roster = _roster(tmp_path / "roster.csv", reports, dict.fromkeys(ssids, "Contraseña-Niño-7"))
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    protect_reports(
        [reports], out, sheet, roster=roster, password_column="Family Password", workers=1
    )
    row = _sheet(sheet)[0]
    assert row["password"] == "Contraseña-Niño-7"
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "20",
            "-png",
            "-upw",
            "Contraseña-Niño-7",
            str(out / row["file"]),
            str(tmp_path / "yes"),
        ],
        capture_output=True,
        check=True,
    )
    assert list(tmp_path.glob("yes*.png"))


@needs_pdftoppm
def test_pdftoppm_renders_only_with_the_password(reports: Path, tmp_path: Path) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    protect_reports([reports], out, sheet, workers=1)
    for number, row in enumerate(_sheet(sheet)):
        target = out / row["file"]
        refused = subprocess.run(
            ["pdftoppm", "-r", "10", "-png", str(target), str(tmp_path / f"no{number}")],
            capture_output=True,
            text=True,
        )
        assert refused.returncode != 0
        assert not list(tmp_path.glob(f"no{number}*.png"))
        opened = subprocess.run(
            [
                "pdftoppm",
                "-r",
                "10",
                "-png",
                "-upw",
                row["password"],
                str(target),
                str(tmp_path / f"yes{number}"),
            ],
            capture_output=True,
            text=True,
        )
        assert opened.returncode == 0, opened.stderr
        assert list(tmp_path.glob(f"yes{number}*.png"))


def test_one_password_per_student_and_one_row_per_file(reports: Path, tmp_path: Path) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    summary = protect_reports([reports], out, sheet, workers=1)
    rows = _sheet(sheet)
    assert sorted(row["file"] for row in rows) == sorted(p.name for p in reports.glob("*.pdf"))
    by_student: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        assert row["file"].startswith(row["ssid"] + "_")
        by_student[row["ssid"]].add(row["password"])
    assert len(by_student) == 3 == summary.students == summary.new_passwords
    assert all(len(found) == 1 for found in by_student.values())
    assert len({next(iter(found)) for found in by_student.values()}) == 3


@pytest.mark.posix
def test_files_are_owner_only_and_inputs_unchanged(reports: Path, tmp_path: Path) -> None:
    before = _digests(reports)
    out, sheet = tmp_path / "new" / "out", tmp_path / "private" / "passwords.csv"
    protect_reports([reports], out, sheet, workers=1)
    assert _digests(reports) == before
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o600
    assert stat.S_IMODE(sheet.parent.stat().st_mode) == 0o700
    outputs = sorted(out.iterdir())
    assert [p.name for p in outputs] == sorted(p.name for p in reports.glob("*.pdf"))
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in outputs)


def test_a_rerun_keeps_passwords_and_does_not_write_again(reports: Path, tmp_path: Path) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    protect_reports([reports], out, sheet, workers=1)
    sheet_before = sheet.read_bytes()
    files_before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}

    summary = protect_reports([reports], out, sheet, workers=1)

    assert summary.counts()["already_protected"] == len(files_before)
    assert summary.new_passwords == 0
    assert sheet.read_bytes() == sheet_before
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()} == files_before


def test_a_rerun_protects_a_missing_file_with_the_students_password(
    reports: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    protect_reports([reports], out, sheet, workers=1)
    name = _first(reports).name
    password = _password_of(sheet, name)
    (out / name).unlink()  # as if interrupted after the sheet row, before the rename

    summary = protect_reports([reports], out, sheet, workers=1)

    assert [r.output for r in summary.files if r.outcome == Outcome.PROTECTED] == [name]
    assert len(_sheet(sheet)) == len(list(reports.glob("*.pdf")))
    verify_protected_pdf(out / name, password)


def test_new_reports_of_a_known_student_get_the_same_password(
    reports: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    later = tmp_path / "later"
    later.mkdir()
    first_ssid = _first(reports).name[:10]
    for path in sorted(reports.glob(f"{first_ssid}_*.pdf"))[1:]:
        path.rename(later / path.name)
    protect_reports([reports], out, sheet, workers=1)
    password = _password_of(sheet, _first(reports).name)

    protect_reports([later], out, sheet, workers=1)

    rows = [row for row in _sheet(sheet) if row["ssid"] == first_ssid]
    assert len(rows) >= 2
    assert {row["password"] for row in rows} == {password}


@pytest.mark.posix
def test_a_sheet_edited_in_a_spreadsheet_is_added_to_in_its_own_columns(
    reports: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    later = tmp_path / "later"
    later.mkdir()
    moved = sorted(reports.glob("*.pdf"))[-1]
    moved.rename(later / moved.name)
    protect_reports([reports], out, sheet, workers=1)
    rows = _sheet(sheet)
    with sheet.open("w", newline="", encoding="utf-8") as handle:  # a "sent" column, no EOL
        writer = csv.DictWriter(handle, ["sent", *rows[0]], lineterminator="\n")
        writer.writeheader()
        writer.writerows({"sent": "yes", **row} for row in rows)
    sheet.write_text(sheet.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")
    sheet.chmod(0o644)

    protect_reports([later], out, sheet, workers=1)

    after = _sheet(sheet)
    assert after[:-1] == [{"sent": "yes", **row} for row in rows]
    assert after[-1]["file"] == moved.name
    assert after[-1]["sent"] == ""
    assert re.fullmatch(r"[a-z-]+", after[-1]["password"])
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o600


def test_hidden_files_are_not_inputs(reports: Path, tmp_path: Path) -> None:
    (reports / "._0784900152_CAASPP_2025_en.pdf").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (reports / ".cache").mkdir()
    shutil.copy(_first(reports), reports / ".cache" / _first(reports).name)
    summary = protect_reports([reports], tmp_path / "out", tmp_path / "pw.csv", workers=1)
    assert all(result.ok for result in summary.files)
    assert len(summary.files) == len(list(reports.glob("[0-9]*.pdf")))


def test_an_existing_copy_under_another_password_is_left_alone(
    reports: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    out.mkdir()
    source = _first(reports)
    _encrypt_with_pikepdf(source, out / source.name, user="someone-elses-pw", owner="o-1a2b3c4d")
    before = (out / source.name).read_bytes()

    summary = protect_reports([reports], out, sheet, workers=1)

    (result,) = [r for r in summary.files if r.output == source.name]
    assert result.outcome == Outcome.FAILED
    assert "left as it is" in result.detail
    assert (out / source.name).read_bytes() == before
    assert source.name not in {row["file"] for row in _sheet(sheet)}


def test_an_older_copy_under_the_same_password_or_a_stray_file_is_replaced(
    reports: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    protect_reports([reports], out, sheet, workers=1)
    first, second = sorted(reports.glob("*.pdf"))[:2]
    assert first.name[:10] == second.name[:10]  # one student's two reports
    shutil.copy(out / first.name, out / second.name)  # the student's password, other content
    stray = sorted(reports.glob("*.pdf"))[-1]
    (out / stray.name).write_text("not a PDF", encoding="utf-8")
    rows_before = _sheet(sheet)

    summary = protect_reports([reports], out, sheet, workers=1)

    replaced = {r.output for r in summary.files if r.outcome == Outcome.PROTECTED}
    assert replaced == {second.name, stray.name}
    assert _sheet(sheet) == rows_before
    for name in (second.name, stray.name):
        with open_input(reports / name) as pdf:
            verify_protected_pdf(out / name, _password_of(sheet, name), probe=probe_content(pdf))


def test_bad_inputs_are_skipped_with_their_reason(reports: Path, tmp_path: Path) -> None:
    good = sorted(reports.glob("*.pdf"))
    _encrypt_with_pikepdf(good[0], reports / "1111111111_ENC_2025_en.pdf", user="x" * 10, owner="y")
    (reports / "2222222222_TXT_2025_en.pdf").write_text("Not a report\n", encoding="utf-8")
    data = good[1].read_bytes()
    (reports / "3333333333_CUT_2025_en.pdf").write_bytes(data[: len(data) // 2])
    (reports / "4444444444_HOLE_2025_en.pdf").write_bytes(data[:3000] + data[-2000:])
    _encrypt_with_pikepdf(good[0], reports / "5555555555_OWN_2025_en.pdf", user="", owner="y" * 9)
    before = _digests(reports)
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"

    summary = protect_reports([reports], out, sheet, workers=1)

    details = {r.output[:10]: (r.outcome, r.detail) for r in summary.files if not r.ok}
    assert details["1111111111"] == (Outcome.SKIPPED, "already encrypted: it asks for a password")
    assert details["2222222222"] == (Outcome.SKIPPED, "not a PDF")
    assert details["3333333333"][0] == Outcome.SKIPPED
    assert details["3333333333"][1].startswith("damaged PDF")
    assert details["4444444444"][0] == Outcome.SKIPPED
    assert details["4444444444"][1].startswith("damaged PDF")
    assert details["5555555555"] == (Outcome.SKIPPED, "already encrypted")
    assert len(details) == 5
    assert summary.counts()["protected"] == len(good)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in good)
    assert _digests(reports) == before
    assert {row["file"] for row in _sheet(sheet)} == {p.name for p in good}


@pytest.mark.posix
def test_a_bulk_manifest_maps_files_in_subfolders_to_students(
    reports: Path, tmp_path: Path
) -> None:
    bulk = tmp_path / "bulk"
    names = sorted(p.name for p in reports.glob("*.pdf"))
    ssids = {name[:10] for name in names}
    lines = ["ssid,status,test,year,language,file,detail"]
    for number, name in enumerate(names):
        ssid = name[:10]
        relative = f"school-{number % 2}/report-{number}.pdf"  # no SSID in the name
        (bulk / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(reports / name, bulk / relative)
        lines.append(f"{ssid},saved,CAASPP,2025,en,{relative},")
    lines.append("1234567890,not_found,CAASPP,2025,en,,no such student")
    (bulk / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (bulk / "stray.pdf").write_bytes((reports / names[0]).read_bytes())
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"

    summary = protect_reports([bulk], out, sheet, workers=1)

    assert all(result.ok for result in summary.files)
    rows = _sheet(sheet)
    assert {row["ssid"] for row in rows if row["file"] != "stray.pdf"} == ssids
    assert (out / "school-0" / "report-0.pdf").is_file()
    assert stat.S_IMODE((out / "school-1").stat().st_mode) == 0o700
    (stray,) = [row for row in rows if row["file"] == "stray.pdf"]
    assert stray["ssid"] == ""
    assert stray["password"] not in {row["password"] for row in rows if row["ssid"]}
    assert summary.students == len(ssids) + 1


def test_files_named_one_by_one_use_their_folders_manifest(reports: Path, tmp_path: Path) -> None:
    source = _first(reports)
    renamed = reports / "report.pdf"
    source.rename(renamed)
    (reports / "manifest.csv").write_text(
        "ssid,status,test,year,language,file,detail\n"
        f"{source.name[:10]},saved,CAASPP,2025,en,report.pdf,\n",
        encoding="utf-8",
    )
    second = sorted(reports.glob("[0-9]*.pdf"))[0]
    summary = protect_reports([renamed, second], tmp_path / "out", tmp_path / "pw.csv", workers=1)
    assert [(r.output, r.ssid) for r in summary.files] == [
        ("report.pdf", source.name[:10]),
        (second.name, second.name[:10]),
    ]


def test_an_output_folder_inside_the_input_folder_is_not_read_as_input(
    reports: Path, tmp_path: Path
) -> None:
    out, sheet = reports / "protected", tmp_path / "passwords.csv"
    protect_reports([reports], out, sheet, workers=1)
    summary = protect_reports([reports], out, sheet, workers=1)
    assert {r.outcome for r in summary.files} == {Outcome.ALREADY_PROTECTED}
    assert not (out / "protected").exists()


# --- Where the password file may go -----------------------------------------------------------
def test_a_password_file_inside_the_output_folder_is_refused(reports: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(BadInputError, match="inside the output folder") as caught:
        protect_reports([reports], out, out / "sub" / "passwords.csv", workers=1)
    assert caught.value.exit_code == 2
    assert not out.exists()


def test_a_password_file_inside_an_input_folder_is_refused(reports: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="inside the input folder"):
        protect_reports([reports], tmp_path / "out", reports / "passwords.csv", workers=1)
    assert not (tmp_path / "out").exists()
    assert not (reports / "passwords.csv").exists()


def test_an_output_folder_equal_to_the_input_folder_is_refused(reports: Path) -> None:
    with pytest.raises(BadInputError, match="replace the reports"):
        protect_reports([reports], reports, reports.parent / "passwords.csv", workers=1)


def test_a_foreign_csv_is_not_taken_for_a_password_file(reports: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "grades.csv"
    sheet.write_text("name,grade\nAna,5\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="not a caaspp password file"):
        protect_reports([reports], tmp_path / "out", sheet, workers=1)
    assert sheet.read_text(encoding="utf-8") == "name,grade\nAna,5\n"


# --- Passwords from the roster ----------------------------------------------------------------
def _roster(path: Path, reports: Path, passwords_by_ssid: dict[str, str]) -> Path:
    ssids = sorted({p.name[:10] for p in reports.glob("*.pdf")})
    lines = ["SSID,First Name,Last Name,Guardian Name,Guardian Email,Family Password"]
    for number, ssid in enumerate(ssids):
        password = passwords_by_ssid.get(ssid, "")
        lines.append(f"{ssid},Ana{number},Ruiz,Rosa Ruiz,rosa{number}@example.org,{password}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_password_column_takes_each_students_password_from_the_roster(
    reports: Path, tmp_path: Path
) -> None:
    ssids = sorted({p.name[:10] for p in reports.glob("*.pdf")})
    chosen = {ssid: f"Família-{ssid[-4:]}-ñandú" for ssid in ssids}
    roster = _roster(tmp_path / "roster.csv", reports, chosen)
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"

    summary = protect_reports(
        [reports], out, sheet, roster=roster, password_column="Family Password", workers=1
    )

    assert all(result.ok for result in summary.files)
    assert summary.new_passwords == 3  # new to the password file: families to tell
    for row in _sheet(sheet):
        assert row["password"] == chosen[row["ssid"]]
        assert row["student_name"].startswith("Ana")
        assert row["guardian_name"] == "Rosa Ruiz"
        assert row["email"].endswith("@example.org")
        verify_protected_pdf(out / row["file"], chosen[row["ssid"]])


def test_a_short_roster_password_is_refused_naming_its_row(reports: Path, tmp_path: Path) -> None:
    ssids = sorted({p.name[:10] for p in reports.glob("*.pdf")})
    roster = _roster(
        tmp_path / "roster.csv",
        reports,
        {ssids[0]: "long-enough-1", ssids[1]: "short7!", ssids[2]: "long-enough-3"},
    )
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    with pytest.raises(BadInputError, match=rf"line 3 \(SSID {ssids[1]}\): it is shorter than 8"):
        protect_reports(
            [reports], out, sheet, roster=roster, password_column="Family Password", workers=1
        )
    assert not out.exists()
    assert not sheet.exists()


def test_a_student_without_a_roster_password_fails_and_others_go_on(
    reports: Path, tmp_path: Path
) -> None:
    ssids = sorted({p.name[:10] for p in reports.glob("*.pdf")})
    roster = _roster(tmp_path / "roster.csv", reports, {ssids[0]: "long-enough-1"})
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    summary = protect_reports(
        [reports], out, sheet, roster=roster, password_column="Family Password", workers=1
    )
    for result in summary.files:
        if result.ssid == ssids[0]:
            assert result.outcome == Outcome.PROTECTED
        else:
            assert result.outcome == Outcome.FAILED
            assert "no password for this student" in result.detail


def test_a_roster_password_that_differs_from_the_sheet_is_not_used(
    reports: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    protect_reports([reports], out, sheet, workers=1)
    ssids = sorted({p.name[:10] for p in reports.glob("*.pdf")})
    roster = _roster(tmp_path / "roster.csv", reports, dict.fromkeys(ssids, "a-new-password"))
    summary = protect_reports(
        [reports], out, sheet, roster=roster, password_column="Family Password", workers=1
    )
    assert {r.outcome for r in summary.files} == {Outcome.FAILED}
    assert all("differs from the one in the password file" in r.detail for r in summary.files)


# --- Parallel runs and interruptions ----------------------------------------------------------
def test_several_workers_protect_everything(reports: Path, tmp_path: Path) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    events: list[Any] = []
    summary = protect_reports([reports], out, sheet, workers=2, on_progress=events.append)
    assert summary.counts()["protected"] == len(list(reports.glob("*.pdf")))
    assert [event.done for event in events] == list(range(len(summary.files) + 1))
    for row in _sheet(sheet):
        verify_protected_pdf(out / row["file"], row["password"])


def test_the_sheet_row_is_on_disk_before_the_file_has_its_name(
    reports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    real_replace = os.replace
    checked = []

    def replace(source: Path, target: Path) -> None:
        if Path(target).parent == out and not is_temp_name(Path(target).name):
            assert Path(target).name in {row["file"] for row in _sheet(sheet)}
            checked.append(target)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    protect_reports([reports], out, sheet, workers=1)
    assert len(checked) == len(list(reports.glob("*.pdf")))


def test_an_interruption_leaves_no_partial_file(
    reports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    real_verify = verify_protected_pdf
    calls = []

    def interrupted(path: Path, *args: object, **kwargs: object) -> bytes:
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_verify(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker, "verify_protected_pdf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        protect_reports([reports], out, sheet, workers=1)
    left = [p.name for p in out.iterdir()]
    assert not [name for name in left if is_temp_name(name)]
    listed = {row["file"] for row in _sheet(sheet)} if sheet.exists() else set()
    assert set(left) <= listed
    for name in left:
        verify_protected_pdf(out / name, _password_of(sheet, name))
