"""Mail profiles: how ``caaspp send`` delivers (SMTP or Microsoft Graph), as whom, and the
secrets they log in with (an SMTP password, or a Microsoft app's client secret).

They live in config.toml beside the ETS profiles, in the ``smtp`` table (its name from the
time every mail profile was SMTP with a password, so those load unchanged), and hold no
secret. A password-SMTP profile::

    [smtp.district]
    host = "smtp.office365.com"
    port = 587
    security = "starttls"
    user = "score-reports@district.org"
    from = "Lincoln Unified <score-reports@district.org>"
    reply_to = "assessment@district.org"
    ca_file = "/etc/ssl/district-ca.pem"   # a CA to trust besides the system's (optional)

Other profiles add ``via`` (``smtp`` or ``graph``) and ``auth`` (``password``,
``oauth-microsoft``, ``oauth-google``) with what that login needs: ``tenant``,
``client_id``, ``certificate`` (a PEM file of key and certificate, instead of a client
secret), ``authority`` and ``graph_url`` (a national cloud's endpoints, or a test's), or
``service_account`` (Google's key file; ``user`` is then the mailbox it acts as).

A Microsoft client secret is in the OS keyring (user ``mail-client-secret:NAME``), or in
CAASPP_MAIL_CLIENT_SECRET at run time (which overrides the keyring, like the password's).
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
Via = Literal["smtp", "graph"]
Auth = Literal["password", "oauth-microsoft", "oauth-google"]
Provider = Literal["microsoft", "google"]
MAIL_CLIENT_SECRET_ENV: Final = "CAASPP_MAIL_CLIENT_SECRET"  # noqa: S105 - a variable's name
MICROSOFT_AUTHORITY: Final = "https://login.microsoftonline.com"
GRAPH_URL: Final = "https://graph.microsoft.com"
# Servers whose provider is known by name: their quotas and login rules are the provider's.
KNOWN_HOSTS: Final[dict[str, Provider]] = {
    "smtp.office365.com": "microsoft",
    "smtp-mail.outlook.com": "microsoft",
    "outlook.office365.com": "microsoft",
    "smtp.gmail.com": "google",
    "smtp-relay.gmail.com": "google",
}
DEFAULT_PORTS: Final[dict[str, int]] = {"starttls": 587, "ssl": 465, "none": 25}


class SmtpProfile(BaseModel):
    """One way to send mail (an SMTP server, or Microsoft Graph), the sender, and how to log
    in. Holds no secret."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    via: Via = "smtp"
    auth: Auth = "password"
    host: str  # SMTP only: a Graph profile's is ""
    port: int = Field(default=0, ge=0, le=65535)  # 0: the default port of `security`
    security: Security = "starttls"
    user: str | None = None
    from_address: str = Field(alias="from")
    reply_to: str | None = None
    ca_file: str | None = None
    credentials_source: CredentialSource = "keyring"
    tenant: str | None = None
    client_id: str | None = None
    certificate: str | None = None
    authority: str | None = None
    graph_url: str | None = None
    service_account: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_host_for_graph(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("via") == "graph" and not data.get("host"):
            return {**data, "host": ""}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        host = value.strip().rstrip(".").lower()
        if not value:
            return ""
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

    @field_validator("tenant", "client_id")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if not text or any(not (ch.isalnum() or ch in "-._") for ch in text):
            raise ValueError(f"'{value}' is not a tenant or client ID (a GUID or a domain name)")
        return text

    @field_validator("authority", "graph_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        if not url.startswith("https://") or any(ch.isspace() for ch in url):
            raise ValueError(f"'{value}' is not an https:// URL")
        return url

    @model_validator(mode="after")
    def _checks(self) -> SmtpProfile:
        microsoft = self.auth == "oauth-microsoft" or self.via == "graph"
        if self.via == "smtp" and not self.host:
            raise ValueError(
                f"'{self.host}' is not a mail server host name, such as smtp.example.org"
            )
        if self.via == "graph" and self.auth != "oauth-microsoft":
            object.__setattr__(self, "auth", "oauth-microsoft")
        if microsoft and (self.tenant is None or self.client_id is None):
            raise ValueError("a Microsoft 365 login needs the app's --tenant and --client-id")
        if self.auth == "oauth-google" and (self.service_account is None or self.user is None):
            raise ValueError(
                "a Google login needs the service account's key file (--service-account) and "
                "the mailbox it sends as (--user)"
            )
        if self.auth == "password" and (self.certificate or self.service_account):
            raise ValueError("--certificate and --service-account are for OAuth logins")
        if self.security == "none" and not is_loopback_host(self.host):
            raise ValueError(
                f"--security none sends passwords and reports in clear text: it is allowed "
                f"only for a server on this machine, not for '{self.host}'"
            )
        if self.port == 0:
            object.__setattr__(self, "port", DEFAULT_PORTS[self.security])
        return self

    @property
    def provider(self) -> Provider | None:
        """Whose service this is (its quotas, its login rules), when it is known."""
        if self.auth == "oauth-microsoft" or self.via == "graph":
            return "microsoft"
        if self.auth == "oauth-google":
            return "google"
        return KNOWN_HOSTS.get(self.host)

    @property
    def oauth(self) -> bool:
        """Whether it logs in with an OAuth token rather than a password."""
        return self.auth != "password"

    @property
    def mailbox(self) -> str:
        """The mailbox a token acts for: the user, else the From address."""
        return self.user or self.sender.addr_spec

    @property
    def uses_client_secret(self) -> bool:
        """Whether a Microsoft login needs a client secret (no certificate given)."""
        return self.auth == "oauth-microsoft" and self.certificate is None

    @property
    def where(self) -> str:
        """The server, for messages: host:port, or the Graph endpoint."""
        if self.via == "graph":
            return self.graph_url or GRAPH_URL
        return f"{self.host}:{self.port}"

    @property
    def sender(self) -> Address:
        """The From address, parsed (its ``addr_spec`` is the envelope sender)."""
        return parse_mailbox(self.from_address, "the From address")

    def to_toml(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"name"}, exclude_none=True, by_alias=True)
        # A password-SMTP profile is written as it always was.
        if self.via == "smtp":
            data.pop("via")
        if self.auth == "password":
            data.pop("auth")
        if not self.host:
            data.pop("host")
            for key in ("port", "security"):
                data.pop(key, None)
        return data


MailProfile = SmtpProfile
"""Every mail profile is an SmtpProfile; the name says what it is for, whatever its ``via``."""


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
    """Add or replace a mail profile; its password (or Microsoft client secret) goes to the
    keyring when it takes it from there. True when it replaced one.

    ``password`` (or the function asking for it) is used only once everything else is
    checked, so nobody types a password for nothing.
    """
    store = load_store()
    existing = smtp_profiles(store).get(profile.name)
    if profile.ca_file is not None and not Path(profile.ca_file).is_file():
        raise BadInputError(f"the CA file {profile.ca_file} does not exist.")
    for key_file in (profile.certificate, profile.service_account):
        if key_file is not None:
            check_key_file(key_file)
    if profile.oauth:
        _save_client_secret(profile, existing, password)
        if existing is not None and existing.user is not None and not existing.oauth:
            with contextlib.suppress(CaasppError):
                delete_smtp_password(profile.name)
        return _write(store, profile, existing)
    in_keyring = profile.user is not None and profile.credentials_source == "keyring"
    if existing is not None and existing.uses_client_secret:
        with contextlib.suppress(CaasppError):
            delete_client_secret(profile.name)
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
    return _write(store, profile, existing)


def _write(store: ProfileStore, profile: SmtpProfile, existing: SmtpProfile | None) -> bool:
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
    if profile.credentials_source != "keyring":
        return None
    try:
        if profile.uses_client_secret:
            delete_client_secret(name)
        if profile.user is not None and not profile.oauth:
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
    """The password to log in with, or None for a server without login (or an OAuth one)."""
    if profile.user is None or profile.oauth:
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


# --- A Microsoft app's client secret, and key files ---------------------------------------------
def client_secret_username(profile: str) -> str:
    """The keyring username of a mail profile's client secret (service: ``caaspp``)."""
    return f"mail-client-secret:{profile}"


class ClientSecretSet(SecretSet):
    """The client secret of a mail profile's Microsoft app, as the Resolver looks for it."""

    what = "client secret"

    def __init__(self, profile: SmtpProfile) -> None:
        self.profile = profile
        self.owner = f"mail profile '{profile.name}'"
        self.source = profile.credentials_source
        self.secret = Secret(
            "client secret", MAIL_CLIENT_SECRET_ENV, client_secret_username(profile.name)
        )
        self.secrets = (self.secret,)

    def not_in_environment(self, missing: Sequence[Secret]) -> CredentialsError:
        return CredentialsError(
            f"mail profile '{self.profile.name}' takes its client secret from the environment, "
            f"but {MAIL_CLIENT_SECRET_ENV} is not set.",
            hint=f"set {MAIL_CLIENT_SECRET_ENV} to the secret of app {self.profile.client_id}.",
        )

    def not_in_keyring(self, missing: Sequence[Secret]) -> CredentialsError:
        return CredentialsError(
            f"no client secret for mail profile '{self.profile.name}' in the keyring.",
            hint=f"run `caaspp config mail {self.profile.name} ...` again to store it, or set "
            f"{MAIL_CLIENT_SECRET_ENV}.",
        )


def client_secret(profile: SmtpProfile) -> str:
    """The client secret of a Microsoft profile without a certificate."""
    (secret,) = Resolver().resolve(ClientSecretSet(profile))
    return secret


def delete_client_secret(profile: str) -> None:
    secrets.delete([client_secret_username(profile)])


def _save_client_secret(
    profile: SmtpProfile, existing: SmtpProfile | None, secret: str | Callable[[], str] | None
) -> None:
    if not profile.uses_client_secret or profile.credentials_source == "env":
        if existing is not None and existing.uses_client_secret:
            with contextlib.suppress(CaasppError):
                delete_client_secret(profile.name)
        return
    try:
        secrets.keyring_backend()
    except KeyringUnavailableError as exc:
        raise KeyringUnavailableError(
            "no usable OS keyring to store the client secret in: "
            + exc.message[:1].lower()
            + exc.message[1:],
            hint=f"run a Secret Service or another OS keyring, or for unattended jobs set "
            f"{MAIL_CLIENT_SECRET_ENV} and add the profile with --env-secret.",
        ) from None
    if secret is None:
        raise BadInputError(f"no client secret given for app {profile.client_id}.")
    value = (secret() if callable(secret) else secret).strip()
    if not value or any(ord(ch) < 32 for ch in value):
        raise BadInputError("the client secret is empty or holds control characters.")
    secrets.store(
        [(client_secret_username(profile.name), value)],
        what=f"the client secret of mail profile '{profile.name}'",
    )


def check_key_file(path: str) -> None:
    """A file holding a private key: it must exist and, on POSIX, be readable by its owner
    only (BadInputError with one sentence otherwise)."""
    import os
    import stat

    try:
        mode = Path(path).stat().st_mode
    except OSError as exc:
        raise BadInputError(f"the key file {path} cannot be read ({exc.strerror}).") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BadInputError(
            f"the key file {path} is readable by others: make it owner-only "
            f"(chmod 600 {path}) before caaspp uses it."
        )


def _config_error(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"{path}: {problem}.",
        hint="fix the file by hand, or add the SMTP profile again with `caaspp config smtp`.",
    )
