"""`caaspp deliver`: the reporting season as one unattended nightly job."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from caaspp_cli import audit
from caaspp_cli.cli import render
from caaspp_cli.cli.app import state
from caaspp_cli.cli.options import HoldColumnOption, LanguageOption, TestOption, YearOption
from caaspp_cli.errors import ExitCode

if TYPE_CHECKING:
    from caaspp_cli.deliver.run import DeliverSummary


def deliver(
    roster: Annotated[
        Path,
        typer.Argument(
            metavar="ROSTER.csv",
            dir_okay=False,
            help="Roster with SSIDs, guardians' emails, schools and grades (and, optionally, "
            "a record-hold column).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            file_okay=False,
            show_default=False,
            help="The season's folder: reports/, protected/, print/, follow-up.csv and the "
            "ledgers. Use the same one every night.",
        ),
    ],
    passwords: Annotated[
        Path,
        typer.Option(
            "--passwords",
            metavar="FILE",
            dir_okay=False,
            show_default=False,
            help="The password sheet (owner-only), outside --out; kept and added to each night.",
        ),
    ],
    mail: Annotated[
        str,
        typer.Option(
            "--mail", metavar="NAME", show_default=False, help="Mail profile to send with."
        ),
    ],
    test: TestOption = None,
    language: LanguageOption = None,
    year: YearOption = None,
    recheck_after: Annotated[
        float,
        typer.Option(
            "--recheck-after",
            metavar="DAYS",
            min=0.0,
            help="Ask ETS again about a student after this many days: reports are released "
            "over weeks, and a student with one report may get another.",
        ),
    ] = 1.0,
    missing_after: Annotated[
        float,
        typer.Option(
            "--missing-after",
            metavar="DAYS",
            min=0.0,
            help="List a student for follow-up when ETS still has no report this many days "
            "after caaspp first asked.",
        ),
    ] = 14.0,
    daily_limit: Annotated[
        int | None,
        typer.Option(
            "--daily-limit",
            metavar="N",
            min=1,
            help="Recipients a day the mailbox may send to (default: the provider's limit).",
        ),
    ] = None,
    rate: Annotated[
        int,
        typer.Option("--rate", min=1, max=6000, metavar="N", help="Messages per minute."),
    ] = 30,
    no_daily_limit: Annotated[
        bool, typer.Option("--no-daily-limit", help="Send without counting a daily limit.")
    ] = False,
    print_pack: Annotated[
        bool,
        typer.Option(
            "--print-pack",
            help="Write print/: one PDF per school of the reports of families to reach on "
            "paper (no email, address refused), ordered by grade and name, with a list.",
        ),
    ] = False,
    notify: Annotated[
        list[str] | None,
        typer.Option(
            "--notify",
            metavar="ADDRESS",
            help="Mail staff the night's counts (never a name or an SSID); repeatable.",
        ),
    ] = None,
    ssid_column: Annotated[
        str | None, typer.Option(metavar="COL", help="Header of the SSID column.")
    ] = None,
    email_column: Annotated[
        str | None, typer.Option(metavar="COL", help="Header of the guardian email column.")
    ] = None,
    language_column: Annotated[
        str | None,
        typer.Option(metavar="COL", help="Header of the correspondence language column."),
    ] = None,
    hold_column: HoldColumnOption = None,
    templates: Annotated[
        Path | None,
        typer.Option(metavar="DIR", file_okay=False, help="The district's message templates."),
    ] = None,
    holidays: Annotated[
        Path | None,
        typer.Option(
            "--holidays",
            metavar="FILE",
            dir_okay=False,
            help="The district's days off, for the deadline clock in the staff summary "
            "(as `caaspp status --holidays`).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Fetch and protect as usual, but mail nobody: the messages go to DIR/outbox "
            "for review.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> int:
    """Run one night of the season: fetch what is new, protect it, send it, list follow-ups.

    Safe to run every night from cron, a systemd timer or Windows Task Scheduler: each run
    does only what is new or unfinished, and a run stopped at any moment is completed by
    the next one; no report is fetched, protected or sent twice.

    Exit codes: 0 the night's work is done (follow-ups, if any, are in follow-up.csv);
    3 a stage stopped (ETS or the mail server unreachable, the daily limit reached) or
    some reports failed: the next run goes on; 2 bad input; 4 login refused; 6 another
    caaspp run holds the folder; 130 interrupted.
    """
    from caaspp_cli.deliver.deadlines import read_holidays
    from caaspp_cli.deliver.run import DeliverOptions, DeliverRun
    from caaspp_cli.fetch.student import ReportFilters
    from caaspp_cli.send.quota import DailyLimit

    render.storage_warning(out)
    options = DeliverOptions(
        roster=roster,
        out_dir=out,
        passwords=passwords,
        mail=mail,
        filters=ReportFilters.parse(test, language, year),
        recheck_after=recheck_after,
        missing_after=missing_after,
        daily_limit=DailyLimit(daily_limit) if daily_limit is not None else None,
        no_daily_limit=no_daily_limit,
        rate=rate,
        print_pack=print_pack,
        notify=tuple(notify or ()),
        dry_run=dry_run,
        ssid_column=ssid_column,
        email_column=email_column,
        language_column=language_column,
        hold_column=hold_column,
        templates=templates,
        profile=state.profile,
        holidays=read_holidays(holidays) if holidays is not None else frozenset(),
    )
    run = DeliverRun(
        options,
        on_stage=None if as_json else (lambda name: render.info(f"{name} ...")),
        on_warning=render.warning,
    )
    summary = run.run()
    audit.note_counts(summary.counts())
    if as_json:
        render.print_json(summary.as_dict())
    else:
        _print_summary(summary)
    if summary.stopped or any(stage.counts.get("failed") for stage in summary.stages):
        return ExitCode.FAILED
    return ExitCode.OK


def _print_summary(summary: DeliverSummary) -> None:
    title = "caaspp deliver (dry run: nobody was mailed)" if summary.dry_run else "caaspp deliver"
    table = Table(title=title, title_justify="left")
    table.add_column("Stage")
    table.add_column("Tonight")
    for stage in summary.stages:
        if stage.skipped:
            what = f"skipped: {stage.skipped}"
        else:
            what = ", ".join(
                f"{render.label(key)} {value}" for key, value in stage.counts.items() if value
            )
            what = what or "nothing new"
            if stage.stopped:
                what += f"; stopped: {stage.stopped}"
        table.add_row(stage.name, what)
    render.stdout.print(table)
    season = summary.season
    render.info(
        f"Season so far: {render.plural(season.get('reports', 0), 'report')} found, "
        f"{season.get('emailed', 0)} emailed, {season.get('printed', 0)} in the print pack, "
        f"{render.plural(season.get('held', 0), 'student')} on a record hold."
    )
    follow_ups = sum(summary.follow_ups.values())
    if follow_ups:
        why = ", ".join(
            f"{count} {render.label(reason)}"
            for reason, count in sorted(summary.follow_ups.items())
        )
        render.notice(
            f"{render.plural(follow_ups, 'student')} {render.agree(follow_ups, 'needs')} a "
            f"person ({why}): {summary.follow_up}",
            "each row says what to do; the list is rewritten after every run.",
        )
    for path in summary.print_pack:
        render.info(f"Print pack: {path}")
    if summary.notify_problem:
        render.warning(summary.notify_problem)
    render.info(f"Where the season stands: caaspp status {summary.out_dir}")


def register(app: typer.Typer) -> None:
    app.command("deliver")(deliver)
