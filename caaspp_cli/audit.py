"""The audit log: one line for every run of every command, kept owner-only.

``data_dir()/audit.log`` is append-only and tab-separated. Every run of a command adds a
*run line* when it ends, however it ends (an error, Ctrl-C and bad usage included):

    2026-08-20T02:15:07+00:00<TAB>run<TAB>ana<TAB>deliver<TAB>exit 0<TAB>fetch_reports_new=12

time (UTC, ISO 8601), ``run``, who (the operating-system user), which command, its exit
code, and the counts the command reported (:func:`note_counts`): never a name, an SSID, a
value given to an option (it may hold either) or a secret.

Where the district asks for it (``CAASPP_AUDIT_STUDENTS=1``), ``caaspp fetch`` also adds a
*request line* per request for a student's reports, which names the student by SSID:

    2024-11-22T08:00:00+00:00<TAB>district<TAB>1234567890<TAB>saved<TAB>2 reports

time, profile, SSID, outcome, detail: "who asked ETS for whose reports, and when". The file
is 0600; a URL in a detail loses its query string (pre-signed links are bearer secrets).
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from caaspp_cli.errors import BadInputError
from caaspp_cli.fsutil import PRIVATE_FILE_MODE, append_private_line, ensure_private_dir
from caaspp_cli.paths import DATA_DIR_ENV, data_dir

AUDIT_FILE: Final = "audit.log"
STUDENTS_ENV: Final = "CAASPP_AUDIT_STUDENTS"
RUN: Final = "run"

_counts: dict[str, int] = {}
_PERSONAL: Final = re.compile(r"\d{10}|@")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_URL_QUERY = re.compile(r"(https?://[^\s?#]*)[?#]\S*", re.IGNORECASE)


def audit_path() -> Path:
    """The path of the audit log (in $CAASPP_DATA_DIR, else the user data dir)."""
    return data_dir() / AUDIT_FILE


def students_audited() -> bool:
    """Whether the district asked for a line per request naming the student."""
    return os.environ.get(STUDENTS_ENV, "").strip() in ("1", "yes", "true")


def record(
    profile: str, ssid: str, outcome: str, detail: str = "", *, when: datetime | None = None
) -> None:
    """Append one request line (time, profile, SSID, outcome, detail), if the district
    asked for them (:func:`students_audited`)."""
    if not students_audited():
        return
    moment = (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    fields = [moment, profile, ssid, outcome, _redact(detail)]
    path = audit_path()
    try:
        append_private_line(path, "\t".join(_one_field(value) for value in fields))
    except OSError as exc:
        raise _unwritable(path, exc) from None


def note_counts(counts: Mapping[str, int]) -> None:
    """The counts of the command running now, for its run line (numbers only)."""
    _counts.update({key: value for key, value in counts.items() if isinstance(value, int)})


def flat_counts(data: Mapping[str, Any], prefix: str = "") -> dict[str, int]:
    """The whole numbers of a command's JSON summary, nested keys joined with '_'; a key
    that could be personal (ten digits, an address) or a list is left out."""
    found: dict[str, int] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if _PERSONAL.search(name):
            continue
        if isinstance(value, Mapping):
            found.update(flat_counts(value, f"{name}_"))
        elif isinstance(value, int) and not isinstance(value, bool) and value:
            found[name] = value
    return found


def start_run() -> None:
    _counts.clear()


def record_run(command: str, exit_code: int, *, when: datetime | None = None) -> None:
    """Append the run line of a command that has ended (OSError if the log cannot be
    written: the caller says so, and the command's own outcome stands)."""
    moment = (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    counts = " ".join(
        f"{_one_field(key).replace(' ', '_')}={value}" for key, value in sorted(_counts.items())
    )
    fields = [moment, RUN, _user(), command, f"exit {exit_code}", counts]
    append_private_line(audit_path(), "\t".join(_one_field(value) for value in fields))
    _counts.clear()


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


def check_writable() -> None:
    """BadInputError now if the audit log cannot be written, so that no request to ETS
    goes unrecorded."""
    path = audit_path()
    try:
        ensure_private_dir(path.parent)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE))
    except OSError as exc:
        raise _unwritable(path, exc) from None


def _unwritable(path: Path, exc: OSError) -> BadInputError:
    return BadInputError(
        f"caaspp cannot write its audit log {path} ({exc.strerror or exc}).",
        hint=f"set {DATA_DIR_ENV} to a folder you may write in.",
    )


def _one_field(value: str) -> str:
    # A tab, newline or escape sequence in a value must not forge or split a line.
    return _CONTROL.sub(" ", value).strip()


def _redact(detail: str) -> str:
    return _URL_QUERY.sub(r"\1?<hidden>", detail)
