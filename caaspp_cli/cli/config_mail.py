"""`caaspp config mail`, `config smtp` (its password-SMTP shorthand), `config test-mail` (and
its older name `smtp-test`): mail profiles, and how the other config commands show them.

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
from caaspp_cli.errors import BadInputError, MailAuthenticationError, MailConnectionError

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


@config_app.command("smtp-test")
def smtp_test(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="SMTP profile name.", show_default=False)
    ],
) -> None:
    """Connect to an SMTP profile's server, check its certificate, log in; send nothing
    (the same as `caaspp config test-mail NAME`)."""
    test_mail(name, None)


@config_app.command("test-mail")
def test_mail(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Mail profile name.", show_default=False)
    ],
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="ADDRESS", help="Also send one test message there."),
    ] = None,
) -> None:
    """Get a token (OAuth), connect, check the certificate, log in; with --to send one test
    message. Says what is wrong when something is."""
    from caaspp_cli.config import mail_profiles as smtp_profiles
    from caaspp_cli.send.oauth import token_provider
    from caaspp_cli.send.run import MailServer

    profile = smtp_profiles.get_smtp_profile(name)
    recipient = None
    if to is not None:
        from caaspp_cli.addresses import parse_mailbox

        try:
            recipient = parse_mailbox(to, "--to").addr_spec
        except ValueError as exc:
            raise BadInputError(f"{exc}.") from None
    if profile.via == "graph":
        _test_graph(profile)
        if recipient is not None:
            render.warning("--to is not used with Graph profiles yet: nothing was sent.")
        return
    tokens = token_provider(profile) if profile.oauth else None
    server = MailServer(profile, smtp_profiles.smtp_password(profile), tokens=tokens)
    if recipient is None:
        server.check()
    else:
        _send_test_message(server, profile, recipient)
    login = f", logged in as {profile.user}" if profile.user and not profile.oauth else ""
    if profile.oauth:
        login = f", logged in with a token for {profile.mailbox}"
    sent = f"Sent a test message to {recipient}." if recipient else "Nothing was sent."
    render.stdout.print(
        f"SMTP profile {name}: {profile.host}:{profile.port} answered"
        f"{' over TLS' if profile.security != 'none' else ''}{login}. {sent}"
    )


def _send_test_message(server: Any, profile: SmtpProfile, recipient: str) -> None:
    from email.message import EmailMessage
    from email.policy import SMTP

    from caaspp_cli.send.transport import ConnectionLost, SmtpRefusal

    message = EmailMessage(policy=SMTP)
    message["From"] = profile.from_address
    message["To"] = recipient
    message["Subject"] = "caaspp test message"
    message.set_content(f"This message checks the mail profile {profile.name} of caaspp.\n")
    try:
        server.deliver(profile.sender.addr_spec, [recipient], message.as_bytes(), lambda: None)
    except SmtpRefusal as exc:
        text = str(exc)
        if "5.7.60" in text or "send as" in text.lower():
            raise MailAuthenticationError(
                f"the mail server refused to send as {profile.sender.addr_spec}: the login has "
                f"no permission to send as the From address ({text}).",
                hint="give the app or user Send As on that mailbox, or use its own address "
                "as --from.",
            ) from None
        raise MailConnectionError(f"the test message was refused ({text}).") from None
    except ConnectionLost as exc:
        raise MailConnectionError(
            f"the connection was lost sending the test message ({exc})."
        ) from None
    finally:
        server.close()


def _test_graph(profile: SmtpProfile) -> None:
    """A token, then ``GET /v1.0/users/{mailbox}``, each failure in one sentence."""
    import os

    import httpx

    from caaspp_cli.config.mail_profiles import GRAPH_URL
    from caaspp_cli.send.oauth import token_provider, token_roles
    from caaspp_cli.send.transport import tls_context

    token = token_provider(profile).token()
    roles = token_roles(token)
    mailbox = profile.mailbox
    if roles is not None and "Mail.Send" not in roles:
        raise MailAuthenticationError(
            f"the app {profile.client_id} lacks the Mail.Send permission (its token holds no "
            "such role).",
            hint="add the Microsoft Graph application permission Mail.Send to the app and "
            "grant admin consent (README: Microsoft 365).",
        )
    graph = profile.graph_url or GRAPH_URL
    url = f"{graph}/v1.0/users/{mailbox}"
    context = tls_context(os.environ.get("REQUESTS_CA_BUNDLE"))
    try:
        with httpx.Client(verify=context, timeout=30.0, trust_env=False) as client:
            response = client.get(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise MailConnectionError(
            f"Microsoft Graph at {graph} could not be reached ({type(exc).__name__})."
        ) from None
    status = response.status_code
    if status == 401:
        raise MailAuthenticationError(
            f"Microsoft Graph refused the token of app {profile.client_id} (401).",
            hint="check --tenant, --client-id and --graph-url of the mail profile.",
        )
    if status == 403:
        raise MailAuthenticationError(
            f"Microsoft Graph does not let app {profile.client_id} use the mailbox {mailbox} "
            "(403): it lacks Mail.Send with admin consent, or an application access policy "
            "leaves that mailbox out.",
            hint="see the README's Microsoft 365 section (Graph).",
        )
    if status == 404:
        raise MailAuthenticationError(
            f"the mailbox {mailbox} does not exist in tenant {profile.tenant} (404).",
            hint="give the address of an existing mailbox with --from (or --user).",
        )
    if status >= 400:
        raise MailConnectionError(f"Microsoft Graph answered {status} for {mailbox}.")
    render.stdout.print(
        f"Mail profile {profile.name}: Microsoft Graph at {graph} gave app "
        f"{profile.client_id} a token and knows the mailbox {mailbox}. Nothing was sent."
    )


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
    if from_stdin:
        return prompts.read_stdin_line("--secret-stdin", secret)

    def question(secret: Secret) -> str:
        return f"Client secret of app {profile.client_id}"

    def ways(secret: Secret) -> str:
        return f"set {secret.env}, pipe it with --secret-stdin"

    resolver = Resolver(prompt=prompts.hidden_prompt(ways, question), announce=render.info)
    return resolver.ask(secret)


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
