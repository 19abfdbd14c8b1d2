"""Every wire detail of the ETS Student Score Report API, in one place.

The client (``caaspp_cli.ets.client``) and the sandbox server (``caaspp_cli.sandbox``) both
speak through this module, so a district holding the real specification adjusts paths,
codes and payload shapes here and nowhere else. ``docs/ets-api.md`` tells which of these
details are public fact and which are our reconstruction.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from caaspp_cli.vocabulary import LANGUAGES, TEST_CODES

# --- Endpoints [public] --------------------------------------------------------------------
PRODUCTION_BASE_URL: Final = "https://caaspp-aws.ets.org"
DEFAULT_STUDENTS_ENDPOINT: Final = "/api/v1/students/"
DEFAULT_REPORTS_ENDPOINT: Final = "/score-reports/"
DEFAULT_TOKEN_ENDPOINT: Final = "/api/v1/token/"  # noqa: S105 (a path)

# Pre-signed links live 30 minutes in production [public]; a client must not rely on it.
PRODUCTION_LINK_TTL_SECONDS: Final = 1800

# --- Filters and formats -------------------------------------------------------------------
# The values of the test and language filters, and the SSID in a path, are the vocabulary
# of California's reports (``caaspp_cli.vocabulary``): TEST_CODES, LANGUAGES, is_valid_ssid.

FORMAT_PDF: Final = "pdf"
FORMAT_HTML: Final = "html"

# School years a report can belong to (the spring year of the administration).
MIN_REPORT_YEAR: Final = 2000
MAX_REPORT_YEAR: Final = 2100

# A pre-signed link is a few hundred characters; anything near this is not one.
MAX_LINK_LENGTH: Final = 8 * 1024

# Query parameter names of the score-reports call.
PARAM_TEST: Final = "test"
PARAM_LANGUAGE: Final = "language"
PARAM_YEAR: Final = "year"

# --- Error codes in JSON bodies ------------------------------------------------------------
ERR_INVALID_CLIENT: Final = "invalid_client"
ERR_INVALID_GRANT_TYPE: Final = "unsupported_grant_type"
ERR_INVALID_SSID: Final = "invalid_ssid"
ERR_INVALID_PARAMETER: Final = "invalid_parameter"
ERR_INVALID_TOKEN: Final = "invalid_token"  # noqa: S105 (an error code)
ERR_NOT_ENROLLED: Final = "not_enrolled"
ERR_STUDENT_NOT_FOUND: Final = "student_not_found"
ERR_RATE_LIMITED: Final = "rate_limited"
ERR_SERVER: Final = "server_error"

# The status each error code comes with. A transient server error may come as any 5xx;
# 500 is its usual one.
ERROR_STATUS: Final[dict[str, int]] = {
    ERR_INVALID_CLIENT: 401,
    ERR_INVALID_GRANT_TYPE: 400,
    ERR_INVALID_SSID: 400,
    ERR_INVALID_PARAMETER: 400,
    ERR_INVALID_TOKEN: 401,
    ERR_NOT_ENROLLED: 403,
    ERR_STUDENT_NOT_FOUND: 404,
    ERR_RATE_LIMITED: 429,
    ERR_SERVER: 500,
}

# Statuses worth another try, with backoff.
RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})

PDF_CONTENT_TYPES: Final = frozenset({"application/pdf", "application/octet-stream"})
PDF_HEADER: Final = b"%PDF-"
PDF_TRAILER: Final = b"%%EOF"

GRANT_TYPE: Final = "client_credentials"

# --- HTTP headers and statuses the client relies on ----------------------------------------
HEADER_AUTHORIZATION: Final = "Authorization"
HEADER_ACCEPT: Final = "Accept"
HEADER_USER_AGENT: Final = "User-Agent"
HEADER_RETRY_AFTER: Final = "Retry-After"
HEADER_CONTENT_TYPE: Final = "Content-Type"
ACCEPT_JSON: Final = "application/json"
USER_AGENT_PRODUCT: Final = "caaspp"

# A pre-signed link answers these once it has expired: ask the score-reports call again.
LINK_EXPIRED_STATUSES: Final = frozenset({403})


def user_agent(client_version: str, httpx_version: str) -> str:
    """The User-Agent every request names the client by (courtesy to the service)."""
    return f"{USER_AGENT_PRODUCT}/{client_version} (+python-httpx/{httpx_version})"


def entry_problem(entry: ReportEntry) -> str | None:
    """Why a listed report cannot be saved, or None when its fields are in the vocabulary.

    ``test``, ``year`` and ``language`` become part of a file name: a value the contract
    does not know (``"../../victim"``, a control character, a year 99999) is refused here,
    before it reaches any path.
    """
    if entry.test not in TEST_CODES:
        return f"ETS listed a report with an unknown test code {_quote(entry.test)}"
    if entry.language not in LANGUAGES:
        return f"ETS listed a report with an unknown language code {_quote(entry.language)}"
    if not MIN_REPORT_YEAR <= entry.year <= MAX_REPORT_YEAR:
        return f"ETS listed a report with an impossible year {entry.year}"
    return None


def link_problem(url: str) -> str | None:
    """Why a download link cannot be requested, or None when it is a well-formed URL.

    Refused: a link longer than ``MAX_LINK_LENGTH``, one holding a space, a control or a
    non-ASCII character, one without a host, and one whose port is not a port. Whether the
    scheme is acceptable is the client's decision (it depends on the host).
    """
    if len(url) > MAX_LINK_LENGTH:
        return f"the download link is {len(url)} characters long (at most {MAX_LINK_LENGTH})"
    if not url.isascii() or any(ch <= " " or ch == "\x7f" for ch in url):
        return "the download link holds a space, a control or a non-ASCII character"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the download link is not a well-formed URL (bad host or port)"
    if not parts.hostname:
        return "the download link has no host"
    if port == 0:
        return "the download link names port 0"
    return None


def _quote(value: str, limit: int = 40) -> str:
    """A wire value fit for a message: printable, short, quoted."""
    text = "".join(ch if ch.isprintable() else "?" for ch in value)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


# --- Authentication ------------------------------------------------------------------------
def basic_auth_header(client_key: str, client_secret: str) -> str:
    """The Authorization header value of the token request (HTTP Basic)."""
    raw = f"{client_key}:{client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_basic_auth_header(value: str | None) -> tuple[str, str] | None:
    """(client_key, client_secret) from a Basic Authorization header, or None."""
    if not value or not value.startswith("Basic "):
        return None
    try:
        raw = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    key, sep, secret = raw.partition(":")
    return (key, secret) if sep else None


def token_form() -> dict[str, str]:
    """The form body of the token request."""
    return {"grant_type": GRANT_TYPE}


def bearer_header(access_token: str) -> str:
    return f"Bearer {access_token}"


def parse_bearer_header(value: str | None) -> str | None:
    if not value or not value.startswith("Bearer "):
        return None
    return value[7:].strip() or None


def join_url(base_url: str, path: str) -> str:
    """Join a base URL and an endpoint path with exactly one slash between them."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def reports_path(ssid: str, students_endpoint: str, reports_endpoint: str) -> str:
    """The path of one student's score reports: {students}{ssid}{reports}."""
    students = "/" + students_endpoint.strip("/") + "/"
    reports = "/" + reports_endpoint.strip("/") + "/"
    return f"{students}{ssid}{reports}"


def reports_query(
    test: str | None = None, language: str | None = None, year: int | None = None
) -> dict[str, str]:
    """Query parameters of the score-reports call; an omitted filter means all."""
    query: dict[str, str] = {}
    if test is not None:
        query[PARAM_TEST] = test
    if language is not None:
        query[PARAM_LANGUAGE] = language
    if year is not None:
        query[PARAM_YEAR] = str(year)
    return query


# --- Payloads ------------------------------------------------------------------------------
class TokenResponse(BaseModel):
    """200 of the token endpoint. Extra fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    access_token: str = Field(min_length=1)
    token_type: str = "Bearer"  # noqa: S105 (a scheme name)
    expires_in: int = 3600


class ReportEntry(BaseModel):
    """One report definition in a student's list. Extra fields are kept but unused."""

    model_config = ConfigDict(extra="allow")

    test: str
    year: int
    grade: str | None = None
    language: str
    format: str = FORMAT_PDF
    # The pre-signed link is a bearer secret while it lives: keep it out of every repr.
    url: str = Field(repr=False)
    expires_at: datetime | None = None

    @property
    def is_pdf(self) -> bool:
        return self.format.lower() == FORMAT_PDF

    def same_report(self, other: ReportEntry) -> bool:
        """True when both entries describe the same report (links differ)."""
        return (self.test, self.year, self.language, self.format.lower()) == (
            other.test,
            other.year,
            other.language,
            other.format.lower(),
        )


class ReportList(BaseModel):
    """200 of the score-reports call."""

    model_config = ConfigDict(extra="ignore")

    ssid: str
    reports: list[ReportEntry]


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    model_config = ConfigDict(extra="ignore")

    error: str = "unknown"
    message: str | None = None
    error_description: str | None = None

    @property
    def text(self) -> str:
        return self.message or self.error_description or self.error


def error_body(error: str, message: str) -> dict[str, Any]:
    """An error body as the service sends it on data calls."""
    return ErrorBody(error=error, message=message).model_dump(mode="json", exclude_none=True)


def token_error_body(error: str, description: str) -> dict[str, Any]:
    """An error body as the token endpoint sends it (OAuth2 style)."""
    return ErrorBody(error=error, error_description=description).model_dump(
        mode="json", exclude_none=True
    )
