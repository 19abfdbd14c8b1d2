"""`caaspp send`: email each family its protected reports, and the password separately."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from caaspp_cli import audit
from caaspp_cli.cli import render
from caaspp_cli.cli.options import HoldColumnOption
from caaspp_cli.errors import ExitCode

if TYPE_CHECKING:
    from caaspp_cli.send.outcomes import SendProgress, SendSummary

_LISTED_PROBLEMS = 50
_LISTED_KEPT = 6


def _export_templates_option(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """--export-templates and --force are eager, so that the export runs (and the command
    stops) before the options a send requires are asked for; whichever of the two comes
    second does it."""
    ctx.meta[f"caaspp.send.{param.name}"] = value
    folder = ctx.meta.get("caaspp.send.export_templates")
    if folder is None or "caaspp.send.force" not in ctx.meta:
        return value
    from caaspp_cli.send.templates import export_templates

    result = export_templates(Path(folder), force=bool(ctx.meta["caaspp.send.force"]))
    if result.written:
        render.info(
            f"{render.plural(len(result.written), 'template file')} written to {folder} "
            "(DIR/<language>/). English is the reference text; have each translation reviewed "
            "before its first use, then send with --templates DIR."
        )
    if result.kept:
        kept = [str(path) for path in result.kept]
        shown = ", ".join(kept[:_LISTED_KEPT]) + (" ..." if len(kept) > _LISTED_KEPT else "")
        render.notice(
            f"{render.plural(len(kept), 'template file')} already in {folder} "
            f"{render.agree(len(kept), 'was')} left as {render.agree(len(kept), 'it', 'they')} "
            f"{render.agree(len(kept), 'was')}: {shown}",
            "--force writes the built-in text over them.",
        )
    raise typer.Exit(ExitCode.OK)


def send(
    roster: Annotated[
        Path,
        typer.Option(
            "--roster",
            metavar="ROSTER.csv",
            dir_okay=False,
            show_default=False,
            help="Roster with the guardians' emails (several in one cell are fine) and, "
            "optionally, their correspondence language.",
        ),
    ],
    pdfs: Annotated[
        Path,
        typer.Option(
            "--pdfs",
            metavar="DIR",
            file_okay=False,
            show_default=False,
            help="The protected reports (the --out folder of `caaspp protect`); the send "
            "ledger and send-report.csv are kept there.",
        ),
    ],
    passwords: Annotated[
        Path,
        typer.Option(
            "--passwords",
            metavar="FILE",
            dir_okay=False,
            show_default=False,
            help="The password file `caaspp protect` wrote.",
        ),
    ],
    smtp: Annotated[
        str,
        typer.Option(
            "--mail",
            "--smtp",
            metavar="NAME",
            show_default=False,
            help="Mail profile to send through (see `caaspp config mail`; --smtp is the same).",
        ),
    ],
    email_column: Annotated[
        str | None,
        typer.Option("--email-column", metavar="COL", help="Header of the guardian email column."),
    ] = None,
    language_column: Annotated[
        str | None,
        typer.Option(
            "--language-column",
            metavar="COL",
            help="Header of the correspondence language column (each family gets the messages "
            "in its language: en, es, vi, fil, ko, zh-Hant, ar; English if blank or unknown).",
        ),
    ] = None,
    hold_column: HoldColumnOption = None,
    templates: Annotated[
        Path | None,
        typer.Option(
            "--templates",
            metavar="DIR",
            file_okay=False,
            help="Your own templates, in DIR/<language>/ (file names and placeholders: the "
            "README, 'Your own message templates'); the built-in ones serve the other "
            "languages.",
        ),
    ] = None,
    rate: Annotated[
        int, typer.Option("--rate", min=1, max=6000, metavar="N", help="Messages per minute.")
    ] = 30,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Send nothing: write every message that would be sent as .eml files into "
            "--outbox, for review.",
        ),
    ] = False,
    outbox: Annotated[
        Path,
        typer.Option(
            "--outbox",
            metavar="DIR",
            file_okay=False,
            help="Where --dry-run writes the messages (owner-only; they hold the passwords).",
        ),
    ] = Path("caaspp-outbox"),
    resend_uncertain: Annotated[
        bool,
        typer.Option(
            "--resend-uncertain",
            help="Send again the messages that may or may not have been accepted when an "
            "earlier run was cut off (listed as uncertain in send-report.csv).",
        ),
    ] = False,
    mark_uncertain_sent: Annotated[
        bool,
        typer.Option(
            "--mark-uncertain-sent",
            help="Record the uncertain messages as accepted (the mail server's log shows "
            "them) and go on with the passwords.",
        ),
    ] = False,
    daily_limit: Annotated[
        int | None,
        typer.Option(
            "--daily-limit",
            min=1,
            metavar="N",
            help="Send at most N messages in 24 hours (counting what the send ledger "
            "recorded in the last 24 hours); at the limit the run stops before the next "
            "family, and says when to run again. Default: the provider's documented "
            "limit (Microsoft 365: 10,000 recipients a day; Google: 2,000 messages).",
        ),
    ] = None,
    no_daily_limit: Annotated[
        bool,
        typer.Option(
            "--no-daily-limit",
            help="Apply no daily limit, not even the provider's (a relay without one).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON (it holds no password).")
    ] = False,
    export_templates: Annotated[
        Path | None,
        typer.Option(
            "--export-templates",
            metavar="DIR",
            file_okay=False,
            is_eager=True,
            callback=_export_templates_option,
            help="Write the built-in templates, every language, into DIR/<language>/ as a "
            "starting point for your own (--templates DIR), and stop; files already there "
            "are kept unless --force. Nothing is sent; no other option is needed.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            is_eager=True,
            callback=_export_templates_option,
            help="With --export-templates: write over template files already in DIR.",
        ),
    ] = False,
) -> int:
    """Email each family its child's protected score reports, then the password separately.

    Message 1 carries the protected PDF(s) and says that the password follows.

    Message 2, sent once message 1 is accepted, carries the password and no attachment.

    Run the same command again to go on after a stop: nothing accepted is sent twice.

    Every row's outcome goes to send-report.csv, beside the PDFs.

    Exit codes: 0 every roster row is done (sent, sent before, or no report to send); 3 some
    rows need a person (listed in send-report.csv); 2 bad input; 4 login refused; 6 another
    caaspp run holds the folder.
    """
    from caaspp_cli.send.quota import DailyLimit
    from caaspp_cli.send.run import SendOptions, send_reports

    render.storage_warning(pdfs)
    options = SendOptions(
        roster=roster,
        pdfs=pdfs,
        passwords=passwords,
        smtp=smtp,
        email_column=email_column,
        language_column=language_column,
        hold_column=hold_column,
        templates=templates,
        rate=rate,
        dry_run=dry_run,
        outbox=outbox,
        resend_uncertain=resend_uncertain,
        mark_uncertain_sent=mark_uncertain_sent,
        daily_limit=DailyLimit(daily_limit) if daily_limit is not None else None,
        no_daily_limit=no_daily_limit,
    )
    with render.progress_bar(
        "writing" if dry_run else "sending",
        "sent {task.fields[sent]}  not sent {task.fields[problems]}",
        enabled=not as_json,
        sent=0,
        problems=0,
    ) as update:

        def on_progress(event: SendProgress) -> None:
            if update is not None:
                update(
                    total=event.total,
                    completed=event.done,
                    sent=event.sent,
                    problems=event.problems,
                )

        summary = send_reports(options, on_progress=on_progress if update is not None else None)
    audit.note_counts({**summary.counts(), "messages_sent": summary.messages_sent})
    if as_json:
        render.print_json(_as_json(summary))
    else:
        _print_summary(summary)
    if summary.daily_limit_note and not as_json:
        render.info(summary.daily_limit_note)
    problems = summary.problems
    if problems:
        count, rows = len(problems), len(summary.rows)
        why = ", ".join(
            f"{number} {render.label(outcome)}"
            for outcome, number in summary.counts().items()
            if number and outcome in {row.outcome.value for row in problems}
        )
        if summary.dry_run:
            what = f"{render.agree(count, 'is')} not ready to send"
        else:
            what = (
                f"{render.agree(count, 'was')} not sent and {render.agree(count, 'needs')} a person"
            )
        render.needs_a_person(
            f"{count} of {render.plural(rows, 'roster row')} {what} ({why}); each one's reason "
            f"is in {summary.report}.",
            "fix what they need and run the same command again: nothing the mail server "
            "accepted is sent twice.",
        )
        return ExitCode.FAILED
    return ExitCode.OK


def _as_json(summary: SendSummary) -> dict[str, Any]:
    return {
        "dry_run": summary.dry_run,
        "report": str(summary.report),
        "outbox": str(summary.outbox) if summary.outbox is not None else None,
        "messages_sent": summary.messages_sent,
        "messages_written": summary.messages_written,
        "counts": summary.counts(),
        **({"daily_limit": summary.daily_limit_note} if summary.daily_limit_note else {}),
        "rows": [
            {
                "line": row.line,
                "ssid": row.ssid,
                "outcome": row.outcome.value,
                "report_message": row.report_message or None,
                "password_message": row.password_message or None,
                **({"detail": row.detail} if row.detail else {}),
            }
            for row in summary.rows
        ],
    }


def _print_summary(summary: SendSummary) -> None:
    title = "Dry run: nothing was sent" if summary.dry_run else "caaspp send"
    rows = render.plural(len(summary.rows), "roster row")
    render.counts_table(f"{title} ({rows})", "Roster rows", summary.counts())
    problems = summary.problems
    if problems:
        listing = Table(title="Not sent", title_justify="left")
        listing.add_column("Line", justify="right")
        listing.add_column("Outcome")
        listing.add_column("Why", overflow="fold")
        for row in problems[:_LISTED_PROBLEMS]:
            listing.add_row(str(row.line), row.outcome.value, row.detail)
        render.stdout.print(listing)
        if len(problems) > _LISTED_PROBLEMS:
            render.stdout.print(f"... and {len(problems) - _LISTED_PROBLEMS} more.")
    if summary.dry_run:
        render.info(
            f"{render.plural(summary.messages_written, 'message')} written to {summary.outbox} "
            "for review. "
            "They hold the passwords: delete the folder once reviewed."
        )
    else:
        render.info(
            f"{render.plural(summary.messages_sent, 'message')} sent in {summary.elapsed:.1f} s."
        )
    render.info(f"Every row's outcome: {summary.report}")


def register(app: typer.Typer) -> None:
    app.command("send")(send)
