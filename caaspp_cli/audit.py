"""The audit log: one line per request for a student's reports, kept owner-only.

``data_dir()/audit.log`` is append-only and tab-separated:

    2024-11-22T08:00:00+00:00<TAB>district<TAB>1234567890<TAB>saved<TAB>2 reports

time (UTC, ISO 8601), profile, SSID, outcome, detail. It answers "who asked ETS for whose
reports, and when". SSIDs are personal data, so the file is 0600; it never holds a secret:
a URL in the detail loses its query string (pre-signed links are bearer secrets).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from caaspp_cli.errors import BadInputError
from caaspp_cli.fsutil import PRIVATE_FILE_MODE, append_private_line, ensure_private_dir
from caaspp_cli.paths import DATA_DIR_ENV, data_dir

AUDIT_FILE: Final = "audit.log"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_URL_QUERY = re.compile(r"(https?://[^\s?#]*)[?#]\S*", re.IGNORECASE)


def audit_path() -> Path:
    """The path of the audit log (in $CAASPP_DATA_DIR, else the user data dir)."""
    return data_dir() / AUDIT_FILE


def record(
    profile: str, ssid: str, outcome: str, detail: str = "", *, when: datetime | None = None
) -> None:
    """Append one line for one request: time, profile, SSID, outcome and an optional detail."""
    moment = (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    fields = [moment, profile, ssid, outcome, _redact(detail)]
    path = audit_path()
    try:
        append_private_line(path, "\t".join(_one_field(value) for value in fields))
    except OSError as exc:
        raise _unwritable(path, exc) from None


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
