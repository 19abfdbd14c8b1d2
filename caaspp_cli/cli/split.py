"""`caaspp split`: TOMS downloads -> one PDF per student report, as bulk writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caaspp_cli import audit
from caaspp_cli.cli import render
from caaspp_cli.errors import ExitCode


def split(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="INPUT...",
            help="Merged or single-report PDFs, zips as TOMS delivers them, or folders of them.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the reports and the manifest.")],
    roster_file: Annotated[
        Path | None,
        typer.Option(
            "--roster",
            metavar="ROSTER.csv",
            help="Roster to reconcile with: students without a report, reports of students "
            "it lacks. Its 10-digit SSIDs are also looked for on pages without an SSID label.",
        ),
    ] = None,
    layout: Annotated[
        str | None,
        typer.Option(
            help="File names inside --out, as for bulk, e.g. "
            "'{school}/{grade}/{ssid}_{test}_{year}_{language}.pdf' (roster columns need "
            "--roster).",
        ),
    ] = None,
    ssid_column: Annotated[
        str | None, typer.Option(help="Header of the roster's SSID column, if caaspp cannot tell.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> int:
    """Split score reports downloaded from TOMS into one PDF per student report.

    Reads each page's text to find where a report starts and whose it is (SSID, test,
    school year, language), copies each report's pages into its own owner-only PDF named as
    bulk names its downloads, and writes manifest.csv, so that protect and send take the
    folder as they take a bulk folder. Pages no report can take, duplicate reports, roster
    rows with an invalid SSID and students the roster lacks are listed in the manifest for a
    person (exit 3); nothing is guessed. A re-run keeps what is already split and intact.
    """
    from caaspp_cli.artifacts import REPORT_NAME_TEMPLATE, SPLIT_STATUSES
    from caaspp_cli.roster.read import open_roster
    from caaspp_cli.split.run import NEEDS_A_PERSON, SplitOptions, SplitProgress, SplitRun

    roster = open_roster(roster_file, ssid_column=ssid_column) if roster_file else None
    render.storage_warning(out)
    run = SplitRun(
        inputs,
        SplitOptions(out_dir=out, layout=layout or REPORT_NAME_TEMPLATE),
        roster,
        on_warning=render.warning,
    )
    with render.progress_bar(
        "reports",
        "pages read {task.fields[pages]}",
        enabled=not as_json,
        pages=0,
    ) as update:
        if update is not None:

            def on_progress(p: SplitProgress) -> None:
                update(total=p.reports_total or None, completed=p.reports_done, pages=p.pages_read)

            run.on_progress = on_progress
        summary = run.run()
    audit.note_counts(audit.flat_counts(summary.as_dict()))

    if as_json:
        render.print_json(summary.as_dict())
    else:
        render.counts_table(
            f"caaspp split: {render.plural(summary.pages, 'page')}",
            "Manifest rows",
            {status: summary.statuses[status] for status in SPLIT_STATUSES},
        )
        render.info(
            f"{render.plural(summary.reports_written, 'report')} written, "
            f"{summary.reports_already} already there, in {summary.elapsed:.1f} s; "
            f"manifest: {summary.manifest}"
        )
    if summary.needs_a_person:
        count = summary.needs_a_person
        why = ", ".join(
            f"{summary.statuses[status]} {render.label(status)}"
            for status in SPLIT_STATUSES
            if status in NEEDS_A_PERSON and summary.statuses[status]
        )
        render.needs_a_person(
            f"{render.plural(count, 'manifest row')} {render.agree(count, 'needs')} a person "
            f"({why}); each one's reason is in {summary.manifest}.",
            "nothing was guessed: see the rows with those statuses.",
        )
        return ExitCode.FAILED
    return ExitCode.OK


def register(app: typer.Typer) -> None:
    app.command("split")(split)
