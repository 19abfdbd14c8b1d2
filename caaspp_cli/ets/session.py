"""One exchange with the ETS service at a time, as many at once as allowed: the client's
plumbing.

A :class:`Session` owns the connection pools, the throttle that paces them, the deadline
of each request and the retry loop; the client (:mod:`caaspp_cli.ets.client`) says what to
send and what an answer means. Retries follow :class:`caaspp_cli.retry.RetryPolicy`: 408,
429, 5xx and network failures with capped exponential backoff and jitter, ``Retry-After``
honoured; a 429 that says when to come back spends no attempt, only bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from caaspp_cli import __version__
from caaspp_cli.errors import BadInputError, EtsError, RateLimitedError
from caaspp_cli.ets import contract
from caaspp_cli.ets.body import read_bounded
from caaspp_cli.ets.failures import ENDPOINT_HINT, LinkStale, Retry, deadline, transport_failure
from caaspp_cli.ets.throttle import Clock, Sleep, Throttle
from caaspp_cli.ets.urls import origin, redact_url
from caaspp_cli.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=30.0)
# One AsyncClient degrades past 8-16 connections (measured); the LEA may ask for fewer.
DEFAULT_MAX_CONNECTIONS = 8
CONNECTIONS_PER_POOL = 8
# Every request, body included, ends within this many seconds: the read timeout alone is
# per read, so a server dripping a byte at a time would hold a connection forever.
DEFAULT_REQUEST_DEADLINE = 300.0


@dataclass(frozen=True)
class RetryEvent:
    """Reported to ``on_retry`` before each wait, so a front end can say what is going on."""

    what: str
    attempt: int  # the attempt that failed, from 1
    max_attempts: int
    delay: float
    error: EtsError


class Session:
    """Connection pools, paced by one throttle, with a retry loop around each attempt."""

    def __init__(
        self,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rand: Callable[[], float] = random.random,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.retry = retry or RetryPolicy()
        self._request_deadline = request_deadline
        self._sleep = sleep
        self._rand = rand
        self._on_retry = on_retry
        # Callers beyond the pool wait here rather than in the pool, where they would
        # run into its timeout; the throttle also paces them when the service says 429.
        self._throttle = Throttle(
            max_connections, max_pause=self.retry.max_retry_after, clock=clock, sleep=sleep
        )
        # One httpx pool slows down past 8-16 connections (its connection scan grows with
        # the square of their number): spread wider concurrency over several pools.
        pools = max(1, math.ceil(max_connections / CONNECTIONS_PER_POOL))
        per_pool = math.ceil(max_connections / pools)
        self._pools = [
            httpx.AsyncClient(
                timeout=timeout,
                limits=httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool),
                headers={
                    contract.HEADER_USER_AGENT: contract.user_agent(__version__, httpx.__version__)
                },
                transport=transport,
                follow_redirects=False,
            )
            for _ in range(pools)
        ]
        self._next_pool = itertools.cycle(self._pools)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    def build_request(self, method: str, url: str, **options: Any) -> httpx.Request:
        return self._pools[0].build_request(method, url, **options)

    @contextlib.asynccontextmanager
    async def exchange(
        self, request: httpx.Request, still_valid: Callable[[], bool] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """Send ``request`` within a connection slot; the body is read by the caller.

        From the moment the request is sent until the caller is done with the body, the
        request deadline runs: past it the exchange ends as a timeout worth another try.
        """
        async with (
            self._throttle.slot() as started,
            deadline(self._request_deadline, request.url),
        ):
            if still_valid is not None and not still_valid():
                raise LinkStale()
            log.debug("%s %s", request.method, redact_url(request.url))
            try:
                response = await next(self._next_pool).send(request, stream=True)
            except httpx.RequestError as exc:
                raise transport_failure(exc, request.url) from exc
            except (OverflowError, ValueError) as exc:
                # A port out of range or an address the socket layer refuses.
                raise BadInputError(
                    f"{origin(request.url)} is not an address caaspp can reach "
                    f"({type(exc).__name__}).",
                    hint=ENDPOINT_HINT,
                ) from None
            self._throttle.observe(
                response.status_code,
                parse_retry_after(response.headers.get(contract.HEADER_RETRY_AFTER)),
                started,
            )
            try:
                log.debug(
                    "%s %s -> %d", request.method, redact_url(request.url), response.status_code
                )
                yield response
            finally:
                await response.aclose()

    async def read(self, response: httpx.Response, limit: int, what: str) -> None:
        """Read the body (decompressed) into ``response.content``, at most ``limit`` bytes."""
        await read_bounded(response, limit, what)

    async def with_retries(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the attempts run out."""
        max_attempts = self.retry.max_attempts
        number = 1
        throttled_for = 0.0
        while True:
            try:
                return await attempt()
            except Retry as retry:
                # A 429 that says when to come back is the service pacing us, not a
                # failure: it spends no attempt, only the (bounded) time this request waits.
                throttled = (
                    isinstance(retry.error, RateLimitedError) and retry.retry_after is not None
                )
                if throttled:
                    delay = self.retry.delay(number, retry.retry_after, self._rand())
                    throttled_for += delay
                    if throttled_for > self.retry.max_throttle_wait:
                        raise RateLimitedError(
                            f"the score-report service kept answering the {what} with 429 "
                            f"(too many requests) for over {self.retry.max_throttle_wait:.0f} s.",
                            hint="fetch fewer reports at once, or try again later.",
                            retry_after=retry.retry_after,
                        ) from None
                    log.debug("%s throttled (429); again in %.2f s", what, delay)
                    await self._sleep(delay)
                    continue
                if number >= max_attempts:
                    raise retry.error from retry.__cause__
                delay = self.retry.delay(number, retry.retry_after, self._rand())
                log.debug(
                    "%s failed (%s); attempt %d of %d in %.2f s",
                    what,
                    retry.error.message,
                    number + 1,
                    max_attempts,
                    delay,
                )
                if self._on_retry is not None:
                    self._on_retry(RetryEvent(what, number, max_attempts, delay, retry.error))
                await self._sleep(delay)
                number += 1
