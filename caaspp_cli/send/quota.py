"""The mail provider's limits on sending: daily quotas, and throttling.

A mailbox may send only so much a day (Exchange Online: 10,000 recipients; Google Workspace:
2,000 messages), and a provider that finds it sending too fast slows it down with a
temporary refusal. :class:`DailyLimit` is such a quota, :func:`documented_limit` the one a
provider documents, and :class:`DailyCount` what the send ledger recorded as accepted in
the last 24 hours against it. :func:`throttle_wait` tells a refusal that means "slow down"
(SMTP 421/450/451/452 saying so, or Graph's 429, raised as :class:`Throttled`) from one that
means "not now": the run waits and sends slower, without spending the message's attempts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from caaspp_cli.send.transport import SmtpRefusal

DAY: Final = 24 * 60 * 60.0
MAX_THROTTLE_WAIT: Final = 15 * 60.0  # the longest one wait for a throttled mailbox
THROTTLE_BACKOFF: Final = 30.0  # the first wait when the provider does not say how long

Unit = Literal["messages", "recipients"]


@dataclass(frozen=True)
class DailyLimit:
    """At most ``count`` messages (or recipients, counted once per message) in 24 hours."""

    count: int
    unit: Unit = "messages"

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("a daily limit is at least 1")

    def cost(self, recipients: int, messages: int) -> int:
        """What ``messages`` messages to ``recipients`` addresses each count against it."""
        return messages * (recipients if self.unit == "recipients" else 1)

    def __str__(self) -> str:
        return f"{self.count:,} {self.unit} a day"


_DOCUMENTED: Final = {
    # Exchange Online's recipient rate limit for one mailbox.
    "microsoft": DailyLimit(10_000, "recipients"),
    # Google Workspace's sending limit for one user (trial accounts: 500).
    "google": DailyLimit(2_000, "messages"),
}


def documented_limit(provider: str | None) -> DailyLimit | None:
    """The daily limit ``provider`` (``microsoft``, ``google``) documents; None if unknown."""
    return _DOCUMENTED.get((provider or "").lower())


class DailyCount:
    """What counts against a daily limit: each accepted message's time and recipients,
    as the send ledger recorded them, plus those of this run."""

    def __init__(self, limit: DailyLimit, accepted: Iterable[tuple[float, int]]) -> None:
        self.limit = limit
        self._accepted = sorted(accepted)
        self.reached_until: float | None = None  # once reached: when the oldest leaves

    def admits(self, now: float, recipients: int, messages: int) -> bool:
        """Whether to send ``messages`` more messages to ``recipients`` addresses each. Once
        one is turned away, every later one is too: the run stops at the limit, in order."""
        if self.reached_until is None:
            if self.fits(now, recipients, messages):
                return True
            self.reached_until = self.frees_at(now)
        return False

    def _resume(self) -> str:
        when = datetime.fromtimestamp(self.reached_until or 0.0).astimezone()
        return f"{when:%Y-%m-%d %H:%M} ({when:%Z})"

    def row_detail(self) -> str:
        """Why a row turned away is not sent (its send-report.csv detail)."""
        return f"not sent: the daily limit of {self.limit} was reached; run again after " + (
            self._resume()
        )

    def note(self, left: int) -> str:
        """The line that says how many families (``left``) the limit left, and when to go
        on; empty if it was not reached."""
        if self.reached_until is None:
            return ""
        families = f"{left} family remains" if left == 1 else f"{left} families remain"
        return (
            f"The daily limit of {self.limit} is reached: {families} to send; run the same "
            f"command again after {self._resume()}."
        )

    def add(self, when: float, recipients: int) -> None:
        self._accepted.append((when, recipients))

    def _window(self, now: float) -> list[tuple[float, int]]:
        return [(when, n) for when, n in self._accepted if now - DAY < when <= now]

    def used(self, now: float) -> int:
        return sum(self.limit.cost(n, 1) for _, n in self._window(now))

    def fits(self, now: float, recipients: int, messages: int) -> bool:
        return self.used(now) + self.limit.cost(recipients, messages) <= self.limit.count

    def frees_at(self, now: float) -> float:
        """When the oldest message counted now leaves the 24-hour window."""
        window = self._window(now)
        return (window[0][0] if window else now) + DAY


class Throttled(SmtpRefusal):
    """A temporary refusal that says the mailbox sends too fast: wait ``retry_after``
    seconds (None: the provider did not say) and send slower."""

    def __init__(self, code: int, text: str, stage: str, retry_after: float | None) -> None:
        super().__init__(code, text, stage)
        self.retry_after = retry_after


# Exchange: "4.7.0 ... throttled", "Too many concurrent ...", "4.3.2 STOREDRV.ClientSubmit;
# sender thread limit exceeded", "4.5.3 Too many recipients"; Gmail: "4.7.28",
# "421-4.7.0 Try again later".
_THROTTLING: Final = re.compile(
    r"throttl|too many concurrent|thread limit exceeded|4\.7\.28|4\.7\.0 try again later|"
    r"rate limit|too many (messages|connections)|4\.5\.3",
    re.IGNORECASE,
)


def throttle_wait(refusal: SmtpRefusal, throttled_before: int) -> float | None:
    """How long to wait before sending again if ``refusal`` means the provider is
    throttling the mailbox (``throttled_before``: how many times in a row it did), else None.
    """
    if isinstance(refusal, Throttled):
        if refusal.retry_after is not None:
            return min(max(refusal.retry_after, 1.0), MAX_THROTTLE_WAIT)
    elif not (refusal.code in (421, 450, 451, 452) and _THROTTLING.search(str(refusal))):
        return None
    return min(THROTTLE_BACKOFF * 2.0**throttled_before, MAX_THROTTLE_WAIT)
