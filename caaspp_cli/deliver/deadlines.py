"""The legal clock: when a family must have a report, from the day the LEA received it.

California gives an LEA 20 *working* days from receiving a CAASPP student score report to
forward it to the family, and 30 *calendar* days for a Summative ELPAC report. caaspp takes
the day it first saw a report (the season ledger's ``first_seen``, in the machine's local
time) as the day received. A working day is Monday to Friday and not one of the district's
days off: those are the district's to give (``--holidays FILE``), since school calendars
differ.

The holidays file: one date (``2026-11-26``) or range (``2026-12-21..2027-01-01``) per
line, optionally followed by a label; ``#`` starts a comment; blank lines are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Final

from caaspp_cli.errors import BadInputError

CAASPP_WORKING_DAYS: Final = 20
ELPAC_CALENDAR_DAYS: Final = 30
SOON_WORKING_DAYS: Final = 5  # "due soon": within this many working days

# Tests whose reports follow the ELPAC rule (calendar days); every other test follows the
# CAASPP rule (Smarter Balanced, CAST, the alternate assessments). Codes of
# caaspp_cli.vocabulary.TEST_CODES.
ELPAC_TESTS: Final = frozenset({"ELPAC"})

_LINE: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\s*\.\.\s*(\d{4}-\d{2}-\d{2}))?(?:\s+.*)?$")
_MAX_RANGE_DAYS: Final = 366


def is_elpac(test: str) -> bool:
    return test.upper() in ELPAC_TESTS


def is_working_day(day: date, holidays: frozenset[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_working_days(start: date, days: int, holidays: frozenset[date]) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself never counts)."""
    day = start
    left = days
    while left > 0:
        day += timedelta(days=1)
        if is_working_day(day, holidays):
            left -= 1
    return day


def working_days_between(start: date, end: date, holidays: frozenset[date]) -> int:
    """Working days after ``start`` up to and including ``end`` (negative if end < start)."""
    if end < start:
        return -working_days_between(end, start, holidays)
    count = 0
    day = start
    while day < end:
        day += timedelta(days=1)
        count += is_working_day(day, holidays)
    return count


def due_date(test: str, received: date, holidays: frozenset[date]) -> date:
    """The last day a report of ``test`` received on ``received`` may reach the family."""
    if is_elpac(test):
        return received + timedelta(days=ELPAC_CALENDAR_DAYS)
    return add_working_days(received, CAASPP_WORKING_DAYS, holidays)


def read_holidays(path: Path) -> frozenset[date]:
    """The district's days off from a holidays file; BadInputError naming a bad line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInputError(f"the holidays file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"the holidays file {path} cannot be read ({exc}).") from None
    return parse_holidays(text.splitlines(), str(path))


def parse_holidays(lines: Iterable[str], source: str = "holidays") -> frozenset[date]:
    days: set[date] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip().strip(",").replace(",", " ")
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            raise BadInputError(
                f"{source}, line {number}: {raw.strip()!r} is not a date (YYYY-MM-DD) or a "
                "range (YYYY-MM-DD..YYYY-MM-DD)."
            )
        try:
            first = date.fromisoformat(match.group(1))
            last = date.fromisoformat(match.group(2)) if match.group(2) else first
        except ValueError as exc:
            raise BadInputError(f"{source}, line {number}: {exc}.") from None
        if last < first or (last - first).days > _MAX_RANGE_DAYS:
            raise BadInputError(
                f"{source}, line {number}: the range {first}..{last} runs backwards or over a year."
            )
        day = first
        while day <= last:
            days.add(day)
            day += timedelta(days=1)
    return frozenset(days)
