"""Consoles, error lines and JSON output shared by every command."""

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

# stdout carries results (tables, JSON); stderr carries errors, warnings and progress.
stdout = Console(soft_wrap=True, highlight=False)
stderr = Console(stderr=True, soft_wrap=True, highlight=False)


def error(message: str, hint: str | None = None) -> None:
    stderr.print(f"[bold red]error:[/] {_escape(message)}")
    if hint:
        stderr.print(f"[bold]hint:[/] {_escape(hint)}")


def warning(message: str) -> None:
    stderr.print(f"[bold yellow]warning:[/] {_escape(message)}")


def info(message: str) -> None:
    stderr.print(_escape(message))


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour, no wrapping."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
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
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
    ]
    if detail:
        columns.append(TextColumn(detail))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    progress = Progress(*columns, console=stderr)
    task = progress.add_task(label, total=None, **fields)

    def update(**values: Any) -> None:
        progress.update(task, **values)

    with progress:
        yield update


def counts_table(title: str, column: str, counts: Mapping[str, int]) -> None:
    """A summary on stdout: each outcome that occurred and how often."""
    table = Table(title=title, title_justify="left")
    table.add_column("Outcome")
    table.add_column(column, justify="right")
    for outcome, count in counts.items():
        if count:
            table.add_row(outcome.replace("_", " "), str(count))
    stdout.print(table)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
