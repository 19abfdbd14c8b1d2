"""Options several commands take alike, declared once: which reports (test, language,
year) and the record-hold column."""

from __future__ import annotations

from typing import Annotated

import typer

TestOption = Annotated[
    str | None,
    typer.Option("--test", help="Test code: CAASPP, CAST, ELPAC, CAAS, ... (default: all)."),
]
LanguageOption = Annotated[
    str | None,
    typer.Option(
        "--language",
        help="Language code or name: en, es/Spanish, vi, fil, ko, zh-Hant, ar (default: all).",
    ),
]
YearOption = Annotated[
    str | None,
    typer.Option(
        "--year",
        metavar="YEAR",
        help="Spring year of the administration, e.g. 2025, or the school year, 2024-25 "
        "(default: all).",
    ),
]
HoldColumnOption = Annotated[
    str | None,
    typer.Option(
        "--hold-column",
        metavar="COL",
        help="Header of the record-hold column (found by names such as 'Do Not Release'): "
        "a held student's reports are neither sent nor printed (Y, Yes, X, 1 hold; blank, "
        "N, No, 0 do not; anything else holds).",
    ),
]
