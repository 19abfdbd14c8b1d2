"""`caaspp bulk`: a whole roster's score reports into one folder, resumable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from caaspp_cli import audit
from caaspp_cli.cli import render
from caaspp_cli.cli.app import state
from caaspp_cli.cli.options import LanguageOption, TestOption, YearOption
from caaspp_cli.errors import ExitCode

if TYPE_CHECKING:
    from caaspp_cli.fetch.bulk import BulkSummary
    from caaspp_cli.fetch.student import ReportFilters


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
    test: TestOption = None,
    language: LanguageOption = None,
    year: YearOption = None,
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
    recheck_after: Annotated[
        float | None,
        typer.Option(
            "--recheck-after",
            metavar="DAYS",
            min=0.0,
            help="Ask ETS again about students an earlier run into --out settled (no report "
            "yet, or every report saved) once their answer is DAYS old: reports are released "
            "over weeks. Only reports not saved before are downloaded. 0: every run.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the roster and say what would be asked.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> int:
    """Fetch every student's score reports in a roster: one PDF per student and report,
    a manifest of who has none and why, and a re-run that resumes where it stopped."""
    from caaspp_cli.artifacts import REPORT_NAME_TEMPLATE
    from caaspp_cli.fetch.bulk import BulkOptions, BulkProgress, BulkRun
    from caaspp_cli.fetch.student import ReportFilters
    from caaspp_cli.roster.read import open_roster

    filters = ReportFilters.parse(test, language, year)
    roster = open_roster(roster_file, ssid_column=ssid_column)
    render.storage_warning(out)
    options = BulkOptions(
        out_dir=out,
        filters=filters,
        concurrency=concurrency,
        layout=layout or REPORT_NAME_TEMPLATE,
        profile=state.profile,
        recheck_after=recheck_after,
    )
    run = BulkRun(roster, options, on_warning=render.warning)
    if dry_run:
        summary = run.dry_run()
        if as_json:
            render.print_json(summary.as_dict())
        else:
            _print_dry_run(summary, roster.row_count, filters)
        return _needs_a_person(summary, out)

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
    audit.note_counts(audit.flat_counts(summary.as_dict()))

    if as_json:
        render.print_json(summary.as_dict())
    else:
        _print_summary(summary)
    if summary.interrupted:
        # Stopped on purpose (Ctrl-C, SIGTERM): said plainly, not as a failure.
        render.notice(
            f"Interrupted: {render.plural(summary.row_outcomes['not_reached'], 'roster row')} "
            f"not reached (not_reached in {summary.manifest}); "
            f"{render.plural(summary.reports_saved, 'report')} saved in this run.",
            f"run the same command again to resume: reports already saved in {out} are kept.",
        )
        return ExitCode.INTERRUPTED
    return _needs_a_person(summary, out)


def _print_summary(summary: BulkSummary) -> None:
    """One line per outcome: how many roster rows (students) ended so, and how many reports."""
    from caaspp_cli.artifacts import BULK_STATUSES, REPORT_STATUSES

    table = Table(
        title=f"caaspp bulk: {render.plural(summary.rows, 'roster row')}", title_justify="left"
    )
    table.add_column("Outcome")
    table.add_column("Roster rows", justify="right")
    table.add_column("Reports", justify="right")
    for status in BULK_STATUSES:
        rows, reports = summary.row_outcomes[status], summary.statuses[status]
        if not (rows or (status in REPORT_STATUSES and reports)):
            continue
        table.add_row(
            render.label(status), str(rows), str(reports) if status in REPORT_STATUSES else ""
        )
    render.stdout.print(table)
    render.info(
        f"{render.plural(summary.reports_saved, 'report')} saved, "
        f"{summary.reports_already} already there, in {summary.elapsed:.1f} s; "
        f"manifest: {summary.manifest}"
    )


def _needs_a_person(summary: BulkSummary, out: Path) -> int:
    """Exit 3 when some roster rows need a person, saying how many, why and where."""
    from caaspp_cli.artifacts import MANIFEST_NAME, NEEDS_A_PERSON

    count = summary.rows_needing_a_person
    if not count:
        return ExitCode.OK
    why = ", ".join(
        f"{summary.row_outcomes[status]} {render.label(status)}"
        for status in NEEDS_A_PERSON
        if summary.row_outcomes[status]
    )
    if summary.dry_run:
        render.needs_a_person(
            f"{count} of {render.plural(summary.rows, 'roster row')} would need a person "
            f"({why}); a run lists each one's reason in {out / MANIFEST_NAME}.",
            "fix those rows in the roster (or a profile's schools), or run anyway: every "
            "other row is fetched.",
        )
    else:
        render.needs_a_person(
            f"{count} of {render.plural(summary.rows, 'roster row')} "
            f"{render.agree(count, 'needs')} a person ({why}); each one's reason is in "
            f"{summary.manifest}.",
            "fix what they need (the roster, a profile's schools), then run the same command "
            "again: it asks only for those rows, and reports already saved are kept.",
        )
    return ExitCode.FAILED


def _print_dry_run(summary: BulkSummary, rows: int, filters: ReportFilters) -> None:
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
    render.stdout.print(
        f"Dry run: {render.plural(rows, 'roster row')}; nothing was requested or written."
    )
    render.stdout.print(
        f"Would ask ETS about {render.plural(summary.students_to_ask, 'student')}: {wanted}."
    )
    if summary.students_settled:
        render.stdout.print(
            f"Not asking again about {render.plural(summary.students_settled, 'student')} an "
            "earlier run into this folder settled (reports saved, or ETS's answer recorded)."
        )
    for profile, count in sorted(summary.by_profile.items()):
        render.stdout.print(f"  through profile {profile}: {count}")
    for status, count in sorted(summary.statuses.items()):
        render.stdout.print(
            f"Would list {render.plural(count, 'roster row')} as {render.label(status)}."
        )


def register(app: typer.Typer) -> None:
    app.command("bulk")(bulk)
