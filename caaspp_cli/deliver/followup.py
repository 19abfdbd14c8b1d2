"""The follow-up list: every student whose family a person must help, why, and what to do.

``caaspp deliver`` rewrites ``follow-up.csv`` (:data:`caaspp_cli.artifacts.FOLLOW_UP_NAME`)
at the end of every run, whatever stopped the run: one row per roster row that needs
somebody, sorted by school, grade and name so that each school's office gets its part. It
is for staff: it names the student (the office must find the family), so it is written
owner-only inside the season folder, like the reports themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from caaspp_cli.artifacts import FollowUp as Reason
from caaspp_cli.artifacts import write_follow_up
from caaspp_cli.roster.read import RosterRow

__all__ = ["FollowUpRow", "Reason", "write_follow_ups"]


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


def write_follow_ups(folder: Path, rows: Sequence[FollowUpRow]) -> Path:
    """Write the follow-up list into ``folder`` (also when it is empty: last night's list
    must not be read as tonight's)."""
    ordered = sorted(
        rows, key=lambda r: (r.school.casefold(), _grade_key(r.grade), r.sort_name, r.line)
    )
    return write_follow_up(folder, (row.cells() for row in ordered))


def _grade_key(grade: str) -> tuple[int, str]:
    text = grade.strip().upper()
    if text in ("TK", "PK"):
        return (-2, text)
    if text in ("K", "KN", "KG"):
        return (-1, text)
    digits = text.lstrip("0") or "0"
    return (int(digits), "") if digits.isdigit() else (99, text)
