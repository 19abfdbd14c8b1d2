"""An ETS profile's Client Key and Client Secret: the pair, its input checks, and where it is.

The pair is found by the one Resolver of ``caaspp_cli.config.secrets``, in its fixed order:
CAASPP_CLIENT_KEY and CAASPP_CLIENT_SECRET (for unattended jobs) override the keyring; the
keyring holds what ``caaspp config add`` stored. A profile made with ``--env-credentials``
reads the environment only and never touches the keyring, so that a headless server without
any keyring backend works. Both values are secret: their ``repr`` is ``<hidden>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from caaspp_cli.config import secrets
from caaspp_cli.config.secrets import (
    HIDDEN,
    KEY_ENV,
    SECRET_ENV,
    CredentialSource,
    Resolver,
    Secret,
    SecretSet,
)
from caaspp_cli.errors import BadInputError, CredentialsError


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


class EtsSecrets(SecretSet):
    """The Client Key and Client Secret of one ETS profile, as the Resolver looks for them."""

    what = "credentials"

    def __init__(self, profile: str, source: CredentialSource = "keyring") -> None:
        self.profile = profile
        self.owner = f"profile '{profile}'"
        self.source = source
        self.key = Secret("Client Key", KEY_ENV, key_username(profile))
        self.secret = Secret("Client Secret", SECRET_ENV, secret_username(profile))
        self.secrets = (self.key, self.secret)

    def not_in_environment(self, missing: Sequence[Secret]) -> CredentialsError:
        names = [secret.env for secret in missing]
        return CredentialsError(
            f"profile '{self.profile}' takes its credentials from the environment, but "
            f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} not set.",
            hint=f"set {KEY_ENV} and {SECRET_ENV} to the Client Key and Client Secret "
            "generated in TOMS.",
        )

    def not_in_keyring(self, missing: Sequence[Secret]) -> CredentialsError:
        return CredentialsError(
            f"no {' and no '.join(secret.label for secret in missing)} for profile "
            f"'{self.profile}' in the keyring.",
            hint=f"run `caaspp config rotate {self.profile}` to store them, or set {KEY_ENV} "
            f"and {SECRET_ENV}.",
        )


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


# --- Where the pair is ---------------------------------------------------------------------
def load_credentials(
    profile: str,
    *,
    source: CredentialSource = "keyring",
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """The credentials to use for ``profile``, in the fixed order.

    1. CAASPP_CLIENT_KEY and CAASPP_CLIENT_SECRET, when both are set (they override; one
       of them alone is refused);
    2. the keyring, unless the profile's source is ``env``;
    3. otherwise CredentialsError saying what is missing and how to fix it.
    """
    key, secret = Resolver(environ).resolve(EtsSecrets(profile, source))
    return Credentials(key, secret)


def pair_in_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether CAASPP_CLIENT_KEY and CAASPP_CLIENT_SECRET are both set now."""
    # The variables are the same for every profile: any name will do.
    return Resolver(environ).environment_complete(EtsSecrets("-"))


def credential_status(
    profile: str,
    *,
    source: CredentialSource = "keyring",
    environ: Mapping[str, str] | None = None,
) -> CredentialStatus:
    """Where ``load_credentials`` would find each credential now, without revealing them."""
    status = Resolver(environ).status(EtsSecrets(profile, source))
    key_present, secret_present = status.present
    return CredentialStatus(
        status.origin, key_present, secret_present, status.backend, status.problem
    )


def store_credentials(profile: str, credentials: Credentials) -> None:
    """Put both credentials in the keyring, replacing what was there."""
    secrets.store(
        [
            (key_username(profile), credentials.client_key),
            (secret_username(profile), credentials.client_secret),
        ],
        what=f"the credentials of profile '{profile}'",
    )


def delete_credentials(profile: str) -> None:
    """Remove both credentials of ``profile`` from the keyring; absent ones are fine."""
    secrets.delete(
        [key_username(profile), secret_username(profile)],
        what=f"the credentials of profile '{profile}'",
    )
