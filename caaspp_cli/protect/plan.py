"""Whose password each report gets: the plan of a run, made before any work.

Reports are grouped by student (by SSID, or one group per file without one), and each
group gets its password: the one the password sheet already holds for the student, else
the roster's (``--password-column``), else a new one. Conflicts are decided here, as
failed results: two inputs with one output name, a sheet holding several passwords for a
student, a roster password that differs from the sheet's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from caaspp_cli.artifacts import PasswordSheet, SheetRow, neutralize_cell
from caaspp_cli.errors import BadInputError
from caaspp_cli.protect.inputs import InputFile
from caaspp_cli.protect.passwords import generate_password
from caaspp_cli.protect.policy import MIN_PASSWORD_CHARS, check_password, normalize_password
from caaspp_cli.protect.results import FileResult, Outcome
from caaspp_cli.protect.worker import FileTask, Task
from caaspp_cli.words import plural

__all__ = ["Contact", "Plan", "file_result", "make_plan", "read_roster"]


@dataclass
class Plan:
    files: list[InputFile]
    results: dict[int, FileResult]  # decided before any work: conflicts, missing passwords
    tasks: list[Task]
    passwords: dict[int, str] = field(repr=False)  # file index -> its password
    sheet_file: dict[int, bool]  # file index -> the sheet already has its row
    group_of: dict[int, int] = field(default_factory=dict)  # file index -> its task
    new_password: list[bool] = field(default_factory=list)  # by task


@dataclass(frozen=True, slots=True)
class Contact:
    student_name: str = ""
    guardian_name: str = ""
    email: str = ""
    language: str = ""


def read_roster(
    roster: Path | None, password_column: str | None, files: Sequence[InputFile]
) -> tuple[dict[str, Contact], dict[str, str | None]]:
    """Contacts by SSID, and (with ``password_column``) passwords by SSID; short or
    unusable passwords of the students at hand refused, naming their rows."""
    if roster is None:
        return {}, {}
    from caaspp_cli.roster.read import open_roster

    wanted = {item.ssid for item in files if item.ssid}
    opened = open_roster(roster, password_column=password_column)
    contacts: dict[str, Contact] = {}
    passwords: dict[str, str | None] = {}
    refused: list[str] = []
    for row in opened:
        if row.problem is not None or row.ssid is None or row.ssid in contacts:
            continue
        contacts[row.ssid] = Contact(
            row.display_name, row.guardian_name, "; ".join(row.emails), row.language or ""
        )
        if password_column is not None:
            passwords[row.ssid] = row.password
            if row.ssid in wanted and row.password:
                reason = check_password(row.password)
                if reason:
                    refused.append(f"line {row.line} (SSID {row.ssid}): {reason}")
    if refused:
        shown = refused[:10] + ([f"and {len(refused) - 10} more"] if len(refused) > 10 else [])
        raise BadInputError(
            f"{roster}: {plural(len(refused), 'password')} in column {password_column!r} cannot be "
            "used: " + "; ".join(shown) + ".",
            hint=f"give each student a password of at least {MIN_PASSWORD_CHARS} characters.",
        )
    return contacts, passwords


def make_plan(
    files: Sequence[InputFile],
    out_dir: Path,
    sheet: PasswordSheet,
    contacts: Mapping[str, Contact],
    roster_passwords: Mapping[str, str | None],
    password_column: str | None,
) -> Plan:
    """Group the files by password, and give each group its password: the one in the sheet,
    else the roster's, else a new one."""
    by_ssid = sheet.passwords_by_ssid()
    by_file = sheet.rows_by_file()
    results: dict[int, FileResult] = {}
    groups: dict[str, list[int]] = defaultdict(list)
    targets: dict[Path, int] = {}
    sources = {item.source.resolve() for item in files}
    for index, item in enumerate(files):
        target = out_dir / item.output
        if target.resolve() in sources:
            raise BadInputError(
                f"the protected copy of {item.source} would replace an input.",
                hint="choose another --out folder.",
            )
        if target in targets:
            results[index] = file_result(
                item,
                Outcome.FAILED,
                f"another input ({files[targets[target]].source}) has the same output name",
            )
            continue
        targets[target] = index
        groups[f"ssid:{item.ssid}" if item.ssid else f"file:{item.output}"].append(index)
    plan = Plan(list(files), results, [], {}, {})
    for _key, indexes in sorted(groups.items()):
        first = files[indexes[0]]
        if first.ssid and password_column is None and len(by_ssid.get(first.ssid, ())) > 1:
            _plan_several_passwords(plan, indexes, by_file, out_dir)
            continue
        password, problem, new = _password_for(
            first, by_ssid, by_file, roster_passwords, password_column
        )
        if password is None:
            for index in indexes:
                results[index] = file_result(files[index], Outcome.FAILED, problem)
            continue
        tasks: list[FileTask] = []
        for index in indexes:
            item = files[index]
            row = by_file.get(neutralize_cell(item.output.as_posix()))
            if row is not None and row.password != password:
                results[index] = file_result(
                    item,
                    Outcome.FAILED,
                    "the password file lists this file with another password than the "
                    "student's other reports",
                )
                continue
            plan.passwords[index] = password
            plan.sheet_file[index] = row is not None
            tasks.append(FileTask(index, item.source, out_dir / item.output, out_dir))
        if tasks:
            for task in tasks:
                plan.group_of[task.index] = len(plan.tasks)
            plan.tasks.append(Task(password, tuple(tasks)))
            plan.new_password.append(new)
    return plan


def _plan_several_passwords(
    plan: Plan, indexes: Sequence[int], by_file: Mapping[str, SheetRow], out_dir: Path
) -> None:
    """A student to whom the sheet gives several passwords (two runs at once, before runs
    took the folder's lock, or a sheet edited by hand): each file the sheet lists keeps the
    password it is listed with, which its family may already have; a file it does not list
    fails, naming the files of each password, since caaspp cannot know which one the
    family would expect."""
    files = plan.files
    ssid = files[indexes[0]].ssid
    listed = sorted((row for row in by_file.values() if row.ssid == ssid), key=lambda row: row.file)
    by_password: dict[str, list[str]] = defaultdict(list)
    for row in listed:
        by_password[row.password].append(row.file)
    which = "; ".join(
        f"password {number} for {', '.join(names)}"
        for number, names in enumerate(by_password.values(), start=1)
    )
    problem = (
        f"the password file holds {len(by_password)} passwords for this student ({which}), "
        "so caaspp will not guess which one this file gets"
    )
    groups: dict[str, list[FileTask]] = defaultdict(list)
    for index in indexes:
        item = files[index]
        recorded = by_file.get(neutralize_cell(item.output.as_posix()))
        if recorded is None or recorded.ssid != ssid:
            plan.results[index] = file_result(item, Outcome.FAILED, problem)
            continue
        plan.passwords[index] = recorded.password
        plan.sheet_file[index] = True
        groups[recorded.password].append(
            FileTask(index, item.source, out_dir / item.output, out_dir)
        )
    for password, tasks in groups.items():
        for task in tasks:
            plan.group_of[task.index] = len(plan.tasks)
        plan.tasks.append(Task(password, tuple(tasks)))
        plan.new_password.append(False)


def _password_for(
    item: InputFile,
    by_ssid: Mapping[str, set[str]],
    by_file: Mapping[str, SheetRow],
    roster_passwords: Mapping[str, str | None],
    password_column: str | None,
) -> tuple[str | None, str, bool]:
    """(password, why there is none, whether it is new) for the group of ``item``."""
    known: set[str] = set()
    if item.ssid:
        known = by_ssid.get(item.ssid, set())
    else:
        row = by_file.get(neutralize_cell(item.output.as_posix()))
        if row is not None:
            known = {row.password}
    if len(known) > 1:
        return None, "the password file holds several passwords for this student", False
    if password_column is not None:
        if not item.ssid:
            return None, "no SSID is known for this file, so the roster gives it no password", False
        from_roster = roster_passwords.get(item.ssid)
        if not from_roster:
            return None, f"the roster has no password for this student ({password_column})", False
        from_roster = normalize_password(from_roster)
        if known and from_roster not in known:
            return (
                None,
                (
                    "the roster's password differs from the one in the password file, which the "
                    "family may already have"
                ),
                False,
            )
        return from_roster, "", not known
    if known:
        return next(iter(known)), "", False
    return generate_password(), "", True


def file_result(item: InputFile, outcome: Outcome, detail: str = "") -> FileResult:
    return FileResult(item.source, item.output.as_posix(), item.ssid, outcome, detail)
