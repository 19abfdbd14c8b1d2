"""caaspp split, the library: real merged PDFs made from the sandbox's reports, checked with
tools that are not ours (qpdf, pdftotext, pdffonts)."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pikepdf
import pytest

from caaspp_cli.artifacts import MANIFEST_COLUMNS
from caaspp_cli.artifacts import ManifestStatus as Status
from caaspp_cli.errors import BadInputError, FolderBusyError
from caaspp_cli.roster.read import open_roster
from caaspp_cli.sandbox.render import render_report_pdf
from caaspp_cli.sandbox.toms import ZIP_NAME, export_toms
from caaspp_cli.sandbox.world import SandboxReport, SandboxStudent, World
from caaspp_cli.split.find import PAGE_LABELS, REPORT_TITLES, SSID_LABELS, read_page
from caaspp_cli.split.pdf import page_texts
from caaspp_cli.split.run import SplitOptions, SplitRun, SplitSummary, take_folder

TOOLS = ("qpdf", "pdftotext", "pdffonts")
needs_tools = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in TOOLS), reason="qpdf and poppler-utils needed"
)


# --- Fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world() -> World:
    return World.build(40, 2026)


def _pdf_reports(world: World) -> list[tuple[SandboxStudent, SandboxReport]]:
    return [(s, r) for s, r in world.iter_reports() if r.format == "pdf"]


@pytest.fixture(scope="module")
def rendered(world: World) -> dict[str, bytes]:
    """report id -> the sandbox's API PDF, for the first reports of the world."""
    return {r.report_id: render_report_pdf(world, s, r) for s, r in _pdf_reports(world)[:14]}


def _students_with_reports(world: World, n: int) -> list[tuple[SandboxStudent, SandboxReport]]:
    """``n`` reports of different students: one (English, PDF) report each."""
    chosen: list[tuple[SandboxStudent, SandboxReport]] = []
    seen: set[str] = set()
    for student, report in _pdf_reports(world):
        if student.ssid not in seen and report.language == "en":
            chosen.append((student, report))
            seen.add(student.ssid)
        if len(chosen) == n:
            break
    return chosen


def merge(parts: Sequence[tuple[bytes, Sequence[int] | None]], dest: Path) -> Path:
    """A merged PDF of the given pages (None: all) of the given PDFs, as TOMS merges."""
    with pikepdf.new() as merged:
        for data, pages in parts:
            with pikepdf.open(io.BytesIO(data)) as one:
                for index in range(len(one.pages)) if pages is None else pages:
                    merged.pages.append(one.pages[index])
        merged.save(dest)
    return dest


def text_page(text: str) -> bytes:
    """A one-page PDF showing ``text`` lines, each in its own text object."""
    pdf = pikepdf.new()
    pdf.add_blank_page()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    page = pdf.pages[0]
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    ops = [
        f"BT /F1 11 Tf 72 {720 - 16 * n} Td ({line}) Tj ET"
        for n, line in enumerate(text.split("\n"))
    ]
    page.Contents = pdf.make_stream("\n".join(ops).encode("latin-1"))
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def blank_page() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def manifest_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        return list(reader)


def split(inputs: Sequence[Path], out: Path, **kwargs: Any) -> SplitSummary:
    roster = kwargs.pop("roster", None)
    return SplitRun(
        list(inputs), SplitOptions(out, **kwargs), open_roster(roster) if roster else None
    ).run()


def pdftotext(path: Path, first: int | None = None, last: int | None = None) -> str:
    args = ["pdftotext", "-layout"]
    if first is not None:
        args += ["-f", str(first), "-l", str(last or first)]
    return subprocess.run(
        [*args, str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def pages_of(detail: str) -> list[int]:
    """1-based page numbers from a manifest detail ("... pages 5-8: ...")."""
    found = re.search(r" pages? ([\d, -]+?)(?::|$)", detail)
    assert found, detail
    numbers: list[int] = []
    for part in found.group(1).split(", "):
        first, _, last = part.partition("-")
        numbers += list(range(int(first), int(last or first) + 1))
    return numbers


# --- Reading a page -------------------------------------------------------------------------
def test_the_labels_split_reads_are_the_ones_every_sandbox_language_renders() -> None:
    from caaspp_cli.sandbox.i18n import MESSAGES

    for language, title in MESSAGES["report_title"].items():
        assert REPORT_TITLES[language] == title
        assert SSID_LABELS[language] in MESSAGES["label.ssid"][language]
        assert PAGE_LABELS[language] == MESSAGES["label.page"][language]


def test_every_page_of_every_language_and_test_names_its_student_test_year_and_language(
    world: World, tmp_path: Path
) -> None:
    seen: set[tuple[str, str]] = set()
    for student, report in _pdf_reports(world):
        if (report.language, report.test) in seen:
            continue
        seen.add((report.language, report.test))
        path = tmp_path / "one.pdf"
        path.write_bytes(render_report_pdf(world, student, report))
        facts = [read_page(text) for text in page_texts(path)]
        assert facts[0].first_page and not any(f.first_page for f in facts[1:])
        for number, page in enumerate(facts, start=1):
            assert (page.ssid, page.test, page.year) == (student.ssid, report.test, report.year)
            assert (page.page, page.pages) == (number, len(facts))
        assert facts[0].language == report.language
    languages = {language for language, _ in seen}
    assert languages == {"en", "es", "vi", "fil", "ko", "zh-Hant", "ar"}


def test_text_split_across_text_objects_and_ligatures_does_not_hide_the_ssid(
    tmp_path: Path,
) -> None:
    # Label, title and SSID each drawn in pieces, in separate text objects.
    page = text_page(
        "Student Sco\nre Report 2024-25 CAASPP\nStatewide Stu\ndent Identi\n(SSID)\n07849\n00152"
    )
    path = tmp_path / "pieces.pdf"
    path.write_bytes(page)
    (facts,) = [read_page(text) for text in page_texts(path)]
    assert (facts.ssid, facts.first_page, facts.test, facts.year) == (
        "0784900152",
        True,
        "CAASPP",
        2025,
    )
    # A ligature (U+FB01) in the label and full-width digits, as some fonts map them.
    folded = read_page(
        "Student Score Report 2024–25 CAST\n"
        "Statewide Student Identiﬁer (SSID)\n０７８４９００１５２"
    )
    assert (folded.ssid, folded.language, folded.test) == ("0784900152", "en", "CAST")


def test_a_roster_ssid_counts_on_a_page_without_an_ssid_label() -> None:
    text = "Student Score Report 2024–25 ELPAC\nStudent ID 1234567890, district 5555555555"
    assert read_page(text).ssid is None
    assert read_page(text, frozenset({"1234567890"})).ssid == "1234567890"


# --- Splitting ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("toms")
    export_toms(World.build(12, 2026), folder)
    return folder


@pytest.mark.posix
@needs_tools
@pytest.mark.posix
def test_a_toms_zip_becomes_one_owner_only_pdf_per_report_with_its_pages_copied(
    toms: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = split([toms / ZIP_NAME], out)

    rows = manifest_rows(out)
    assert {r["status"] for r in rows} == {Status.SPLIT}
    assert summary.reports_written == len(rows) and summary.needs_a_person == 0
    total = sum(len(pikepdf.open(p).pages) for p in toms.glob("*.pdf"))
    assert summary.pages == summary.pages_in_reports == total
    # Every page of the download is in exactly one report.
    covered = [
        (r["detail"].split(" pages ")[0].split(" page ")[0].split(":")[-1], page)
        for r in rows
        for page in pages_of(r["detail"])
    ]
    assert len(covered) == len(set(covered)) == total
    for row in rows:
        path = out / row["file"]
        assert row["file"] == f"{row['ssid']}_{row['test']}_{row['year']}_{row['language']}.pdf"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        check = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
        member = row["detail"].split(":", 1)[1].split(" page")[0]
        source = toms / member
        pages = pages_of(row["detail"])
        # Text identical to the same pages of the merged file: copied, not re-rendered.
        assert pdftotext(path) == "".join(pdftotext(source, page, page) for page in pages), row[
            "file"
        ]
        fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True).stdout
        source_fonts = subprocess.run(
            ["pdffonts", "-f", str(pages[0]), "-l", str(pages[-1]), str(source)],
            capture_output=True,
            text=True,
        ).stdout
        # Name, type, encoding, embedded, subset, unicode map: the same fonts, copied.
        assert sorted(line.split()[:-2] for line in fonts.splitlines()[2:]) == sorted(
            line.split()[:-2] for line in source_fonts.splitlines()[2:]
        )
        assert row["ssid"] in pdftotext(path)
    assert stat.S_IMODE((out / "manifest.csv").stat().st_mode) == 0o600


def test_a_scanned_pdf_without_text_is_refused_in_one_sentence(tmp_path: Path) -> None:
    scan = merge([(blank_page(), None), (blank_page(), None)], tmp_path / "scan.pdf")
    with pytest.raises(BadInputError) as caught:
        split([scan], tmp_path / "out")
    assert "no text layer" in caught.value.message and "scanned" in caught.value.message
    assert not list((tmp_path / "out").glob("*.pdf"))


def test_a_page_no_report_takes_is_a_manifest_row_with_file_and_page_range(
    world: World, tmp_path: Path
) -> None:
    (a, ra), (b, rb) = _students_with_reports(world, 2)
    data_a, data_b = render_report_pdf(world, a, ra), render_report_pdf(world, b, rb)
    pages_a = len(pikepdf.open(io.BytesIO(data_a)).pages)
    notes = text_page("Notes for the school office")
    merged = merge(
        [(data_a, None), (notes, None), (blank_page(), None), (data_b, None)], tmp_path / "m.pdf"
    )

    summary = split([merged], tmp_path / "out")

    rows = manifest_rows(tmp_path / "out")
    loose = [r for r in rows if r["status"] == Status.UNASSIGNED]
    assert [(r["detail"]) for r in loose] == [
        f"{merged} page {pages_a + 1}: no SSID on the page",
        f"{merged} page {pages_a + 2}: no text on the page (a scan?)",
    ]
    written = {r["ssid"]: r for r in rows if r["status"] == Status.SPLIT}
    assert set(written) == {a.ssid, b.ssid}
    assert len(pikepdf.open(tmp_path / "out" / written[a.ssid]["file"]).pages) == pages_a
    assert summary.needs_a_person == 2


def test_a_student_whose_pages_are_not_consecutive_gets_no_file_and_each_page_a_row(
    world: World, tmp_path: Path
) -> None:
    (a, ra), (b, rb) = [
        (s, r)
        for s, r in _students_with_reports(world, 12)
        if len(pikepdf.open(io.BytesIO(render_report_pdf(world, s, r))).pages) >= 3
    ][:2]
    data_a, data_b = render_report_pdf(world, a, ra), render_report_pdf(world, b, rb)
    n = len(pikepdf.open(io.BytesIO(data_a)).pages)
    merged = merge([(data_a, range(n - 1)), (data_b, None), (data_a, [n - 1])], tmp_path / "m.pdf")

    split([merged], tmp_path / "out")

    rows = manifest_rows(tmp_path / "out")
    assert [r["ssid"] for r in rows if r["status"] == Status.SPLIT] == [b.ssid]
    set_aside = [r for r in rows if r["status"] == Status.UNASSIGNED]
    assert {r["ssid"] for r in set_aside} == {a.ssid}
    assert sorted(p for r in set_aside for p in pages_of(r["detail"])) == [
        *range(1, n),
        n + len(pikepdf.open(io.BytesIO(data_b)).pages),
    ]
    assert not list((tmp_path / "out").glob(f"{a.ssid}_*"))
    # B's file holds B's pages only.
    text = pdftotext(
        tmp_path / "out" / next(r["file"] for r in rows if r["status"] == Status.SPLIT)
    )
    assert b.ssid in text and a.ssid not in text


def test_two_reports_of_one_student_for_the_same_test_and_year_are_left_to_a_person(
    world: World, tmp_path: Path
) -> None:
    (a, ra), (b, rb) = _students_with_reports(world, 2)
    data_a, data_b = render_report_pdf(world, a, ra), render_report_pdf(world, b, rb)
    first = merge([(data_a, None), (data_b, None)], tmp_path / "grade-5.pdf")
    other = text_page(
        f"Student Score Report {ra.year - 1}-{ra.year % 100:02d} {ra.test}\n"
        f"Statewide Student Identifier (SSID)\n{a.ssid}\nPage 1 of 1"
    )
    again = merge([(other, None)], tmp_path / "again.pdf")
    roster = tmp_path / "roster.csv"
    roster.write_text(f"SSID,Last Name\n{a.ssid},One\n{b.ssid},Two\n", "utf-8")

    summary = split([first, again], tmp_path / "out", roster=roster)

    rows = manifest_rows(tmp_path / "out")
    duplicates = [r for r in rows if r["status"] == Status.DUPLICATE]
    assert [r["ssid"] for r in duplicates] == [a.ssid, a.ssid]
    assert [r["line"] for r in duplicates] == ["2", "2"]
    # The student's reports wait for a person; the student is not said to have none.
    assert [r for r in rows if r["status"] == Status.NO_REPORTS] == []
    assert {r["detail"].split(" page")[0] for r in duplicates} == {str(first), str(again)}
    assert not list((tmp_path / "out").glob(f"{a.ssid}_*"))
    assert [r["ssid"] for r in rows if r["status"] == Status.SPLIT] == [b.ssid]
    assert summary.needs_a_person == 2


@needs_tools
def test_a_page_that_inherits_its_box_resources_and_rotation_keeps_them_when_copied(
    world: World, tmp_path: Path
) -> None:
    # A page may leave its media box, resources and rotation to a /Pages node above it: the
    # copied page has to carry them, or its text loses its fonts and its size.
    (a, ra), (b, rb) = _students_with_reports(world, 2)
    flat = merge(
        [(render_report_pdf(world, a, ra), None), (render_report_pdf(world, b, rb), None)],
        tmp_path / "flat.pdf",
    )
    merged = tmp_path / "nested.pdf"
    with pikepdf.open(flat, inherit_page_attributes=False) as pdf:
        root = pdf.Root.Pages
        nodes = []
        for page in list(root.Kids):
            node = pdf.make_indirect(
                pikepdf.Dictionary(
                    Type=pikepdf.Name.Pages,
                    Kids=pikepdf.Array([page]),
                    Count=1,
                    Parent=root,
                    MediaBox=page.MediaBox,
                    Resources=page.Resources,
                    Rotate=180,
                )
            )
            del page.MediaBox, page.Resources
            page.Parent = node
            nodes.append(node)
        root.Kids = pikepdf.Array(nodes)
        pdf.save(merged)
    with pikepdf.open(merged, inherit_page_attributes=False) as pdf:
        assert all("/Resources" not in node.Kids[0] for node in pdf.Root.Pages.Kids)

    split([merged], tmp_path / "out")

    rows = [r for r in manifest_rows(tmp_path / "out") if r["status"] == Status.SPLIT]
    assert {r["ssid"] for r in rows} == {a.ssid, b.ssid}
    for row in rows:
        path = tmp_path / "out" / row["file"]
        pages = pages_of(row["detail"])
        with pikepdf.open(path, inherit_page_attributes=False) as out:
            for copied in out.pages:
                assert "/Resources" in copied.obj and "/MediaBox" in copied.obj
                assert copied.obj.Rotate == 180
        assert pdftotext(path) == "".join(pdftotext(merged, n) for n in pages)
        assert row["ssid"] in pdftotext(path)


def test_the_same_report_given_twice_a_zip_and_its_pdf_is_split_once(
    toms: Path, tmp_path: Path
) -> None:
    once = split([toms / ZIP_NAME], tmp_path / "once")

    both = split([toms], tmp_path / "both")  # the folder holds the zip and its PDFs

    assert both.needs_a_person == 0 and both.reports_written == once.reports_written
    rows = manifest_rows(tmp_path / "both")
    assert all("; the same report is also in " in r["detail"] for r in rows)
    assert both.pages == 2 * once.pages


def test_the_roster_reconciles_students_without_reports_and_reports_of_others(
    world: World, tmp_path: Path
) -> None:
    (a, ra), (b, rb) = _students_with_reports(world, 2)
    merged = merge(
        [(render_report_pdf(world, a, ra), None), (render_report_pdf(world, b, rb), None)],
        tmp_path / "m.pdf",
    )
    roster = tmp_path / "roster.csv"
    roster.write_text(
        f"SSID,First Name,Last Name,School Name,Grade\n{a.ssid},A,One,Alder,5\n"
        "1111111111,Absent,Student,Alder,5\nnot-an-ssid,Bad,Row,Alder,5\n",
        "utf-8",
    )

    split(
        [merged],
        tmp_path / "out",
        roster=roster,
        layout="{school}/{grade}/{ssid}_{test}_{year}_{language}.pdf",
    )

    rows = {r["ssid"]: r for r in manifest_rows(tmp_path / "out")}
    assert rows[a.ssid]["status"] == Status.SPLIT and rows[a.ssid]["line"] == "2"
    assert rows[a.ssid]["file"] == f"Alder/5/{a.ssid}_{ra.test}_{ra.year}_en.pdf"
    assert (tmp_path / "out" / rows[a.ssid]["file"]).is_file()
    assert rows[b.ssid]["status"] == Status.NOT_IN_ROSTER and rows[b.ssid]["file"] == ""
    assert not list((tmp_path / "out").rglob(f"{b.ssid}_*"))
    assert rows["1111111111"]["status"] == Status.NO_REPORTS and rows["1111111111"]["line"] == "3"
    assert rows["not-an-ssid"]["status"] == "invalid_ssid"


def _zip_with(path: Path, members: Sequence[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def test_a_zip_member_named_outside_or_a_link_is_never_extracted_there(
    world: World, tmp_path: Path
) -> None:
    (a, ra), (b, rb) = _students_with_reports(world, 2)
    (tmp_path / "dl").mkdir()
    hostile = _zip_with(
        tmp_path / "dl" / "hostile.zip",
        [
            ("../../escaped.pdf", render_report_pdf(world, a, ra), stat.S_IFREG | 0o644),
            ("/abs/rooted.pdf", render_report_pdf(world, b, rb), stat.S_IFREG | 0o644),
            ("link.pdf", b"/etc/passwd", stat.S_IFLNK | 0o777),
        ],
    )
    out = tmp_path / "dl" / "out"

    split([hostile], out)

    rows = manifest_rows(out)
    assert {r["ssid"] for r in rows if r["status"] == Status.SPLIT} == {a.ssid, b.ssid}
    assert [r["detail"] for r in rows if r["status"] == Status.FAILED] == [
        f"{hostile}:link.pdf: a link, not a file; not read"
    ]
    assert not list(tmp_path.rglob("escaped.pdf")) and not list(tmp_path.rglob("rooted.pdf"))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [
            f"{a.ssid}_{ra.test}_{ra.year}_en.pdf",
            f"{b.ssid}_{rb.test}_{rb.year}_en.pdf",
            "manifest.csv",
        ]
    )


def test_a_huge_zip_member_is_not_read_past_the_bound(world: World, tmp_path: Path) -> None:
    ((a, ra),) = _students_with_reports(world, 1)
    small = render_report_pdf(world, a, ra)
    archive = _zip_with(
        tmp_path / "big.zip",
        [
            ("small.pdf", small, stat.S_IFREG | 0o644),
            ("huge.pdf", b"%PDF-1.7\n" + b"0" * 5_000_000, stat.S_IFREG | 0o644),
        ],
    )

    split([archive], tmp_path / "out", max_member_bytes=len(small) + 1)

    rows = manifest_rows(tmp_path / "out")
    assert [r["detail"] for r in rows if r["status"] == Status.FAILED] == [
        f"{archive}:huge.pdf: too large to read"
    ]
    assert [r["ssid"] for r in rows if r["status"] == Status.SPLIT] == [a.ssid]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".part")]


def test_a_damaged_pdf_is_a_failed_row_and_the_other_inputs_are_split(
    world: World, tmp_path: Path
) -> None:
    ((a, ra),) = _students_with_reports(world, 1)
    good = merge([(render_report_pdf(world, a, ra), None)], tmp_path / "good.pdf")
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(b"%PDF-1.7\n1 0 obj <<\n" + os.urandom(300))

    summary = split([damaged, good], tmp_path / "out")

    rows = manifest_rows(tmp_path / "out")
    assert [r["status"] for r in rows] == [Status.FAILED, Status.SPLIT]
    assert rows[0]["detail"].startswith(f"{damaged}: not a readable PDF")
    assert summary.needs_a_person == 1


def test_a_rerun_keeps_intact_reports_and_rewrites_a_damaged_one(
    toms: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = split([toms], out)
    files = sorted(out.glob("*.pdf"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    files[0].write_bytes(files[0].read_bytes()[:500])

    again = split([toms], out)

    assert again.reports_written == 1 and again.reports_already == first.reports_written - 1
    assert sorted(out.glob("*.pdf")) == files
    assert all(p.stat().st_mtime_ns == stamps[p] for p in files[1:])
    assert pikepdf.open(files[0]).pages
    statuses = {r["status"] for r in manifest_rows(out)}
    assert statuses == {Status.SPLIT, Status.ALREADY_SPLIT}


def test_a_folder_held_by_another_split_is_refused(toms: Path, tmp_path: Path) -> None:

    held = take_folder(tmp_path / "out")
    try:
        with pytest.raises(FolderBusyError, match=r"in use by caaspp split \(PID"):
            split([toms], tmp_path / "out")
    finally:
        held.release()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_mid_run_then_run_again_nothing_lost_nothing_twice(
    toms: Path, tmp_path: Path
) -> None:
    import signal

    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "caaspp_cli",
        "split",
        str(toms / ZIP_NAME),
        "--out",
        str(out),
        "--json",
    ]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(out.glob("*.pdf"))) < 5:
        time.sleep(0.002)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = set(out.glob("*.pdf"))
    assert not (out / "manifest.csv").exists()

    summary = split([toms / ZIP_NAME], out)

    rows = manifest_rows(out)
    assert summary.needs_a_person == 0
    assert summary.reports_already >= len(before) - 1 and summary.reports_already > 0
    files = [r["file"] for r in rows]
    assert len(files) == len(set(files)) == len(list(out.glob("*.pdf")))
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    for path in out.glob("*.pdf"):
        assert pikepdf.open(path).pages


def test_reopening_long_files_to_keep_memory_flat_changes_no_output(
    toms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import caaspp_cli.split.pdf as pdf

    split([toms / ZIP_NAME], tmp_path / "once")
    monkeypatch.setattr(pdf, "PAGES_PER_OPENING", 3)

    split([toms / ZIP_NAME], tmp_path / "reopened")

    once = {p.name: p.read_bytes() for p in (tmp_path / "once").glob("*.pdf")}
    reopened = {p.name: p.read_bytes() for p in (tmp_path / "reopened").glob("*.pdf")}
    assert once == reopened and len(once) > 10


def test_without_fonts_the_export_leaves_out_english_stand_ins_and_splits_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the fonts extra the sandbox draws Korean, Chinese and Arabic reports as
    # English copies with a notice: in a TOMS download they would read as a second English
    # report of the same test and year, and split would rightly hold both back.
    from caaspp_cli.sandbox import fonts
    from caaspp_cli.sandbox.render import drawn_in_its_language

    monkeypatch.setattr(fonts, "candidate_families", lambda script: [])
    fonts.forget_fonts()
    try:
        assert not drawn_in_its_language("ko") and drawn_in_its_language("es")
        world = World.build(60, 2026)
        export = export_toms(world, tmp_path / "toms")
        translated = {r.language for _, r in world.iter_reports() if r.format == "pdf"} & {
            "ko",
            "zh-Hant",
            "ar",
        }
        assert translated and set(export.left_out) == translated
        summary = split([export.zip_path], tmp_path / "out")
    finally:
        fonts.forget_fonts()
    rows = manifest_rows(tmp_path / "out")
    assert {r["status"] for r in rows} <= {Status.SPLIT, Status.ALREADY_SPLIT}, summary
    assert len(list((tmp_path / "out").glob("*.pdf"))) == export.reports
