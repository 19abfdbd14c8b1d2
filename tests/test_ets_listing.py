"""The ETS client's report listing: status mapping, student codes, filters and payloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx
from ets_fakes import (
    LINK,
    REPORTS_URL,
    SSID,
    TOKEN_URL,
    FakeTime,
    entry,
    entry_json,
    listing_json,
    mock_token,
    run,
    token_json,
)

from caaspp_cli.errors import (
    BadInputError,
    BadRequestError,
    EtsError,
    NotEnrolledError,
    StudentNotFoundError,
)
from caaspp_cli.ets import contract


# --- Status mapping ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (400, contract.ERR_INVALID_SSID, BadRequestError),
        (400, contract.ERR_INVALID_PARAMETER, BadRequestError),
        (403, contract.ERR_NOT_ENROLLED, NotEnrolledError),
        (404, contract.ERR_STUDENT_NOT_FOUND, StudentNotFoundError),
    ],
)
def test_error_statuses_map_to_their_exception_without_retry(
    router: respx.Router, fake: FakeTime, status: int, code: str, error_class: type[EtsError]
) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).respond(status, json=contract.error_body(code, "no"))

    with pytest.raises(error_class) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID))

    assert type(caught.value) is error_class
    assert route.call_count == 1
    assert fake.sleeps == []


def test_bad_request_quotes_the_service_message(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    router.get(REPORTS_URL).respond(
        400, json=contract.error_body("invalid_parameter", "Unknown test code 'XYZ'.")
    )

    with pytest.raises(BadRequestError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID, test="XYZ"))

    assert caught.value.message.endswith(": Unknown test code 'XYZ'.")


def test_404_without_the_student_code_points_at_the_endpoints(
    router: respx.Router, fake: FakeTime
) -> None:
    mock_token(router)
    router.get(REPORTS_URL).respond(404, text="<html>No such route</html>")

    with pytest.raises(EtsError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID))

    assert not isinstance(caught.value, StudentNotFoundError)
    assert "endpoint" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "bad", ["123456789", "12345678901", "12345abcde", "１２３４５６７８９０", " 1234567890", ""]
)
def test_malformed_ssid_is_refused_before_any_request(
    router: respx.Router, fake: FakeTime, tmp_path: Path, bad: str
) -> None:
    token_route = mock_token(router)
    link_route = router.get(LINK).respond(200)

    with pytest.raises(BadInputError):
        run(router, fake, lambda ets: ets.list_reports(bad))
    with pytest.raises(BadInputError):
        run(router, fake, lambda ets: ets.download_report(bad, entry(), tmp_path / "r.pdf"))

    assert token_route.call_count == 0
    assert link_route.call_count == 0


def test_filters_become_query_parameters(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    route = router.get(REPORTS_URL).respond(200, json=listing_json())

    run(router, fake, lambda ets: ets.list_reports(SSID, test="ELPAC", language="es", year=2023))

    assert dict(route.calls.last.request.url.params) == {
        "test": "ELPAC",
        "language": "es",
        "year": "2023",
    }


# --- Payloads ------------------------------------------------------------------------------
def test_extra_fields_in_payloads_are_ignored(router: respx.Router, fake: FakeTime) -> None:
    router.post(TOKEN_URL).respond(200, json=token_json(scope="ssr", issued_at=12345))
    router.get(REPORTS_URL).respond(
        200,
        json={
            **listing_json(entry_json(status="final", report_id="r-1")),
            "lea": "0123456",
            "next": None,
        },
    )

    reports = run(router, fake, lambda ets: ets.list_reports(SSID))

    assert len(reports) == 1
    assert (reports[0].test, reports[0].year, reports[0].language) == ("CAASPP", 2024, "en")


def test_html_entries_are_returned_for_the_caller_to_skip(
    router: respx.Router, fake: FakeTime
) -> None:
    mock_token(router)
    html = entry_json("https://cdn.ets.test/ssr/math.html", format="html", language="es")
    router.get(REPORTS_URL).respond(200, json=listing_json(entry_json(), html))

    reports = run(router, fake, lambda ets: ets.list_reports(SSID))

    assert [r.is_pdf for r in reports] == [True, False]


def test_no_reports_is_an_empty_list(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    router.get(REPORTS_URL).respond(200, json=listing_json())

    assert run(router, fake, lambda ets: ets.list_reports(SSID, year=2019)) == []


def test_answer_for_another_student_is_refused(router: respx.Router, fake: FakeTime) -> None:
    mock_token(router)
    router.get(REPORTS_URL).respond(200, json=listing_json(entry_json(), ssid="9999999999"))

    with pytest.raises(EtsError) as caught:
        run(router, fake, lambda ets: ets.list_reports(SSID))

    assert "different student" in caught.value.message
