"""Helpers several test modules share (import them: ``from helpers import ...``).

Fixtures stay in conftest.py; what a test calls by name lives here: the command-tree walk,
quick retries, the in-memory keyring, the loopback SMTP server's recorder, the inputs of
`caaspp send` (families, protected reports, password sheet), SMTP profiles and test TLS files.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from typer.testing import Result


def command_paths() -> list[list[str]]:
    """Every command of the caaspp tree, as the words that name it ([] is caaspp itself),
    found by walking the Click command tree typer builds: a new command is in it at once."""
    import typer.main

    from caaspp_cli.cli.app import app

    paths: list[list[str]] = [[]]

    def walk(command: object, prefix: list[str]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the clients that commands open retry at once: same attempts, no long waits.

    For tests of a service that cannot be reached, which a command otherwise retries with
    back-off for several seconds.
    """
    from caaspp_cli.ets import connect
    from caaspp_cli.ets.client import EtsClient, RetryPolicy

    quick = RetryPolicy(base_delay=0.001, max_delay=0.002)
    opened: Any = functools.partial(EtsClient, retry=quick)
    monkeypatch.setattr(connect, "EtsClient", opened)


# --- Test credentials and the in-memory keyring -----------------------------------------
TEST_CLIENT_KEY = "test-client-key-3f9a"
TEST_CLIENT_SECRET = "test-client-secret-8c21d07e"


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps passwords in a dict, for tests."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.entries[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError("no such password") from None


# --- Types of the conftest fixtures --------------------------------------------------------
CliInvoke = Callable[..., Result]
ProfileFactory = Callable[..., Any]


# --- A real SMTP server on loopback -----------------------------------------------------
class ReceivedMessage:
    """One message the test SMTP server accepted: its envelope and its bytes."""

    def __init__(self, mail_from: str, rcpt_tos: tuple[str, ...], data: bytes) -> None:
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.data = data

    @property
    def message(self) -> Any:
        import email
        import email.policy

        return email.message_from_bytes(self.data, policy=email.policy.default)


class SmtpRecorder:
    """An aiosmtpd handler that keeps what it accepts; tests steer its answers.

    ``refuse[address]``: the reply to RCPT TO for that address (e.g. "550 5.1.1 unknown");
    ``data_replies``: replies to the next bodies, in order, instead of accepting them;
    ``drop_after_accepting``: for that many bodies, keep the message and close the
    connection without answering (the client cannot know it was accepted);
    ``after_accepting``: called with each message kept, before the answer goes.
    """

    def __init__(self) -> None:
        self.received: list[ReceivedMessage] = []
        self.refuse: dict[str, str] = {}
        self.data_replies: list[str] = []
        self.drop_after_accepting = 0
        self.after_accepting: Callable[[ReceivedMessage], None] | None = None
        self.bodies = 0
        self.sessions = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.bodies += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        received = ReceivedMessage(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content)
        self.received.append(received)
        if self.after_accepting is not None:
            self.after_accepting(received)
        if self.drop_after_accepting:
            self.drop_after_accepting -= 1
            server.transport.close()
        return "250 2.0.0 OK: queued"


class SmtpEndpoint(Protocol):
    """Where an SMTP server listens: ours, or a misbehaving one from a test."""

    host: str
    port: int


class SmtpServer:
    def __init__(self, handler: SmtpRecorder, host: str, port: int) -> None:
        self.handler = handler
        self.host = host
        self.port = port

    @property
    def received(self) -> list[ReceivedMessage]:
        return self.handler.received


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- Inputs of `caaspp send` --------------------------------------------------------------
class Family:
    """A roster row of the send tests, with its student's protected report(s)."""

    def __init__(
        self,
        ssid: str,
        first: str,
        last: str,
        *,
        guardian: str = "",
        email: str = "",
        language: str = "",
        password: str = "",
        tests: tuple[str, ...] = ("CAASPP",),
        encrypted: bool = True,
        in_sheet: bool = True,
    ) -> None:
        self.ssid, self.first, self.last = ssid, first, last
        self.guardian, self.email, self.language = guardian, email, language
        self.password = password or f"maple-river-{ssid[-4:]}-stone"
        self.tests, self.encrypted, self.in_sheet = tests, encrypted, in_sheet

    def files(self) -> list[str]:
        return [f"{self.ssid}_{test}_2025_en.pdf" for test in self.tests]


class SendInputs:
    def __init__(self, roster: Path, pdfs: Path, passwords: Path, families: list[Family]) -> None:
        self.roster, self.pdfs, self.passwords, self.families = roster, pdfs, passwords, families

    def args(self, smtp: str = "district") -> list[str]:
        """`caaspp send` with these inputs, at a rate that keeps the tests quick."""
        return [
            "send",
            "--roster",
            str(self.roster),
            "--pdfs",
            str(self.pdfs),
            "--passwords",
            str(self.passwords),
            "--smtp",
            smtp,
            "--rate",
            "6000",
        ]


def report_pdf(text: str) -> Any:
    """A one-page PDF saying ``text`` (an unsaved pikepdf.Pdf)."""
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
        )
    )
    page = pdf.pages[0]
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.Contents = pdf.make_stream(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"))
    return pdf


def write_send_inputs(folder: Path, families: list[Family]) -> SendInputs:
    """A roster, a folder of protected reports and the password file, as `caaspp protect`
    leaves them."""
    import csv
    import secrets

    import pikepdf

    from caaspp_cli.artifacts import PasswordSheet
    from caaspp_cli.protect.policy import PERMISSIONS

    folder.mkdir(parents=True, exist_ok=True)
    pdfs = folder / "protected"
    pdfs.mkdir()
    sheet_rows = []
    for family in families:
        for name in family.files():
            with report_pdf(f"Score report {name}") as pdf:
                encryption = (
                    pikepdf.Encryption(
                        owner=secrets.token_urlsafe(16),
                        user=family.password,
                        R=6,
                        allow=PERMISSIONS,
                    )
                    if family.encrypted
                    else False
                )
                pdf.save(pdfs / name, encryption=encryption)
            if family.in_sheet:
                sheet_rows.append(
                    {
                        "ssid": family.ssid,
                        "file": name,
                        "password": family.password,
                        "student_name": f"{family.first} {family.last}",
                        "guardian_name": family.guardian,
                        "email": family.email,
                        "language": family.language,
                    }
                )
    passwords = folder / "passwords.csv"
    PasswordSheet(passwords).append(sheet_rows)
    roster = folder / "roster.csv"
    with roster.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "SSID",
                "First Name",
                "Last Name",
                "School Name",
                "Guardian Name",
                "Guardian Email",
                "Correspondence Language",
            ]
        )
        for family in families:
            writer.writerow(
                [
                    family.ssid,
                    family.first,
                    family.last,
                    "Lincoln Elementary",
                    family.guardian,
                    family.email,
                    family.language,
                ]
            )
    return SendInputs(roster, pdfs, passwords, families)


def add_smtp_profile(server: SmtpEndpoint, name: str = "district", **fields: Any) -> Any:
    """Save an SMTP profile pointing at a test server (plain SMTP on loopback by default)."""
    from caaspp_cli.config.mail_profiles import make_smtp_profile, save_smtp_profile

    password = fields.pop("password", None)
    settings: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "from_address": "Distrito Escolar Ñandú <reports@lincoln.example.org>",
        "reply_to": "help@lincoln.example.org",
    }
    settings.update(fields)
    profile = make_smtp_profile(name=name, **settings)
    save_smtp_profile(profile, password)
    return profile


class TlsFiles:
    """A CA made for the test, and a server certificate it signed for 127.0.0.1/localhost."""

    def __init__(self, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file

    def server_context(self) -> Any:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# Generous bounds against a hang; no assertion depends on how long anything takes.
RUN_TIMEOUT = 120.0


class Runs:
    """Starts `caaspp ARGS` as its own process group, and kills it at a random moment:
    once ``progress()`` has grown by a random amount, and a random pause after that."""

    def __init__(
        self,
        folder: Path,
        seed: int,
        progress: Callable[[], int],
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.rng = random.Random(seed)
        self.progress = progress
        self.env = env
        self.started = 0
        self.kills = 0  # kills that landed on a live process

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.started += 1
        errors = (self.folder / f"run-{self.started}.err").open("wb")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "caaspp_cli", *args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        finally:
            errors.close()

    def stderr(self) -> str:
        return (self.folder / f"run-{self.started}.err").read_text("utf-8", "replace")

    def kill_midway(self, args: list[str], remaining: int, kills_left: int) -> bool:
        """Run, and kill once a random share of the ``remaining`` work is done; True if
        the kill landed on a live process."""
        process = self.start(*args)
        target = self.progress() + self.rng.randint(1, max(1, remaining // (kills_left + 1)))
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            while self.progress() < target and process.poll() is None:
                assert time.monotonic() < deadline, "the run made no progress"
                time.sleep(0.005)
            time.sleep(self.rng.uniform(0.0, 0.05))
        finally:
            alive = process.poll() is None
            if alive:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=RUN_TIMEOUT)
        assert alive or process.returncode in (0, 3), self.stderr()
        self.kills += alive
        return alive

    def finish(self, *args: str, process: subprocess.Popen[bytes] | None = None) -> int:
        """Run (or wait for ``process``) to the end; its exit code."""
        process = process or self.start(*args)
        try:
            return process.wait(timeout=RUN_TIMEOUT)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def send_run(
    inputs: SendInputs,
    time: FakeTime | None = None,
    *,
    server: Any = None,
    wall_clock: Callable[[], float] | None = None,
    **options: Any,
) -> Any:
    """`caaspp send` over ``inputs`` through the "district" profile, on a fake clock
    (``server``: a transport to send through instead of the profile's; ``wall_clock``:
    the clock a daily limit counts by)."""
    import time as real_time

    from caaspp_cli.send.run import SendOptions, send_reports

    time = time or FakeTime()
    return send_reports(
        SendOptions(
            roster=inputs.roster,
            pdfs=inputs.pdfs,
            passwords=inputs.passwords,
            smtp="district",
            **options,
        ),
        clock=time.clock,
        sleep=time.sleep,
        server=server,
        wall_clock=wall_clock or real_time.time,
    )


def outcomes(summary: Any) -> dict[str, str]:
    """Each roster row's outcome in a send summary, by SSID."""
    return {row.ssid: row.outcome.value for row in summary.rows}


def assert_owner_only(path: Path) -> None:
    """The file is readable by its owner alone (POSIX modes; Windows files take the access
    rights of their folder, which a mode cannot show)."""
    if os.name == "posix":
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}, not owner-only"
