"""Client Key and Client Secret: the environment and the OS keyring, nothing else.

The order is fixed: environment variables (for unattended jobs) override the keyring;
the keyring holds what ``caaspp config add`` stored. A profile made with
``--env-credentials`` reads the environment only and never touches the keyring, so that a
headless server without any keyring backend works. Secrets never reach a file, a log, an
error message or ``--debug`` output; their ``repr`` is ``<hidden>``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import keyring
import keyring.backend
import keyring.errors
from keyring.backends import chainer, fail, null

from caaspp_cli.errors import BadInputError, CredentialsError, KeyringUnavailableError

log = logging.getLogger(__name__)

HIDDEN = "<hidden>"
SERVICE_NAME = "caaspp"
KEY_ENV = "CAASPP_CLIENT_KEY"
SECRET_ENV = "CAASPP_CLIENT_SECRET"  # noqa: S105 - the name of a variable
BACKEND_ENV = "PYTHON_KEYRING_BACKEND"

CredentialSource = Literal["keyring", "env"]
"""Where a profile's credentials live: the OS keyring, or the environment at run time."""

KEYRING_HINT = (
    "run a Secret Service (gnome-keyring under D-Bus) or another OS keyring, choose a "
    f"backend with {BACKEND_ENV}, or for unattended jobs set {KEY_ENV} and {SECRET_ENV} "
    "(they override the keyring; `caaspp config add --env-credentials` makes a profile "
    "that never uses the keyring)."
)


@dataclass(frozen=True)
class Credentials:
    """A Client Key and Client Secret pair. Both are secret: repr hides them."""

    client_key: str = field(repr=False)
    client_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(client_key={HIDDEN}, client_secret={HIDDEN})"

    __str__ = __repr__


@dataclass(frozen=True)
class CredentialStatus:
    """Where a profile's credentials would come from now, and whether each one is there.

    ``key_present``/``secret_present`` are None when that cannot be told (the keyring is
    unavailable); ``problem`` then says why. No secret is held.
    """

    origin: Literal["env", "keyring"]
    key_present: bool | None
    secret_present: bool | None
    backend: str | None = None
    problem: str | None = None

    @property
    def complete(self) -> bool:
        return bool(self.key_present and self.secret_present)


def key_username(profile: str) -> str:
    """The keyring username of a profile's Client Key (service: ``caaspp``)."""
    return f"{profile}:client_key"


def secret_username(profile: str) -> str:
    """The keyring username of a profile's Client Secret (service: ``caaspp``)."""
    return f"{profile}:client_secret"


# --- Input ---------------------------------------------------------------------------------
def clean_client_key(value: str) -> str:
    """A Client Key as typed or pasted: surrounding blanks dropped, then checked."""
    key = _clean(value, "Client Key")
    if ":" in key:
        # HTTP Basic authentication cannot carry a user-id with a colon (RFC 7617).
        raise BadInputError(
            "the Client Key contains ':', which no Client Key from TOMS does.",
            hint="copy the Client Key again from TOMS.",
        )
    return key


def clean_client_secret(value: str) -> str:
    """A Client Secret as typed or pasted: surrounding blanks dropped, then checked."""
    return _clean(value, "Client Secret")


def _clean(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise BadInputError(f"the {what} is empty.", hint=f"copy the {what} from TOMS.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise BadInputError(
            f"the {what} contains control characters.", hint=f"copy the {what} again from TOMS."
        )
    return text


# --- The environment -----------------------------------------------------------------------
def from_environment(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials in CAASPP_CLIENT_KEY and CAASPP_CLIENT_SECRET, if both are set."""
    env = os.environ if environ is None else environ
    key, secret = env.get(KEY_ENV, "").strip(), env.get(SECRET_ENV, "").strip()
    if key and secret:
        return Credentials(key, secret)
    return None


def _missing_env(environ: Mapping[str, str]) -> list[str]:
    return [name for name in (KEY_ENV, SECRET_ENV) if not environ.get(name, "").strip()]


# --- The keyring ---------------------------------------------------------------------------
def keyring_backend() -> keyring.backend.KeyringBackend:
    """The usable keyring backend, or KeyringUnavailableError saying why there is none.

    keyring does not always raise until first use: with no backend it hands out the
    ``fail`` keyring, and an empty chainer silently stores nothing. Both are caught here.
    """
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a bad PYTHON_KEYRING_BACKEND, a broken plugin, ...
        raise KeyringUnavailableError(
            f"the OS keyring could not be loaded ({type(exc).__name__}: {exc}).",
            hint=KEYRING_HINT,
        ) from None
    if isinstance(backend, fail.Keyring | null.Keyring) or (
        isinstance(backend, chainer.ChainerBackend) and not chainer.ChainerBackend.backends
    ):
        raise KeyringUnavailableError(
            f"no usable OS keyring on this machine ({_backend_name(backend)}).",
            hint=KEYRING_HINT,
        )
    return backend


def backend_name() -> str:
    """The name of the keyring backend in use, for display (never raises)."""
    try:
        return _backend_name(keyring_backend())
    except KeyringUnavailableError:
        return "none"


def _backend_name(backend: keyring.backend.KeyringBackend) -> str:
    kind = type(backend)
    return f"{kind.__module__}.{kind.__qualname__}"


def _keyring_failure(
    action: str, exc: Exception, backend: keyring.backend.KeyringBackend, *secrets: str
) -> KeyringUnavailableError:
    if isinstance(exc, keyring.errors.KeyringLocked):
        problem = "it is locked and was not unlocked"
    elif isinstance(exc, keyring.errors.NoKeyringError):
        problem = "no backend is available"
    else:
        problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
    for secret in secrets:  # a backend has no business echoing it, but make sure
        if secret:
            problem = problem.replace(secret, HIDDEN)
    return KeyringUnavailableError(
        f"could not {action} the OS keyring ({_backend_name(backend)}): {problem}.",
        hint=KEYRING_HINT,
    )


def _get(backend: keyring.backend.KeyringBackend, username: str) -> str | None:
    try:
        value = backend.get_password(SERVICE_NAME, username)
    except Exception as exc:
        raise _keyring_failure("read", exc, backend) from None
    return value or None


def stored_credentials(profile: str) -> tuple[str | None, str | None]:
    """(client_key, client_secret) as stored in the keyring for ``profile``; None if absent."""
    backend = keyring_backend()
    log.debug("reading the credentials of profile %r from %s", profile, _backend_name(backend))
    return _get(backend, key_username(profile)), _get(backend, secret_username(profile))


def store_credentials(profile: str, credentials: Credentials) -> None:
    """Put both credentials in the keyring, replacing what was there."""
    backend = keyring_backend()
    log.debug("storing the credentials of profile %r in %s", profile, _backend_name(backend))
    for username, value in (
        (key_username(profile), credentials.client_key),
        (secret_username(profile), credentials.client_secret),
    ):
        try:
            backend.set_password(SERVICE_NAME, username, value)
        except Exception as exc:
            raise _keyring_failure(
                "write to", exc, backend, credentials.client_key, credentials.client_secret
            ) from None


def delete_credentials(profile: str) -> None:
    """Remove both credentials of ``profile`` from the keyring; absent ones are fine."""
    backend = keyring_backend()
    log.debug("deleting the credentials of profile %r from %s", profile, _backend_name(backend))
    for username in (key_username(profile), secret_username(profile)):
        try:
            backend.delete_password(SERVICE_NAME, username)
        except keyring.errors.PasswordDeleteError:
            continue
        except Exception as exc:
            raise _keyring_failure("delete from", exc, backend) from None


# --- Resolution ----------------------------------------------------------------------------
def load_credentials(
    profile: str,
    *,
    source: CredentialSource = "keyring",
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """The credentials to use for ``profile``, in the fixed order.

    1. CAASPP_CLIENT_KEY and CAASPP_CLIENT_SECRET, when both are set (they override);
    2. the keyring, unless the profile's source is ``env``;
    3. otherwise CredentialsError saying what is missing and how to fix it.
    """
    env = os.environ if environ is None else environ
    found = from_environment(env)
    if found is not None:
        log.debug("profile %r: credentials from %s and %s", profile, KEY_ENV, SECRET_ENV)
        return found
    missing_env = _missing_env(env)
    if len(missing_env) == 1:
        # One half of a pair is a mistake (a variable left over, a typo in a job's
        # settings): mixing it with the keyring's other half, or ignoring it, would hide it.
        (present,) = {KEY_ENV, SECRET_ENV} - set(missing_env)
        raise CredentialsError(
            f"{present} is set but {missing_env[0]} is not: caaspp uses the environment's "
            "credentials only as a pair.",
            hint=f"set both {KEY_ENV} and {SECRET_ENV}, or unset {present} to use the "
            f"keyring's credentials of profile '{profile}'.",
        )
    if source == "env":
        raise CredentialsError(
            f"profile '{profile}' takes its credentials from the environment, but "
            f"{' and '.join(missing_env)} {'is' if len(missing_env) == 1 else 'are'} not set.",
            hint=f"set {KEY_ENV} and {SECRET_ENV} to the Client Key and Client Secret "
            "generated in TOMS.",
        )
    key, secret = stored_credentials(profile)
    if key and secret:
        return Credentials(key, secret)
    missing = [
        name for name, value in (("Client Key", key), ("Client Secret", secret)) if not value
    ]
    raise CredentialsError(
        f"no {' and no '.join(missing)} for profile '{profile}' in the keyring.",
        hint=f"run `caaspp config rotate {profile}` to store them, or set {KEY_ENV} and "
        f"{SECRET_ENV}.",
    )


def credential_status(
    profile: str,
    *,
    source: CredentialSource = "keyring",
    environ: Mapping[str, str] | None = None,
) -> CredentialStatus:
    """Where ``load_credentials`` would find each credential now, without revealing them."""
    env = os.environ if environ is None else environ
    if from_environment(env) is not None or source == "env":
        return CredentialStatus(
            origin="env",
            key_present=bool(env.get(KEY_ENV, "").strip()),
            secret_present=bool(env.get(SECRET_ENV, "").strip()),
        )
    try:
        key, secret = stored_credentials(profile)
    except KeyringUnavailableError as exc:
        return CredentialStatus("keyring", None, None, backend=None, problem=exc.message)
    return CredentialStatus("keyring", key is not None, secret is not None, backend_name())


# --- SMTP passwords ------------------------------------------------------------------------
SMTP_PASSWORD_ENV = "CAASPP_SMTP_PASSWORD"  # noqa: S105 - the name of a variable


def smtp_password_username(profile: str) -> str:
    """The keyring username of an SMTP profile's password (service: ``caaspp``).

    ETS profile names hold no ':', so this never meets a Client Key or Secret entry.
    """
    return f"smtp:{profile}"


def clean_smtp_password(value: str) -> str:
    """An SMTP password as typed or piped: the line end dropped, then checked."""
    password = value.rstrip("\r\n")
    if not password:
        raise BadInputError("the SMTP password is empty.")
    if any(ch in password for ch in "\r\n\x00"):
        raise BadInputError("the SMTP password contains a line break or a NUL character.")
    return password


def store_smtp_password(profile: str, password: str) -> None:
    backend = keyring_backend()
    log.debug("storing the SMTP password of %r in %s", profile, _backend_name(backend))
    try:
        backend.set_password(SERVICE_NAME, smtp_password_username(profile), password)
    except Exception as exc:
        raise _keyring_failure("write to", exc, backend, password) from None


def delete_smtp_password(profile: str) -> None:
    """Remove the SMTP password of ``profile`` from the keyring; an absent one is fine."""
    backend = keyring_backend()
    try:
        backend.delete_password(SERVICE_NAME, smtp_password_username(profile))
    except keyring.errors.PasswordDeleteError:
        return
    except Exception as exc:
        raise _keyring_failure("delete from", exc, backend) from None


def load_smtp_password(profile: str, environ: Mapping[str, str] | None = None) -> str:
    """The SMTP password: CAASPP_SMTP_PASSWORD when set (it overrides), else the keyring."""
    env = os.environ if environ is None else environ
    from_env = env.get(SMTP_PASSWORD_ENV, "")
    if from_env:
        log.debug("SMTP profile %r: password from %s", profile, SMTP_PASSWORD_ENV)
        return from_env
    password = _get(keyring_backend(), smtp_password_username(profile))
    if password is None:
        raise CredentialsError(
            f"no password for SMTP profile '{profile}' in the keyring.",
            hint=f"run `caaspp config smtp {profile} ...` again to store it, or set "
            f"{SMTP_PASSWORD_ENV}.",
        )
    return password
