"""A reader for the few PDF objects an /Encrypt dictionary holds, read in place.

The /Encrypt dictionary of a file is never encrypted and never inside an object stream,
so it can be read from the file's bytes without a key and without qpdf: the trailer names
it (``/Encrypt n g R``), and :func:`parse_object` reads it (dictionaries, arrays, names,
literal and hex strings, numbers, booleans, null, references). This is what lets the
checks of :mod:`caaspp_cli.protect.pdfcrypt` be code of our own, not qpdf's.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["OBJECT_HEADER", "last_encrypt_reference", "last_object_header", "parse_object"]

_ENCRYPT_REF: Final = re.compile(rb"/Encrypt\s+(\d+)\s+(\d+)\s+R")
OBJECT_HEADER: Final = re.compile(rb"\s*\d+\s+\d+\s+obj\b")
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


def last_encrypt_reference(data: bytes) -> re.Match[bytes] | None:
    """The last ``/Encrypt n g R`` of the file: the trailer's (searched from the end)."""
    at = len(data)
    while (at := data.rfind(b"/Encrypt", 0, at)) >= 0:
        match = _ENCRYPT_REF.match(data, at)
        if match:
            return match
    return None


def last_object_header(data: bytes, number: int, generation: int) -> int | None:
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


def parse_object(data: bytes, at: int) -> tuple[object, int]:
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
            key, at = parse_object(data, at)
            if not isinstance(key, str) or not key.startswith("/"):
                raise ValueError("a dictionary key is not a name")
            result[key], at = parse_object(data, at)
    if first == ord("["):
        items: list[object] = []
        at += 1
        while True:
            at = _skip_space(data, at)
            if data[at] == ord("]"):
                return items, at + 1
            item, at = parse_object(data, at)
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
