"""What a protected report allows, and which passwords may protect one.

The permissions every protected report carries (print, read aloud, copy text; no kind of
change) and the rules a password must meet: its length in characters and in bytes, no
spreadsheet formula start, no control character or edge space, and the normalisation
(NFKC, what SASLprep does to ordinary text) that makes a typed password and ours agree.
"""

from __future__ import annotations

import unicodedata
from typing import Final

import pikepdf

from caaspp_cli.artifacts import FORMULA_START

__all__ = [
    "MAX_PASSWORD_BYTES",
    "MIN_PASSWORD_CHARS",
    "PERMISSIONS",
    "PERMISSION_BITS",
    "check_password",
    "encode_password",
    "normalize_password",
    "permission_bits",
]

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
P_PRINT: Final = 1 << 2
P_PRINT_HIGH: Final = 1 << 11
# Modify, annotate, fill forms, assemble: all denied.
P_MODIFY_ANY: Final = (1 << 3) | (1 << 5) | (1 << 8) | (1 << 10)
# Bits 7-8 and 13-32 are set and bits 1-2 clear whatever is allowed; so is bit 10
# (extraction for accessibility), which PDF 2.0 deprecates and qpdf always sets.
_P_ALWAYS: Final = 0xFFFFF2C0


def permission_bits(allow: pikepdf.Permissions) -> int:
    """/P for ``allow``, the signed 32-bit integer of table 22 (as qpdf writes it)."""
    bits = _P_ALWAYS
    for allowed, bit in (
        (allow.print_lowres or allow.print_highres, 3),
        (allow.modify_other, 4),
        (allow.extract, 5),
        (allow.modify_annotation, 6),
        (allow.modify_form, 9),
        (allow.modify_assembly, 11),
        (allow.print_highres, 12),
    ):
        if allowed:
            bits |= 1 << (bit - 1)
    return bits - (1 << 32)


PERMISSION_BITS: Final = permission_bits(PERMISSIONS)

MIN_PASSWORD_CHARS: Final = 8
# R=6 takes up to 127 bytes, but poppler (Evince, Okular) refuses the right password when
# it is longer than 32 bytes: a family on such a reader could never open the file.
MAX_PASSWORD_BYTES: Final = 32


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
