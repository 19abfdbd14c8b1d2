"""The ETS client over real connections: TLS failures and connections dropped mid-body."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from ets_fakes import (
    ENDPOINTS,
    KEY,
    SECRET,
    SIGNATURE,
    SSID,
    FakeTime,
    entry,
    folder_names,
)

from caaspp_cli.config.credentials import Credentials
from caaspp_cli.errors import (
    TLSError,
)
from caaspp_cli.ets.client import Endpoints, EtsClient
from caaspp_cli.ets.download import DownloadResult


def test_tls_certificate_failure_is_not_retried(fake: FakeTime) -> None:
    attempts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        # A plain MockTransport: respx would replace the exception's cause with its own.
        attempts.append(request)
        cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
        cause.verify_message = "self-signed certificate in certificate chain"
        raise httpx.ConnectError(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
        ) from cause

    async def main() -> None:
        async with EtsClient(
            ENDPOINTS,
            Credentials(KEY, SECRET),
            transport=httpx.MockTransport(handler),
            sleep=fake.sleep,
        ) as ets:
            await ets.get_token()

    with pytest.raises(TLSError) as caught:
        asyncio.run(main())

    assert "self-signed certificate in certificate chain" in caught.value.message
    assert "SSL_CERT_FILE" in (caught.value.hint or "")
    assert len(attempts) == 1
    assert fake.sleeps == []


@pytest.fixture(scope="session")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_untrusted_certificate_of_a_real_server_raises_tls_error(
    self_signed_cert: tuple[Path, Path], fake: FakeTime
) -> None:
    cert, key = self_signed_cert
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)  # the refused handshake
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            async with EtsClient(
                Endpoints(f"https://127.0.0.1:{port}"),
                Credentials(KEY, SECRET),
                sleep=fake.sleep,
            ) as ets:
                await ets.get_token()
        finally:
            server.close()
            await server.wait_closed()

    with pytest.raises(TLSError) as caught:
        asyncio.run(main())

    assert "certificate" in caught.value.message
    assert fake.sleeps == []


def test_real_connection_dropped_mid_body_is_retried(
    fake: FakeTime, pdf_bytes: bytes, tmp_path: Path
) -> None:
    """Over a real socket: Content-Length promised, half sent, connection closed."""
    connections = 0

    async def main() -> DownloadResult:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.readuntil(b"\r\n\r\n")
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                f"Content-Length: {len(pdf_bytes)}\r\n\r\n"
            ).encode()
            body = pdf_bytes if connections > 1 else pdf_bytes[: len(pdf_bytes) // 2]
            writer.write(head + body)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        try:
            async with EtsClient(
                Endpoints(base), Credentials(KEY, SECRET), sleep=fake.sleep
            ) as ets:
                link = entry(f"{base}/ssr/5c1f.pdf?signature={SIGNATURE}")
                return await ets.download_report(SSID, link, tmp_path / "r.pdf")
        finally:
            server.close()
            await server.wait_closed()

    result = asyncio.run(main())

    assert connections == 2
    assert len(fake.sleeps) == 1
    assert (tmp_path / "r.pdf").read_bytes() == pdf_bytes
    assert result.size == len(pdf_bytes)
    assert folder_names(tmp_path) == ["r.pdf"]
