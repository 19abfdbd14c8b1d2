"""Asking a person: a secret with hidden input on a terminal, a secret piped on stdin, a yes.

Secrets are never command-line arguments (they would land in the shell history and the
process list). The environment comes first, through the Resolver; these are what the
config commands hand it to ask with, and what they read when a ``--...-stdin`` option says
the secret is piped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from caaspp_cli.cli import render
from caaspp_cli.config.secrets import Prompt, Secret
from caaspp_cli.errors import BadInputError, CredentialsError


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def hidden_prompt(
    ways: Callable[[Secret], str], question: Callable[[Secret], str] | None = None
) -> Prompt:
    """A prompt for the Resolver: hidden input on a terminal; elsewhere CredentialsError
    naming the ``ways`` to give the secret instead ("set X, pipe it with ...")."""

    def ask(secret: Secret) -> str:
        if not stdin_is_terminal():
            raise CredentialsError(
                f"no {secret.label} given: stdin is not a terminal to ask for it.",
                hint=f"{ways(secret)}, or run the command in a terminal to be asked.",
            )
        text = question(secret) if question is not None else secret.label
        try:
            value: str = typer.prompt(f"{text} (input hidden)", hide_input=True, err=True)
        except typer.Abort:
            raise BadInputError(f"no {secret.label} given.") from None
        return value

    return ask


def read_stdin_line(option: str, secret: Secret) -> str:
    """The first line of stdin, as ``option`` asked; BadInputError when it is blank."""
    line = sys.stdin.readline()
    if not line.strip():
        raise BadInputError(
            f"{option} was given, but the first line of stdin is empty.",
            hint=f"pipe the {secret.label} into caaspp, e.g. from your password manager.",
        )
    return line


def confirm_removal(question: str, name: str) -> bool:
    """Ask ``question`` (default no); without an answer the profile stays: BadInputError."""
    try:
        confirmed = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        raise BadInputError(
            f"profile '{name}' not removed: no confirmation was given.",
            hint="pass --yes to remove without asking.",
        ) from None
    if not confirmed:
        render.info(f"Kept profile {name}.")
    return confirmed
