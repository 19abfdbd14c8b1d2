"""What the commands print: any console encoding, and data always shown as text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pikepdf

from caaspp_cli.credentials import KEY_ENV, SECRET_ENV
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
