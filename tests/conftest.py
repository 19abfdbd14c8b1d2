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
  in-memory keyring, as ``caaspp config add`` would;
- ``sandbox``/``sandbox_profile``, ``smtp_server``/``smtp_server_factory``, ``tls_files``;
- ``fake``, ``router``, ``pdf_bytes`` for the ETS client tests (tests/ets_fakes.py);
- ``district`` and ``quick_mail`` for the bad-input tests (tests/bad_input_checks.py).

Only fixtures and hooks live here; the classes and functions tests call by name (the SMTP
server's recorder, the send inputs, report PDFs, ...) are in tests/helpers.py.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import keyring.errors
import pikepdf
import pytest
import respx
from ets_fakes import FakeTime
from helpers import (
    TEST_CLIENT_KEY,
    TEST_CLIENT_SECRET,
    CliInvoke,
    MemoryKeyring,
    ProfileFactory,
    SmtpRecorder,
    SmtpServer,
    TlsFiles,
    free_port,
)
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner, Result

# Property tests check what holds, never how fast: the machines that run the suite are
# shared, and a per-example deadline turns a busy moment into a failure.
settings.register_profile("caaspp", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("caaspp")

# Set by the test harness (tests/run.py, .ci/with-secret-service), not by users: kept.
HARNESS_VARIABLES = frozenset(
    {"CAASPP_REQUIRE_SECRET_SERVICE", "CAASPP_SECRET_SERVICE_SANDBOX", "CAASPP_REQUIRE_BROWSER"}
)


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


# --- The bad-input tests (tests/test_bad_*.py) ----------------------------------------------
@pytest.fixture
def district(profile_factory: Any) -> Any:
    """A default profile whose host is never reached: these runs stop before the network."""
    return profile_factory("district", make_default=True)


@pytest.fixture
def quick_mail(monkeypatch: pytest.MonkeyPatch) -> None:
    """`caaspp send` without its waits: no pause between retries, a 0.5 s SMTP timeout."""
    from caaspp_cli.send import run as mail

    real = mail.send_reports
    monkeypatch.setattr(
        mail,
        "send_reports",
        lambda options, **kwargs: real(options, sleep=lambda seconds: None, **kwargs),
    )
    monkeypatch.setattr(mail, "MailServer", functools.partial(mail.MailServer, timeout=0.5))
