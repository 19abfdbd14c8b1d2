"""`caaspp config smtp` and `caaspp config smtp-test`: mail profiles, and how the other config
commands show them.

The password is never a command-line argument: it is asked with hidden input on a
terminal, or read from CAASPP_SMTP_PASSWORD, or from the first line of stdin.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from caaspp_cli.cli import prompts, render
from caaspp_cli.cli.config import config_app, print_fields
from caaspp_cli.config.secrets import SMTP_PASSWORD_ENV, Resolver, Secret
from caaspp_cli.errors import BadInputError

if TYPE_CHECKING:
    from caaspp_cli.config.mail_profiles import SmtpProfile


class SmtpSecurity(StrEnum):
    starttls = "starttls"
    ssl = "ssl"
    none = "none"


@config_app.command("smtp")
def smtp(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="SMTP profile name.", show_default=False)
    ],
    host: Annotated[
        str,
        typer.Option(
            "--host", help="The mail server, e.g. smtp.office365.com.", show_default=False
        ),
    ],
    from_address: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="ADDRESS",
            show_default=False,
            help="The sender, e.g. 'Lincoln Unified <score-reports@lincoln.k12.ca.us>'.",
        ),
    ],
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Port (default: 587 with starttls, 465 with ssl, 25 with none).",
        ),
    ] = None,
    security: Annotated[
        SmtpSecurity,
        typer.Option("--security", help="none is allowed only for a server on this machine."),
    ] = SmtpSecurity.starttls,
    user: Annotated[
        str | None, typer.Option("--user", help="User name to log in with (if the server asks).")
    ] = None,
    reply_to: Annotated[
        str | None,
        typer.Option("--reply-to", metavar="ADDRESS", help="Where families' replies go."),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            dir_okay=False,
            exists=True,
            help="PEM file of a CA to trust besides the system's (a district's own CA).",
        ),
    ] = None,
    env_password: Annotated[
        bool,
        typer.Option(
            "--env-password",
            help=f"Store no password: read {SMTP_PASSWORD_ENV} at run time (headless servers).",
        ),
    ] = False,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
    ] = False,
) -> None:
    """Add or replace an SMTP profile for `caaspp send`; its password goes to the OS keyring.

    On a terminal the password is asked with hidden input (it is never an argument).

    Otherwise it comes from CAASPP_SMTP_PASSWORD, or the first line of stdin (--password-stdin).

    At run time CAASPP_SMTP_PASSWORD, when set, overrides the keyring.
    """
    from caaspp_cli.addresses import parse_mailbox
    from caaspp_cli.config import mail_profiles as smtp_profiles
    from caaspp_cli.config.secrets import backend_name

    if user is None and (password_stdin or env_password):
        raise BadInputError(
            "--password-stdin and --env-password need --user: without a user name caaspp "
            "does not log in.",
        )
    if env_password and password_stdin:
        raise BadInputError(
            "--env-password stores no password, so --password-stdin has no use.",
            hint="drop one of the two options.",
        )
    for option, address in (("--from", from_address), ("--reply-to", reply_to)):
        if address is not None:
            try:
                parse_mailbox(address, option)
            except ValueError as exc:  # named after the option the user typed
                raise BadInputError(f"{exc}.") from None
    profile = smtp_profiles.make_smtp_profile(
        name=name,
        host=host,
        port=port or 0,
        security=security.value,
        user=user,
        from_address=from_address,
        reply_to=reply_to,
        ca_file=str(ca_file.resolve()) if ca_file is not None else None,
        credentials_source="env" if env_password else "keyring",
    )
    replaced = smtp_profiles.save_smtp_profile(
        profile, lambda: _ask_smtp_password(profile, password_stdin)
    )
    login = "no login"
    if profile.user is not None:
        where = (
            f"password read from {SMTP_PASSWORD_ENV} at run time"
            if env_password
            else f"password in the OS keyring ({backend_name()})"
        )
        login = f"user {profile.user}, {where}"
    render.stdout.print(
        f"{'Replaced' if replaced else 'Added'} SMTP profile {name}: "
        f"{profile.host}:{profile.port} ({profile.security}), {login}, "
        f"from {profile.from_address}."
    )
    render.info(f"Check it with: caaspp config smtp-test {name}")


@config_app.command("smtp-test")
def smtp_test(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="SMTP profile name.", show_default=False)
    ],
) -> None:
    """Connect to an SMTP profile's server, check its certificate, log in; send nothing."""
    from caaspp_cli.config import mail_profiles as smtp_profiles
    from caaspp_cli.send.run import MailServer

    profile = smtp_profiles.get_smtp_profile(name)
    MailServer(profile, smtp_profiles.smtp_password(profile)).check()
    login = f", logged in as {profile.user}" if profile.user else ""
    render.stdout.print(
        f"SMTP profile {name}: {profile.host}:{profile.port} answered"
        f"{' over TLS' if profile.security != 'none' else ''}{login}. Nothing was sent."
    )


def _ask_smtp_password(profile: SmtpProfile, from_stdin: bool) -> str:
    """The SMTP password: the first line of stdin, CAASPP_SMTP_PASSWORD, or a hidden prompt."""
    from caaspp_cli.config.mail_profiles import SmtpSecrets

    password = SmtpSecrets(profile).password
    if from_stdin:
        return prompts.read_stdin_line("--password-stdin", password)

    def question(secret: Secret) -> str:
        return f"SMTP password of {profile.user or ''}"

    def ways(secret: Secret) -> str:
        return f"set {secret.env}, pipe it with --password-stdin"

    resolver = Resolver(prompt=prompts.hidden_prompt(ways, question), announce=render.info)
    return resolver.ask(password)


# --- Mail profiles in `config list`, `config show` ---------------------------------------------
def print_mail_profiles(mail: dict[str, SmtpProfile], *, title: bool) -> None:
    if title:
        render.stdout.print("\nMail profiles (caaspp config smtp):")
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("name", "server", "from", "login", "password"):
        table.add_column(column)
    for name in sorted(mail):
        profile = mail[name]
        table.add_row(
            name,
            f"{profile.host}:{profile.port} ({profile.security})",
            profile.from_address,
            profile.user or "-",
            _password_source(profile),
        )
    render.stdout.print(table)


def _password_source(profile: SmtpProfile) -> str:
    if profile.user is None:
        return "none (no login)"
    return "environment" if profile.credentials_source == "env" else "keyring"


def mail_json(profile: SmtpProfile) -> dict[str, Any]:
    data: dict[str, Any] = profile.model_dump(mode="json", by_alias=True)
    data["password"] = _password_source(profile)
    return data


def show_mail_profile(profile: SmtpProfile, as_json: bool) -> None:
    if as_json:
        render.print_json({"kind": "mail", **mail_json(profile)})
        return
    rows = [
        ("name", profile.name),
        ("kind", "mail (caaspp config smtp)"),
        ("server", f"{profile.host}:{profile.port}"),
        ("security", profile.security),
        ("from", profile.from_address),
        ("reply-to", profile.reply_to or "-"),
        ("login", profile.user or "-"),
        ("password", _password_source(profile)),
        ("CA file", profile.ca_file or "-"),
    ]
    print_fields(rows)
