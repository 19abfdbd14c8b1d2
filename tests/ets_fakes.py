"""Shared pieces of the ETS client tests: a fake clock, the mocked service's addresses and
the token, listing and PDF answers it gives.

The fixtures built on them (fake, router, pdf_bytes) live in conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import respx

from caaspp_cli.config.credentials import Credentials
from caaspp_cli.ets.client import Endpoints, EtsClient
from caaspp_cli.ets.contract import ReportEntry

BASE = "https://ets.test"
ENDPOINTS = Endpoints(BASE)
TOKEN_URL = ENDPOINTS.token_url
SSID = "1234567890"
REPORTS_URL = ENDPOINTS.reports_url(SSID)
KEY = "key-KKKK-1111"
SECRET = "secret-SSSS-2222"
SIGNATURE = "SIGNATURE-0f9e8d"
LINK = f"https://cdn.ets.test/ssr/5c1f.pdf?expires=1732262400&signature={SIGNATURE}"
FRESH_LINK = "https://cdn.ets.test/ssr/5c1f.pdf?expires=1732264200&signature=FRESH-77"


class FakeTime:
    """A clock that only moves when the client sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def make_client(
    router: respx.Router, fake: FakeTime, *, base_url: str = BASE, **kwargs: Any
) -> EtsClient:
    kwargs.setdefault("rand", lambda: 0.0)
    return EtsClient(
        Endpoints(base_url),
        Credentials(KEY, SECRET),
        transport=httpx.MockTransport(router.async_handler),
        sleep=fake.sleep,
        clock=fake.clock,
        **kwargs,
    )


def run(
    router: respx.Router,
    fake: FakeTime,
    action: Callable[[EtsClient], Awaitable[Any]],
    **kwargs: Any,
) -> Any:
    async def main() -> Any:
        async with make_client(router, fake, **kwargs) as ets:
            return await action(ets)

    return asyncio.run(main())


def token_json(
    token: str = "tok-1",
    expires_in: int = 3600,
    **extra: Any,
) -> dict[str, Any]:
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in, **extra}


def entry_json(url: str = LINK, **overrides: Any) -> dict[str, Any]:
    entry = {
        "test": "CAASPP",
        "year": 2024,
        "grade": "05",
        "language": "en",
        "format": "pdf",
        "url": url,
        "expires_at": "2099-11-22T08:00:00Z",
    }
    entry.update(overrides)
    return entry


def listing_json(*entries: dict[str, Any], ssid: str = SSID) -> dict[str, Any]:
    return {"ssid": ssid, "reports": list(entries)}


def entry(url: str = LINK, **overrides: Any) -> ReportEntry:
    return ReportEntry.model_validate(entry_json(url, **overrides))


def mock_token(router: respx.Router, *tokens: str) -> respx.Route:
    responses = [httpx.Response(200, json=token_json(t)) for t in (tokens or ("tok-1",))]
    if len(responses) == 1:
        return router.post(TOKEN_URL).mock(return_value=responses[0])
    return router.post(TOKEN_URL).mock(side_effect=responses)


def pdf_response(
    body: bytes, *, chunks: int = 3, content_type: str = "application/pdf"
) -> httpx.Response:
    """A chunked body (no Content-Length), as the service may send it."""
    size = max(1, len(body) // chunks + 1)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            await asyncio.sleep(0)
            yield body[start : start + size]

    return httpx.Response(200, headers={"Content-Type": content_type}, content=stream())


def cut_off_response(body: bytes) -> httpx.Response:
    """Half the body, then the connection drops."""

    async def stream() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    return httpx.Response(200, headers={"Content-Type": "application/pdf"}, content=stream())


def folder_names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []
