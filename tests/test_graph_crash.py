"""kill -9 during a Graph sendMail call, then a re-run: no family gets a message twice.

The sender runs as its own process (a small script calling ``send_reports`` with a
:class:`caaspp_cli.send.graph.GraphTransport`), and is killed at the two moments that
leave a message uncertain: its request read whole by the peer before the peer keeps it
(the message is lost), and after (kept, and never answered).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graph_peer import GraphPeer, serve_graph
from helpers import Family, SmtpServer, TlsFiles, add_smtp_profile, write_send_inputs

RUN_TIMEOUT = 120.0

SENDER = """
import sys
from pathlib import Path

sys.path.insert(0, {tests!r})
from graph_peer import StaticTokens

from caaspp_cli.errors import CaasppError
from caaspp_cli.send.graph import GraphTransport
from caaspp_cli.send.run import SendOptions, send_reports

roster, pdfs, passwords, url, ca_file, *flags = sys.argv[1:]
options = SendOptions(
    roster=Path(roster),
    pdfs=Path(pdfs),
    passwords=Path(passwords),
    smtp="district",
    rate=6000,
    resend_uncertain="--resend-uncertain" in flags,
    mark_uncertain_sent="--mark-uncertain-sent" in flags,
)
server = GraphTransport("reports@lincoln.example.org", url, StaticTokens(), ca_file=ca_file)
try:
    summary = send_reports(options, server=server)
except CaasppError as exc:
    print(exc, file=sys.stderr)
    sys.exit(int(exc.exit_code))
sys.exit(3 if summary.problems else 0)
"""


@pytest.fixture
def graph(tls_files: TlsFiles) -> Iterator[GraphPeer]:
    yield from serve_graph(tls_files.server_context())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def kept(graph: GraphPeer) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for received in graph.received:
        kind = "report" if any(received.message.iter_attachments()) else "password"
        for recipient in received.rcpt_tos:
            counts[(recipient, kind)] += 1
    return counts


@pytest.mark.posix
@pytest.mark.slow
def test_a_kill_during_a_graph_call_then_reruns_never_send_a_message_twice(
    tmp_path: Path, graph: GraphPeer, tls_files: TlsFiles
) -> None:
    add_smtp_profile(SmtpServer(None, "127.0.0.1", 9))  # type: ignore[arg-type]
    families = [
        Family(f"50000000{n:02d}", f"Kid{n}", "Doe", email=f"family{n}@example.org")
        for n in range(6)
    ]
    inputs = write_send_inputs(tmp_path / "case", families)
    script = tmp_path / "sender.py"
    script.write_text(SENDER.format(tests=str(Path(__file__).parent)), encoding="utf-8")
    errors = tmp_path / "sender.err"

    def start(*flags: str, roster: Path = inputs.roster) -> subprocess.Popen[bytes]:
        with errors.open("wb") as stderr:
            return subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(roster),
                    str(inputs.pdfs),
                    str(inputs.passwords),
                    graph.url,
                    str(tls_files.ca_file),
                    *flags,
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    def finish(process: subprocess.Popen[bytes]) -> int:
        try:
            return process.wait(timeout=RUN_TIMEOUT)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    for moment in ("before_keeping", "after_keeping"):
        process = start()

        def kill(process: subprocess.Popen[bytes] = process) -> None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

        setattr(graph, moment, kill)
        assert finish(process) == -signal.SIGKILL, errors.read_text()
        assert max(kept(graph).values(), default=1) == 1, "a family got a second copy"

    code = finish(start())
    counts = kept(graph)
    assert max(counts.values()) == 1, "a family got a second copy"
    rows = {r["ssid"]: r for r in read_csv(inputs.pdfs / "send-report.csv")}
    uncertain = {ssid for ssid, r in rows.items() if r["outcome"] == "uncertain"}
    assert len(uncertain) == 2, rows  # one per kill
    assert code == 3, errors.read_text()
    assert {r["outcome"] for r in rows.values()} <= {"sent", "already_sent", "uncertain"}

    # As the report says: look the Message-IDs up, record the kept one as sent, and send
    # the lost one again. Then every family has both messages, once.
    ids = {str(m.message["Message-ID"]) for m in graph.received}
    for ssid in uncertain:
        row = rows[ssid]
        message_id = (
            row["report_message_id"]
            if row["report_message"] == "uncertain"
            else row["password_message_id"]
        )
        roster = tmp_path / f"{ssid}.csv"
        with inputs.roster.open(encoding="utf-8", newline="") as handle:
            lines: list[Any] = list(csv.reader(handle))
        with roster.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([lines[0], *(r for r in lines[1:] if r[0] == ssid)])
        flag = "--mark-uncertain-sent" if message_id in ids else "--resend-uncertain"
        assert finish(start(flag, roster=roster)) == 0, errors.read_text()
    assert finish(start()) == 0, errors.read_text()
    expected = {(f.email, kind): 1 for f in families for kind in ("report", "password")}
    assert kept(graph) == Counter(expected)
