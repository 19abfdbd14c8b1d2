"""TOMS-style downloads of the sandbox's reports, for trying `caaspp split`.

TOMS's "School-Level Student Score Report PDFs" with Merge Files = Yes delivers, for a
school, the reports merged into large PDFs batched by grade, in a zip behind a secure link.
This writes the same for the sandbox's students: one merged PDF per school year, school
and grade (English and translated reports alike, each student's reports one after another),
and a zip holding them all. The pages are the sandbox's API PDFs, copied unchanged.

A translated report the sandbox cannot draw in its language (Korean, Chinese or Arabic
without the fonts extra) is left out: its English stand-in would read as a second English
report of the same student, test and year, which `split` rightly holds back; real TOMS
downloads have no such copies.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pikepdf

from caaspp_cli.fsutil import atomic_private_file, prepare_output_dir
from caaspp_cli.sandbox.render import drawn_in_its_language, render_report_pdf
from caaspp_cli.sandbox.world import SandboxReport, SandboxStudent, World

ZIP_NAME = "toms-download.zip"


@dataclass(frozen=True)
class TomsExport:
    files: list[Path]  # the merged PDFs
    zip_path: Path
    reports: int
    pages: int
    left_out: dict[str, int]  # language -> translated reports not drawn in it (no font)


def batches(
    world: World, left_out: dict[str, int] | None = None
) -> dict[str, list[tuple[SandboxStudent, SandboxReport]]]:
    """Merged file name -> its reports, in the order TOMS merges them (by student)."""
    found: dict[str, list[tuple[SandboxStudent, SandboxReport]]] = {}
    for student, report in world.iter_reports():
        if report.format != "pdf":
            continue
        if not drawn_in_its_language(report.language):
            if left_out is not None:
                left_out[report.language] = left_out.get(report.language, 0) + 1
            continue
        school = world.school_at(student, report.grade)
        name = f"{report.year}_{school.code}_grade-{report.grade}.pdf"
        found.setdefault(name, []).append((student, report))
    return dict(sorted(found.items()))


def export_toms(world: World, out_dir: Path) -> TomsExport:
    """Write the merged PDFs and the zip into ``out_dir`` (owner-only, atomically)."""
    prepare_output_dir(out_dir, "--toms-export folder")
    files: list[Path] = []
    reports = pages = 0
    left_out: dict[str, int] = {}
    with (
        atomic_private_file(out_dir / ZIP_NAME) as zip_handle,
        zipfile.ZipFile(zip_handle, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for name, members in batches(world, left_out).items():
            merged = pikepdf.new()
            for student, report in members:
                with pikepdf.open(io.BytesIO(render_report_pdf(world, student, report))) as one:
                    merged.pages.extend(one.pages)
                reports += 1
            pages += len(merged.pages)
            buffer = io.BytesIO()
            merged.save(buffer, deterministic_id=True)
            merged.close()
            data = buffer.getvalue()
            target = out_dir / name
            with atomic_private_file(target) as handle:
                handle.write(data)
            archive.writestr(name, data)
            files.append(target)
    return TomsExport(files, out_dir / ZIP_NAME, reports, pages, left_out)
