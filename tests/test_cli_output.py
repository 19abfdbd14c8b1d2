"""What the commands print: any console encoding, and data always shown as text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pikepdf
from helpers import command_paths

from caaspp_cli.config.secrets import KEY_ENV, SECRET_ENV
from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET


def run_caaspp(*args: str, encoding: str) -> subprocess.CompletedProcess[bytes]:
    """caaspp in a process of its own whose stdout and stderr are files in ``encoding``,
    as Windows Task Scheduler or ``caaspp ... > log.txt`` gives it."""
    env = dict(
        os.environ,
        PYTHONIOENCODING=encoding,
        PYTHONUTF8="0",
        **{KEY_ENV: DEMO_CLIENT_KEY, SECRET_ENV: DEMO_CLIENT_SECRET},
    )
    return subprocess.run(
        [sys.executable, "-m", "caaspp_cli", *args], capture_output=True, env=env, timeout=120
    )


def env_profile(profile_factory, sandbox) -> None:
    profile_factory(
        "sandbox", base_url=sandbox.base_url, credentials_source="env", make_default=True
    )


def test_fetch_into_a_vietnamese_folder_with_cp1252_output_saves_and_reports(
    tmp_path: Path, sandbox, profile_factory
) -> None:
    env_profile(profile_factory, sandbox)
    ssid = sandbox.state.world.examples()["spanish"]
    out = tmp_path / "đầu ra"
    done = run_caaspp("fetch", "--ssid", ssid, "--out", str(out), encoding="cp1252")
    stdout, stderr = done.stdout.decode("cp1252"), done.stderr.decode("cp1252")
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr and "unexpected" not in stderr
    saved = sorted(out.glob("*.pdf"))
    assert saved
    # The folder's letters cp1252 lacks are escaped, not dropped: the path can be read back.
    assert "\\u1ea7" in stdout
    for path in saved:
        with pikepdf.open(path) as pdf:
            assert len(pdf.pages) >= 2


def test_json_on_a_cp1252_stdout_is_valid_json_with_the_exact_paths(
    tmp_path: Path, sandbox, profile_factory
) -> None:
    env_profile(profile_factory, sandbox)
    ssid = sandbox.state.world.examples()["english_only"]
    out = tmp_path / "Trường Lê Lợi"
    done = run_caaspp("fetch", "--ssid", ssid, "--out", str(out), "--json", encoding="cp1252")
    assert done.returncode == 0, done.stderr.decode("cp1252")
    document = json.loads(done.stdout.decode("cp1252"))
    text = json.dumps(document, ensure_ascii=False)
    assert str(out) in text
    assert sorted(out.glob("*.pdf"))


def test_a_folder_name_that_looks_like_markup_is_printed_as_it_is(
    cli, sandbox, sandbox_profile, tmp_path: Path
) -> None:
    ssid = sandbox.state.world.examples()["english_only"]
    out = tmp_path / "[/x] [bold]reports[/bold] :smile:"
    result = cli("fetch", "--ssid", ssid, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "unexpected" not in result.stderr
    flat = "".join(result.stdout.split())
    assert "".join(str(out).split()) in flat or "[/x]" in result.stdout
    assert "[bold]reports[/bold]" in flat
    assert ":smile:" in flat


def test_protect_lists_damaged_files_under_a_markup_name_as_text(cli, tmp_path: Path) -> None:
    source = tmp_path / "in [/x]"
    source.mkdir(parents=True)
    (source / "1000000009_SB_2025_en [red]x.pdf").write_bytes(b"%PDF-1.7 not really")
    result = cli(
        "protect",
        str(source),
        "--out",
        str(tmp_path / "out"),
        "--passwords",
        str(tmp_path / "pw.csv"),
    )
    assert "unexpected" not in result.stderr, result.stderr
    assert result.exit_code in (2, 3), result.output
    assert "[red]x.pdf" in "".join(result.stdout.split())


def test_error_lines_show_brackets_from_data(cli, tmp_path: Path) -> None:
    missing = tmp_path / "[bold]roster[/].csv"
    result = cli("bulk", str(missing), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "[bold]roster[/].csv" in result.stderr


def test_every_help_page_shows_placeholders_a_person_reads(cli) -> None:
    paths = command_paths()
    assert ["config", "smtp-test"] in paths and ["send"] in paths
    for path in paths:
        result = cli(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        for python_type in ("<bool>", "<list[", "<str>", "<int", "<float", "<path>"):
            assert python_type not in result.stdout, (path, python_type)
        assert "caaspp_cli/" not in result.stdout, path


def test_a_usage_error_names_the_command_it_is_about(cli, tmp_path: Path) -> None:
    result = cli("bulk", str(tmp_path / "x.csv"), "--out")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: caaspp bulk: Option '--out' requires an argument.",
        "hint: run 'caaspp bulk --help' to see the options.",
    ]
    nested = cli("--profile", "x", "config", "add", "d", "--base-url")
    assert nested.stderr.startswith("error: caaspp config add: Option '--base-url' requires")


def test_a_base_url_without_its_scheme_gets_a_did_you_mean(cli) -> None:
    result = cli("config", "add", "district", "--base-url", "caaspp-aws.ets.org")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "error: the base URL 'caaspp-aws.ets.org' has no https:// "
        "(did you mean https://caaspp-aws.ets.org?)."
    )


def test_the_fetch_table_fits_80_columns_with_subjects_and_whole_file_names(
    cli, sandbox, sandbox_profile, tmp_path: Path, monkeypatch
) -> None:
    from caaspp_cli.cli import render

    monkeypatch.setattr(render.stdout, "width", 80)
    ssid = sandbox.state.world.examples()["html"]
    out = tmp_path / ("a-long-folder-name-" * 4) / "reports"
    result = cli("fetch", "--ssid", ssid, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    table = [line for line in lines if not line.startswith("Saved in ")]
    assert max(len(line.rstrip()) for line in table) <= 80
    for path in out.glob("*.pdf"):
        assert any(path.name in line for line in lines), path.name
    assert f"Saved in {out}" in lines
    html_rows = [line for line in lines if " html " in line]
    assert html_rows and len(set(html_rows)) == len(html_rows)
    assert any("html (ELA)" in line for line in html_rows)
    listed = cli("fetch", "--ssid", ssid, "--out", str(out), "--list")
    links = [line for line in listed.stdout.splitlines() if line[:1].isdigit() and ". " in line]
    assert links and all(line.split(". ", 1)[1].startswith("http://127.0.0.1:") for line in links)


# --- Counted nouns ------------------------------------------------------------------------------
def test_counts_agree_with_their_nouns_in_every_command(cli, sandbox, sandbox_profile, tmp_path):
    """One student, one report: never "1 students", "(1 roster rows)" or "report(s)"."""
    from caaspp_cli.cli import render

    assert [render.plural(n, "student") for n in (0, 1, 2)] == [
        "0 students",
        "1 student",
        "2 students",
    ]
    assert render.plural(3, "family") == "3 families" and render.agree(2, "needs") == "need"
    ssid = sandbox.state.world.examples()["english_only"]
    roster = tmp_path / "roster.csv"
    roster.write_text(f"SSID,First Name\n{ssid},Ana\n", encoding="utf-8")
    bulk = cli("bulk", str(roster), "--out", str(tmp_path / "out"))
    dry = cli("bulk", str(roster), "--out", str(tmp_path / "dry"), "--dry-run")
    protect = cli(
        "protect",
        str(tmp_path / "out"),
        "--out",
        str(tmp_path / "protected"),
        "--passwords",
        str(tmp_path / "pw.csv"),
    )
    said = bulk.output + dry.output + protect.output
    assert bulk.exit_code == 0 and protect.exit_code == 0, said
    assert "caaspp bulk: 1 roster row" in bulk.stdout and "Roster rows" in bulk.stdout
    assert "Dry run: 1 roster row;" in dry.stdout and "about 1 student:" in dry.stdout
    assert "Passwords of 1 student (1 new)" in protect.stdout
    assert "(s)" not in said and " 1 students" not in said and "1 roster rows" not in said
