from __future__ import annotations

import csv
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from caaspp_cli.protect.verify import verify_protected_pdf


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sandbox score reports of two students with two reports each."""
    from caaspp_cli.sandbox.render import render_report_pdf
    from caaspp_cli.sandbox.world import World

    folder = tmp_path_factory.mktemp("corpus")
    world = World.build(30)
    students = [
        s for s in world.students.values() if sum(r.format == "pdf" for r in s.reports) >= 2
    ][:2]
    for student in students:
        for report in [r for r in student.reports if r.format == "pdf"][:2]:
            name = f"{student.ssid}_{report.test}_{report.year}_{report.language}.pdf"
            (folder / name).write_bytes(render_report_pdf(world, student, report))
    return folder


@pytest.fixture
def reports(corpus: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "reports"
    shutil.copytree(corpus, folder)
    return folder


def _rows(sheet: Path) -> list[dict[str, str]]:
    with sheet.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _assert_no_password_in(text: str, sheet: Path) -> None:
    for row in _rows(sheet):
        assert row["password"] not in text
        for word in row["password"].split("-"):
            assert f"-{word}-" not in text


@pytest.mark.posix
def test_protect_prints_a_summary_and_no_password(cli, reports: Path, tmp_path: Path) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    result = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet))
    assert result.exit_code == 0, result.output
    assert "protected" in result.stdout
    assert "Passwords of 2 students (2 new)" in result.stdout
    assert result.stderr == ""
    _assert_no_password_in(result.output, sheet)
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o600
    for row in _rows(sheet):
        verify_protected_pdf(out / row["file"], row["password"])


def test_protect_json_summary_holds_no_password(cli, reports: Path, tmp_path: Path) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    result = cli(
        "protect",
        str(reports),
        "--out",
        str(out),
        "--passwords",
        str(sheet),
        "--json",
        "--workers",
        "2",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {
        "protected": 4,
        "already_protected": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert summary["students"] == 2
    assert {f["outcome"] for f in summary["files"]} == {"protected"}
    assert all("password" not in key for f in summary["files"] for key in f)
    _assert_no_password_in(result.output, sheet)

    again = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["counts"]["already_protected"] == 4
    assert json.loads(again.stdout)["new_passwords"] == 0


def test_a_password_file_inside_out_is_refused_and_nothing_written(
    cli, reports: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = cli("protect", str(reports), "--out", str(out), "--passwords", str(out / "pw.csv"))
    assert result.exit_code == 2
    assert "error: the password file" in result.stderr
    assert "is inside the output folder" in result.stderr
    assert "passwords travel separately" in result.stderr
    assert not out.exists()


def test_a_password_file_inside_an_input_folder_is_refused(
    cli, reports: Path, tmp_path: Path
) -> None:
    result = cli(
        "protect",
        str(reports),
        "--out",
        str(tmp_path / "out"),
        "--passwords",
        str(reports / "pw.csv"),
    )
    assert result.exit_code == 2
    assert "inside the input folder" in result.stderr
    assert not (reports / "pw.csv").exists()
    assert not (tmp_path / "out").exists()


def test_bad_inputs_are_listed_with_their_reason_and_exit_3(
    cli, reports: Path, tmp_path: Path
) -> None:
    data = sorted(reports.glob("*.pdf"))[0].read_bytes()
    (reports / "notes.pdf").write_text("not a report", encoding="utf-8")
    (reports / "cut.pdf").write_bytes(data[: len(data) // 3])
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    result = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet), "--json")
    assert result.exit_code == 3
    files = {Path(f["input"]).name: f for f in json.loads(result.stdout)["files"]}
    assert files["notes.pdf"]["outcome"] == "skipped"
    assert files["notes.pdf"]["detail"] == "not a PDF"
    assert files["cut.pdf"]["detail"].startswith("damaged PDF")
    assert "error: 2 of 6 files could not be protected." in result.stderr
    assert len(list(out.glob("*.pdf"))) == 4

    table = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet))
    assert table.exit_code == 3
    assert "not a PDF" in table.stdout
    assert "already protected" in table.stdout


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")
def test_an_input_that_is_a_link_is_not_read(cli, reports: Path, tmp_path: Path) -> None:
    """A link in an input folder may lead to any file, another child's report among them."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = sorted(reports.glob("*.pdf"))[0]
    shutil.copy(first, elsewhere / "other_child.pdf")
    link = reports / "1999999999_CAASPP_2025_en.pdf"
    link.symlink_to(elsewhere / "other_child.pdf")
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    result = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet), "--json")
    assert result.exit_code == 3, result.output
    files = {Path(f["input"]).name: f for f in json.loads(result.stdout)["files"]}
    assert files[link.name]["outcome"] == "skipped"
    assert "symbolic link" in files[link.name]["detail"]
    assert not (out / link.name).exists()
    assert link.name not in sheet.read_text(encoding="utf-8")
    # Named on the command line, a link is refused outright.
    named = cli("protect", str(link), "--out", str(out), "--passwords", str(sheet))
    assert named.exit_code == 2
    assert str(link) in named.stderr.replace("\n", "") and "symbolic link" in named.stderr


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")
def test_a_link_at_a_copys_name_is_neither_read_nor_written_through(
    cli, reports: Path, tmp_path: Path
) -> None:
    """A link at the protected copy's name: taken as "already protected" (another child's
    file under this child's name), or written through to wherever it leads."""
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim.pdf"
    victim.write_bytes(b"keep me")
    out.mkdir()
    names = sorted(p.name for p in reports.glob("*.pdf"))
    (out / names[0]).symlink_to(victim)
    # An input in a subfolder, whose folder in DIR is a link out of it.
    (reports / "grade5").mkdir()
    shutil.move(reports / names[1], reports / "grade5" / names[1])
    (out / "grade5").symlink_to(elsewhere, target_is_directory=True)

    result = cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet), "--json")

    assert result.exit_code == 3, result.output
    files = {f["output"]: f for f in json.loads(result.stdout)["files"]}
    assert files[names[0]]["outcome"] == "failed"
    assert str(out.resolve() / names[0]) in files[names[0]]["detail"]
    assert files[f"grade5/{names[1]}"]["outcome"] == "failed"
    assert str(out.resolve() / "grade5") in files[f"grade5/{names[1]}"]["detail"]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.pdf"]
    assert victim.read_bytes() == b"keep me"
    assert (out / names[0]).is_symlink()
    assert sum(f["outcome"] == "protected" for f in files.values()) == len(names) - 2


def test_a_short_roster_password_is_refused_naming_the_row(
    cli, reports: Path, tmp_path: Path
) -> None:
    ssids = sorted({p.name[:10] for p in reports.glob("*.pdf")})
    roster = tmp_path / "roster.csv"
    roster.write_text(
        f"SSID,First Name,Last Name,Password\n{ssids[0]},Ana,Ruiz,long-enough\n"
        f"{ssids[1]},Luis,Paz,abc1234\n",
        encoding="utf-8",
    )
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    result = cli(
        "protect",
        str(reports),
        "--out",
        str(out),
        "--passwords",
        str(sheet),
        "--roster",
        str(roster),
        "--password-column",
        "Password",
    )
    assert result.exit_code == 2
    assert f"line 3 (SSID {ssids[1]}): it is shorter than 8 characters" in result.stderr
    assert "abc1234" not in result.output
    assert not sheet.exists()
    assert not out.exists()


def test_password_column_needs_a_roster(cli, reports: Path, tmp_path: Path) -> None:
    result = cli(
        "protect",
        str(reports),
        "--out",
        str(tmp_path / "out"),
        "--passwords",
        str(tmp_path / "pw.csv"),
        "--password-column",
        "Password",
    )
    assert result.exit_code == 2
    assert "--password-column needs --roster" in result.stderr


def test_a_missing_input_is_bad_input(cli, tmp_path: Path) -> None:
    result = cli(
        "protect",
        str(tmp_path / "nowhere"),
        "--out",
        str(tmp_path / "out"),
        "--passwords",
        str(tmp_path / "pw.csv"),
    )
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_protect_has_help(cli) -> None:
    result = cli("protect", "--help")
    assert result.exit_code == 0
    assert "--passwords" in result.stdout
    assert "--password-column" in result.stdout


def test_protecting_protects_output_says_so_in_one_sentence_and_writes_nothing(
    cli, reports: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    assert cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet)).exit_code == 0
    again_out, again_sheet = tmp_path / "again", tmp_path / "pw.csv"

    result = cli("protect", str(out), "--out", str(again_out), "--passwords", str(again_sheet))

    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())
    assert "`caaspp protect`'s output" in said and "unprotected reports" in said
    assert "--out folder of `caaspp bulk` or `caaspp split`" in said
    assert result.stdout == "" and "Passwords of" not in result.output
    assert not again_sheet.exists() and not again_out.exists()


def test_a_run_that_protects_nothing_never_claims_a_password_file(
    cli, reports: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    assert cli("protect", str(reports), "--out", str(out), "--passwords", str(sheet)).exit_code == 0
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(sorted(out.glob("*.pdf"))[0], mixed)  # already encrypted
    (mixed / "notes.pdf").write_text("not a report", encoding="utf-8")
    new_sheet = tmp_path / "pw.csv"

    result = cli(
        "protect", str(mixed), "--out", str(tmp_path / "o2"), "--passwords", str(new_sheet)
    )

    assert result.exit_code == 3, result.output
    assert "already encrypted" in result.stdout and "not a PDF" in result.stdout
    assert not new_sheet.exists()
    assert "Passwords of" not in result.stdout
    assert "No report was protected, so no password was written." in result.stdout
