"""The ETS client's shared gate: how many requests are in flight, and how fast they start.

Additive increase, multiplicative decrease on the service's 429s, with a slow start: a run
against a steady limit settles just under it instead of failing rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from caaspp_cli.ets import contract

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

# Adaptive pacing after a 429: the request rate is halved (and concurrency with it), then
# grows back by equal steps, one per successful request, regaining the halved rate after
# this many; past 90% of the rate the 429 came at, it grows 32 times slower, probing. So a
# run against a steady limit settles just under it (measured: 2-3% of requests met a 429
# over 290 requests against a 20/s limit, most of them in the first burst).
THROTTLE_DECREASE = 0.5
# The rate a 429 came at, times this, is where the climb back slows to a probe.
THROTTLE_CEILING = 0.9
THROTTLE_RECOVERY_REQUESTS = 64
THROTTLE_START_CONNECTIONS = 2
# Pacing never goes below one request a second: slower than that, the Retry-After pause
# the service asks for does the work.
THROTTLE_MIN_RATE = 1.0


class Throttle:
    """The client's shared gate: how many requests are in flight, and how fast they start.

    It starts wide open (``max_connections`` at once, no pacing). A 429 halves the
    concurrency and the request rate (once per round: 429s of requests sent before the last
    cut do not cut again) and holds every new request until the ``Retry-After`` moment;
    each success then raises concurrency by ``1/limit`` and the rate by a fixed step
    (additive increase, multiplicative decrease), so the run settles just under what the
    service allows instead of failing rows.
    """

    def __init__(
        self, max_connections: int, *, max_pause: float, clock: Clock, sleep: Sleep
    ) -> None:
        self._max = max_connections
        self._max_pause = max_pause
        self._clock = clock
        self._sleep = sleep
        # A slow start: a service that throttles answers the first burst with as many 429s
        # as there are requests in flight, so the run starts narrow and widens as answers
        # come (one more per round of successes: full width after a few dozen requests).
        self._limit = float(min(max_connections, THROTTLE_START_CONNECTIONS))
        self._in_flight = 0
        self._free = asyncio.Condition()
        self._rate: float | None = None  # requests per second; None: unpaced
        self._step = 0.0  # added to the rate per success
        # Just under the rate the last 429 came at: the rate climbs back to it at full step,
        # and beyond it only at an eighth (probing whether the service allows more again).
        self._ceiling = math.inf
        self._next_start = -math.inf
        self._paused_until = -math.inf
        self._cut_at = -math.inf
        self._recent: deque[float] = deque(maxlen=4096)  # start times, for the first cut

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Wait for a turn; yields the request's start time on the client's clock."""
        async with self._free:
            await self._free.wait_for(lambda: self._in_flight < max(1, int(self._limit)))
            self._in_flight += 1
        try:
            now = self._clock()
            start = max(now, self._next_start, self._paused_until)
            if self._rate is not None:
                self._next_start = start + 1.0 / self._rate
            if start > now:
                await self._sleep(start - now)
            started = self._clock()
            self._recent.append(started)
            yield started
        finally:
            async with self._free:
                self._in_flight -= 1
                self._free.notify_all()

    def observe(self, status: int, retry_after: float | None, started: float) -> None:
        now = self._clock()
        if status != contract.ERROR_STATUS[contract.ERR_RATE_LIMITED]:
            if status < 400:
                self._limit = min(float(self._max), self._limit + 1.0 / self._limit)
                if self._rate is not None:
                    step = self._step if self._rate < self._ceiling else self._step / 32
                    self._rate += step
            return
        if retry_after is not None:
            pause = min(retry_after, self._max_pause)
            self._paused_until = max(self._paused_until, now + pause)
        if started < self._cut_at:
            return  # sent before the last cut: that cut already answered this burst
        self._cut_at = now
        self._limit = max(1.0, self._limit * THROTTLE_DECREASE)
        if self._rate is None:
            # The first 429: start pacing from what got through in the last second.
            recent = sum(1 for t in self._recent if t > now - 1.0)
            self._rate = float(max(recent, 1))
        self._ceiling = self._rate * THROTTLE_CEILING
        self._rate = max(THROTTLE_MIN_RATE, self._rate * THROTTLE_DECREASE)
        self._step = self._rate / THROTTLE_RECOVERY_REQUESTS
        log.debug("throttled: %d request(s) at once, %.2f per second", int(self._limit), self._rate)
