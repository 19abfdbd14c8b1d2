"""`caaspp config`: connection profiles, and their credentials in the OS keyring.

The Client Key and Client Secret are never command-line arguments (they would land in the
shell history and the process list): they are asked with hidden input on a terminal, or
read from CAASPP_CLIENT_KEY / CAASPP_CLIENT_SECRET, or the secret from stdin.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from caaspp_cli.cli import render
from caaspp_cli.config import credentials as creds
from caaspp_cli.config import profiles
from caaspp_cli.config.credentials import KEY_ENV, SECRET_ENV, SMTP_PASSWORD_ENV, Credentials
from caaspp_cli.config.profiles import Profile
from caaspp_cli.errors import BadInputError, CredentialsError, KeyringUnavailableError
from caaspp_cli.ets.contract import (
    DEFAULT_REPORTS_ENDPOINT,
    DEFAULT_STUDENTS_ENDPOINT,
    DEFAULT_TOKEN_ENDPOINT,
    PRODUCTION_BASE_URL,
)

log = logging.getLogger(__name__)

config_app = typer.Typer(
    name="config",
    help="Connection profiles: where the ETS service is, and the credentials to use.",
    no_args_is_help=True,
)

ProfileName = Annotated[
    str, typer.Argument(metavar="NAME", help="Profile name.", show_default=False)
]
OptionalProfileName = Annotated[
    str | None,
    typer.Argument(
        metavar="NAME",
        show_default=False,
        help="Profile name (default: --profile, else the default profile).",
    ),
]
ExpiresOption = Annotated[
    datetime | None,
    typer.Option(
        "--expires",
        formats=["%Y-%m-%d"],
        metavar="YYYY-MM-DD",
        help="When the credentials expire, as TOMS shows it (default: 365 days from today).",
    ),
]
SecretStdinOption = Annotated[
    bool,
    typer.Option(
        "--client-secret-stdin",
        help=f"Read the Client Secret from the first line of stdin (the Client Key from "
        f"{KEY_ENV}, or asked).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
MailOption = Annotated[
    bool,
    typer.Option("--mail", help="The mail profile of that name (see `caaspp config smtp`)."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


# --- add -----------------------------------------------------------------------------------
@config_app.command("add")
def add(
    name: ProfileName,
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url",
            metavar="URL",
            show_default=False,
            help=f"Base URL of the service, e.g. {PRODUCTION_BASE_URL} (http:// only for this "
            "machine).",
        ),
    ],
    school: Annotated[
        list[str] | None,
        typer.Option("--school", metavar="CODE", help="A school this profile serves; repeatable."),
    ] = None,
    students_endpoint: Annotated[
        str, typer.Option("--students-endpoint", metavar="PATH", help="URL Endpoint 1 (students).")
    ] = DEFAULT_STUDENTS_ENDPOINT,
    reports_endpoint: Annotated[
        str,
        typer.Option("--reports-endpoint", metavar="PATH", help="URL Endpoint 2 (score reports)."),
    ] = DEFAULT_REPORTS_ENDPOINT,
    token_endpoint: Annotated[
        str,
        typer.Option(
            "--token-endpoint", metavar="PATH", help="URL Authentication End Point (token)."
        ),
    ] = DEFAULT_TOKEN_ENDPOINT,
    expires: ExpiresOption = None,
    env_credentials: Annotated[
        bool,
        typer.Option(
            "--env-credentials",
            help=f"Store nothing in the keyring: read {KEY_ENV} and {SECRET_ENV} at run time "
            "(headless servers).",
        ),
    ] = False,
    client_secret_stdin: SecretStdinOption = False,
    make_default: Annotated[
        bool, typer.Option("--default", help="Make it the default profile.")
    ] = False,
) -> None:
    """Add a profile; its Client Key and Client Secret go to the OS keyring.

    On a terminal the Client Key and Client Secret are asked with hidden input.
    Otherwise they come from CAASPP_CLIENT_KEY and CAASPP_CLIENT_SECRET,
    or the secret from the first line of stdin with --client-secret-stdin.
    The first profile added becomes the default.
    """
    if env_credentials and client_secret_stdin:
        raise BadInputError(
            "--env-credentials stores no credentials, so --client-secret-stdin has no use.",
            hint="drop one of the two options.",
        )
    profile = profiles.make_profile(
        name=name,
        base_url=base_url,
        schools=school or [],
        students_endpoint=students_endpoint,
        reports_endpoint=reports_endpoint,
        token_endpoint=token_endpoint,
        expires=_expiry(expires) or profiles.default_expiry(),
        credentials_source="env" if env_credentials else "keyring",
    )
    try:
        store = profiles.add_profile(
            profile, lambda: _ask_credentials(client_secret_stdin), make_default=make_default
        )
    except KeyringUnavailableError as exc:
        if creds.from_environment() is None:
            raise
        # Both variables are set, so the user most likely wants exactly that: say so first.
        raise KeyringUnavailableError(
            f"no usable OS keyring to store the credentials in; {KEY_ENV} and {SECRET_ENV} "
            f"are set: add the profile with --env-credentials to read them at run time.",
            hint=f"caaspp config add {name} --base-url {base_url} --env-credentials "
            f"(the keyring said: {exc.message})",
        ) from None
    where = (
        f"credentials read from {KEY_ENV} and {SECRET_ENV} at run time"
        if env_credentials
        else f"Client Key and Client Secret stored in the OS keyring ({creds.backend_name()})"
    )
    default = " (default)" if store.default == profile.name else ""
    render.stdout.print(f"Added profile {profile.name}{default}: {where}.")
    _print_expiry(profile)
    render.info(f"Check it with: caaspp config test {profile.name}")


# --- list, show ----------------------------------------------------------------------------
@config_app.command("list")
def list_profiles(as_json: JsonOption = False) -> None:
    """List the profiles: name, default, base URL, schools, expiry, credentials source."""
    from caaspp_cli.config.mail_profiles import smtp_profiles

    store = profiles.load_store()
    mail = smtp_profiles(store)
    if as_json:
        render.print_json(
            [
                {"kind": "ets", **_profile_json(p), "default": p.name == store.default}
                for p in (store.profiles[n] for n in store.names())
            ]
            + [{"kind": "mail", **_mail_json(mail[n])} for n in sorted(mail)]
        )
        return
    if not store.profiles and not mail:
        render.info("No profiles yet. Add one with: caaspp config add NAME --base-url URL")
        return
    if store.profiles:
        _print_ets_profiles(store)
    if mail:
        _print_mail_profiles(mail, title=bool(store.profiles))


def _print_ets_profiles(store: profiles.ProfileStore) -> None:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("name", "default", "base URL", "schools", "expires", "credentials"):
        table.add_column(column)
    today = date.today()
    for name in store.names():
        profile = store.profiles[name]
        table.add_row(
            name,
            "*" if name == store.default else "",
            profile.base_url,
            ", ".join(profile.schools) or "-",
            _expiry_text(profile.expires, today),
            profile.credentials_source,
        )
    render.stdout.print(table)


def _print_mail_profiles(mail: dict[str, Any], *, title: bool) -> None:
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
            _mail_password_source(profile),
        )
    render.stdout.print(table)


def _mail_password_source(profile: Any) -> str:
    if profile.user is None:
        return "none (no login)"
    return "environment" if profile.credentials_source == "env" else "keyring"


def _mail_json(profile: Any) -> dict[str, Any]:
    data: dict[str, Any] = profile.model_dump(mode="json", by_alias=True)
    data["password"] = _mail_password_source(profile)
    return data


@config_app.command("show")
def show(
    name: OptionalProfileName = None, as_json: JsonOption = False, mail_profile: MailOption = False
) -> None:
    """Show every field of a profile (connection or mail); secrets only as <hidden>, and if
    present."""
    from caaspp_cli.config.mail_profiles import get_smtp_profile, smtp_profiles

    store = profiles.load_store()
    mail = smtp_profiles(store)
    if mail_profile or (name is not None and name not in store.profiles and name in mail):
        if name is None:
            raise BadInputError("--mail needs the NAME of a mail profile.")
        _show_mail_profile(get_smtp_profile(name, store), as_json)
        return
    profile = store.resolve(name or _global_profile())
    status = creds.credential_status(profile.name, source=profile.credentials_source)
    if as_json:
        render.print_json(
            {
                **_profile_json(profile),
                "default": profile.name == store.default,
                "token_url": profile.endpoints().token_url,
                "client_key": _secret_json(status.key_present, status),
                "client_secret": _secret_json(status.secret_present, status),
                "keyring_backend": status.backend,
                "problem": status.problem,
            }
        )
        return
    rows: list[tuple[str, str]] = [
        ("name", profile.name),
        ("default", "yes" if profile.name == store.default else "no"),
        ("base URL", profile.base_url),
        ("students endpoint", profile.students_endpoint),
        ("reports endpoint", profile.reports_endpoint),
        ("token endpoint", profile.token_endpoint),
        ("token URL", profile.endpoints().token_url),
        ("schools", ", ".join(profile.schools) or "-"),
        ("expires", _expiry_text(profile.expires, date.today())),
        ("credentials source", _source_text(profile)),
        ("client key", _secret_text(status.key_present, KEY_ENV, status)),
        ("client secret", _secret_text(status.secret_present, SECRET_ENV, status)),
    ]
    if status.backend:
        rows.append(("keyring backend", status.backend))
    _print_fields(rows)
    if status.problem:
        render.warning(status.problem)
    if profile.name in mail:
        render.info(
            f"A mail profile is called {profile.name} too: caaspp config show "
            f"{profile.name} --mail shows it."
        )


def _confirm(question: str, name: str) -> bool:
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


def _print_fields(rows: list[tuple[str, str]]) -> None:
    """A profile's fields, a label and its value a line."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in rows:
        grid.add_row(label, value)
    render.stdout.print(grid)


def _show_mail_profile(profile: Any, as_json: bool) -> None:
    if as_json:
        render.print_json({"kind": "mail", **_mail_json(profile)})
        return
    rows = [
        ("name", profile.name),
        ("kind", "mail (caaspp config smtp)"),
        ("server", f"{profile.host}:{profile.port}"),
        ("security", profile.security),
        ("from", profile.from_address),
        ("reply-to", profile.reply_to or "-"),
        ("login", profile.user or "-"),
        ("password", _mail_password_source(profile)),
        ("CA file", profile.ca_file or "-"),
    ]
    _print_fields(rows)


# --- test ----------------------------------------------------------------------------------
@config_app.command("test")
def test(name: OptionalProfileName = None) -> None:
    """Get a token with the profile's credentials, and say whether that worked and why not."""
    from caaspp_cli.ets.connect import connect

    profile, client = connect(name or _global_profile(), warn=render.warning)

    async def check() -> Any:
        async with client:
            return await client.check_credentials()

    token = asyncio.run(check())
    render.stdout.print(
        f"Profile {profile.name}: {profile.endpoints().token_url} issued a "
        f"{token.token_type} token valid for {token.expires_in} s; the Client Key "
        "and Client Secret work."
    )


# --- rotate, remove, default ---------------------------------------------------------------
@config_app.command("rotate")
def rotate(
    name: ProfileName,
    expires: ExpiresOption = None,
    client_secret_stdin: SecretStdinOption = False,
) -> None:
    """Replace a profile's Client Key and Client Secret after generating new ones in TOMS.

    They are asked, or read from the environment or stdin, as by `config add`.
    The expiry date is reset to 365 days from today unless --expires is given.
    """
    profile = profiles.rotate_profile(
        name, lambda: _ask_credentials(client_secret_stdin), expires=_expiry(expires)
    )
    if profile.credentials_source == "env":
        render.stdout.print(
            f"Profile {name} reads its credentials from {KEY_ENV} and {SECRET_ENV}: "
            "put the new ones in the environment of your jobs."
        )
    else:
        render.stdout.print(
            f"Stored the new Client Key and Client Secret of profile {name} in the OS keyring."
        )
    _print_expiry(profile)
    render.info(f"Check them with: caaspp config test {name}")


@config_app.command("remove")
def remove(
    name: ProfileName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    mail_profile: MailOption = False,
) -> None:
    """Remove a profile and its secrets from the OS keyring: a connection profile's Client Key
    and Client Secret, or a mail profile's password."""
    from caaspp_cli.config.mail_profiles import remove_smtp_profile, smtp_profiles

    store = profiles.load_store()
    if mail_profile or (name not in store.profiles and name in smtp_profiles(store)):
        if not yes and not _confirm(f"Remove mail profile {name} and its password?", name):
            return
        problem = remove_smtp_profile(name)
        render.stdout.print(f"Removed mail profile {name}.")
        if problem:
            render.warning(
                f"its keyring entry was not removed ({problem.rstrip('.')}); remove it with "
                f"your keyring tool: service '{creds.SERVICE_NAME}', user "
                f"'{creds.smtp_password_username(name)}'."
            )
        return
    profile = store.get(name)
    if not yes:
        what = (
            " and its Client Key and Client Secret in the OS keyring"
            if profile.credentials_source == "keyring"
            else ""
        )
        if not _confirm(f"Remove profile {name}{what}?", name):
            return
    removed = profiles.remove_profile(name)
    render.stdout.print(f"Removed profile {name}.")
    if removed.keyring_problem:
        render.warning(
            f"its keyring entries were not removed ({removed.keyring_problem.rstrip('.')}); "
            "remove them "
            f"with your keyring tool: service '{creds.SERVICE_NAME}', users "
            f"'{creds.key_username(name)}' and '{creds.secret_username(name)}'."
        )
    if removed.was_default:
        if removed.new_default is None:
            render.info("No default profile now.")
        else:
            render.info(f"Default profile now: {removed.new_default}")


@config_app.command("default")
def set_default(name: ProfileName) -> None:
    """Make a profile the default (used when --profile is not given)."""
    profile = profiles.set_default(name)
    render.stdout.print(f"Default profile: {profile.name}")


# --- Helpers -------------------------------------------------------------------------------
def _global_profile() -> str | None:
    from caaspp_cli.cli.app import state

    return state.profile


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _ask_credentials(secret_from_stdin: bool) -> Credentials:
    """The new Client Key and Client Secret, from the environment, a prompt, or stdin."""
    key = os.environ.get(KEY_ENV, "").strip()
    if key:
        render.info(f"Using the Client Key in {KEY_ENV}.")
    else:
        key = _prompt_hidden("Client Key", KEY_ENV, secret_from_stdin)
    if secret_from_stdin:
        secret = sys.stdin.readline()
        if not secret.strip():
            raise BadInputError(
                "--client-secret-stdin was given, but the first line of stdin is empty.",
                hint="pipe the Client Secret into caaspp, e.g. from your password manager.",
            )
    else:
        secret = os.environ.get(SECRET_ENV, "").strip()
        if secret:
            render.info(f"Using the Client Secret in {SECRET_ENV}.")
        else:
            secret = _prompt_hidden("Client Secret", SECRET_ENV, secret_from_stdin)
    return Credentials(creds.clean_client_key(key), creds.clean_client_secret(secret))


def _prompt_hidden(what: str, env_name: str, secret_from_stdin: bool) -> str:
    if not _stdin_is_terminal():
        ways = f"set {env_name}" + (
            ""
            if secret_from_stdin or what == "Client Key"
            else ", or pipe it with --client-secret-stdin"
        )
        raise CredentialsError(
            f"no {what} given: stdin is not a terminal to ask for it.",
            hint=f"{ways}, or run the command in a terminal to be asked.",
        )
    try:
        value: str = typer.prompt(f"{what} (input hidden)", hide_input=True, err=True)
    except typer.Abort:
        raise BadInputError(f"no {what} given.") from None
    return value


def _expiry(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def _print_expiry(profile: Profile) -> None:
    if profile.expires is not None:
        render.info(f"The credentials expire on {profile.expires.isoformat()}.")
    warning = profiles.check_expiry(profile)
    if warning:
        render.warning(warning)


def _expiry_text(expires: date | None, today: date) -> str:
    if expires is None:
        return "unknown"
    days = (expires - today).days
    if days < 0:
        return f"{expires.isoformat()} (expired)"
    if days <= profiles.EXPIRY_WARNING_DAYS:
        return f"{expires.isoformat()} (in {days} day{'s' if days != 1 else ''})"
    return expires.isoformat()


def _source_text(profile: Profile) -> str:
    if profile.credentials_source == "env":
        return f"env ({KEY_ENV}, {SECRET_ENV} at run time)"
    return f"keyring (service '{creds.SERVICE_NAME}'; {KEY_ENV}/{SECRET_ENV} override it)"


def _secret_text(present: bool | None, env_name: str, status: creds.CredentialStatus) -> str:
    if present is None:
        return "unknown (the keyring is unavailable)"
    if status.origin == "env":
        return f"{creds.HIDDEN} (from {env_name})" if present else f"missing ({env_name} not set)"
    return f"{creds.HIDDEN} (in the keyring)" if present else "missing from the keyring"


def _secret_json(present: bool | None, status: creds.CredentialStatus) -> dict[str, Any]:
    return {
        "value": creds.HIDDEN if present else None,
        "present": present,
        "origin": status.origin,
    }


def _profile_json(profile: Profile) -> dict[str, Any]:
    data = profile.model_dump(mode="json")
    data["expires"] = profile.expires.isoformat() if profile.expires else None
    return data


# --- smtp, smtp-test -----------------------------------------------------------------------
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
        profile, lambda: _ask_smtp_password(profile.user or "", password_stdin)
    )
    login = "no login"
    if profile.user is not None:
        where = (
            f"password read from {SMTP_PASSWORD_ENV} at run time"
            if env_password
            else f"password in the OS keyring ({creds.backend_name()})"
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


def _ask_smtp_password(user: str, from_stdin: bool) -> str:
    """The SMTP password: the first line of stdin, CAASPP_SMTP_PASSWORD, or a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line.strip():
            raise BadInputError(
                "--password-stdin was given, but the first line of stdin is empty.",
                hint="pipe the SMTP password into caaspp, e.g. from your password manager.",
            )
        return line
    value = os.environ.get(SMTP_PASSWORD_ENV, "")
    if value:
        render.info(f"Using the SMTP password in {SMTP_PASSWORD_ENV}.")
        return value
    if not _stdin_is_terminal():
        raise CredentialsError(
            "no SMTP password given: stdin is not a terminal to ask for it.",
            hint=f"set {SMTP_PASSWORD_ENV}, pipe it with --password-stdin, or run the command "
            "in a terminal to be asked.",
        )
    try:
        password: str = typer.prompt(
            f"SMTP password of {user} (input hidden)", hide_input=True, err=True
        )
    except typer.Abort:
        raise BadInputError("no SMTP password given.") from None
    return password
