"""`caaspp config test-mail` (and its older name `smtp-test`): check a mail profile end to end.

It gets a token (OAuth profiles), connects, checks the certificate and logs in, and with
``--to`` sends one test message (through Graph too); a Graph profile's check is a token
and a look-up of its mailbox. Whatever fails is said in one sentence: a permission the app
lacks (read from the token's roles), Exchange not knowing the app, basic authentication
disabled, a mailbox that does not exist, a From address the login may not send as.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from caaspp_cli.cli import render
from caaspp_cli.cli.config import config_app
from caaspp_cli.errors import BadInputError, MailAuthenticationError, MailConnectionError

if TYPE_CHECKING:
    from caaspp_cli.config.mail_profiles import SmtpProfile


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
            from caaspp_cli.send.run import open_transport

            _send_test_message(open_transport(profile, None), profile, recipient)
            render.stdout.print(f"Sent a test message to {recipient} through Graph.")
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
