"""Which column holds what: SSID header variants, optional columns by their usual names,
ties left to the user, and columns the caller names."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from roster_files import read_rows, refusal, write_roster

from caaspp_cli.errors import BadInputError
from caaspp_cli.roster.read import open_roster


# --- Header names ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        "SSID",
        "ssid",
        " SSID ",
        "S.S.I.D.",
        "SSID#",
        "Statewide Student Identifier",
        "Statewide Student ID",
        "State Student ID",
        "StateStudentID",
        "State ID",
        "STATE-ID",
        "state_student_id",
        "SSID Number",
        "Student SSID",
        "Statewide Student Identifier (SSID)",
        "State_StudentNumber",
        "CALPADS SSID",
        "Student_SSID_Verified",
    ],
)
def test_ssid_header_variants(tmp_path: Path, header: str) -> None:
    roster = open_roster(write_roster(tmp_path, f'Local ID,"{header}",Name\n1001,0123456789,Ana\n'))
    assert roster.columns.ssid == header.strip()
    assert [r.ssid for r in roster] == ["0123456789"]


@pytest.mark.parametrize("header", ["Student ID", "Local ID", "Perm ID", "Student Number", "ID"])
def test_local_ids_are_not_taken_for_the_ssid(tmp_path: Path, header: str) -> None:
    error = refusal(write_roster(tmp_path, f"{header},Name\n0123456789,Ana\n"))
    assert "no SSID column" in error.message
    assert repr(header) in error.message


def test_the_exact_ssid_header_wins_over_other_names(tmp_path: Path) -> None:
    path = write_roster(tmp_path, "State ID,SSID,Statewide Student ID\n0123456789,0234567891,1\n")
    roster = open_roster(path)
    assert roster.columns.ssid == "SSID"
    assert [r.ssid for r in roster] == ["0234567891"]


def test_two_columns_named_ssid_are_ambiguous(tmp_path: Path) -> None:
    error = refusal(write_roster(tmp_path, "SSID,Name,ssid\n0123456789,Ana,0234567891\n"))
    assert "2 columns that could hold the SSID" in error.message


@pytest.mark.parametrize(
    ("header", "value", "attribute", "expected"),
    [
        ("First Name", "Ana", "first_name", "Ana"),
        ("Student_First_Name", "Ana", "first_name", "Ana"),
        ("Last Name", "Reyes", "last_name", "Reyes"),
        ("Surname", "Reyes", "last_name", "Reyes"),
        ("Student Name", "Reyes, Ana", "display_name", "Reyes, Ana"),
        ("Name", "Reyes, Ana", "display_name", "Reyes, Ana"),
        ("School Code", "0130450", "school_code", "0130450"),
        ("School ID", "0130450", "school_code", "0130450"),
        ("SchoolCode", '="0130450"', "school_code", "0130450"),
        ("CDS Code", "01611270130450", "school_code", "0130450"),
        ("School Name", "Lincoln Elementary", "school_name", "Lincoln Elementary"),
        ("School", "Lincoln Elementary", "school_name", "Lincoln Elementary"),
        ("Grade", "05", "grade", "05"),
        ("Grade Level", "KN", "grade", "KN"),
        ("Correspondence Language", "Spanish", "language", "es"),
        ("Home Language", "Spanish", "language", "es"),
        ("Preferred Language", "Vietnamese", "language", "vi"),
        ("Parent Language", "Korean", "language", "ko"),
        ("Language", "Arabic", "language", "ar"),
        ("Guardian Name", "Rosa Reyes", "guardian_name", "Rosa Reyes"),
        ("Parent/Guardian Name", "Rosa Reyes", "guardian_name", "Rosa Reyes"),
        ("Guardian Email", "rosa@example.org", "emails", ("rosa@example.org",)),
        ("Parent Email", "rosa@example.org", "emails", ("rosa@example.org",)),
        ("Parent/Guardian Email", "rosa@example.org", "emails", ("rosa@example.org",)),
        ("Email", "rosa@example.org", "emails", ("rosa@example.org",)),
        ("Contact Email", "rosa@example.org", "emails", ("rosa@example.org",)),
        ("Guardian 1 Email", "rosa@example.org", "emails", ("rosa@example.org",)),
        ("E-mail", "rosa@example.org", "emails", ("rosa@example.org",)),
    ],
)
def test_optional_column_names(
    tmp_path: Path, header: str, value: str, attribute: str, expected: object
) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["SSID", header], ["0123456789", value]])
    (row,) = read_rows(write_roster(tmp_path, buffer.getvalue()))
    assert getattr(row, attribute) == expected


def test_more_specific_names_win_within_a_role(tmp_path: Path) -> None:
    path = write_roster(
        tmp_path,
        "SSID,Email,Parent Email,Language,Correspondence Language\n"
        "0123456789,kid@school.org,mom@example.org,English,Spanish\n",
    )
    roster = open_roster(path)
    (row,) = roster
    assert (roster.columns.email, roster.columns.language) == (
        "Parent Email",
        "Correspondence Language",
    )
    assert (row.emails, row.language) == (("mom@example.org",), "es")


def test_a_student_email_column_is_never_taken_for_the_guardians(tmp_path: Path) -> None:
    roster = open_roster(write_roster(tmp_path, "SSID,Student Email\n0123456789,kid@school.org\n"))
    assert roster.columns.email is None
    with pytest.raises(BadInputError, match="no guardian email column") as caught:
        roster.require("email")
    assert caught.value.hint == "name the column with --email-column."


def test_equally_good_optional_columns_are_left_to_the_user(tmp_path: Path) -> None:
    path = write_roster(
        tmp_path, "SSID,Parent Email,Parent_Email\n0123456789,a@example.org,b@x.org\n"
    )
    roster = open_roster(path)
    assert roster.columns.email is None
    assert roster.columns.ambiguous == {"email": ("Parent Email", "Parent_Email")}
    (row,) = roster
    assert row.emails == ()
    with pytest.raises(BadInputError, match="2 guardian email columns") as caught:
        roster.require("email")
    assert caught.value.hint == "name the one to use with --email-column."
    chosen = open_roster(path, email_column="Parent_Email")
    assert chosen.require("email") == "Parent_Email"
    assert [r.emails for r in chosen] == [("b@x.org",)]


def test_first_and_last_name_make_the_display_name_over_a_name_column(tmp_path: Path) -> None:
    path = write_roster(
        tmp_path,
        'SSID,Name,First Name,Last Name\n0123456789,"Reyes, A.",Ana,Reyes\n'
        '0234567891,"Perez, J.",,\n',
    )
    first, second = read_rows(path)
    assert (first.first_name, first.last_name, first.display_name) == ("Ana", "Reyes", "Ana Reyes")
    assert second.display_name == "Perez, J."


# --- Columns named by the caller -------------------------------------------------------------
HEADERS = "SSID,State ID,Student Email,Idioma,Secret,Name\n"
ROW = "0123456789,0234567891,kid@example.org,Spanish,s3cret-Pass,Ana\n"


def test_named_columns_are_used(tmp_path: Path) -> None:
    path = write_roster(tmp_path, HEADERS + ROW)
    roster = open_roster(
        path,
        ssid_column="state id",
        email_column="Student Email",
        language_column="IDIOMA",
        password_column="Secret",
    )
    (row,) = roster
    assert (roster.columns.ssid, roster.columns.email) == ("State ID", "Student Email")
    assert (roster.columns.language, roster.columns.password) == ("Idioma", "Secret")
    assert (row.ssid, row.emails, row.language, row.password) == (
        "0234567891",
        ("kid@example.org",),
        "es",
        "s3cret-Pass",
    )


@pytest.mark.parametrize(
    ("option", "argument"),
    [
        ("--ssid-column", "ssid_column"),
        ("--email-column", "email_column"),
        ("--language-column", "language_column"),
        ("--password-column", "password_column"),
    ],
)
def test_a_named_column_that_is_missing_lists_the_headers(
    tmp_path: Path, option: str, argument: str
) -> None:
    error = refusal(write_roster(tmp_path, HEADERS + ROW), **{argument: "Nope"})
    assert "no column named 'Nope'" in error.message
    assert "'SSID', 'State ID', 'Student Email', 'Idioma', 'Secret', 'Name'" in error.message
    assert error.hint == f"give {option} one of those names."


def test_a_password_column_is_only_used_when_named(tmp_path: Path) -> None:
    path = write_roster(tmp_path, "SSID,Password\n0123456789,hunter2-hunter2\n")
    assert [r.password for r in open_roster(path)] == [None]
    (row,) = open_roster(path, password_column="Password")
    assert row.password == "hunter2-hunter2"
    assert "hunter2" not in repr(row)
