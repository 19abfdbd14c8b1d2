"""The sandbox speaks the contract's models, key for key, and the client reads every answer.

The sandbox builds its token, report-list and error bodies from the pydantic models of
``caaspp_cli.ets.contract``: a field renamed in a model changes what the sandbox sends and
what the client reads at once, and the first test below, which pins the models to the names
of the published contract (docs/ets-api.md), fails. The others prove that every kind of
answer the sandbox gives is exactly a model's JSON, that the client's own parser reads it
back to the same values, and that every error comes with the status the contract's table
gives its code.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from caaspp_cli.ets import contract
from caaspp_cli.ets.failures import error_body, parse_body
from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET, SandboxConfig
from caaspp_cli.sandbox.server import SandboxServer

# The JSON names of docs/ets-api.md, written out: the one place a rename must be agreed to.
DOCUMENTED_NAMES: dict[type[BaseModel], set[str]] = {
    contract.TokenResponse: {"access_token", "token_type", "expires_in"},
    contract.ReportList: {"ssid", "reports"},
    contract.ReportEntry: {"test", "year", "grade", "language", "format", "url", "expires_at"},
    contract.ErrorBody: {"error", "message", "error_description"},
}
# What the sandbox adds on purpose, as the real service may: clients must ignore it.
TOKEN_EXTRAS = {"scope"}
ENTRY_EXTRAS = {"report_id", "status", "subject"}


def wire_names(model: type[BaseModel]) -> set[str]:
    """The JSON keys a model reads and writes: each field's alias, or its name."""
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.fixture(scope="module")
def server():
    with SandboxServer(SandboxConfig(students=40, seed=11)) as running:
        yield running


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


def reports_url(ssid: str) -> str:
    return contract.reports_path(
        ssid, contract.DEFAULT_STUDENTS_ENDPOINT, contract.DEFAULT_REPORTS_ENDPOINT
    )


def token_response(http: httpx.Client, secret: str = DEMO_CLIENT_SECRET, **form: str):
    return http.post(
        contract.DEFAULT_TOKEN_ENDPOINT,
        headers={
            contract.HEADER_AUTHORIZATION: contract.basic_auth_header(DEMO_CLIENT_KEY, secret)
        },
        data=form or contract.token_form(),
    )


def bearer(http: httpx.Client) -> dict[str, str]:
    token = parse_body(contract.TokenResponse, token_response(http), "token request")
    return {contract.HEADER_AUTHORIZATION: contract.bearer_header(token.access_token)}


def assert_error(response: httpx.Response, code: str) -> None:
    """An error body of the contract, read back by the client, with its code's status."""
    body: dict[str, Any] = response.json()
    assert set(body) <= wire_names(contract.ErrorBody)
    assert body["error"] == code
    parsed = error_body(response)
    assert parsed is not None
    assert parsed.model_dump(mode="json", exclude_none=True) == body
    assert parsed.text
    assert response.status_code == contract.ERROR_STATUS[code]


def test_contract_models_carry_the_documented_json_names() -> None:
    for model, names in DOCUMENTED_NAMES.items():
        assert wire_names(model) == names, model.__name__


def test_token_answer_is_the_token_model(http) -> None:
    response = token_response(http)
    assert response.status_code == 200
    body = response.json()
    assert set(body) - TOKEN_EXTRAS == wire_names(contract.TokenResponse)
    parsed = parse_body(contract.TokenResponse, response, "token request")
    wire = wire_names(contract.TokenResponse)
    assert parsed.model_dump(mode="json") == {k: v for k, v in body.items() if k in wire}


def test_report_list_is_the_list_model_entry_for_entry(server, http) -> None:
    headers = bearer(http)
    seen_extras: set[str] = set()
    entries = 0
    for ssid in server.state.world.examples().values():
        response = http.get(reports_url(ssid), headers=headers)
        if response.status_code != 200:
            continue
        body = response.json()
        assert set(body) == wire_names(contract.ReportList)
        for entry in body["reports"]:
            assert set(entry) - ENTRY_EXTRAS == wire_names(contract.ReportEntry)
            seen_extras |= set(entry) & ENTRY_EXTRAS
            entries += 1
        parsed = parse_body(contract.ReportList, response, "score-reports call")
        # Extras are kept by the entry model, so the client's reading is the whole answer.
        assert parsed.model_dump(mode="json") == body
    assert entries > 0
    assert {"report_id", "status"} <= seen_extras


def test_token_errors_are_error_bodies_with_their_status(http) -> None:
    assert_error(token_response(http, secret="not-the-secret"), contract.ERR_INVALID_CLIENT)
    assert_error(token_response(http, grant_type="password"), contract.ERR_INVALID_GRANT_TYPE)


def test_data_errors_are_error_bodies_with_their_status(server, http) -> None:
    examples = server.state.world.examples()
    assert_error(http.get(reports_url(examples["english_only"])), contract.ERR_INVALID_TOKEN)
    headers = bearer(http)
    assert_error(http.get(reports_url("12345"), headers=headers), contract.ERR_INVALID_SSID)
    assert_error(
        http.get(reports_url(examples["english_only"]), params={"test": "SAT"}, headers=headers),
        contract.ERR_INVALID_PARAMETER,
    )
    assert_error(
        http.get(reports_url(examples["unknown"]), headers=headers),
        contract.ERR_STUDENT_NOT_FOUND,
    )
    assert_error(
        http.get(reports_url(examples["not_enrolled"]), headers=headers),
        contract.ERR_NOT_ENROLLED,
    )


def test_rate_limit_and_server_faults_are_error_bodies_too() -> None:
    with (
        SandboxServer(SandboxConfig(students=20, rate_limit=1)) as limited,
        httpx.Client(base_url=limited.base_url, timeout=10) as http,
    ):
        headers = bearer(http)
        ssid = limited.state.world.examples()["english_only"]
        answers = [http.get(reports_url(ssid), headers=headers) for _ in range(5)]
        refused = [r for r in answers if r.status_code != 200]
        assert refused
        for response in refused:
            assert_error(response, contract.ERR_RATE_LIMITED)
    with (
        SandboxServer(SandboxConfig(students=20, fault_rate=1.0)) as faulty,
        httpx.Client(base_url=faulty.base_url, timeout=10) as http,
    ):
        headers = bearer(http)
        ssid = faulty.state.world.examples()["english_only"]
        statuses = set()
        for _ in range(20):
            response = http.get(reports_url(ssid), headers=headers)
            if response.headers["content-type"].startswith("application/json"):
                body = response.json()
                assert set(body) <= wire_names(contract.ErrorBody)
                assert body["error"] == contract.ERR_SERVER
                statuses.add(response.status_code)
        assert statuses
        assert statuses <= contract.RETRYABLE_STATUSES
