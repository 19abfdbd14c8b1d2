"""The season's status as one self-contained HTML page, to open or forward.

No script, no image, no font, no link to anything: inline CSS only, and a Content Security
Policy that forbids the rest, so the page looks the same from a mail attachment, a file
share or a laptop without network, and reports nothing to anybody when opened. It holds
counts only (a school's name is the most it names). Every text is escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from pathlib import Path
from typing import Final

from caaspp_cli.deliver.deadlines import SOON_WORKING_DAYS
from caaspp_cli.deliver.status import SeasonStatus, Tally
from caaspp_cli.fsutil import write_private_bytes

CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'"

_STYLE: Final = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 2rem auto; max-width: 80rem; padding: 0 1rem; color: #1b1f24; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
.sub { color: #57606a; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1.2rem 0; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: .6rem .9rem; min-width: 8rem; }
.card b { display: block; font-size: 1.5rem; }
.card.warn b { color: #9a6700; } .card.bad b { color: #cf222e; }
table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
th, td { text-align: right; padding: .3rem .4rem; border-bottom: 1px solid #eaeef2; }
td, tfoot th { white-space: nowrap; } td:first-child, tfoot th { white-space: normal; }
th { font-size: .8rem; } td:first-child { min-width: 12rem; }
.wrap { overflow-x: auto; }
th:first-child, td:first-child { text-align: left; }
.bar { display: flex; height: .9rem; width: 8rem; background: #eaeef2; border-radius: 4px;
       overflow: hidden; }
.bar span { display: block; height: 100%; }
.delivered { background: #2da44e; } .waiting { background: #bf8700; }
.overdue { background: #cf222e; } .pending { background: #8c959f; }
.legend span { display: inline-block; width: .8rem; height: .8rem; margin: 0 .3rem 0 1rem;
               vertical-align: middle; border-radius: 2px; }
footer { margin-top: 2rem; color: #57606a; font-size: .85rem; }
.bar span, .legend span { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 11px; }
  .wrap { overflow: visible; }
  td:first-child { min-width: 0; }
  th, td { padding: .2rem .25rem; } th { font-size: .7rem; }
  .bar { width: 4rem; }
  .card { padding: .3rem .6rem; min-width: 0; }
}
"""


def render_html(status: SeasonStatus, *, generated: datetime | None = None) -> str:
    moment = (generated or datetime.now().astimezone()).isoformat(timespec="minutes")
    total = status.total
    run = status.last_run
    last = (
        "caaspp deliver has not run yet"
        if run is None
        else f"last run {datetime.fromtimestamp(run.started).astimezone():%Y-%m-%d %H:%M}: "
        f"{run.status}"
    )
    cards = "".join(
        f'<div class="card{cls}" data-count="{key}"><b>{value}</b>{escape(label)}</div>'
        for key, label, value, cls in (
            ("students", "students", total.students, ""),
            ("reports", "reports found", total.reports, ""),
            ("delivered", "delivered", total.delivered, ""),
            ("waiting", "students waiting for a report", total.waiting, ""),
            ("follow_ups", "need a person", total.follow_ups, " warn" if total.follow_ups else ""),
            (
                "due_soon",
                f"due within {SOON_WORKING_DAYS} working days",
                total.due_soon,
                " warn" if total.due_soon else "",
            ),
            ("overdue", "overdue", total.overdue, " bad" if total.overdue else ""),
        )
    )
    rows = "".join(_row(name, tally) for name, tally in status.schools.items())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Score report delivery: where the season stands</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Score report delivery: where the season stands</h1>
<p class="sub">As of {status.today.isoformat()}; {escape(last)}.</p>
<div class="cards">{cards}</div>
<p class="legend">Reports:<span class="delivered"></span>delivered<span class="pending"></span>
not yet delivered<span class="overdue"></span>overdue; students:<span class="waiting"></span>
waiting for a report</p>
<div class="wrap"><table>
<thead><tr><th>School</th><th>Students</th><th>Reports</th><th>Protected</th><th>Emailed</th>
<th>Printed</th><th>Waiting</th><th>Held</th><th>Follow-ups</th><th>Due soon</th>
<th>Overdue</th><th>Next due</th><th></th></tr></thead>
<tbody>
{rows}</tbody>
<tfoot>{_row("All schools", total, tag="th")}</tfoot>
</table></div>
<footer>Due dates: CAASPP reports 20 working days, ELPAC reports 30 calendar days after
caaspp first saw them{_holidays(status)}.{_unlisted(status)} Generated by caaspp on
{escape(moment)}.
Counts only: this page names no student.</footer>
</body>
</html>
"""


def _unlisted(status: SeasonStatus) -> str:
    count = status.rows_without_ssid
    if not count:
        return ""
    rows = "row" if count == 1 else "rows"
    return f" Also {count} roster {rows} without a valid SSID need a person (not in the table)."


def _holidays(status: SeasonStatus) -> str:
    if not status.holidays:
        return "; no district days off were given, only weekends are skipped"
    return f"; {status.holidays} district days off skipped"


def _row(name: str, tally: Tally, *, tag: str = "td") -> str:
    cells = (
        tally.students,
        tally.reports,
        tally.protected,
        tally.emailed,
        tally.printed,
        tally.waiting,
        tally.held,
        tally.follow_ups,
        tally.due_soon,
        tally.overdue,
        tally.next_due.isoformat() if tally.next_due else "",
    )
    numbers = "".join(f"<td>{escape(str(cell))}</td>" for cell in cells)
    return (
        f'<tr data-school="{escape(name)}"><{tag}>{escape(name)}</{tag}>{numbers}'
        f"<td>{_bar(tally)}</td></tr>\n"
    )


def _bar(tally: Tally) -> str:
    parts = [
        ("delivered", tally.delivered),
        ("pending", max(tally.undelivered - tally.overdue, 0)),
        ("overdue", tally.overdue),
        ("waiting", tally.waiting),
    ]
    whole = sum(value for _, value in parts) or 1
    spans = "".join(
        f'<span class="{cls}" style="width:{100 * value / whole:.2f}%" title="{value} {cls}">'
        "</span>"
        for cls, value in parts
        if value
    )
    return f'<div class="bar">{spans}</div>'


def write_html(path: Path, status: SeasonStatus) -> Path:
    """Write the page owner-only and atomically; returns where it went."""
    write_private_bytes(path, render_html(status).encode("utf-8"))
    return path
