"""What a run of `caaspp protect` reports: each file's outcome, progress, the summary."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

__all__ = ["OK_OUTCOMES", "FileResult", "Outcome", "ProtectProgress", "ProtectSummary"]


class Outcome(StrEnum):
    PROTECTED = "protected"
    ALREADY_PROTECTED = "already_protected"  # a verified copy was there: not written again
    SKIPPED = "skipped"  # the input cannot be protected: encrypted, not a PDF, damaged
    FAILED = "failed"  # writing or verifying failed, or the passwords disagree


OK_OUTCOMES: Final = frozenset({Outcome.PROTECTED, Outcome.ALREADY_PROTECTED})


@dataclass(frozen=True, slots=True)
class FileResult:
    source: Path
    output: str  # relative to DIR
    ssid: str | None
    outcome: Outcome
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES


@dataclass(frozen=True, slots=True)
class ProtectProgress:
    """Sent once before the work starts (``result`` None) and after each file."""

    done: int
    total: int
    result: FileResult | None = None


@dataclass
class ProtectSummary:
    out_dir: Path
    password_file: Path
    files: list[FileResult]
    students: int = 0  # passwords in use in this run: one per family
    new_passwords: int = 0  # passwords the sheet did not hold before: families to tell

    @property
    def failed(self) -> list[FileResult]:
        return [result for result in self.files if not result.ok]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((outcome.value for outcome in Outcome), 0)
        for result in self.files:
            counts[result.outcome.value] += 1
        return counts
