"""The words of California's score reports: students' identifiers, tests, languages.

These are facts of the assessment system, not of one API: the roster reader checks SSIDs and
languages with them, the layout and the split name files with them, ``caaspp send`` names
tests and languages in letters to families, and the ETS contract
(:mod:`caaspp_cli.ets.contract`) accepts only these values on the wire.

The SSID lives here rather than in the wire contract: it is the Statewide Student Identifier
CALPADS assigns [public], read from rosters and from TOMS pages long before (or without) any
call to ETS; the contract merely carries it in a path.
"""

from __future__ import annotations

import re
from typing import Final

# The Statewide Student Identifier: ten digits [public].
SSID_PATTERN: Final = re.compile(r"[0-9]{10}")

# Tests with score reports [public].
TEST_CODES: Final[tuple[str, ...]] = (
    "CAASPP",
    "CST",
    "CA",
    "ESA",
    "STS",
    "CAST",
    "CAAS",
    "LEXQUAN",
    "ELPAC",
)
TEST_NAMES: Final[dict[str, str]] = {
    "CAASPP": "California Assessment of Student Performance and Progress",
    "CST": "California Standards Test",
    "CA": "California Assessments",
    "ESA": "Essential Standards Assessment",
    "STS": "Standards-based Tests in Spanish",
    "CAST": "California Science Test",
    "CAAS": "California Alternate Assessments",
    "LEXQUAN": "Lexile and Quantile measures",
    "ELPAC": "English Language Proficiency Assessments for California",
}

# Report languages [public]: English for everybody, plus a correspondence language.
LANGUAGES: Final[dict[str, str]] = {
    "en": "English",
    "es": "Spanish",
    "vi": "Vietnamese",
    "fil": "Filipino",
    "ko": "Korean",
    "zh-Hant": "Chinese (Traditional)",
    "ar": "Arabic",
}
# Names staff type for a language, folded to lower case, mapped to the language's code.
LANGUAGE_ALIASES: Final[dict[str, str]] = {
    "english": "en",
    "spanish": "es",
    "español": "es",
    "espanol": "es",
    "vietnamese": "vi",
    "tiếng việt": "vi",
    "filipino": "fil",
    "tagalog": "fil",
    "tl": "fil",
    "korean": "ko",
    "chinese": "zh-Hant",
    "traditional chinese": "zh-Hant",
    "chinese (traditional)": "zh-Hant",
    "mandarin": "zh-Hant",
    "cantonese": "zh-Hant",
    "zh": "zh-Hant",
    "zh-hant": "zh-Hant",
    "zh-tw": "zh-Hant",
    "arabic": "ar",
}


def is_valid_ssid(value: str) -> bool:
    """True for exactly ten ASCII digits."""
    return SSID_PATTERN.fullmatch(value) is not None


def normalize_test(value: str) -> str | None:
    """The code of a test typed in any case, or None if unknown."""
    code = value.strip().upper()
    return code if code in TEST_CODES else None


def normalize_language(value: str) -> str | None:
    """The code of a language given by code or English name, or None if unknown."""
    text = " ".join(value.strip().split())
    if text in LANGUAGES:
        return text
    folded = text.casefold()
    for code in LANGUAGES:
        if code.casefold() == folded:
            return code
    return LANGUAGE_ALIASES.get(folded)
