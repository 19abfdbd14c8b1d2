"""The sandbox as a real HTTP server on a loopback port, exercised over the wire."""

from __future__ import annotations

import email.utils
import io
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pikepdf
import pytest

from caaspp_cli.ets import contract
from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET, SandboxConfig
from caaspp_cli.sandbox.server import SandboxServer

TOKEN = contract.DEFAULT_TOKEN_ENDPOINT


def reports_url(ssid: str) -> str:
    return contract.reports_path(
        ssid, contract.DEFAULT_STUDENTS_ENDPOINT, contract.DEFAULT_REPORTS_ENDPOINT
    )


@pytest.fixture(scope="module")
def server():
    with SandboxServer(SandboxConfig(students=60, seed=7)) as running:
        yield running


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


def get_token(http: httpx.Client, key: str = DEMO_CLIENT_KEY, secret: str = DEMO_CLIENT_SECRET):
    return http.post(
        TOKEN,
        headers={"Authorization": contract.basic_auth_header(key, secret)},
        data=contract.token_form(),
    )


def bearer(http: httpx.Client) -> dict[str, str]:
    token = get_token(http).json()["access_token"]
    return {"Authorization": contract.bearer_header(token)}


def test_token_granted_for_demo_credentials(http):
    response = get_token(http)
    assert response.status_code == 200
    body = contract.TokenResponse.model_validate(response.json())
    assert body.token_type == "Bearer"
    assert body.expires_in == 3600
    assert len(body.access_token) > 20


def test_token_refused_for_wrong_secret_and_missing_auth(http):
    wrong = get_token(http, secret="not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == contract.ERR_INVALID_CLIENT
    missing = http.post(TOKEN, data=contract.token_form())
    assert missing.status_code == 401


def test_token_refused_for_wrong_grant_type(http):
    response = http.post(
        TOKEN,
        headers={"Authorization": contract.basic_auth_header(DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET)},
        data={"grant_type": "password"},
    )
    assert response.status_code == 400


def test_reports_need_a_bearer_token(server, http):
    ssid = server.state.world.examples()["english_only"]
    assert http.get(reports_url(ssid)).status_code == 401
    response = http.get(reports_url(ssid), headers={"Authorization": "Bearer made-up"})
    assert response.status_code == 401
    assert response.json()["error"] == contract.ERR_INVALID_TOKEN


def test_spanish_student_has_english_and_spanish_pdfs(server, http):
    ssid = server.state.world.examples()["spanish"]
    response = http.get(reports_url(ssid), headers=bearer(http))
    assert response.status_code == 200
    listing = contract.ReportList.model_validate(response.json())
    assert listing.ssid == ssid
    languages = {r.language for r in listing.reports if r.is_pdf}
    assert {"en", "es"} <= languages
    for report in listing.reports:
        assert report.expires_at is not None
        assert "signature=" in report.url


@pytest.mark.parametrize(
    "case", ["english_only", "vietnamese", "filipino", "korean", "chinese", "arabic"]
)
def test_every_language_case_is_served(server, http, case):
    ssid = server.state.world.examples()[case]
    reports = http.get(reports_url(ssid), headers=bearer(http)).json()["reports"]
    languages = {r["language"] for r in reports}
    expected = {
        "english_only": "en",
        "vietnamese": "vi",
        "filipino": "fil",
        "korean": "ko",
        "chinese": "zh-Hant",
        "arabic": "ar",
    }[case]
    assert expected in languages
    if case == "english_only":
        assert languages == {"en"}


def test_filters_narrow_the_list(server, http):
    ssid = server.state.world.examples()["several_tests"]
    headers = bearer(http)
    everything = http.get(reports_url(ssid), headers=headers).json()["reports"]
    assert len({r["test"] for r in everything}) >= 2
    one = everything[0]
    narrowed = http.get(
        reports_url(ssid),
        params=contract.reports_query(one["test"], one["language"], one["year"]),
        headers=headers,
    ).json()["reports"]
    assert narrowed
    assert all(
        (r["test"], r["language"], r["year"]) == (one["test"], one["language"], one["year"])
        for r in narrowed
    )
    assert len(narrowed) < len(everything)


def test_html_entries_are_listed_beside_pdfs(server, http):
    ssid = server.state.world.examples()["html"]
    reports = http.get(reports_url(ssid), headers=bearer(http)).json()["reports"]
    formats = {r["format"] for r in reports}
    assert formats == {"pdf", "html"}
    html = next(r for r in reports if r["format"] == "html")
    page = http.get(html["url"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("ssid_case", "status", "error"),
    [
        ("unknown", 404, contract.ERR_STUDENT_NOT_FOUND),
        ("not_enrolled", 403, contract.ERR_NOT_ENROLLED),
    ],
)
def test_error_statuses_of_the_contract(server, http, ssid_case, status, error):
    ssid = server.state.world.examples()[ssid_case]
    response = http.get(reports_url(ssid), headers=bearer(http))
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["message"]


def test_known_student_without_reports_gets_an_empty_list(server, http):
    ssid = server.state.world.examples()["no_reports"]
    response = http.get(reports_url(ssid), headers=bearer(http))
    assert response.status_code == 200
    assert response.json()["reports"] == []


@pytest.mark.parametrize(
    ("ssid", "params", "error"),
    [
        ("12345", {}, contract.ERR_INVALID_SSID),
        ("12345678901", {}, contract.ERR_INVALID_SSID),
        ("abcdefghij", {}, contract.ERR_INVALID_SSID),
        (None, {"test": "SAT"}, contract.ERR_INVALID_PARAMETER),
        (None, {"language": "fr"}, contract.ERR_INVALID_PARAMETER),
        (None, {"year": "24"}, contract.ERR_INVALID_PARAMETER),
    ],
)
def test_bad_parameters_are_400(server, http, ssid, params, error):
    ssid = ssid or server.state.world.examples()["english_only"]
    response = http.get(reports_url(ssid), params=params, headers=bearer(http))
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_pdf_download_is_a_real_score_report(server, http):
    ssid = server.state.world.examples()["spanish"]
    reports = http.get(reports_url(ssid), headers=bearer(http)).json()["reports"]
    spanish = next(r for r in reports if r["language"] == "es" and r["format"] == "pdf")
    response = http.get(spanish["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    body = response.content
    assert body.startswith(contract.PDF_HEADER)
    assert contract.PDF_TRAILER in body[-64:]
    with pikepdf.open(io.BytesIO(body)) as pdf:
        assert len(pdf.pages) >= 2
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", "-", "-"], input=body, capture_output=True, check=True
        ).stdout.decode()
        assert ssid in text


def test_some_pdfs_are_sent_chunked(server, http):
    headers = bearer(http)
    seen_chunked = seen_length = False
    for ssid in list(server.state.world.students)[:40]:
        response = http.get(reports_url(ssid), headers=headers)
        if response.status_code != 200:
            continue
        for report in response.json()["reports"]:
            if report["format"] != "pdf":
                continue
            download = http.get(report["url"])
            assert download.status_code == 200
            if download.headers.get("transfer-encoding") == "chunked":
                assert "content-length" not in download.headers
                seen_chunked = True
            else:
                seen_length = True
        if seen_chunked and seen_length:
            break
    assert seen_chunked and seen_length


def test_tampered_link_is_refused(server, http):
    ssid = server.state.world.examples()["english_only"]
    report = http.get(reports_url(ssid), headers=bearer(http)).json()["reports"][0]
    tampered = report["url"].replace("expires=", "expires=9")
    assert http.get(tampered).status_code == 403


def test_link_expires_with_403():
    with (
        SandboxServer(SandboxConfig(students=30, link_ttl=1)) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        ssid = server.state.world.examples()["english_only"]
        report = http.get(reports_url(ssid), headers=bearer(http)).json()["reports"][0]
        time.sleep(2.1)
        expired = http.get(report["url"])
        assert expired.status_code == 403
        fresh = http.get(reports_url(ssid), headers=bearer(http)).json()["reports"][0]
        assert http.get(fresh["url"]).status_code == 200


def test_rate_limit_answers_429_with_retry_after():
    with (
        SandboxServer(SandboxConfig(students=30, rate_limit=2)) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        headers = bearer(http)
        ssid = server.state.world.examples()["english_only"]
        statuses = [http.get(reports_url(ssid), headers=headers) for _ in range(8)]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited, "eight requests at once must exceed two per second"
        forms = set()
        for response in limited:
            assert response.json()["error"] == contract.ERR_RATE_LIMITED
            value = response.headers["retry-after"]
            if value.isdigit():
                assert int(value) >= 1
                forms.add("seconds")
            else:
                assert email.utils.parsedate_to_datetime(value) is not None
                forms.add("date")
        if len(limited) >= 2:
            assert forms == {"seconds", "date"}


def test_revoke_every_invalidates_the_token():
    with (
        SandboxServer(SandboxConfig(students=30, revoke_every=3)) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        headers = bearer(http)
        ssid = server.state.world.examples()["english_only"]
        codes = [http.get(reports_url(ssid), headers=headers).status_code for _ in range(4)]
        assert codes == [200, 200, 401, 401]
        assert http.get(reports_url(ssid), headers=bearer(http)).status_code == 200


def test_faults_never_yield_a_complete_pdf():
    with (
        SandboxServer(SandboxConfig(students=30, fault_rate=1.0)) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        ssid = server.state.world.examples()["english_only"]
        data = [http.get(reports_url(ssid), headers=bearer(http)) for _ in range(20)]
        assert all(
            r.status_code >= 500 or r.headers["content-type"].startswith("text/html") for r in data
        )
        # Links are signed per instance: sign one directly to exercise download faults.
        student = server.state.world.students[ssid]
        report = next(r for r in student.reports if r.format == "pdf")
        expires = int(time.time()) + 60
        url = f"/ssr/{report.report_id}.pdf?expires={expires}&signature=" + server.state.sign(
            report.report_id, expires
        )
        kinds = set()
        for _ in range(40):
            try:
                response = http.get(url)
            except httpx.RemoteProtocolError:
                kinds.add("cut")
                continue
            body = response.content
            complete = (
                response.status_code == 200
                and body.startswith(contract.PDF_HEADER)
                and contract.PDF_TRAILER in body[-64:]
            )
            assert not complete
            kinds.add(str(response.status_code))
        assert "cut" in kinds and "200" in kinds
        assert any(key.startswith("fault_download_") for key in server.state.stats()["counters"])


def test_latency_delays_every_request():
    with (
        SandboxServer(SandboxConfig(students=30, latency_ms=200)) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        started = time.monotonic()
        get_token(http)
        assert time.monotonic() - started >= 0.2


def test_stats_count_requests_and_complete_downloads(server, http):
    before = http.get("/_sandbox/stats").json()["counters"].get("data_requests", 0)
    ssid = server.state.world.examples()["english_only"]
    report = http.get(reports_url(ssid), headers=bearer(http)).json()["reports"][0]
    http.get(report["url"])
    stats = http.get("/_sandbox/stats").json()
    assert stats["counters"]["data_requests"] == before + 1
    assert stats["downloads"][report["report_id"]] >= 1


def test_busy_port_is_a_one_line_error(server, cli):
    port = int(server.base_url.rsplit(":", 1)[1])
    result = cli("sandbox", "--port", str(port))
    assert result.exit_code == 2
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "args",
    [["--fault-rate", "2"], ["--students", "0"], ["--no-such-option"], ["--port", "70000"]],
)
def test_bad_options_exit_2_with_one_line(cli, args):
    result = cli("sandbox", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.posix
def test_sandbox_command_prints_base_url_first_and_stops_on_ctrl_c(tmp_path):
    roster = tmp_path / "roster.csv"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "caaspp_cli",
            "sandbox",
            "--port",
            "0",
            "--students",
            "25",
            "--roster-out",
            str(roster),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        first = process.stdout.readline().strip()
        assert first.startswith("http://127.0.0.1:")
        assert process.stdout.readline().strip() == f"client key:    {DEMO_CLIENT_KEY}"
        with httpx.Client(base_url=first) as http:
            assert get_token(http).status_code == 200
        assert roster.read_text().splitlines()[0].startswith("SSID,")
        assert oct(os.stat(roster).st_mode & 0o777) == "0o600"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_listening_socket_is_tcp_so_responses_are_not_held_back():
    # asyncio turns Nagle off (TCP_NODELAY) only on sockets created as IPPROTO_TCP; without
    # it each keep-alive response waited for the client's delayed ACK.
    import socket

    from caaspp_cli.sandbox.server import bind_socket

    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.mark.parametrize("blocked", ["starlette", "uvicorn", "fpdf"])
def test_sandbox_without_its_extra_says_how_to_install_it(cli, monkeypatch, blocked):
    # None in sys.modules makes `import uvicorn` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, blocked, None)
    result = cli("sandbox", "--port", "0")
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert blocked in line
    assert 'pip install ".[sandbox]"' in line
