"""Where every secret comes from: one Resolver over the environment, the OS keyring and a prompt.

A secret is a Client Key or Client Secret of an ETS profile, the password of an SMTP
profile, or the client secret of a mail profile's Microsoft app; the secrets one profile
logs in with form a ``SecretSet``. Each secret has a variable and a keyring entry (service
``caaspp``), and the Resolver looks for it in one fixed order:

1. the environment: for unattended jobs, it overrides the keyring;
2. the OS keyring, unless the profile reads the environment only (``credentials_source =
   "env"``): such a profile never touches the keyring, so a headless server without any
   keyring backend works;
3. a prompt, when the caller gives one;
4. otherwise CredentialsError, in the set's own words, saying what is missing and how to
   fix it.

A pair (a Client Key and its Client Secret) comes from one place: half of it in the
environment is an error, never mixed with the keyring's other half. This is also the only
module that talks to the keyring, and the one that words its failures. Secrets never reach
a file, a log or an error message.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import keyring
import keyring.backend
import keyring.errors
from keyring.backends import chainer, fail, null

from caaspp_cli.errors import CredentialsError, KeyringUnavailableError

log = logging.getLogger(__name__)

HIDDEN = "<hidden>"
SERVICE_NAME = "caaspp"
KEY_ENV = "CAASPP_CLIENT_KEY"
SECRET_ENV = "CAASPP_CLIENT_SECRET"  # noqa: S105 - the name of a variable
SMTP_PASSWORD_ENV = "CAASPP_SMTP_PASSWORD"  # noqa: S105 - the name of a variable
BACKEND_ENV = "PYTHON_KEYRING_BACKEND"

CredentialSource = Literal["keyring", "env"]
"""Where a profile's secrets live: the OS keyring, or the environment at run time."""

KEYRING_HINT = (
    "run a Secret Service (gnome-keyring under D-Bus) or another OS keyring, choose a "
    f"backend with {BACKEND_ENV}, or for unattended jobs set {KEY_ENV} and {SECRET_ENV} "
    "(they override the keyring; `caaspp config add --env-credentials` makes a profile "
    "that never uses the keyring)."
)


# --- What a secret is ----------------------------------------------------------------------
@dataclass(frozen=True)
class Secret:
    """One secret of one profile: its name for people, its variable, its keyring entry.

    ``strip``: blanks around the variable's value are dropped (a Client Key or Secret
    pasted into a job's settings); a password is taken exactly as set.
    """

    label: str
    env: str
    username: str
    strip: bool = True


class SecretSet(ABC):
    """The secrets a profile logs in with, resolved together, and the words for what is
    missing. ``owner`` and ``what`` name them in log lines ("profile 'x'", "credentials")."""

    owner: str
    what: str
    secrets: tuple[Secret, ...]
    source: CredentialSource

    @abstractmethod
    def not_in_environment(self, missing: Sequence[Secret]) -> CredentialsError:
        """The error when an environment-only profile finds some variable unset."""

    @abstractmethod
    def not_in_keyring(self, missing: Sequence[Secret]) -> CredentialsError:
        """The error when the keyring lacks some entry."""

    def half_in_environment(self, present: Secret, missing: Secret) -> CredentialsError:
        """The error for one half of a pair in the environment (a variable left over, a typo
        in a job's settings): mixing it with the keyring's other half would hide it."""
        both = " and ".join(secret.env for secret in self.secrets)
        return CredentialsError(
            f"{present.env} is set but {missing.env} is not: caaspp uses the environment's "
            f"{self.what} only as a pair.",
            hint=f"set both {both}, or unset {present.env} to use the keyring's {self.what} "
            f"of {self.owner}.",
        )


@dataclass(frozen=True)
class SecretStatus:
    """Where the Resolver would find each secret of a set now, without any value.

    ``present`` holds None for a secret whose presence cannot be told (the keyring is
    unavailable); ``problem`` then says why.
    """

    origin: Literal["env", "keyring"]
    present: tuple[bool | None, ...]
    backend: str | None = None
    problem: str | None = None


Prompt = Callable[[Secret], str]
"""Asks a person for one secret (hidden input), or raises saying why it cannot."""


# --- The resolver --------------------------------------------------------------------------
class Resolver:
    """Finds secrets in the fixed order: environment, keyring, prompt, else an error.

    ``environ`` defaults to the process environment, read at each look-up. ``announce``
    is told when a secret is taken from a variable, for commands that say so on stderr.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        prompt: Prompt | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self._environ = environ
        self._prompt = prompt
        self._announce = announce

    def from_environment(self, secret: Secret) -> str | None:
        """The secret's variable, if it is set (and not blank, for a stripped secret)."""
        env = os.environ if self._environ is None else self._environ
        value = env.get(secret.env, "")
        if secret.strip:
            value = value.strip()
        return value or None

    def resolve(self, wanted: SecretSet) -> tuple[str, ...]:
        """The values of every secret of ``wanted``, in its order, found in the fixed order."""
        found = [self.from_environment(secret) for secret in wanted.secrets]
        if all(found):
            log.debug(
                "%s: %s from %s",
                wanted.owner,
                wanted.what,
                " and ".join(secret.env for secret in wanted.secrets),
            )
            return tuple(value for value in found if value)
        if any(found):
            given = next(s for s, v in zip(wanted.secrets, found, strict=True) if v)
            unset = next(s for s, v in zip(wanted.secrets, found, strict=True) if not v)
            raise wanted.half_in_environment(given, unset)
        if wanted.source == "keyring":
            backend = keyring_backend()
            log.debug("reading the %s of %s from %s", wanted.what, wanted.owner, _name(backend))
            found = [_read(backend, secret.username) for secret in wanted.secrets]
            if all(found):
                return tuple(value for value in found if value)
        missing = [secret for secret, value in zip(wanted.secrets, found, strict=True) if not value]
        if self._prompt is not None:
            asked = iter([self._prompt(secret) for secret in missing])
            return tuple(value or next(asked) for value in found)
        if wanted.source == "env":
            raise wanted.not_in_environment(missing)
        raise wanted.not_in_keyring(missing)

    def ask(self, secret: Secret) -> str:
        """A new value for ``secret``, to be stored: its variable, else the prompt.

        The keyring is not read: it holds the value being replaced.
        """
        value = self.from_environment(secret)
        if value is not None:
            if self._announce is not None:
                self._announce(f"Using the {secret.label} in {secret.env}.")
            return value
        if self._prompt is None:
            raise CredentialsError(f"no {secret.label} given.", hint=f"set {secret.env}.")
        return self._prompt(secret)

    def environment_complete(self, wanted: SecretSet) -> bool:
        """Whether every secret of ``wanted`` is in the environment now."""
        return all(self.from_environment(secret) for secret in wanted.secrets)

    def status(self, wanted: SecretSet) -> SecretStatus:
        """Where ``resolve`` would look now, and whether each secret is there."""
        if self.environment_complete(wanted) or wanted.source == "env":
            return SecretStatus(
                "env", tuple(bool(self.from_environment(s)) for s in wanted.secrets)
            )
        try:
            backend = keyring_backend()
            present = tuple(_read(backend, s.username) is not None for s in wanted.secrets)
        except KeyringUnavailableError as exc:
            unknown = tuple(None for _ in wanted.secrets)
            return SecretStatus("keyring", unknown, problem=exc.message)
        return SecretStatus("keyring", present, backend=_name(backend))


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
            f"no usable OS keyring on this machine ({_name(backend)}).",
            hint=KEYRING_HINT,
        )
    return backend


def backend_name() -> str:
    """The name of the keyring backend in use, for display (never raises)."""
    try:
        return _name(keyring_backend())
    except KeyringUnavailableError:
        return "none"


def store(entries: Sequence[tuple[str, str]], *, what: str) -> None:
    """Put each (username, value) in the keyring, replacing what was there.

    ``what`` names the values in the debug log ("the credentials of profile 'x'").
    """
    backend = keyring_backend()
    log.debug("storing %s in %s", what, _name(backend))
    values = [value for _, value in entries]
    for username, value in entries:
        try:
            backend.set_password(SERVICE_NAME, username, value)
        except Exception as exc:
            raise _failure("write to", exc, backend, *values) from None


def delete(usernames: Sequence[str], *, what: str | None = None) -> None:
    """Remove these entries from the keyring; absent ones are fine."""
    backend = keyring_backend()
    if what is not None:
        log.debug("deleting %s from %s", what, _name(backend))
    for username in usernames:
        try:
            backend.delete_password(SERVICE_NAME, username)
        except keyring.errors.PasswordDeleteError:
            continue
        except Exception as exc:
            raise _failure("delete from", exc, backend) from None


def _read(backend: keyring.backend.KeyringBackend, username: str) -> str | None:
    try:
        value = backend.get_password(SERVICE_NAME, username)
    except Exception as exc:
        raise _failure("read", exc, backend) from None
    return value or None


def _name(backend: keyring.backend.KeyringBackend) -> str:
    kind = type(backend)
    return f"{kind.__module__}.{kind.__qualname__}"


def _failure(
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
        f"could not {action} the OS keyring ({_name(backend)}): {problem}.",
        hint=KEYRING_HINT,
    )
