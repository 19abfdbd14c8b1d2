"""Children's data and district secrets: what every command leaves behind.

Every command runs once as staff would, against a real sandbox (which accepts only our
distinctive Client Key and Secret) and a real SMTP server (which wants our distinctive
password), once at the default level and once with ``--debug``. Then:

1. no secret (Client Key, Client Secret, a rotated Secret, the SMTP password, in plain
   text, UTF-16, base64 or as HTTP Basic / SMTP AUTH PLAIN credentials) is on stdout or
   stderr, or in any file under the test's folder: config, data (the audit log), every
   output folder, the ledgers (SQLite files read as bytes, with their -wal files);
2. no pre-signed download link's signature is on stderr, or in any file;
3. every file caaspp wrote is 0600 and every folder it created is 0700;
4. at the default level stderr names no student: no SSID, name or guardian email of the
   roster, except an SSID in an ``error:`` line about that very SSID, typed by the user
   on the command line. stdout is not checked for them: it carries the results the user
   asked for (a table of a student's reports, the summary of a run), not logs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import stat
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import AuthResult

from caaspp_cli.cli.sandbox import roster_csv
from caaspp_cli.sandbox.app import SandboxConfig
from caaspp_cli.sandbox.server import SandboxServer

CLIENT_KEY = "ck-PRIVACY-KEY-3c9e71f0"
CLIENT_SECRET = "cs-PRIVACY-SECRET-9f2b6d0a4e"
ROTATED_SECRET = "cs-PRIVACY-ROTATED-5a8c21d7"
SMTP_USER = "score-reports@lincoln.example.org"
SMTP_PASSWORD = "smtp-PRIVACY-PASSWORD-71d4e8b3"
SECRETS = (CLIENT_KEY, CLIENT_SECRET, ROTATED_SECRET, SMTP_PASSWORD)


def _secret_forms() -> list[bytes]:
    forms: list[bytes] = []
    for secret in SECRETS:
        raw = secret.encode()
        forms += [
            raw,
            secret.encode("utf-16-le"),
            base64.b64encode(raw),
            urllib.parse.quote(secret).encode(),
        ]
    for secret in (CLIENT_SECRET, ROTATED_SECRET):
        forms.append(base64.b64encode(f"{CLIENT_KEY}:{secret}".encode()))  # HTTP Basic
    forms.append(base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()))  # AUTH PLAIN
    return forms


SECRET_FORMS = _secret_forms()


@pytest.fixture(scope="module")
def ets() -> Iterator[SandboxServer]:
    """A sandbox that knows only our Client Key and Secret, and fails now and then (5%)."""
    config = SandboxConfig(
        students=40, seed=5, fault_rate=0.05, client_key=CLIENT_KEY, client_secret=CLIENT_SECRET
    )
    with SandboxServer(config) as server:
        yield server


def _smtp_login(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@dataclass
class Run:
    """Every command run, and what the test needs to check them."""

    results: list[tuple[list[str], Any]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ssids: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)


def _write_roster(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True)
    mangled = {**rows[0], "SSID": "1.23457E+09"}  # one row Excel spoiled
    path.write_text(roster_csv([*rows, mangled, rows[1]]), encoding="utf-8")
    return path


def _run_every_command(cli: Any, ets: SandboxServer, smtp: Any, tmp_path: Path, debug: bool) -> Run:
    run = Run()
    out = tmp_path / "out"  # created by caaspp, folders and all
    world = ets.state.world
    rows = world.roster_rows()[:14]
    roster = _write_roster(tmp_path / "inputs" / "roster.csv", rows)
    for row in rows:
        run.ssids.add(row["SSID"])
        run.names.update(row[k] for k in ("First Name", "Last Name", "Guardian Name"))
        run.emails.add(row["Guardian Email"])
    examples = world.examples()
    prefix = ["--debug"] if debug else []

    def caaspp(*args: str, code: int | tuple[int, ...] = 0, **kwargs: Any) -> Any:
        result = cli(*prefix, *args, **kwargs)
        codes = (code,) if isinstance(code, int) else code
        assert result.exit_code in codes, (args, result.output)
        run.results.append((list(args), result))
        return result

    rotated = {"CAASPP_CLIENT_KEY": CLIENT_KEY, "CAASPP_CLIENT_SECRET": ROTATED_SECRET}
    caaspp(
        "config",
        "add",
        "district",
        "--base-url",
        ets.base_url,
        "--client-secret-stdin",
        input=CLIENT_SECRET + "\n",
        env={"CAASPP_CLIENT_KEY": CLIENT_KEY},
    )
    caaspp("config", "list")
    caaspp("config", "list", "--json")
    caaspp("config", "show", "district")
    caaspp("config", "show", "district", "--json")
    caaspp("config", "test", "district")
    caaspp("config", "rotate", "district", env=rotated)
    caaspp("config", "test", "district", code=4)  # ETS refuses the rotated pair
    caaspp(
        "config",
        "rotate",
        "district",
        "--client-secret-stdin",
        input=CLIENT_SECRET + "\n",
        env={"CAASPP_CLIENT_KEY": CLIENT_KEY},
    )
    caaspp("config", "test", "district")
    caaspp(
        "config",
        "smtp",
        "mail",
        "--host",
        smtp.host,
        "--port",
        str(smtp.port),
        "--security",
        "none",
        "--user",
        SMTP_USER,
        "--from",
        "Lincoln Unified <score-reports@lincoln.example.org>",
        "--password-stdin",
        input=SMTP_PASSWORD + "\n",
    )
    caaspp("config", "smtp-test", "mail")

    listed = caaspp("fetch", "--ssid", examples["spanish"], "--list", "--json")
    run.links = [report["url"] for report in json.loads(listed.stdout)["reports"]]
    caaspp("fetch", "--ssid", examples["spanish"], "--out", str(out / "fetched"))
    caaspp("fetch", "--ssid", examples["unknown"], "--out", str(out / "fetched"), code=5)
    caaspp(
        "bulk",
        str(roster),
        "--out",
        str(out / "reports"),
        "--layout",
        "{school}/{ssid}_{test}_{year}_{language}.pdf",
        code=3,  # the mangled and the repeated row need a person
    )
    caaspp("bulk", str(roster), "--out", str(out / "reports"), "--dry-run", code=3)
    caaspp(
        "protect",
        str(out / "reports"),
        "--out",
        str(out / "protected"),
        "--passwords",
        str(out / "private" / "passwords.csv"),
        "--roster",
        str(roster),
        "--workers",
        "2",
    )
    send = [
        "send",
        "--roster",
        str(roster),
        "--pdfs",
        str(out / "protected"),
        "--passwords",
        str(out / "private" / "passwords.csv"),
        "--smtp",
        "mail",
        "--rate",
        "6000",
        "--language-column",
        "Correspondence Language",
    ]
    # The spoiled row is never sent: exit 3, and its reason is in the send report.
    caaspp(*send, "--dry-run", "--outbox", str(out / "outbox"), code=3)
    caaspp(*send, code=3)
    caaspp(*send, "--json", code=3)  # again: nothing sent twice
    caaspp("config", "remove", "district", "--yes")
    assert smtp.received, "the run sent nothing: the checks below would prove little"
    return run


@pytest.mark.posix
@pytest.mark.parametrize("debug", [False, True], ids=["default-level", "debug"])
def test_every_command_keeps_secrets_out_of_output_and_files(
    cli: Any,
    ets: SandboxServer,
    smtp_server_factory: Any,
    tmp_path: Path,
    config_dir: Path,
    data_dir: Path,
    debug: bool,
) -> None:
    smtp = smtp_server_factory(authenticator=_smtp_login, auth_require_tls=False)
    run = _run_every_command(cli, ets, smtp, tmp_path, debug)

    # 1. No secret on the terminal, in any form.
    for args, result in run.results:
        for form in SECRET_FORMS:
            assert form.decode("latin-1") not in result.output, (args, form)

    # 1. Nor in any file: config, audit log, reports, manifests, ledgers (with -wal), ...
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(p.name == "audit.log" for p in files)
    assert any(p.name.endswith(".sqlite") for p in files)
    for path in files:
        data = path.read_bytes()
        for form in SECRET_FORMS:
            assert form not in data, (path, form)

    # 2. No pre-signed link's signature in a log line or a file.
    assert run.links
    signatures = [
        urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["signature"][0]
        for link in run.links
    ]
    for args, result in run.results:
        for signature in signatures:
            assert signature not in result.stderr, args
    for path in files:
        data = path.read_bytes()
        for signature in signatures:
            assert signature.encode() not in data, path

    # 3. Owner-only: every file 0600, every folder caaspp made 0700.
    for top in (config_dir, data_dir, tmp_path / "out"):
        assert stat.S_IMODE(top.stat().st_mode) == 0o700, top
        for path in top.rglob("*"):
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert any(p.is_dir() for p in (tmp_path / "out" / "reports").iterdir())  # --layout's

    # 4. At the default level, no student is named in a log line.
    if not debug:
        _assert_no_student_on_stderr(run)


def _assert_no_student_on_stderr(run: Run) -> None:
    names = [re.compile(rf"\b{re.escape(name)}\b") for name in run.names if len(name) >= 3]
    for args, result in run.results:
        for line in result.stderr.splitlines():
            typed = line.startswith("error: ") and any(s in line and s in args for s in run.ssids)
            for ssid in run.ssids:
                assert ssid not in line or typed, (args, line)
            for email in run.emails:
                assert email not in line, (args, line)
            for name in names:
                assert not name.search(line), (args, line)


@pytest.mark.posix
@pytest.mark.parametrize("debug", [False, True], ids=["default-level", "debug"])
def test_the_sandbox_run_briefly_writes_owner_only_and_logs_no_request(
    tmp_path: Path, debug: bool
) -> None:
    roster = tmp_path / "out" / "sandbox" / "roster.csv"
    command = [
        sys.executable,
        "-m",
        "caaspp_cli",
        *(["--debug"] if debug else []),
        "sandbox",
        "--port",
        "0",
        "--students",
        "8",
        "--seed",
        "3",
        "--roster-out",
        str(roster),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        ssid = next(
            line.split()[-1]
            for line in iter(process.stdout.readline, "")
            if line.startswith("example ")
        )
        with httpx.Client(base_url=base_url, timeout=10) as http:
            http.get("/_sandbox/stats").raise_for_status()
            http.get(f"/api/v1/students/{ssid}/score-reports/")  # refused: no token
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert ssid not in stderr  # no access log: request paths carry SSIDs
    for path in (tmp_path / "out", tmp_path / "out" / "sandbox"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(roster.stat().st_mode) == 0o600
    for form in SECRET_FORMS:
        assert form.decode("latin-1") not in stdout + stderr


# --- OAuth mail logins ---------------------------------------------------------------------------
MAIL_CLIENT_SECRET = "app-PRIVACY-CLIENT-SECRET-6e0d42c9"


@pytest.mark.posix
@pytest.mark.parametrize("debug", [False, True], ids=["default-level", "debug"])
def test_oauth_mail_keeps_tokens_secrets_and_keys_out_of_output_and_files(
    cli: Any, tls_files: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    """Microsoft (client secret, then certificate) and Google (service account) logins, from
    `config mail` to `send --mail`: no token, client secret or private key anywhere."""
    from cryptography.hazmat.primitives import serialization
    from helpers import Family, write_send_inputs
    from mail_peers import (
        TENANT,
        MicrosoftApp,
        ServiceAccount,
        key_pem,
        rsa_key,
        self_signed,
        serve_token_peer,
        serve_xoauth_smtp,
        write_service_account_key,
    )

    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_file))
    mailbox = "score-reports@lincoln.example.org"
    peers = serve_token_peer(tls_files.server_context())
    peer = next(peers)
    servers = serve_xoauth_smtp(peer, mailbox, tls_files.server_context())
    smtp = next(servers)
    prefix = ["--debug"] if debug else []
    results: list[Any] = []

    def caaspp(*args: str, **kwargs: Any) -> Any:
        result = cli(*prefix, *args, **kwargs)
        assert result.exit_code == 0, (args, result.output)
        results.append(result)
        return result

    cert_key, google_key = rsa_key(), rsa_key()
    app = peer.apps["app-1"] = MicrosoftApp("app-1", secret=MAIL_CLIENT_SECRET)
    app.certificate = self_signed(cert_key)
    pem = tmp_path / "keys" / "app.pem"
    pem.parent.mkdir(mode=0o700)
    pem.write_bytes(key_pem(cert_key) + app.certificate.public_bytes(serialization.Encoding.PEM))
    pem.chmod(0o600)
    account = ServiceAccount("sa@lincoln.iam.gserviceaccount.com", google_key, (mailbox,))
    peer.accounts[account.email] = account
    key_file = write_service_account_key(tmp_path / "keys", peer, account)
    common = ["--host", smtp.host, "--port", str(smtp.port), "--from", mailbox]
    microsoft = ["--auth", "oauth-microsoft", "--tenant", TENANT, "--client-id", "app-1"]
    logins = [
        [*microsoft, "--authority", peer.authority, "--secret-stdin"],
        [*microsoft, "--authority", peer.authority, "--certificate", str(pem)],
        ["--auth", "oauth-google", "--service-account", str(key_file), "--user", mailbox],
    ]
    try:
        for number, login in enumerate(logins):
            caaspp("config", "mail", "m", *common, *login, input=MAIL_CLIENT_SECRET + "\n")
            caaspp("config", "show", "m")
            caaspp("config", "show", "m", "--json")
            caaspp("config", "list", "--json")
            caaspp("config", "test-mail", "m", "--to", "it@lincoln.example.org")
            sam = Family(f"100000000{number}", "Sam", "Lee", guardian="Pat", email="p@example.org")
            inputs = write_send_inputs(tmp_path / f"case{number}", [sam])
            send = ["send", "--roster", str(inputs.roster), "--pdfs", str(inputs.pdfs)]
            caaspp(*send, "--passwords", str(inputs.passwords), "--mail", "m")
    finally:
        servers.close()
        peers.close()

    assert len(smtp.handler.logins) == 6 and len(peer.issued) >= 6
    private = [
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for key in (cert_key, google_key)
    ]
    forms = [MAIL_CLIENT_SECRET.encode(), base64.b64encode(MAIL_CLIENT_SECRET.encode())]
    for token in peer.issued:
        xoauth = f"user={mailbox}\x01auth=Bearer {token}\x01\x01"
        forms += [token.encode(), token.split(".")[2].encode(), base64.b64encode(xoauth.encode())]
    forms += [base64.b64encode(der)[64:128] for der in private]  # a line of the PEM body
    for result in results:
        for form in forms:
            assert form.decode("latin-1") not in result.output, form
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.parent.name != "keys":
            data = path.read_bytes()
            for form in forms:
                assert form not in data, (path, form)
