"""Consoles, error lines and JSON output shared by every command.

Everything caaspp prints goes through here. Data (paths, names, server messages) is always
printed as text: the consoles interpret no markup and no emoji codes, so a file named
``[/x]`` or a server message saying ``[bold]`` is shown as it is, and styles are applied
with :class:`rich.text.Text` pieces instead. Output that the console's encoding cannot carry
(a cp1252 log file of Windows Task Scheduler, say) is escaped, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# Counted nouns ("1 student", "2 students"): every command words its counts with these.
from caaspp_cli.words import agree as agree
from caaspp_cli.words import plural as plural

# stdout carries results (tables, JSON); stderr carries errors, warnings and progress.
stdout = Console(soft_wrap=True, highlight=False, markup=False, emoji=False)
stderr = Console(stderr=True, soft_wrap=True, highlight=False, markup=False, emoji=False)


def configure_streams() -> None:
    """Never fail on the console's encoding: escape what it cannot carry.

    On Windows, output redirected to a file (Task Scheduler, ``> log.txt``) is written in the
    ANSI code page, which has no letter for most of Vietnamese, Korean, Chinese or Arabic.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and not _is_utf(stream):
            reconfigure(errors="backslashreplace")


def _is_utf(stream: Any) -> bool:
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    return encoding.startswith("utf")


def error(message: str, hint: str | None = None) -> None:
    stderr.print(Text.assemble(("error:", "bold red"), " ", message))
    if hint:
        stderr.print(Text.assemble(("hint:", "bold"), " ", hint))


def needs_a_person(message: str, hint: str | None = None) -> None:
    """The closing line of a run that did its work but left rows for a person (exit 3).

    An expected outcome (an invalid SSID in the roster, a family with no email), not a
    failure of the tool: said as a plain sentence naming how many and where the reasons are
    ("3 of 41 roster rows need a person (...); each one's reason is in ..."), not as a red
    ``error:``.
    """
    notice(message, hint)


def notice(message: str, hint: str | None = None) -> None:
    """A plain sentence about how a run ended (rows left for a person, rows not reached
    after Ctrl-C), and what to do next: not an error of the tool."""
    stderr.print(Text(message, style="yellow"))
    if hint:
        stderr.print(Text.assemble(("hint:", "bold"), " ", hint))


def warning(message: str) -> None:
    stderr.print(Text.assemble(("warning:", "bold yellow"), " ", message))


def storage_warning(folder: Any) -> None:
    """Warn, once at the start of a run, about a folder on a network share or in a folder a
    sync client (OneDrive, Dropbox, Google Drive) copies elsewhere."""
    from pathlib import Path

    from caaspp_cli.storage import storage_warning as problem

    text = problem(Path(folder))
    if text:
        warning(text)


def info(message: str) -> None:
    stderr.print(message)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour, no wrapping.

    Where stdout is not UTF-8, non-ASCII characters are written as JSON escapes (``\\u0111``),
    which every JSON reader turns back into the same text.
    """
    text = json.dumps(data, indent=2, ensure_ascii=not _is_utf(sys.stdout), default=str)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def progress_bar(
    label: str, detail: str = "", *, enabled: bool = True, **fields: Any
) -> Iterator[Callable[..., None] | None]:
    """A progress bar on stderr while it is a terminal; None otherwise (quiet in jobs).

    ``detail`` is a template over ``fields`` (``"saved {task.fields[saved]}"``); call the
    yielded function with ``completed=``, ``total=`` and new values of the fields.
    """
    if not enabled or not stderr.is_terminal:
        yield None
        return
    columns: list[ProgressColumn] = [
        TextColumn(label, style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
    ]
    if detail:
        columns.append(TextColumn(detail, markup=False))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    progress = Progress(*columns, console=stderr)
    task = progress.add_task(label, total=None, **fields)

    def update(**values: Any) -> None:
        progress.update(task, **values)

    with progress:
        yield update


def label(outcome: str) -> str:
    """An outcome as people read it: ``invalid_ssid`` -> ``invalid SSID``."""
    return outcome.replace("_", " ").replace("ssid", "SSID")


def counts_table(title: str, column: str, counts: Mapping[str, int]) -> None:
    """A summary on stdout: each outcome that occurred and how often."""
    table = Table(title=title, title_justify="left")
    table.add_column("Outcome")
    table.add_column(column, justify="right")
    for outcome, count in counts.items():
        if count:
            table.add_row(label(outcome), str(count))
    stdout.print(table)
