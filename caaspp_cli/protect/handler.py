"""Security handlers: one student's R=6 encryption, made once and applied to each report.

A :class:`SecurityHandler` is the /Encrypt values of one password and the file key they
wrap. :func:`new_security_handler` has qpdf make one (with an owner password nobody
knows) and checks it with our own algorithm 2.B; :func:`protect_pdf` writes a report with
it through qpdf's copy encryption, from a :func:`carrier_pdf` holding the values and the
report's own first /ID; :func:`open_with_key` opens an encrypted file with its key.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pikepdf

from caaspp_cli.fsutil import scratch_file
from caaspp_cli.protect.pdfcrypt import EncryptValues, unlock
from caaspp_cli.protect.policy import PERMISSIONS, encode_password, normalize_password

__all__ = [
    "SecurityHandler",
    "carrier_pdf",
    "new_security_handler",
    "open_with_key",
    "protect_pdf",
]

_OWNER_PASSWORD_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class SecurityHandler:
    """One password's R=6 security handler: /Encrypt values made by qpdf, and their key."""

    values: EncryptValues
    file_key: bytes = field(repr=False)


def open_with_key(path: Path, key: bytes) -> pikepdf.Pdf:
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
    with scratch_file(target.parent) as carrier:
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
