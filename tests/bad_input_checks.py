"""Bad input, tried the way hurried staff will: what every refusal must look like, and the
inputs and servers the bad-input tests (tests/test_bad_*.py) share.

Every file of ``tests/data/bad/`` (see its README) and every misuse of the command line is
one test id. Each must end with a documented exit code (bad input: 2), one ``error:`` line
on stderr (plus at most one ``hint:`` line) and no traceback; where a run had done work
before, that work is neither lost nor done again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Family, report_pdf

BAD = Path(__file__).parent / "data" / "bad"
ANA = Family("1000000001", "Ana", "Ruiz", guardian="Rosa Ruiz", email="rosa@example.org")
BO = Family("1000000002", "Bo", "Lee", guardian="Kim Lee", email="kim@example.org")
CY = Family("1000000003", "Cy", "Paz", guardian="Lu Paz", email="lu@example.org")


# --- What every failure must look like ---------------------------------------------------------
def error_line(result: Any, *, only: bool = True) -> str:
    """The one ``error:`` line of a run, checked: no traceback, at most one ``hint:`` right
    after it, and (``only``) nothing else on stderr."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    hints = [line for line in lines if line.startswith("hint: ")]
    assert len(hints) <= 1, result.stderr
    if hints:
        assert lines[errors[0] + 1] == hints[0], result.stderr
    if only:
        assert lines == [lines[errors[0]], *hints], result.stderr
    error = lines[errors[0]]
    assert not error.startswith("error: unexpected") and "[Errno" not in error, error
    return error


def bad_input(result: Any, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    error = error_line(result)
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    return error


def snapshot(*folders: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under the folders: bytes, mtime and mode."""
    found: dict[str, tuple[bytes, int, int]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = path.stat()
                found[str(path)] = (path.read_bytes(), info.st_mtime_ns, info.st_mode)
    return found


def _writable(folder: Path) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only: mode 0500, and immutable (chattr +i) where the tests run
    as root, which modes do not stop. Skips where neither works."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o500)
    immutable = False
    try:
        if _writable(folder):
            with contextlib.suppress(OSError):
                immutable = (
                    subprocess.run(
                        ["chattr", "+i", str(folder)], capture_output=True, check=False
                    ).returncode
                    == 0
                )
        if _writable(folder):
            pytest.skip("no way to make a folder read-only here")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=False)
        os.chmod(folder, 0o700)


def _roster(path: Path, ssids: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "SSID,First Name,Last Name\r\n"
        + "".join(f"{ssid},Student{i},Test\r\n" for i, ssid in enumerate(ssids)),
        encoding="utf-8",
    )
    return path


def _report(path: Path, text: str = "Synthetic score report") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with report_pdf(text) as pdf:
        pdf.save(path)
    return path


# --- A mail server that misbehaves ---------------------------------------------------------
class MisbehavingServer:
    """A loopback TCP server whose every connection is handled by ``behaviour``."""

    def __init__(self, behaviour: Callable[[socket.socket], None]) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self.listener.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self.behaviour(conn)

    def wait(self) -> None:
        self.stopping.wait(30)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()
