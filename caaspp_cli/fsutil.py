"""Owner-only files and folders, written atomically.

Score reports and everything about them are children's personal data: every file caaspp
writes is 0600 and every folder it creates 0700, and a file appears under its final name
only once it is complete (write to a temp file in the same folder, fsync, rename).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath
from typing import BinaryIO

from caaspp_cli.errors import BadInputError, FileHeldError, LinkRefusedError

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
TEMP_PREFIX = ".caaspp-"
TEMP_SUFFIX = ".part"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as owner-only folders; leave existing ones be.

    An existing folder is the user's choice (their home, a share): we do not change its mode.
    The path is made absolute and its ``..`` resolved first: walked as text, ``a/new/../../b``
    would have counted the existing ``a`` and ``.`` among the folders to create.
    """
    missing: list[Path] = []
    current = Path(os.path.realpath(path))
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours to chmod
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


# Windows errors of a file another program holds open: access denied, sharing violation,
# lock violation. An indexer or an antivirus scanner lets go within a second; Excel or a
# PDF reader holds the file until it is closed there.
_HELD_WINERRORS = frozenset({5, 32, 33})
HELD_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4)
HELD_HINT = "close it there (Excel, a PDF reader), then run the same command again."


def held_by_another_program(exc: OSError) -> bool:
    """True for the error Windows gives when another program has the file open."""
    return isinstance(exc, PermissionError) and getattr(exc, "winerror", None) in _HELD_WINERRORS


def replace_into_place(
    temp: Path, target: Path, *, sleep: Callable[[float], None] = time.sleep
) -> None:
    """``os.replace(temp, target)``, waiting briefly while another program holds ``target``
    (Windows), then FileHeldError naming it; ``temp`` is left for the caller to remove."""
    for delay in (*HELD_RETRY_DELAYS, None):
        try:
            os.replace(temp, target)
            return
        except PermissionError as exc:
            if not held_by_another_program(exc):
                raise
            if delay is None:
                raise FileHeldError(
                    f"{target} is open in another program, so caaspp cannot replace it.",
                    hint=HELD_HINT,
                ) from None
            sleep(delay)


def make_private(path: Path) -> None:
    os.chmod(path, PRIVATE_FILE_MODE)


def _private_temp(folder: Path) -> tuple[int, Path]:
    """(open fd, path) of a new owner-only temp file in ``folder``, named so that
    :func:`sweep_temp_files` finds it if the run is killed."""
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    try:
        os.chmod(name, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    return fd, Path(name)


def private_temp_path(folder: Path) -> Path:
    """A new, empty, owner-only temp file in ``folder``, for a writer that takes a path
    (qpdf) rather than a handle. The caller owns it: :func:`fsync_file` once written,
    then :func:`replace_into_place` (and :func:`fsync_dir`), or remove it."""
    fd, path = _private_temp(folder)
    os.close(fd)
    return path


@contextlib.contextmanager
def scratch_file(folder: Path) -> Iterator[Path]:
    """A private temp file in ``folder`` for the time of the ``with``, removed on exit."""
    path = private_temp_path(folder)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def fsync_file(path: Path) -> None:
    """Flush a file that another writer (qpdf) wrote by path to the disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make the renames done in ``folder`` durable (POSIX); elsewhere, or if the file system
    refuses, the rename must do."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_private_file(target: Path) -> Iterator[BinaryIO]:
    """A private temp file beside ``target``, opened for binary writing; on success it is
    fsynced, renamed into place, and the folder fsynced.

    On any exception (or interruption) the temp file is removed and ``target`` is untouched.
    """
    ensure_private_dir(target.parent)
    fd, temp = _private_temp(target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        replace_into_place(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_dir(target.parent)


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


# --- Links -----------------------------------------------------------------------------------
# Nothing caaspp reads, adopts, writes or appends under an output folder may follow a link: a
# link planted at a report's name could hand over another child's report, and a linked folder
# could send reports outside the folder. The folder given itself may be a link (the user's
# choice); what lies under it may not.
O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)  # 0 on Windows: links are checked by lstat
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
_REPARSE_POINT: int = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0x400)
# The reparse points that lead elsewhere: symbolic links and junctions (mount points).
# Others are plain files to the user, OneDrive's on-demand files among them.
_LINK_REPARSE_TAGS: frozenset[int] = frozenset(
    {
        getattr(stat, "IO_REPARSE_TAG_SYMLINK", 0xA000000C),
        getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", 0xA0000003),
    }
)
# openat-style walking (each folder opened relative to its parent, O_NOFOLLOW) where the OS
# has it, so a folder swapped for a link between the check and the use is refused too.
_DIR_FD = (
    O_NOFOLLOW != 0
    and _O_DIRECTORY != 0
    and os.open in os.supports_dir_fd
    and os.mkdir in os.supports_dir_fd
)


_LINK_REPARSE_TAGS_ANY: int = next(iter(_LINK_REPARSE_TAGS))


def is_link_stat(info: os.stat_result) -> bool:
    """True for the lstat of a symbolic link, or of a Windows junction."""
    if stat.S_ISLNK(info.st_mode):
        return True
    if not getattr(info, "st_file_attributes", 0) & _REPARSE_POINT:
        return False
    # A reparse point whose kind is not known (no st_reparse_tag) is taken as a link.
    return getattr(info, "st_reparse_tag", _LINK_REPARSE_TAGS_ANY) in _LINK_REPARSE_TAGS


def refuse_link(path: Path) -> None:
    """LinkRefusedError if ``path`` is a link; nothing if it is anything else or missing."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if is_link_stat(info):
        raise LinkRefusedError(path)


def private_dirs_within(root: Path, relative: PurePath) -> Path:
    """``root / relative`` as a folder, its missing folders created owner-only, none of
    the folders from ``root`` down being a link (LinkRefusedError naming it otherwise).

    ``root`` itself is not checked (the user chose it). Each folder is opened relative to
    its parent with O_NOFOLLOW where the OS allows, so a folder swapped for a link during
    the walk is refused as well.
    """
    ensure_private_dir(root)
    current = root
    if not _DIR_FD:
        for part in relative.parts:
            current = current / part
            try:
                os.mkdir(current, PRIVATE_DIR_MODE)
            except FileExistsError:
                refuse_link(current)
                if not current.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(current)) from None
            else:
                os.chmod(current, PRIVATE_DIR_MODE)
        return current
    fd = os.open(root, os.O_RDONLY | _O_DIRECTORY)
    try:
        for part in relative.parts:
            current = current / part
            created = True
            try:
                os.mkdir(part, PRIVATE_DIR_MODE, dir_fd=fd)
            except FileExistsError:
                created = False
            try:
                child = os.open(part, os.O_RDONLY | _O_DIRECTORY | O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP or (
                    exc.errno == errno.ENOTDIR and is_link_stat(os.lstat(part, dir_fd=fd))
                ):
                    raise LinkRefusedError(current) from None
                raise
            os.close(fd)
            fd = child
            if created:
                os.fchmod(fd, PRIVATE_DIR_MODE)
    finally:
        os.close(fd)
    return current


def no_links_within(root: Path, path: Path) -> None:
    """LinkRefusedError if ``path`` or any folder between ``root`` and it is a link.

    Missing components are fine (nothing is created); ``root`` itself is not checked.
    """
    relative = path.relative_to(root)
    current = root
    for part in relative.parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return
        if is_link_stat(info):
            raise LinkRefusedError(current)


def open_nofollow(path: Path, flags: int, mode: int = PRIVATE_FILE_MODE) -> int:
    """``os.open`` that refuses a link at ``path`` (LinkRefusedError), by O_NOFOLLOW where
    the OS has it and by lstat first everywhere."""
    refuse_link(path)
    try:
        return os.open(path, flags | O_NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefusedError(path) from None
        raise


def append_private_line_nofollow(target: Path, line: str) -> None:
    """:func:`append_private_line`, refusing a ``target`` that is a link."""
    ensure_private_dir(target.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
    fd = open_nofollow(target, flags)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
    finally:
        os.close(fd)
