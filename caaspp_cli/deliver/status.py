"""Where the season stands: counts per school and the legal clock, from the season ledger.

:func:`season_status` reads only the season ledger (:mod:`caaspp_cli.deliver.season`), so
``caaspp status`` can run while no other command does, and says nothing a ledger does not
hold: counts, never a name or an SSID. A report is *delivered* once it was emailed (both
messages accepted) or put in the print pack; an undelivered report of a student on a
record hold is not on the clock (the district has chosen not to release it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from caaspp_cli.deliver.deadlines import SOON_WORKING_DAYS, due_date, working_days_between
from caaspp_cli.deliver.season import HELD, ReportState, RunRecord, SeasonLedger, StudentState

NO_SCHOOL = "(no school)"


@dataclass
class Tally:
    """One school's numbers (or the district's)."""

    students: int = 0
    reports: int = 0
    protected: int = 0
    emailed: int = 0
    printed: int = 0
    delivered: int = 0
    undelivered: int = 0
    waiting: int = 0  # students with no report yet
    held: int = 0  # students on a record hold
    follow_ups: int = 0
    due_soon: int = 0  # undelivered reports due within SOON_WORKING_DAYS working days
    overdue: int = 0
    next_due: date | None = None  # the earliest due date of an undelivered report

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["next_due"] = self.next_due.isoformat() if self.next_due else None
        return data


@dataclass
class SeasonStatus:
    today: date
    schools: dict[str, Tally]
    total: Tally
    last_run: RunRecord | None = None
    holidays: int = 0
    by_test: dict[str, int] = field(default_factory=dict)

    @property
    def rows_without_ssid(self) -> int:
        """Follow-ups of the last run that no school counts: roster rows without a valid
        SSID, which the season ledger cannot hold (follow-up.csv lists them)."""
        if self.last_run is None:
            return 0
        return max(0, self.last_run.counts.get("follow_ups", 0) - self.total.follow_ups)

    def as_dict(self) -> dict[str, Any]:
        run = self.last_run
        return {
            "today": self.today.isoformat(),
            "holidays_given": self.holidays,
            "last_run": None
            if run is None
            else {
                "started": _moment(run.started),
                "finished": _moment(run.finished) if run.finished else None,
                "outcome": run.status,
            },
            "total": self.total.as_dict(),
            "follow_ups_without_ssid": self.rows_without_ssid,
            "schools": {name: tally.as_dict() for name, tally in self.schools.items()},
            "reports_by_test": self.by_test,
        }


def season_status(
    ledger: SeasonLedger, today: date, holidays: frozenset[date] = frozenset()
) -> SeasonStatus:
    """The season's numbers per school and in total, and the clock as of ``today``."""
    return compute_status(
        list(ledger.students()), list(ledger.reports()), today, holidays, ledger.last_run()
    )


def compute_status(
    students: Iterable[StudentState],
    reports: Iterable[ReportState],
    today: date,
    holidays: frozenset[date] = frozenset(),
    last_run: RunRecord | None = None,
) -> SeasonStatus:
    schools: dict[str, Tally] = {}
    total = Tally()
    school_of: dict[str, str] = {}
    held: set[str] = set()
    for student in students:
        school = student.school or NO_SCHOOL
        school_of[student.ssid] = school
        tally = schools.setdefault(school, Tally())
        for each in (tally, total):
            each.students += 1
            each.held += student.channel == HELD
            each.follow_ups += bool(student.follow_up)
        if student.channel == HELD:
            held.add(student.ssid)
    with_report: set[str] = set()
    by_test: dict[str, int] = {}
    for report in reports:
        found = school_of.get(report.ssid)
        if found is None:  # no longer in the roster: the record stays, the count does not
            continue
        with_report.add(report.ssid)
        by_test[report.test] = by_test.get(report.test, 0) + 1
        tally = schools[found]
        for each in (tally, total):
            each.reports += 1
            each.protected += report.protected is not None
            each.emailed += report.emailed is not None
            each.printed += report.printed is not None
            each.delivered += report.delivered
            each.undelivered += not report.delivered
        if report.delivered or report.ssid in held:
            continue
        received = datetime.fromtimestamp(report.first_seen).date()
        due = due_date(report.test, received, holidays)
        left = working_days_between(today, due, holidays)
        for each in (tally, total):
            if due < today:
                each.overdue += 1
            elif left <= SOON_WORKING_DAYS:
                each.due_soon += 1
            if each.next_due is None or due < each.next_due:
                each.next_due = due
    for ssid, school in school_of.items():
        if ssid not in with_report and ssid not in held:
            schools[school].waiting += 1
            total.waiting += 1
    ordered = dict(sorted(schools.items(), key=lambda item: item[0].casefold()))
    return SeasonStatus(
        today, ordered, total, last_run, len(holidays), dict(sorted(by_test.items()))
    )


def season_counts(
    ledger: SeasonLedger, today: date, holidays: frozenset[date] = frozenset()
) -> dict[str, int]:
    """The season's totals, flat: what a run's summary, its audit line and the staff
    summary report."""
    total = season_status(ledger, today, holidays).total
    return {
        "students": total.students,
        "reports": total.reports,
        "protected": total.protected,
        "emailed": total.emailed,
        "printed": total.printed,
        "held": total.held,
        "waiting": total.waiting,
        "due_within_5_working_days": total.due_soon,
        "overdue": total.overdue,
    }


def _moment(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="minutes")
