"""URLs as the ETS client may show and use them: redacted for logs, checked before use.

The query of a pre-signed link is its signature, a bearer secret while it lives: only the
scheme, host and path of a URL ever reach a log or a message (:func:`redact_url`, and a
filter on httpx's own request log). A base URL or a link is used only over https://, or
plain http:// to this machine (a sandbox).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx

from caaspp_cli.errors import BadInputError
from caaspp_cli.ets import contract
from caaspp_cli.hosts import is_loopback_host


def redact_url(url: str | httpx.URL) -> str:
    """Scheme, host and path of ``url``: no user info, no query, no fragment.

    The query of a pre-signed link is its signature; this is the only form of a URL that
    may reach a log or a message.
    """
    return origin(url, with_path=True)


def origin(url: str | httpx.URL, *, with_path: bool = False) -> str:
    """Scheme, host and port of ``url`` (and its path if asked), for a message."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    path = parts.path if with_path else ""
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{path}"


def is_secure_url(url: str) -> bool:
    """True for https://, and for http:// to this machine."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and is_loopback_host(parts.hostname)


def check_base_url(url: str) -> str:
    """``url`` if it is https:// (or http:// on this machine); BadInputError otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(
            f"the base URL {redact_url(url)} is not an https:// address with a host name.",
            hint=f"the production service is {contract.PRODUCTION_BASE_URL}.",
        )
    if not is_secure_url(url):
        raise BadInputError(
            f"the base URL {origin(url)} uses plain http://, which would send credentials "
            "and children's reports unencrypted; only https:// is allowed, and http:// only "
            "for a sandbox on this machine (localhost, 127.0.0.1, ::1).",
            hint="use the https:// address of the service.",
        )
    return url


def invalid_url_reason(exc: httpx.InvalidURL) -> str:
    """httpx's reason, without the URL it may quote (a link's query is a secret)."""
    text = str(exc)
    return text.split(":", 1)[0].rstrip(".") if ":" in text else text.rstrip(".")


class _RedactRequestUrls(logging.Filter):
    """httpx logs each request at INFO with its full URL: keep only scheme, host and path."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, httpx.URL) for arg in record.args
        ):
            record.args = tuple(
                redact_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def redact_httpx_log() -> None:
    """Install the filter on httpx's logger (once)."""
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactRequestUrls) for f in httpx_log.filters):
        httpx_log.addFilter(_RedactRequestUrls())
