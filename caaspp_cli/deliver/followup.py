"""The follow-up list: every student whose family a person must help, why, and what to do.

``caaspp deliver`` rewrites ``follow-up.csv`` (:data:`caaspp_cli.artifacts.FOLLOW_UP_NAME`)
at the end of every run, whatever stopped the run: one row per roster row that needs
somebody, sorted by school, grade and name so that each school's office gets its part. It
is for staff: it names the student (the office must find the family), so it is written
owner-only inside the season folder, like the reports themselves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from caaspp_cli.artifacts import FollowUp as Reason
from caaspp_cli.artifacts import ManifestLine, write_follow_up
from caaspp_cli.artifacts import ManifestStatus as Status
from caaspp_cli.deliver.printpack import grade_key
from caaspp_cli.deliver.season import HELD, PAPER
from caaspp_cli.roster.read import RosterRow, RowProblem

if TYPE_CHECKING:
    from caaspp_cli.send.outcomes import SendOutcome

__all__ = ["FollowUpRow", "Reason", "find_follow_ups", "write_follow_ups"]


@dataclass(frozen=True, slots=True)
class FollowUpRow:
    school: str
    grade: str
    line: int
    ssid: str
    student_name: str
    sort_name: str
    reason: Reason
    detail: str

    @classmethod
    def of(cls, row: RosterRow, reason: Reason, detail: str = "") -> FollowUpRow:
        return cls(
            school=row.school_name or row.school_code,
            grade=row.grade,
            line=row.line,
            ssid=row.ssid or row.raw_ssid,
            student_name=row.display_name,
            sort_name=f"{row.last_name} {row.first_name} {row.display_name}".casefold(),
            reason=reason,
            detail=detail,
        )

    def cells(self) -> tuple[object, ...]:
        return (
            self.school,
            self.grade,
            self.line,
            self.ssid,
            self.student_name,
            self.reason.value,
            self.reason.advice,
            self.detail,
        )


def find_follow_ups(
    rows: Sequence[RosterRow],
    channels: Mapping[str, str],
    answers: Mapping[str, ManifestLine],
    has_report: set[str],
    first_asked: Mapping[str, float],
    outcomes: Mapping[str, tuple[SendOutcome, str]],
    *,
    now: float,
    missing_after: float,
) -> list[FollowUpRow]:
    """Who needs a person tonight: from the roster, each student's channel (season
    ledger), ETS's answers (the manifest), who has a report, when caaspp first asked, and
    send's outcome per SSID; ``missing_after`` in seconds."""
    from caaspp_cli.send.outcomes import SendOutcome

    found: list[FollowUpRow] = []
    for row in rows:
        if row.problem is RowProblem.DUPLICATE:
            continue

        def add(reason: Reason, detail: str = "", row: RosterRow = row) -> None:
            found.append(FollowUpRow.of(row, reason, detail))

        if row.ssid is None:
            add(Reason.INVALID_SSID, row.detail)
            continue
        channel = channels.get(row.ssid, "")
        if channel == HELD:
            add(Reason.HELD, row.hold_detail)
            continue
        answer = answers.get(row.ssid)
        if answer is not None and answer.status == Status.STUDENT_NOT_FOUND:
            add(Reason.STUDENT_NOT_FOUND, answer.detail)
            continue
        if answer is not None and answer.status == Status.NOT_ENROLLED:
            add(Reason.NOT_ENROLLED, answer.detail)
            continue
        if answer is not None and answer.status == Status.FAILED:
            add(Reason.FAILED, answer.detail)
        if row.ssid not in has_report:
            asked = first_asked.get(row.ssid)
            failed = answer is not None and answer.status == Status.FAILED
            if not failed and asked is not None and now - asked >= missing_after:
                since = time.strftime("%Y-%m-%d", time.localtime(asked))
                add(Reason.REPORT_MISSING, f"asked since {since}")
            continue
        outcome = outcomes.get(row.ssid)
        if channel == PAPER:
            if row.email_problem or row.invalid_emails:
                add(Reason.BAD_ADDRESS, row.email_problem or ", ".join(row.invalid_emails))
            elif outcome is not None and outcome[0] is SendOutcome.REFUSED:
                add(Reason.REFUSED, outcome[1])
            else:
                add(Reason.NO_EMAIL)
            continue
        if outcome is None:
            continue
        if outcome[0] is SendOutcome.UNCERTAIN:
            add(Reason.UNCERTAIN, outcome[1])
        elif outcome[0] in (
            SendOutcome.FAILED,
            SendOutcome.MISSING_PDF,
            SendOutcome.MISSING_PASSWORD,
            SendOutcome.NOT_ENCRYPTED,
            SendOutcome.PASSWORD_IN_MESSAGE,
        ):
            add(Reason.FAILED, outcome[1])
    return found


def write_follow_ups(folder: Path, rows: Sequence[FollowUpRow]) -> Path:
    """Write the follow-up list into ``folder`` (also when it is empty: last night's list
    must not be read as tonight's)."""
    ordered = sorted(
        rows, key=lambda r: (r.school.casefold(), grade_key(r.grade), r.sort_name, r.line)
    )
    return write_follow_up(folder, (row.cells() for row in ordered))
