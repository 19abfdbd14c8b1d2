"""Email addresses: the one check of an address, and the reading of a roster's email cell.

Every address caaspp sends to or from passes :func:`is_address`: the roster's guardian
addresses, the SMTP profile's From and Reply-To, and the recipients ``send`` reads back from
its ledger. It takes what district mail systems use (an ASCII dot-atom, ``@``, a dotted
domain), and refuses anything else; a line break or other control character can never
pass, so no address can smuggle a header into a message.

How a guardian email cell is read (:func:`parse_address_cell`)
--------------------------------------------------------------
A cell holds one address or several, separated by ``,`` or ``;`` (the way Excel users
write them), or by spaces. An entry may carry a name, read as RFC 5322 does:
``Rosa Reyes <rosa@example.org>``, ``"Reyes, Rosa" <rosa@example.org>``,
``rosa@example.org (Rosa)``. Only the address itself (the part in ``<…>``, or the entry
without its name and comments) receives mail: text in quotes or in parentheses never does,
even when it looks like an address. ``"jane@gmail.example" <jdoe@parent.example>`` goes to
jdoe@parent.example only; ``Oscar (old: oscar@former-isp.example) <oscar@example.net>`` to
oscar@example.net only; the send report notes the address-like text that got nothing.

A cell is *ambiguous*, and nothing is sent for its row (the send report says why), when a
person and the standard could read different recipients in it:

* its quotes, parentheses or angle brackets do not pair up (``a@x.org, "Rosa <b@x.org>``);
* text follows ``<address>``, or an unquoted name before ``<…>`` looks like an address
  (``a@x.org <b@x.org>``: one recipient or two?);
* a name is not followed by ``<address>`` (``"Rosa" rosa@x.org``);
* the standard library's RFC 5322 parsers (``email.headerregistry``, and
  ``email.utils.getaddresses`` in its strict mode where the Python has it) read an entry
  otherwise than this rule does: another number of addresses, another address, a defect.

An entry that is plainly not an address (``rosa@example``, a typo) is not ambiguous: it is
listed as invalid, and the cell's other addresses still get the messages.
"""

from __future__ import annotations

import inspect
import re
import unicodedata
from dataclasses import dataclass
from email.headerregistry import Address
from email.policy import default as default_policy
from email.utils import getaddresses
from typing import Final

__all__ = [
    "AddressCell",
    "has_control_character",
    "is_address",
    "parse_address_cell",
    "parse_mailbox",
]

_ADDRESS: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_MAX_LOCAL: Final = 64  # RFC 5321's limits, which servers enforce
_MAX_ADDRESS: Final = 254
_NO_EMAIL: Final = frozenset({"none", "n/a", "na", "-", "--", "null", "no email", "noemail"})
_SPECIALS: Final = frozenset('"()<>')
# Python 3.11.10+, 3.12.6+ and 3.13 have the stricter parser (CVE-2023-27043); older ones
# parse leniently, and the cross-check with email.headerregistry still applies.
_STRICT: Final[dict[str, bool]] = (
    {"strict": True} if "strict" in inspect.signature(getaddresses).parameters else {}
)


def has_control_character(text: str) -> bool:
    """True if ``text`` holds a line break, a tab or another control character."""
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


def is_address(addr_spec: str) -> bool:
    """True for an address caaspp may put in an SMTP envelope: ``user@example.org``, ASCII,
    no space or control character, a dotted domain, within RFC 5321's lengths."""
    return (
        len(addr_spec) <= _MAX_ADDRESS
        and _ADDRESS.fullmatch(addr_spec) is not None
        and len(addr_spec.rpartition("@")[0]) <= _MAX_LOCAL
    )


def parse_mailbox(value: str, what: str) -> Address:
    """One address, ``Name <user@example.org>`` or ``user@example.org``; ValueError naming
    ``what`` if not. The name may be any text without a control character."""
    if has_control_character(value):
        raise ValueError(
            f"{what} holds a line break or another control character: give one address "
            "on one line, such as 'Lincoln Unified <reports@lincoln.k12.ca.us>'"
        )
    cell = parse_address_cell(value)
    shown = value.strip()
    if cell.problem or len(cell.valid) + len(cell.invalid) != 1:
        raise ValueError(
            f"{what} '{shown}' is not one email address such as "
            "'Lincoln Unified <reports@lincoln.k12.ca.us>'"
            + (f" ({cell.problem})" if cell.problem else "")
        )
    if cell.invalid:
        raise ValueError(
            f"{what} '{shown}' is not a valid email address: it must be plain ASCII, "
            "such as reports@lincoln.k12.ca.us"
        )
    (address,) = _stdlib_mailboxes(value.strip())
    return address


@dataclass(frozen=True, slots=True)
class AddressCell:
    """What a roster's email cell says: the addresses to send to, the entries that are not
    addresses, and ``problem``, why the cell cannot be read at all (then both are empty)."""

    valid: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    problem: str = ""
    # Address-like words found in quoted names or comments: never sent to, but worth
    # telling staff ("Oscar (old: oscar@former-isp.example) <oscar@example.net>").
    in_names: tuple[str, ...] = ()


def parse_address_cell(cell: str) -> AddressCell:
    """Read a guardian email cell (see the module's docstring for the rule)."""
    text = cell.strip()
    if not text or text.casefold() in _NO_EMAIL:
        return AddressCell()
    if is_address(text):  # the usual cell, read without more ado
        return AddressCell((text,))
    entries, problem = _split_entries(text)
    if problem:
        return AddressCell(problem=problem)
    valid: list[str] = []
    invalid: list[str] = []
    in_names: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        if _SPECIALS.isdisjoint(entry):
            found = [_without_mailto(token.strip("'")) for token in entry.split()]
        else:
            address, ignored, problem = _named_entry(entry)
            if problem:
                return AddressCell(problem=problem)
            found = [address]
            in_names += ignored
        for address in found:
            if not address or address.casefold() in seen:
                continue
            seen.add(address.casefold())
            (valid if is_address(address) else invalid).append(address)
    return AddressCell(tuple(valid), tuple(invalid), in_names=tuple(dict.fromkeys(in_names)))


def _split_entries(text: str) -> tuple[list[str], str]:
    """The cell cut at each ``,`` or ``;`` outside quotes, comments and angle brackets;
    or a problem if those do not pair up."""
    entries: list[str] = []
    start = 0
    quoted = False
    comments = 0
    angle = False
    escaped = False
    for at, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or comments):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif comments:
            comments += (ch == "(") - (ch == ")")
        elif ch == '"':
            quoted = True
        elif ch == "(":
            comments = 1
        elif ch == ")":
            return [], f"'{text}' has a ')' without its '('"
        elif ch == "<":
            if angle:
                return [], f"'{text}' has a '<' inside '<…>'"
            angle = True
        elif ch == ">":
            if not angle:
                return [], f"'{text}' has a '>' without its '<'"
            angle = False
        elif ch in ",;" and not angle:
            entries.append(text[start:at])
            start = at + 1
    if quoted or comments or angle:
        unclosed = '"' if quoted else "(" if comments else "<"
        return [], f"'{text}' has a '{unclosed}' that is never closed"
    entries.append(text[start:])
    return [entry.strip() for entry in entries if entry.strip()], ""


def _named_entry(entry: str) -> tuple[str, tuple[str, ...], str]:
    """(address, address-like words of its name and comments, '') of an entry with a name,
    quotes or comments; ('', (), why) if it is ambiguous."""
    bare, hidden = _bare_text(entry)
    ambiguous = f"'{entry}' is ambiguous"
    # Quoted names and comments are never recipients, whatever they hold; they are noted.
    ignored = tuple(word.strip("\"'()<>,;:.") for word in hidden.split() if "@" in word)
    if "<" in bare:
        before, _, rest = bare.partition("<")
        inside, _, after = rest.partition(">")
        if after.strip():
            return "", (), f"{ambiguous}: text follows '<{inside.strip()}>'"
        if "@" in before:
            return (
                "",
                (),
                (
                    f"{ambiguous}: the name before '<{inside.strip()}>' looks like an address; "
                    "write each recipient's address alone, or put a name in quotes"
                ),
            )
        address = _without_mailto(inside.strip())
    else:
        words = bare.split()
        if len(words) != 1 or '"' in entry:  # '"Kim" kim@x.org': a name, then no <…>
            return "", (), f"{ambiguous}: put the address inside <…> after the name"
        address = _without_mailto(words[0])
    if not is_address(address):
        return address, ignored, ""  # a typo, listed as such: not a reading to guess about
    # The standard library's RFC 5322 readings must agree with this one.
    stdlib = [a.addr_spec.casefold() for a in _stdlib_mailboxes(entry)]
    lenient = [a.casefold() for _, a in getaddresses([entry], **_STRICT)]
    if stdlib != [address.casefold()] or lenient != [address.casefold()]:
        return "", (), f"{ambiguous}: it does not read as one address"
    return address, ignored, ""


def _bare_text(entry: str) -> tuple[str, str]:
    """The entry without its quoted strings and comments, and those strings and comments."""
    bare: list[str] = []
    hidden: list[str] = []
    quoted = False
    comments = 0
    escaped = False
    for ch in entry:
        if escaped:
            escaped = False
            hidden.append(ch)
        elif ch == "\\" and (quoted or comments):
            escaped = True
        elif quoted:
            quoted = ch != '"'
            hidden.append(ch)
        elif comments:
            comments += (ch == "(") - (ch == ")")
            hidden.append(ch)
        elif ch == '"':
            quoted = True
            bare.append(" ")
        elif ch == "(":
            comments = 1
            bare.append(" ")
        else:
            bare.append(ch)
    return "".join(bare), "".join(hidden)


def _stdlib_mailboxes(entry: str) -> tuple[Address, ...]:
    """The addresses ``email.headerregistry`` reads in ``entry``; none if it finds a defect."""
    try:
        header = default_policy.header_factory("To", entry)
        addresses: tuple[Address, ...] = tuple(header.addresses)
    except (IndexError, ValueError, TypeError, AttributeError):
        return ()  # the stdlib parser trips on some malformed input: no reading at all
    return () if header.defects else addresses


def _without_mailto(token: str) -> str:
    return token[7:] if token[:7].lower() == "mailto:" else token
