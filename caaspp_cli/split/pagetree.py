"""A merged file's pages, shown to PDFium a block at a time as a small document of its own.

To reach page N of a document whose page tree is flat (every page a kid of the root, as
qpdf and many merge tools write it), PDFium parses the dictionary of every page before N
and keeps it until the document closes: on a 20,000-page file, about 24 MiB to reach the
last pages, however often the file is reopened. So the file is not opened as it is: each
block of pages is opened as the file *followed by a small incremental update* (ISO
32000-1, 7.5.6) whose catalog's page tree holds only that block's pages, by reference. The
pages themselves, their content, fonts, images and the attributes they inherit through
their own /Parent stay the file's; PDFium only no longer walks the others. The update is
never written anywhere: PDFium reads the file and the update through one reader
(:class:`JoinedReader`).

This takes a file whose last cross-reference section is a classic table (``xref``) and
whose root page-tree node lists every page directly, which :meth:`PageTree.read` checks by
reading only the trailer, the catalog and that node. For any other file (a cross-reference
stream, a tree of several levels, an encrypted file, anything it does not understand) it
returns None, and the caller opens the file as it is.
"""

from __future__ import annotations

import io
import os
import re
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Final

_TAIL: Final = 4096
_STARTXREF: Final = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_REF: Final = re.compile(rb"(\d+)\s+(\d+)\s+R")
_SUBSECTION: Final = re.compile(rb"\s*(\d+)\s+(\d+)\s*\r?\n")
_OBJECT_LIMIT: Final = 8 << 20  # the root page-tree node of a very long file is big


class PageTree:
    """Where a flat-tree file's pages are, and how to show PDFium a block of them."""

    def __init__(self, path: Path, size: int, startxref: int, length: int) -> None:
        self.path = path
        self.size = size  # the trailer's /Size: the first free object number
        self.startxref = startxref
        self.length = length  # of the file, in bytes
        self.numbers: array[int] = array("L")  # each page's object number, in order
        self.generations: array[int] = array("H")

    def __len__(self) -> int:
        return len(self.numbers)

    @classmethod
    def read(cls, path: Path) -> PageTree | None:
        """The file's page references, or None when this file is not of the kind handled."""
        try:
            with path.open("rb") as handle:
                return cls._read(path, handle)
        except (OSError, ValueError, IndexError, KeyError):
            return None

    @classmethod
    def _read(cls, path: Path, handle: io.BufferedReader) -> PageTree | None:
        length = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, length - _TAIL))
        found = _STARTXREF.search(handle.read())
        if found is None:
            return None
        startxref = int(found.group(1))
        table = _XrefTable(handle, startxref)
        trailer = table.trailer
        if trailer is None or b"/Encrypt" in trailer or b"/XRefStm" in trailer:
            return None
        size = _number(trailer, b"/Size")
        root = _reference(trailer, b"/Root")
        if size is None or root is None:
            return None
        catalog = table.object(root)
        pages_ref = _reference(catalog, b"/Pages") if catalog else None
        if pages_ref is None:
            return None
        node = table.object(pages_ref)
        if node is None:
            return None
        kids = re.search(rb"/Kids\s*\[([^\]]*)\]", node)
        count = _number(node, b"/Count")
        if kids is None or count is None:
            return None
        tree = cls(path, size, startxref, length)
        for number, generation in _REF.findall(kids.group(1)):
            tree.numbers.append(int(number))
            tree.generations.append(int(generation))
        if len(tree) != count or count == 0:
            return None  # a tree of several levels: PDFium walks it cheaply enough
        return tree

    def update(self, pages: Sequence[int]) -> bytes:
        """The incremental update whose page tree is ``pages`` (0-based, in order)."""
        kids = b" ".join(
            b"%d %d R" % (self.numbers[page], self.generations[page]) for page in pages
        )
        tree_number, catalog_number = self.size, self.size + 1
        start = self.length
        body = b"\n"
        tree_at = start + len(body)
        body += b"%d 0 obj\n<< /Type /Pages /Kids [%s] /Count %d >>\nendobj\n" % (
            tree_number,
            kids,
            len(pages),
        )
        catalog_at = start + len(body)
        body += b"%d 0 obj\n<< /Type /Catalog /Pages %d 0 R >>\nendobj\n" % (
            catalog_number,
            tree_number,
        )
        xref_at = start + len(body)
        body += b"xref\n%d 2\n%010d 00000 n \n%010d 00000 n \n" % (
            tree_number,
            tree_at,
            catalog_at,
        )
        body += b"trailer\n<< /Size %d /Root %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
            self.size + 2,
            catalog_number,
            self.startxref,
            xref_at,
        )
        return body


class JoinedReader(io.RawIOBase):
    """A file followed by bytes that are not in it, read as one file (what PDFium reads)."""

    def __init__(self, path: Path, extra: bytes) -> None:
        self._file = path.open("rb")
        self._length = self._file.seek(0, os.SEEK_END)
        self._extra = extra
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._position = offset
        elif whence == os.SEEK_CUR:
            self._position += offset
        else:
            self._position = self._length + len(self._extra) + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view):
            position = self._position
            if position < self._length:
                self._file.seek(position)
                got = self._file.readinto(
                    view[done : done + min(len(view) - done, self._length - position)]
                )
                if not got:
                    break
            else:
                start = position - self._length
                chunk = self._extra[start : start + len(view) - done]
                if not chunk:
                    break
                got = len(chunk)
                view[done : done + got] = chunk
            done += got
            self._position += got
        return done

    def close(self) -> None:
        self._file.close()
        super().close()


class _XrefTable:
    """The objects of a file through its classic cross-reference tables, read in place."""

    def __init__(self, handle: io.BufferedReader, offset: int) -> None:
        self._handle = handle
        self._sections: list[list[tuple[int, int, int]]] = []  # (first, count, entries at)
        self.trailer: bytes | None = None
        seen: set[int] = set()
        while offset not in seen:
            seen.add(offset)
            subsections, trailer = self._section(offset)
            if trailer is None:
                if not self._sections:
                    return
                break
            self._sections.append(subsections)
            if self.trailer is None:
                self.trailer = trailer
            previous = _number(trailer, b"/Prev")
            if previous is None:
                break
            offset = previous

    def _section(self, offset: int) -> tuple[list[tuple[int, int, int]], bytes | None]:
        handle = self._handle
        handle.seek(offset)
        if handle.read(4) != b"xref":
            return [], None
        subsections: list[tuple[int, int, int]] = []
        position = offset + 4
        while True:
            handle.seek(position)
            head = handle.read(64)
            stripped = head.lstrip()
            if stripped.startswith(b"trailer"):
                start = position + (len(head) - len(stripped)) + len(b"trailer")
                handle.seek(start)
                text = handle.read(_TAIL)
                end = text.find(b"startxref")
                trailer = text if end < 0 else text[:end]
                return subsections, trailer
            found = _SUBSECTION.match(head)
            if found is None:
                return [], None
            first, count = int(found.group(1)), int(found.group(2))
            entries = position + found.end()
            subsections.append((first, count, entries))
            position = entries + 20 * count

    def object(self, reference: tuple[int, int]) -> bytes | None:
        """The text of an object stored in the file itself (not in an object stream)."""
        number, generation = reference
        for subsections in self._sections:
            for first, count, entries in subsections:
                if first <= number < first + count:
                    self._handle.seek(entries + 20 * (number - first))
                    entry = self._handle.read(20)
                    if entry[17:18] != b"n":
                        return None
                    return self._at(int(entry[:10]), number, generation)
        return None

    def _at(self, offset: int, number: int, generation: int) -> bytes | None:
        self._handle.seek(offset)
        head = self._handle.read(64)
        if not re.match(rb"\s*%d\s+%d\s+obj" % (number, generation), head):
            return None
        self._handle.seek(offset)
        text = b""
        while len(text) < _OBJECT_LIMIT:
            chunk = self._handle.read(1 << 16)
            if not chunk:
                break
            text += chunk
            end = text.find(b"endobj")
            if end >= 0:
                return text[:end]
        return None


def _number(text: bytes, key: bytes) -> int | None:
    found = re.search(re.escape(key) + rb"\s+(\d+)(?!\s+\d+\s+R)", text)
    return int(found.group(1)) if found else None


def _reference(text: bytes, key: bytes) -> tuple[int, int] | None:
    found = re.search(re.escape(key) + rb"\s+(\d+)\s+(\d+)\s+R", text)
    return (int(found.group(1)), int(found.group(2))) if found else None
