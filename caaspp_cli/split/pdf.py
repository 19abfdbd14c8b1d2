"""The merged file as PDFium sees it: each page's text, and pages copied into new files.

Both read the merged file through PDFium, which loads objects only when a page needs
them. What it loads (fonts with their embedded programs above all) it keeps until the
document is closed, so the file is opened afresh for every ``PAGES_PER_OPENING`` pages.
Each opening shows PDFium only the pages it is for (:mod:`caaspp_cli.split.pagetree`):
otherwise, in a file whose page tree is flat, reaching page N makes PDFium parse and keep
the dictionaries of all the pages before it (about 1.1 KB a page). What still grows with
the file's length is PDFium's cross-reference table (about 80 bytes an object). qpdf,
which copied pages before, cost far more: copying one page made it push the page tree's
inherited attributes onto every page of the file (about 4 KB a page).

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
from caaspp_cli.split.pagetree import JoinedReader, PageTree

if TYPE_CHECKING:
    import pypdfium2 as pdfium

# Pages read (or copied) from one opening of a file before it is closed and reopened.
PAGES_PER_OPENING: Final = 1000

_T = TypeVar("_T")


class UnreadablePdfError(Exception):
    """The file is not a PDF pdfium can open (damaged, encrypted, not a PDF)."""


class _View:
    """The file open in PDFium, showing ``pages`` of it (all of them when None); the
    index of a page of the file in the document PDFium sees."""

    def __init__(self, path: Path, tree: PageTree | None, pages: Sequence[int] | None) -> None:
        import pypdfium2 as pdfium

        self._reader: JoinedReader | None = None
        self._index: dict[int, int] | None = None
        if tree is not None and pages is not None:
            reader = JoinedReader(path, tree.update(pages))
            try:
                self.document = pdfium.PdfDocument(reader)
            except pdfium.PdfiumError:
                reader.close()  # not the file it looked like: opened as it is, below
            else:
                if len(self.document) == len(pages):
                    self._reader = reader
                    self._index = {page: index for index, page in enumerate(pages)}
                    return
                self.document.close()
                reader.close()
        try:
            self.document = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:
            raise UnreadablePdfError(str(exc)) from None

    def index(self, page: int) -> int:
        return page if self._index is None else self._index[page]

    def close(self) -> None:
        self.document.close()
        if self._reader is not None:
            self._reader.close()


def page_texts(path: Path) -> Iterator[str]:
    """Each page's text, in order, in one pass over the file; pages are freed as read."""
    tree = PageTree.read(path)
    start = 0
    while True:
        if tree is not None:
            block = range(start, min(len(tree), start + PAGES_PER_OPENING))
            view = _View(path, tree, block)
            count = len(tree)
        else:
            view = _View(path, None, None)
            count = len(view.document)
            block = range(start, min(count, start + PAGES_PER_OPENING))
        try:
            for index in block:
                page = view.document[view.index(index)]
                try:
                    textpage = page.get_textpage()
                    try:
                        yield textpage.get_text_range()
                    finally:
                        textpage.close()
                finally:
                    page.close()
        finally:
            view.close()
        start += PAGES_PER_OPENING
        if start >= count:
            return


def opened(
    path: Path, items: Sequence[_T], pages: Sequence[Sequence[int]]
) -> Iterator[tuple[pdfium.PdfDocument, list[int], _T]]:
    """Each item (``pages[i]``: its pages of the file, 0-based) with the file open, and
    the indexes of its pages in the document open: one opening for every
    PAGES_PER_OPENING pages handed out, showing PDFium only those pages."""
    tree = PageTree.read(path)
    position = 0
    while position < len(items):
        group: list[int] = []
        total = 0
        while position < len(items) and (not group or total < PAGES_PER_OPENING):
            group.append(position)
            total += len(pages[position])
            position += 1
        shown = sorted({page for member in group for page in pages[member]})
        view = _View(path, tree, shown if tree is not None else None)
        try:
            for member in group:
                yield view.document, [view.index(page) for page in pages[member]], items[member]
        finally:
            view.close()


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
