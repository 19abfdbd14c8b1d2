"""`caaspp fetch` end to end against the sandbox server, over real HTTP."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pikepdf
import pytest

from caaspp_cli import audit
from caaspp_cli.sandbox.app import SandboxConfig
from caaspp_cli.sandbox.server import SandboxServer


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def pdfs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.pdf"))


def downloads(server) -> int:
    return server.state.stats()["counters"].get("downloads_ok", 0)


@pytest.mark.posix
def test_fetch_saves_english_and_spanish_pdfs_owner_only(cli, sandbox, sandbox_profile, out):
    ssid = sandbox.state.world.examples()["spanish"]
    result = cli("fetch", "--ssid", ssid, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    names = pdfs(out)
    expected = {
        f"{ssid}_{r.test}_{r.year}_{r.language}.pdf"
        for r in sandbox.state.world.students[ssid].reports
        if r.format == "pdf"
    }
    assert set(names) == expected
    assert any(n.endswith("_es.pdf") for n in names) and any(n.endswith("_en.pdf") for n in names)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in names:
        path = out / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pikepdf.open(path) as pdf:
            assert len(pdf.pages) >= 2
    assert not [p for p in out.iterdir() if p.name.startswith(".caaspp-")]


def test_fetch_again_downloads_nothing_new(cli, sandbox, sandbox_profile, out):
    ssid = sandbox.state.world.examples()["english_only"]
    assert cli("fetch", "--ssid", ssid, "--out", str(out)).exit_code == 0
    before = downloads(sandbox)
    again = cli("fetch", "--ssid", ssid, "--out", str(out))
    assert again.exit_code == 0
    assert "already there" in again.stdout
    assert downloads(sandbox) == before


def test_fetch_filters_by_test_language_name_and_year(cli, sandbox, sandbox_profile, out):
    ssid = sandbox.state.world.examples()["spanish"]
    report = next(
        r
        for r in sandbox.state.world.students[ssid].reports
        if r.language == "es" and r.format == "pdf"
    )
    result = cli(
        "fetch",
        "--ssid",
        ssid,
        "--test",
        report.test.lower(),
        "--language",
        "Spanish",
        "--year",
        str(report.year),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    assert pdfs(out) == [f"{ssid}_{report.test}_{report.year}_es.pdf"]


@pytest.mark.parametrize(
    "form", ["{spring}", "{fall}-{short}", "{fall}-{spring}", "{fall}/{short}"]
)
def test_year_is_taken_as_the_reports_print_it(cli, sandbox, sandbox_profile, out, form):
    ssid = sandbox.state.world.examples()["spanish"]
    report = next(r for r in sandbox.state.world.students[ssid].reports if r.format == "pdf")
    year = form.format(spring=report.year, fall=report.year - 1, short=str(report.year)[-2:])
    result = cli("fetch", "--ssid", ssid, "--year", year, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert pdfs(out)
    assert all(f"_{report.year}_" in name for name in pdfs(out))


def test_no_report_in_a_language_reads_as_a_sentence(cli, sandbox, sandbox_profile, out):
    ssid = sandbox.state.world.examples()["english_only"]
    result = cli("fetch", "--ssid", ssid, "--language", "zh-Hant", "--out", str(out))
    assert result.exit_code == 5
    assert f"the student {ssid} has no score report in Chinese (Traditional)." in result.stderr


def test_fetch_list_shows_links_and_saves_nothing(cli, sandbox, sandbox_profile, out):
    ssid = sandbox.state.world.examples()["html"]
    result = cli("fetch", "--ssid", ssid, "--list", "--json", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["ssid"] == ssid
    assert {r["format"] for r in listed["reports"]} == {"pdf", "html"}
    assert all(r["url"].startswith(sandbox.base_url) for r in listed["reports"])
    assert all(r["outcome"] == "listed" for r in listed["reports"])
    assert not out.exists()


def test_fetch_json_reports_files_and_skips_html(cli, sandbox, sandbox_profile, out):
    ssid = sandbox.state.world.examples()["html"]
    result = cli("fetch", "--ssid", ssid, "--json", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    reports = json.loads(result.stdout)["reports"]
    saved = [r for r in reports if r["outcome"] == "saved"]
    assert saved and all(Path(r["file"]).exists() and len(r["sha256"]) == 64 for r in saved)
    assert {r["outcome"] for r in reports if r["format"] == "html"} == {"html_skipped"}
    assert "url" not in json.dumps(saved)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("unknown", "no record"),
        ("not_enrolled", "not enrolled"),
        ("no_reports", "no score report"),
    ],
)
def test_nothing_to_fetch_is_exit_5_with_a_sentence(
    cli, sandbox, sandbox_profile, out, case, words
):
    ssid = sandbox.state.world.examples()[case]
    result = cli("fetch", "--ssid", ssid, "--out", str(out))
    assert result.exit_code == 5
    assert words in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("ssid", ["12345", "1.23457E+09", "123456789", "1234567890.0", ""])
def test_bad_ssid_is_exit_2_before_any_request(cli, sandbox, sandbox_profile, ssid):
    before = sandbox.state.stats()["counters"].get("data_requests", 0)
    result = cli("fetch", "--ssid", ssid)
    assert result.exit_code == 2
    assert "10 digits" in result.stderr
    assert sandbox.state.stats()["counters"].get("data_requests", 0) == before


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--test", "SAT", "unknown test"),
        ("--language", "French", "unknown language"),
        ("--year", "24", "not a school year"),
        ("--year", "2024-26", "not a school year"),
        ("--year", "twenty", "not a school year"),
    ],
)
def test_bad_filters_are_exit_2(cli, sandbox_profile, option, value, words):
    result = cli("fetch", "--ssid", "1234567890", option, value)
    assert result.exit_code == 2
    assert words in result.stderr


def test_no_profile_is_exit_2_with_a_hint(cli):
    result = cli("fetch", "--ssid", "1234567890")
    assert result.exit_code == 2
    assert "config add" in result.stderr


def test_refused_credentials_are_exit_4_and_never_echoed(
    cli, sandbox, profile_factory, out, config_dir, data_dir
):
    secret = "Wrong-Secret-7f3a9c"
    profile_factory(
        "wrong",
        base_url=sandbox.base_url,
        client_key="key-5b1e",
        client_secret=secret,
        make_default=True,
    )
    ssid = sandbox.state.world.examples()["english_only"]
    result = cli("--debug", "fetch", "--ssid", ssid, "--out", str(out))
    assert result.exit_code == 4
    assert "TOMS" in result.stderr
    assert secret not in result.output and "key-5b1e" not in result.output
    for folder in (config_dir, data_dir, out):
        for path in folder.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert secret.encode() not in content and b"key-5b1e" not in content


@pytest.mark.posix
def test_audit_log_records_each_request_without_secrets(cli, sandbox, sandbox_profile, out):
    ssid = sandbox.state.world.examples()["spanish"]
    env = {audit.STUDENTS_ENV: "1"}
    assert cli("fetch", "--ssid", ssid, "--out", str(out), env=env).exit_code == 0
    log = audit.audit_path()
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    mine = [line for line in lines if line[2] == ssid]
    assert mine[0][3] == "listed"
    assert sum(line[3] == "downloaded" for line in mine) == len(pdfs(out))
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "signature=" not in log.read_text()
    assert "sandbox-client-secret" not in log.read_text()


def test_fetch_survives_a_faulty_service(cli, profile_factory, out):
    config = SandboxConfig(
        students=30, seed=3, fault_rate=0.3, revoke_every=4, link_ttl=1, rate_limit=20
    )
    with SandboxServer(config) as server:
        profile_factory(
            "faulty",
            base_url=server.base_url,
            client_key=config.client_key,
            client_secret=config.client_secret,
            make_default=True,
        )
        ssid = server.state.world.examples()["spanish"]
        result = cli("fetch", "--ssid", ssid, "--out", str(out))
        assert result.exit_code == 0, result.stderr
        expected = [r for r in server.state.world.students[ssid].reports if r.format == "pdf"]
        assert len(pdfs(out)) == len(expected)
        for name in pdfs(out):
            with pikepdf.open(out / name):
                pass
        assert not [p for p in os.listdir(out) if p.startswith(".caaspp-")]


def test_a_lone_client_secret_in_the_environment_is_refused_with_exit_4(
    cli, sandbox, sandbox_profile, out
):
    ssid = sandbox.state.world.examples()["english_only"]
    before = sandbox.state.stats()["counters"].get("token_requests", 0)
    result = cli(
        "fetch", "--ssid", ssid, "--out", str(out), env={"CAASPP_CLIENT_SECRET": "wrong-one"}
    )
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith(
        "error: CAASPP_CLIENT_SECRET is set but CAASPP_CLIENT_KEY is not"
    )
    assert "wrong-one" not in result.output
    assert not out.exists() or not list(out.glob("*.pdf"))
    assert sandbox.state.stats()["counters"].get("token_requests", 0) == before


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")
def test_a_link_at_a_reports_name_is_neither_adopted_nor_written_through(
    cli, sandbox, sandbox_profile, tmp_path, out
):
    """A link at the report's name pointing to another child's report was taken as
    "already there"."""
    world = sandbox.state.world
    ssid = world.examples()["english_only"]
    other_ssid = world.examples()["spanish"]
    other = tmp_path / "other"
    assert cli("fetch", "--ssid", other_ssid, "--out", str(other)).exit_code == 0
    victim = sorted(other.glob("*.pdf"))[0]
    before = victim.read_bytes()
    out.mkdir()
    report = next(r for r in world.students[ssid].reports if r.format == "pdf")
    planted = out / f"{ssid}_{report.test}_{report.year}_{report.language}.pdf"
    planted.symlink_to(victim)
    result = cli("fetch", "--ssid", ssid, "--out", str(out), "--json")
    assert result.exit_code == 3, result.stdout + result.stderr
    reports = json.loads(result.stdout)["reports"]
    [refused] = [r for r in reports if r["outcome"] not in ("saved", "html_skipped")]
    assert refused["outcome"] == "failed"
    assert str(planted) in refused["detail"] and "symbolic link" in refused["detail"]
    assert planted.is_symlink() and victim.read_bytes() == before
