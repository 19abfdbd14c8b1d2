"""SMTP profiles, the mail servers ``caaspp send`` delivers through, and their passwords.

They live in config.toml beside the ETS profiles, as tables of their own, and hold no
secret::

    [smtp.district]
    host = "smtp.office365.com"
    port = 587
    security = "starttls"
    user = "score-reports@district.org"
    from = "Lincoln Unified <score-reports@district.org>"
    reply_to = "assessment@district.org"
    ca_file = "/etc/ssl/district-ca.pem"   # a CA to trust besides the system's (optional)

The password is in the OS keyring (service ``caaspp``, user ``smtp:NAME``), or only in
CAASPP_SMTP_PASSWORD at run time for a profile made with ``--env-password``; that variable
overrides the keyring for every profile, for unattended jobs. The Resolver of
``caaspp_cli.config.secrets`` finds it, as it finds every secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from email.headerregistry import Address
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from caaspp_cli.addresses import parse_mailbox
from caaspp_cli.config import secrets
from caaspp_cli.config.profiles import (
    ProfileStore,
    _check_name,
    _first_problem,
    load_store,
)
from caaspp_cli.config.secrets import (
    SMTP_PASSWORD_ENV,
    CredentialSource,
    Resolver,
    Secret,
    SecretSet,
)
from caaspp_cli.errors import (
    BadInputError,
    CaasppError,
    ConfigError,
    CredentialsError,
    KeyringUnavailableError,
)
from caaspp_cli.hosts import is_loopback_host

SMTP_TABLE: Final = "smtp"
Security = Literal["starttls", "ssl", "none"]
DEFAULT_PORTS: Final[dict[str, int]] = {"starttls": 587, "ssl": 465, "none": 25}


class SmtpProfile(BaseModel):
    """One mail server and the sender to use on it. Holds no secret."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    host: str
    port: int = Field(default=0, ge=0, le=65535)  # 0: the default port of `security`
    security: Security = "starttls"
    user: str | None = None
    from_address: str = Field(alias="from")
    reply_to: str | None = None
    ca_file: str | None = None
    credentials_source: CredentialSource = "keyring"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        host = value.strip().rstrip(".").lower()
        if not host or any(ch.isspace() or ch in "/@?#" for ch in host) or "://" in value:
            raise ValueError(f"'{value}' is not a mail server host name, such as smtp.example.org")
        return host

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is None:
            return None
        user = value.strip()
        if not user or any(ord(ch) < 32 for ch in user):
            raise ValueError("the SMTP user name is empty or holds control characters")
        return user

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        return str(parse_mailbox(value, "the From address"))

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_mailbox(value, "the Reply-To address"))

    @model_validator(mode="after")
    def _checks(self) -> SmtpProfile:
        if self.security == "none" and not is_loopback_host(self.host):
            raise ValueError(
                f"--security none sends passwords and reports in clear text: it is allowed "
                f"only for a server on this machine, not for '{self.host}'"
            )
        if self.port == 0:
            object.__setattr__(self, "port", DEFAULT_PORTS[self.security])
        return self

    @property
    def sender(self) -> Address:
        """The From address, parsed (its ``addr_spec`` is the envelope sender)."""
        return parse_mailbox(self.from_address, "the From address")

    def to_toml(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name"}, exclude_none=True, by_alias=True)


def make_smtp_profile(**fields: Any) -> SmtpProfile:
    """An SmtpProfile from user input, or BadInputError with one sentence."""
    try:
        return SmtpProfile(**fields)
    except ValidationError as exc:
        raise BadInputError(_first_problem(exc) + ".") from None


def smtp_profiles(store: ProfileStore) -> dict[str, SmtpProfile]:
    """The SMTP profiles of a config file; ConfigError for a malformed one."""
    tables = store.other.get(SMTP_TABLE, {})
    if not isinstance(tables, dict):
        raise _config_error(store.path, f"has an '{SMTP_TABLE}' key that is not a table")
    found: dict[str, SmtpProfile] = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise _config_error(store.path, f"has an SMTP profile '{name}' that is not a table")
        try:
            found[name] = SmtpProfile(name=name, **table)
        except ValidationError as exc:
            raise _config_error(
                store.path, f"SMTP profile '{name}': {_first_problem(exc)}"
            ) from None
    return found


def get_smtp_profile(name: str, store: ProfileStore | None = None) -> SmtpProfile:
    """The SMTP profile called ``name``, or ConfigError saying which exist."""
    known = smtp_profiles(store or load_store())
    if name in known:
        return known[name]
    listing = f" (known: {', '.join(sorted(known))})" if known else ""
    raise ConfigError(
        f"no SMTP profile named '{name}'{listing}.",
        hint=f"add it with `caaspp config smtp {name} --host HOST --from ADDRESS`.",
    )


def save_smtp_profile(
    profile: SmtpProfile, password: str | Callable[[], str] | None = None
) -> bool:
    """Add or replace an SMTP profile; its password goes to the keyring when it has a user
    and takes its password from there. True when it replaced one.

    ``password`` (or the function asking for it) is used only once everything else is
    checked, so nobody types a password for nothing.
    """
    store = load_store()
    existing = smtp_profiles(store).get(profile.name)
    if profile.ca_file is not None and not Path(profile.ca_file).is_file():
        raise BadInputError(f"the CA file {profile.ca_file} does not exist.")
    in_keyring = profile.user is not None and profile.credentials_source == "keyring"
    if in_keyring:
        try:
            secrets.keyring_backend()  # fail on a missing keyring before asking
        except KeyringUnavailableError as exc:
            env_set = Resolver().environment_complete(SmtpSecrets(profile))
            first = (
                f"no usable OS keyring to store the SMTP password in; {SMTP_PASSWORD_ENV} "
                "is set: add the profile with --env-password to read it at run time."
                if env_set
                else "no usable OS keyring to store the SMTP password in: "
                + exc.message[:1].lower()
                + exc.message[1:]
            )
            raise KeyringUnavailableError(
                first,
                hint=f"run a Secret Service or another OS keyring, or for unattended jobs set "
                f"{SMTP_PASSWORD_ENV} and add the profile with --env-password (it then "
                "never uses the keyring).",
            ) from None
        if password is None:
            raise BadInputError(f"no password given for SMTP user '{profile.user}'.")
        secret = password() if callable(password) else password
        store_smtp_password(profile.name, clean_smtp_password(secret))
    elif existing is not None and existing.user is not None:
        with contextlib.suppress(CaasppError):  # no keyring: there is nothing to remove
            delete_smtp_password(profile.name)
    tables = store.other.get(SMTP_TABLE)
    if not isinstance(tables, dict):
        tables = store.other[SMTP_TABLE] = {}
    tables[profile.name] = profile.to_toml()
    store.other[SMTP_TABLE] = dict(sorted(tables.items()))
    store.save()
    return existing is not None


def remove_smtp_profile(name: str) -> str | None:
    """Remove an SMTP profile and its keyring password; returns why the keyring entry could
    not be removed, if it could not (the profile is removed all the same)."""
    store = load_store()
    profile = get_smtp_profile(name, store)
    tables = store.other.get(SMTP_TABLE, {})
    tables.pop(name, None)
    if not tables:
        store.other.pop(SMTP_TABLE, None)
    store.save()
    if profile.user is None or profile.credentials_source != "keyring":
        return None
    try:
        delete_smtp_password(name)
    except CaasppError as exc:
        return exc.message
    return None


# --- The password ----------------------------------------------------------------------------
def smtp_password_username(profile: str) -> str:
    """The keyring username of an SMTP profile's password (service: ``caaspp``).

    ETS profile names hold no ':', so this never meets a Client Key or Secret entry.
    """
    return f"smtp:{profile}"


class SmtpSecrets(SecretSet):
    """The password of one SMTP profile, as the Resolver looks for it.

    CAASPP_SMTP_PASSWORD overrides the keyring; a profile made with ``--env-password``
    reads only that variable.
    """

    what = "password"

    def __init__(self, profile: SmtpProfile) -> None:
        self.profile = profile
        self.owner = f"SMTP profile '{profile.name}'"
        self.source = profile.credentials_source
        self.password = Secret(
            "SMTP password", SMTP_PASSWORD_ENV, smtp_password_username(profile.name), strip=False
        )
        self.secrets = (self.password,)

    def not_in_environment(self, missing: Sequence[Secret]) -> CredentialsError:
        return CredentialsError(
            f"SMTP profile '{self.profile.name}' takes its password from the environment, but "
            f"{SMTP_PASSWORD_ENV} is not set.",
            hint=f"set {SMTP_PASSWORD_ENV} to the password of {self.profile.user}.",
        )

    def not_in_keyring(self, missing: Sequence[Secret]) -> CredentialsError:
        return CredentialsError(
            f"no password for SMTP profile '{self.profile.name}' in the keyring.",
            hint=f"run `caaspp config smtp {self.profile.name} ...` again to store it, or set "
            f"{SMTP_PASSWORD_ENV}.",
        )


def smtp_password(profile: SmtpProfile) -> str | None:
    """The password to log in with, or None for a server without login."""
    if profile.user is None:
        return None
    (password,) = Resolver().resolve(SmtpSecrets(profile))
    return password


def clean_smtp_password(value: str) -> str:
    """An SMTP password as typed or piped: the line end dropped, then checked."""
    password = value.rstrip("\r\n")
    if not password:
        raise BadInputError("the SMTP password is empty.")
    if any(ch in password for ch in "\r\n\x00"):
        raise BadInputError("the SMTP password contains a line break or a NUL character.")
    return password


def store_smtp_password(profile: str, password: str) -> None:
    secrets.store(
        [(smtp_password_username(profile), password)],
        what=f"the SMTP password of '{profile}'",
    )


def delete_smtp_password(profile: str) -> None:
    """Remove the SMTP password of ``profile`` from the keyring; an absent one is fine."""
    secrets.delete([smtp_password_username(profile)])


def _config_error(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"{path}: {problem}.",
        hint="fix the file by hand, or add the SMTP profile again with `caaspp config smtp`.",
    )
