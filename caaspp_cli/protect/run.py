"""`caaspp protect`: the run, from the inputs to the protected copies and the sheet.

:func:`protect_reports` checks the options and the locations, collects the inputs, takes
the locks of the password file and of the output folder, makes the plan (whose password
each report gets), runs the tasks in worker processes, and records each finished batch:
the sheet rows first (appended and fsynced), then the renames into place (and the
folders fsynced). How a report is protected and verified: see :mod:`caaspp_cli.protect`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from caaspp_cli.artifacts import SEND_LEDGER_NAME, SEND_REPORT_NAME, PasswordSheet
from caaspp_cli.errors import BadInputError, FileHeldError
from caaspp_cli.fsutil import (
    fsync_dir,
    prepare_output_dir,
    replace_into_place,
    sweep_temp_files,
)
from caaspp_cli.protect.inputs import (
    EncryptedInput,
    InputFile,
    InputProblem,
    check_locations,
    collect_inputs,
    open_input,
)
from caaspp_cli.protect.plan import Contact, Plan, file_result, make_plan, read_roster
from caaspp_cli.protect.results import (
    OK_OUTCOMES,
    FileResult,
    Outcome,
    ProtectProgress,
    ProtectSummary,
)
from caaspp_cli.protect.worker import Done, default_workers, remove_temps, run_tasks

__all__ = ["protect_reports"]


def protect_reports(
    inputs: Sequence[Path],
    out_dir: Path,
    password_file: Path,
    *,
    roster: Path | None = None,
    password_column: str | None = None,
    workers: int | None = None,
    on_progress: Callable[[ProtectProgress], None] | None = None,
) -> ProtectSummary:
    """Protect every PDF of ``inputs`` into ``out_dir``, their passwords in ``password_file``.

    BadInputError (nothing written) for unusable options; otherwise every file gets a
    result, and files that could not be protected are in ``summary.failed``.
    """
    if password_column is not None and roster is None:
        raise BadInputError("--password-column needs --roster.")
    # Resolved once ("a/new/../../b" is ./b): links under it are then refused.
    out_dir = Path(os.path.realpath(out_dir))
    check_locations(inputs, out_dir, password_file)
    files = collect_inputs(inputs, out_dir)
    if not files:
        raise BadInputError(
            "no PDF files found in " + ", ".join(str(path) for path in inputs) + ".",
            hint="name PDF files, or folders holding them (a `caaspp bulk` output folder).",
        )
    _refuse_protected_inputs(inputs, files)
    contacts, roster_passwords = read_roster(roster, password_column, files)
    from caaspp_cli.folderlock import FolderLock

    # Both locks before the sheet is read: two runs that each read it, then each add a
    # password for the same student, would leave that student with two. The sheet's first,
    # so that a sheet that cannot be written leaves no --out folder behind.
    with FolderLock.for_file(password_file, "protect", "password file"):
        prepare_output_dir(out_dir)
        with FolderLock.for_folder(out_dir, "protect"):
            return _protect_locked(
                files,
                out_dir,
                password_file,
                contacts,
                roster_passwords,
                password_column,
                workers,
                on_progress,
            )


def _refuse_protected_inputs(inputs: Sequence[Path], files: Sequence[InputFile]) -> None:
    """BadInputError, before any work, when the inputs are protect's own output: every PDF
    already encrypted, or a folder `caaspp send` has used (it sends only protected copies)."""

    sent_from = any(
        given.is_dir()
        and ((given / SEND_LEDGER_NAME).exists() or (given / SEND_REPORT_NAME).exists())
        for given in inputs
    )
    if not sent_from and not all(_already_encrypted(item.source) for item in files):
        return
    names = ", ".join(str(given) for given in inputs)
    why = "`caaspp send` has used it" if sent_from else "every PDF in it is already encrypted"
    verb = "are" if len(inputs) > 1 else "is"
    raise BadInputError(
        f"{names} {verb} `caaspp protect`'s output ({why}): give the folder of unprotected "
        "reports instead, the --out folder of `caaspp bulk` or `caaspp split`."
    )


def _already_encrypted(path: Path) -> bool:
    try:
        pdf = open_input(path)
    except EncryptedInput:
        return True
    except InputProblem:
        return False
    pdf.close()
    return False


def _protect_locked(
    files: list[InputFile],
    out_dir: Path,
    password_file: Path,
    contacts: dict[str, Contact],
    roster_passwords: dict[str, str | None],
    password_column: str | None,
    workers: int | None,
    on_progress: Callable[[ProtectProgress], None] | None,
) -> ProtectSummary:
    sheet = PasswordSheet(password_file)
    plan = make_plan(files, out_dir, sheet, contacts, roster_passwords, password_column)
    sheet.check_writable()
    # A run killed mid-way (kill -9, a power cut) leaves its temp files: hidden copies of
    # reports that nothing else would ever remove.
    sweep_temp_files(out_dir)
    total = len(files)
    results: dict[int, FileResult] = {}

    def report(index: int, result: FileResult) -> None:
        results[index] = result
        if on_progress:
            on_progress(ProtectProgress(len(results), total, result))

    if on_progress:
        on_progress(ProtectProgress(0, total))
    for index, result in plan.results.items():
        report(index, result)

    def finish(batch: list[Done]) -> None:
        for index, result in _record(batch, plan, sheet, contacts, out_dir):
            report(index, result)

    run_tasks(plan.tasks, workers or default_workers(), finish)
    used = {plan.group_of[index] for index, result in results.items() if result.ok}
    return ProtectSummary(
        out_dir,
        password_file,
        [results[index] for index in range(len(files))],
        students=len(used),
        new_passwords=sum(plan.new_password[group] for group in used),
    )


def _record(
    batch: list[Done],
    plan: Plan,
    sheet: PasswordSheet,
    contacts: Mapping[str, Contact],
    out_dir: Path,
) -> list[tuple[int, FileResult]]:
    """Write the sheet rows of a finished batch (fsync), then rename its files into place."""
    rows: list[dict[str, str]] = []
    for item in batch:
        if item.outcome in OK_OUTCOMES and not plan.sheet_file[item.index]:
            source = plan.files[item.index]
            contact = contacts.get(source.ssid or "", Contact())
            rows.append(
                {
                    "ssid": source.ssid or "",
                    "file": source.output.as_posix(),
                    "password": plan.passwords[item.index],
                    "student_name": contact.student_name,
                    "guardian_name": contact.guardian_name,
                    "email": contact.email,
                    "language": contact.language,
                }
            )
    try:
        sheet.append(rows)
    except BaseException:
        remove_temps(batch)
        raise
    results: list[tuple[int, FileResult]] = []
    renamed_in: set[Path] = set()
    try:
        for item in batch:
            source = plan.files[item.index]
            outcome, detail = item.outcome, item.detail
            if item.temp is not None:
                target = out_dir / source.output
                try:
                    replace_into_place(item.temp, target)
                    renamed_in.add(target.parent)
                except FileHeldError as exc:
                    item.temp.unlink(missing_ok=True)
                    outcome, detail = Outcome.FAILED, f"{exc.message} {exc.hint}"
                except OSError as exc:
                    item.temp.unlink(missing_ok=True)
                    outcome, detail = Outcome.FAILED, f"cannot rename into place: {exc.strerror}"
            results.append((item.index, file_result(source, outcome, detail)))
    except BaseException:
        remove_temps(batch)  # those not renamed yet
        raise
    for folder in sorted(renamed_in):
        fsync_dir(folder)
    return results
