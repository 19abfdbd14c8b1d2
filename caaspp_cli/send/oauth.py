"""OAuth 2.0 access tokens for the mail transports that need one.

Microsoft 365 (SMTP with XOAUTH2, or Microsoft Graph) and Google Workspace (SMTP with
XOAUTH2) take a bearer token instead of a password. A :class:`TokenProvider` gives a
transport its current token: kept in memory for the run only, renewed before it expires,
and dropped when the server refuses it (:meth:`TokenProvider.invalidate`). A token is a
secret: it is never written to a file, a log, an error or ``--debug`` output.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

import google.auth.exceptions
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account

from caaspp_cli.config.mail_profiles import (
    GRAPH_URL,
    MICROSOFT_AUTHORITY,
    SmtpProfile,
    check_key_file,
    client_secret,
)
from caaspp_cli.errors import BadInputError, CredentialsError, MailConnectionError


class TokenProvider(Protocol):
    """The current access token of one mail profile."""

    def token(self) -> str:
        """A token valid for at least the next minute (fetched or renewed as needed).
        Raises CredentialsError (exit 4) when the identity provider refuses."""
        ...

    def invalidate(self) -> None:
        """Forget the token: the server refused it, so the next :meth:`token` fetches anew."""
        ...


# --- Making one ----------------------------------------------------------------------------------
RENEW_BEFORE: Final = 300.0  # seconds: a token this close to expiring is renewed first
SMTP_SCOPE_MICROSOFT: Final = "https://outlook.office365.com/.default"
US_GOVERNMENT_AUTHORITY: Final = "https://login.microsoftonline.us"
SMTP_SCOPE_US_GOVERNMENT: Final = "https://outlook.office365.us/.default"
SCOPE_GOOGLE: Final = "https://mail.google.com/"


def token_provider(
    profile: SmtpProfile, *, clock: Callable[[], float] = time.time
) -> TokenProvider:
    """The TokenProvider of an OAuth mail profile (Microsoft or Google)."""
    if profile.auth == "oauth-google":
        return GoogleTokens(profile, clock=clock)
    if profile.auth == "oauth-microsoft":
        return MicrosoftTokens(profile, clock=clock)
    raise ValueError(f"mail profile '{profile.name}' logs in with a password, not a token")


def http_session() -> requests.Session:
    """The HTTP session tokens are fetched with: TLS verified against the system's CAs, or
    REQUESTS_CA_BUNDLE, or SSL_CERT_FILE (a district proxy's CA, a test's)."""
    session = requests.Session()
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    session.verify = bundle or True
    return session


def token_roles(token: str) -> list[str] | None:
    """The ``roles`` claim of a JWT access token, read without checking its signature (only
    to word an error), or None when the token is not a readable JWT."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return [str(role) for role in roles] if isinstance(roles, list) else []


class _CachedTokens:
    """The token in memory and its expiry; subclasses fetch a new one."""

    def __init__(self, profile: SmtpProfile, clock: Callable[[], float]) -> None:
        self.profile = profile
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._fresh = False  # the next fetch must not come from a library's cache

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.profile.name}, token=<hidden>)"

    def token(self) -> str:
        if self._token is None or self._expires - self._clock() < RENEW_BEFORE:
            fresh, self._fresh = self._fresh or self._token is not None, False
            self._token, lifetime = self._fetch(fresh)
            self._expires = self._clock() + lifetime
        return self._token

    def invalidate(self) -> None:
        self._token = None
        self._fresh = True

    def _fetch(self, fresh: bool) -> tuple[str, float]:
        raise NotImplementedError


class MicrosoftTokens(_CachedTokens):
    """App-only tokens from Microsoft Entra ID (msal), with a client secret or a certificate."""

    def __init__(self, profile: SmtpProfile, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(profile, clock)
        if profile.via == "graph":
            self.scope = f"{profile.graph_url or GRAPH_URL}/.default"
        elif (profile.authority or "").startswith(US_GOVERNMENT_AUTHORITY):
            self.scope = SMTP_SCOPE_US_GOVERNMENT  # GCC High and DoD: Exchange's own host
        else:
            self.scope = SMTP_SCOPE_MICROSOFT
        self._app: msal.ConfidentialClientApplication | None = None

    def _credential(self) -> str | dict[str, str]:
        profile = self.profile
        if profile.certificate is None:
            return client_secret(profile)
        check_key_file(profile.certificate)
        pem = Path(profile.certificate).read_bytes()
        try:
            key = serialization.load_pem_private_key(pem, password=None)
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise BadInputError(
                f"the certificate file {profile.certificate} must hold the private key and "
                "the certificate, both PEM, the key without a passphrase."
            ) from None
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        return {"private_key": private, "thumbprint": cert.fingerprint(hashes.SHA1()).hex()}  # noqa: S303 - x5t is SHA-1 by definition

    def _make_app(self) -> msal.ConfidentialClientApplication:
        profile = self.profile
        authority = profile.authority or MICROSOFT_AUTHORITY
        public = authority == MICROSOFT_AUTHORITY
        return msal.ConfidentialClientApplication(
            profile.client_id,
            authority=f"{authority}/{profile.tenant}",
            client_credential=self._credential(),
            http_client=http_session(),
            validate_authority=public,
            instance_discovery=public,
        )

    def _fetch(self, fresh: bool) -> tuple[str, float]:
        try:
            if self._app is None or fresh:
                self._app = self._make_app()  # fetches the authority's OIDC discovery
            result = self._app.acquire_token_for_client(scopes=[self.scope])
        except requests.RequestException as exc:
            raise _unreachable(self.profile, exc) from None
        except ValueError as exc:  # msal: an authority it cannot use
            raise MailConnectionError(
                f"Microsoft's sign-in for tenant {self.profile.tenant} could not be used "
                f"({_first_line(str(exc))}).",
                hint="check --tenant and --authority of the mail profile.",
            ) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not isinstance(token, str):
            error = result.get("error_description") or result.get("error") or "no token"
            raise CredentialsError(
                f"Microsoft refused a token to app {self.profile.client_id} of tenant "
                f"{self.profile.tenant} ({_first_line(str(error))}).",
                hint="check the tenant, the client ID and the client secret or certificate "
                "(see the README's Microsoft 365 section).",
            )
        return token, float(result.get("expires_in", 3600))


class GoogleTokens(_CachedTokens):
    """Tokens for a Google Workspace mailbox: a service account with domain-wide delegation
    acting as that mailbox (google-auth)."""

    def _fetch(self, fresh: bool) -> tuple[str, float]:
        profile = self.profile
        assert profile.service_account is not None and profile.user is not None
        check_key_file(profile.service_account)
        try:
            load = service_account.Credentials.from_service_account_file
            credentials = load(  # type: ignore[no-untyped-call,unused-ignore]
                profile.service_account, scopes=[SCOPE_GOOGLE], subject=profile.user
            )
        except (ValueError, KeyError, OSError) as exc:
            raise BadInputError(
                f"the service account key file {profile.service_account} is not a usable "
                f"JSON key ({type(exc).__name__}).",
                hint="download the key again from the Google Cloud console (Keys, JSON).",
            ) from None
        try:
            credentials.refresh(GoogleRequest(session=http_session()))
        except google.auth.exceptions.RefreshError as exc:
            raise CredentialsError(
                f"Google refused a token for {profile.user} ({_first_line(str(exc.args[0]))}).",
                hint="check the domain-wide delegation of the service account (scope "
                f"{SCOPE_GOOGLE}) and that {profile.user} is a mailbox of the domain.",
            ) from None
        except google.auth.exceptions.TransportError as exc:
            raise _unreachable(profile, exc) from None
        expiry = credentials.expiry
        lifetime = 3600.0
        if expiry is not None:
            now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
            lifetime = (expiry - now).total_seconds()
        return str(credentials.token), lifetime


def _first_line(text: str) -> str:
    return " ".join(text.strip().splitlines()[:1])[:200] if text.strip() else "no reason given"


def _unreachable(profile: SmtpProfile, exc: BaseException) -> MailConnectionError:
    reason = "its certificate is not trusted" if "CERTIFICATE_VERIFY" in str(exc) else None
    return MailConnectionError(
        f"the sign-in service for mail profile '{profile.name}' could not be reached "
        f"({reason or type(exc).__name__}).",
        hint="check the network (and a proxy's CA: REQUESTS_CA_BUNDLE or SSL_CERT_FILE).",
    )
