"""Which roster column holds what: the header line, and the column of each role in it.

Header names are compared folded (lower case, letters and digits only), so "State_ID",
"state id" and "STATE-ID" are one name. The header is the first record naming an SSID column,
allowing a few title lines above it. The SSID column is required and never guessed between
two; an optional role whose best columns tie is left unset, and :func:`require_column`
explains the tie when a command needs that role. A column the caller names must exist, once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from caaspp_cli.errors import BadInputError
from caaspp_cli.roster.cells import is_blank_record, strip_cell
from caaspp_cli.roster.text import csv_error
from caaspp_cli.vocabulary import is_valid_ssid

__all__ = [
    "COLUMN_NAMES",
    "EXPLICIT_ONLY_ROLES",
    "ROLES",
    "SSID_NAMES",
    "RosterColumns",
    "find_header",
    "require_column",
    "resolve_columns",
]

# --- Column names ----------------------------------------------------------------------------
# Within a role, earlier names win over later ones.
SSID_NAMES: Final[tuple[str, ...]] = (
    "SSID",
    "Statewide Student Identifier",
    "Statewide Student ID",
    "State Student ID",
    "State Student Identifier",
    "StateStudentID",
    "State ID",
    "State ID Number",
    "State Identifier",
    "SSID Number",
    "SSID No",
    "SSID Num",
    "Student SSID",
    "Student State ID",
    "State Student Number",
    "CALPADS SSID",
    "CALPADS ID",
)
COLUMN_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "first_name": (
        "First Name",
        "Student First Name",
        "Legal First Name",
        "Student Legal First Name",
        "Given Name",
        "Student Given Name",
        "First",
        "FName",
    ),
    "last_name": (
        "Last Name",
        "Student Last Name",
        "Legal Last Name",
        "Student Legal Last Name",
        "Surname",
        "Family Name",
        "Student Surname",
        "Last",
        "LName",
    ),
    # One column holding the whole name, usually "Last, First": shown as it is.
    "name": (
        "Student Name",
        "Name",
        "Full Name",
        "Student Full Name",
        "LastFirst",
        "Last Name, First Name",
    ),
    "school_code": (
        "School Code",
        "CDS School Code",
        "School CDS Code",
        "CDS Code",
        "SchoolCode",
        "School ID",
        "Site Code",
    ),
    "school_name": ("School Name", "School", "Site Name", "School Site", "Site"),
    "grade": (
        "Grade",
        "Grade Level",
        "Current Grade",
        "Student Grade",
        "Enrollment Grade",
        "Gr",
        "Grd",
    ),
    "language": (
        "Correspondence Language",
        "Parent Correspondence Language",
        "Guardian Correspondence Language",
        "Preferred Language",
        "Parent Preferred Language",
        "Guardian Preferred Language",
        "Parent Language",
        "Guardian Language",
        "Home Language",
        "Language",
    ),
    "guardian_name": (
        "Guardian Name",
        "Parent/Guardian Name",
        "Parent Name",
        "Guardian 1 Name",
        "Parent 1 Name",
        "Primary Guardian Name",
        "Guardian",
        "Parent/Guardian",
        "Parent",
        "Contact Name",
    ),
    "email": (
        "Guardian Email",
        "Guardian Email Address",
        "Parent/Guardian Email",
        "Parent/Guardian Email Address",
        "Parent Email",
        "Parent Email Address",
        "Guardian 1 Email",
        "Parent 1 Email",
        "Primary Guardian Email",
        "Family Email",
        "Household Email",
        "Contact Email",
        "Contact Email Address",
        "Email",
        "Email Address",
    ),
    # A record hold: the student's reports are not released to anyone (see cells.parse_hold).
    "hold": (
        "Do Not Release",
        "Records Release Hold",
        "Record Release Hold",
        "Release Hold",
        "Records Hold",
        "Record Hold",
        "Do Not Release Records",
        "Withhold Records",
        "Withhold",
        "Hold",
    ),
}
# Roles only ever taken from a column the caller names.
EXPLICIT_ONLY_ROLES: Final = ("password",)
ROLES: Final[tuple[str, ...]] = ("ssid", *COLUMN_NAMES, *EXPLICIT_ONLY_ROLES)

# What each role is called in messages, and the option that names its column (if any).
_ROLE_LABELS: Final[dict[str, tuple[str, str | None]]] = {
    "ssid": ("SSID", "--ssid-column"),
    "first_name": ("first name", None),
    "last_name": ("last name", None),
    "name": ("student name", None),
    "school_code": ("school code", None),
    "school_name": ("school name", None),
    "grade": ("grade", None),
    "language": ("correspondence language", "--language-column"),
    "guardian_name": ("guardian name", None),
    "email": ("guardian email", "--email-column"),
    "hold": ("record hold", "--hold-column"),
    "password": ("password", "--password-column"),
}

_HEADER_SEARCH_RECORDS: Final = 10  # title lines an export may put above the header
_MAX_LISTED: Final = 15


@dataclass(frozen=True)
class RosterColumns:
    """The header of the column found for each role (None: the roster has none).

    ``ambiguous`` lists, for an optional role left None, the columns that matched equally
    well: caaspp does not pick one (``Roster.require`` explains it to the user).
    """

    ssid: str
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    school_code: str | None = None
    school_name: str | None = None
    grade: str | None = None
    language: str | None = None
    guardian_name: str | None = None
    email: str | None = None
    hold: str | None = None
    password: str | None = None
    ambiguous: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict, compare=False, hash=False
    )


def require_column(path: Path, headers: Sequence[str], columns: RosterColumns, role: str) -> str:
    """The header of the column for ``role``; BadInputError if there is none or several."""
    if role not in _ROLE_LABELS:
        raise ValueError(f"unknown roster role {role!r}")
    header: str | None = getattr(columns, role)
    if header is not None:
        return header
    label, option = _ROLE_LABELS[role]
    tied = columns.ambiguous.get(role)
    if tied:
        raise BadInputError(
            f"{path} has {len(tied)} {label} columns ({_listing(tied)}): "
            "caaspp does not choose between them.",
            hint=f"name the one to use with {option}."
            if option
            else "rename or remove the others in the file.",
        )
    names = COLUMN_NAMES.get(role, ())
    accepted = f" (accepted names: {_listing(names)})" if names else ""
    raise BadInputError(
        f"{path} has no {label} column{accepted}; its columns are {_listing(headers)}.",
        hint=f"name the column with {option}." if option else None,
    )


# --- The header ------------------------------------------------------------------------------
def find_header(
    path: Path, text: str, delimiter: str, ssid_column: str | None
) -> tuple[int, int, tuple[str, ...]]:
    """(first line, last line, cells) of the header: the first record naming an SSID
    column, allowing a few title lines above it."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, int, tuple[str, ...]]] = []
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if is_blank_record(record):
                continue
            records.append((start, end, tuple(strip_cell(cell) for cell in record)))
            if len(records) == _HEADER_SEARCH_RECORDS:
                break
    except csv.Error as exc:
        raise csv_error(path, end + 1, exc) from None
    if not records:
        raise BadInputError(
            f"{path} is empty.", hint="export the roster again: it needs a header line."
        )
    if ssid_column is not None:
        named = [found for found in records if _named_matches(found[2], ssid_column)]
        if named:
            return named[0]
    else:
        # The best-named SSID column marks the header, so that a title line such as
        # "SSID list, spring 2025" above it is not taken for one.
        tiers = [
            (min(tier for tier, _ in candidates), order)
            for order, found in enumerate(records)
            if (candidates := _ssid_candidates(found[2]))
        ]
        if tiers:
            return records[min(tiers)[1]]
    first_line, _, headers = records[0]
    if ssid_column is not None:
        _find_named(path, headers, ssid_column, "ssid")  # raises, naming the headers found
    holding_ssid = next((cell for cell in headers if is_valid_ssid(cell)), None)
    if holding_ssid is not None:
        raise BadInputError(
            f"line {first_line} of {path} holds an SSID ({holding_ssid}) where the column "
            "names belong: the file has no header line.",
            hint="add a first line naming the columns, e.g. SSID,First Name,Last Name.",
        )
    raise BadInputError(
        f"{path} has no SSID column; its columns are {_listing(headers)}.",
        hint="name the column with --ssid-column, or head it with one of "
        f"{_listing(SSID_NAMES[:5])} (or another usual name of the SSID).",
    )


# --- Columns ---------------------------------------------------------------------------------
def _fold(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


_PARENTHESES: Final = re.compile(r"\(([^()]*)\)")


def _header_keys(header: str) -> set[str]:
    """The folded names a header answers to: "Statewide Student Identifier (SSID)" is
    both "statewidestudentidentifier" and "ssid"."""
    keys = {_fold(header), _fold(_PARENTHESES.sub(" ", header))}
    keys.update(_fold(inner) for inner in _PARENTHESES.findall(header))
    keys.discard("")
    return keys


def _words(header: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", header)}


_SSID_KEYS: Final = frozenset(_fold(name) for name in SSID_NAMES)
_RANKS: Final[dict[str, dict[str, int]]] = {
    role: {_fold(name): rank for rank, name in reversed(list(enumerate(names)))}
    for role, names in COLUMN_NAMES.items()
}


def _ssid_candidates(headers: Sequence[str]) -> list[tuple[int, int]]:
    """(tier, position) of each column that looks like the SSID: tier 0 is "SSID" itself,
    1 another accepted name, 2 a header with the word SSID in it."""
    found: list[tuple[int, int]] = []
    for position, header in enumerate(headers):
        keys = _header_keys(header)
        if "ssid" in keys:
            found.append((0, position))
        elif keys & _SSID_KEYS:
            found.append((1, position))
        elif "ssid" in _words(header):
            found.append((2, position))
    return found


def _named_matches(headers: Sequence[str], name: str) -> list[int]:
    wanted = name.strip()
    matches = [i for i, h in enumerate(headers) if h == wanted]
    if not matches and _fold(wanted):
        matches = [i for i, h in enumerate(headers) if _fold(h) == _fold(wanted)]
    return matches


def _find_named(path: Path, headers: Sequence[str], name: str, role: str) -> int:
    option = _ROLE_LABELS[role][1]
    matches = _named_matches(headers, name)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise BadInputError(
            f"{path} has no column named {name!r}; its columns are {_listing(headers)}.",
            hint=f"give {option} one of those names.",
        )
    raise BadInputError(
        f"{path} has {len(matches)} columns named {name!r} (columns "
        + ", ".join(str(i + 1) for i in matches)
        + ").",
        hint="rename all but one of them in the file.",
    )


def resolve_columns(
    path: Path, headers: tuple[str, ...], named: Mapping[str, str | None]
) -> tuple[RosterColumns, dict[str, int]]:
    """The column of each role, and its position: named columns first, then the SSID
    column by its header, then each optional role by its best-ranked header still free."""
    chosen: dict[str, int] = {}
    for role, name in named.items():
        if name is not None:
            chosen[role] = _find_named(path, headers, name, role)
    if "ssid" not in chosen:
        candidates = _ssid_candidates(headers)
        best_tier = min(tier for tier, _ in candidates)
        best = [position for tier, position in candidates if tier == best_tier]
        if len(best) > 1:
            raise BadInputError(
                f"{path} has {len(best)} columns that could hold the SSID "
                f"({_listing([headers[i] for i in best])}).",
                hint="name the one to use with --ssid-column.",
            )
        chosen["ssid"] = best[0]
    taken = set(chosen.values())
    ambiguous: dict[str, tuple[str, ...]] = {}
    for role, ranks in _RANKS.items():
        if role in chosen:
            continue
        ranked = [
            (min(ranks[key] for key in keys), position)
            for position, header in enumerate(headers)
            if position not in taken and (keys := _header_keys(header) & ranks.keys())
        ]
        if not ranked:
            continue
        top = min(rank for rank, _ in ranked)
        best = [position for rank, position in ranked if rank == top]
        if len(best) == 1:
            chosen[role] = best[0]
            taken.add(best[0])
        else:
            ambiguous[role] = tuple(headers[i] for i in best)
    found = {role: headers[position] for role, position in chosen.items() if role != "ssid"}
    columns = RosterColumns(ssid=headers[chosen["ssid"]], ambiguous=ambiguous, **found)
    return columns, chosen


def _listing(names: Sequence[str]) -> str:
    shown = [repr(n) if n else "(blank)" for n in names[:_MAX_LISTED]]
    if len(names) > _MAX_LISTED:
        shown.append(f"and {len(names) - _MAX_LISTED} more")
    return ", ".join(shown) if shown else "(none)"
