"""`caaspp purge`: delete the score reports of a folder once they have been distributed."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from caaspp_cli import audit
from caaspp_cli.cli import render
from caaspp_cli.errors import BadInputError, ExitCode

if TYPE_CHECKING:
    from caaspp_cli.purge.run import PurgePlan, PurgeSummary


def purge(
    folder: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            show_default=False,
            help="The --out folder of `caaspp bulk`, `caaspp split` or `caaspp protect`.",
        ),
    ],
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            metavar="DAYS",
            min=0,
            help="Only files last modified more than DAYS days ago (the password file too).",
        ),
    ] = None,
    passwords: Annotated[
        Path | None,
        typer.Option(
            "--passwords",
            metavar="FILE",
            dir_okay=False,
            help="Delete this password file of `caaspp protect` as well.",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Purge even reports not recorded as delivered (families `caaspp send` has "
            "not reached, or sent another way), or a folder that holds no caaspp ledger, "
            "manifest or send report. Never allows the root or the home folder.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> int:
    """Delete the PDFs under DIR once they have been distributed; keep the manifest, the
    ledgers and the send report.

    Removes every *.pdf file under DIR (in subfolders too), the messages a `caaspp send
    --dry-run` wrote into its outbox, and the temp files of killed runs, nothing else;
    symbolic links are neither followed nor removed. Asks first, showing how many files,
    how large and how old, unless --yes.

    Refuses the root, the home folder, and, without --force, a folder that caaspp did not
    write (a `caaspp protect` folder is known by its send ledger, or by the --passwords
    sheet naming its files; a `caaspp fetch` folder by holding only reports). Each purge
    is recorded in DIR/purge.log (counts, no names).

    Protected reports: without --force, nothing is deleted (exit 3) while a family is not
    recorded in the send ledger as sent both its messages; the counts are given, and
    send-report.csv says which. Unprotected reports (`caaspp bulk`, `caaspp split`)
    cannot be checked: what was sent is recorded beside their protected copies, so the
    confirmation says so; purge the protected folder first, or use --older-than.

    Deleted, not shredded: overwriting does not reach old blocks on SSDs and modern file
    systems, so keep reports on encrypted storage.
    """
    from caaspp_cli.purge.run import plan_purge
    from caaspp_cli.purge.run import purge as run_purge

    plan = plan_purge(folder, older_than_days=older_than, password_file=passwords, force=force)
    if plan.empty:
        summary = run_purge(plan)
        audit.note_counts(audit.flat_counts(summary.as_dict()))
        _print(summary, as_json)
        return ExitCode.OK
    if not yes:
        if not _stdin_is_terminal():
            raise BadInputError(
                "nothing deleted: caaspp purge asks before deleting, and there is no terminal "
                "to ask on.",
                hint="run it in a terminal, or pass --yes once you have checked the folder.",
            )
        render.stderr.print(_describe(plan))
        try:
            confirmed = typer.confirm("Delete them?", default=False, err=True)
        except typer.Abort:
            raise BadInputError(
                "nothing deleted: no confirmation was given.",
                hint="pass --yes to delete without asking.",
            ) from None
        if not confirmed:
            render.info("Nothing deleted.")
            return ExitCode.OK
    summary = run_purge(plan)
    audit.note_counts(audit.flat_counts(summary.as_dict()))
    _print(summary, as_json)
    if summary.failed:
        reason = summary.failed[0][1]
        render.error(
            f"{render.plural(len(summary.failed), 'file')} could not be deleted ({reason}).",
            "check their permissions and run the same command again; --debug names them.",
        )
        return ExitCode.FAILED
    return ExitCode.OK


def _describe(plan: PurgePlan) -> str:
    """What will go, for the confirmation: counts, size and dates, never a file's name."""
    lines = [f"In {plan.folder}:"]
    if plan.pdfs:
        span = f"from {_date(plan.oldest)} to {_date(plan.newest)}"
        lines.append(
            f"  {render.plural(len(plan.pdfs), 'PDF file')}, {_size(plan.pdf_bytes)}, "
            f"last modified {span}"
        )
    if plan.messages:
        lines.append(
            f"  {render.plural(len(plan.messages), 'message')} a dry run of `caaspp send` "
            "wrote (those with a password hold it)"
        )
    if plan.temps:
        lines.append(f"  {render.plural(len(plan.temps), 'unfinished temp file')} of killed runs")
    if plan.password_file is not None:
        lines.append(f"  and the password file {plan.password_file.path}")
    if plan.kept_newer:
        lines.append(
            f"  ({render.plural(plan.kept_newer, 'newer file')} "
            f"{render.agree(plan.kept_newer, 'is')} kept)"
        )
    if plan.undelivered_reports:
        lines.append(
            f"  including {render.plural(plan.undelivered_reports, 'report')} of "
            f"{render.plural(plan.undelivered_families, 'family')} not recorded as delivered "
            "(--force)"
        )
    if plan.unchecked:
        lines.append(
            "caaspp cannot tell whether these reports reached families: they are unprotected "
            "reports, and what `caaspp send` delivered is recorded beside the protected "
            "copies (purge that folder first: it refuses while a family is not sent)."
        )
    lines.append("They are deleted, not shredded; the manifest and the ledgers are kept.")
    return "\n".join(lines)


def _print(summary: PurgeSummary, as_json: bool) -> None:
    if as_json:
        render.print_json(summary.as_dict())
        return
    if summary.pdfs_removed or summary.temps_removed or summary.messages_removed:
        kinds = [
            render.plural(count, noun)
            for count, noun in (
                (summary.pdfs_removed, "PDF file"),
                (summary.messages_removed, "outbox message"),
                (summary.temps_removed, "temp file"),
            )
            if count
        ]
        what = " and ".join(kinds) if len(kinds) < 3 else f"{kinds[0]}, {kinds[1]} and {kinds[2]}"
        render.stdout.print(
            f"Deleted {what} ({_size(summary.bytes_removed)}) from {summary.folder}."
        )
        if summary.undelivered_forced:
            render.stdout.print(
                f"{summary.undelivered_forced} of them were not recorded as delivered (--force)."
            )
    elif not summary.failed and summary.password_file_removed is None:
        render.stdout.print(f"Nothing to delete in {summary.folder}.")
    if summary.password_file_removed is not None:
        render.stdout.print(f"Deleted the password file {summary.password_file_removed}.")
    elif summary.password_file_kept:
        render.stdout.print("Kept the password file: it is newer than --older-than.")
    if summary.kept_newer:
        render.stdout.print(
            f"Kept {render.plural(summary.kept_newer, 'file')} newer than --older-than."
        )
    if summary.links_skipped:
        render.stdout.print(
            f"Left {render.plural(summary.links_skipped, 'symbolic link')} alone: links are "
            "not followed."
        )


def _size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _date(moment: float | None) -> str:
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M") if moment else "-"


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def register(app: typer.Typer) -> None:
    app.command("purge")(purge)
