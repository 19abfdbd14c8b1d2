"""Files another program holds open (Windows: Excel, a PDF reader, an indexer, antivirus).

Linux has no mandatory file locks, so the Windows error is made here the way Windows raises
it: a PermissionError whose ``winerror`` is a sharing violation. What is tested is caaspp's
answer to it: a short wait, then one sentence naming the file, and the run going on.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from caaspp_cli.errors import FileHeldError
from caaspp_cli.fsutil import replace_into_place, write_private_text

SHARING_VIOLATION = 32


def held(path: str) -> PermissionError:
    error = PermissionError(13, "The process cannot access the file", path)
    error.winerror = SHARING_VIOLATION  # type: ignore[attr-defined]
    return error


def hold(monkeypatch: pytest.MonkeyPatch, name: str, times: int | None) -> list[str]:
    """Make os.replace onto a file called ``name`` fail as Windows does while it is held,
    ``times`` times (None: for as long as the test runs)."""
    real = os.replace
    attempts: list[str] = []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == name and (times is None or len(attempts) < times):
            attempts.append(str(dst))
            raise held(str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return attempts


def test_a_file_an_indexer_holds_for_a_moment_is_replaced_after_a_short_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "manifest.csv"
    target.write_text("old", encoding="utf-8")
    attempts = hold(monkeypatch, "manifest.csv", times=2)
    write_private_text(target, "new")
    assert target.read_text(encoding="utf-8") == "new"
    assert len(attempts) == 2
    assert not [p for p in tmp_path.iterdir() if p.name != "manifest.csv"]


def test_a_file_kept_open_gets_one_sentence_naming_it_and_stays_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "passwords.csv"
    target.write_text("old", encoding="utf-8")
    hold(monkeypatch, "passwords.csv", times=None)
    waits: list[float] = []
    temp = tmp_path / "new.tmp"
    temp.write_text("new", encoding="utf-8")
    with pytest.raises(FileHeldError) as caught:
        replace_into_place(temp, target, sleep=waits.append)
    assert caught.value.message == (
        f"{target} is open in another program, so caaspp cannot replace it."
    )
    assert "close it there" in (caught.value.hint or "")
    assert sum(waits) < 1.0
    assert target.read_text(encoding="utf-8") == "old"


def test_a_plain_permission_error_is_not_taken_for_a_held_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    temp = tmp_path / "a.tmp"
    temp.write_text("x", encoding="utf-8")
    with pytest.raises(PermissionError):
        replace_into_place(temp, tmp_path / "b", sleep=lambda _: None)


def test_protect_fails_only_the_copy_a_reader_holds_open_and_goes_on(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caaspp_cli.sandbox.render import render_report_pdf
    from caaspp_cli.sandbox.world import World

    world = World.build(12)
    reports = tmp_path / "reports"
    reports.mkdir()
    students = [s for s in world.students.values() if any(r.format == "pdf" for r in s.reports)]
    names = []
    for student in students[:3]:
        report = next(r for r in student.reports if r.format == "pdf")
        name = f"{student.ssid}_{report.test}_{report.year}_{report.language}.pdf"
        (reports / name).write_bytes(render_report_pdf(world, student, report))
        names.append(name)
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    # The first run protects everything and records the passwords; the copies are then
    # removed, and while they are written again a PDF reader holds one of them open.
    assert cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet)).exit_code == 0
    shutil.rmtree(out)
    hold(monkeypatch, names[1], times=None)
    result = cli(
        "protect",
        str(reports),
        "--out",
        str(out),
        "--passwords",
        str(sheet),
        "--workers",
        "1",
        "--json",
    )
    assert result.exit_code == 3, result.output
    assert "unexpected" not in result.output
    outcomes = {Path(f["input"]).name: f for f in json.loads(result.stdout)["files"]}
    assert outcomes[names[1]]["outcome"] == "failed"
    assert "is open in another program" in outcomes[names[1]]["detail"]
    assert {outcomes[n]["outcome"] for n in (names[0], names[2])} == {"protected"}
    assert (out / names[0]).exists() and (out / names[2]).exists()
    assert not (out / names[1]).exists()
    with sheet.open(newline="", encoding="utf-8") as handle:
        assert len({row["ssid"] for row in csv.DictReader(handle)}) == 3
