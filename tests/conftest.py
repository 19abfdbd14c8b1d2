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

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from typer.testing import CliRunner, Result

# Set by the test harness (tests/run.py, .ci/with-secret-service), not by users: kept.
HARNESS_VARIABLES = frozenset({"CAASPP_REQUIRE_SECRET_SERVICE", "CAASPP_SECRET_SERVICE_SANDBOX"})

TEST_CLIENT_KEY = "test-client-key-3f9a"
TEST_CLIENT_SECRET = "test-client-secret-8c21d07e"


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps passwords in a dict, for tests."""

    priority = 1  # type: ignore[assignment]

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
    from caaspp_cli import profiles
    from caaspp_cli.credentials import Credentials

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
        "sandbox", base_url=sandbox.base_url, client_key=DEMO_CLIENT_KEY,
        client_secret=DEMO_CLIENT_SECRET, make_default=True,
    )
