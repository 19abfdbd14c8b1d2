"""Helpers several test modules share (import them: ``from helpers import ...``).

Fixtures stay in conftest.py; what a test calls by name lives here.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest


def command_paths() -> list[list[str]]:
    """Every command of the caaspp tree, as the words that name it ([] is caaspp itself),
    found by walking the Click command tree typer builds: a new command is in it at once."""
    import typer.main

    from caaspp_cli.cli.app import app

    paths: list[list[str]] = [[]]

    def walk(command: object, prefix: list[str]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the clients that commands open retry at once: same attempts, no long waits.

    For tests of a service that cannot be reached, which a command otherwise retries with
    back-off for several seconds.
    """
    from caaspp_cli.ets import connect
    from caaspp_cli.ets.client import EtsClient, RetryPolicy

    quick = RetryPolicy(base_delay=0.001, max_delay=0.002)
    opened: Any = functools.partial(EtsClient, retry=quick)
    monkeypatch.setattr(connect, "EtsClient", opened)
