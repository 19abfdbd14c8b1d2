"""Connection profiles and their TOML store in the config dir.

A profile names one ETS connection: the base URL and the three endpoint paths, the schools
it serves, when its credentials expire, and where those credentials live (the OS keyring,
or the environment at run time). ``config.toml`` holds the profiles and never a secret:

    version = 1
    default = "district"

    [profiles.district]
    base_url = "https://caaspp-aws.ets.org"
    students_endpoint = "/api/v1/students/"
    reports_endpoint = "/score-reports/"
    token_endpoint = "/api/v1/token/"
    schools = ["0123456"]
    expires = 2026-11-22
    credentials_source = "keyring"

Other top-level tables in the file belong to other parts of caaspp and are kept as they are.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import urlsplit

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from caaspp_cli.config import credentials as creds
from caaspp_cli.config import secrets
from caaspp_cli.config.credentials import Credentials
from caaspp_cli.config.secrets import CredentialSource
from caaspp_cli.errors import (
    BadInputError,
    CaasppError,
    ConfigError,
    CredentialsError,
)
from caaspp_cli.ets.contract import (
    DEFAULT_REPORTS_ENDPOINT,
    DEFAULT_STUDENTS_ENDPOINT,
    DEFAULT_TOKEN_ENDPOINT,
)
from caaspp_cli.fsutil import write_private_text
from caaspp_cli.hosts import is_loopback_host
from caaspp_cli.paths import config_dir

if TYPE_CHECKING:
    from caaspp_cli.ets.client import Endpoints

log = logging.getLogger(__name__)

CONFIG_FILE: Final = "config.toml"
CONFIG_VERSION: Final = 1
# TOMS credentials live 365 days today, and TOMS starts reminding 14 days before [public].
CREDENTIAL_LIFETIME_DAYS: Final = 365
EXPIRY_WARNING_DAYS: Final = 14

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SCHOOL_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

_FILE_HEADER = (
    "# caaspp connection profiles. No Client Key or Client Secret is kept here: they are in\n"
    "# the OS keyring, or in CAASPP_CLIENT_KEY / CAASPP_CLIENT_SECRET at run time.\n"
)


def config_path() -> Path:
    """The path of config.toml (in $CAASPP_CONFIG_DIR, else the user config dir)."""
    return config_dir() / CONFIG_FILE


def default_expiry(today: date | None = None) -> date:
    """The expiry date of credentials generated today in TOMS."""
    return (today or date.today()) + timedelta(days=CREDENTIAL_LIFETIME_DAYS)


# --- Validation of single values -----------------------------------------------------------
def _check_name(value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a valid profile name: use 1 to 64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )
    return value


def _check_base_url(value: str) -> str:
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = urlsplit("")
    if "://" not in url and url and urlsplit(f"https://{url}").hostname:
        raise ValueError(f"the base URL '{url}' has no https:// (did you mean https://{url}?)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the base URL '{url}' is not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        # Anything before '@' would be a secret written into config.toml.
        raise ValueError("the base URL must not contain a user name or password")
    if parts.query or parts.fragment:
        raise ValueError(f"the base URL '{url}' must not have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"the base URL '{url}' has an invalid port") from None
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"the base URL '{url}' uses http:// for a host that is not this machine: "
            "credentials and score reports must travel over HTTPS"
        )
    return parts.geturl().rstrip("/")


def _check_endpoint(value: str) -> str:
    path = value.strip()
    if (
        not path
        or "://" in path
        or any(ch in path for ch in "?#")
        or any(ch.isspace() for ch in path)
    ):
        raise ValueError(f"'{value}' is not an endpoint path such as /api/v1/token/")
    return path if path.startswith("/") else "/" + path


def _check_school(value: str) -> str:
    code = value.strip()
    if not SCHOOL_PATTERN.fullmatch(code):
        raise ValueError(f"'{value}' is not a school code (letters and digits, up to 32)")
    return code


# --- The profile ---------------------------------------------------------------------------
class Profile(BaseModel):
    """One ETS connection. Holds no secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    base_url: str
    students_endpoint: str = DEFAULT_STUDENTS_ENDPOINT
    reports_endpoint: str = DEFAULT_REPORTS_ENDPOINT
    token_endpoint: str = DEFAULT_TOKEN_ENDPOINT
    schools: list[str] = []
    expires: date | None = None
    credentials_source: CredentialSource = "keyring"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _check_base_url(value)

    @field_validator("students_endpoint", "reports_endpoint", "token_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _check_endpoint(value)

    @field_validator("schools")
    @classmethod
    def _schools(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_check_school(code) for code in value))

    def endpoints(self) -> Endpoints:
        """What the ETS client needs: the base URL and the three endpoint paths."""
        from caaspp_cli.ets.client import Endpoints

        return Endpoints(
            base_url=self.base_url,
            students_endpoint=self.students_endpoint,
            reports_endpoint=self.reports_endpoint,
            token_endpoint=self.token_endpoint,
        )

    def to_toml(self) -> dict[str, Any]:
        """The profile's table in config.toml (its name is the table's key)."""
        return self.model_dump(exclude={"name"}, exclude_none=True)


def make_profile(**fields: Any) -> Profile:
    """A Profile from user input, or BadInputError with one sentence saying what is wrong."""
    try:
        return Profile(**fields)
    except ValidationError as exc:
        raise BadInputError(_first_problem(exc) + ".") from None


def _first_problem(exc: ValidationError) -> str:
    """One sentence about the first validation error; never echoes the input value."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key '{where}'"
    if error["type"] == "value_error":
        return str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    return f"{where}: {error['msg'][:1].lower()}{error['msg'][1:]}" if where else error["msg"]


# --- The store -----------------------------------------------------------------------------
@dataclass
class ProfileStore:
    """The contents of config.toml: the profiles, the default, and sections of others."""

    path: Path
    profiles: dict[str, Profile] = field(default_factory=dict)
    default: str | None = None
    other: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ProfileStore:
        """Read config.toml; a missing file is an empty store, a broken one a ConfigError."""
        path = path or config_path()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise _config_error(path, f"cannot be read ({exc.strerror or exc})") from None
        try:
            # utf-8-sig: Notepad on older Windows saves UTF-8 with a BOM, which TOML refuses.
            document = tomllib.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise _config_error(path, "is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise _config_error(path, f"is not valid TOML ({exc})") from None
        return cls._from_document(path, document)

    @classmethod
    def _from_document(cls, path: Path, document: dict[str, Any]) -> ProfileStore:
        document = dict(document)
        version = document.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION or isinstance(version, bool):
            raise _config_error(
                path,
                f"has version {version!r}, but this caaspp reads version {CONFIG_VERSION}",
                hint="upgrade caaspp, or move the file away and add the profiles again.",
            )
        default = document.pop("default", None)
        if default is not None and not isinstance(default, str):
            raise _config_error(path, "has a 'default' that is not a profile name")
        tables = document.pop("profiles", {})
        if not isinstance(tables, dict):
            raise _config_error(path, "has a 'profiles' key that is not a table")
        profiles: dict[str, Profile] = {}
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise _config_error(path, f"has a profile '{name}' that is not a table")
            try:
                profiles[name] = Profile(name=name, **table)
            except ValidationError as exc:
                raise _config_error(path, f"profile '{name}': {_first_problem(exc)}") from None
        if default is not None and default not in profiles:
            raise _config_error(path, f"names '{default}' as the default, but has no such profile")
        return cls(path, profiles, default, document)

    def save(self) -> None:
        """Write config.toml atomically, owner-only."""
        document: dict[str, Any] = {"version": CONFIG_VERSION}
        if self.default is not None:
            document["default"] = self.default
        document.update(self.other)
        document["profiles"] = {
            name: self.profiles[name].to_toml() for name in sorted(self.profiles)
        }
        try:
            write_private_text(self.path, _FILE_HEADER + tomli_w.dumps(document))
        except OSError as exc:
            raise ConfigError(
                f"could not write {self.path}: {exc.strerror or exc}.",
                hint="check that the folder exists and is writable, or set CAASPP_CONFIG_DIR.",
            ) from None
        log.debug("wrote %s (%d profiles)", self.path, len(self.profiles))

    def names(self) -> list[str]:
        return sorted(self.profiles)

    def get(self, name: str) -> Profile:
        """The profile called ``name``, or ConfigError listing the known names."""
        try:
            return self.profiles[name]
        except KeyError:
            pass
        if not self.profiles:
            raise ConfigError(
                f"no profile named '{name}': no profile is configured yet.",
                hint="run `caaspp config add NAME --base-url URL` to add one.",
            )
        raise ConfigError(
            f"no profile named '{name}'.",
            hint="known profiles: " + ", ".join(self.names()) + ".",
        )

    def resolve(self, name: str | None) -> Profile:
        """``--profile`` (or CAASPP_PROFILE) if given, else the default profile."""
        if name:
            return self.get(name)
        if self.default is not None:
            return self.profiles[self.default]
        if self.profiles:
            raise ConfigError(
                "no default profile is set.",
                hint="pass --profile NAME, or run `caaspp config default NAME` "
                f"(known profiles: {', '.join(self.names())}).",
            )
        raise ConfigError(
            "no profile configured.",
            hint="run `caaspp config add NAME --base-url URL` to add one.",
        )


def _config_error(path: Path, problem: str, hint: str | None = None) -> ConfigError:
    return ConfigError(
        f"{path} {problem}." if not problem.startswith("profile") else f"{path}: {problem}.",
        hint=hint
        or "fix the file by hand, or move it away and add the profiles again "
        "with `caaspp config add`.",
    )


def load_store() -> ProfileStore:
    return ProfileStore.load()


def resolve_profile(name: str | None, store: ProfileStore | None = None) -> Profile:
    """The profile a command works with: ``name`` (``--profile``), else the default."""
    return (store or load_store()).resolve(name)


# --- Expiry --------------------------------------------------------------------------------
def check_expiry(profile: Profile, today: date | None = None) -> str | None:
    """A warning when the credentials expire within 14 days; CredentialsError once expired.

    Every command that uses a profile calls this and prints the warning on stderr.
    """
    if profile.expires is None:
        return None
    today = today or date.today()
    days = (profile.expires - today).days
    rotate = f"`caaspp config rotate {profile.name}`"
    if days < 0:
        raise CredentialsError(
            f"the credentials of profile '{profile.name}' expired on "
            f"{profile.expires.isoformat()}.",
            hint=f"generate a new Client Key and Client Secret in TOMS, then run {rotate} "
            "(add --expires YYYY-MM-DD if TOMS shows another date).",
        )
    if days > EXPIRY_WARNING_DAYS:
        return None
    when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
    return (
        f"credentials of profile {profile.name} expire {when} ({profile.expires.isoformat()}): "
        f"generate new ones in TOMS, then run {rotate}"
    )


# --- What the config commands do -----------------------------------------------------------
@dataclass(frozen=True)
class ActiveProfile:
    """A profile ready for use: its credentials loaded, its expiry checked."""

    profile: Profile
    credentials: Credentials = field(repr=False)
    expiry_warning: str | None = None


def activate(name: str | None, today: date | None = None) -> ActiveProfile:
    """Resolve the profile, check its expiry, load its credentials: what commands start with."""
    profile = resolve_profile(name)
    warning = check_expiry(profile, today)
    loaded = creds.load_credentials(profile.name, source=profile.credentials_source)
    return ActiveProfile(profile, loaded, warning)


CredentialsInput: TypeAlias = Credentials | Callable[[], Credentials]
"""Credentials, or a function asking for them (called only once all else is checked)."""


def add_profile(
    profile: Profile,
    credentials: CredentialsInput | None = None,
    *,
    make_default: bool = False,
    today: date | None = None,
) -> ProfileStore:
    """Store a new profile; its credentials go to the keyring unless its source is ``env``.

    The first profile becomes the default. Everything that can be checked (the config
    file, the name, the expiry date, the keyring) is checked before the credentials are
    asked for, and nothing is left behind on failure.
    """
    store = load_store()
    if profile.name in store.profiles:
        raise BadInputError(
            f"a profile named '{profile.name}' already exists.",
            hint=f"run `caaspp config rotate {profile.name}` to replace its credentials, or "
            f"`caaspp config remove {profile.name}` first.",
        )
    _check_new_expiry(profile.expires, today)
    in_keyring = profile.credentials_source == "keyring"
    if in_keyring:
        creds.store_credentials(profile.name, _obtain(credentials, profile.name))
    store.profiles[profile.name] = profile
    if store.default is None or make_default:
        store.default = profile.name
    try:
        store.save()
    except BaseException:
        if in_keyring:
            with contextlib.suppress(CaasppError):
                creds.delete_credentials(profile.name)
        raise
    return store


def rotate_profile(
    name: str,
    credentials: CredentialsInput | None = None,
    *,
    expires: date | None = None,
    today: date | None = None,
) -> Profile:
    """Replace a profile's credentials (keyring profiles) and reset its expiry date.

    The expiry becomes ``expires``, or 365 days from today. A profile whose source is
    ``env`` only gets the new date: its credentials live wherever the jobs set them.
    """
    store = load_store()
    profile = store.get(name)
    _check_new_expiry(expires, today)
    if profile.credentials_source == "keyring":
        creds.store_credentials(name, _obtain(credentials, name))
    updated = profile.model_copy(update={"expires": expires or default_expiry(today)})
    store.profiles[name] = updated
    store.save()
    return updated


def _obtain(credentials: CredentialsInput | None, name: str) -> Credentials:
    if credentials is None:
        raise CredentialsError(f"no credentials given for profile '{name}'.")
    if isinstance(credentials, Credentials):
        return credentials
    secrets.keyring_backend()  # fail on a missing keyring before asking for secrets
    return credentials()


def _check_new_expiry(expires: date | None, today: date | None) -> None:
    if expires is not None and expires < (today or date.today()):
        raise BadInputError(
            f"the expiry date {expires.isoformat()} is in the past.",
            hint="give the date TOMS shows for the new credentials, as YYYY-MM-DD.",
        )


@dataclass(frozen=True)
class RemovedProfile:
    """What ``remove_profile`` did: the default may have moved, the keyring may have failed."""

    profile: Profile
    was_default: bool
    new_default: str | None
    keyring_problem: str | None = None


def remove_profile(name: str) -> RemovedProfile:
    """Remove a profile and its keyring entries; the default moves to another profile.

    A keyring that cannot be reached does not keep the profile: the problem is reported in
    the result, so the user can remove the entries by hand.
    """
    store = load_store()
    profile = store.get(name)
    problem = None
    if profile.credentials_source == "keyring":
        try:
            creds.delete_credentials(name)
        except CredentialsError as exc:
            problem = exc.message
    del store.profiles[name]
    was_default = store.default == name
    if was_default:
        store.default = store.names()[0] if store.profiles else None
    store.save()
    return RemovedProfile(profile, was_default, store.default, problem)


def set_default(name: str) -> Profile:
    """Make ``name`` the default profile."""
    store = load_store()
    profile = store.get(name)
    store.default = name
    store.save()
    return profile
