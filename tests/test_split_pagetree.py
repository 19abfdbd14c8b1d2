"""Showing PDFium a block of a merged file's pages as a small document of its own."""

from __future__ import annotations

from pathlib import Path

import pikepdf
import pypdfium2 as pdfium
import pytest
from helpers import report_pdf

from caaspp_cli.split.pagetree import JoinedReader, PageTree
from caaspp_cli.split.pdf import opened, page_texts


def merged(path: Path, pages: int, **save: object) -> Path:
    with pikepdf.new() as pdf:
        for number in range(pages):
            with report_pdf(f"Page {number} of the merged file") as one:
                pdf.pages.extend(one.pages)
        pdf.save(path, **save)  # type: ignore[arg-type]
    return path


def texts(document: pdfium.PdfDocument) -> list[str]:
    found = []
    for index in range(len(document)):
        page = document[index]
        textpage = page.get_textpage()
        found.append(textpage.get_text_range())
        textpage.close()
        page.close()
    return found


def test_a_block_shows_exactly_its_pages_with_their_own_text(tmp_path: Path) -> None:
    path = merged(tmp_path / "merged.pdf", 12)
    tree = PageTree.read(path)
    assert tree is not None and len(tree) == 12

    reader = JoinedReader(path, tree.update([7, 8, 9]))
    view = pdfium.PdfDocument(reader)
    try:
        assert texts(view) == [f"Page {n} of the merged file" for n in (7, 8, 9)]
    finally:
        view.close()
        reader.close()
    assert path.read_bytes()[-6:].strip() == b"%%EOF"  # the file itself is never changed


def test_a_file_updated_incrementally_is_read_through_its_last_section(tmp_path: Path) -> None:
    path = merged(tmp_path / "merged.pdf", 4)
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        with report_pdf("Page added by an update") as one:
            pdf.pages.extend(one.pages)
        pdf.save(path)
    tree = PageTree.read(path)
    assert tree is not None and len(tree) == 5
    assert list(page_texts(path))[-1] == "Page added by an update"


@pytest.mark.parametrize(
    "save",
    [
        {"object_stream_mode": pikepdf.ObjectStreamMode.generate},  # a cross-reference stream
        {"encryption": pikepdf.Encryption(owner="owner-secret", user="", R=6)},
    ],
    ids=["xref-stream", "encrypted"],
)
def test_other_files_are_opened_as_they_are_with_the_same_text(
    tmp_path: Path, save: dict[str, object]
) -> None:
    path = merged(tmp_path / "merged.pdf", 5, **save)
    assert PageTree.read(path) is None
    assert list(page_texts(path)) == [f"Page {n} of the merged file" for n in range(5)]


def test_a_tree_of_several_levels_is_left_to_pdfium(tmp_path: Path) -> None:
    path = merged(tmp_path / "merged.pdf", 6)
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        root = pdf.Root.Pages
        kids = list(root.Kids)
        middle = pdf.make_indirect(
            pikepdf.Dictionary(Type=pikepdf.Name.Pages, Kids=pikepdf.Array(kids[3:]), Count=3)
        )
        middle.Parent = root
        for kid in kids[3:]:
            kid.Parent = middle
        root.Kids = pikepdf.Array([*kids[:3], middle])
        pdf.save(path)
    assert PageTree.read(path) is None
    assert list(page_texts(path)) == [f"Page {n} of the merged file" for n in range(6)]


def test_groups_of_reports_see_their_own_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import caaspp_cli.split.pdf as pdf

    monkeypatch.setattr(pdf, "PAGES_PER_OPENING", 2)
    path = merged(tmp_path / "merged.pdf", 7)
    reports = ["a", "b", "c", "d"]
    pages = [[0, 1], [2], [3, 4, 5], [6]]
    seen = {}
    for document, shown, name in opened(path, reports, pages):
        seen[name] = [document[index].get_textpage().get_text_range() for index in shown]
    assert seen == {
        name: [f"Page {n} of the merged file" for n in numbers]
        for name, numbers in zip(reports, pages, strict=True)
    }


def test_a_damaged_trailer_is_not_trusted(tmp_path: Path) -> None:
    path = merged(tmp_path / "merged.pdf", 3)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"startxref", b"startxrof"))
    assert PageTree.read(path) is None
