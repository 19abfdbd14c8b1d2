"""What one roster cell holds: an SSID (or why it is not one), a school code, a language, the
guardian's addresses, and a cell stripped of what only wraps it.

An SSID is never repaired: only what surrounds the ten digits is taken off (spaces, quotes,
Excel's ``="..."`` text form); a cell Excel has mangled is refused with the reason, in words
for staff, because a guessed SSID fetches another child's report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

from caaspp_cli.addresses import parse_address_cell
from caaspp_cli.vocabulary import is_valid_ssid, normalize_language

__all__ = [
    "classify_ssid",
    "is_blank_record",
    "parse_emails",
    "parse_language",
    "parse_school_code",
    "strip_cell",
    "unwrap_cell",
]

# Beside spaces (the non-breaking one too): zero-width characters, a BOM, DOS's end of file.
_INVISIBLE: Final = "\u200b\u200c\u200d\u2060\ufeff\x1a"
_EDGES: Final = re.compile(f"^[\\s{_INVISIBLE}]+|[\\s{_INVISIBLE}]+$")
_QUOTE_PAIRS: Final = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}
_WRAPPERS: Final = frozenset("=" + "".join(_QUOTE_PAIRS))
_EXCEL_TEXT: Final = re.compile(r'=\s*"(.*)"', re.DOTALL)  # ="0123456789"
_SCIENTIFIC: Final = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]*)?[eE][+-]?[0-9]+")
_DECIMAL: Final = re.compile(r"[0-9]+[.,]([0-9]+)")
_GROUPED: Final = re.compile(r"[0-9]{1,3}(?:[,.\u00a0\u202f ][0-9]{3})+")
_REEXPORT: Final = "re-export the roster with the SSID column formatted as Text"


def strip_cell(value: str) -> str:
    """A cell without the spaces and invisible characters at its ends."""
    text = value.strip()
    if text and (text[0] in _INVISIBLE or text[-1] in _INVISIBLE):
        return _EDGES.sub("", text)
    return text


def is_blank_record(record: Sequence[str]) -> bool:
    """True when every cell of a record is blank once stripped."""
    return not any(map(strip_cell, record))


def unwrap_cell(value: str) -> str:
    """A cell without what only wraps it: spaces, quotes, Excel's ="..." text form, and the
    apostrophe Excel uses to keep a number as text."""
    text = strip_cell(value)
    while text and text[0] in _WRAPPERS:
        excel = _EXCEL_TEXT.fullmatch(text)
        if excel:
            text = strip_cell(excel.group(1))
        elif len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
            text = strip_cell(text[1:-1])
        elif text[0] == "'":
            text = strip_cell(text[1:])
        else:
            break
    return text


def _shown(text: str) -> str:
    return text if len(text) <= 30 else text[:29] + "…"


def classify_ssid(value: str) -> tuple[str | None, str]:
    """(ssid, "") for a cell holding an SSID, else (None, why not) in words for staff.

    Only what surrounds the ten digits is taken off (spaces, quotes, ``="..."``); a cell
    that needs a digit added, dropped or converted is refused, never repaired.
    """
    if is_valid_ssid(value):
        return value, ""
    text = unwrap_cell(value)
    if not text:
        return None, "blank SSID"
    if is_valid_ssid(text):
        return text, ""
    shown = _shown(text)
    if _SCIENTIFIC.fullmatch(text):
        return None, (
            f"Excel turned the SSID into a number in scientific notation ({shown}), so digits "
            f"may be lost; {_REEXPORT}"
        )
    decimal = _DECIMAL.fullmatch(text)
    if decimal:
        if set(decimal.group(1)) == {"0"}:
            return None, f"Excel added a decimal part to the SSID ({shown}); {_REEXPORT}"
        return None, f"the SSID is a decimal number ({shown}); an SSID is 10 digits"
    if _GROUPED.fullmatch(text):
        return None, f"Excel added thousands separators to the SSID ({shown}); {_REEXPORT}"
    if text.isascii() and text.isdigit():
        digits = len(text)
        if digits == 9:
            return None, (
                f"the SSID has 9 digits ({shown}): a leading zero was probably lost to an "
                f"Excel number format; {_REEXPORT}"
            )
        if digits < 9:
            return None, (
                f"the SSID has {digits} digits ({shown}): leading zeros were probably lost to "
                "an Excel number format, or this is not an SSID"
            )
        return None, f"the SSID has {digits} digits ({shown}); an SSID has exactly 10"
    odd = list(dict.fromkeys(ch for ch in text if ch not in "0123456789"))
    named = ", ".join(repr(ch) for ch in odd[:3]) + (", …" if len(odd) > 3 else "")
    return None, f"the SSID ({shown}) contains characters other than digits: {named}"


_NOT_HELD: Final = frozenset({"", "n", "no", "false", "f", "0", "none", "-"})
_HELD: Final = frozenset({"y", "yes", "true", "t", "x", "1", "hold", "held", "on"})


def parse_hold(value: str) -> tuple[bool, str]:
    """Whether a record-hold cell holds the student's reports back, and, for a value that
    is neither yes nor no, why it is read as held: an unknown answer must not release a
    report that carries the guardian's address."""
    folded = value.strip().casefold()
    if folded in _NOT_HELD:
        return False, ""
    if folded in _HELD:
        return True, ""
    return True, f"the record-hold cell {_shown(value)} is not a yes or a no: read as held"


def parse_school_code(value: str) -> str:
    """The school's code in a cell: a 14-digit CDS code gives its last seven digits."""
    code = unwrap_cell(value)
    # A 14-digit CDS code is county (2) + district (5) + school (7): the school's is the end.
    if len(code) == 14 and code.isascii() and code.isdigit():
        return code[7:]
    return code


@lru_cache(maxsize=512)
def parse_language(value: str) -> str | None:
    """The language code of a correspondence-language cell; None if unknown."""
    return normalize_language(value)


def parse_emails(cell: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(valid, invalid) addresses of a guardian email cell; nothing for an ambiguous cell
    (see :func:`caaspp_cli.addresses.parse_address_cell`, which also says why)."""
    read = parse_address_cell(strip_cell(cell))
    return read.valid, read.invalid
