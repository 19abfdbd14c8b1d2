"""Consoles, error lines and JSON output shared by every command."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

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


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
