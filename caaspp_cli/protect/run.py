"""Encryption, passwords and verification: everything ``caaspp protect`` does.

What a protected report is
--------------------------
A copy of the report encrypted with the PDF 2.0 security handler (V=5, R=6: AES-256 for
streams and strings), opened by the student's password (the *user* password), with a
different random *owner* password that is thrown away at once, and permissions that allow
printing (and reading aloud, and copying text) and deny every kind of change.

How it is made: one key derivation per student
----------------------------------------------
The costly part of R=6 is the password hashing (algorithm 2.B of ISO 32000-2): qpdf
computes four such hashes to write a file and up to five to open one. None of them depends
on the document: the /Encrypt values (/U /UE /O /OE /Perms) and the random file key they
wrap can serve every report of a student. So, once per student, qpdf makes a security
handler for the student's password (it encrypts an empty document), and then writes each
of the student's reports with qpdf's own *copy encryption* (``--copy-encryption`` with
``--password-is-hex-key``): the report is written by qpdf, encrypted by qpdf with that file
key under those /Encrypt values, with no password hashing at all. The copy is made from a
small *carrier* PDF that holds the student's /Encrypt dictionary and the report's own
first /ID, so every report keeps its permanent identifier. Each stream and string is still
encrypted with a fresh random IV; sharing a file key between the files of one password
reveals nothing that the password does not already unlock.

How it is verified: our own algorithm 2.B
-----------------------------------------
Re-opening each file with qpdf and its password would cost more than writing it (five
hashes). Instead, for every file written, caaspp reads its /Encrypt dictionary in place
(it is never encrypted and never in an object stream) and checks it with an
implementation of its own of ISO 32000-2 algorithms 2.A and 2.B (hashlib and the
``cryptography`` package):

- the student's password validates against /U, and the empty password validates neither
  against /U nor against /O: a reader cannot open the file without the password;
- /UE, unwrapped with the student's password, gives the file key; /Perms decrypted with
  that key reads ``adb`` and the permissions written in /P, which allow printing and deny
  modification;
- qpdf, given that key (and no password), parses the file and reads the same /Encrypt
  dictionary; the bytes of a content stream, taken from the file at the offset its
  cross-reference table gives, decrypt (AES-256-CBC, the IV in the first 16 bytes) with
  that key, and inflate to the content of the input report's first page.

So the password opens the file, and nothing else does. The hashes depend only on the
password and the /Encrypt values, so their results are kept for the student's next files
(a file whose values differ is checked afresh). qpdf made the handler and our code checks
it: two independent implementations have to agree.

Files and the password sheet
----------------------------
Each output is written to a temp file beside its final name (0600), fsynced and verified
by a worker process; the parent then appends the student's row to the password sheet,
fsyncs it, and only then renames the file into place. Ctrl-C lets the running workers
finish and removes their temp files; kill -9 can leave temp files (``.caaspp-*.part``)
and sheet rows for files not yet there, but never a protected file whose password is not
in the sheet, and never a partial file under a final name. A re-run removes those temp
files, protects what is missing with the passwords in the sheet, and leaves alone every
copy that still verifies.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import signal
import sys
import tempfile
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Final

import pikepdf
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from caaspp_cli.artifacts import (
    FORMULA_START,
    SEND_LEDGER_NAME,
    SEND_REPORT_NAME,
    PasswordSheet,
    SheetRow,
    is_report_candidate,
    manifest_ssids,
    neutralize_cell,
    ssid_of_file_name,
)
from caaspp_cli.errors import BadInputError
from caaspp_cli.fsutil import (
    PRIVATE_FILE_MODE,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    FileHeldError,
    LinkRefusedError,
    ensure_private_dir,
    is_link_stat,
    open_nofollow,
    prepare_output_dir,
    private_dirs_within,
    refuse_link,
    replace_into_place,
    sweep_temp_files,
)
from caaspp_cli.protect.passwords import generate_password
from caaspp_cli.words import plural

__all__ = [
    "PERMISSIONS",
    "EncryptValues",
    "FileResult",
    "Outcome",
    "ProtectProgress",
    "ProtectSummary",
    "ProtectionCheckError",
    "SecurityHandler",
    "check_password",
    "collect_inputs",
    "hash_r6",
    "new_security_handler",
    "protect_pdf",
    "protect_reports",
    "unlock",
    "verify_protected_pdf",
]

# --- Permissions ------------------------------------------------------------------------------
PERMISSIONS: Final = pikepdf.Permissions(
    accessibility=True,
    extract=True,
    modify_annotation=False,
    modify_assembly=False,
    modify_form=False,
    modify_other=False,
    print_lowres=True,
    print_highres=True,
)
# Bits of /P (ISO 32000-2, table 22), counted from 1.
_P_PRINT: Final = 1 << 2
_P_PRINT_HIGH: Final = 1 << 11
# Modify, annotate, fill forms, assemble: all denied.
_P_MODIFY_ANY: Final = (1 << 3) | (1 << 5) | (1 << 8) | (1 << 10)

MIN_PASSWORD_CHARS: Final = 8
# R=6 takes up to 127 bytes, but poppler (Evince, Okular) refuses the right password when
# it is longer than 32 bytes: a family on such a reader could never open the file.
MAX_PASSWORD_BYTES: Final = 32
_OWNER_PASSWORD_BYTES: Final = 32


class ProtectionCheckError(Exception):
    """A protected file is not what it must be; the message says why (never a password).

    ``wrong_password``: the file is encrypted, and the password given does not open it.
    ``password_ok``: the password given does open it; something else is wrong.
    """

    def __init__(
        self, message: str, *, wrong_password: bool = False, password_ok: bool = False
    ) -> None:
        super().__init__(message)
        self.wrong_password = wrong_password
        self.password_ok = password_ok


class InputProblem(Exception):
    """An input that cannot be protected: already encrypted, not a PDF, damaged."""


class EncryptedInput(InputProblem):
    """An input that is already encrypted."""


# --- Passwords --------------------------------------------------------------------------------
def check_password(password: str) -> str | None:
    """Why ``password`` cannot protect a report, or None if it can.

    R=6 takes the password as UTF-8 after SASLprep; for ordinary text that is NFKC, which
    :func:`normalize_password` applies, so a reader's typed password and ours agree.
    """
    text = normalize_password(password)
    if len(text) < MIN_PASSWORD_CHARS:
        return f"it is shorter than {MIN_PASSWORD_CHARS} characters"
    if len(text.encode("utf-8")) > MAX_PASSWORD_BYTES:
        return (
            f"it is longer than {MAX_PASSWORD_BYTES} bytes, which some PDF readers "
            "(Evince, Okular) cannot take"
        )
    if text.startswith(FORMULA_START):
        return "it starts with a character a spreadsheet takes for a formula (= + - @)"
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text):
        return "it holds a control character"
    if text != text.strip():
        return "it starts or ends with a space"
    return None


def normalize_password(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def encode_password(password: str) -> bytes:
    return normalize_password(password).encode("utf-8")[:127]  # what R=6 hashes


# --- ISO 32000-2 algorithms 2.A and 2.B -------------------------------------------------------
_HASHES: Final = (hashlib.sha256, hashlib.sha384, hashlib.sha512)


def hash_r6(password: bytes, salt: bytes, udata: bytes = b"") -> bytes:
    """Algorithm 2.B: the R=6 hash of a password with an 8-byte salt (and /U for /O)."""
    k = hashlib.sha256(password + salt + udata).digest()
    rounds = 0
    while True:
        k1 = (password + k + udata) * 64
        encryptor = Cipher(algorithms.AES(k[:16]), modes.CBC(k[16:32])).encryptor()
        e = encryptor.update(k1) + encryptor.finalize()
        k = _HASHES[int.from_bytes(e[:16], "big") % 3](e).digest()
        rounds += 1
        if rounds >= 64 and e[-1] <= rounds - 32:
            return k[:32]


@dataclass(frozen=True, slots=True)
class EncryptValues:
    """The values of an R=6 /Encrypt dictionary that the passwords and the key live in."""

    P: int
    O: bytes  # noqa: E741 - the names of the PDF keys
    U: bytes
    OE: bytes
    UE: bytes
    Perms: bytes
    encrypt_metadata: bool = True

    @classmethod
    def of(cls, pdf: pikepdf.Pdf) -> EncryptValues:
        """Read and check the /Encrypt dictionary of a file qpdf has opened."""
        encrypt = pdf.trailer.get("/Encrypt")
        if not isinstance(encrypt, pikepdf.Dictionary):
            raise ProtectionCheckError("it is not encrypted")
        plain = _plain(encrypt)
        assert isinstance(plain, dict)
        return cls.check(plain)

    @classmethod
    def read(cls, data: bytes) -> EncryptValues:
        """Read and check the /Encrypt dictionary of a file's bytes, without any key.

        The trailer names it (``/Encrypt n g R``) and it is an object of its own, never
        encrypted and never inside an object stream, so it can be read in place.
        """
        reference = _last_encrypt_reference(data)
        if reference is None:
            raise ProtectionCheckError("it is not encrypted")
        number, generation = reference.groups()
        at = _last_object_header(data, int(number), int(generation))
        if at is None:
            raise ProtectionCheckError("its /Encrypt dictionary is missing")
        header = _OBJECT_HEADER.match(data, at)
        try:
            if header is None:
                raise ValueError("no object header")
            value, _ = _parse_object(data, header.end())
        except (IndexError, ValueError):
            raise ProtectionCheckError("its /Encrypt dictionary cannot be read") from None
        if not isinstance(value, dict):
            raise ProtectionCheckError("its /Encrypt dictionary cannot be read")
        return cls.check(value)

    @classmethod
    def check(cls, encrypt: Mapping[str, object]) -> EncryptValues:
        """Values of an /Encrypt dictionary (as plain Python values) that must be V=5, R=6
        with AESV3 for streams and strings."""
        if encrypt.get("/Filter") != "/Standard":
            raise ProtectionCheckError("it does not use the standard security handler")
        if encrypt.get("/V") != 5 or encrypt.get("/R") != 6:
            raise ProtectionCheckError("it is not encrypted with AES-256 (V=5, R=6)")
        filters = encrypt.get("/CF")
        std_cf = filters.get("/StdCF") if isinstance(filters, dict) else None
        if not isinstance(std_cf, dict) or std_cf.get("/CFM") != "/AESV3":
            raise ProtectionCheckError("its crypt filter is not AESV3")
        if encrypt.get("/StmF") != "/StdCF" or encrypt.get("/StrF") != "/StdCF":
            raise ProtectionCheckError("its streams or strings are not encrypted with AESV3")
        fields = {key: encrypt.get(f"/{key}") for key in ("O", "U", "OE", "UE", "Perms")}
        permissions, metadata = encrypt.get("/P"), encrypt.get("/EncryptMetadata", True)
        if (
            not isinstance(permissions, int)
            or isinstance(permissions, bool)
            or not isinstance(metadata, bool)
            or not all(isinstance(value, bytes) for value in fields.values())
        ):
            raise ProtectionCheckError("its /Encrypt dictionary is incomplete")
        values = cls(P=permissions, encrypt_metadata=metadata, **fields)  # type: ignore[arg-type]
        if (
            len(values.U) < 48
            or len(values.O) < 48
            or len(values.UE) < 32
            or len(values.OE) < 32
            or len(values.Perms) < 16
        ):
            raise ProtectionCheckError("its /Encrypt dictionary is malformed")
        return values


def _plain(value: object) -> object:
    """A pikepdf object as the values :func:`_parse_object` gives: names as "/Name"
    strings, strings as bytes, dictionaries as dicts (direct objects only)."""
    if isinstance(value, pikepdf.Dictionary):
        return {key: _plain(value[key]) for key in value.keys()}  # noqa: SIM118 - pikepdf
    if isinstance(value, pikepdf.Name):
        return str(value)
    if isinstance(value, pikepdf.String):
        return bytes(value)
    if isinstance(value, bool | int):
        return value
    return None


# --- A reader for the few PDF objects an /Encrypt dictionary holds -----------------------------
_ENCRYPT_REF: Final = re.compile(rb"/Encrypt\s+(\d+)\s+(\d+)\s+R")
_OBJECT_HEADER: Final = re.compile(rb"\s*\d+\s+\d+\s+obj\b")
_WHITESPACE: Final = b"\x00\t\n\x0c\r "
_ESCAPES: Final = {
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("b"): b"\b",
    ord("f"): b"\f",
}
_TOKEN_END: Final = re.compile(rb"[\x00\t\n\x0c\r ()<>\[\]{}/%]")
_NUMBER: Final = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)")
_REFERENCE: Final = re.compile(rb"\s+(\d+)\s+R(?=[\x00\t\n\x0c\r ()<>\[\]{}/%]|$)")


def _last_encrypt_reference(data: bytes) -> re.Match[bytes] | None:
    """The last ``/Encrypt n g R`` of the file: the trailer's (searched from the end)."""
    at = len(data)
    while (at := data.rfind(b"/Encrypt", 0, at)) >= 0:
        match = _ENCRYPT_REF.match(data, at)
        if match:
            return match
    return None


def _last_object_header(data: bytes, number: int, generation: int) -> int | None:
    """Where the last definition of object ``number generation`` starts."""
    canonical = b"%d %d obj" % (number, generation)  # as qpdf writes it
    at = data.rfind(canonical)
    if at > 0 and data[at - 1] in _WHITESPACE:
        return at
    headers = list(re.finditer(rb"(?<![0-9])%d\s+%d\s+obj\b" % (number, generation), data))
    return headers[-1].start() if headers else None


def _skip_space(data: bytes, at: int) -> int:
    while True:
        while data[at] in _WHITESPACE:
            at += 1
        if data[at] != ord("%"):
            return at
        while data[at] not in b"\r\n":
            at += 1


def _parse_object(data: bytes, at: int) -> tuple[object, int]:
    """(value, where it ends) of the PDF object at ``at``: dictionaries, arrays, names,
    strings, numbers, booleans and null; an indirect reference becomes ``("R", n, g)``."""
    at = _skip_space(data, at)
    first = data[at]
    if data.startswith(b"<<", at):
        result: dict[str, object] = {}
        at += 2
        while True:
            at = _skip_space(data, at)
            if data.startswith(b">>", at):
                return result, at + 2
            key, at = _parse_object(data, at)
            if not isinstance(key, str) or not key.startswith("/"):
                raise ValueError("a dictionary key is not a name")
            result[key], at = _parse_object(data, at)
    if first == ord("["):
        items: list[object] = []
        at += 1
        while True:
            at = _skip_space(data, at)
            if data[at] == ord("]"):
                return items, at + 1
            item, at = _parse_object(data, at)
            items.append(item)
    if first == ord("<"):
        end = data.index(b">", at)
        digits = data[at + 1 : end].translate(None, _WHITESPACE)
        return bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii")), end + 1
    if first == ord("("):
        return _parse_literal(data, at + 1)
    if first == ord("/"):
        token_end = _TOKEN_END.search(data, at + 1)
        stop = token_end.start() if token_end else len(data)
        name = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes.fromhex(m[1].decode()), data[at:stop])
        return name.decode("latin-1"), stop
    number = _NUMBER.match(data, at)
    if number:
        text = number.group()
        if b"." in text:
            return float(text), number.end()
        reference = _REFERENCE.match(data, number.end())
        if reference:
            return ("R", int(text), int(reference[1])), reference.end()
        return int(text), number.end()
    for keyword, value in ((b"true", True), (b"false", False), (b"null", None)):
        if data.startswith(keyword, at):
            return value, at + len(keyword)
    raise ValueError(f"unexpected byte {first!r} at {at}")


def _parse_literal(data: bytes, at: int) -> tuple[bytes, int]:
    out = bytearray()
    depth = 1
    while True:
        char = data[at]
        at += 1
        if char == ord("\\"):
            escaped = data[at]
            at += 1
            if escaped in _ESCAPES:
                out += _ESCAPES[escaped]
            elif escaped in b"01234567":
                digits = bytes([escaped])
                while len(digits) < 3 and data[at] in b"01234567":
                    digits += bytes([data[at]])
                    at += 1
                out.append(int(digits, 8) & 0xFF)
            elif escaped == ord("\r"):  # a line continuation
                at += data[at] == ord("\n")
            elif escaped != ord("\n"):
                out.append(escaped)
        elif char == ord("("):
            depth += 1
            out.append(char)
        elif char == ord(")"):
            depth -= 1
            if depth == 0:
                return bytes(out), at
            out.append(char)
        elif char == ord("\r"):  # an end of line in a string reads as \n
            at += data[at] == ord("\n")
            out += b"\n"
        else:
            out.append(char)


def _aes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305 - /Perms is one block
    return decryptor.update(data) + decryptor.finalize()


def _aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


@lru_cache(maxsize=1024)
def unlock(values: EncryptValues, password: bytes) -> bytes:
    """The file key that ``password`` unlocks under ``values``, once every check has passed.

    Checks that the password validates as the user password, that the empty password
    validates as neither user nor owner password, that /Perms decrypts with the key to
    ``adb`` and /P, and that /P allows printing and denies modification. Results are
    cached: they depend on nothing else.
    """
    if not password:
        raise ProtectionCheckError("an empty password protects nothing")
    u_hash, u_validation_salt, u_key_salt = values.U[:32], values.U[32:40], values.U[40:48]
    if hash_r6(password, u_validation_salt) != u_hash:
        raise ProtectionCheckError("the student's password does not open it", wrong_password=True)
    try:
        if hash_r6(b"", u_validation_salt) == u_hash:
            raise ProtectionCheckError("it opens without a password")
        if hash_r6(b"", values.O[32:40], values.U[:48]) == values.O[:32]:
            raise ProtectionCheckError("it opens without a password, as its owner")
        intermediate = hash_r6(password, u_key_salt)
        key = _aes_cbc_decrypt(intermediate, bytes(16), values.UE[:32])
        perms = _aes_ecb_decrypt(key, values.Perms[:16])
        if perms[9:12] != b"adb":
            raise ProtectionCheckError("its /Perms do not decrypt with the file key")
        if int.from_bytes(perms[:4], "little", signed=True) != values.P:
            raise ProtectionCheckError("its /Perms and /P disagree")
        if perms[8:9] != (b"T" if values.encrypt_metadata else b"F"):
            raise ProtectionCheckError("its /Perms and /EncryptMetadata disagree")
        if not values.P & _P_PRINT or not values.P & _P_PRINT_HIGH:
            raise ProtectionCheckError("its permissions do not allow printing")
        if values.P & _P_MODIFY_ANY:
            raise ProtectionCheckError("its permissions allow changes")
    except ProtectionCheckError as exc:
        raise ProtectionCheckError(str(exc), password_ok=True) from None
    return key


# --- Security handlers ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SecurityHandler:
    """One password's R=6 security handler: /Encrypt values made by qpdf, and their key."""

    values: EncryptValues
    file_key: bytes = field(repr=False)


def _open_with_key(path: Path, key: bytes) -> pikepdf.Pdf:
    """Open an encrypted file with its file key (qpdf's --password-is-hex-key): no hashing."""
    job = pikepdf.Job(
        {
            "inputFile": str(path),
            "outputFile": os.devnull,
            "password": key.hex(),
            "passwordIsHexKey": "",
        }
    )
    pdf: pikepdf.Pdf = job.create_pdf()
    return pdf


def new_security_handler(password: str) -> SecurityHandler:
    """Have qpdf make an R=6 handler for ``password`` (with an owner password nobody knows),
    and check it with our own algorithm 2.B."""
    owner = secrets.token_urlsafe(_OWNER_PASSWORD_BYTES)
    encryption = pikepdf.Encryption(
        user=normalize_password(password),
        owner=owner,
        R=6,
        allow=PERMISSIONS,
        aes=True,
        metadata=True,
    )
    del owner
    buffer = io.BytesIO()
    with pikepdf.new() as pdf:
        pdf.save(buffer, encryption=encryption)
    values = EncryptValues.read(buffer.getvalue())
    return SecurityHandler(values, unlock(values, encode_password(password)))


def _carrier_pdf(values: EncryptValues, file_id: bytes) -> bytes:
    """A tiny PDF holding nothing but ``values`` and ``file_id``: what qpdf copies the
    encryption from. It has no strings or streams, so nothing in it needs decrypting."""
    encrypt = (
        b"<< /Filter /Standard /V 5 /R 6 /Length 256 /P %d /EncryptMetadata %s"
        b" /O <%s> /U <%s> /OE <%s> /UE <%s> /Perms <%s>"
        b" /CF << /StdCF << /AuthEvent /DocOpen /CFM /AESV3 /Length 32 >> >>"
        b" /StmF /StdCF /StrF /StdCF >>"
    ) % (
        values.P,
        b"true" if values.encrypt_metadata else b"false",
        values.O.hex().encode(),
        values.U.hex().encode(),
        values.OE.hex().encode(),
        values.UE.hex().encode(),
        values.Perms.hex().encode(),
    )
    bodies = (
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        encrypt,
    )
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(bodies, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    id_hex = file_id.hex().encode()
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 3 0 R /ID [<%s> <%s>] >>\n" % (
        len(bodies) + 1,
        id_hex,
        id_hex,
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


@contextlib.contextmanager
def _scratch_file(folder: Path) -> Iterator[Path]:
    """A private temp file in ``folder`` (named as fsutil's temp files), removed on exit."""
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    os.close(fd)
    path = Path(name)
    try:
        os.chmod(path, PRIVATE_FILE_MODE)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --- Inputs -----------------------------------------------------------------------------------
def _short_reason(exc: BaseException, path: Path) -> str:
    text = str(exc).strip()
    for prefix in (f"{path}: ", f"{path} "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.splitlines()[0] if text else type(exc).__name__


def open_input(path: Path) -> pikepdf.Pdf:
    """Open an input report; InputProblem if it is encrypted, not a PDF, or damaged.

    qpdf repairs what it can of a damaged file and only warns: any warning on opening is
    taken as damage, since a report is written once by ETS and should need no repair.
    """
    try:
        # A link in an input folder could be any file of the computer, another child's
        # report among them: an input is read only as the plain file it is.
        fd = open_nofollow(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except LinkRefusedError:
        raise InputProblem("is a symbolic link (or junction); it is not followed") from None
    except OSError as exc:
        raise InputProblem(f"cannot be read: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            head = handle.read(1024)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 1024))
            tail = handle.read()
    except OSError as exc:
        raise InputProblem(f"cannot be read: {exc.strerror or exc}") from None
    if b"%PDF-" not in head:
        raise InputProblem("not a PDF")
    if b"%%EOF" not in tail:
        raise InputProblem("damaged PDF: it is cut short (no end-of-file marker)")
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError:
        raise EncryptedInput("already encrypted: it asks for a password") from None
    except (pikepdf.PdfError, ValueError, RuntimeError) as exc:
        raise InputProblem(f"damaged PDF: {_short_reason(exc, path)}") from None
    try:
        if pdf.is_encrypted:
            raise EncryptedInput("already encrypted")
        pages = len(pdf.pages)
        warnings = pdf.get_warnings()
        if warnings:
            raise InputProblem(f"damaged PDF: {_short_reason(Exception(warnings[-1]), path)}")
        if pages == 0:
            raise InputProblem("damaged PDF: it has no pages")
    except InputProblem:
        pdf.close()
        raise
    except (pikepdf.PdfError, ValueError, RuntimeError) as exc:
        pdf.close()
        raise InputProblem(f"damaged PDF: {_short_reason(exc, path)}") from None
    return pdf


@dataclass(frozen=True, slots=True)
class ContentProbe:
    """What a protected copy must decrypt to: the input's page count and the decoded bytes
    of the first content stream of its first page (None if it has none we can decode)."""

    pages: int
    first_content: bytes | None


def _first_content_stream(pdf: pikepdf.Pdf) -> pikepdf.Stream | None:
    for page in pdf.pages:
        contents = page.obj.get("/Contents")
        if isinstance(contents, pikepdf.Array):
            contents = next((item for item in contents if isinstance(item, pikepdf.Stream)), None)
        if isinstance(contents, pikepdf.Stream) and contents.is_indirect:
            return contents
    return None


def probe_content(pdf: pikepdf.Pdf) -> ContentProbe:
    stream = _first_content_stream(pdf)
    content = None
    if stream is not None:
        try:
            content = stream.read_bytes()
        except NotImplementedError:  # a filter qpdf cannot decode: pages and keys still checked
            content = None
        except pikepdf.PdfError as exc:
            raise InputProblem(f"damaged PDF: {_short_reason(exc, Path(pdf.filename))}") from None
    return ContentProbe(len(pdf.pages), content)


# --- Writing and verifying one file -----------------------------------------------------------
def protect_pdf(pdf: pikepdf.Pdf, source: Path, target: Path, handler: SecurityHandler) -> None:
    """Write ``pdf`` (opened from ``source``) to ``target``, encrypted with ``handler``.

    Not atomic and not verified: :func:`protect_reports` writes to a temp file, verifies it
    with :func:`verify_protected_pdf`, and renames it.
    """
    trailer_id = pdf.trailer.get("/ID")
    file_id = b""
    if isinstance(trailer_id, pikepdf.Array) and len(trailer_id) > 0:
        with contextlib.suppress(TypeError, ValueError):
            file_id = bytes(trailer_id[0])
    if not file_id:
        file_id = secrets.token_bytes(16)
    with _scratch_file(target.parent) as carrier:
        carrier.write_bytes(_carrier_pdf(handler.values, file_id))
        job = pikepdf.Job(
            {
                "inputFile": str(source),
                "outputFile": str(target),
                "copyEncryption": str(carrier),
                "encryptionFilePassword": handler.file_key.hex(),
                "passwordIsHexKey": "",
            }
        )
        job.write_pdf(pdf)


def _stream_data_at(data: bytes, offset: int, length: int) -> bytes:
    """The raw (still encrypted) data of the stream object that starts at ``offset``."""
    header = _OBJECT_HEADER.match(data, offset)
    if header is None:
        raise ProtectionCheckError("its cross-reference table points to no object")
    keyword = data.find(b"stream", header.end())
    if keyword < 0:
        raise ProtectionCheckError("a content stream is missing")
    start = keyword + len(b"stream")
    start += 2 if data.startswith(b"\r\n", start) else 1
    end = start + length
    if not data[end : end + 32].lstrip(b"\r\n ").startswith(b"endstream"):
        raise ProtectionCheckError("a content stream does not have the length it declares")
    return data[start:end]


def _offset_of(pdf: pikepdf.Pdf, data: bytes, stream: pikepdf.Stream) -> int:
    """Where ``stream`` starts in ``data``: from the cross-reference table (pikepdf >= 10.9)
    or, failing that, from its object header (a wrong match only fails the check)."""
    number, generation = stream.objgen
    xref = getattr(pdf, "get_xref_table", None)
    offset = None
    if xref is not None:
        entry = xref().get((number, generation))
        offset = None if entry is None else entry.offset
    else:  # pragma: no cover - pikepdf < 10.9
        offset = _last_object_header(data, number, generation)
    if offset is None:
        raise ProtectionCheckError("a content stream is not where a stream must be")
    return int(offset)


def _decrypt_stream(key: bytes, raw: bytes) -> bytes:
    if len(raw) < 32 or len(raw) % 16:
        raise ProtectionCheckError("a content stream is not AES-encrypted")
    plain = _aes_cbc_decrypt(key, raw[:16], raw[16:])
    pad = plain[-1]
    if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
        raise ProtectionCheckError("a content stream does not decrypt with the file key")
    return plain[:-pad]


def verify_protected_pdf(path: Path, password: str, *, probe: ContentProbe | None = None) -> bytes:
    """Check that ``password`` opens ``path`` and nothing else does; return its file key.

    ``probe``: what the decrypted content must be (the input's). Raises
    ProtectionCheckError (``wrong_password`` when the file is encrypted but the password
    does not open it).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProtectionCheckError(f"it cannot be read: {exc.strerror or exc}") from None
    values = EncryptValues.read(data)
    file_key = unlock(values, encode_password(password))
    try:
        with _open_with_key(path, file_key) as pdf:
            if EncryptValues.of(pdf) != values:
                raise ProtectionCheckError("its /Encrypt dictionary reads two ways")
            _check_content(pdf, data, file_key, probe)
    except ProtectionCheckError as exc:
        raise ProtectionCheckError(str(exc), password_ok=True) from None
    except (pikepdf.PdfError, RuntimeError, ValueError) as exc:
        raise ProtectionCheckError(
            f"it cannot be parsed: {_short_reason(exc, path)}", password_ok=True
        ) from None
    return file_key


def _check_content(pdf: pikepdf.Pdf, data: bytes, key: bytes, probe: ContentProbe | None) -> None:
    pages = len(pdf.pages)
    if probe is not None and pages != probe.pages:
        raise ProtectionCheckError(
            f"it has {plural(pages, 'page')} where the input has {probe.pages}"
        )
    stream = _first_content_stream(pdf)
    if stream is None:
        if probe is not None and probe.first_content is not None:
            raise ProtectionCheckError("its pages have lost their content")
        return
    raw = _stream_data_at(data, _offset_of(pdf, data, stream), int(stream.stream_dict.Length))
    plain = _decrypt_stream(key, raw)
    if plain != stream.read_raw_bytes():
        raise ProtectionCheckError("a content stream decrypts differently for qpdf")
    if probe is not None and probe.first_content is not None:
        try:
            decoded = stream.read_bytes()
        except (pikepdf.PdfError, NotImplementedError):
            raise ProtectionCheckError("a content stream does not decode") from None
        if decoded != probe.first_content:
            raise ProtectionCheckError("its content differs from the input's")


# --- Collecting inputs ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InputFile:
    """One PDF to protect: where it is, where its copy goes under DIR, whose it is."""

    source: Path
    output: PurePosixPath  # relative to DIR
    ssid: str | None


def _ssid_of(relative: PurePosixPath, manifest: Mapping[str, str]) -> str | None:
    ssid = manifest.get(relative.as_posix())
    if ssid is None:
        ssid = ssid_of_file_name(relative.name)
    return ssid


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def collect_inputs(inputs: Sequence[Path], out_dir: Path) -> list[InputFile]:
    """The PDFs named by ``inputs`` (files, or folders searched recursively), in order.

    A folder's files go to the same relative path under DIR. Files under ``out_dir`` and
    our own temp files are left out, so DIR may sit inside an input folder.
    """
    out_real = out_dir.resolve()
    found: list[InputFile] = []
    manifests: dict[Path, dict[str, str]] = {}
    for given in inputs:
        if not given.exists():
            raise BadInputError(f"{given} does not exist.")
        if given.is_dir():
            folder = given.resolve()
            manifest = manifest_ssids(folder)
            # DIR inside the folder: its files are outputs, not inputs.
            skip = out_real if out_real.is_relative_to(folder) else None
            for root, dirs, names in os.walk(folder):
                root_path = Path(root)
                dirs[:] = sorted(
                    d
                    for d in dirs
                    if not d.startswith(".") and not (skip and _is_within(root_path / d, skip))
                )
                for name in sorted(names):
                    if not is_report_candidate(name):
                        continue
                    source = root_path / name
                    relative = PurePosixPath(source.relative_to(folder).as_posix())
                    found.append(InputFile(source, relative, _ssid_of(relative, manifest)))
        else:
            refuse_link(given)
            source = given.resolve()
            relative = PurePosixPath(source.name)
            if source.parent not in manifests:
                manifests[source.parent] = manifest_ssids(source.parent)
            manifest = manifests[source.parent]
            found.append(InputFile(source, relative, _ssid_of(relative, manifest)))
    return found


def check_locations(inputs: Sequence[Path], out_dir: Path, password_file: Path) -> None:
    """Refuse a password file inside DIR or an input folder, and a DIR that is an input."""
    out_real = out_dir.resolve()
    sheet_real = password_file.resolve()
    hint = "keep the password file apart: the passwords travel separately from the files."
    if _is_within(sheet_real, out_real):
        raise BadInputError(
            f"the password file {password_file} is inside the output folder {out_dir}.", hint=hint
        )
    for given in inputs:
        real = given.resolve()
        if given.is_dir():
            if _is_within(sheet_real, real):
                raise BadInputError(
                    f"the password file {password_file} is inside the input folder {given}.",
                    hint=hint,
                )
            if out_real == real:
                raise BadInputError(
                    f"the output folder {out_dir} is the input folder {given}: the protected "
                    "copies would replace the reports.",
                    hint="choose another --out folder.",
                )
        elif sheet_real == real:
            raise BadInputError(f"the password file {password_file} is an input.", hint=hint)
    if sheet_real.is_dir():
        raise BadInputError(f"the password file {password_file} is a folder.")
    if out_real.exists() and not out_real.is_dir():
        raise BadInputError(f"the output folder {out_dir} is a file.")


# --- The run ----------------------------------------------------------------------------------
class Outcome(StrEnum):
    PROTECTED = "protected"
    ALREADY_PROTECTED = "already_protected"  # a verified copy was there: not written again
    SKIPPED = "skipped"  # the input cannot be protected: encrypted, not a PDF, damaged
    FAILED = "failed"  # writing or verifying failed, or the passwords disagree


OK_OUTCOMES: Final = frozenset({Outcome.PROTECTED, Outcome.ALREADY_PROTECTED})


@dataclass(frozen=True, slots=True)
class FileResult:
    source: Path
    output: str  # relative to DIR
    ssid: str | None
    outcome: Outcome
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES


@dataclass(frozen=True, slots=True)
class ProtectProgress:
    """Sent once before the work starts (``result`` None) and after each file."""

    done: int
    total: int
    result: FileResult | None = None


@dataclass
class ProtectSummary:
    out_dir: Path
    password_file: Path
    files: list[FileResult]
    students: int = 0  # passwords in use in this run: one per family
    new_passwords: int = 0  # passwords the sheet did not hold before: families to tell

    @property
    def failed(self) -> list[FileResult]:
        return [result for result in self.files if not result.ok]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((outcome.value for outcome in Outcome), 0)
        for result in self.files:
            counts[result.outcome.value] += 1
        return counts


@dataclass(frozen=True, slots=True)
class _FileTask:
    index: int
    source: Path
    target: Path
    out_dir: Path  # the output folder: no folder from it down to target may be a link


@dataclass(frozen=True, slots=True)
class _Task:
    """The files of one password (one student, or one file with no SSID)."""

    password: str = field(repr=False)
    files: tuple[_FileTask, ...]


@dataclass(frozen=True, slots=True)
class _Done:
    index: int
    outcome: Outcome
    detail: str = ""
    temp: Path | None = None  # a verified protected copy, to be renamed over its target


def _protect_task(task: _Task) -> list[_Done]:
    """Protect the files of one password (runs in a worker process)."""
    handler: SecurityHandler | None = None
    done: list[_Done] = []
    try:
        for item in task.files:
            result, handler = _protect_file(item, task.password, handler)
            done.append(result)
    except BaseException:
        _remove_temps(done)
        raise
    return done


def _protect_file(
    item: _FileTask, password: str, handler: SecurityHandler | None
) -> tuple[_Done, SecurityHandler | None]:
    try:
        pdf = open_input(item.source)
    except InputProblem as exc:
        return _Done(item.index, Outcome.SKIPPED, str(exc)), handler
    with pdf:
        try:
            probe = probe_content(pdf)
        except InputProblem as exc:
            return _Done(item.index, Outcome.SKIPPED, str(exc)), handler
        try:
            # A link at the copy or in its folders would be read (as "already protected")
            # or written through: another child's file, or outside the output folder.
            private_dirs_within(item.out_dir, item.target.parent.relative_to(item.out_dir))
            target_info = item.target.lstat()
        except LinkRefusedError as exc:
            return _failed(item, exc.message), handler
        except FileNotFoundError:
            target_info = None
        except OSError as exc:
            return _failed(item, f"cannot write: {_short_reason(exc, item.target)}"), handler
        if target_info is not None and is_link_stat(target_info):
            return _failed(item, LinkRefusedError(item.target).message), handler
        if target_info is not None:
            try:
                verify_protected_pdf(item.target, password, probe=probe)
            except ProtectionCheckError as exc:
                # Replaced only if the student's password opens it (an older copy of the
                # report) or nothing needs a password: a family may hold another one.
                if not exc.password_ok and (exc.wrong_password or _asks_for_password(item.target)):
                    return _failed(
                        item,
                        "a protected copy is already there and the student's password does "
                        "not open it; it is left as it is (move it away to protect again)",
                    ), handler
            else:
                return _Done(item.index, Outcome.ALREADY_PROTECTED), handler
        try:
            ensure_private_dir(item.target.parent)
            if handler is None:
                handler = new_security_handler(password)
        except ProtectionCheckError as exc:
            return _failed(item, f"the encryption failed its check: {exc}"), None
        except (OSError, pikepdf.PdfError) as exc:
            return _failed(item, f"cannot write: {_short_reason(exc, item.target)}"), None
        temp = _new_temp(item.target.parent)
        try:
            protect_pdf(pdf, item.source, temp, handler)
            _fsync(temp)
            if verify_protected_pdf(temp, password, probe=probe) != handler.file_key:
                raise ProtectionCheckError("it has another file key than its student's")
        except ProtectionCheckError as exc:
            temp.unlink(missing_ok=True)
            return _failed(item, f"the protected copy failed its check: {exc}"), handler
        except (OSError, pikepdf.PdfError, RuntimeError) as exc:
            temp.unlink(missing_ok=True)
            return _failed(item, f"cannot write: {_short_reason(exc, temp)}"), handler
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    return _Done(item.index, Outcome.PROTECTED, temp=temp), handler


def _asks_for_password(path: Path) -> bool:
    try:
        with pikepdf.open(path):
            return False
    except pikepdf.PasswordError:
        return True
    except (pikepdf.PdfError, ValueError, RuntimeError, OSError):
        return False


def _failed(item: _FileTask, detail: str) -> _Done:
    return _Done(item.index, Outcome.FAILED, detail)


def _new_temp(folder: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    os.close(fd)
    os.chmod(name, PRIVATE_FILE_MODE)
    return Path(name)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_temps(done: Iterable[_Done]) -> None:
    for result in done:
        if result.temp is not None:
            result.temp.unlink(missing_ok=True)


def _worker_init(parent_pid: int | None = None) -> None:
    # Ctrl-C reaches the whole process group: the parent alone decides, and lets running
    # tasks finish so that it can clean up their temp files.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_pid is not None:
        import threading

        threading.Thread(
            target=_exit_when_gone, args=(parent_pid,), name="caaspp-parent-watch", daemon=True
        ).start()


_PARENT_POLL_SECONDS: Final = 0.5


def _exit_when_gone(parent_pid: int) -> None:
    """Exit once the run that started this worker is gone (killed with kill -9, say).

    Nothing else would end it: a forkserver worker's parent is the forkserver, which lives
    as long as its workers do, and they wait for work forever, holding memory and the
    folder's files. What a dead run left half done, the next run sweeps away.
    """
    while _parent_alive(parent_pid):
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def _parent_alive(parent_pid: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - spawn: the parent is the run itself
        import multiprocessing

        parent = multiprocessing.parent_process()
        return parent is None or parent.is_alive()
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the number now belongs to another user's process
        return False
    try:  # Linux: a killed run not yet reaped by its shell is a zombie, not alive
        with open(f"/proc/{parent_pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def default_workers() -> int:
    counter = getattr(os, "process_cpu_count", None)
    if counter is not None:
        count = counter()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS and Windows on Python < 3.13
        count = os.cpu_count()
    return max(1, count or 1)


def _executor(workers: int) -> Executor:
    import multiprocessing

    if sys.platform != "win32":
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:  # pragma: no cover
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )


@dataclass
class _Plan:
    files: list[InputFile]
    results: dict[int, FileResult]  # decided before any work: conflicts, missing passwords
    tasks: list[_Task]
    passwords: dict[int, str] = field(repr=False)  # file index -> its password
    sheet_file: dict[int, bool]  # file index -> the sheet already has its row
    group_of: dict[int, int] = field(default_factory=dict)  # file index -> its task
    new_password: list[bool] = field(default_factory=list)  # by task


@dataclass(frozen=True, slots=True)
class _Contact:
    student_name: str = ""
    guardian_name: str = ""
    email: str = ""
    language: str = ""


def protect_reports(
    inputs: Sequence[Path],
    out_dir: Path,
    password_file: Path,
    *,
    roster: Path | None = None,
    password_column: str | None = None,
    workers: int | None = None,
    on_progress: Callable[[ProtectProgress], None] | None = None,
) -> ProtectSummary:
    """Protect every PDF of ``inputs`` into ``out_dir``, their passwords in ``password_file``.

    BadInputError (nothing written) for unusable options; otherwise every file gets a
    result, and files that could not be protected are in ``summary.failed``.
    """
    if password_column is not None and roster is None:
        raise BadInputError("--password-column needs --roster.")
    # Resolved once ("a/new/../../b" is ./b): links under it are then refused.
    out_dir = Path(os.path.realpath(out_dir))
    check_locations(inputs, out_dir, password_file)
    files = collect_inputs(inputs, out_dir)
    if not files:
        raise BadInputError(
            "no PDF files found in " + ", ".join(str(path) for path in inputs) + ".",
            hint="name PDF files, or folders holding them (a `caaspp bulk` output folder).",
        )
    _refuse_protected_inputs(inputs, files)
    contacts, roster_passwords = _read_roster(roster, password_column, files)
    from caaspp_cli.folderlock import FolderLock

    # Both locks before the sheet is read: two runs that each read it, then each add a
    # password for the same student, would leave that student with two. The sheet's first,
    # so that a sheet that cannot be written leaves no --out folder behind.
    with FolderLock.for_file(password_file, "protect", "password file"):
        prepare_output_dir(out_dir)
        with FolderLock.for_folder(out_dir, "protect"):
            return _protect_locked(
                files,
                out_dir,
                password_file,
                contacts,
                roster_passwords,
                password_column,
                workers,
                on_progress,
            )


def _refuse_protected_inputs(inputs: Sequence[Path], files: Sequence[InputFile]) -> None:
    """BadInputError, before any work, when the inputs are protect's own output: every PDF
    already encrypted, or a folder `caaspp send` has used (it sends only protected copies)."""

    sent_from = any(
        given.is_dir()
        and ((given / SEND_LEDGER_NAME).exists() or (given / SEND_REPORT_NAME).exists())
        for given in inputs
    )
    if not sent_from and not all(_already_encrypted(item.source) for item in files):
        return
    names = ", ".join(str(given) for given in inputs)
    why = "`caaspp send` has used it" if sent_from else "every PDF in it is already encrypted"
    verb = "are" if len(inputs) > 1 else "is"
    raise BadInputError(
        f"{names} {verb} `caaspp protect`'s output ({why}): give the folder of unprotected "
        "reports instead, the --out folder of `caaspp bulk` or `caaspp split`."
    )


def _already_encrypted(path: Path) -> bool:
    try:
        pdf = open_input(path)
    except EncryptedInput:
        return True
    except InputProblem:
        return False
    pdf.close()
    return False


def _protect_locked(
    files: list[InputFile],
    out_dir: Path,
    password_file: Path,
    contacts: dict[str, _Contact],
    roster_passwords: dict[str, str | None],
    password_column: str | None,
    workers: int | None,
    on_progress: Callable[[ProtectProgress], None] | None,
) -> ProtectSummary:
    sheet = PasswordSheet(password_file)
    plan = _plan(files, out_dir, sheet, contacts, roster_passwords, password_column)
    sheet.check_writable()
    # A run killed mid-way (kill -9, a power cut) leaves its temp files: hidden copies of
    # reports that nothing else would ever remove.
    sweep_temp_files(out_dir)
    total = len(files)
    results: dict[int, FileResult] = {}

    def report(index: int, result: FileResult) -> None:
        results[index] = result
        if on_progress:
            on_progress(ProtectProgress(len(results), total, result))

    if on_progress:
        on_progress(ProtectProgress(0, total))
    for index, result in plan.results.items():
        report(index, result)

    def finish(batch: list[_Done]) -> None:
        for index, result in _record(batch, plan, sheet, contacts, out_dir):
            report(index, result)

    _run_tasks(plan.tasks, workers or default_workers(), finish)
    used = {plan.group_of[index] for index, result in results.items() if result.ok}
    return ProtectSummary(
        out_dir,
        password_file,
        [results[index] for index in range(len(files))],
        students=len(used),
        new_passwords=sum(plan.new_password[group] for group in used),
    )


def _read_roster(
    roster: Path | None, password_column: str | None, files: Sequence[InputFile]
) -> tuple[dict[str, _Contact], dict[str, str | None]]:
    """Contacts by SSID, and (with ``password_column``) passwords by SSID; short or
    unusable passwords of the students at hand refused, naming their rows."""
    if roster is None:
        return {}, {}
    from caaspp_cli.roster.read import open_roster

    wanted = {item.ssid for item in files if item.ssid}
    opened = open_roster(roster, password_column=password_column)
    contacts: dict[str, _Contact] = {}
    passwords: dict[str, str | None] = {}
    refused: list[str] = []
    for row in opened:
        if row.problem is not None or row.ssid is None or row.ssid in contacts:
            continue
        contacts[row.ssid] = _Contact(
            row.display_name, row.guardian_name, "; ".join(row.emails), row.language or ""
        )
        if password_column is not None:
            passwords[row.ssid] = row.password
            if row.ssid in wanted and row.password:
                reason = check_password(row.password)
                if reason:
                    refused.append(f"line {row.line} (SSID {row.ssid}): {reason}")
    if refused:
        shown = refused[:10] + ([f"and {len(refused) - 10} more"] if len(refused) > 10 else [])
        raise BadInputError(
            f"{roster}: {plural(len(refused), 'password')} in column {password_column!r} cannot be "
            "used: " + "; ".join(shown) + ".",
            hint=f"give each student a password of at least {MIN_PASSWORD_CHARS} characters.",
        )
    return contacts, passwords


def _plan(
    files: Sequence[InputFile],
    out_dir: Path,
    sheet: PasswordSheet,
    contacts: Mapping[str, _Contact],
    roster_passwords: Mapping[str, str | None],
    password_column: str | None,
) -> _Plan:
    """Group the files by password, and give each group its password: the one in the sheet,
    else the roster's, else a new one."""
    by_ssid = sheet.passwords_by_ssid()
    by_file = sheet.rows_by_file()
    results: dict[int, FileResult] = {}
    groups: dict[str, list[int]] = defaultdict(list)
    targets: dict[Path, int] = {}
    sources = {item.source.resolve() for item in files}
    for index, item in enumerate(files):
        target = out_dir / item.output
        if target.resolve() in sources:
            raise BadInputError(
                f"the protected copy of {item.source} would replace an input.",
                hint="choose another --out folder.",
            )
        if target in targets:
            results[index] = _result(
                item,
                Outcome.FAILED,
                f"another input ({files[targets[target]].source}) has the same output name",
            )
            continue
        targets[target] = index
        groups[f"ssid:{item.ssid}" if item.ssid else f"file:{item.output}"].append(index)
    plan = _Plan(list(files), results, [], {}, {})
    for _key, indexes in sorted(groups.items()):
        first = files[indexes[0]]
        if first.ssid and password_column is None and len(by_ssid.get(first.ssid, ())) > 1:
            _plan_several_passwords(plan, indexes, by_file, out_dir)
            continue
        password, problem, new = _password_for(
            first, by_ssid, by_file, roster_passwords, password_column
        )
        if password is None:
            for index in indexes:
                results[index] = _result(files[index], Outcome.FAILED, problem)
            continue
        tasks: list[_FileTask] = []
        for index in indexes:
            item = files[index]
            row = by_file.get(neutralize_cell(item.output.as_posix()))
            if row is not None and row.password != password:
                results[index] = _result(
                    item,
                    Outcome.FAILED,
                    "the password file lists this file with another password than the "
                    "student's other reports",
                )
                continue
            plan.passwords[index] = password
            plan.sheet_file[index] = row is not None
            tasks.append(_FileTask(index, item.source, out_dir / item.output, out_dir))
        if tasks:
            for task in tasks:
                plan.group_of[task.index] = len(plan.tasks)
            plan.tasks.append(_Task(password, tuple(tasks)))
            plan.new_password.append(new)
    return plan


def _plan_several_passwords(
    plan: _Plan, indexes: Sequence[int], by_file: Mapping[str, SheetRow], out_dir: Path
) -> None:
    """A student to whom the sheet gives several passwords (two runs at once, before runs
    took the folder's lock, or a sheet edited by hand): each file the sheet lists keeps the
    password it is listed with, which its family may already have; a file it does not list
    fails, naming the files of each password, since caaspp cannot know which one the
    family would expect."""
    files = plan.files
    ssid = files[indexes[0]].ssid
    listed = sorted((row for row in by_file.values() if row.ssid == ssid), key=lambda row: row.file)
    by_password: dict[str, list[str]] = defaultdict(list)
    for row in listed:
        by_password[row.password].append(row.file)
    which = "; ".join(
        f"password {number} for {', '.join(names)}"
        for number, names in enumerate(by_password.values(), start=1)
    )
    problem = (
        f"the password file holds {len(by_password)} passwords for this student ({which}), "
        "so caaspp will not guess which one this file gets"
    )
    groups: dict[str, list[_FileTask]] = defaultdict(list)
    for index in indexes:
        item = files[index]
        recorded = by_file.get(neutralize_cell(item.output.as_posix()))
        if recorded is None or recorded.ssid != ssid:
            plan.results[index] = _result(item, Outcome.FAILED, problem)
            continue
        plan.passwords[index] = recorded.password
        plan.sheet_file[index] = True
        groups[recorded.password].append(
            _FileTask(index, item.source, out_dir / item.output, out_dir)
        )
    for password, tasks in groups.items():
        for task in tasks:
            plan.group_of[task.index] = len(plan.tasks)
        plan.tasks.append(_Task(password, tuple(tasks)))
        plan.new_password.append(False)


def _password_for(
    item: InputFile,
    by_ssid: Mapping[str, set[str]],
    by_file: Mapping[str, SheetRow],
    roster_passwords: Mapping[str, str | None],
    password_column: str | None,
) -> tuple[str | None, str, bool]:
    """(password, why there is none, whether it is new) for the group of ``item``."""
    known: set[str] = set()
    if item.ssid:
        known = by_ssid.get(item.ssid, set())
    else:
        row = by_file.get(neutralize_cell(item.output.as_posix()))
        if row is not None:
            known = {row.password}
    if len(known) > 1:
        return None, "the password file holds several passwords for this student", False
    if password_column is not None:
        if not item.ssid:
            return None, "no SSID is known for this file, so the roster gives it no password", False
        from_roster = roster_passwords.get(item.ssid)
        if not from_roster:
            return None, f"the roster has no password for this student ({password_column})", False
        from_roster = normalize_password(from_roster)
        if known and from_roster not in known:
            return (
                None,
                (
                    "the roster's password differs from the one in the password file, which the "
                    "family may already have"
                ),
                False,
            )
        return from_roster, "", not known
    if known:
        return next(iter(known)), "", False
    return generate_password(), "", True


def _result(item: InputFile, outcome: Outcome, detail: str = "") -> FileResult:
    return FileResult(item.source, item.output.as_posix(), item.ssid, outcome, detail)


def _record(
    batch: list[_Done],
    plan: _Plan,
    sheet: PasswordSheet,
    contacts: Mapping[str, _Contact],
    out_dir: Path,
) -> list[tuple[int, FileResult]]:
    """Write the sheet rows of a finished batch (fsync), then rename its files into place."""
    rows: list[dict[str, str]] = []
    for item in batch:
        if item.outcome in OK_OUTCOMES and not plan.sheet_file[item.index]:
            source = plan.files[item.index]
            contact = contacts.get(source.ssid or "", _Contact())
            rows.append(
                {
                    "ssid": source.ssid or "",
                    "file": source.output.as_posix(),
                    "password": plan.passwords[item.index],
                    "student_name": contact.student_name,
                    "guardian_name": contact.guardian_name,
                    "email": contact.email,
                    "language": contact.language,
                }
            )
    try:
        sheet.append(rows)
    except BaseException:
        _remove_temps(batch)
        raise
    results: list[tuple[int, FileResult]] = []
    try:
        for item in batch:
            source = plan.files[item.index]
            outcome, detail = item.outcome, item.detail
            if item.temp is not None:
                try:
                    replace_into_place(item.temp, out_dir / source.output)
                except FileHeldError as exc:
                    item.temp.unlink(missing_ok=True)
                    outcome, detail = Outcome.FAILED, f"{exc.message} {exc.hint}"
                except OSError as exc:
                    item.temp.unlink(missing_ok=True)
                    outcome, detail = Outcome.FAILED, f"cannot rename into place: {exc.strerror}"
            results.append((item.index, _result(source, outcome, detail)))
    except BaseException:
        _remove_temps(batch)  # those not renamed yet
        raise
    return results


def _run_tasks(tasks: Sequence[_Task], workers: int, finish: Callable[[list[_Done]], None]) -> None:
    """Run ``tasks`` (in worker processes when there are several workers), handing each
    task's results to ``finish`` in the parent as they come."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            finish(_protect_task(task))
        return
    queue = iter(tasks)
    running: dict[Future[list[_Done]], _Task] = {}
    executor = _executor(min(workers, len(tasks)))

    def submit() -> None:
        task = next(queue, None)
        if task is None:
            return
        try:
            running[executor.submit(_protect_task, task)] = task
        except BrokenProcessPool:
            finish(_lost(task))
            submit()

    try:
        for _ in range(workers * 4):  # enough queued to keep every worker busy
            submit()
        while running:
            completed, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in completed:
                task = running.pop(future)
                try:
                    batch = future.result()
                except BrokenProcessPool:
                    batch = _lost(task)
                finish(batch)
                submit()
    except BaseException:
        for future in running:
            future.cancel()
        # Running tasks finish (workers ignore Ctrl-C); their verified temps are removed.
        for future in running:
            if not future.cancelled():
                with contextlib.suppress(BaseException):
                    _remove_temps(future.result())
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _lost(task: _Task) -> list[_Done]:
    return [
        _Done(item.index, Outcome.FAILED, "its worker process died; run again to retry")
        for item in task.files
    ]
