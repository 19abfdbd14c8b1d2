"""Real protocol peers on loopback for the mail logins: an OAuth token endpoint and an SMTP
server that speaks AUTH XOAUTH2 the way Microsoft 365 and Google Workspace do.

:class:`TokenPeer` is an HTTPS server (certificate from the ``tls_files`` fixture) that serves
what msal and google-auth ask of Microsoft Entra ID and Google:

* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (msal's discovery);
* ``POST /{tenant}/oauth2/v2.0/token``, the client-credentials grant, with a client secret
  compared for real, or a certificate's client assertion whose RS256 signature is checked
  against the registered certificate, with its ``aud``, ``exp`` and ``x5t`` thumbprint;
* ``GET /v1.0/users/{mailbox}``, Microsoft Graph's look-up of a mailbox (200, or 401 for a
  token it did not issue, 403 without ``Mail.Send``, 404 for a mailbox not in ``mailboxes``);
* ``POST /google/token``, Google's JWT-bearer grant, the assertion signed (RS256) by the
  service account's key, with ``sub`` (the mailbox), ``scope``, ``aud`` and ``exp`` checked.

Tokens it issues look like Entra's (a JWT whose payload holds ``roles``), are random, and are
remembered: :meth:`TokenPeer.revoke` makes the SMTP server refuse them.

:class:`XoauthRecorder` is the aiosmtpd handler: XOAUTH2 succeeds only with a token the peer
issued (not revoked) for the expected mailbox (and, for a Microsoft token, with the role
``SMTP.SendAsApp``); PLAIN and LOGIN get Microsoft's reply for a tenant without basic
authentication.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Generator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from helpers import SmtpRecorder, SmtpServer

BASIC_AUTH_DISABLED = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled"
TENANT = "lincoln.example.org"
GOOGLE_SCOPE = "https://mail.google.com/"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"
SMTP_SCOPE = "https://outlook.office365.com/.default"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def self_signed(key: rsa.RSAPrivateKey, name: str = "caaspp mail app") -> x509.Certificate:
    """The certificate an IT person uploads to the app registration."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


@dataclass
class MicrosoftApp:
    """An app registration: its secret or certificate, and the roles its tokens carry."""

    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    roles: tuple[str, ...] = ("SMTP.SendAsApp",)


@dataclass
class ServiceAccount:
    """A Google service account: its key, and the mailboxes delegation lets it act as."""

    email: str
    key: rsa.RSAPrivateKey
    mailboxes: tuple[str, ...]


@dataclass
class Issued:
    token: str
    who: str  # the client ID, or the mailbox a Google token acts as
    roles: tuple[str, ...]
    scope: str


@dataclass
class TokenPeer:
    """The token endpoint; ``url`` is its base, ``authority`` what --authority takes."""

    url: str = ""
    apps: dict[str, MicrosoftApp] = field(default_factory=dict)
    accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    issued: dict[str, Issued] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    refusals: list[str] = field(default_factory=list)
    requests: int = 0
    lifetime: int = 3600
    mailboxes: set[str] = field(default_factory=set)

    @property
    def authority(self) -> str:
        return self.url

    @property
    def google_token_uri(self) -> str:
        return f"{self.url}/google/token"

    def revoke(self) -> None:
        """Every token issued so far stops working (the SMTP server refuses it)."""
        self.revoked |= set(self.issued)

    def valid(self, token: str) -> Issued | None:
        return None if token in self.revoked else self.issued.get(token)

    def _issue(self, who: str, roles: tuple[str, ...], scope: str) -> dict[str, Any]:
        payload = {"aud": scope, "roles": list(roles), "jti": secrets.token_hex(8)}
        token = ".".join(
            (
                b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()),
                b64url(json.dumps(payload).encode()),
                b64url(secrets.token_bytes(32)),
            )
        )
        self.issued[token] = Issued(token, who, roles, scope)
        return {"token_type": "Bearer", "expires_in": self.lifetime, "access_token": token}

    # --- Microsoft ---------------------------------------------------------------------
    def discovery(self, tenant: str) -> dict[str, Any]:
        base = f"{self.url}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def microsoft_token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        app = self.apps.get(form.get("client_id", ""))
        if tenant != TENANT or app is None:
            return self._refuse("unauthorized_client", "AADSTS700016: app not found")
        if form.get("grant_type") != "client_credentials":
            return self._refuse("unsupported_grant_type", "client_credentials only")
        if "client_secret" in form:
            if app.secret is None or not secrets.compare_digest(form["client_secret"], app.secret):
                return self._refuse("invalid_client", "AADSTS7000215: Invalid client secret")
        elif form.get("client_assertion_type") == (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            problem = self._check_assertion(app, form.get("client_assertion", ""), tenant)
            if problem:
                return self._refuse("invalid_client", problem)
        else:
            return self._refuse("invalid_client", "AADSTS7000218: no credential")
        scope = form.get("scope", "")
        return 200, self._issue(app.client_id, app.roles, scope)

    def _check_assertion(self, app: MicrosoftApp, assertion: str, tenant: str) -> str | None:
        if app.certificate is None:
            return "AADSTS700027: no certificate registered"
        header, claims, problem = verify_rs256(assertion, app.certificate.public_key())
        if problem:
            return problem
        thumbprint = app.certificate.fingerprint(hashes.SHA1())  # noqa: S303 - x5t is SHA-1
        if str(header.get("x5t", "")).rstrip("=") != b64url(thumbprint):
            return "AADSTS700027: the x5t thumbprint is not the registered certificate's"
        if claims.get("aud") != f"{self.url}/{tenant}/oauth2/v2.0/token":
            return "AADSTS700027: wrong aud"
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return "AADSTS700027: wrong iss or sub"
        return None

    # --- Google ------------------------------------------------------------------------
    def google_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._refuse("unsupported_grant_type", "jwt-bearer only")
        assertion = form.get("assertion", "")
        try:
            unverified = json.loads(unb64url(assertion.split(".")[1]))
        except (IndexError, ValueError):
            return self._refuse("invalid_grant", "malformed assertion")
        account = self.accounts.get(unverified.get("iss", ""))
        if account is None:
            return self._refuse("invalid_grant", "Invalid JWT Signature.")
        _, claims, problem = verify_rs256(assertion, account.key.public_key())
        if problem:
            return self._refuse("invalid_grant", problem)
        # google-auth, like Google's own libraries, names Google's endpoint as the audience
        # whatever the key file's token_uri.
        if claims.get("aud") != GOOGLE_AUDIENCE:
            return self._refuse("invalid_grant", "Invalid JWT: wrong aud")
        if claims.get("scope") != GOOGLE_SCOPE:
            return self._refuse("invalid_scope", "the scope is not https://mail.google.com/")
        mailbox = claims.get("sub", "")
        if mailbox not in account.mailboxes:
            return self._refuse(
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client "
                "not authorized for any of the scopes requested.",
            )
        return 200, self._issue(mailbox, (), GOOGLE_SCOPE)

    def _refuse(self, error: str, description: str) -> tuple[int, dict[str, Any]]:
        self.refusals.append(description)
        return 400 if error != "invalid_client" else 401, {
            "error": error,
            "error_description": description,
        }


def verify_rs256(token: str, public_key: Any) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """A JWT's header and claims, and what is wrong with it (None: signature valid, not
    expired). The signature is checked with ``cryptography`` against ``public_key``."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(unb64url(header_b64))
        claims = json.loads(unb64url(claims_b64))
        signature = unb64url(signature_b64)
    except ValueError:
        return {}, {}, "malformed JWT"
    if header.get("alg") != "RS256":
        return header, claims, "the JWT is not RS256"
    try:
        public_key.verify(
            signature,
            f"{header_b64}.{claims_b64}".encode("ascii"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except Exception:
        return header, claims, "Invalid JWT Signature."
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] < time.time():
        return header, claims, "the JWT has expired"
    return header, claims, None


def _handler(peer: TokenPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                self._answer(200, peer.discovery(parts[0]))
            elif parts[:2] == ["v1.0", "users"] and len(parts) == 3:
                bearer = self.headers.get("Authorization", "")
                issued = peer.valid(bearer.removeprefix("Bearer "))
                if issued is None:
                    self._answer(401, {"error": {"code": "InvalidAuthenticationToken"}})
                elif "Mail.Send" not in issued.roles:
                    self._answer(403, {"error": {"code": "Authorization_RequestDenied"}})
                elif urllib.parse.unquote(parts[2]) not in peer.mailboxes:
                    self._answer(404, {"error": {"code": "Request_ResourceNotFound"}})
                else:
                    self._answer(200, {"mail": urllib.parse.unquote(parts[2])})
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            peer.requests += 1
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts == ["google", "token"]:
                self._answer(*peer.google_token(form))
            elif parts[1:] == ["oauth2", "v2.0", "token"]:
                self._answer(*peer.microsoft_token(parts[0], form))
            else:
                self._answer(404, {"error": "not_found"})

    return Handler


def serve_token_peer(context: ssl.SSLContext) -> Generator[TokenPeer, None, None]:
    """Run a TokenPeer on 127.0.0.1 over HTTPS until the generator is closed."""
    peer = TokenPeer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(peer))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    peer.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()


class XoauthRecorder(SmtpRecorder):
    """An SMTP handler that logs in only with XOAUTH2 and a token the peer issued."""

    def __init__(self, peer: TokenPeer, mailbox: str) -> None:
        super().__init__()
        self.peer = peer
        self.mailbox = mailbox
        self.logins: list[str] = []  # the mailbox of each successful login
        self.refused_logins = 0
        self.refuse_sender: str | None = None  # the reply to MAIL FROM, when set

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse_sender is not None:
            return self.refuse_sender
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        self.refused_logins += 1
        return AuthResult(success=False, handled=False, message=BASIC_AUTH_DISABLED)

    async def auth_LOGIN(self, server: Any, args: list[str]) -> AuthResult:
        self.refused_logins += 1
        return AuthResult(success=False, handled=False, message=BASIC_AUTH_DISABLED)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        refused = AuthResult(
            success=False,
            handled=False,
            message="535 5.7.3 Authentication unsuccessful [XOAUTH2]",
        )
        if len(args) != 2:
            return refused
        try:
            fields = base64.b64decode(args[1], validate=True).decode().split("\x01")
        except ValueError:
            return refused
        user = next((f[5:] for f in fields if f.startswith("user=")), "")
        auth = next((f[5:] for f in fields if f.startswith("auth=")), "")
        if not auth.startswith("Bearer ") or fields[-2:] != ["", ""]:
            return refused
        issued = self.peer.valid(auth[len("Bearer ") :])
        if issued is None or user != self.mailbox:
            self.refused_logins += 1
            return refused
        if issued.scope != GOOGLE_SCOPE and (
            issued.scope != SMTP_SCOPE or "SMTP.SendAsApp" not in issued.roles
        ):
            self.refused_logins += 1
            return refused
        self.logins.append(user)
        return AuthResult(success=True, auth_data=user)


class XoauthServer(SmtpServer):
    """Where the XOAUTH2 server listens, and its handler."""

    handler: XoauthRecorder


def serve_xoauth_smtp(
    peer: TokenPeer, mailbox: str, context: ssl.SSLContext
) -> Generator[XoauthServer, None, None]:
    """Run an XOAUTH2 SMTP server (STARTTLS required) on 127.0.0.1 until closed."""
    from aiosmtpd.controller import Controller
    from helpers import free_port

    handler = XoauthRecorder(peer, mailbox)
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
    )
    controller.start()
    try:
        yield XoauthServer(handler, "127.0.0.1", port)
    finally:
        controller.stop()


def write_service_account_key(folder: Path, peer: TokenPeer, account: ServiceAccount) -> Path:
    """The JSON key file Google's console gives, its token_uri the peer's; owner-only."""
    path = folder / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "lincoln-reports",
                "private_key_id": secrets.token_hex(20),
                "private_key": key_pem(account.key).decode(),
                "client_email": account.email,
                "client_id": "104857600000000000000",
                "token_uri": peer.google_token_uri,
            }
        )
    )
    path.chmod(0o600)
    return path
