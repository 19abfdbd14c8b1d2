"""Deleting the score reports of a folder once they have been distributed.

``caaspp purge DIR`` removes the PDFs under DIR (downloaded by ``caaspp bulk`` or protected
by ``caaspp protect``) and the temp files a killed run left there, and, when asked, the
password sheet; the manifest, the ledgers and the send report stay, so what was fetched
and sent remains on record. It is how a district honours "do not persist SSR files
locally" after delivery.

What it will not do
-------------------
- Follow a symbolic link: links are neither followed nor removed, so nothing outside DIR
  is ever reached.
- Work on the file system's root, the home folder or a folder above it (``--force`` does
  not change that), nor, without ``--force``, on a folder that caaspp did not write: DIR
  must hold a bulk ledger, a send ledger, a manifest or a send report.
- Shred. Overwriting a file before unlinking it does not reach its old blocks on SSDs,
  copy-on-write and journaling file systems: reports belong on encrypted storage, where
  deleted blocks are unreadable without the key.

Each purge that removes something appends one line to ``purge.log`` in DIR: when, how
many files and bytes, and whether the password sheet went. File names, which carry
SSIDs, are not logged.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from caaspp_cli.bulk import MANIFEST_NAME
from caaspp_cli.errors import BadInputError, CaasppError, ExitCode
from caaspp_cli.fsutil import append_private_line_nofollow, is_temp_name, refuse_link
from caaspp_cli.ledger import LEDGER_NAME, SEND_LEDGER_NAME
from caaspp_cli.mail import REPORT_FILE

log = logging.getLogger(__name__)

PURGE_LOG: Final = "purge.log"
SECONDS_PER_DAY: Final = 86_400
# What caaspp writes into a folder it owns: bulk's ledger and manifest, send's ledger and
# report (send writes into the --out folder of `caaspp protect`).
FOLDER_MARKERS: Final = (LEDGER_NAME, MANIFEST_NAME, SEND_LEDGER_NAME, REPORT_FILE)


@dataclass(frozen=True, slots=True)
class PurgeFile:
    path: Path
    size: int
    mtime: float


@dataclass
class PurgePlan:
    """What a purge would remove, found by :func:`plan_purge`; nothing is removed yet."""

    folder: Path
    pdfs: list[PurgeFile] = field(default_factory=list)
    temps: list[PurgeFile] = field(default_factory=list)
    password_file: PurgeFile | None = None
    older_than_days: float | None = None
    kept_newer: int = 0  # PDFs (and temp files) younger than --older-than
    password_file_kept: bool = False  # given, but younger than --older-than
    links_skipped: int = 0  # symbolic links named like a report: never followed or removed

    @property
    def files(self) -> list[PurgeFile]:
        return [*self.pdfs, *self.temps]

    @property
    def pdf_bytes(self) -> int:
        return sum(f.size for f in self.pdfs)

    @property
    def oldest(self) -> float | None:
        return min((f.mtime for f in self.pdfs), default=None)

    @property
    def newest(self) -> float | None:
        return max((f.mtime for f in self.pdfs), default=None)

    @property
    def empty(self) -> bool:
        return not self.files and self.password_file is None


@dataclass
class PurgeSummary:
    folder: Path
    pdfs_removed: int = 0
    temps_removed: int = 0
    bytes_removed: int = 0  # of the PDFs and temp files
    password_file_removed: Path | None = None
    kept_newer: int = 0
    password_file_kept: bool = False
    links_skipped: int = 0
    older_than_days: float | None = None
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path in DIR, reason)
    log: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        """For --json: counts and paths of the folder and the sheet, no report's name."""
        return {
            "folder": str(self.folder),
            "pdfs_removed": self.pdfs_removed,
            "temp_files_removed": self.temps_removed,
            "bytes_removed": self.bytes_removed,
            "password_file_removed": (
                str(self.password_file_removed) if self.password_file_removed else None
            ),
            "older_than_days": self.older_than_days,
            "kept_newer": self.kept_newer,
            "password_file_kept": self.password_file_kept,
            "links_skipped": self.links_skipped,
            "failed": len(self.failed),
            "log": str(self.log) if self.log else None,
        }


def plan_purge(
    folder: Path,
    *,
    older_than_days: float | None = None,
    password_file: Path | None = None,
    force: bool = False,
    now: float | None = None,
) -> PurgePlan:
    """Check ``folder`` may be purged and list what would go; BadInputError if not."""
    if older_than_days is not None and older_than_days < 0:
        raise BadInputError("--older-than must be 0 or more days.")
    root = _checked_folder(folder, force)
    # The log is appended to after the files are gone: a link there is refused before.
    refuse_link(root / PURGE_LOG)
    cutoff = None
    if older_than_days is not None:
        cutoff = (time.time() if now is None else now) - older_than_days * SECONDS_PER_DAY
    plan = PurgePlan(root, older_than_days=older_than_days)
    for current, _dirs, names in os.walk(root, followlinks=False):
        for name in sorted(names):
            temp = is_temp_name(name)
            if not temp and not name.lower().endswith(".pdf"):
                continue
            path = Path(current, name)
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(info.st_mode):
                plan.links_skipped += 1
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if cutoff is not None and info.st_mtime >= cutoff:
                plan.kept_newer += 1
                continue
            (plan.temps if temp else plan.pdfs).append(PurgeFile(path, info.st_size, info.st_mtime))
    if password_file is not None:
        sheet = _checked_password_file(password_file)
        if cutoff is not None and sheet.mtime >= cutoff:
            plan.password_file_kept = True
        else:
            plan.password_file = sheet
    return plan


def purge(plan: PurgePlan) -> PurgeSummary:
    """Remove what ``plan`` lists, and append a line to the folder's purge log."""
    from caaspp_cli.folderlock import FolderLock

    # A purge while bulk or protect writes the folder would remove files they then record.
    with FolderLock.for_folder(plan.folder, "purge"):
        return _purge_locked(plan)


class PurgeLogError(CaasppError):
    """The purge happened, but its line in purge.log could not be written."""

    exit_code = ExitCode.FAILED


def _purge_locked(plan: PurgePlan) -> PurgeSummary:
    summary = PurgeSummary(
        plan.folder,
        kept_newer=plan.kept_newer,
        password_file_kept=plan.password_file_kept,
        links_skipped=plan.links_skipped,
        older_than_days=plan.older_than_days,
    )
    for item in plan.files:
        reason = _remove(item, plan.folder)
        if reason is not None:
            relative = item.path.relative_to(plan.folder).as_posix()
            log.debug("could not remove %s: %s", relative, reason)
            summary.failed.append((relative, reason))
            continue
        if is_temp_name(item.path.name):
            summary.temps_removed += 1
        else:
            summary.pdfs_removed += 1
        summary.bytes_removed += item.size
    if plan.password_file is not None:
        reason = _remove(plan.password_file, None)
        if reason is None:
            summary.password_file_removed = plan.password_file.path
        else:
            summary.failed.append((str(plan.password_file.path), reason))
    if (
        summary.pdfs_removed
        or summary.temps_removed
        or summary.password_file_removed
        or (summary.failed)
    ):
        summary.log = plan.folder / PURGE_LOG
        try:
            append_private_line_nofollow(summary.log, _log_line(summary))
        except OSError as exc:
            removed = summary.pdfs_removed + summary.temps_removed
            raise PurgeLogError(
                f"removed {removed} file(s) and could not remove {len(summary.failed)}, but "
                f"the log {summary.log} cannot be written ({exc.strerror or exc}).",
                hint="make the folder and its purge.log writable, then run the same purge "
                "again: it lists the files still there.",
            ) from None
    return summary


# --- Checks ----------------------------------------------------------------------------------
def _checked_folder(folder: Path, force: bool) -> Path:
    if not folder.exists():
        raise BadInputError(f"{folder} does not exist.")
    if not folder.is_dir():
        raise BadInputError(f"{folder} is not a folder.", hint="give the folder of the reports.")
    root = folder.resolve()
    home = _home()
    if root.parent == root or (home is not None and home.is_relative_to(root)):
        where = (
            "the root of the file system"
            if root.parent == root
            else ("your home folder" if root == home else "a folder holding your home folder")
        )
        raise BadInputError(
            f"{folder} is {where}: caaspp purge deletes every PDF under the folder it is "
            "given, and will not do that here.",
            hint="give the folder of the reports itself (the --out of `caaspp bulk` or "
            "`caaspp protect`).",
        )
    if not force and not any((root / marker).exists() for marker in FOLDER_MARKERS):
        raise BadInputError(
            f"{folder} holds no caaspp ledger, manifest or send report, so it does not look "
            "like a folder caaspp wrote; caaspp purge deletes every PDF under the folder it "
            "is given, and will not guess.",
            hint="check the folder. A `caaspp protect` --out folder whose reports were sent "
            "another way has none of those files: pass --force if you are sure.",
        )
    return root


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError, OSError):  # no home folder known
        return None


def _checked_password_file(path: Path) -> PurgeFile:
    from caaspp_cli.protect import PasswordSheet

    if path.is_symlink():
        raise BadInputError(
            f"the password file {path} is a symbolic link; it is not followed.",
            hint="give the password file itself.",
        )
    if not path.is_file():
        raise BadInputError(f"the password file {path} does not exist or is not a file.")
    PasswordSheet(path)  # a BadInputError if it is not one: an arbitrary file is not deleted
    info = path.stat()
    return PurgeFile(path, info.st_size, info.st_mtime)


# --- Removing --------------------------------------------------------------------------------
def _remove(item: PurgeFile, root: Path | None) -> str | None:
    """Unlink ``item``; None when done (or already gone), else why not."""
    try:
        info = item.path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return "it is no longer a plain file"
        # A folder swapped for a link since the plan was made must not lead out of DIR.
        if root is not None and not Path(os.path.realpath(item.path.parent)).is_relative_to(root):
            return "its folder now leads outside the folder being purged"
        item.path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _log_line(summary: PurgeSummary) -> str:
    moment = datetime.now(UTC).isoformat(timespec="seconds")
    parts = [
        f"removed {summary.pdfs_removed} PDF file(s) and {summary.temps_removed} temp "
        f"file(s), {summary.bytes_removed} bytes",
    ]
    if summary.older_than_days is not None:
        parts.append(
            f"older than {summary.older_than_days:g} day(s); {summary.kept_newer} newer kept"
        )
    if summary.password_file_removed is not None:
        parts.append(f"password file {summary.password_file_removed} removed")
    elif summary.password_file_kept:
        parts.append("password file kept (newer)")
    if summary.failed:
        parts.append(f"{len(summary.failed)} could not be removed")
    # A line break in a path must not split the record.
    return " ".join(f"{moment}\tpurge\t{'; '.join(parts)}".splitlines())


__all__ = ["PURGE_LOG", "PurgeFile", "PurgePlan", "PurgeSummary", "plan_purge", "purge"]
