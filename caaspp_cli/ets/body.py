"""Reading a JSON answer of the ETS service with a bound on what it may cost.

A student's report list is a few kilobytes and an error body is read only for its code and
message: a body larger than its cap, decompressed bytes counted, is not read. The body is
decompressed here, never more than the cap at a time: httpx would inflate a whole network
read at once, and a few kilobytes of gzip can hold hundreds of megabytes.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import httpx

from caaspp_cli.errors import ServerError
from caaspp_cli.ets.failures import BUSY_HINT, Retry, transport_failure

# --- Wire limits: what a hostile or broken service can cost us, at most ------------------
# An SSR is a few hundred kilobytes; a body this large is not one.
DEFAULT_MAX_REPORT_BYTES = 64 * 1024 * 1024
# A student's report list is a few kilobytes. The cap counts decompressed bytes, so a gzip
# bomb is cut off here too; memory grows by at most one inflated network read (64 KB of
# gzip, at most about 64 MB) beyond it.
MAX_LIST_BYTES = 1024 * 1024
# An error body is read only for its code and message.
MAX_ERROR_BODY_BYTES = 64 * 1024


async def read_bounded(response: httpx.Response, limit: int, what: str) -> None:
    """Read the body (decompressed) into ``response.content``, at most ``limit`` bytes.

    The body is decompressed here, never more than ``limit`` bytes at a time: httpx
    would inflate a whole network read at once, and a few kilobytes of gzip can hold
    hundreds of megabytes.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        decoder, raw_chunks = wire_body(response)
        async for raw in raw_chunks:
            chunks.append(decoder.feed(raw, limit - size + 1))
            size += len(chunks[-1])
            if size > limit:
                break
        else:
            chunks.append(decoder.flush())  # counted too: nothing inflated goes unchecked
            size += len(chunks[-1])
        if size > limit:
            raise Retry(
                ServerError(
                    f"the score-report service answered the {what} with more than "
                    f"{limit} bytes; the answer was not read.",
                    hint="a proxy between you and ETS may be answering instead: " + BUSY_HINT,
                    status=response.status_code,
                )
            )
    except httpx.RequestError as exc:
        raise transport_failure(exc, response.request.url) from exc
    except (httpx.DecodingError, zlib.error, UnknownEncoding) as exc:
        raise Retry(
            ServerError(
                f"the score-report service answered the {what} with a body that could not "
                "be decompressed.",
                hint=BUSY_HINT,
                status=response.status_code,
            )
        ) from exc
    # What ``aread`` would have stored: the body as read, for ``response.content``.
    response._content = b"".join(chunks)


def wire_body(response: httpx.Response) -> tuple[BoundedDecoder, AsyncIterator[bytes]]:
    """The body as it comes over the wire, and what undoes its Content-Encoding; a response
    already read (a test's mock) is given as httpx decoded it, with nothing left to undo."""
    try:
        content = response.content
    except httpx.ResponseNotRead:
        encoding = response.headers.get("content-encoding")
        return BoundedDecoder(encoding), response.aiter_raw()

    async def once() -> AsyncIterator[bytes]:
        yield content

    return BoundedDecoder(None), once()


class UnknownEncoding(Exception):
    """A Content-Encoding we did not ask for."""


class BoundedDecoder:
    """Content-Encoding undone (identity, gzip or deflate) with a bound on each call's output:
    never more than ``max_out`` bytes are inflated in memory at once."""

    def __init__(self, encoding: str | None) -> None:
        name = (encoding or "identity").strip().lower()
        self._deflate = name == "deflate"
        if name in ("", "identity"):
            self._zlib = None
        elif name in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._deflate:
            self._zlib = zlib.decompressobj()
        else:  # we ask for gzip and deflate only (httpx's Accept-Encoding)
            raise UnknownEncoding(name)

    def feed(self, data: bytes, max_out: int) -> bytes:
        if self._zlib is None:
            return data
        try:
            out = self._zlib.decompress(data, max_out)
        except zlib.error:
            if not self._deflate:
                raise
            # "deflate" is sent by some servers without its zlib header (as httpx allows).
            self._deflate = False
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, max_out)
        # Output was cut at max_out: the caller's limit is passed, whatever is left.
        return out

    def flush(self) -> bytes:
        return b"" if self._zlib is None else self._zlib.flush()
