"""Fixtures shared by the whole suite.

Autouse, for every test:
- the keyring is an in-memory backend (``memory_keyring``): no test touches the real one;
- CAASPP_* variables are cleared, and the config and data dirs live in ``tmp_path``
  (``config_dir``, ``data_dir``; they do not exist until caaspp creates them);
- Rich sees a plain 120-column terminal without colour.

On request:
- ``cli("config", "list", input=..., env=...)`` runs the app in-process and returns typer's
  Result: ``exit_code``, ``stdout``, ``stderr`` (separate), ``output`` (both, interleaved);
- ``profile_factory(name=..., base_url=...)`` saves a profile with credentials in the
  in-memory keyring, as ``caaspp config add`` would.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import keyring
import keyring.core
import keyring.errors
import pikepdf
import pytest
import respx
from ets_fakes import FakeTime
from keyring.backend import KeyringBackend
from typer.testing import CliRunner, Result

# Set by the test harness (tests/run.py, .ci/with-secret-service), not by users: kept.
HARNESS_VARIABLES = frozenset({"CAASPP_REQUIRE_SECRET_SERVICE", "CAASPP_SECRET_SERVICE_SANDBOX"})

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``posix`` need what Windows lacks: skip them there, saying so.

    tests/test_suite_honesty.py checks that every test using such a facility is marked.
    """
    if os.name != "nt":
        return
    skip = pytest.mark.skip(reason="POSIX only: signals, file modes or mounts Windows lacks")
    for item in items:
        if item.get_closest_marker("posix"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    """The keyring every test sees; swap it with ``keyring.set_keyring`` (restored after)."""
    previous = keyring.core._keyring_backend  # not get_keyring(): that probes the system
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.core._keyring_backend = previous


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CAASPP_") and name not in HARNESS_VARIABLES:
            monkeypatch.delenv(name)
    for name in ("PYTHON_KEYRING_BACKEND", "FORCE_COLOR", "TTY_COMPATIBLE", "CLICOLOR_FORCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CAASPP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CAASPP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("LINES", "50")
    monkeypatch.setenv("NO_COLOR", "1")
    # Rich reads COLUMNS once, when a console is made: the CLI's consoles may have been made
    # before this fixture ran (at collection, in another test's order), so set them too.
    from caaspp_cli.cli import render

    for console in (render.stdout, render.stderr):
        monkeypatch.setattr(console, "width", 120)


@pytest.fixture
def config_dir() -> Path:
    """The isolated config dir (where config.toml goes); not created yet."""
    return Path(os.environ["CAASPP_CONFIG_DIR"])


@pytest.fixture
def data_dir() -> Path:
    """The isolated data dir (where audit.log goes); not created yet."""
    return Path(os.environ["CAASPP_DATA_DIR"])


CliInvoke = Callable[..., Result]
LOGGERS_THE_APP_CONFIGURES = ("caaspp_cli", "httpx", "httpcore")


@pytest.fixture
def cli() -> Iterator[CliInvoke]:
    """Run ``caaspp ARGS...`` in-process: ``cli("config", "list", input="...", env={...})``."""
    from caaspp_cli.cli.app import app

    runner = CliRunner()
    # The app configures logging on every run (a handler on the captured stderr, levels,
    # no propagation): put it back after each run, so that caplog works in later tests.
    loggers = [logging.getLogger(name) for name in LOGGERS_THE_APP_CONFIGURES]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]

    def invoke(
        *args: str, input: str | None = None, env: Mapping[str, str | None] | None = None
    ) -> Result:
        try:
            return runner.invoke(app, list(args), input=input, env=env)
        finally:
            for logger, handlers, level, propagate in saved:
                logger.handlers[:] = handlers
                logger.setLevel(level)
                logger.propagate = propagate

    yield invoke


ProfileFactory = Callable[..., Any]


@pytest.fixture
def profile_factory() -> ProfileFactory:
    """Save a profile (credentials in the in-memory keyring) and return it.

    ``profile_factory("district", base_url="http://127.0.0.1:8000", expires=date(...),
    client_key=..., client_secret=..., credentials_source="keyring" | "env",
    make_default=False)``
    """
    from caaspp_cli.config import profiles
    from caaspp_cli.config.credentials import Credentials

    def make(
        name: str = "district",
        *,
        base_url: str = "https://caaspp.example.org",
        client_key: str = TEST_CLIENT_KEY,
        client_secret: str = TEST_CLIENT_SECRET,
        make_default: bool = False,
        expires: date | None = None,
        **fields: Any,
    ) -> profiles.Profile:
        profile = profiles.Profile(
            name=name, base_url=base_url, expires=profiles.default_expiry(), **fields
        )
        profiles.add_profile(
            profile, Credentials(client_key, client_secret), make_default=make_default
        )
        if expires is not None:  # may be past: add_profile would refuse that
            store = profiles.load_store()
            profile = store.profiles[name] = profile.model_copy(update={"expires": expires})
            store.save()
        return profile

    return make


# --- The sandbox as a real server -------------------------------------------------------
@pytest.fixture(scope="session")
def sandbox() -> Iterator[Any]:
    """One well-behaved sandbox server on a free loopback port, shared by the session."""
    from caaspp_cli.sandbox.app import SandboxConfig
    from caaspp_cli.sandbox.server import SandboxServer

    with SandboxServer(SandboxConfig(students=60, seed=11)) as server:
        yield server


@pytest.fixture
def sandbox_profile(sandbox: Any, profile_factory: ProfileFactory) -> Any:
    """A default profile pointing at the shared sandbox, with its demo credentials."""
    from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET

    return profile_factory(
        "sandbox",
        base_url=sandbox.base_url,
        client_key=DEMO_CLIENT_KEY,
        client_secret=DEMO_CLIENT_SECRET,
        make_default=True,
    )


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


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., SmtpServer]]:
    """Start an aiosmtpd server on loopback: ``smtp_server_factory(**SMTP_kwargs)``
    (``tls_context=``, ``require_starttls=``, ``authenticator=``, ...). Stopped after."""
    from aiosmtpd.controller import Controller

    controllers: list[Any] = []

    def start(**kwargs: Any) -> SmtpServer:
        handler = SmtpRecorder()
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return SmtpServer(handler, "127.0.0.1", port)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SmtpServer]) -> SmtpServer:
    """A plain SMTP server on loopback that accepts every message (no TLS, no login)."""
    return smtp_server_factory()


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


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "caaspp test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(ca_file, cert_file, key_file)


# --- The ETS client tests (tests/test_ets_*.py) ----------------------------------------------
@pytest.fixture
def fake() -> FakeTime:
    """A clock that only moves when the client sleeps."""
    return FakeTime()


@pytest.fixture
def router() -> respx.Router:
    """The mocked ETS service's routes (respx), none of them required to be called."""
    return respx.Router(assert_all_called=False)


@pytest.fixture(scope="session")
def pdf_bytes() -> bytes:
    """A one-page blank PDF, as the service would send a report."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(612, 792))
    buffer = io.BytesIO()
    pdf.save(buffer)
    data = buffer.getvalue()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    return data
