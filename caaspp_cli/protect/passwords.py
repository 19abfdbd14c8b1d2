"""Passwords a parent can read in a letter and type on a phone.

A generated password is six words drawn with :mod:`secrets` from the EFF's short wordlist
("EFF Short Wordlist #1", https://www.eff.org/files/2016/09/08/eff_short_wordlist_1.txt,
published with https://www.eff.org/deeplinks/2016/07/new-wordlists-random-passphrases
under CC BY 3.0 US). ``data/eff_short_wordlist_1.txt`` holds its 1,296 words in the
published order, one a line, without the dice numbers. The words are 3 to 5 lowercase
letters, chosen by the EFF to be short, easy to type and hard to confuse; joined by hyphens
they need no capitals and no digits, so a phone keyboard stays on its letters.

One published word, "yo-yo", carries a hyphen: we leave it out so that a hyphen in a
password always separates two words.

A password is at most 32 characters long: poppler (Evince, Okular, pdftoppm; 22.12 in
Debian 12) refuses the right password of an AES-256 file when it is longer than 32 bytes.
Six words are drawn, and drawn again until they fit, so a password is uniform over the
six-word sequences of the 1,295 words that fit in 32 characters: 61.1 bits of entropy
(:func:`entropy_bits` counts them), more than the 60 the project asks for.
"""

from __future__ import annotations

import functools
import math
import secrets
from collections import Counter
from importlib import resources
from typing import Final

WORDLIST_RESOURCE: Final = "data/eff_short_wordlist_1.txt"
WORDS_PER_PASSWORD: Final = 6
SEPARATOR: Final = "-"
MAX_LENGTH: Final = 32


@functools.cache
def wordlist() -> tuple[str, ...]:
    """The words a password is drawn from (the EFF list less its hyphenated word)."""
    text = resources.files("caaspp_cli").joinpath(WORDLIST_RESOURCE).read_text("utf-8")
    words = tuple(word for word in text.split() if SEPARATOR not in word)
    if len(set(words)) != len(words) or not words:  # pragma: no cover - a damaged install
        raise RuntimeError(f"the wordlist {WORDLIST_RESOURCE} is damaged")
    return words


def entropy_bits(words: int = WORDS_PER_PASSWORD, max_length: int = MAX_LENGTH) -> float:
    """Bits of entropy of a generated password: log2 of the number of equally likely
    passwords, the sequences of ``words`` words that fit in ``max_length`` characters."""
    sequences: Counter[int] = Counter({0: 1})  # letters so far -> sequences with as many
    by_length = Counter(len(word) for word in wordlist())
    for _ in range(words):
        following: Counter[int] = Counter()
        for letters, count in sequences.items():
            for length, choices in by_length.items():
                following[letters + length] += count * choices
        sequences = following
    room = max_length - (words - 1) * len(SEPARATOR)
    return math.log2(sum(count for letters, count in sequences.items() if letters <= room))


def generate_password() -> str:
    """A fresh random password such as ``cloak-gravy-tulip-swept-anger-pogo``."""
    pool = wordlist()
    while True:
        password = SEPARATOR.join(secrets.choice(pool) for _ in range(WORDS_PER_PASSWORD))
        if len(password) <= MAX_LENGTH:
            return password
