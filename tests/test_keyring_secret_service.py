"""The real OS keyring on Linux: a Secret Service (gnome-keyring) on a private D-Bus.

Run it with:  .ci/with-secret-service .venv/bin/python -m pytest -m secret_service

Skipped without gnome-keyring/dbus or outside the wrapper (so it never writes to a
developer's own keyring); with CAASPP_REQUIRE_SECRET_SERVICE=1 (set by tests/run.py) a
missing service is a failure instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from contextlib import closing, suppress
from pathlib import Path

import keyring
import pytest

from caaspp_cli.config.credentials import key_username, secret_username
from caaspp_cli.config.secrets import SERVICE_NAME

pytestmark = pytest.mark.secret_service

ROOT = Path(__file__).resolve().parent.parent
BACKEND = "keyring.backends.SecretService.Keyring"


def _unavailable_because() -> str | None:
    for tool in ("gnome-keyring-daemon", "dbus-run-session"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.environ.get("CAASPP_SECRET_SERVICE_SANDBOX") != "1":
        return "not run under .ci/with-secret-service"
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return "no D-Bus session bus"
    try:
        import secretstorage
    except ImportError:
        return "the secretstorage package is not installed"
    try:
        with closing(secretstorage.dbus_init()) as connection:
            if not secretstorage.check_service_availability(connection):
                return "no Secret Service on the session bus"
    except secretstorage.exceptions.SecretStorageException as exc:
        return f"the session bus is unreachable ({exc})"
    return None


def _use_secret_service() -> keyring.backend.KeyringBackend:
    problem = _unavailable_because()
    if problem is not None:
        if os.environ.get("CAASPP_REQUIRE_SECRET_SERVICE") == "1":
            pytest.fail(f"CAASPP_REQUIRE_SECRET_SERVICE=1, but {problem}")
        pytest.skip(
            f"{problem}; run: .ci/with-secret-service .venv/bin/python -m pytest -m secret_service"
        )
    from keyring.backends import SecretService

    backend = SecretService.Keyring()
    keyring.set_keyring(backend)  # the autouse memory_keyring fixture restores the old one
    return backend


def _run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A new Python process using the real Secret Service and this test's config dir."""
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHON_KEYRING_BACKEND": BACKEND, **(env or {})},
        timeout=120,
    )


def test_credentials_round_trip_through_the_secret_service(config_dir: Path) -> None:
    secret_service = _use_secret_service()
    name = f"ss-test-{secrets.token_hex(4)}"
    key, secret = f"key-{secrets.token_hex(8)}", f"secret-{secrets.token_hex(16)}"
    try:
        added = _run(
            "-m",
            "caaspp_cli",
            "config",
            "add",
            name,
            "--base-url",
            "https://caaspp.example.org",
            "--client-secret-stdin",
            stdin=secret + "\n",
            env={"CAASPP_CLIENT_KEY": key},
        )
        assert added.returncode == 0, added.stderr
        assert "stored in the OS keyring (keyring.backends.SecretService.Keyring)" in added.stdout

        # What the daemon holds, seen from this process.
        assert secret_service.get_password(SERVICE_NAME, key_username(name)) == key
        assert secret_service.get_password(SERVICE_NAME, secret_username(name)) == secret

        # A new process finds them with load_credentials alone.
        loaded = _run(
            "-c",
            "import sys; from caaspp_cli.config.credentials import load_credentials; "
            "c = load_credentials(sys.argv[1]); print(c.client_key); print(c.client_secret)",
            name,
        )
        assert loaded.returncode == 0, loaded.stderr
        assert loaded.stdout.splitlines() == [key, secret]

        shown = _run("-m", "caaspp_cli", "config", "show", name)
        assert shown.returncode == 0, shown.stderr
        assert "<hidden> (in the keyring)" in shown.stdout
        for path in config_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes()
        assert key not in shown.stdout + shown.stderr and secret not in shown.stdout

        removed = _run("-m", "caaspp_cli", "config", "remove", name, "--yes")
        assert removed.returncode == 0, removed.stderr
        assert "warning" not in removed.stderr

        assert secret_service.get_password(SERVICE_NAME, key_username(name)) is None
        assert secret_service.get_password(SERVICE_NAME, secret_username(name)) is None
        gone = _run(
            "-c",
            "import sys; from caaspp_cli.config.credentials import load_credentials; "
            "load_credentials(sys.argv[1])",
            name,
        )
        assert gone.returncode != 0
        assert "CredentialsError: no Client Key and no Client Secret" in gone.stderr
    finally:
        for username in (key_username(name), secret_username(name)):
            with suppress(keyring.errors.PasswordDeleteError):
                secret_service.delete_password(SERVICE_NAME, username)
