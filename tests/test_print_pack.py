"""The print pack: one PDF per school, checked with qpdf, pdftotext and pdftoppm."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import pikepdf
import pytest
from helpers import assert_owner_only, report_pdf

from caaspp_cli.deliver.printpack import PrintItem, safe_stem, write_print_pack

DAY = date(2026, 8, 20)


def report(folder: Path, ssid: str, test: str = "CAASPP", pages: int = 1) -> Path:
    path = folder / f"{ssid}_{test}_2025_en.pdf"
    with report_pdf(f"Score report of {ssid} {test}") as pdf:
        for _ in range(pages - 1):
            pdf.pages.append(pdf.pages[0])
        pdf.save(path)
    return path


def item(
    folder: Path, ssid: str, last: str, grade: str, school: str = "Lincoln", pages: int = 1
) -> PrintItem:
    return PrintItem(school, grade, last, "Ana", ssid, 2, report(folder, ssid, pages=pages))


def text_of(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_one_file_per_school_in_grade_and_name_order_with_a_list_first(tmp_path: Path) -> None:
    src = tmp_path / "reports"
    src.mkdir()
    items = [
        item(src, "1000000003", "Zamora", "10"),
        item(src, "1000000001", "Lee", "K"),
        item(src, "1000000002", "Adams", "2", pages=3),
        item(src, "1000000004", "Brown", "TK"),
        item(src, "1000000005", "Núñez", "7", school="Roosevelt Middle"),
    ]
    pack = write_print_pack(tmp_path / "print", items, title_date=DAY)

    assert [s.school for s in pack.schools] == ["Lincoln", "Roosevelt Middle"]
    lincoln = pack.schools[0]
    assert (lincoln.students, lincoln.reports, lincoln.pages) == (4, 4, 1 + 1 + 1 + 3 + 1)
    check = subprocess.run(["qpdf", "--check", str(lincoln.path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    text = text_of(lincoln.path)
    order = [
        text.index(f"Score report of {ssid}")
        for ssid in ("1000000004", "1000000001", "1000000002", "1000000003")
    ]
    assert order == sorted(order)  # TK, K, 2, 10
    listing = text.split("\f")[0]
    assert "Score reports to mail: Lincoln" in listing and "Adams, Ana" in listing
    assert "p. 4" in listing  # Adams (grade 2) starts on page 4: after the list, TK and K
    assert "(0 new since the last pack)" in listing
    assert_owner_only(lincoln.path)
    assert "Núñez" in text_of(pack.schools[1].path)
    render = subprocess.run(
        [
            "pdftoppm",
            "-r",
            "30",
            "-f",
            "1",
            "-l",
            "1",
            "-png",
            str(lincoln.path),
            str(tmp_path / "p"),
        ],
        capture_output=True,
    )
    assert render.returncode == 0 and list(tmp_path.glob("p*.png"))


def test_one_students_reports_stay_together_when_rows_disagree_on_the_grade(
    tmp_path: Path,
) -> None:
    src = tmp_path / "reports"
    src.mkdir()
    first = item(src, "1000000001", "Lee", "3")
    middle = item(src, "1000000002", "Kim", "4")
    second = PrintItem(
        "Lincoln", "5", "Lee", "Ana", "1000000001", 9, report(src, "1000000001", "CAST")
    )
    (lincoln,) = write_print_pack(
        tmp_path / "print", [first, middle, second], title_date=DAY
    ).schools
    pages = text_of(lincoln.path).split("\f")
    listing = pages[0]
    lee = next(line for line in listing.splitlines() if "1000000001" in line)
    kim = next(line for line in listing.splitlines() if "1000000002" in line)
    assert "p. 2" in lee and "p. 4" in kim  # Lee's two reports are pages 2 and 3
    assert "1000000001 CAASPP" in pages[1] and "1000000001 CAST" in pages[2]
    assert "1000000002" in pages[3]


def test_students_new_since_the_last_pack_are_marked(tmp_path: Path) -> None:
    src = tmp_path / "reports"
    src.mkdir()
    old = item(src, "1000000001", "Lee", "3")
    fresh = replace(item(src, "1000000002", "Kim", "3"), new=True)
    (lincoln,) = write_print_pack(tmp_path / "print", [old, fresh], title_date=DAY).schools
    listing = text_of(lincoln.path).split("\f")[0]
    kim = next(line for line in listing.splitlines() if "1000000002" in line)
    lee = next(line for line in listing.splitlines() if "1000000001" in line)
    assert kim.rstrip().endswith("new") and not lee.rstrip().endswith("new")
    assert "(1 new since the last pack)" in listing


def test_the_pack_is_rewritten_and_a_school_no_longer_in_it_is_removed(tmp_path: Path) -> None:
    src = tmp_path / "reports"
    src.mkdir()
    out = tmp_path / "print"
    first = write_print_pack(
        out,
        [item(src, "1000000001", "Lee", "3"), item(src, "1000000002", "Kim", "4", school="Oak")],
        title_date=DAY,
    )
    assert len(first.schools) == 2
    (out / "notes.txt").write_text("staff's own file")

    second = write_print_pack(out, [item(src, "1000000001", "Lee", "3")], title_date=DAY)

    assert second.removed == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "print-Lincoln.pdf"]


@pytest.mark.parametrize(
    ("school", "stem"),
    [
        ("../../etc", "etc"),
        ("CON", "school-CON"),
        ("", "no-school"),
        ("a/b\\c", "a_b_c"),
        ("...", "no-school"),
    ],
)
def test_a_school_name_never_leaves_the_folder(tmp_path: Path, school: str, stem: str) -> None:
    assert safe_stem(school) == stem
    src = tmp_path / "reports"
    src.mkdir()
    pack = write_print_pack(
        tmp_path / "print", [item(src, "1000000001", "Lee", "3", school=school)], title_date=DAY
    )
    (written,) = pack.schools
    assert written.path.parent == tmp_path / "print"


def test_two_schools_that_read_alike_as_files_stay_apart(tmp_path: Path) -> None:
    src = tmp_path / "reports"
    src.mkdir()
    pack = write_print_pack(
        tmp_path / "print",
        [
            item(src, "1000000001", "Lee", "3", school="Oak / Hill"),
            item(src, "1000000002", "Kim", "3", school="Oak ? Hill"),
        ],
        title_date=DAY,
    )
    assert len({s.path for s in pack.schools}) == 2


@pytest.mark.posix
def test_a_link_planted_at_a_pack_file_is_replaced_not_followed(tmp_path: Path) -> None:
    src = tmp_path / "reports"
    src.mkdir()
    out = tmp_path / "print"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("not to be written")
    os.symlink(victim, out / "print-Lincoln.pdf")

    write_print_pack(out, [item(src, "1000000001", "Lee", "3")], title_date=DAY)

    assert victim.read_text() == "not to be written"
    assert not (out / "print-Lincoln.pdf").is_symlink()


def test_an_unreadable_or_protected_report_is_a_problem_not_a_silent_gap(tmp_path: Path) -> None:
    src = tmp_path / "reports"
    src.mkdir()
    good = item(src, "1000000001", "Lee", "3")
    broken = PrintItem("Lincoln", "3", "Kim", "Bo", "1000000002", 3, src / "broken.pdf")
    broken.file.write_bytes(b"%PDF-1.7 not really")
    locked_path = src / "1000000003_CAASPP_2025_en.pdf"
    with report_pdf("locked") as pdf:
        pdf.save(locked_path, encryption=pikepdf.Encryption(owner="o" * 12, user="u" * 12, R=6))
    locked = PrintItem("Lincoln", "3", "Ng", "Al", "1000000003", 4, locked_path)

    pack = write_print_pack(tmp_path / "print", [good, broken, locked], title_date=DAY)

    assert {problem[0].ssid for problem in pack.problems} == {"1000000002", "1000000003"}
    (lincoln,) = pack.schools
    assert lincoln.reports == 1 and "1000000001" in text_of(lincoln.path)
