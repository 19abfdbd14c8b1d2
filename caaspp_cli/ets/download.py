"""Saving one pre-signed link's PDF: complete, checked and owner-only, or not at all.

The body streams into a temp file beside the destination, is checked (PDF header and
trailer, content type, pikepdf opens it) and only then renamed into place. The client
(:mod:`caaspp_cli.ets.client`) decides what a refused or expired link means; this module
saves what one link serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import httpx

from caaspp_cli.errors import (
    CaasppError,
    EtsError,
    FileHeldError,
    InvalidReportError,
    ServiceConnectionError,
)
from caaspp_cli.ets import contract
from caaspp_cli.ets.contract import ReportEntry
from caaspp_cli.ets.failures import (
    BUSY_HINT,
    GiveUp,
    LinkRefused,
    Retry,
    status_retry,
    unexpected_status,
)
from caaspp_cli.ets.pdfcheck import PdfStream, is_pdf_content_type, verify_pdf_file
from caaspp_cli.ets.session import Session
from caaspp_cli.ets.urls import invalid_url_reason, is_secure_url, origin
from caaspp_cli.fsutil import (
    PRIVATE_FILE_MODE,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    fsync_dir,
    replace_into_place,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadResult:
    """A report saved under ``path``: its size and SHA-256, and the entry that served it."""

    path: Path
    size: int
    sha256: str
    entry: ReportEntry


def check_link(url: str) -> None:
    """EtsError when a listed link cannot be requested, or is not https://."""
    problem = contract.link_problem(url)
    if problem is not None:
        raise EtsError(
            f"the service gave a download link that cannot be used: {problem}.",
            hint="report this to the CDE/ETS help desk; the other reports go on.",
        )
    if not is_secure_url(url):
        raise EtsError(
            f"the service gave a download link that is not https:// ({origin(url)}); "
            "a child's report is never fetched unencrypted.",
            hint="report this to the CDE/ETS help desk.",
        )


def link_expired(entry: ReportEntry) -> bool:
    """True once the link's announced expiry has passed (unknown expiry: never)."""
    if entry.expires_at is None:
        return False
    expires_at = entry.expires_at
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return datetime.now(UTC) >= expires_at


async def save_report(
    session: Session, entry: ReportEntry, dest: Path, max_report_bytes: int
) -> DownloadResult:
    """One attempt at saving the PDF behind ``entry.url`` as ``dest``."""
    try:
        request = session.build_request("GET", entry.url)
    except httpx.InvalidURL as exc:
        raise EtsError(
            f"the service gave a download link that cannot be used: {invalid_url_reason(exc)}.",
            hint="report this to the CDE/ETS help desk; the other reports go on.",
        ) from None
    stream = PdfStream()
    temp: Path | None = None
    try:
        # Only a link that runs out while waiting for its turn is renewed before it is
        # sent: one already past its expiry by our clock is tried (clocks differ).
        fresh_now = not link_expired(entry)
        async with session.exchange(
            request, still_valid=lambda: not fresh_now or not link_expired(entry)
        ) as response:
            _check_response(response)
            fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=dest.parent)
            temp = Path(name)
            with os.fdopen(fd, "wb") as handle:
                os.chmod(temp, PRIVATE_FILE_MODE)
                await _stream_body(response, stream, handle, max_report_bytes)
                stream.finish()
                handle.flush()
                # Off the event loop: a disk flush must not stall every other transfer.
                await asyncio.to_thread(os.fsync, handle.fileno())
        # From here on nothing awaits: a cancellation cannot land between the checks
        # and the rename, so ``dest`` holds a complete report or nothing.
        verify_pdf_file(temp)
        # A report open in a PDF reader (Windows) is waited for at most a second, on
        # the loop itself: nothing may be awaited between the checks and the rename.
        replace_into_place(temp, dest)
    except InvalidReportError as exc:
        _remove(temp)
        raise Retry(exc) from exc.__cause__
    except GiveUp as give_up:
        _remove(temp)
        raise give_up.error from None
    except FileHeldError:
        _remove(temp)
        raise
    except OSError as exc:
        _remove(temp)
        raise CaasppError(
            f"could not save the report as {dest}: {exc.strerror or exc}.",
            hint="check the folder exists, is writable and has free space.",
        ) from exc
    except BaseException:
        _remove(temp)
        raise
    # The rename is made durable in the background: awaiting it here would let a
    # cancellation land after the file got its name but before the caller hears of it.
    asyncio.get_running_loop().run_in_executor(None, fsync_dir, dest.parent)
    log.debug("saved %d bytes to %s", stream.size, dest)
    return DownloadResult(path=dest, size=stream.size, sha256=stream.sha256, entry=entry)


def _check_response(response: httpx.Response) -> None:
    status = response.status_code
    if status in contract.LINK_EXPIRED_STATUSES:
        raise LinkRefused()
    if status in contract.RETRYABLE_STATUSES:
        raise status_retry(response, "download")
    if status != httpx.codes.OK:
        raise unexpected_status(response, "download")
    content_type = response.headers.get(contract.HEADER_CONTENT_TYPE)
    if not is_pdf_content_type(content_type):
        media_type = (content_type or "").split(";", 1)[0].strip()[:60]
        raise InvalidReportError(f"the download is {media_type}, not a PDF.")


async def _stream_body(
    response: httpx.Response, stream: PdfStream, handle: BinaryIO, max_report_bytes: int
) -> None:
    try:
        async for chunk in response.aiter_bytes():
            if stream.size + len(chunk) > max_report_bytes:
                raise GiveUp(
                    InvalidReportError(
                        f"the download exceeds {max_report_bytes} bytes; an SSR is far smaller."
                    )
                )
            stream.feed(chunk)
            handle.write(chunk)
    except httpx.TimeoutException as exc:
        raise Retry(
            ServiceConnectionError(
                f"{origin(response.request.url)} stopped sending the report.",
                hint=BUSY_HINT,
            )
        ) from exc
    except httpx.RequestError as exc:
        raise InvalidReportError(
            f"the download was cut short after {stream.size} bytes ({type(exc).__name__})."
        ) from exc


def _remove(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
