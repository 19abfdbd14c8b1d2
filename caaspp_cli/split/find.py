"""What a score-report page says about itself: whose it is, which test, year and language.

A merged TOMS download is a run of reports, each several pages long. Every page carries
the student's SSID (the first page under its label, the others in their header); the
first page also carries the report's title. This module reads one page's text and
returns those facts; it never decides which file a page goes to (see ``run``).

The text is folded before it is read (NFKC, so ligatures such as "ﬁ" become "fi", and
with the whitespace between text objects removed), so a label or an SSID drawn in
several pieces is still found.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Set
from dataclasses import dataclass
from typing import Final

# The report's title on its first page, in each language a report is made in.
REPORT_TITLES: Final[dict[str, str]] = {
    "en": "Student Score Report",
    "es": "Informe de calificaciones del estudiante",
    "vi": "Báo cáo Điểm của Học sinh",
    "fil": "Ulat ng Iskor ng Mag-aaral",
    "ko": "학생 성적 보고서",
    "zh-Hant": "學生成績報告",
    "ar": "تقرير درجات الطالب",
}
# The SSID's label on the first page. Every translation keeps "SSID" in it; the long forms
# are listed so that a report whose label lost its "(SSID)" is still read.
SSID_LABELS: Final[dict[str, str]] = {
    "en": "Statewide Student Identifier",
    "es": "Identificador estatal del estudiante",
    "vi": "Mã số Học sinh Toàn tiểu bang",
    "fil": "Pang-estadong Identifier ng Mag-aaral",
    "ko": "주 학생 식별 번호",
    "zh-Hant": "全州學生識別碼",
    "ar": "رقم تعريف الطالب",
}
# "Page 2 of 4" in each language, {page} and {pages} standing for the numbers.
PAGE_LABELS: Final[dict[str, str]] = {
    "en": "Page {page} of {pages}",
    "es": "Página {page} de {pages}",
    "vi": "Trang {page}/{pages}",
    "fil": "Pahina {page} ng {pages}",
    "ko": "{page}/{pages} 페이지",
    "zh-Hant": "第 {page} 頁，共 {pages} 頁",
    "ar": "صفحة {page} من {pages}",
}
# The test as the report names it -> the test code bulk uses in file names.
TEST_NAMES_ON_PAGE: Final[dict[str, str]] = {
    "CAASPP": "CAASPP",
    "SBAC": "CAASPP",
    "CAST": "CAST",
    "CAA": "CAAS",
    "CAAS": "CAAS",
    "CSA": "CSA",
    "ELPAC": "ELPAC",
}


def fold(text: str) -> str:
    """Text as it is compared: compatibility forms unfolded, no whitespace, case folded."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


_FOLDED_TITLES: Final = {lang: fold(title) for lang, title in REPORT_TITLES.items()}
_FOLDED_LABELS: Final = {lang: fold(label) for lang, label in SSID_LABELS.items()}


def _page_pattern(template: str) -> re.Pattern[str]:
    pattern = re.escape(fold(template)).replace(r"\{page\}", r"(\d{1,3})")
    return re.compile(pattern.replace(r"\{pages\}", r"(\d{1,3})"))


_PAGE_PATTERNS: Final = {lang: _page_pattern(t) for lang, t in PAGE_LABELS.items()}
# Ten digits after "SSID" (or a long label), with at most a few characters between: the
# closing parenthesis, a colon, the label's end. Digits are not read across a letter.
_SSID_AFTER_LABEL: Final = re.compile(r"ssid[^\w]{0,4}(\d{10})(?!\d)")
_TEN_DIGITS: Final = re.compile(r"(?<!\d)(\d{10})(?!\d)")
_SCHOOL_YEAR: Final = re.compile(r"(?<!\d)(20\d\d)[-–—/](\d\d)(?!\d)")
_TEST: Final = re.compile(
    r"(?<![a-z0-9])(" + "|".join(sorted(TEST_NAMES_ON_PAGE, key=len, reverse=True)) + r")"
    r"(?![a-z0-9])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What one page says. ``has_text`` False: the page has no text layer (a scan)."""

    has_text: bool
    ssid: str | None = None
    first_page: bool = False  # carries the report's title: a report starts here
    test: str | None = None
    year: int | None = None
    language: str | None = None
    page: int | None = None  # "Page 2 of 4": 2
    pages: int | None = None  # and 4
    ambiguous: bool = False  # two different SSIDs on the page


def read_page(text: str, roster_ssids: Set[str] = frozenset()) -> PageFacts:
    """The facts of one page from its extracted text."""
    folded = fold(text)
    if not folded:
        return PageFacts(has_text=False)
    language = next((lang for lang, title in _FOLDED_TITLES.items() if title in folded), None)
    first_page = language is not None
    ssids = set(_SSID_AFTER_LABEL.findall(folded))
    for lang, label in _FOLDED_LABELS.items():
        at = folded.find(label)
        if at >= 0:
            language = language or lang
            if found := _TEN_DIGITS.search(folded, at + len(label), at + len(label) + 24):
                ssids.add(found.group(1))
    if not ssids and roster_ssids:
        ssids = {s for s in _TEN_DIGITS.findall(folded) if s in roster_ssids}
    page = pages = None
    for lang, pattern in _PAGE_PATTERNS.items():
        if found := pattern.search(folded):
            page, pages = int(found.group(1)), int(found.group(2))
            language = language or lang
            break
    year = None
    if found := _SCHOOL_YEAR.search(folded):
        fall, spring = int(found.group(1)), int(found.group(2))
        if (fall + 1) % 100 == spring:
            year = fall + 1
    test = None
    if found := _TEST.search(unicodedata.normalize("NFKC", text)):
        test = TEST_NAMES_ON_PAGE[found.group(1).upper()]
    return PageFacts(
        has_text=True,
        ssid=next(iter(ssids)) if len(ssids) == 1 else None,
        first_page=first_page or page == 1,
        test=test,
        year=year,
        language=language,
        page=page,
        pages=pages,
        ambiguous=len(ssids) > 1,
    )
