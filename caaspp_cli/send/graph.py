"""The Microsoft Graph transport: each message handed to Exchange Online by ``sendMail``.

:class:`GraphTransport` is a :class:`caaspp_cli.send.transport.MailTransport` that sends
through ``POST {graph_url}/v1.0/users/{mailbox}/sendMail`` in MIME format: the body of the
request is the base64 of the message exactly as composed (headers, Message-ID and
attachments intact), with ``Content-Type: text/plain``. Graph takes the recipients from the
message's To and Cc headers, so a delivery whose recipients are not exactly those is refused
before anything is sent. A request must stay under 4 MB, base64 included; a bigger message
fails its row (there is no upload-session path: a family's reports are far smaller).

Graph's answers, in the words of an SMTP transport (so the send ledger's exactly-once
protocol holds unchanged, see :mod:`caaspp_cli.send.ledger`):

* 202: :class:`Delivery` to every recipient;
* 400, 403, 404, 413: :class:`SmtpRefusal` 5xx, with Graph's error code and message;
* 401: the token is dropped (``TokenProvider.invalidate``) and the request made once more;
  refused again, :class:`caaspp_cli.errors.MailAuthenticationError`;
* 429, and 503/504 with Retry-After: :class:`caaspp_cli.send.quota.Throttled` (a 4xx
  refusal that says how long to wait; the run waits without spending an attempt);
* other 5xx: a temporary :class:`SmtpRefusal` (451);
* the connection failing before the request went: :class:`ConnectionLost`; the request sent
  and no answer: :class:`UncertainDelivery`.

Each request has a connection of its own (no keep-alive): a pooled connection the server
closed while idle would otherwise look like a request sent and never answered. TLS is
always verified (the system's CAs, SSL_CERT_FILE, and ``ca_file`` if given). The token is
read for each request and goes nowhere but its Authorization header: never into a log, an
error or ``repr``.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import logging
from collections.abc import Callable, Sequence
from email.utils import getaddresses
from typing import Final
from urllib.parse import quote, urlsplit

import httpx

from caaspp_cli.errors import BadInputError, MailAuthenticationError, MailTLSError
from caaspp_cli.send.oauth import TokenProvider
from caaspp_cli.send.quota import Throttled
from caaspp_cli.send.transport import (
    ConnectionLost,
    Delivery,
    SmtpRefusal,
    UncertainDelivery,
    tls_context,
)

log = logging.getLogger(__name__)

GRAPH_URL: Final = "https://graph.microsoft.com"
GRAPH_TIMEOUT: Final = 120.0
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024  # Graph's limit for one request, base64 included


def _error_text(response: httpx.Response) -> str:
    """Graph's ``error.code: error.message``, short, or the status's reason."""
    try:
        error = json.loads(response.content).get("error", {})
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        code, message = "", ""
    text = ": ".join(part for part in (code, message) if part) or response.reason_phrase
    return " ".join(text.split())[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def message_recipients(data: bytes) -> list[str]:
    """The To and Cc addresses of a composed message, as Graph reads them."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    fields = [str(value) for name in ("To", "Cc") for value in headers.get_all(name, [])]
    return [address for _, address in getaddresses(fields) if address]


class GraphTransport:
    """Messages sent as ``mailbox`` through Microsoft Graph's ``sendMail`` (MIME format)."""

    def __init__(
        self,
        mailbox: str,
        graph_url: str,
        tokens: TokenProvider,
        *,
        timeout: float = GRAPH_TIMEOUT,
        ca_file: str | None = None,
    ) -> None:
        parts = urlsplit(graph_url)
        if parts.scheme != "https" or not parts.hostname:
            raise BadInputError(
                f"the Graph address {graph_url} is not an https:// URL.",
                hint=f"use {GRAPH_URL} (or your national cloud's Graph endpoint).",
            )
        self.mailbox = mailbox
        self.graph_url = graph_url.rstrip("/")
        self.timeout = timeout
        self._tokens = tokens
        self._ca_file = ca_file
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"GraphTransport({self.graph_url}, mailbox={self.mailbox}, token=<hidden>)"

    def __enter__(self) -> GraphTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        return f"{self.graph_url}/v1.0/users/{quote(self.mailbox, safe='@')}/sendMail"

    def open(self) -> None:
        """Ready the HTTPS client and get a token (CredentialsError if refused)."""
        if self._client is None:
            self._client = httpx.Client(
                verify=tls_context(self._ca_file),
                timeout=self.timeout,
                limits=httpx.Limits(max_keepalive_connections=0),
                follow_redirects=False,
            )
        self._tokens.token()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def deliver(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        before_body: Callable[[], None],
    ) -> Delivery:
        """Send one message through ``sendMail``; ``before_body`` runs just before the
        request goes. See the module's docstring for what each answer becomes."""
        wanted = sorted(address.lower() for address in recipients)
        named = sorted(address.lower() for address in message_recipients(data))
        if wanted != named:
            raise SmtpRefusal(
                554,
                "the message's To and Cc addresses are not the recipients it is sent to "
                "(Graph sends to the message's own headers)",
                "the message was not sent",
            )
        body = base64.b64encode(data)
        if len(body) + 1024 > MAX_REQUEST_BYTES:
            raise SmtpRefusal(
                552,
                f"the message is {len(data) / 1_048_576:.1f} MB; Graph takes at most 4 MB a "
                "request, base64 included (about 3 MB of message): send fewer or smaller "
                "reports to this family",
                "the message is too big for Graph",
            )
        self.open()
        sent_body = False
        for attempt in range(2):
            if not sent_body:
                before_body()
                sent_body = True
            response = self._post(body)
            status = response.status_code
            if 200 <= status < 300:
                return Delivery(tuple(recipients))
            if status == 401:
                self._tokens.invalidate()
                if attempt == 0:
                    log.info("Graph refused the token (401); fetching a new one")
                    continue
                raise MailAuthenticationError(
                    f"Microsoft Graph refused the token of the app for {self.mailbox} "
                    f"({_error_text(response)}).",
                    hint="check that the app has the Mail.Send application permission, "
                    "granted by an administrator, and that an application access policy lets "
                    "it send as this mailbox.",
                )
            text = f"{status} {_error_text(response)}"
            retry_after = _retry_after(response)
            if status == 429 or (status in (503, 504) and retry_after is not None):
                raise Throttled(451, text, "Graph is throttling the mailbox", retry_after)
            if status >= 500:
                raise SmtpRefusal(451, text, "Graph could not take the message for now")
            raise SmtpRefusal(554 if status != 413 else 552, text, "Graph refused the message")
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, body: bytes) -> httpx.Response:
        assert self._client is not None
        headers = {
            "Authorization": f"Bearer {self._tokens.token()}",
            "Content-Type": "text/plain",
        }
        try:
            return self._client.post(self.endpoint, content=body, headers=headers)
        except httpx.ConnectError as exc:
            self._raise_tls(exc)
            raise ConnectionLost(f"{self.graph_url}: {_reason(exc)}") from None
        except (httpx.TimeoutException, httpx.WriteError) as exc:
            if isinstance(exc, httpx.ReadTimeout):
                raise UncertainDelivery(
                    f"Graph did not answer in {self.timeout:.0f} s ({_reason(exc)})"
                ) from None
            # The request did not go whole: Graph cannot act on a body it never got.
            raise ConnectionLost(f"{self.graph_url}: {_reason(exc)}") from None
        except httpx.TransportError as exc:
            raise UncertainDelivery(
                f"the connection to Graph was lost while waiting for its answer ({_reason(exc)})"
            ) from None

    def _raise_tls(self, exc: httpx.ConnectError) -> None:
        cause: BaseException | None = exc
        while cause is not None:
            if "CERTIFICATE_VERIFY_FAILED" in str(cause):
                raise MailTLSError(
                    f"the certificate of {self.graph_url} is not trusted.",
                    hint="if a proxy of the district inspects TLS, set SSL_CERT_FILE to its "
                    "CA certificate; check the Graph address.",
                ) from None
            cause = cause.__cause__ or cause.__context__


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = " ".join(str(exc).split())[:200]
    return text or type(exc).__name__
