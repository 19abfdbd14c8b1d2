"""Serving the sandbox: in the foreground for ``caaspp sandbox``, in a thread for tests."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import signal
import socket
import threading
import time
from typing import Self

import uvicorn

from caaspp_cli.errors import BadInputError
from caaspp_cli.sandbox.app import SandboxConfig, SandboxState, create_app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, or a BadInputError naming the problem (busy port, bad host)."""
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say so,
    # and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BadInputError(
                f"port {port} on {host} is already in use.",
                hint="choose another with --port, or --port 0 for any free port.",
            ) from None
        raise BadInputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="use --host 127.0.0.1 to serve on this machine only.",
        ) from None
    sock.setblocking(False)
    return sock


def _is_ipv6(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).version == 6
    return False


def base_url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _uvicorn_config(state: SandboxState) -> uvicorn.Config:
    # No access log: request paths carry SSIDs.
    return uvicorn.Config(
        create_app(state),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        server_header=False,
    )


class SandboxServer:
    """A sandbox on a loopback port, run in a background thread (tests, demos, benchmarks)."""

    def __init__(
        self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = SandboxState(config or SandboxConfig())
        self._socket = bind_socket(host, port)
        self.base_url = base_url_of(self._socket)
        self._server = uvicorn.Server(_uvicorn_config(self.state))
        # Off the main thread uvicorn leaves signal handlers alone.
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            daemon=True,
            name="caaspp-sandbox",
        )

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_foreground(state: SandboxState, sock: socket.socket) -> None:
    """Serve until Ctrl-C or SIGTERM, then return normally.

    uvicorn shuts down gracefully on either signal and then re-raises it; a stop asked
    for is the normal end of a foreground server, not an interruption.
    """
    server = uvicorn.Server(_uvicorn_config(state))
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


__all__ = ["SandboxConfig", "SandboxServer", "base_url_of", "bind_socket", "serve_foreground"]
