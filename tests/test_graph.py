"""`caaspp send` through Microsoft Graph's sendMail, against a Graph peer on loopback."""

from __future__ import annotations

import email.policy
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from graph_peer import GOOD_TOKEN, GraphPeer, StaticTokens, serve_graph
from helpers import (
    FakeTime,
    Family,
    SmtpServer,
    TlsFiles,
    add_smtp_profile,
    send_run,
    write_send_inputs,
)

from caaspp_cli.errors import BadInputError, MailAuthenticationError
from caaspp_cli.send.graph import MAX_REQUEST_BYTES, GraphTransport
from caaspp_cli.send.outcomes import SendOutcome, SendSummary
from caaspp_cli.send.transport import SmtpRefusal, UncertainDelivery

FAMILIES = [
    Family("1000000001", "José", "Ñúñez", guardian="María Ñúñez", email="maria@example.org"),
    Family("1000000002", "Hoa", "Nguyễn", email="an@example.org; binh@example.net"),
    Family("1000000003", "Sam", "Lee", guardian="Pat Lee", email="pat@example.org"),
]
MAILBOX = "reports@lincoln.example.org"


@pytest.fixture
def graph(tls_files: TlsFiles) -> Iterator[GraphPeer]:
    yield from serve_graph(tls_files.server_context())


@pytest.fixture
def inputs(tmp_path: Path) -> Any:
    # The SMTP profile gives the From address; the messages go through Graph.
    add_smtp_profile(SmtpServer(None, "127.0.0.1", 9))  # type: ignore[arg-type]
    return write_send_inputs(tmp_path / "case", FAMILIES)


def transport(graph: GraphPeer, tls_files: TlsFiles, tokens: Any = None) -> GraphTransport:
    return GraphTransport(
        MAILBOX, graph.url, tokens or StaticTokens(), ca_file=str(tls_files.ca_file), timeout=10
    )


def send(
    inputs: Any, server: GraphTransport, time: FakeTime | None = None, **options: Any
) -> SendSummary:
    summary: SendSummary = send_run(inputs, time, server=server, **options)
    return summary


def outcomes(summary: SendSummary) -> dict[str, str]:
    return {row.ssid: row.outcome.value for row in summary.rows}


def counts(graph: GraphPeer) -> Counter[tuple[str, str]]:
    """(recipient, kind) -> messages the peer kept."""
    kept: Counter[tuple[str, str]] = Counter()
    for received in graph.received:
        kind = "report" if any(received.message.iter_attachments()) else "password"
        for recipient in received.rcpt_tos:
            kept[(recipient, kind)] += 1
    return kept


def every_family_once(graph: GraphPeer) -> bool:
    expected = Counter(
        {
            (address.strip(), kind): 1
            for family in FAMILIES
            for address in family.email.split(";")
            for kind in ("report", "password")
        }
    )
    return counts(graph) == expected


def raw_message(to: str = "pat@example.org", size: int = 10) -> bytes:
    message = EmailMessage()
    message["From"] = MAILBOX
    message["To"] = to
    message["Subject"] = "Score report"
    message["Message-ID"] = "<m1@lincoln.example.org>"
    message.set_content("Hello")
    message.add_attachment(b"%PDF" + b"x" * size, maintype="application", subtype="pdf")
    return message.as_bytes(policy=email.policy.SMTP)


# --- The transport -----------------------------------------------------------------------
def test_a_message_goes_as_its_own_mime_bytes_with_the_bearer_token(
    graph: GraphPeer, tls_files: TlsFiles
) -> None:
    data = raw_message()
    moments: list[int] = []
    with transport(graph, tls_files) as server:
        delivery = server.deliver(
            MAILBOX, ["pat@example.org"], data, lambda: moments.append(graph.requests)
        )
    assert delivery.accepted == ("pat@example.org",)
    assert moments == [0], "before_body runs once, before the request"
    assert [m.data for m in graph.received] == [data]
    assert graph.received[0].mailbox == MAILBOX
    assert graph.authorizations == [f"Bearer {GOOD_TOKEN}"]


def test_recipients_that_are_not_the_messages_to_are_refused_before_sending(
    graph: GraphPeer, tls_files: TlsFiles
) -> None:
    with transport(graph, tls_files) as server, pytest.raises(SmtpRefusal) as refusal:
        server.deliver(MAILBOX, ["other@example.org"], raw_message(), lambda: None)
    assert refusal.value.code == 554 and not refusal.value.temporary
    assert graph.requests == 0


def test_a_message_over_graphs_4_mb_is_refused_with_a_clear_detail(
    graph: GraphPeer, tls_files: TlsFiles
) -> None:
    data = raw_message(size=MAX_REQUEST_BYTES * 3 // 4)
    with transport(graph, tls_files) as server, pytest.raises(SmtpRefusal) as refusal:
        server.deliver(MAILBOX, ["pat@example.org"], data, lambda: None)
    assert refusal.value.code == 552
    assert "4 MB" in str(refusal.value)
    assert graph.requests == 0


def test_a_refused_token_is_renewed_once_then_the_login_fails(
    graph: GraphPeer, tls_files: TlsFiles
) -> None:
    tokens = StaticTokens()
    graph.reject_token = 1
    with transport(graph, tls_files, tokens) as server:
        server.deliver(MAILBOX, ["pat@example.org"], raw_message(), lambda: None)
        assert tokens.invalidations == 1 and len(graph.received) == 1
        graph.reject_token = 2
        with pytest.raises(MailAuthenticationError) as error:
            server.deliver(MAILBOX, ["pat@example.org"], raw_message(), lambda: None)
    assert tokens.invalidations == 3 and len(graph.received) == 1
    assert GOOD_TOKEN not in str(error.value) and GOOD_TOKEN not in str(error.value.hint)
    assert GOOD_TOKEN not in repr(server)


def test_graph_is_reached_over_verified_tls_only(graph: GraphPeer, tls_files: TlsFiles) -> None:
    from caaspp_cli.errors import MailTLSError

    with pytest.raises(BadInputError):
        GraphTransport(MAILBOX, f"http://{graph.host}:{graph.port}", StaticTokens())
    untrusting = GraphTransport(MAILBOX, graph.url, StaticTokens(), timeout=10)
    with pytest.raises(MailTLSError):
        untrusting.deliver(MAILBOX, ["pat@example.org"], raw_message(), lambda: None)
    assert graph.requests == 0


def test_a_lost_answer_after_the_request_is_uncertain(
    graph: GraphPeer, tls_files: TlsFiles
) -> None:
    graph.drop_after_keeping = 1
    with transport(graph, tls_files) as server, pytest.raises(UncertainDelivery):
        server.deliver(MAILBOX, ["pat@example.org"], raw_message(), lambda: None)
    assert len(graph.received) == 1


# --- A whole send --------------------------------------------------------------------------
def test_a_send_over_graph_delivers_each_familys_two_messages_once_attachments_intact(
    graph: GraphPeer, tls_files: TlsFiles, inputs: Any
) -> None:
    summary = send(inputs, transport(graph, tls_files))
    assert set(outcomes(summary).values()) == {"sent"}
    assert every_family_once(graph)
    for received in graph.received:
        for part in received.message.iter_attachments():
            name = part.get_filename()
            assert isinstance(name, str)
            assert part.get_content() == (inputs.pdfs / name).read_bytes()
            family = next(f for f in FAMILIES if name.startswith(f.ssid))
            with pikepdf.open(inputs.pdfs / name, password=family.password):
                pass
    # A re-run sends nothing new.
    again = send(inputs, transport(graph, tls_files))
    assert set(outcomes(again).values()) == {"already_sent"}
    assert every_family_once(graph)


def test_429s_slow_the_run_and_fail_nothing(
    graph: GraphPeer, tls_files: TlsFiles, inputs: Any
) -> None:
    graph.throttle = 6
    time = FakeTime()
    summary = send(inputs, transport(graph, tls_files), time, retry_delays=(1.0,))
    assert set(outcomes(summary).values()) == {"sent"}
    assert every_family_once(graph)
    assert time.sleeps.count(7.0) == 6, "each 429's Retry-After is waited"


def test_a_dropped_answer_is_uncertain_and_not_resent_by_the_next_run(
    graph: GraphPeer, tls_files: TlsFiles, inputs: Any
) -> None:
    graph.drop_after_keeping = 1
    first = send(inputs, transport(graph, tls_files))
    assert outcomes(first)[FAMILIES[0].ssid] == "uncertain"
    assert [r.outcome for r in first.rows[1:]] == [SendOutcome.SENT, SendOutcome.SENT]
    second = send(inputs, transport(graph, tls_files))
    assert outcomes(second)[FAMILIES[0].ssid] == "uncertain"
    assert max(counts(graph).values()) == 1
    assert (FAMILIES[0].email, "password") not in counts(graph)


def test_the_token_is_in_no_log_report_ledger_or_error(
    graph: GraphPeer, tls_files: TlsFiles, inputs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import base64
    import logging

    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    graph.reject_token, graph.throttle, graph.drop_after_keeping = 1, 1, 1
    summary = send(inputs, transport(graph, tls_files), retry_delays=(1.0,))
    graph.reject_token = 2
    with pytest.raises(MailAuthenticationError) as error:
        send(inputs, transport(graph, tls_files), resend_uncertain=True)
    forms = [GOOD_TOKEN.encode(), base64.b64encode(GOOD_TOKEN.encode())]
    texts = [
        caplog.text.encode(),
        str(error.value).encode(),
        str(error.value.hint).encode(),
        repr(transport(graph, tls_files)).encode(),
        *(path.read_bytes() for path in inputs.pdfs.parent.rglob("*") if path.is_file()),
        *(row.detail.encode() for row in summary.rows),
    ]
    for text in texts:
        for form in forms:
            assert form not in text
    assert any("Bearer" in a for a in graph.authorizations)  # it did go, in its header
