"""`caaspp config mail` and `config smtp` (its password-SMTP shorthand): mail profiles, and how
the other config commands show them (`config test-mail` is in ``config_mail_check``).

A password or client secret is never a command-line argument: it is asked with hidden input
on a terminal, or read from CAASPP_SMTP_PASSWORD / CAASPP_MAIL_CLIENT_SECRET, or from the
first line of stdin.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from caaspp_cli.cli import prompts, render
from caaspp_cli.cli.config import config_app, print_fields
from caaspp_cli.config.mail_profiles import MAIL_CLIENT_SECRET_ENV
from caaspp_cli.config.secrets import SMTP_PASSWORD_ENV, Resolver, Secret
from caaspp_cli.errors import BadInputError

if TYPE_CHECKING:
    from caaspp_cli.config.mail_profiles import SmtpProfile


class SmtpSecurity(StrEnum):
    starttls = "starttls"
    ssl = "ssl"
    none = "none"


class MailVia(StrEnum):
    smtp = "smtp"
    graph = "graph"


class MailAuth(StrEnum):
    password = "password"  # noqa: S105 - a login kind, not a password
    oauth_microsoft = "oauth-microsoft"
    oauth_google = "oauth-google"


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


@config_app.command("mail")
def mail(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Mail profile name.", show_default=False)
    ],
    from_address: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="ADDRESS",
            show_default=False,
            help="The sender, e.g. 'Lincoln Unified <score-reports@lincoln.k12.ca.us>' (with "
            "Graph and Microsoft OAuth, also the mailbox sent from).",
        ),
    ],
    via: Annotated[MailVia, typer.Option("--via", help="SMTP, or Microsoft Graph.")] = (
        MailVia.smtp
    ),
    auth: Annotated[
        MailAuth,
        typer.Option("--auth", help="How to log in to the SMTP server."),
    ] = MailAuth.password,
    host: Annotated[
        str | None, typer.Option("--host", help="The SMTP server, e.g. smtp.office365.com.")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port (default: 587, 465 with ssl)."),
    ] = None,
    security: Annotated[
        SmtpSecurity,
        typer.Option("--security", help="none is allowed only for a server on this machine."),
    ] = SmtpSecurity.starttls,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="Password login: the user name. Google: the mailbox the service account "
            "acts as. Microsoft: the mailbox (default: the From address).",
        ),
    ] = None,
    reply_to: Annotated[
        str | None,
        typer.Option("--reply-to", metavar="ADDRESS", help="Where families' replies go."),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Microsoft: the tenant ID (or domain).")
    ] = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Microsoft: the app's client ID.")
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option(
            "--certificate",
            dir_okay=False,
            exists=True,
            help="Microsoft: PEM file with the app's private key and certificate (owner-only), "
            "instead of a client secret.",
        ),
    ] = None,
    service_account: Annotated[
        Path | None,
        typer.Option(
            "--service-account",
            dir_okay=False,
            exists=True,
            help="Google: the service account's JSON key file (owner-only).",
        ),
    ] = None,
    authority: Annotated[
        str | None,
        typer.Option(
            "--authority",
            metavar="URL",
            help="Microsoft sign-in (default https://login.microsoftonline.com; "
            "https://login.microsoftonline.us for US Government).",
        ),
    ] = None,
    graph_url: Annotated[
        str | None,
        typer.Option(
            "--graph-url",
            metavar="URL",
            help="Microsoft Graph (default https://graph.microsoft.com; "
            "https://graph.microsoft.us for US Government).",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            dir_okay=False,
            exists=True,
            help="PEM file of a CA to trust besides the system's (SMTP).",
        ),
    ] = None,
    env_secret: Annotated[
        bool,
        typer.Option(
            "--env-secret",
            help=f"Store no secret: read {MAIL_CLIENT_SECRET_ENV} (or {SMTP_PASSWORD_ENV}) "
            "at run time.",
        ),
    ] = False,
    secret_stdin: Annotated[
        bool,
        typer.Option(
            "--secret-stdin", help="Read the client secret or password from stdin's first line."
        ),
    ] = False,
) -> None:
    """Add or replace a mail profile: SMTP with a password or OAuth (Microsoft 365, Google
    Workspace), or Microsoft Graph. A password or client secret goes to the OS keyring.

    See the README's Microsoft 365 and Google Workspace sections for what to set up first.
    """
    from caaspp_cli.config import mail_profiles as smtp_profiles
    from caaspp_cli.config.secrets import backend_name

    if via is MailVia.smtp and host is None:
        raise BadInputError("--via smtp needs the mail server: --host HOST.")
    if via is MailVia.smtp and auth is MailAuth.password:
        smtp(
            name=name,
            host=host or "",
            from_address=from_address,
            port=port,
            security=security,
            user=user,
            reply_to=reply_to,
            ca_file=ca_file,
            env_password=env_secret,
            password_stdin=secret_stdin,
        )
        return
    if via is MailVia.graph:
        auth = MailAuth.oauth_microsoft
        for option, given in (("--host", host), ("--port", port), ("--ca-file", ca_file)):
            if given is not None:
                raise BadInputError(f"{option} is for SMTP: a Graph profile has no mail server.")
    for option, given, wanted in (
        ("--certificate", certificate, MailAuth.oauth_microsoft),
        ("--tenant", tenant, MailAuth.oauth_microsoft),
        ("--client-id", client_id, MailAuth.oauth_microsoft),
        ("--authority", authority, MailAuth.oauth_microsoft),
        ("--service-account", service_account, MailAuth.oauth_google),
    ):
        if given is not None and auth is not wanted:
            raise BadInputError(f"{option} is for --auth {wanted.value}.")
    if secret_stdin and (certificate is not None or auth is MailAuth.oauth_google):
        raise BadInputError("--secret-stdin has no use: this login takes no secret.")
    profile = smtp_profiles.make_smtp_profile(
        name=name,
        via=via.value,
        auth=auth.value,
        host=host or "",
        port=port or 0,
        security=security.value,
        user=user,
        from_address=from_address,
        reply_to=reply_to,
        ca_file=str(ca_file.resolve()) if ca_file is not None else None,
        credentials_source="env" if env_secret else "keyring",
        tenant=tenant,
        client_id=client_id,
        certificate=str(certificate.resolve()) if certificate is not None else None,
        service_account=str(service_account.resolve()) if service_account else None,
        authority=authority,
        graph_url=graph_url,
    )
    replaced = smtp_profiles.save_smtp_profile(
        profile, lambda: _ask_client_secret(profile, secret_stdin)
    )
    render.stdout.print(
        f"{'Replaced' if replaced else 'Added'} mail profile {name}: {_route(profile)}, "
        f"{_login(profile, backend_name)}, from {profile.from_address}."
    )
    render.info(f"Check it with: caaspp config test-mail {name}")


def _route(profile: SmtpProfile) -> str:
    if profile.via == "graph":
        return f"Microsoft Graph ({profile.where})"
    return f"{profile.host}:{profile.port} ({profile.security})"


def _login(profile: SmtpProfile, backend_name: Any = None) -> str:
    if profile.auth == "oauth-google":
        return f"OAuth as {profile.user} (Google service account {profile.service_account})"
    if profile.auth == "oauth-microsoft":
        if profile.certificate is not None:
            key = f"certificate {profile.certificate}"
        elif profile.credentials_source == "env":
            key = f"client secret read from {MAIL_CLIENT_SECRET_ENV} at run time"
        else:
            where = f" ({backend_name()})" if backend_name is not None else ""
            key = f"client secret in the OS keyring{where}"
        return f"OAuth app {profile.client_id} of tenant {profile.tenant}, {key}"
    return f"user {profile.user}" if profile.user else "no login"


def _ask_client_secret(profile: SmtpProfile, from_stdin: bool) -> str:
    """A Microsoft app's client secret: stdin's first line, its variable, or a hidden prompt."""
    from caaspp_cli.config.mail_profiles import ClientSecretSet

    secret = ClientSecretSet(profile).secret
    return _ask(secret, from_stdin, "--secret-stdin", f"Client secret of app {profile.client_id}")


def _ask_smtp_password(profile: SmtpProfile, from_stdin: bool) -> str:
    """The SMTP password: the first line of stdin, CAASPP_SMTP_PASSWORD, or a hidden prompt."""
    from caaspp_cli.config.mail_profiles import SmtpSecrets

    password = SmtpSecrets(profile).password
    return _ask(password, from_stdin, "--password-stdin", f"SMTP password of {profile.user or ''}")


def _ask(secret: Secret, from_stdin: bool, stdin_option: str, question: str) -> str:
    """A new secret to store: the first line of stdin (``stdin_option``), its environment
    variable, or a hidden prompt asking ``question``."""
    if from_stdin:
        return prompts.read_stdin_line(stdin_option, secret)
    resolver = Resolver(
        prompt=prompts.hidden_prompt(
            lambda s: f"set {s.env}, pipe it with {stdin_option}", lambda s: question
        ),
        announce=render.info,
    )
    return resolver.ask(secret)


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
            _route(profile),
            profile.from_address,
            _login_name(profile),
            _password_source(profile),
        )
    render.stdout.print(table)


def _login_name(profile: SmtpProfile) -> str:
    if profile.auth == "oauth-microsoft":
        return f"app {profile.client_id} (Microsoft)"
    if profile.auth == "oauth-google":
        return f"{profile.user} (Google)"
    return profile.user or "-"


def _password_source(profile: SmtpProfile) -> str:
    if profile.auth == "oauth-google":
        return "service account key file"
    if profile.auth == "oauth-microsoft" and profile.certificate is not None:
        return "certificate file"
    if profile.user is None and not profile.oauth:
        return "none (no login)"
    return "environment" if profile.credentials_source == "env" else "keyring"


def mail_json(profile: SmtpProfile) -> dict[str, Any]:
    data: dict[str, Any] = profile.model_dump(mode="json", by_alias=True)
    for key in ("tenant", "client_id", "certificate", "authority", "graph_url"):
        if data[key] is None:  # a password profile shows what it always did
            del data[key]
    if data["service_account"] is None:
        del data["service_account"]
    data["password"] = _password_source(profile)
    return data


def show_mail_profile(profile: SmtpProfile, as_json: bool) -> None:
    if as_json:
        render.print_json({"kind": "mail", **mail_json(profile)})
        return
    if profile.oauth:
        print_fields(
            [
                ("name", profile.name),
                ("kind", "mail (caaspp config mail)"),
                ("via", profile.via),
                ("server", _route(profile)),
                ("from", profile.from_address),
                ("reply-to", profile.reply_to or "-"),
                ("login", _login(profile)),
                ("authority", profile.authority or "-"),
                ("CA file", profile.ca_file or "-"),
            ]
        )
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
