"""Counted nouns in messages: "1 student", "2 students", never "1 students" or "report(s)".

Core modules use it for the few messages they word themselves; commands use it through
:func:`caaspp_cli.cli.render.plural`.
"""

from __future__ import annotations

_IRREGULAR = {"family": "families", "was": "were", "is": "are", "needs": "need", "has": "have"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``"1 report"``, ``"0 reports"``, ``"3 families"``: the count and its noun agreeing.

    ``many`` is the plural where adding an s is wrong and the word is not in the short list.
    """
    return f"{count} {noun if count == 1 else (many or plural_of(noun))}"


def plural_of(noun: str) -> str:
    """The plural of ``noun``; for the last word of a phrase ("roster row" -> "roster rows")."""
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR:
        word = _IRREGULAR[last]
    elif last.endswith(("s", "x", "sh", "ch")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u"):
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def agree(count: int, singular: str, many: str | None = None) -> str:
    """The word alone, agreeing with ``count``: ``agree(n, "was")`` -> "was" or "were"."""
    return singular if count == 1 else (many or plural_of(singular))
