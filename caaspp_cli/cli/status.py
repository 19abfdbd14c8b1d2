"""`caaspp status`: where a season folder stands, per school, with the legal clock."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich.table import Table

from caaspp_cli.cli import render
from caaspp_cli.errors import BadInputError, ExitCode

if TYPE_CHECKING:
    from caaspp_cli.deliver.status import SeasonStatus, Tally


def status(
    folder: Annotated[
        Path,
        typer.Argument(
            metavar="DIR", file_okay=False, help="The season folder of `caaspp deliver --out`."
        ),
    ],
    holidays: Annotated[
        Path | None,
        typer.Option(
            "--holidays",
            metavar="FILE",
            dir_okay=False,
            help="The district's days off: one date (2026-11-26) or range "
            "(2026-12-21..2027-01-01) per line; they do not count as working days.",
        ),
    ] = None,
    today: Annotated[
        str | None,
        typer.Option("--today", metavar="YYYY-MM-DD", help="Count the clock as of this day."),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            dir_okay=False,
            help="Also write a self-contained HTML page (counts only) to open or forward.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> int:
    """Show where the season stands: per school, reports found, protected, emailed,
    printed, students waiting for a report, follow-ups, and the deadline clock.

    CAASPP reports are due 20 working days, ELPAC reports 30 calendar days, after caaspp
    first saw them. Reads the season ledger only; changes nothing.
    """
    from caaspp_cli.deliver.deadlines import read_holidays
    from caaspp_cli.deliver.html import write_html
    from caaspp_cli.deliver.season import SeasonLedger
    from caaspp_cli.deliver.status import season_status

    day = _day(today)
    days_off = read_holidays(holidays) if holidays is not None else frozenset()
    if not folder.is_dir():
        raise BadInputError(f"the season folder {folder} does not exist.")
    ledger = SeasonLedger.existing(folder)
    if ledger is None:
        raise BadInputError(
            f"{folder} is not a season folder: `caaspp deliver` has not run into it.",
            hint="give the --out folder of `caaspp deliver`.",
        )
    with ledger:
        result = season_status(ledger, day, days_off)
    if html is not None:
        write_html(html, result)
    if as_json:
        render.print_json(result.as_dict())
    else:
        _print(result)
        if html is not None:
            render.info(f"HTML page: {html}")
    return ExitCode.OK


def _day(text: str | None) -> date:
    if text is None:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInputError(f"--today {text!r} is not a date (YYYY-MM-DD).") from None


# The tables, each narrow enough for a terminal (or a cron mail) of 80 columns with its
# headings whole: (title, headings).
_TABLES: Final = (
    ("Students", ("Students", "Waiting", "Held", "Follow-up")),
    ("Reports", ("Reports", "Protected", "Emailed", "Printed")),
    (
        "The deadline clock (undelivered reports)",
        ("Due within 5 working days", "Overdue", "Next due"),
    ),
)


def _print(result: SeasonStatus) -> None:
    render.stdout.print(f"caaspp status, {result.today.isoformat()}")
    rows = [*result.schools.items(), ("All schools", result.total)]
    for title, headings in _TABLES:
        table = Table(title=title, title_justify="left")
        table.add_column("School", min_width=12)
        for heading in headings:
            table.add_column(heading, justify="right", min_width=min(len(heading), 12))
        for position, (name, tally) in enumerate(rows):
            if position == len(rows) - 1:
                table.add_section()
            cells = _cells(tally)
            table.add_row(name, *(cells[heading] for heading in headings))
        render.stdout.print(table)
    total = result.total
    run = result.last_run
    if run is None:
        render.info("caaspp deliver has not finished a run here yet.")
    else:
        from datetime import datetime

        render.info(
            f"Last run: {datetime.fromtimestamp(run.started):%Y-%m-%d %H:%M}, {run.status}."
        )
    if total.overdue or total.due_soon:
        render.notice(
            f"{render.plural(total.overdue, 'report')} overdue, {total.due_soon} due within 5 "
            f"working days (next due {total.next_due}).",
            "deliver them: see follow-up.csv in the season folder for who needs a person.",
        )
    if result.rows_without_ssid:
        render.info(
            f"Also {render.plural(result.rows_without_ssid, 'roster row')} without a valid SSID "
            "(in follow-up.csv, not in the table)."
        )
    if not result.holidays:
        render.info("No --holidays given: only weekends are skipped when counting working days.")


def _cells(tally: Tally) -> dict[str, str]:
    return {
        "Students": str(tally.students),
        "Reports": str(tally.reports),
        "Protected": str(tally.protected),
        "Emailed": str(tally.emailed),
        "Printed": str(tally.printed),
        "Waiting": str(tally.waiting),
        "Held": str(tally.held),
        "Follow-up": str(tally.follow_ups),
        "Due within 5 working days": str(tally.due_soon),
        "Overdue": str(tally.overdue),
        "Next due": tally.next_due.isoformat() if tally.next_due else "",
    }


def register(app: typer.Typer) -> None:
    app.command("status")(status)
