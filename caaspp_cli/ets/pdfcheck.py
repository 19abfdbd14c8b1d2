"""Is a downloaded body a complete PDF? Watched while it streams, then opened with pikepdf.

A faulty proxy answers 200 with an HTML page, and a dropped connection leaves half a
file: neither may ever reach the disk under a report's name. The streaming check costs
bounded memory (the first bytes and the last kilobyte); pikepdf then proves the whole
file parses, because qpdf can read a truncated file that merely *ends* like a PDF.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pikepdf

from caaspp_cli.errors import InvalidReportError
from caaspp_cli.ets import contract

# The trailer must sit in the last kilobyte; writers may add whitespace after it.
TAIL_BYTES = 1024
_TRAILING_WHITESPACE = b" \t\r\n\f\x00"


def is_pdf_content_type(value: str | None) -> bool:
    """True for a PDF media type (parameters such as charset ignored) or no type at all.

    A missing Content-Type is tolerated: the body check below decides.
    """
    if value is None or not value.strip():
        return True
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type in contract.PDF_CONTENT_TYPES


def _looks_like_markup(head: bytes) -> bool:
    return head.lstrip().startswith(b"<")


class PdfStream:
    """Follows a body chunk by chunk: its size, its SHA-256, its first and last bytes."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._head = b""
        self._tail = b""
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def feed(self, chunk: bytes) -> None:
        """Account for one chunk; fail as soon as the first bytes show it is no PDF."""
        if not chunk:
            return
        self._digest.update(chunk)
        self.size += len(chunk)
        header = contract.PDF_HEADER
        if len(self._head) < len(header):
            self._head = (self._head + chunk)[: len(header)]
            if len(self._head) == len(header) and self._head != header:
                raise self._not_a_pdf()
        self._tail = (self._tail + chunk)[-TAIL_BYTES:]

    def finish(self) -> None:
        """Check the body once it is complete: a PDF header and a trailer at the end."""
        if self.size == 0:
            raise InvalidReportError("the download was empty.")
        if self._head != contract.PDF_HEADER:
            raise self._not_a_pdf()
        if not self._tail.rstrip(_TRAILING_WHITESPACE).endswith(contract.PDF_TRAILER):
            raise InvalidReportError(
                f"the download was cut short: {self.size} bytes arrived and the PDF has no end."
            )

    def _not_a_pdf(self) -> InvalidReportError:
        if _looks_like_markup(self._head):
            return InvalidReportError("the download is an HTML or XML page, not a PDF.")
        return InvalidReportError("the download is not a PDF.")


def verify_pdf_file(path: Path) -> int:
    """Open ``path`` with pikepdf and count its pages; InvalidReportError if that fails."""
    try:
        with pikepdf.open(path) as pdf:
            pages = len(pdf.pages)
    except (pikepdf.PdfError, ValueError) as exc:
        raise InvalidReportError(f"the download is not a readable PDF: {exc}.") from None
    if pages == 0:
        raise InvalidReportError("the downloaded PDF has no pages.")
    return pages


def inspect_pdf_file(path: Path) -> tuple[int, str]:
    """(size, sha256) of a complete, readable PDF already on disk.

    Raises InvalidReportError if it is not one, OSError if it cannot be read.
    """
    stream = PdfStream()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            stream.feed(chunk)
    stream.finish()
    verify_pdf_file(path)
    return stream.size, stream.sha256
