"""Helpers of the roster tests: the corpus of real exports, writing a roster, reading its rows,
and catching the one error a refused roster gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from caaspp_cli.errors import BadInputError, ExitCode
from caaspp_cli.roster.read import RosterRow, open_roster

DATA = Path(__file__).parent / "data" / "rosters"


def write_roster(
    folder: Path, text: str, *, encoding: str = "utf-8", name: str = "roster.csv"
) -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def read_rows(path: Path, **columns: str) -> list[RosterRow]:
    return list(open_roster(path, **columns))


def refusal(path: Path, **columns: str) -> BadInputError:
    with pytest.raises(BadInputError) as caught:
        open_roster(path, **columns)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    return caught.value
