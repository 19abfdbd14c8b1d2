"""Deleting the score reports of a folder once they have been distributed.

``caaspp purge DIR`` removes the PDFs under DIR (downloaded by ``caaspp fetch`` or ``caaspp
bulk``, split by ``caaspp split``, or protected by ``caaspp protect``), the messages a
``caaspp send --dry-run`` wrote into its outbox (the password's message holds the
password), and the temp files a killed run left there, and, when asked, the password
sheet; the manifest, the ledgers and the send report stay, so what was fetched and sent
remains on record. It is how a district honours "do not persist SSR files locally" after
delivery.

What it will not do
-------------------
- Follow a symbolic link: links are neither followed nor removed, so nothing outside DIR
  is ever reached.
- Work on the file system's root, the home folder or a folder above it (``--force`` does
  not change that), nor, without ``--force``, on a folder that caaspp did not write: DIR
  must hold a bulk ledger or a manifest (``caaspp bulk``, ``caaspp split``), a send ledger
  or a send report (``caaspp send``, its dry run's outbox too), or be named by the password
  sheet given with ``--passwords`` (a ``caaspp protect`` --out folder no send has used yet),
  or hold nothing but reports named as caaspp names them (a ``caaspp fetch`` --out folder).
- Delete, without ``--force``, a protected report that is not recorded as delivered: in a
  folder of ``caaspp protect`` (DIR or a folder under it that ``caaspp send`` used), each
  PDF's student must have both messages recorded as accepted in the send ledger; if one
  has not, nothing is deleted (exit 3) and the counts are given. The password sheet is
  held to the same rule for every report of the folder, newer ones included. The
  unprotected reports of ``caaspp bulk`` and ``caaspp split`` cannot be checked (what was
  sent is recorded beside their protected copies): they are purged as asked, and the
  confirmation says it could not check them.
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
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final

from caaspp_cli.artifacts import (
    BULK_LEDGER_NAME,
    MANIFEST_NAME,
    OUTBOX_MESSAGE_NAME,
    REPORT_NAME,
    SEND_LEDGER_NAME,
    SEND_REPORT_NAME,
    PasswordSheet,
    neutralize_cell,
    ssid_of_file_name,
)
from caaspp_cli.errors import BadInputError, PurgeLogError, UndeliveredError
from caaspp_cli.fsutil import append_private_line_nofollow, is_temp_name, refuse_link
from caaspp_cli.send.ledger import ACCEPTED, PASSWORD, REPORT
from caaspp_cli.words import plural

log = logging.getLogger(__name__)

PURGE_LOG: Final = "purge.log"
SECONDS_PER_DAY: Final = 86_400
# What caaspp writes into a folder it owns: bulk's (and split's) ledger and manifest, send's
# ledger and report (send writes into the --out folder of `caaspp protect`). A protect folder
# no send has used is known by the password sheet that names its files.
UNPROTECTED_MARKERS: Final = (BULK_LEDGER_NAME, MANIFEST_NAME)
SEND_MARKERS: Final = (SEND_LEDGER_NAME, SEND_REPORT_NAME)
FOLDER_MARKERS: Final = (*UNPROTECTED_MARKERS, *SEND_MARKERS)


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
    messages: list[PurgeFile] = field(default_factory=list)  # a dry run's outbox messages
    password_file: PurgeFile | None = None
    older_than_days: float | None = None
    kept_newer: int = 0  # PDFs (and temp files) younger than --older-than
    password_file_kept: bool = False  # given, but younger than --older-than
    links_skipped: int = 0  # symbolic links named like a report: never followed or removed
    # Delivery, in folders of `caaspp protect`: reports whose student is not recorded as
    # sent both messages, and those students (a report of no known student counts as one).
    undelivered_reports: int = 0
    undelivered_families: int = 0
    checked_reports: int = 0  # reports in protect folders (planned, or all with the sheet)
    checked_families: int = 0
    send_report: Path | None = None  # where to see which families (send-report.csv)
    never_sent: bool = False  # a protect folder no `caaspp send` has used
    unchecked: int = 0  # planned PDFs of bulk/split folders: delivery cannot be checked
    forced: bool = False

    @property
    def files(self) -> list[PurgeFile]:
        return [*self.pdfs, *self.messages, *self.temps]

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
    messages_removed: int = 0  # a dry run's outbox messages
    bytes_removed: int = 0  # of the PDFs and temp files
    password_file_removed: Path | None = None
    kept_newer: int = 0
    password_file_kept: bool = False
    links_skipped: int = 0
    older_than_days: float | None = None
    undelivered_forced: int = 0  # reports removed with --force though not recorded as sent
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path in DIR, reason)
    log: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        """For --json: counts and paths of the folder and the sheet, no report's name."""
        return {
            "folder": str(self.folder),
            "pdfs_removed": self.pdfs_removed,
            "temp_files_removed": self.temps_removed,
            "outbox_messages_removed": self.messages_removed,
            "bytes_removed": self.bytes_removed,
            "password_file_removed": (
                str(self.password_file_removed) if self.password_file_removed else None
            ),
            "older_than_days": self.older_than_days,
            "kept_newer": self.kept_newer,
            "password_file_kept": self.password_file_kept,
            "links_skipped": self.links_skipped,
            "undelivered_removed": self.undelivered_forced,
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
    sheet = _checked_password_file(password_file) if password_file is not None else None
    root = _checked_folder(folder, force, sheet)
    # The log is appended to after the files are gone: a link there is refused before.
    refuse_link(root / PURGE_LOG)
    cutoff = None
    if older_than_days is not None:
        cutoff = (time.time() if now is None else now) - older_than_days * SECONDS_PER_DAY
    plan = PurgePlan(root, older_than_days=older_than_days, forced=force)
    # The protect folder each folder belongs to (it, or the nearest above that send used),
    # or None for a bulk or split folder; the root is one when the sheet names its files.
    send_folder: dict[Path, Path | None] = {}
    # A manifest or a bulk ledger makes it a bulk or split folder: protect writes neither.
    protect_root = (
        sheet is not None
        and not any((root / marker).exists() for marker in UNPROTECTED_MARKERS)
        and _is_protect_folder(root, sheet[1])
    )
    checks: list[tuple[Path, Path, bool]] = []  # (PDF, its protect folder, planned)
    for current, _dirs, names in os.walk(root, followlinks=False):
        here = Path(current)
        if any(marker in names for marker in SEND_MARKERS) or (here == root and protect_root):
            send_folder[here] = here
        else:
            send_folder[here] = None if here == root else send_folder.get(here.parent)
        outbox = SEND_REPORT_NAME in names
        for name in sorted(names):
            temp = is_temp_name(name)
            message = outbox and OUTBOX_MESSAGE_NAME.match(name) is not None
            if not (temp or message or name.lower().endswith(".pdf")):
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
            planned = cutoff is None or info.st_mtime < cutoff
            if message:
                if planned:
                    plan.messages.append(PurgeFile(path, info.st_size, info.st_mtime))
                else:
                    plan.kept_newer += 1
                continue
            owner = send_folder[here]
            if not temp and owner is not None:
                checks.append((path, owner, planned))
            elif not temp and planned:
                plan.unchecked += 1
            if not planned:
                plan.kept_newer += 1
                continue
            (plan.temps if temp else plan.pdfs).append(PurgeFile(path, info.st_size, info.st_mtime))
    if sheet is not None:
        if cutoff is not None and sheet[0].mtime >= cutoff:
            plan.password_file_kept = True
        else:
            plan.password_file = sheet[0]
    _check_delivery(plan, checks, sheet[1] if sheet is not None else None)
    return plan


def _check_delivery(
    plan: PurgePlan, checks: list[tuple[Path, Path, bool]], sheet: PasswordSheet | None
) -> None:
    """Count the reports of protect folders whose family is not recorded as sent; refuse
    (UndeliveredError) unless --force. With the password sheet going, every report of
    the folder counts, newer ones too: their families still need their password."""
    whole = plan.password_file is not None
    by_file = sheet.rows_by_file() if sheet is not None else {}
    delivered: dict[Path, tuple[set[str], set[str]]] = {}
    families: set[str] = set()
    undelivered: set[str] = set()
    for path, folder, planned in checks:
        if not (planned or whole):
            continue
        if folder not in delivered:
            delivered[folder] = _delivered(folder, plan.forced)
            if (folder / SEND_REPORT_NAME).is_file() and plan.send_report is None:
                plan.send_report = folder / SEND_REPORT_NAME
            if not any((folder / marker).exists() for marker in SEND_MARKERS):
                plan.never_sent = True
        relative = path.relative_to(folder).as_posix()
        row = by_file.get(neutralize_cell(relative))
        family = (
            (row.ssid if row is not None and row.ssid else None)
            or ssid_of_file_name(path.name)
            or f"file:{path}"
        )
        plan.checked_reports += 1
        families.add(family)
        families_sent, files_sent = delivered[folder]
        if family not in families_sent and relative not in files_sent:
            plan.undelivered_reports += 1
            undelivered.add(family)
    plan.checked_families = len(families)
    plan.undelivered_families = len(undelivered)
    if plan.undelivered_reports and not plan.forced:
        raise _undelivered_error(plan)


def _undelivered_error(plan: PurgePlan) -> UndeliveredError:
    reports = plan.undelivered_reports
    if plan.never_sent and plan.send_report is None:
        return UndeliveredError(
            f"nothing deleted: no `caaspp send` has run in {plan.folder}, so none of its "
            f"{reports} reports ({plan.undelivered_families} families) is recorded as "
            "delivered.",
            hint=f"send them first (`caaspp send --pdfs {plan.folder} ...`), or pass --force "
            "if they reached the families another way.",
        )
    where = (
        f"{plan.send_report} lists each family's outcome"
        if plan.send_report is not None
        else f"the send ledger in {plan.folder} records what was sent"
    )
    return UndeliveredError(
        f"nothing deleted: {plan.undelivered_families} of {plan.checked_families} families "
        f"({reports} of {plan.checked_reports} reports) in {plan.folder} are not recorded as "
        "having been sent both their reports and their password.",
        hint=f"{where}; `caaspp send` again sends only what is missing. Pass --force if they "
        "reached the families another way.",
    )


def _is_protect_folder(root: Path, sheet: PasswordSheet) -> bool:
    """Whether the password sheet names a plain file in ``root``: its protect --out folder."""
    for row in sheet.rows:
        file = row.file[1:] if row.file[:1] == "'" and row.file[1:2] in "=+-@\t\r" else row.file
        parts = PurePosixPath(file.replace("\\", "/")).parts
        if not parts or ".." in parts or PurePosixPath(file).is_absolute():
            continue
        try:
            if stat.S_ISREG(root.joinpath(*parts).lstat().st_mode):
                return True
        except OSError:
            continue
    return False


def _delivered(folder: Path, force: bool) -> tuple[set[str], set[str]]:
    """What the folder's send ledger records as delivered, read only: the files of every
    pair of messages accepted whole, and the students of such pairs recorded before the
    ledger named a pair's files (all their reports then went in it)."""
    path = folder / SEND_LEDGER_NAME
    try:
        info = path.lstat()
    except OSError:
        return set(), set()
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return set(), set()
    try:
        # Read only. With no write-ahead log left (a run that ended cleanly), immutable: no
        # journal file is created beside it; a log left by a killed run is read as well.
        wal = Path(f"{path}-wal").exists()
        mode = "mode=ro" if wal else "mode=ro&immutable=1"
        db = sqlite3.connect(f"{path.as_uri()}?{mode}", uri=True)
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
            if "pair" in columns:
                rows = db.execute(
                    "SELECT r.ssid, r.files FROM messages r JOIN messages p ON p.ssid = r.ssid "
                    "AND p.pair = r.pair AND p.kind = ? WHERE r.kind = ? AND r.status = ? "
                    "AND p.status = ?",
                    (PASSWORD, REPORT, ACCEPTED, ACCEPTED),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT ssid, '' FROM messages WHERE kind=? AND status=? INTERSECT "
                    "SELECT ssid, '' FROM messages WHERE kind=? AND status=?",
                    (REPORT, ACCEPTED, PASSWORD, ACCEPTED),
                ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        if force:
            return set(), set()
        raise BadInputError(
            f"the send ledger {path} cannot be read ({exc}), so caaspp cannot tell which "
            "reports were delivered; nothing deleted.",
            hint="check the folder; pass --force if every family has its reports.",
        ) from None
    families: set[str] = set()
    files: set[str] = set()
    for ssid, joined in rows:
        names = [name for name in joined.split("; ") if name]
        if names:
            files.update(names)
        else:
            families.add(ssid)
    return families, files


def purge(plan: PurgePlan) -> PurgeSummary:
    """Remove what ``plan`` lists, and append a line to the folder's purge log."""
    from caaspp_cli.folderlock import FolderLock

    # A purge while bulk or protect writes the folder would remove files they then record.
    with FolderLock.for_folder(plan.folder, "purge"):
        return _purge_locked(plan)


def _purge_locked(plan: PurgePlan) -> PurgeSummary:
    summary = PurgeSummary(
        plan.folder,
        undelivered_forced=plan.undelivered_reports,
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
        elif OUTBOX_MESSAGE_NAME.match(item.path.name):
            summary.messages_removed += 1
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
        or summary.messages_removed
        or summary.password_file_removed
        or (summary.failed)
    ):
        summary.log = plan.folder / PURGE_LOG
        try:
            append_private_line_nofollow(summary.log, _log_line(summary))
        except OSError as exc:
            removed = summary.pdfs_removed + summary.temps_removed + summary.messages_removed
            raise PurgeLogError(
                f"removed {plural(removed, 'file')} and could not remove "
                f"{len(summary.failed)}, but "
                f"the log {summary.log} cannot be written ({exc.strerror or exc}).",
                hint="make the folder and its purge.log writable, then run the same purge "
                "again: it lists the files still there.",
            ) from None
    return summary


# --- Checks ----------------------------------------------------------------------------------
def _checked_folder(
    folder: Path, force: bool, sheet: tuple[PurgeFile, PasswordSheet] | None = None
) -> Path:
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
    if (
        not force
        and not any((root / marker).exists() for marker in FOLDER_MARKERS)
        and not (sheet is not None and _is_protect_folder(root, sheet[1]))
        and not _is_fetch_folder(root)
    ):
        named = " and the password sheet names none of its files" if sheet is not None else ""
        raise BadInputError(
            f"{folder} holds no caaspp ledger, manifest or send report{named}, so it does not "
            "look like a folder caaspp wrote; caaspp purge deletes every PDF under the folder "
            "it is given, and will not guess.",
            hint="for a `caaspp protect` --out folder, give its password sheet with "
            "--passwords; pass --force if you are sure of the folder.",
        )
    return root


def _is_fetch_folder(root: Path) -> bool:
    """A folder of `caaspp fetch`: nothing in it but unprotected report files named as
    caaspp names them (and caaspp's own hidden files), at least one. A protected copy
    there makes it a `caaspp protect` folder, which its password sheet names."""
    import pikepdf

    reports: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return False
    for entry in entries:
        if entry.name.startswith(".caaspp"):
            continue
        if not entry.is_file(follow_symlinks=False) or not REPORT_NAME.match(entry.name):
            return False
        reports.append(Path(entry.path))
    for path in reports:
        try:
            with pikepdf.open(path):
                pass
        except pikepdf.PasswordError:
            return False
        except (OSError, pikepdf.PdfError):
            continue  # a damaged download is still a download
    return bool(reports)


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError, OSError):  # no home folder known
        return None


def _checked_password_file(path: Path) -> tuple[PurgeFile, PasswordSheet]:
    if path.is_symlink():
        raise BadInputError(
            f"the password file {path} is a symbolic link; it is not followed.",
            hint="give the password file itself.",
        )
    if not path.is_file():
        raise BadInputError(f"the password file {path} does not exist or is not a file.")
    sheet = PasswordSheet(path)  # a BadInputError if it is not one: no other file is deleted
    info = path.stat()
    return PurgeFile(path, info.st_size, info.st_mtime), sheet


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
    if summary.messages_removed:
        parts.append(f"{summary.messages_removed} dry-run outbox message(s) removed")
    if summary.older_than_days is not None:
        parts.append(
            f"older than {summary.older_than_days:g} day(s); {summary.kept_newer} newer kept"
        )
    if summary.password_file_removed is not None:
        parts.append(f"password file {summary.password_file_removed} removed")
    elif summary.password_file_kept:
        parts.append("password file kept (newer)")
    if summary.undelivered_forced:
        parts.append(f"{summary.undelivered_forced} not recorded as delivered (--force)")
    if summary.failed:
        parts.append(f"{len(summary.failed)} could not be removed")
    # A line break in a path must not split the record.
    return " ".join(f"{moment}\tpurge\t{'; '.join(parts)}".splitlines())


__all__ = [
    "PURGE_LOG",
    "PurgeFile",
    "PurgePlan",
    "PurgeSummary",
    "UndeliveredError",
    "plan_purge",
    "purge",
]
