"""The exception tree and the exit codes it maps to.

Every expected failure is a :class:`CaasppError` carrying one plain sentence (``message``)
and, where there is one, what to do about it (``hint``). The CLI edge prints both and exits
with the error's code; only ``--debug`` shows a traceback. Messages never carry a secret.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Documented exit codes (see the README)."""

    OK = 0
    UNEXPECTED = 1
    BAD_INPUT = 2
    FAILED = 3  # some rows or files failed (after retries, or bad files); a re-run retries them
    CREDENTIALS = 4
    NOTHING_TO_FETCH = 5
    BUSY = 6  # another caaspp run holds the folder (or the password sheet); nothing was done
    INTERRUPTED = 130


class CaasppError(Exception):
    """Root of every expected failure."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class BadInputError(CaasppError):
    """The user gave us something we cannot use: an option, a file, a value."""

    exit_code = ExitCode.BAD_INPUT


class ConfigError(BadInputError):
    """The configuration file or a profile in it is missing or malformed."""


class CredentialsError(CaasppError):
    """Client Key / Client Secret missing, unreadable, expired or refused."""

    exit_code = ExitCode.CREDENTIALS


class KeyringUnavailableError(CredentialsError):
    """No usable OS keyring backend on this machine."""


# --- Errors of the ETS service, by cause -------------------------------------------------


class EtsError(CaasppError):
    """Something the score-report service said or failed to say."""

    exit_code = ExitCode.FAILED


class AuthenticationError(EtsError):
    """The token endpoint refused the credentials, or a fresh token was refused too."""

    exit_code = ExitCode.CREDENTIALS


class BadRequestError(EtsError):
    """The service rejected a parameter (malformed SSID, unknown test or language)."""

    exit_code = ExitCode.BAD_INPUT


class StudentNotFoundError(EtsError):
    """ETS has no record of this SSID."""

    exit_code = ExitCode.NOTHING_TO_FETCH


class NotEnrolledError(EtsError):
    """The student is not (or no longer) visible to this LEA."""

    exit_code = ExitCode.NOTHING_TO_FETCH


class NoReportsError(EtsError):
    """The student is known but has no report for the filters asked."""

    exit_code = ExitCode.NOTHING_TO_FETCH


class RateLimitedError(EtsError):
    """The service kept answering 429 after every retry."""

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class ServerError(EtsError):
    """The service kept failing (5xx) after every retry."""

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ServiceConnectionError(EtsError):
    """The service could not be reached (DNS, refused, reset, timeout)."""


class TLSError(ServiceConnectionError):
    """The TLS handshake failed: certificate not trusted, wrong host name, ..."""


class LinkExpiredError(EtsError):
    """A pre-signed download link was refused (403): ask for a fresh one."""


class InvalidReportError(EtsError):
    """A downloaded body is not a complete PDF (cut short, an HTML page, ...)."""


# --- Errors of the mail server, by cause -------------------------------------------------


class MailError(CaasppError):
    """The mail server could not be used; what was done is in the send report."""

    exit_code = ExitCode.FAILED


class MailConnectionError(MailError):
    """The mail server could not be reached, or kept dropping the connection."""


class MailTLSError(MailConnectionError):
    """TLS failed: the server's certificate is not trusted, or it offers no STARTTLS."""


class MailAuthenticationError(CredentialsError):
    """The mail server refused the user name and password."""


# --- Raised by one module each; here so that every error is in one place ----------------
class UndeliveredError(CaasppError):
    """Reports not recorded as delivered: nothing is deleted without --force."""

    exit_code = ExitCode.FAILED


class PurgeLogError(CaasppError):
    """The purge happened, but its line in purge.log could not be written."""

    exit_code = ExitCode.FAILED


class LedgerError(CaasppError):
    """A ledger went bad during a run: a full disk, or a damaged file."""

    exit_code = ExitCode.FAILED


class ManifestError(CaasppError):
    """The manifest could not be written anywhere; the reports and the ledger stand."""

    exit_code = ExitCode.FAILED


class PasswordFileError(CaasppError):
    """The password sheet cannot be written: the files of that moment are not kept."""

    exit_code = ExitCode.FAILED


class FileHeldError(CaasppError):
    """Another program holds a file caaspp must replace; what was done before is kept."""

    exit_code = ExitCode.FAILED


class LinkRefusedError(BadInputError):
    """A symbolic link (or Windows junction) where caaspp reads or writes a file or folder."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            f"{path} is a symbolic link (or junction); caaspp does not follow links inside "
            "the folders it reads and writes.",
            hint="remove the link, or put the real file or folder there.",
        )
        self.path = Path(path)


class LayoutError(BadInputError):
    """A --layout refused: not a safe template, or one that cannot keep reports apart."""


class FolderBusyError(CaasppError):
    """Another caaspp run holds the folder's lock."""

    exit_code = ExitCode.BUSY
