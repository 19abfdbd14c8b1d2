"""The merged file as PDFium sees it: each page's text, and pages copied into new files.

Both read the merged file through PDFium, which loads objects only when a page needs
them. What it loads (fonts with their embedded programs above all) it keeps until the
document is closed, so the file is reopened every ``PAGES_PER_OPENING`` pages. Two things
still grow with the file's length: PDFium's cross-reference table (about 90 bytes an
object) and the page dictionaries it parses to find page N (all those before N, about
1.1 KB a page). qpdf, which copied pages before, cost far more: copying one page made it
push the page tree's inherited attributes onto every page of the file (about 4 KB a page).

Pages are copied, not re-rendered: their content streams, fonts and images go into the
new file as they are, with the attributes a page inherits from its page tree (media box,
resources, rotation) written onto the page itself.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from caaspp_cli.fsutil import atomic_private_file

if TYPE_CHECKING:
    import pypdfium2 as pdfium

# Pages read (or copied) from one opening of a file before it is closed and reopened.
PAGES_PER_OPENING: Final = 1000

_T = TypeVar("_T")


class UnreadablePdfError(Exception):
    """The file is not a PDF pdfium can open (damaged, encrypted, not a PDF)."""


def _open(path: Path) -> pdfium.PdfDocument:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise UnreadablePdfError(str(exc)) from None


def page_texts(path: Path) -> Iterator[str]:
    """Each page's text, in order, in one pass over the file; pages are freed as read."""
    start = 0
    while True:
        document = _open(path)
        try:
            count = len(document)
            for index in range(start, min(count, start + PAGES_PER_OPENING)):
                page = document[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        yield textpage.get_text_range()
                    finally:
                        textpage.close()
                finally:
                    page.close()
        finally:
            document.close()
        start += PAGES_PER_OPENING
        if start >= count:
            return


def opened(
    path: Path, items: Sequence[_T], pages: Sequence[int]
) -> Iterator[tuple[pdfium.PdfDocument, _T]]:
    """Each item (``pages[i]`` pages of the file long) with the file open; the file is
    reopened once PAGES_PER_OPENING pages have been handed out from one opening."""
    document = _open(path)
    handed = 0
    try:
        for item, length in zip(items, pages, strict=True):
            if handed >= PAGES_PER_OPENING:
                document.close()
                document = _open(path)
                handed = 0
            yield document, item
            handed += length
    finally:
        document.close()


# The trailer's file identifier as PDFium writes it: two copies of 16 bytes in hex.
_FILE_ID: Final = re.compile(rb"/ID\s*\[\s*<([0-9A-Fa-f]{32})>\s*<([0-9A-Fa-f]{32})>\s*\]")


def copy_pages(source: pdfium.PdfDocument, pages: Sequence[int], dest: Path) -> None:
    """The pages (0-based), copied with their fonts and images, as a new owner-only PDF at
    ``dest``. The same pages always give the same bytes."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    # Without the clock, PDFium writes no creation date into the new file's /Info.
    pdfium_c.FPDF_SetSandBoxPolicy(pdfium_c.FPDF_POLICY_MACHINETIME_ACCESS, False)
    try:
        out = pdfium.PdfDocument.new()
    finally:
        pdfium_c.FPDF_SetSandBoxPolicy(pdfium_c.FPDF_POLICY_MACHINETIME_ACCESS, True)
    try:
        out.import_pages(source, pages=list(pages))
        buffer = io.BytesIO()
        out.save(buffer)
    finally:
        out.close()
    data = _with_content_id(buffer.getvalue())
    with atomic_private_file(dest) as handle:
        handle.write(data)


def _with_content_id(data: bytes) -> bytes:
    """``data`` with its file identifier (which PDFium draws at random) replaced by one
    drawn from the file's content, of the same length, so no offset moves."""
    tail = max(0, len(data) - 4096)  # the identifier is in the trailer, at the end
    matches = list(_FILE_ID.finditer(data, tail))
    if not matches:
        return data
    (first, first_end), (second, second_end) = matches[-1].span(1), matches[-1].span(2)
    blank = bytearray(data)
    blank[first:second_end] = b"0" * (second_end - first)
    digest = hashlib.sha256(blank).hexdigest()[:32].upper().encode("ascii")
    patched = bytearray(data)
    patched[first:first_end] = digest
    patched[second:second_end] = digest
    return bytes(patched)
