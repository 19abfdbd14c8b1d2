"""`caaspp config`: the command group, and the connection (ETS) profiles' commands.

The Client Key and Client Secret are never command-line arguments (they would land in the
shell history and the process list): they are asked with hidden input on a terminal, or
read from CAASPP_CLIENT_KEY / CAASPP_CLIENT_SECRET, or the secret from stdin. The mail
profiles' commands (`config mail`, `config smtp`, `config test-mail`, `config smtp-test`)
are in ``config_mail``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from caaspp_cli.cli import prompts, render
from caaspp_cli.config import credentials as creds
from caaspp_cli.config import profiles
from caaspp_cli.config.credentials import Credentials, EtsSecrets
from caaspp_cli.config.profiles import Profile
from caaspp_cli.config.secrets import (
    HIDDEN,
    KEY_ENV,
    SECRET_ENV,
    SERVICE_NAME,
    Resolver,
    Secret,
    backend_name,
)
from caaspp_cli.errors import BadInputError, KeyringUnavailableError
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
    """Add `caaspp config`: the ETS profiles' commands (here), then the mail profiles'."""
    from caaspp_cli.cli import (  # noqa: F401 - their commands join config_app
        config_mail,
        config_mail_check,
    )

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
            profile, lambda: _ask_credentials(name, client_secret_stdin), make_default=make_default
        )
    except KeyringUnavailableError as exc:
        if not creds.pair_in_environment():
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
        else f"Client Key and Client Secret stored in the OS keyring ({backend_name()})"
    )
    default = " (default)" if store.default == profile.name else ""
    render.stdout.print(f"Added profile {profile.name}{default}: {where}.")
    _print_expiry(profile)
    render.info(f"Check it with: caaspp config test {profile.name}")


# --- list, show ----------------------------------------------------------------------------
@config_app.command("list")
def list_profiles(as_json: JsonOption = False) -> None:
    """List the profiles: name, default, base URL, schools, expiry, credentials source."""
    from caaspp_cli.cli.config_mail import mail_json, print_mail_profiles
    from caaspp_cli.config.mail_profiles import smtp_profiles

    store = profiles.load_store()
    mail = smtp_profiles(store)
    if as_json:
        render.print_json(
            [
                {"kind": "ets", **_profile_json(p), "default": p.name == store.default}
                for p in (store.profiles[n] for n in store.names())
            ]
            + [{"kind": "mail", **mail_json(mail[n])} for n in sorted(mail)]
        )
        return
    if not store.profiles and not mail:
        render.info("No profiles yet. Add one with: caaspp config add NAME --base-url URL")
        return
    if store.profiles:
        _print_ets_profiles(store)
    if mail:
        print_mail_profiles(mail, title=bool(store.profiles))


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


@config_app.command("show")
def show(
    name: OptionalProfileName = None, as_json: JsonOption = False, mail_profile: MailOption = False
) -> None:
    """Show every field of a profile (connection or mail); secrets only as <hidden>, and if
    present."""
    from caaspp_cli.cli.config_mail import show_mail_profile
    from caaspp_cli.config.mail_profiles import get_smtp_profile, smtp_profiles

    store = profiles.load_store()
    mail = smtp_profiles(store)
    if mail_profile or (name is not None and name not in store.profiles and name in mail):
        if name is None:
            raise BadInputError("--mail needs the NAME of a mail profile.")
        show_mail_profile(get_smtp_profile(name, store), as_json)
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
    print_fields(rows)
    if status.problem:
        render.warning(status.problem)
    if profile.name in mail:
        render.info(
            f"A mail profile is called {profile.name} too: caaspp config show "
            f"{profile.name} --mail shows it."
        )


def print_fields(rows: list[tuple[str, str]]) -> None:
    """A profile's fields, a label and its value a line."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in rows:
        grid.add_row(label, value)
    render.stdout.print(grid)


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
        name, lambda: _ask_credentials(name, client_secret_stdin), expires=_expiry(expires)
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
    from caaspp_cli.config.mail_profiles import (
        client_secret_username,
        remove_smtp_profile,
        smtp_password_username,
        smtp_profiles,
    )

    store = profiles.load_store()
    if mail_profile or (name not in store.profiles and name in smtp_profiles(store)):
        kept = smtp_profiles(store).get(name)
        secret_entry = smtp_password_username(name)
        if kept is not None and kept.uses_client_secret:
            secret_entry = client_secret_username(name)
        question = f"Remove mail profile {name} and its password?"
        if not yes and not prompts.confirm_removal(question, name):
            return
        problem = remove_smtp_profile(name)
        render.stdout.print(f"Removed mail profile {name}.")
        if problem:
            render.warning(
                f"its keyring entry was not removed ({problem.rstrip('.')}); remove it with "
                f"your keyring tool: service '{SERVICE_NAME}', user "
                f"'{secret_entry}'."
            )
        return
    profile = store.get(name)
    if not yes:
        what = (
            " and its Client Key and Client Secret in the OS keyring"
            if profile.credentials_source == "keyring"
            else ""
        )
        if not prompts.confirm_removal(f"Remove profile {name}{what}?", name):
            return
    removed = profiles.remove_profile(name)
    render.stdout.print(f"Removed profile {name}.")
    if removed.keyring_problem:
        render.warning(
            f"its keyring entries were not removed ({removed.keyring_problem.rstrip('.')}); "
            "remove them "
            f"with your keyring tool: service '{SERVICE_NAME}', users "
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


def _ask_credentials(name: str, secret_from_stdin: bool) -> Credentials:
    """The new Client Key and Client Secret, from the environment, a prompt, or stdin."""
    wanted = EtsSecrets(name)

    def ways(secret: Secret) -> str:
        pipe = ", or pipe it with --client-secret-stdin" if secret == wanted.secret else ""
        return f"set {secret.env}{pipe}"

    resolver = Resolver(prompt=prompts.hidden_prompt(ways), announce=render.info)
    key = resolver.ask(wanted.key)
    if secret_from_stdin:
        secret = prompts.read_stdin_line("--client-secret-stdin", wanted.secret)
    else:
        secret = resolver.ask(wanted.secret)
    return Credentials(creds.clean_client_key(key), creds.clean_client_secret(secret))


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
    return f"keyring (service '{SERVICE_NAME}'; {KEY_ENV}/{SECRET_ENV} override it)"


def _secret_text(present: bool | None, env_name: str, status: creds.CredentialStatus) -> str:
    if present is None:
        return "unknown (the keyring is unavailable)"
    if status.origin == "env":
        return f"{HIDDEN} (from {env_name})" if present else f"missing ({env_name} not set)"
    return f"{HIDDEN} (in the keyring)" if present else "missing from the keyring"


def _secret_json(present: bool | None, status: creds.CredentialStatus) -> dict[str, Any]:
    return {
        "value": HIDDEN if present else None,
        "present": present,
        "origin": status.origin,
    }


def _profile_json(profile: Profile) -> dict[str, Any]:
    data = profile.model_dump(mode="json")
    data["expires"] = profile.expires.isoformat() if profile.expires else None
    return data
