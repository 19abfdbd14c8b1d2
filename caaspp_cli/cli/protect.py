"""`caaspp protect`: password-protect score reports, one password per family."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from caaspp_cli import audit
from caaspp_cli.cli import render
from caaspp_cli.errors import ExitCode

if TYPE_CHECKING:
    from caaspp_cli.protect.results import ProtectProgress, ProtectSummary

_LISTED_PROBLEMS = 50


def protect(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="INPUT...",
            help="PDF files, or folders of them (a `caaspp bulk` output folder works as is).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for the protected copies (same names; created owner-only).",
            file_okay=False,
            show_default=False,
        ),
    ],
    passwords: Annotated[
        Path,
        typer.Option(
            "--passwords",
            help="CSV of the passwords (owner-only), outside --out: the passwords travel "
            "apart from the files. An existing one is added to, and its passwords kept.",
            dir_okay=False,
            show_default=False,
        ),
    ],
    roster: Annotated[
        Path | None,
        typer.Option(
            "--roster",
            help="Roster CSV: names and emails for the password file.",
            dir_okay=False,
        ),
    ] = None,
    password_column: Annotated[
        str | None,
        typer.Option(
            "--password-column",
            metavar="COL",
            help="Take each student's password from this roster column "
            "(8 to 32 characters) instead of generating one.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes to use (default: the number of cores)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON (it holds no password).")
    ] = False,
) -> int:
    """Encrypt each report (AES-256) with its student's password, and list the passwords.

    One password per family, for all of its child's reports: send it apart from the files.
    Running the same command again protects only what is missing, with the same passwords.
    """
    from caaspp_cli.protect.run import protect_reports

    render.storage_warning(out)

    with render.progress_bar("files", enabled=not as_json) as update:

        def on_progress(event: ProtectProgress) -> None:
            if update is not None:
                update(total=event.total, completed=event.done)

        summary = protect_reports(
            inputs,
            out,
            passwords,
            roster=roster,
            password_column=password_column,
            workers=workers,
            on_progress=on_progress if update is not None else None,
        )
    audit.note_counts(summary.counts())
    if as_json:
        render.print_json(_as_json(summary))
    else:
        _print_summary(summary)
    failed = summary.failed
    if failed:
        render.error(
            f"{len(failed)} of {render.plural(len(summary.files), 'file')} could not be protected.",
            "the reasons are listed above; fix them and run the same command again: "
            "protected files are kept, and each student keeps their password.",
        )
        return ExitCode.FAILED
    return ExitCode.OK


def _as_json(summary: ProtectSummary) -> dict[str, Any]:
    return {
        "out": str(summary.out_dir),
        "passwords_file": str(summary.password_file),
        "students": summary.students,
        "new_passwords": summary.new_passwords,
        "counts": summary.counts(),
        "files": [
            {
                "input": str(result.source),
                "output": result.output,
                "ssid": result.ssid,
                "outcome": result.outcome.value,
                **({"detail": result.detail} if result.detail else {}),
            }
            for result in summary.files
        ],
    }


def _print_summary(summary: ProtectSummary) -> None:
    render.counts_table(f"Protected reports in {summary.out_dir}", "Files", summary.counts())
    problems = summary.failed
    if problems:
        listing = Table(title="Not protected", title_justify="left")
        listing.add_column("Input", overflow="fold")
        listing.add_column("Outcome")
        listing.add_column("Reason", overflow="fold")
        for result in problems[:_LISTED_PROBLEMS]:
            listing.add_row(str(result.source), result.outcome.value, result.detail)
        render.stdout.print(listing)
        if len(problems) > _LISTED_PROBLEMS:
            render.stdout.print(f"... and {len(problems) - _LISTED_PROBLEMS} more (see --json).")
    if not summary.students:  # no row was written: the password file may not even exist
        render.stdout.print("No report was protected, so no password was written.")
        return
    render.stdout.print(
        f"Passwords of {render.plural(summary.students, 'student')} ({summary.new_passwords} new) "
        "are in "
        f"{summary.password_file}. Send each family its password apart from its reports."
    )


def register(app: typer.Typer) -> None:
    app.command("protect")(protect)
