"""How patiently a failed network attempt is tried again, and what ``Retry-After`` asks.

Any caaspp client of a remote service (the ETS client today) spaces its retries with
:class:`RetryPolicy`: capped exponential backoff with jitter, or the wait the service named
in ``Retry-After`` (seconds or an HTTP date, :func:`parse_retry_after`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Throttling (429 with Retry-After) does not spend attempts; but one request waits at most
# this long in total for the service to let it through, then fails with RateLimitedError.
DEFAULT_MAX_THROTTLE_WAIT = 900.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed attempt is tried again.

    The n-th retry waits ``min(base_delay * 2**(n-1), max_delay)`` less up to ``jitter`` of
    it (so many clients do not retry in step), unless the service said ``Retry-After``:
    that is honoured, up to ``max_retry_after``.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.25
    max_retry_after: float = 120.0
    # Total seconds one request may spend waiting on 429s that said when to come back.
    max_throttle_wait: float = DEFAULT_MAX_THROTTLE_WAIT

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, retry_number: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        backoff = min(self.base_delay * 2.0 ** (retry_number - 1), self.max_delay)
        return backoff * (1.0 - self.jitter * rand)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or HTTP date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is no answer
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max((when - current).total_seconds(), 0.0)
