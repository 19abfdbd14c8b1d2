"""What a cell holds: SSIDs accepted or refused with a reason (never repaired), guardian
addresses, and correspondence languages."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from roster_files import read_rows, write_roster

from caaspp_cli.addresses import AddressCell, is_address, parse_address_cell
from caaspp_cli.roster.cells import classify_ssid, parse_emails


# --- SSID cells ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cell",
    [
        "0123456789",
        " 0123456789 ",
        "\u00a00123456789\u00a0",
        "\t0123456789\r\n",
        '"0123456789"',
        "'0123456789'",
        '="0123456789"',
        '= "0123456789" ',
        "'0123456789",
        "\ufeff0123456789",
        "\u200b0123456789",
        "\u201c0123456789\u201d",
    ],
)
def test_unambiguous_ssid_forms_are_accepted(cell: str) -> None:
    assert classify_ssid(cell) == ("0123456789", "")


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("", ["blank SSID"]),
        ("   ", ["blank SSID"]),
        ("\u00a0", ["blank SSID"]),
        ('=""', ["blank SSID"]),
        ("1.23457E+09", ["scientific notation", "digits may be lost", "formatted as Text"]),
        ("1.234567891E+9", ["scientific notation", "(1.234567891E+9)"]),
        ("1,23457E+09", ["scientific notation"]),
        ("1.23457e+09", ["scientific notation"]),
        ("123456789", ["9 digits", "leading zero", "Excel number format", "formatted as Text"]),
        ("12345", ["5 digits", "leading zeros"]),
        ("1234567890.0", ["decimal part", "(1234567890.0)", "formatted as Text"]),
        ("1234567890,00", ["decimal part"]),
        ("123456789.0", ["decimal part"]),
        ("123.45", ["decimal number"]),
        ("1,234,567,890", ["thousands separators"]),
        ("12345678901", ["11 digits", "exactly 10"]),
        ("12-3456789", ["other than digits", "'-'"]),
        ("A123456789", ["other than digits", "'A'"]),
        ("0123 456 789", ["other than digits", "' '"]),
        ("\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19", ["other than digits"]),
        ("N/A", ["other than digits"]),
    ],
)
def test_mangled_ssids_are_refused_with_a_reason(cell: str, words: list[str]) -> None:
    ssid, reason = classify_ssid(cell)
    assert ssid is None
    for word in words:
        assert word in reason


def test_a_long_cell_is_shortened_in_the_reason() -> None:
    _, reason = classify_ssid("x" * 500)
    assert len(reason) < 120


# --- Emails and languages --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cell", "valid", "invalid"),
    [
        ("rosa@example.org", ("rosa@example.org",), ()),
        ("a@example.org; b@example.com", ("a@example.org", "b@example.com"), ()),
        ("a@example.org,b@example.com", ("a@example.org", "b@example.com"), ()),
        ("a@example.org b@example.com", ("a@example.org", "b@example.com"), ()),
        ("a@example.org;;\n b@example.com;", ("a@example.org", "b@example.com"), ()),
        ("a@example.org; A@EXAMPLE.org", ("a@example.org",), ()),
        ("Rosa Reyes <rosa@example.org>", ("rosa@example.org",), ()),
        ('"Reyes, Rosa" <rosa@example.org>; b@x.org', ("rosa@example.org", "b@x.org"), ()),
        ("mailto:rosa@example.org", ("rosa@example.org",), ()),
        ("a@example.org; rosa@example", ("a@example.org",), ("rosa@example",)),
        ("rosa.example.org", (), ("rosa.example.org",)),
        ("rosa@@example.org", (), ("rosa@@example.org",)),
        ("rosa@example..org", (), ("rosa@example..org",)),
        (".rosa@example.org", (), (".rosa@example.org",)),
        ("", (), ()),
        ("N/A", (), ()),
        ("none", (), ()),
    ],
)
def test_email_cells(cell: str, valid: tuple[str, ...], invalid: tuple[str, ...]) -> None:
    assert parse_emails(cell) == (valid, invalid)


@pytest.mark.parametrize(
    ("cell", "valid", "in_names"),
    [
        (
            "Oscar Ibanez (old: oscar@former-isp.example) <oscar.ibanez@example.net>",
            ("oscar.ibanez@example.net",),
            ("oscar@former-isp.example",),
        ),
        (
            '"jane@gmail.example" <jdoe@parent.example>',
            ("jdoe@parent.example",),
            ("jane@gmail.example",),
        ),
        ("rosa@example.org (Rosa, mom)", ("rosa@example.org",), ()),
        ("Rosa (mom) <rosa@example.org>; <b@x.org>", ("rosa@example.org", "b@x.org"), ()),
    ],
)
def test_only_the_address_of_a_named_entry_is_a_recipient(
    cell: str, valid: tuple[str, ...], in_names: tuple[str, ...]
) -> None:
    assert parse_address_cell(cell) == AddressCell(valid, (), "", in_names)


@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ('a@example.org, "Kim Lee <kim@example.org>', "never closed"),
        ("a@example.org, Kim (mom <kim@example.org>", "never closed"),
        ("Kim <kim@example.org", "never closed"),
        ("kim@example.org>", "without its '<'"),
        ("alice@example.org)<bob@example.org>", "without its '('"),
        ("a@example.org <b@example.org>", "looks like an address"),
        ("Kim <kim@example.org> kim2@example.org", "text follows"),
        ("Kim <a@example.org> <b@example.org>", "text follows"),
        ('"Kim" kim@example.org', "inside <…> after the name"),
        ("Kim Lee (mom) kim@example.org", "inside <…> after the name"),
        ("é.<kim@example.org\r>", "does not read as one address"),  # the stdlib parser trips
    ],
)
def test_a_cell_that_reads_two_ways_is_reported_not_guessed(cell: str, why: str) -> None:
    read = parse_address_cell(cell)
    assert (read.valid, read.invalid) == ((), ())
    assert why in read.problem
    assert parse_emails(cell) == ((), ())


_CELL_PIECES = st.sampled_from(
    ['"', "(", ")", "<", ">", ",", ";", "@", ".", " ", "\\", "\n", "\r", "a", "é", "x@y.org"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_CELL_PIECES, max_size=16).map("".join))
def test_any_cell_gives_addresses_that_are_in_it_or_a_reason_never_an_exception(
    cell: str,
) -> None:
    read = parse_address_cell(cell)
    assert not (read.problem and (read.valid or read.invalid))
    for address in read.valid:
        assert is_address(address)
        assert address.casefold() in cell.casefold()


def test_an_ambiguous_cell_is_kept_on_the_row_with_its_reason(tmp_path: Path) -> None:
    path = write_roster(
        tmp_path, 'SSID,Guardian Email\n0123456789,"a@example.org <b@example.org>"\n'
    )
    (row,) = read_rows(path)
    assert row.emails == row.invalid_emails == ()
    assert "looks like an address" in row.email_problem
    assert row.ok


def test_invalid_addresses_are_kept_apart_on_the_row(tmp_path: Path) -> None:
    path = write_roster(
        tmp_path, 'SSID,Guardian Email\n0123456789,"a@example.org; oops@; b@x.org"\n'
    )
    (row,) = read_rows(path)
    assert row.emails == ("a@example.org", "b@x.org")
    assert row.invalid_emails == ("oops@",)
    assert row.ok  # an address problem is the sender's to report, not a reason to skip


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("English", "en"),
        ("Spanish", "es"),
        ("es", "es"),
        ("ES", "es"),
        (" spanish ", "es"),
        ("Español", "es"),
        ("Tagalog", "fil"),
        ("Filipino", "fil"),
        ("Mandarin", "zh-Hant"),
        ("Cantonese", "zh-Hant"),
        ("Chinese", "zh-Hant"),
        ("Vietnamese", "vi"),
        ("Korean", "ko"),
        ("Arabic", "ar"),
        ("Hmong", None),
        ("Klingon", None),
        ("", None),
        ("01", None),
    ],
)
def test_language_values_map_to_codes_or_none(tmp_path: Path, value: str, code: str | None) -> None:
    (row,) = read_rows(
        write_roster(tmp_path, f'SSID,Correspondence Language\n0123456789,"{value}"\n')
    )
    assert row.language == code
    assert row.raw_language == value.strip()


# --- Properties ------------------------------------------------------------------------------
ssid_like_cells = st.one_of(
    st.text(),
    st.from_regex(
        r"\s*[=]?[\"']?[0-9]{8,12}([.,][0-9]{0,3})?([eE][+-]?[0-9]{1,2})?[\"']?\s*", fullmatch=True
    ),
    st.from_regex(r"[0-9]{10}", fullmatch=True).map(lambda s: f' ="{s}" '),
)


@given(ssid_like_cells)
def test_classify_ssid_never_guesses(cell: str) -> None:
    ssid, reason = classify_ssid(cell)
    if ssid is not None:
        assert reason == ""
        assert len(ssid) == 10 and ssid.isascii() and ssid.isdigit()
        assert ssid == "".join(ch for ch in cell if ch in "0123456789")  # not one digit more
    else:
        assert reason
