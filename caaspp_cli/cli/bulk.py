"""`caaspp bulk`: a whole roster's score reports into one folder, resumable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from caaspp_cli.cli import render
from caaspp_cli.cli.app import state
from caaspp_cli.errors import ExitCode


def bulk(
    roster_file: Annotated[
        Path,
        typer.Argument(metavar="ROSTER.csv", help="Roster exported from an SIS, CALPADS or TOMS."),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", metavar="DIR", help="Folder for the PDFs, the manifest and the ledger."
        ),
    ],
    test: Annotated[str | None, typer.Option(help="Test code (default: all).")] = None,
    language: Annotated[
        str | None, typer.Option(help="Language code or name (default: all).")
    ] = None,
    year: Annotated[
        str | None,
        typer.Option(
            metavar="YEAR", help="Spring year, e.g. 2025, or school year, 2024-25 (default: all)."
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Requests in flight at once.")
    ] = 8,
    layout: Annotated[
        str | None,
        typer.Option(
            help="File names inside --out, over roster columns and report fields, e.g. "
            "'{school}/{grade}/{ssid}_{test}_{year}_{language}.pdf'.",
        ),
    ] = None,
    ssid_column: Annotated[
        str | None,
        typer.Option(metavar="COL", help="Header of the SSID column, if caaspp cannot tell."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the roster and say what would be asked.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> int:
    """Fetch every student's score reports in a roster: one PDF per student and report,
    a manifest of who has none and why, and a re-run that resumes where it stopped."""
    from caaspp_cli.bulk import FAILED, STATUSES, BulkOptions, BulkProgress, BulkRun
    from caaspp_cli.fetch import ReportFilters
    from caaspp_cli.layout import DEFAULT_LAYOUT
    from caaspp_cli.roster import open_roster

    filters = ReportFilters.parse(test, language, year)
    roster = open_roster(roster_file, ssid_column=ssid_column)
    render.storage_warning(out)
    options = BulkOptions(
        out_dir=out,
        filters=filters,
        concurrency=concurrency,
        layout=layout or DEFAULT_LAYOUT,
        profile=state.profile,
    )
    run = BulkRun(roster, options, on_warning=render.warning)
    if dry_run:
        summary = run.dry_run()
        if as_json:
            render.print_json(summary.as_dict())
        else:
            _print_dry_run(summary, roster.row_count, filters)
        return ExitCode.OK

    with render.progress_bar(
        "students",
        "saved {task.fields[saved]}  failed {task.fields[failures]}  {task.fields[rate]:.1f}/s",
        enabled=not as_json,
        saved=0,
        failures=0,
        rate=0.0,
    ) as update:
        if update is not None:

            def on_progress(p: BulkProgress) -> None:
                update(
                    total=p.students_total,
                    completed=p.students_done,
                    saved=p.reports_saved,
                    failures=p.failures,
                    rate=p.rate,
                )

            run.on_progress = on_progress
        summary = asyncio.run(run.run())

    if as_json:
        render.print_json(summary.as_dict())
    else:
        render.counts_table(
            f"caaspp bulk: {roster.row_count} roster rows",
            "Rows",
            {status: summary.statuses[status] for status in STATUSES},
        )
        render.info(
            f"{summary.reports_saved} report(s) saved, {summary.reports_already} already "
            f"there, in {summary.elapsed:.1f} s; manifest: {summary.manifest}"
        )
    resume = f"run the same command again to resume: reports already saved in {out} are kept."
    if summary.interrupted:
        render.error("interrupted.", resume)
        return ExitCode.INTERRUPTED
    if summary.statuses[FAILED]:
        render.error(f"{summary.statuses[FAILED]} row(s) failed after retries.", resume)
        return ExitCode.FAILED
    return ExitCode.OK


def _print_dry_run(summary: object, rows: int, filters: object) -> None:
    from caaspp_cli.bulk import BulkSummary
    from caaspp_cli.fetch import ReportFilters

    assert isinstance(summary, BulkSummary) and isinstance(filters, ReportFilters)
    wanted = (
        ", ".join(
            f"{name} {value}"
            for name, value in (
                ("test", filters.test),
                ("language", filters.language),
                ("year", filters.year),
            )
            if value is not None
        )
        or "every test, language and year"
    )
    render.stdout.print(f"Dry run: {rows} roster rows; nothing was requested or written.")
    render.stdout.print(f"Would ask ETS for {summary.students_to_ask} student(s): {wanted}.")
    for profile, count in sorted(summary.by_profile.items()):
        render.stdout.print(f"  through profile {profile}: {count}")
    for status, count in sorted(summary.statuses.items()):
        render.stdout.print(f"Would report {count} row(s) as {status}.")


def register(app: typer.Typer) -> None:
    app.command("bulk")(bulk)
