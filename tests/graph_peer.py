"""A Microsoft Graph ``sendMail`` endpoint on loopback (HTTPS), for the send tests.

It answers ``POST /v1.0/users/{mailbox}/sendMail`` as Graph does in MIME format: the
bearer token is checked, the body (base64 of a whole MIME message) decoded and kept, and
202 answered. Tests steer it:

``throttle``: answer that many requests 429 with ``Retry-After: retry_after`` (or 503 with
``throttle_status``); ``reject_token``: answer that many requests 401; ``drop_after_keeping``:
for that many messages, keep the message and close the connection without answering;
``before_keeping`` / ``after_keeping``: called once at that moment (to kill the sender
there), after which the request hangs until the test ends.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_TOKEN = "graph-test-token-5f1c9a"


class GraphMessage:
    """One message the peer accepted: the mailbox it was sent as, and its MIME bytes."""

    def __init__(self, mailbox: str, data: bytes) -> None:
        self.mailbox = mailbox
        self.data = data

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def rcpt_tos(self) -> tuple[str, ...]:
        message = self.message
        fields = [str(v) for name in ("To", "Cc") for v in message.get_all(name, [])]
        return tuple(address for _, address in getaddresses(fields))


class GraphPeer:
    """The endpoint's state: what it kept and how it will answer next."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.received: list[GraphMessage] = []
        self.requests = 0  # sendMail requests whose body was read
        self.throttle = 0
        self.throttle_status = 429
        self.retry_after: str | None = "7"
        self.reject_token = 0
        self.drop_after_keeping = 0
        self.before_keeping: Callable[[], None] | None = None
        self.after_keeping: Callable[[], None] | None = None
        self.authorizations: list[str] = []
        # Which bearer tokens it takes: GOOD_TOKEN, or those an identity provider issued.
        self.accept: Callable[[str], bool] = lambda token: token == GOOD_TOKEN
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def pause(self, moment: str) -> None:
        hook = getattr(self, moment)
        if hook is None:
            return
        setattr(self, moment, None)
        hook()
        self.stopping.wait(120)


def _handler(peer: GraphPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any] | None = None, **headers: str) -> None:
            content = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(content)))
            if content:
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(content)

        def _error(self, status: int, code: str, message: str, **headers: str) -> None:
            self._answer(status, {"error": {"code": code, "message": message}}, **headers)

        def do_GET(self) -> None:
            """``/v1.0/users/{mailbox}``, as `config test-mail` looks the mailbox up."""
            parts = self.path.split("/")
            authorization = self.headers.get("Authorization", "")
            if not (authorization.startswith("Bearer ") and peer.accept(authorization[7:])):
                self._error(401, "InvalidAuthenticationToken", "Access token validation failure.")
            elif len(parts) == 4 and parts[1:3] == ["v1.0", "users"]:
                self._answer(200, {"mail": parts[3], "userPrincipalName": parts[3]})
            else:
                self._error(404, "ResourceNotFound", "no such resource")

        def do_POST(self) -> None:
            parts = self.path.split("/")
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if len(parts) != 5 or parts[1:3] != ["v1.0", "users"] or parts[4] != "sendMail":
                self._error(404, "ResourceNotFound", "no such resource")
                return
            mailbox = parts[3]
            with peer.lock:
                peer.requests += 1
                authorization = self.headers.get("Authorization", "")
                peer.authorizations.append(authorization)
                if peer.reject_token:
                    peer.reject_token -= 1
                    authorization = ""
                throttled = peer.throttle > 0
                if throttled:
                    peer.throttle -= 1
            if not (authorization.startswith("Bearer ") and peer.accept(authorization[7:])):
                self._error(401, "InvalidAuthenticationToken", "Access token validation failure.")
                return
            if throttled:
                headers = {"Retry_After": peer.retry_after} if peer.retry_after else {}
                self._error(
                    peer.throttle_status,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    **headers,
                )
                return
            if self.headers.get("Content-Type") != "text/plain":
                self._error(400, "ErrorMimeContentInvalid", "Content-Type must be text/plain.")
                return
            try:
                data = base64.b64decode(body, validate=True)
            except ValueError:
                self._error(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string.")
                return
            peer.pause("before_keeping")
            with peer.lock:
                peer.received.append(GraphMessage(mailbox, data))
                drop = peer.drop_after_keeping > 0
                if drop:
                    peer.drop_after_keeping -= 1
            peer.pause("after_keeping")
            if drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._answer(202)

    return Handler


def serve_graph(server_context: ssl.SSLContext) -> Iterator[GraphPeer]:
    """Start the peer on a free loopback port with ``server_context``'s certificate;
    yields it, and stops it after."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    host, port = httpd.server_address[:2]
    peer = GraphPeer(str(host), int(port))
    httpd.RequestHandlerClass = _handler(peer)
    httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield peer
    finally:
        peer.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


class StaticTokens:
    """A TokenProvider with a fixed token: counts fetches and invalidations."""

    def __init__(self, token: str = GOOD_TOKEN) -> None:
        self._token = token
        self.fetches = 0
        self.invalidations = 0

    def token(self) -> str:
        self.fetches += 1
        return self._token

    def invalidate(self) -> None:
        self.invalidations += 1


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
