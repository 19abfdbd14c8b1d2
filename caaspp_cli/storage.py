"""Where a folder really lives: a local disk, a network share, or a folder a sync client
copies elsewhere.

caaspp keeps its ledgers in SQLite with a write-ahead log, which needs the shared memory
and byte-range locks of a local file system: on a network share (SMB, NFS) locks may be
ignored and a ledger can be damaged, and a sync client (OneDrive, Dropbox, Google Drive,
iCloud) may upload or restore a ledger or a report behind caaspp's back, or keep a
student's report in a cloud account. Neither is refused (districts do keep data on
shares), but the user is told, once, at the start of a run.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path, PureWindowsPath

# Folder names sync clients create, matched at the start of any component of the path.
_SYNC_FOLDER_NAMES = (
    "onedrive",
    "dropbox",
    "google drive",
    "googledrive",
    "icloud drive",
    "icloud~",
    "box sync",
    "my drive",
)
# Environment variables the OneDrive client sets to its folders on Windows.
_SYNC_ENVIRONMENT = ("OneDrive", "OneDriveCommercial", "OneDriveConsumer")
_NETWORK_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "fuse.sshfs",
        "davfs",
        "fuse.rclone",
        "lustre",
        "gpfs",
    }
)
_DRIVE_REMOTE = 4  # GetDriveTypeW


def storage_warning(folder: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """One sentence to show when ``folder`` is on a network share or in a synced folder."""
    env = os.environ if environ is None else environ
    path = Path(os.path.abspath(folder))
    synced = synced_by(path, env)
    if synced:
        return (
            f"{folder} is inside a folder {synced} keeps in sync: it may upload students' "
            "reports to a cloud account, and restore or lock caaspp's ledger while a run "
            "writes it. Keep caaspp's folders on a local disk outside synced folders."
        )
    if on_network_share(path):
        return (
            f"{folder} is on a network share: SQLite's locks, which keep caaspp's ledger "
            "whole, are not reliable there. Keep caaspp's folders on a local disk, and copy "
            "the results to the share afterwards."
        )
    return None


def synced_by(path: Path, environ: Mapping[str, str]) -> str | None:
    """The sync client whose folder holds ``path``, or None."""
    text = os.path.normcase(str(path))
    for name in _SYNC_ENVIRONMENT:
        root = environ.get(name, "").strip()
        if root:
            root_text = os.path.normcase(os.path.abspath(root))
            if text == root_text or text.startswith(root_text.rstrip("\\/") + os.sep):
                return "OneDrive"
    for part in path.parts:
        lowered = part.lower()
        for marker in _SYNC_FOLDER_NAMES:
            if lowered == marker or lowered.startswith((marker + " - ", marker + "-")):
                return _client_name(marker)
    return None


def _client_name(marker: str) -> str:
    names = {"onedrive": "OneDrive", "dropbox": "Dropbox", "box sync": "Box"}
    if marker.startswith("icloud"):
        return "iCloud Drive"
    if marker in ("google drive", "googledrive", "my drive"):
        return "Google Drive"
    return names.get(marker, marker)


def on_network_share(path: Path) -> bool:
    if sys.platform == "win32":
        return _windows_remote(path)
    return _mount_type(path, _mount_table()) in _NETWORK_FS_TYPES


def _windows_remote(path: Path) -> bool:
    windows = PureWindowsPath(str(path))
    if windows.drive.startswith("\\\\"):  # \\server\share
        return True
    try:
        kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined,unused-ignore]
        return bool(kernel32.GetDriveTypeW(windows.drive + "\\") == _DRIVE_REMOTE)
    except (AttributeError, OSError):
        return False


def _mount_table() -> list[tuple[str, str]]:
    """(mount point, file system type) of every mount, from /proc/self/mounts; [] elsewhere."""
    try:
        text = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            # Spaces and other characters in mount points are octal escapes there.
            point = fields[1].encode().decode("unicode_escape")
            mounts.append((point, fields[2]))
    return mounts


def _mount_type(path: Path, mounts: Iterable[tuple[str, str]]) -> str | None:
    """The file system type of the longest mount point that holds ``path``."""
    best, kind = -1, None
    text = str(path)
    for point, fs_type in mounts:
        inside = text == point or text.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, kind = len(point), fs_type
    return kind
