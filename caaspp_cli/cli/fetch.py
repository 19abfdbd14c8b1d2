"""`caaspp fetch`: one student's score reports."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from caaspp_cli import audit
from caaspp_cli.cli import render
from caaspp_cli.cli.app import state
from caaspp_cli.cli.options import LanguageOption, TestOption, YearOption
from caaspp_cli.errors import ExitCode


def fetch(
    ssid: Annotated[str, typer.Option("--ssid", help="The student's 10-digit SSID.")],
    test: TestOption = None,
    language: LanguageOption = None,
    year: YearOption = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the PDFs.", file_okay=False)
    ] = Path("."),
    list_only: Annotated[
        bool, typer.Option("--list", help="Only list the reports and their links.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if the file is already there.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> int:
    """Fetch one student's score reports; each PDF is saved as
    {ssid}_{test}_{year}_{language}.pdf."""
    from caaspp_cli.ets.connect import connect
    from caaspp_cli.fetch.student import ReportFilters, check_ssid, fetch_student

    ssid = check_ssid(ssid)
    filters = ReportFilters.parse(test, language, year)
    render.storage_warning(out)
    profile, client = connect(state.profile, warn=render.warning)

    async def run() -> Any:
        async with client:
            return await fetch_student(
                client, ssid, filters, out, profile=profile.name, list_only=list_only, force=force
            )

    result = asyncio.run(run())
    audit.note_counts({"reports": len(result.reports), "failed": len(result.failed)})
    if as_json:
        render.print_json(
            {
                "ssid": result.ssid,
                "profile": profile.name,
                "reports": [
                    {
                        "test": r.entry.test,
                        "year": r.entry.year,
                        "grade": r.entry.grade,
                        "language": r.entry.language,
                        "format": r.entry.format,
                        "outcome": r.outcome,
                        "file": str(r.path) if r.path else None,
                        "bytes": r.size,
                        "sha256": r.sha256,
                        "link_expires_at": r.entry.expires_at,
                        **({"url": r.entry.url} if list_only else {}),
                        **({"detail": r.detail} if r.detail else {}),
                    }
                    for r in result.reports
                ],
            }
        )
    else:
        _print_table(result, list_only)
    if result.failed:
        render.error(
            f"{len(result.failed)} of {render.plural(len(result.reports), 'report')} could not be "
            "saved.",
            "run the same command again: saved reports are kept and only the others are tried.",
        )
        return ExitCode.FAILED
    return ExitCode.OK


def _print_table(result: Any, list_only: bool) -> None:
    """What a person needs at 80 columns: the report, and the file name (the folder once,
    below) or, with --list, the link and until when it works."""
    from caaspp_cli.fetch.student import Outcome

    table = Table(
        title=f"Score reports of {result.ssid}", title_justify="left", box=box.SIMPLE_HEAD
    )
    if list_only:
        table.add_column("#", justify="right")
    for column in ("Test", "Year", "Grade", "Lang.", "Format"):
        table.add_column(column, no_wrap=True)
    table.add_column("Link valid until (UTC)" if list_only else "Result", overflow="fold")
    folders = set()
    for number, report in enumerate(result.reports, 1):
        entry = report.entry
        cells = [entry.test, str(entry.year), entry.grade or "", entry.language, _format(entry)]
        if list_only:
            until = entry.expires_at.strftime("%Y-%m-%d %H:%M") if entry.expires_at else ""
            cells = [str(number), *cells, until]
        elif report.outcome in (Outcome.SAVED, Outcome.ALREADY_SAVED):
            folders.add(report.path.parent)
            already = " (already there)" if report.outcome == Outcome.ALREADY_SAVED else ""
            cells.append(report.path.name + already)
        elif report.outcome == Outcome.HTML_SKIPPED:
            cells.append("not a PDF: open it with --list")
        else:
            cells.append(f"{report.outcome.replace('_', ' ')}: {report.detail}")
        table.add_row(*cells)
    render.stdout.print(table)
    for folder in sorted(folders):
        render.stdout.print(f"Saved in {folder}")
    if list_only:
        # Each link whole on a line of its own, so that it can be copied.
        for number, report in enumerate(result.reports, 1):
            render.stdout.print(f"{number}. {report.entry.url}")
        render.warning("links are valid for a limited time (30 minutes in production).")


def _format(entry: Any) -> str:
    """The format, with the subject of a per-subject (HTML) report: two HTML entries of one
    test and language differ only by it."""
    subject = (entry.model_extra or {}).get("subject")
    return f"{entry.format} ({subject})" if isinstance(subject, str) and subject else entry.format


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch)
