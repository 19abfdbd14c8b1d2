"""How a message reaches the mail server: the transport ``caaspp send`` delivers through.

:class:`MailTransport` is what a run needs of a transport: open a session (connect and
log in), deliver one message, close. Whatever the transport, delivering one message ends
one of four ways, and the send ledger records each (see :mod:`caaspp_cli.send.ledger`):

* :class:`Delivery`: accepted, by the addresses it names;
* :class:`SmtpRefusal`: certainly not accepted, for now (4xx, retried) or for good (5xx);
* :class:`ConnectionLost`: certainly not accepted, and the session is gone (retried);
* :class:`UncertainDelivery`: the whole message went out and no answer came back, so it
  may have been accepted. It is never sent again on its own.

``before_body`` runs at the one moment from which the server may accept the message (for
SMTP, once it has said 354 to DATA and before the body goes), so the ledger can record the
message as *sending* first.

:class:`MailServer` is the SMTP transport (stdlib ``smtplib``; TLS always verified, see
:func:`tls_context`). It logs in with a password, or with an OAuth token (``AUTH XOAUTH2``,
Microsoft 365 and Google Workspace): a refused token is renewed once, and a refusal is worded
as what it means (basic authentication disabled, a permission or registration missing).
:class:`RateLimiter` spaces the transactions, whatever carries them.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from caaspp_cli.config.mail_profiles import SmtpProfile
from caaspp_cli.errors import (
    BadInputError,
    MailAuthenticationError,
    MailConnectionError,
    MailTLSError,
)
from caaspp_cli.send.oauth import TokenProvider, token_roles

SMTP_TIMEOUT: Final = 60.0
IDLE_CHECK_SECONDS: Final = 30.0  # a session idle this long is checked (NOOP) before use


# --- What a delivery ends in ---------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """The server accepted the message (250) for ``accepted``; ``refused`` it refused."""

    accepted: tuple[str, ...]
    refused: Mapping[str, str] = field(default_factory=dict)


class SmtpRefusal(Exception):
    """The server answered a command with an error: the message was not accepted.

    ``code`` is an SMTP reply code: 4xx is ``temporary`` (worth retrying), 5xx is for good.
    A transport that does not speak SMTP gives its refusals the code that means the same.
    """

    def __init__(self, code: int, text: str, stage: str) -> None:
        super().__init__(f"{stage}: {code} {text}".strip())
        self.code = code
        self.temporary = 400 <= code < 500


class ConnectionLost(Exception):
    """The connection failed before the server could accept the message."""


class UncertainDelivery(Exception):
    """The whole message went out, and no answer came back: it may have been accepted."""


# --- What a run needs of a transport -------------------------------------------------------------
class MailTransport(Protocol):
    """A way to hand messages to the mail server, one at a time."""

    def open(self) -> None:
        """Connect and log in, unless a session is open and still answers.

        Raises MailTLSError and MailAuthenticationError (no use retrying), and
        ConnectionLost for what may pass (refused, timed out, busy).
        """

    def deliver(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        before_body: Callable[[], None],
    ) -> Delivery:
        """Send one message (``data``, as its headers give it), opening the session as
        needed; ``before_body`` runs once the server may accept it.

        Returns who accepted it. Raises SmtpRefusal, ConnectionLost or UncertainDelivery
        (see the module's docstring).
        """

    def close(self) -> None:
        """End the session, if one is open; the next delivery opens another."""


# --- SMTP ----------------------------------------------------------------------------------------
def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:200]


def _dot_stuffed(data: bytes) -> bytes:
    """A message body as DATA carries it: CRLF lines, leading dots doubled, the final dot."""
    body = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    body = re.sub(rb"(?m)^\.", b"..", body)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The system's trusted CAs (and SSL_CERT_FILE), plus ``ca_file`` if given; the host
    name is checked. There is no way to turn verification off."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            raise BadInputError(
                f"the CA file {ca_file} holds no usable PEM certificate ({exc.reason or exc}).",
                hint=_CA_HINT,
            ) from None
        except OSError as exc:
            raise BadInputError(
                f"the CA file {ca_file} cannot be read ({exc.strerror or exc}).", hint=_CA_HINT
            ) from None
    return context


_CA_HINT: Final = (
    "give the district CA's certificate as a PEM file with `caaspp config smtp NAME ... "
    "--ca-file FILE`."
)


class MailServer:
    """The SMTP transport: one session, opened when first needed and again after it is lost."""

    def __init__(
        self,
        profile: SmtpProfile,
        password: str | None,
        *,
        tokens: TokenProvider | None = None,
        timeout: float = SMTP_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self._password = password
        self._tokens = tokens
        self._last_token = ""  # the one last presented: its roles word a refusal
        self.timeout = timeout
        self._clock = clock
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0

    def __repr__(self) -> str:
        return f"MailServer({self.profile.host}:{self.profile.port}, password=<hidden>)"

    def __enter__(self) -> MailServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def open(self) -> None:
        """Connect and log in, unless the session is open and still answers."""
        self._session()

    def _session(self) -> smtplib.SMTP:
        """The open session, opening and logging in as needed.

        Raises MailTLSError and MailAuthenticationError (no use retrying), and
        ConnectionLost for what may pass (refused, timed out, 4xx greeting).
        """
        if self._smtp is not None and self._clock() - self._last_used > IDLE_CHECK_SECONDS:
            try:
                if self._smtp.noop()[0] != 250:
                    self._drop()
            except (smtplib.SMTPException, OSError):
                self._drop()
        if self._smtp is not None:
            return self._smtp
        profile = self.profile
        where = f"{profile.host}:{profile.port}"
        context = tls_context(profile.ca_file) if profile.security != "none" else None
        smtp: smtplib.SMTP | None = None
        try:
            if profile.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    profile.host, profile.port, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(profile.host, profile.port, timeout=self.timeout)
            smtp.ehlo()
            if profile.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise MailTLSError(
                        f"the mail server {where} does not offer STARTTLS: caaspp will not "
                        "send reports and passwords over a connection in clear text.",
                        hint="check the port and security of the SMTP profile (587 with "
                        "starttls, 465 with ssl).",
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if self._tokens is not None:
                self._login_with_token(smtp)
            elif profile.user is not None:
                smtp.login(profile.user, self._password or "")
        except ssl.SSLCertVerificationError as exc:
            _close_quietly(smtp)
            raise MailTLSError(
                f"the certificate of the mail server {where} is not trusted "
                f"({exc.verify_message or exc.reason}).",
                hint=f"if the district's mail server uses its own CA, give its certificate "
                f"with `caaspp config smtp {profile.name} ... --ca-file FILE` (or set "
                "SSL_CERT_FILE); check the host name.",
            ) from None
        except ssl.SSLError as exc:
            _close_quietly(smtp)
            raise MailTLSError(
                f"TLS with the mail server {where} failed ({exc.reason or exc}).",
                hint="check the port and security of the SMTP profile (587 with starttls, "
                "465 with ssl).",
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(smtp)
            if self._tokens is not None:
                raise self._token_refused(exc) from None
            if _basic_auth_disabled(exc.smtp_code, _reply_text(exc.smtp_error)):
                raise MailAuthenticationError(
                    f"the mail server {where} refused the password login of {profile.user}: "
                    f"{BASIC_AUTH_DISABLED}.",
                    hint=f"make an OAuth mail profile: `caaspp config mail {profile.name} "
                    "--via smtp --auth oauth-microsoft ...`.",
                ) from None
            raise MailAuthenticationError(
                f"the mail server {where} refused the login of {profile.user} "
                f"({exc.smtp_code} {_reply_text(exc.smtp_error)}).",
                hint=f"store the right password with `caaspp config smtp {profile.name} ...`, "
                "or set CAASPP_SMTP_PASSWORD; some servers need an app password.",
            ) from None
        except smtplib.SMTPNotSupportedError:
            _close_quietly(smtp)
            raise MailConnectionError(
                f"the mail server {where} offers no login (AUTH) on this connection.",
                hint="check the port and security of the SMTP profile, or remove --user.",
            ) from None
        except smtplib.SMTPResponseException as exc:  # SMTPConnectError included
            _close_quietly(smtp)
            if exc.smtp_code == -1:
                raise _not_smtp(where) from None
            reply = f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                raise ConnectionLost(f"{where} said {reply}") from None
            if isinstance(exc, smtplib.SMTPConnectError):
                raise MailConnectionError(
                    f"the mail server {where} refused the connection ({reply})."
                ) from None
            raise MailConnectionError(f"the mail server {where} answered {reply}.") from None
        except (smtplib.SMTPException, OSError) as exc:
            _close_quietly(smtp)
            raise ConnectionLost(f"{where}: {_os_reason(exc)}") from None
        self._smtp = smtp
        self._last_used = self._clock()
        return smtp

    def _login_with_token(self, smtp: smtplib.SMTP) -> None:
        """AUTH XOAUTH2 as the mailbox; a refused token is renewed and tried once more."""
        assert self._tokens is not None
        user = self.profile.mailbox
        for attempt in (1, 2):
            self._last_token = token = self._tokens.token()
            # The token never reaches a log: smtplib's debug output stays off.
            initial = f"user={user}\x01auth=Bearer {token}\x01\x01"

            def answer(challenge: bytes | None = None, initial: str = initial) -> str:
                # A 334 with an error (Google's) wants an empty line, then says 535.
                return initial if challenge is None else ""

            try:
                smtp.auth("XOAUTH2", answer, initial_response_ok=True)
                return
            except smtplib.SMTPAuthenticationError as exc:
                if attempt == 2 or not (exc.smtp_code == 535 or 400 <= exc.smtp_code < 500):
                    raise
                self._tokens.invalidate()

    def _token_refused(self, exc: smtplib.SMTPAuthenticationError) -> MailAuthenticationError:
        """What a refused XOAUTH2 login means, in one sentence."""
        profile = self.profile
        where = f"{profile.host}:{profile.port}"
        reply = f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
        problem = f"the mail server {where} refused the token of {profile.mailbox} ({reply})"
        hint = "see the README's section on your mail provider."
        if profile.provider == "microsoft":
            roles = token_roles(self._last_token)
            if roles is not None and "SMTP.SendAsApp" not in roles:
                problem = (
                    f"the app {profile.client_id} lacks the SMTP.SendAsApp permission (its "
                    "token holds no such role)"
                )
                hint = (
                    "add the API permission Office 365 Exchange Online > SMTP.SendAsApp to the "
                    "app and grant admin consent (README: Microsoft 365)."
                )
            elif "5.7.3" in reply:
                problem = (
                    f"Exchange does not know the app {profile.client_id} or lets it use "
                    f"{profile.mailbox} ({reply}): its service principal is not registered, "
                    "or has no permission on the mailbox, or the mailbox does not exist"
                )
                hint = (
                    "run New-ServicePrincipal and Add-MailboxPermission in Exchange Online "
                    "PowerShell (README: Microsoft 365)."
                )
        elif profile.provider == "google":
            hint = (
                f"check the domain-wide delegation of the service account (scope "
                f"https://mail.google.com/) and that {profile.mailbox} is a mailbox of the "
                "domain (README: Google Workspace)."
            )
        return MailAuthenticationError(problem + ".", hint=hint)

    def check(self) -> None:
        """Connect, log in and say goodbye (``caaspp config smtp-test``)."""
        try:
            self.open()
        except ConnectionLost as exc:
            raise MailConnectionError(
                f"could not reach the mail server: {exc}.",
                hint="check the host and port of the SMTP profile, and the network.",
            ) from None
        self.close()

    def deliver(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        before_body: Callable[[], None],
    ) -> Delivery:
        """Send one message. ``before_body`` runs once the server is ready for the body.

        Returns who accepted it. Raises SmtpRefusal (not accepted: ``temporary`` for 4xx),
        ConnectionLost (not accepted; the connection is gone), UncertainDelivery (the body
        went out and no answer came: it may have been accepted).
        """
        smtp = self._session()
        try:
            code, reply = smtp.mail(sender)
            if code != 250:
                self._reset()
                raise SmtpRefusal(code, _reply_text(reply), "the sender was refused")
            accepted: list[str] = []
            refused: dict[str, str] = {}
            temporary: tuple[int, str] | None = None
            for address in recipients:
                code, reply = smtp.rcpt(address)
                if code in (250, 251):
                    accepted.append(address)
                elif 400 <= code < 500:
                    temporary = (code, _reply_text(reply))
                else:
                    refused[address] = f"{code} {_reply_text(reply)}"
            if temporary is not None:
                self._reset()
                raise SmtpRefusal(*temporary, "a recipient was deferred")
            if not accepted:
                self._reset()
                first = next(iter(refused.values()), "550")
                code_text, _, text = first.partition(" ")
                raise SmtpRefusal(int(code_text), text, "every recipient was refused")
            smtp.putcmd("data")
            code, reply = smtp.getreply()
            if code != 354:
                self._reset()
                raise SmtpRefusal(code, _reply_text(reply), "DATA was refused")
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as exc:
            self._drop()
            raise ConnectionLost(_os_reason(exc)) from None
        try:
            before_body()
        except BaseException:
            self._drop()  # the server drops a body that never ends: nothing is sent
            raise
        try:
            smtp.send(_dot_stuffed(data))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # The final dot is in the last bytes, which did not go: the server cannot
            # have accepted the message.
            self._drop()
            raise ConnectionLost(_os_reason(exc)) from None
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise UncertainDelivery(
                f"the connection was lost while waiting for the server's answer ({_os_reason(exc)})"
            ) from None
        self._last_used = self._clock()
        if code != 250:
            raise SmtpRefusal(code, _reply_text(reply), "the message was refused")
        return Delivery(tuple(accepted), refused)

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()


BASIC_AUTH_DISABLED: Final = "this tenant needs OAuth: see the README's Microsoft 365 section"


def _basic_auth_disabled(code: int, text: str) -> bool:
    """Microsoft's refusal of every password login (SMTP AUTH basic authentication off)."""
    return (
        (code == 535 and "5.7.139" in text)
        or (code == 550 and "5.7.30" in text)
        or "basic authentication is disabled" in text.lower()
    )


def _not_smtp(where: str) -> MailConnectionError:
    # smtplib reports an answer without a three-digit code (a web server's, say) as -1.
    return MailConnectionError(
        f"the server at {where} does not answer as a mail server: it is not an SMTP server, "
        "or not on that port.",
        hint="check the host and port of the SMTP profile (587 with starttls, 465 with ssl).",
    )


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# --- Rate --------------------------------------------------------------------------------------
class RateLimiter:
    """At most ``per_minute`` SMTP transactions a minute, evenly spaced."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        if per_minute < 1:
            raise ValueError("the rate must be at least 1 message a minute")
        self.interval = 60.0 / per_minute
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = max(self._clock(), self._next)
        self._next = now + self.interval
