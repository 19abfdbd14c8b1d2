"""A hostile ETS on loopback: it answers the token call like ETS, then lists whatever a
test tells it to and serves bodies the way a broken or malicious server would (dripped a
byte at a time, a gzip bomb, a list of links no client should follow)."""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from caaspp_cli.ets import contract

TOKEN_PATH = contract.DEFAULT_TOKEN_ENDPOINT
DOWNLOAD_PATH = "/dl/"


def gzip_bomb(decompressed_bytes: int) -> bytes:
    """A gzip body of about a thousandth of ``decompressed_bytes`` that inflates to a JSON
    prefix followed by that many spaces."""
    block = b" " * (1024 * 1024)
    out = bytearray()
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip format
    out += comp.compress(b'{"ssid": "1234567890", "reports": [')
    for _ in range(decompressed_bytes // len(block)):
        out += comp.compress(block)
    out += comp.flush()
    return bytes(out)


@dataclass
class HostileEts:
    """What the server does; tests set the fields before or while it runs."""

    listing: Callable[[str, str], tuple[int, dict[str, str], bytes]] | None = None
    download: Callable[[BaseHTTPRequestHandler, str], None] | None = None
    requests: list[str] = field(default_factory=list)
    base_url: str = ""

    def link(self, name: str) -> str:
        return f"{self.base_url}{DOWNLOAD_PATH}{name}"


def listing_body(ssid: str, entries: list[dict[str, Any]]) -> bytes:
    return json.dumps({"ssid": ssid, "reports": entries}).encode()


def entry(url: str, test: str = "CAASPP", year: int = 2025, language: str = "en") -> dict[str, Any]:
    return {"test": test, "year": year, "language": language, "format": "pdf", "url": url}


@contextmanager
def hostile_ets() -> Iterator[HostileEts]:
    server_state = HostileEts()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            server_state.requests.append(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps({"access_token": "t0k", "expires_in": 3600}).encode()
            self._send(200, {"Content-Type": "application/json"}, body)

        def do_GET(self) -> None:
            server_state.requests.append(self.path)
            if self.path.startswith(DOWNLOAD_PATH):
                assert server_state.download is not None
                server_state.download(self, self.path[len(DOWNLOAD_PATH) :])
                return
            ssid = self.path.split("/")[4]
            assert server_state.listing is not None
            status, headers, body = server_state.listing(ssid, self.path)
            self._send(status, {"Content-Type": "application/json", **headers}, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server_state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()


def send_pdf(handler: BaseHTTPRequestHandler, pdf_bytes: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/pdf")
    handler.send_header("Content-Length", str(len(pdf_bytes)))
    handler.end_headers()
    handler.wfile.write(pdf_bytes)


def drip_pdf(handler: BaseHTTPRequestHandler, pdf_bytes: bytes, every: float) -> None:
    """Send the PDF one byte each ``every`` seconds (until the client hangs up)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/pdf")
    handler.send_header("Content-Length", str(len(pdf_bytes)))
    handler.end_headers()
    try:
        for index in range(len(pdf_bytes)):
            handler.wfile.write(pdf_bytes[index : index + 1])
            handler.wfile.flush()
            time.sleep(every)
    except OSError:
        pass
