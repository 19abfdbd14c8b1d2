"""One lock per folder, for every command that writes one.

Two runs writing one folder at once download reports twice, write manifests that disagree,
or give a student two passwords. Each command takes its folder's lock before it writes,
and a second run is refused at once, told which command holds the folder, since when and
by which process.

The lock is an OS lock on an open file (``flock`` on POSIX, ``msvcrt.locking`` on
Windows): the OS releases it when the process ends, however it ends (kill -9 included),
so a lock left by a dead run never blocks the next one. A clean run removes the file as
it lets go; its text only says who holds it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Final, Self

from caaspp_cli.errors import BadInputError, FolderBusyError
from caaspp_cli.fsutil import PRIVATE_FILE_MODE, prepare_output_dir

FOLDER_LOCK_NAME: Final = ".caaspp.lock"
_HOLDER_MAX: Final = 512


class FolderLock:
    """An exclusive lock on ``lock_path``, held by this process for ``command``."""

    def __init__(self, lock_path: Path, command: str, *, what: str = "folder") -> None:
        self.path = lock_path
        prepare_output_dir(lock_path.parent, what)
        self._fd: int | None = None
        while self._fd is None:
            fd = self._open(what)
            try:
                _lock_fd(fd)
            except OSError:
                os.close(fd)
                holder = _read_holder(lock_path)
                raise FolderBusyError(
                    f"the {what} {lock_path.parent} is in use by {holder or 'another caaspp run'}.",
                    hint="wait for that run to finish, or stop it, then run this command "
                    "again: two runs at once would write the same files twice.",
                ) from None
            if _same_file(fd, lock_path):
                self._fd = fd
            else:  # its holder removed it as we opened it: lock the file that is there now
                os.close(fd)
        self._write_holder(command)

    def _open(self, what: str) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            return os.open(self.path, flags, PRIVATE_FILE_MODE)
        except OSError as exc:
            raise BadInputError(
                f"the lock file {self.path} cannot be opened ({exc.strerror or exc}).",
                hint=f"caaspp keeps a lock file in the {what} it writes: choose one you may "
                "write in.",
            ) from None

    @classmethod
    def for_folder(cls, folder: Path, command: str) -> Self:
        return cls(folder / FOLDER_LOCK_NAME, command)

    @classmethod
    def for_file(cls, file: Path, command: str, what: str) -> Self:
        """A lock for one file (the password sheet), kept beside it."""
        return cls(file.parent / f".{file.name}.caaspp.lock", command, what=f"folder of the {what}")

    def _write_holder(self, command: str) -> None:
        # Where the lock lives; on Windows the locked first byte must stay, so the text
        # starts after it. Only what helps a colleague find the run: no path, no data.
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        text = f" caaspp {command} (PID {os.getpid()}) since {since}"
        assert self._fd is not None
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.write(self._fd, text.encode("utf-8"))
            os.lseek(self._fd, 0, os.SEEK_SET)

    def release(self) -> None:
        if self._fd is not None:
            # Removed while still held, so that a clean run leaves no lock file; a run that
            # opened it meanwhile sees it gone and takes the new one (see __init__). Windows
            # cannot remove an open file: there it stays, and only says who held it last.
            with contextlib.suppress(OSError):
                if _same_file(self._fd, self.path):
                    os.unlink(self.path)
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _read_holder(lock_path: Path) -> str:
    """Who holds the lock, as its holder wrote it; '' when unreadable (Windows keeps the
    locked byte from being read)."""
    try:
        with open(lock_path, "rb") as handle:
            handle.seek(1)
            text = handle.read(_HOLDER_MAX).decode("utf-8", "replace")
    except OSError:
        return ""
    text = "".join(char for char in text if char.isprintable()).strip()
    return text if text.startswith("caaspp ") else ""


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


__all__ = ["FOLDER_LOCK_NAME", "FolderBusyError", "FolderLock"]
