"""Owner-only files and folders, written atomically.

Score reports and everything about them are children's personal data: every file caaspp
writes is 0600 and every folder it creates 0700, and a file appears under its final name
only once it is complete (write to a temp file in the same folder, fsync, rename).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from caaspp_cli.errors import BadInputError

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
TEMP_PREFIX = ".caaspp-"
TEMP_SUFFIX = ".part"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as owner-only folders; leave existing ones be.

    An existing folder is the user's choice (their home, a share): we do not change its mode.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        os.chmod(folder, PRIVATE_DIR_MODE)
    return path


def prepare_output_dir(path: Path, what: str = "output folder", hint: str | None = None) -> Path:
    """``path`` as a folder caaspp can write in, created owner-only if missing; checked
    before any work starts, so that a folder given wrong is bad input, told in one sentence,
    rather than a failure halfway through a run.

    Writing a probe file is the only check that holds for every cause: permissions, a
    read-only or immutable folder, a read-only file system, a file where a folder should be.
    """
    if path.exists() and not path.is_dir():
        raise BadInputError(
            f"the {what} {path} is a file, not a folder.",
            hint=hint or "give a folder, or a path where caaspp may create one.",
        )
    try:
        ensure_private_dir(path)
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadInputError(
            f"caaspp cannot write in the {what} {path} ({exc.strerror or exc}).",
            hint=hint or "choose a folder you may write in, or fix its permissions.",
        ) from None
    return path


def make_private(path: Path) -> None:
    os.chmod(path, PRIVATE_FILE_MODE)


@contextlib.contextmanager
def atomic_private_file(target: Path) -> Iterator[BinaryIO]:
    """A private temp file beside ``target``, opened for binary writing; on success it is
    fsynced and renamed into place.

    On any exception (or interruption) the temp file is removed and ``target`` is untouched.
    """
    ensure_private_dir(target.parent)
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=target.parent)
    temp = Path(temp_name)
    try:
        os.chmod(temp, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def write_private_bytes(target: Path, data: bytes) -> None:
    with atomic_private_file(target) as handle:
        handle.write(data)


def write_private_text(target: Path, text: str) -> None:
    write_private_bytes(target, text.encode("utf-8"))


def append_private_line(target: Path, line: str) -> None:
    """Append one line to an owner-only file, creating it (and its folder) if needed."""
    ensure_private_dir(target.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
    fd = os.open(target, flags, PRIVATE_FILE_MODE)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def is_temp_name(name: str) -> bool:
    """True for the names of our own in-progress files."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def sweep_temp_files(folder: Path) -> int:
    """Remove the temp files an earlier run left when it was killed; return how many."""
    removed = 0
    if not folder.is_dir():
        return 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if is_temp_name(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(root, name))
                    removed += 1
    return removed
