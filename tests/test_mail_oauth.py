"""Mail profiles that log in as Microsoft 365 and Google Workspace want: OAuth tokens from a
real token endpoint on loopback, AUTH XOAUTH2 to a real SMTP server, and the explanations
of what is wrong when a login is refused."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from helpers import Family, SmtpServer, write_send_inputs
from mail_peers import (
    BASIC_AUTH_DISABLED,
    TENANT,
    MicrosoftApp,
    ServiceAccount,
    TokenPeer,
    XoauthServer,
    key_pem,
    rsa_key,
    self_signed,
    serve_token_peer,
    serve_xoauth_smtp,
    write_service_account_key,
)

from caaspp_cli.config.mail_profiles import get_smtp_profile
from caaspp_cli.errors import MailConnectionError
from caaspp_cli.send.oauth import token_provider
from caaspp_cli.send.transport import MailServer

MAILBOX = "reports@lincoln.example.org"
CLIENT_ID = "0b7c1d3e-2f4a-4b5c-9d8e-7f6a5b4c3d2e"
CLIENT_SECRET = "app-SECRET-oauth-4e1f9a77c2"
JOSE = Family("1000000001", "José", "Ñúñez", guardian="María Ñúñez", email="maria@example.org")
SAM = Family("1000000003", "Sam", "Lee", guardian="Pat Lee", email="pat@example.org")


@pytest.fixture
def peer(tls_files: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenPeer]:
    """The token endpoint, trusted through SSL_CERT_FILE and REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_file))
    yield from serve_token_peer(tls_files.server_context())


@pytest.fixture
def smtp(peer: TokenPeer, tls_files: Any) -> Iterator[XoauthServer]:
    """An SMTP server with STARTTLS that takes only XOAUTH2 with the peer's tokens."""
    yield from serve_xoauth_smtp(peer, MAILBOX, tls_files.server_context())


def _mail(cli: Any, server: SmtpServer, *extra: str, env: dict[str, str] | None = None) -> Any:
    return cli(
        "config",
        "mail",
        "district",
        "--via",
        "smtp",
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--from",
        f"Lincoln Unified <{MAILBOX}>",
        *extra,
        env=env,
    )


def _microsoft(peer: TokenPeer) -> list[str]:
    return [
        "--auth",
        "oauth-microsoft",
        "--tenant",
        TENANT,
        "--client-id",
        CLIENT_ID,
        "--authority",
        peer.authority,
    ]


def _send(cli: Any, inputs: Any, *extra: str) -> Any:
    return cli(
        "send",
        "--roster",
        str(inputs.roster),
        "--pdfs",
        str(inputs.pdfs),
        "--passwords",
        str(inputs.passwords),
        "--mail",
        "district",
        *extra,
    )


def _each_family_got_two_messages_once(
    server: SmtpServer, inputs: Any, outcome: str = "sent"
) -> None:
    received = [to for message in server.received for to in message.rcpt_tos]
    expected = [f.email for f in inputs.families for _ in range(2)]
    assert sorted(received) == sorted(expected)
    report = list(
        csv.DictReader((inputs.pdfs / "send-report.csv").read_text("utf-8-sig").splitlines())
    )
    assert {row["outcome"] for row in report} == {outcome}


def _certificate_file(folder: Path, app: MicrosoftApp, mode: int = 0o600) -> Path:
    key = rsa_key()
    app.certificate = self_signed(key)
    path = folder / "app.pem"
    path.write_bytes(key_pem(key) + app.certificate.public_bytes(serialization.Encoding.PEM))
    path.chmod(mode)
    return path


# --- Microsoft 365 over SMTP ---------------------------------------------------------------
def test_microsoft_with_a_client_secret_delivers_every_message_once(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, memory_keyring: Any, tmp_path: Path
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    made = _mail(cli, smtp, *_microsoft(peer), env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET})
    assert made.exit_code == 0, made.output
    assert memory_keyring.entries[("caaspp", "mail-client-secret:district")] == CLIENT_SECRET
    assert CLIENT_SECRET not in (Path(os.environ["CAASPP_CONFIG_DIR"]) / "config.toml").read_text()
    profile = get_smtp_profile("district")
    assert (profile.via, profile.auth, profile.provider) == ("smtp", "oauth-microsoft", "microsoft")
    inputs = write_send_inputs(tmp_path / "case", [JOSE, SAM])

    result = _send(cli, inputs)

    assert result.exit_code == 0, result.output
    _each_family_got_two_messages_once(smtp, inputs)
    assert smtp.handler.logins == [MAILBOX]  # one session, one token
    assert len(peer.issued) == 1
    again = _send(cli, inputs)
    assert again.exit_code == 0
    _each_family_got_two_messages_once(smtp, inputs, "already_sent")  # nothing sent twice


def test_microsoft_with_a_certificate_delivers(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, tmp_path: Path
) -> None:
    app = peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID)
    pem = _certificate_file(tmp_path, app)
    made = _mail(cli, smtp, *_microsoft(peer), "--certificate", str(pem))
    assert made.exit_code == 0, made.output
    assert "certificate" in made.output
    inputs = write_send_inputs(tmp_path / "case", [JOSE, SAM])

    result = _send(cli, inputs)

    assert result.exit_code == 0, result.output
    _each_family_got_two_messages_once(smtp, inputs)
    assert peer.refusals == []


@pytest.mark.posix
def test_a_certificate_key_readable_by_others_is_refused(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, tmp_path: Path
) -> None:
    app = peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID)
    pem = _certificate_file(tmp_path, app, mode=0o644)

    made = _mail(cli, smtp, *_microsoft(peer), "--certificate", str(pem))

    assert made.exit_code == 2
    assert "readable by others" in made.output
    assert "chmod 600" in made.output


def test_a_certificate_the_app_does_not_have_is_refused_by_the_token_endpoint(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, tmp_path: Path
) -> None:
    app = peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID)
    pem = _certificate_file(tmp_path, app)
    app.certificate = self_signed(rsa_key())  # another certificate is registered
    assert _mail(cli, smtp, *_microsoft(peer), "--certificate", str(pem)).exit_code == 0

    result = cli("config", "test-mail", "district")

    assert result.exit_code == 4
    assert "Microsoft refused a token" in result.output
    assert peer.refusals


def test_a_wrong_client_secret_is_refused_with_exit_4(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, tmp_path: Path
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    _mail(cli, smtp, *_microsoft(peer), "--env-secret")
    inputs = write_send_inputs(tmp_path / "case", [SAM])

    missing = _send(cli, inputs)
    assert missing.exit_code == 4
    assert "CAASPP_MAIL_CLIENT_SECRET is not set" in missing.output

    os.environ["CAASPP_MAIL_CLIENT_SECRET"] = "not-the-secret"
    try:
        wrong = _send(cli, inputs)
    finally:
        del os.environ["CAASPP_MAIL_CLIENT_SECRET"]
    assert wrong.exit_code == 4
    assert "Invalid client secret" in wrong.output
    assert smtp.received == []


def test_a_token_refused_mid_run_is_renewed_once(
    cli: Any, peer: TokenPeer, smtp: XoauthServer
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    _mail(cli, smtp, *_microsoft(peer), env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET})
    profile = get_smtp_profile("district")
    tokens = token_provider(profile)
    server = MailServer(profile, None, tokens=tokens)
    message = b"Subject: one\r\n\r\nbody\r\n"

    server.deliver(MAILBOX, ["pat@example.org"], message, lambda: None)
    server.close()
    peer.revoke()  # the cached token no longer works: the next session's login is refused
    server.deliver(MAILBOX, ["pat@example.org"], message, lambda: None)
    server.close()

    assert len(smtp.received) == 2
    assert smtp.handler.logins == [MAILBOX, MAILBOX]
    assert len(peer.issued) == 2  # renewed once, not more
    assert smtp.handler.refused_logins == 1


def test_a_token_is_renewed_before_it_expires(
    cli: Any, peer: TokenPeer, smtp: XoauthServer
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    _mail(cli, smtp, *_microsoft(peer), env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET})
    now = [1000.0]
    tokens = token_provider(get_smtp_profile("district"), clock=lambda: now[0])

    first = tokens.token()
    now[0] += 3000  # ten minutes left of the hour: kept
    assert tokens.token() == first
    now[0] += 400  # under five minutes left: renewed
    assert tokens.token() != first
    assert len(peer.issued) == 2


# --- Google Workspace ----------------------------------------------------------------------
def test_google_service_account_delivers_as_the_mailbox(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, tmp_path: Path
) -> None:
    account = ServiceAccount(
        "caaspp@lincoln-reports.iam.gserviceaccount.com", rsa_key(), (MAILBOX,)
    )
    peer.accounts[account.email] = account
    key_file = write_service_account_key(tmp_path, peer, account)
    made = _mail(
        cli, smtp, "--auth", "oauth-google", "--service-account", str(key_file), "--user", MAILBOX
    )
    assert made.exit_code == 0, made.output
    assert get_smtp_profile("district").provider == "google"
    inputs = write_send_inputs(tmp_path / "case", [JOSE, SAM])

    result = _send(cli, inputs)

    assert result.exit_code == 0, result.output
    _each_family_got_two_messages_once(smtp, inputs)
    assert peer.refusals == []


@pytest.mark.parametrize("no_limit", [False, True])
def test_the_providers_documented_daily_limit_applies_unless_told_otherwise(
    cli: Any,
    peer: TokenPeer,
    smtp: XoauthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_limit: bool,
) -> None:
    """A Google profile gets Google's daily limit without --daily-limit (made 2 messages
    here, so that one family fills it); --no-daily-limit applies none."""
    from caaspp_cli.send import quota

    monkeypatch.setitem(quota._DOCUMENTED, "google", quota.DailyLimit(2, "messages"))
    account = ServiceAccount(
        "caaspp@lincoln-reports.iam.gserviceaccount.com", rsa_key(), (MAILBOX,)
    )
    peer.accounts[account.email] = account
    key_file = write_service_account_key(tmp_path, peer, account)
    _mail(
        cli, smtp, "--auth", "oauth-google", "--service-account", str(key_file), "--user", MAILBOX
    )
    inputs = write_send_inputs(tmp_path / "case", [JOSE, SAM])

    result = _send(cli, inputs, *(["--no-daily-limit"] if no_limit else []))

    if no_limit:
        assert result.exit_code == 0, result.output
        assert len(smtp.received) == 4
    else:
        assert result.exit_code == 3, result.output
        assert len(smtp.received) == 2
        assert "2 messages a day" in result.output


def test_google_without_delegation_for_the_mailbox_says_so(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, tmp_path: Path
) -> None:
    account = ServiceAccount("caaspp@lincoln-reports.iam.gserviceaccount.com", rsa_key(), ())
    peer.accounts[account.email] = account
    key_file = write_service_account_key(tmp_path, peer, account)
    _mail(
        cli, smtp, "--auth", "oauth-google", "--service-account", str(key_file), "--user", MAILBOX
    )

    result = cli("config", "test-mail", "district")

    assert result.exit_code == 4
    assert "Google refused a token" in result.output
    assert "domain-wide delegation" in result.output


@pytest.mark.posix
def test_a_service_account_key_readable_by_others_is_refused(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, tmp_path: Path
) -> None:
    account = ServiceAccount("sa@p.iam.gserviceaccount.com", rsa_key(), (MAILBOX,))
    key_file = write_service_account_key(tmp_path, peer, account)
    key_file.chmod(0o640)

    made = _mail(
        cli, smtp, "--auth", "oauth-google", "--service-account", str(key_file), "--user", MAILBOX
    )

    assert made.exit_code == 2
    assert "readable by others" in made.output


# --- What a refusal means --------------------------------------------------------------------
def test_a_password_login_where_basic_auth_is_disabled_says_the_tenant_needs_oauth(
    cli: Any, smtp: XoauthServer, tmp_path: Path
) -> None:
    made = _mail(cli, smtp, "--user", MAILBOX, env={"CAASPP_SMTP_PASSWORD": "pw-d1sabled"})
    assert made.exit_code == 0, made.output
    inputs = write_send_inputs(tmp_path / "case", [SAM])

    result = _send(cli, inputs)

    assert result.exit_code == 4
    assert "this tenant needs OAuth: see the README's Microsoft 365 section" in result.output
    assert BASIC_AUTH_DISABLED not in result.output  # explained, not echoed
    assert smtp.received == []


def test_test_mail_says_the_app_lacks_smtp_send_as_app(
    cli: Any, peer: TokenPeer, smtp: XoauthServer
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET, roles=())
    _mail(cli, smtp, *_microsoft(peer), env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET})

    result = cli("config", "test-mail", "district")

    assert result.exit_code == 4
    assert "lacks the SMTP.SendAsApp permission" in result.output
    assert len(peer.issued) == 2  # the refused token was renewed once first


def test_test_mail_says_the_service_principal_is_not_registered(
    cli: Any, peer: TokenPeer, smtp: XoauthServer
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    smtp.handler.mailbox = "someone-else@lincoln.example.org"  # Exchange refuses: 535 5.7.3
    _mail(cli, smtp, *_microsoft(peer), env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET})

    result = cli("config", "test-mail", "district")

    assert result.exit_code == 4
    assert "service principal is not registered" in result.output
    assert "New-ServicePrincipal" in result.output


def test_test_mail_sends_one_message_with_to(cli: Any, peer: TokenPeer, smtp: XoauthServer) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    _mail(cli, smtp, *_microsoft(peer), env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET})

    result = cli("config", "test-mail", "district", "--to", "it@lincoln.example.org")

    assert result.exit_code == 0, result.output
    assert "Sent a test message to it@lincoln.example.org" in result.output
    assert [m.rcpt_tos for m in smtp.received] == [("it@lincoln.example.org",)]


def test_test_mail_says_when_the_from_address_is_not_allowed(
    cli: Any, peer: TokenPeer, smtp: XoauthServer
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    _mail(cli, smtp, *_microsoft(peer), env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET})

    smtp.handler.refuse_sender = (
        "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
    )
    result = cli("config", "test-mail", "district", "--to", "it@lincoln.example.org")

    assert result.exit_code == 4
    assert "no permission to send as the From address" in result.output


# --- Graph profiles --------------------------------------------------------------------------
def _graph(cli: Any, peer: TokenPeer, graph_url: str | None = None) -> Any:
    return cli(
        "config",
        "mail",
        "district",
        "--via",
        "graph",
        "--from",
        f"Lincoln Unified <{MAILBOX}>",
        "--tenant",
        TENANT,
        "--client-id",
        CLIENT_ID,
        "--authority",
        peer.authority,
        "--graph-url",
        graph_url or peer.url,
        env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET},
    )


@pytest.mark.parametrize(
    ("roles", "mailboxes", "code", "words"),
    [
        (("Mail.Send",), {MAILBOX}, 0, "knows the mailbox"),
        ((), {MAILBOX}, 4, "lacks the Mail.Send permission"),
        (("Mail.Send",), set(), 4, "does not exist"),
    ],
)
def test_test_mail_of_a_graph_profile(
    cli: Any, peer: TokenPeer, roles: tuple[str, ...], mailboxes: set[str], code: int, words: str
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET, roles=roles)
    peer.mailboxes = mailboxes
    made = _graph(cli, peer)
    assert made.exit_code == 0, made.output
    profile = get_smtp_profile("district")
    assert (profile.via, profile.auth, profile.provider) == (
        "graph",
        "oauth-microsoft",
        "microsoft",
    )

    result = cli("config", "test-mail", "district")

    assert result.exit_code == code, result.output
    assert words in result.output
    issued = next(iter(peer.issued.values()))
    assert issued.scope == f"{peer.url}/.default"


def test_config_show_and_list_show_oauth_profiles_without_secrets(
    cli: Any, peer: TokenPeer
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    _graph(cli, peer)

    shown = cli("config", "show", "district", "--json")
    listed = cli("config", "list")

    assert shown.exit_code == 0 and listed.exit_code == 0
    data = json.loads(shown.stdout)
    assert data["via"] == "graph" and data["client_id"] == CLIENT_ID
    assert "district" in listed.stdout
    assert CLIENT_SECRET not in shown.output + listed.output


def test_show_and_list_in_words_and_remove_takes_the_client_secret(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, memory_keyring: Any
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    _mail(cli, smtp, *_microsoft(peer), env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET})
    entry = ("caaspp", "mail-client-secret:district")
    assert entry in memory_keyring.entries

    shown = cli("config", "show", "district")
    listed = cli("config", "list")

    assert f"OAuth app {CLIENT_ID} of tenant {TENANT}" in shown.stdout
    assert "client secret in the OS keyring" in shown.stdout
    assert "(Microsoft)" in listed.stdout  # the login column (the table may wrap it)
    removed = cli("config", "remove", "district", "--yes")
    assert removed.exit_code == 0, removed.output
    assert entry not in memory_keyring.entries


def test_smtp_send_option_still_works_beside_mail(
    cli: Any, peer: TokenPeer, smtp: XoauthServer, tmp_path: Path
) -> None:
    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    _mail(cli, smtp, *_microsoft(peer), env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET})
    inputs = write_send_inputs(tmp_path / "case", [SAM])

    result = _send(cli, inputs)
    args = [str(a) for a in ("--roster", inputs.roster, "--pdfs", inputs.pdfs)]
    again = cli("send", *args, "--passwords", str(inputs.passwords), "--smtp", "district")

    assert result.exit_code == 0 and again.exit_code == 0, again.output
    assert len(smtp.received) == 2


def test_an_unreachable_sign_in_service_is_a_connection_error(
    cli: Any, peer: TokenPeer, smtp: XoauthServer
) -> None:
    from helpers import free_port

    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET)
    nowhere = f"https://127.0.0.1:{free_port()}"
    made = _mail(
        cli,
        smtp,
        *_microsoft(peer)[:-1],
        nowhere,
        env={"CAASPP_MAIL_CLIENT_SECRET": CLIENT_SECRET},
    )
    assert made.exit_code == 0, made.output

    result = cli("config", "test-mail", "district")

    assert result.exit_code == MailConnectionError.exit_code, result.output
    assert "the sign-in service for mail profile 'district' could not be reached" in result.output


# --- Microsoft 365 through Graph -----------------------------------------------------------
def test_a_graph_profile_sends_every_family_its_two_messages_once_through_graph(
    cli: Any, peer: TokenPeer, tls_files: Any, tmp_path: Path
) -> None:
    """`config mail --via graph`, then `send --mail`: the token comes from the identity
    provider (with Mail.Send, for Graph's scope), and each family's two messages reach
    Graph's sendMail once; a re-run sends nothing."""
    from graph_peer import serve_graph

    peer.apps[CLIENT_ID] = MicrosoftApp(CLIENT_ID, secret=CLIENT_SECRET, roles=("Mail.Send",))
    for graph in serve_graph(tls_files.server_context()):

        def granted(token: str, graph_url: str = graph.url) -> bool:
            issued = peer.valid(token)
            return (
                issued is not None
                and "Mail.Send" in issued.roles
                and issued.scope == f"{graph_url}/.default"
            )

        graph.accept = granted
        made = _graph(cli, peer, graph_url=graph.url)
        assert made.exit_code == 0, made.output
        inputs = write_send_inputs(tmp_path / "case", [JOSE, SAM])

        result = _send(cli, inputs)

        assert result.exit_code == 0, result.output
        received = sorted(to for message in graph.received for to in message.rcpt_tos)
        assert received == sorted(f.email for f in inputs.families for _ in range(2))
        assert {m.mailbox for m in graph.received} == {MAILBOX}
        again = _send(cli, inputs)
        assert again.exit_code == 0, again.output
        assert len(graph.received) == 4
        peer.mailboxes = {MAILBOX}
        tested = cli("config", "test-mail", "district", "--to", "it@lincoln.example.org")
        assert tested.exit_code == 0, tested.output
        assert "Sent a test message" in tested.stdout
        assert graph.received[-1].rcpt_tos == ("it@lincoln.example.org",)
