"""Security handlers: one student's R=6 encryption, made once and applied to each report.

A :class:`SecurityHandler` is the /Encrypt values of one password and the file key they
wrap. :func:`new_security_handler` makes one with our own algorithms 8 to 10 (a random
file key, and an owner password nobody knows); :func:`protect_pdf` writes a report with it
through qpdf's copy encryption, from a :func:`carrier_pdf` holding the values and the
report's own first /ID; :func:`open_with_key` opens an encrypted file with its key.

Once in each process, before its first handler, qpdf must open a carrier our code wrote,
with its user password and with its owner password, and find our file key and our /P, and
must refuse it without a password (:func:`check_against_qpdf`): qpdf vouches for our
algorithms, with its own implementation of them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf

from caaspp_cli.fsutil import scratch_file
from caaspp_cli.protect.pdfcrypt import (
    EncryptValues,
    ProtectionCheckError,
    encrypt_values,
    new_encrypt_values,
)
from caaspp_cli.protect.policy import PERMISSION_BITS, encode_password

__all__ = [
    "SecurityHandler",
    "carrier_pdf",
    "check_against_qpdf",
    "new_security_handler",
    "open_with_key",
    "protect_pdf",
]


@dataclass(frozen=True, slots=True)
class SecurityHandler:
    """One password's R=6 security handler: its /Encrypt values, and the key they wrap."""

    values: EncryptValues
    file_key: bytes = field(repr=False)


def open_with_key(path: Path, key: bytes) -> pikepdf.Pdf:
    """Open an encrypted file with its file key (qpdf's --password-is-hex-key): no hashing."""
    return pikepdf.open(path, password=key.hex(), hex_password=True)


def new_security_handler(password: str) -> SecurityHandler:
    """An R=6 handler for ``password``, with an owner password nobody knows (two 2.B hashes
    of the password, two of the owner password). Not checked here: each file written with
    it is checked by :func:`~caaspp_cli.protect.verify.verify_protected_pdf`."""
    check_against_qpdf()
    values, file_key = new_encrypt_values(encode_password(password), PERMISSION_BITS)
    return SecurityHandler(values, file_key)


@functools.cache
def check_against_qpdf() -> None:
    """ProtectionCheckError unless qpdf reads what our algorithms 8 to 10 write as it must.

    Run once a process (a failure is not cached: it is raised again at each call), with
    passwords drawn for the purpose: about 50 ms of qpdf hashing.
    """
    user, owner = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    file_key = secrets.token_bytes(32)
    values = encrypt_values(
        user.encode(), owner.encode(), file_key, PERMISSION_BITS, secrets.token_bytes(36)
    )
    carrier = carrier_pdf(values, secrets.token_bytes(16))
    for password in (user, owner):
        try:
            with pikepdf.open(io.BytesIO(carrier), password=password) as pdf:
                found, permissions = pdf.encryption.encryption_key, pdf.encryption.P
        except (pikepdf.PasswordError, pikepdf.PdfError) as exc:
            raise ProtectionCheckError(f"qpdf does not open what caaspp encrypts: {exc}") from None
        if found != file_key or permissions != PERMISSION_BITS:
            raise ProtectionCheckError("qpdf reads another key or other permissions")
    try:
        with pikepdf.open(io.BytesIO(carrier)):
            raise ProtectionCheckError("qpdf opens what caaspp encrypts without a password")
    except pikepdf.PasswordError:
        pass


def carrier_pdf(values: EncryptValues, file_id: bytes) -> bytes:
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


# --- Writing one file ------------------------------------------------------------------------
def protect_pdf(
    pdf: pikepdf.Pdf,
    source: Path,
    target: Path,
    handler: SecurityHandler,
    *,
    carrier: Path | None = None,
) -> None:
    """Write ``pdf`` (opened from ``source``) to ``target``, encrypted with ``handler``.

    ``carrier``: a private scratch file to write the carrier PDF in (overwritten), for a
    caller that writes many files; else one is made beside ``target`` and removed.
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
    with contextlib.ExitStack() as scratch:
        if carrier is None:
            carrier = scratch.enter_context(scratch_file(target.parent))
        carrier.write_bytes(carrier_pdf(handler.values, file_id))
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
