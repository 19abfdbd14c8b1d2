"""Student Score Reports drawn from the synthetic world, as PDF (fpdf2) or HTML.

A PDF has a cover page (student, school, mailing address, results at a glance, what the test
is and what the scores mean) and one page per subject (overall score on its scale, area or
domain results, score history), in the report's language, with real extractable text.

Speed matters (the sandbox renders on request), so:
- reports whose text fits Windows-1252 (English, Spanish, Filipino, and most names) use the
  PDF core font Helvetica: nothing to embed or subset;
- other reports embed a font prepared once per process (see :mod:`.fonts`);
- text is placed with ``FPDF.text``; only Arabic goes through ``cell`` for shaping.
The same inputs give the same bytes: the creation date comes from the report's year.

Over 600 lines on purpose: it is one report's layout (cover page, subject pages, and the
HTML twin of both) in one place; the fonts and the texts it draws with live apart already.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fpdf import FPDF

from caaspp_cli.sandbox import fonts
from caaspp_cli.sandbox.i18n import MESSAGES, MISSING_FONT_NOTICE, Messages, school_year
from caaspp_cli.sandbox.world import (
    HistoryPoint,
    ReportScores,
    SandboxReport,
    SandboxStudent,
    ScoreScale,
    SubjectScore,
    World,
    ascii_fold,
)
from caaspp_cli.vocabulary import LANGUAGES, TEST_NAMES

PAGE_WIDTH: Final = 215.9  # US Letter, in millimetres
PAGE_HEIGHT: Final = 279.4
MARGIN: Final = 16.0
CONTENT_WIDTH: Final = PAGE_WIDTH - 2 * MARGIN
_PT: Final = 25.4 / 72  # millimetres per point

Color = tuple[int, int, int]
NAVY: Final[Color] = (27, 54, 93)
GOLD: Final[Color] = (242, 169, 0)
INK: Final[Color] = (33, 37, 41)
MUTED: Final[Color] = (95, 103, 112)
RULE: Final[Color] = (206, 212, 218)
PANEL: Final[Color] = (242, 244, 247)
WHITE: Final[Color] = (255, 255, 255)
BAND_TEXT: Final[Color] = (214, 224, 238)
NOTICE_FILL: Final[Color] = (255, 243, 205)
NOTICE_RULE: Final[Color] = (230, 180, 40)

# Strong colours (text, bars) and light ones (scale segments), by level count and level.
_LEVEL_COLORS: Final[dict[int, dict[int, Color]]] = {
    4: {1: (192, 57, 43), 2: (214, 137, 16), 3: (39, 133, 84), 4: (31, 97, 160)},
    3: {1: (192, 57, 43), 2: (214, 137, 16), 3: (39, 133, 84)},
}
_LEVEL_TINTS: Final[dict[int, dict[int, Color]]] = {
    4: {1: (246, 213, 209), 2: (251, 230, 196), 3: (207, 234, 218), 4: (205, 223, 242)},
    3: {1: (246, 213, 209), 2: (251, 230, 196), 3: (207, 234, 218)},
}
_DESCRIPTOR_COLORS: Final[dict[int, Color]] = {
    1: (192, 57, 43),
    2: (214, 137, 16),
    3: (39, 133, 84),
}

# Short names of the tests, as a badge on the cover.
_TEST_SHORT_NAMES: Final[dict[str, str]] = {"CAAS": "CAA"}
_CORE_ENCODING: Final = "cp1252"
_MESSAGE_KEYS: Final = frozenset(MESSAGES)


def level_color(scale: ScoreScale, level: int) -> Color:
    return _LEVEL_COLORS[scale.level_count][level]


# --- Typefaces -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Typeface:
    """What draws a report's text, and how text is made to fit it."""

    family: str  # the fpdf2 family name
    prepared: fonts.PreparedFont | None  # None for the core font

    @property
    def shaping(self) -> bool:
        return self.prepared is not None and self.prepared.shaping

    def fit(self, text: str) -> str:
        """The text with every character this typeface lacks replaced by its nearest."""
        if self.prepared is None:
            return _to_core_charset(text)
        covered = self.prepared.covered
        if all(ord(char) in covered for char in text):
            return text
        return "".join(
            char if ord(char) in covered else _nearest(char, lambda c: ord(c) in covered)
            for char in text
        )


_CORE_TYPEFACE: Final = _Typeface("helvetica", None)
# Arabic letters and presentation forms: text with none of these needs no shaping.
_COMPLEX_SCRIPT: Final = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")


def _needs_shaping(typeface: _Typeface, text: str) -> bool:
    return typeface.shaping and _COMPLEX_SCRIPT.search(text) is not None


_EMBEDDED_FAMILY: Final = "report"


def _fits_core(text: str) -> bool:
    try:
        text.encode(_CORE_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def _nearest(char: str, usable: Callable[[str], bool]) -> str:
    """The closest drawable form of a character: "ễ" -> "ê" -> "e", else "?"."""
    decomposed = unicodedata.normalize("NFD", char)
    while len(decomposed) > 1:
        decomposed = decomposed[:-1]
        candidate = unicodedata.normalize("NFC", decomposed)
        if usable(candidate):
            return candidate
    folded = ascii_fold(char)
    return folded if folded and all(usable(c) for c in folded) else "?"


def _to_core_charset(text: str) -> str:
    if _fits_core(text):
        return text
    return "".join(char if _fits_core(char) else _nearest(char, _fits_core) for char in text)


@dataclass(frozen=True)
class _Setup:
    messages: Messages
    typeface: _Typeface
    notice: str | None  # set when the report's language could not be drawn


def drawn_in_its_language(language: str) -> bool:
    """False where a report in ``language`` would come out as an English copy with a notice
    (Korean, Chinese, Arabic without their fonts)."""
    script = fonts.SCRIPT_OF_LANGUAGE.get(language, fonts.LATIN)
    return script == fonts.LATIN or fonts.prepared_font(script) is not None


def _setup(student: SandboxStudent, report: SandboxReport, school_name: str) -> _Setup:
    language = report.language if report.language in LANGUAGES else "en"
    script = fonts.SCRIPT_OF_LANGUAGE[language]
    notice = None
    if script != fonts.LATIN:
        prepared = fonts.prepared_font(script)
        if prepared is not None:
            return _Setup(Messages(language), _Typeface(_EMBEDDED_FAMILY, prepared), None)
        notice = MISSING_FONT_NOTICE.format(language=LANGUAGES[language])
        language = "en"
    variable_text = (
        student.first_name,
        student.last_name,
        student.guardian_name,
        student.address,
        school_name,
        student.lea_name,
    )
    if language in fonts.CORE_FONT_LANGUAGES and all(map(_fits_core, variable_text)):
        return _Setup(Messages(language), _CORE_TYPEFACE, notice)
    prepared = fonts.prepared_font(fonts.LATIN)
    typeface = _Typeface(_EMBEDDED_FAMILY, prepared) if prepared else _CORE_TYPEFACE
    return _Setup(Messages(language), typeface, notice)


# --- Drawing -------------------------------------------------------------------------------

_TOKEN: Final = re.compile(
    r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef][，。、；：！？）」』]*"
    r"|[^\s\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]+"
    r"|\s+"
)


class _Canvas:
    """Drawing in logical coordinates: x runs from the reading start, mirrored for Arabic."""

    def __init__(self, pdf: Any, typeface: _Typeface, right_to_left: bool) -> None:
        self.pdf = pdf
        self.typeface = typeface
        self.right_to_left = right_to_left
        self._text_color: Color | None = None

    def _x(self, x: float, width: float = 0.0) -> float:
        return PAGE_WIDTH - x - width if self.right_to_left else x

    def _font(self, size: float, bold: bool) -> None:
        self.pdf.set_font(self.typeface.family, "B" if bold else "", size)

    def _advance(self, fitted: str) -> float:
        """The width of text already fitted, in the current font."""
        # FPDF.get_string_width runs the bidi and markdown machinery on every call; asking
        # the font directly gives the same number for one run of text, far faster.
        font = self.pdf.current_font
        shaping = self.pdf.text_shaping if _needs_shaping(self.typeface, fitted) else None
        normalized = self.pdf.normalize_text(fitted)
        width = font.get_text_width(normalized, self.pdf.font_size_pt, shaping)[1]
        return float(width) / float(self.pdf.k)

    def width(self, text: str, size: float, *, bold: bool = False) -> float:
        self._font(size, bold)
        return self._advance(self.typeface.fit(text))

    def fitting_size(
        self, text: str, size: float, width: float, *, bold: bool = False, smallest: float = 6.0
    ) -> float:
        """The largest size up to ``size`` at which the text fits the width."""
        measured = self.width(text, size, bold=bold)
        if measured <= width:
            return size
        return max(smallest, size * width / measured * 0.98)

    def text(
        self,
        x: float,
        baseline: float,
        text: str,
        size: float,
        *,
        bold: bool = False,
        color: Color = INK,
        align: str = "start",
        width: float = 0.0,
        shrink: bool = False,
    ) -> None:
        """Text on a baseline, placed in the box [x, x + width] by ``align``."""
        if not text:
            return
        if shrink and width:
            size = self.fitting_size(text, size, width, bold=bold)
        fitted = self.typeface.fit(text)
        self._font(size, bold)
        if color != self._text_color:
            self.pdf.set_text_color(*color)
            self._text_color = color
        measured = self._advance(fitted)
        offset = 0.0
        if align == "end":
            offset = width - measured
        elif align == "center":
            offset = (width - measured) / 2
        left = self._x(x + offset, measured)
        if _needs_shaping(self.typeface, fitted):
            font_size = size * _PT
            self.pdf.set_xy(left, baseline - 0.8 * font_size)
            self.pdf.cell(w=measured, h=font_size, text=fitted)
        else:
            self.pdf.text(left, baseline, fitted)

    def wrap(self, text: str, width: float, size: float, *, bold: bool = False) -> list[str]:
        """Lines of at most ``width``, broken at spaces (and between CJK characters)."""
        self._font(size, bold)
        fit = self.typeface.fit
        lines: list[str] = []
        line, line_width = "", 0.0
        for token in _TOKEN.findall(text):
            if token.isspace() and not line:
                continue
            token_width = self._advance(fit(token))
            if line and not token.isspace() and line_width + token_width > width:
                lines.append(line.rstrip())
                line, line_width = token, token_width
            else:
                line, line_width = line + token, line_width + token_width
        if line.strip():
            lines.append(line.rstrip())
        return lines

    def paragraph(
        self,
        x: float,
        top: float,
        width: float,
        text: str,
        size: float,
        *,
        leading: float,
        color: Color = INK,
        bold: bool = False,
        align: str = "start",
    ) -> float:
        """A wrapped paragraph whose first line's top is ``top``; returns the y below it."""
        baseline = top + size * _PT * 0.8
        for line in self.wrap(text, width, size, bold=bold):
            self.text(x, baseline, line, size, color=color, bold=bold, align=align, width=width)
            baseline += leading
        return baseline - leading + size * _PT * 0.45

    def rect(
        self,
        x: float,
        y: float,
        width: float,
        height: float,
        *,
        fill: Color | None = None,
        stroke: Color | None = None,
        line_width: float = 0.2,
        radius: float = 0.0,
    ) -> None:
        style = ("F" if fill else "") + ("D" if stroke else "")
        if not style:
            return
        if fill:
            self.pdf.set_fill_color(*fill)
        if stroke:
            self.pdf.set_draw_color(*stroke)
            self.pdf.set_line_width(line_width)
        style = "DF" if style == "FD" else style
        self.pdf.rect(
            self._x(x, width),
            y,
            width,
            height,
            style=style,
            round_corners=radius > 0,
            corner_radius=radius,
        )

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        *,
        color: Color = RULE,
        line_width: float = 0.2,
    ) -> None:
        self.pdf.set_draw_color(*color)
        self.pdf.set_line_width(line_width)
        self.pdf.line(self._x(x1), y1, self._x(x2), y2)

    def dot(
        self,
        x: float,
        y: float,
        radius: float,
        *,
        fill: Color | None = None,
        stroke: Color | None = None,
    ) -> None:
        style = "DF" if fill and stroke else "F" if fill else "D"
        if fill:
            self.pdf.set_fill_color(*fill)
        if stroke:
            self.pdf.set_draw_color(*stroke)
            self.pdf.set_line_width(0.3)
        center = self._x(x)
        self.pdf.ellipse(center - radius, y - radius, 2 * radius, 2 * radius, style=style)

    def polygon(self, points: Sequence[tuple[float, float]], *, fill: Color) -> None:
        self.pdf.set_fill_color(*fill)
        self.pdf.polygon([(self._x(x), y) for x, y in points], style="F")


# --- Pages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Report:
    """Everything a page needs."""

    student: SandboxStudent
    report: SandboxReport
    scores: ReportScores
    school_name: str  # where the student tested, which need not be today's school
    messages: Messages
    notice: str | None

    @property
    def test_name(self) -> str:
        key = f"test.{self.report.test}"
        if key in _MESSAGE_KEYS:
            return self.messages[key]
        return TEST_NAMES.get(self.report.test, self.report.test)

    @property
    def test_short_name(self) -> str:
        return _TEST_SHORT_NAMES.get(self.report.test, self.report.test)

    @property
    def level_family(self) -> str:
        return self.scores.subjects[0].scale.levels if self.scores.subjects else "sb"


def _level_text(messages: Messages, scale: ScoreScale, level: int) -> str:
    return messages.format(
        "label.level", level=level, name=messages[f"level.{scale.levels}.{level}"]
    )


def _footer(c: _Canvas, r: _Report, page: int, pages: int) -> None:
    c.line(MARGIN, PAGE_HEIGHT - 14, MARGIN + CONTENT_WIDTH, PAGE_HEIGHT - 14)
    baseline = PAGE_HEIGHT - 9.5
    page_label = r.messages.format("label.page", page=page, pages=pages)
    page_width = c.width(page_label, 7.5) + 2
    c.text(
        MARGIN,
        baseline,
        r.messages["footer.synthetic"],
        7.5,
        color=MUTED,
        width=CONTENT_WIDTH - page_width - 4,
        shrink=True,
    )
    c.text(MARGIN, baseline, page_label, 7.5, color=MUTED, align="end", width=CONTENT_WIDTH)


def _cover_page(c: _Canvas, r: _Report, pages: int) -> None:
    m, student = r.messages, r.student
    c.rect(0, 0, PAGE_WIDTH, 34, fill=NAVY)
    c.rect(0, 34, PAGE_WIDTH, 1.4, fill=GOLD)

    badge = r.test_short_name
    badge_width = c.width(badge, 13, bold=True) + 9
    c.rect(MARGIN + CONTENT_WIDTH - badge_width, 10, badge_width, 11, fill=GOLD, radius=1.5)
    c.text(
        MARGIN + CONTENT_WIDTH - badge_width,
        17.6,
        badge,
        13,
        bold=True,
        color=NAVY,
        align="center",
        width=badge_width,
    )
    title = f"{m['report_title']} {school_year(r.report.year)}"
    title_width = CONTENT_WIDTH - badge_width - 6
    c.text(MARGIN, 16, title, 19, bold=True, color=WHITE, width=title_width, shrink=True)
    c.text(MARGIN, 25, r.test_name, 10, color=BAND_TEXT, width=title_width, shrink=True)

    y = 46.0
    c.text(MARGIN, y + 3, student.full_name, 17, bold=True, width=118, shrink=True)
    facts = (
        ("label.ssid", student.ssid),
        ("label.school", r.school_name),
        ("label.birth_date", m.date(student.birth_date)),
        ("label.lea", student.lea_name),
        ("label.grade", m.grade(r.report.grade)),
        ("label.test_date", m.date(r.scores.test_date)),
    )
    for index, (label, value) in enumerate(facts):
        x = MARGIN + (index % 2) * 60
        row_top = y + 9 + (index // 2) * 11.5
        c.text(x, row_top + 3, m[label], 7.5, color=MUTED, width=57, shrink=True)
        c.text(x, row_top + 8, value, 10, bold=index == 0, width=57, shrink=True)

    box_x, box_width = MARGIN + 124, CONTENT_WIDTH - 124
    c.rect(box_x, y - 3, box_width, 44, fill=PANEL, radius=1.5)
    c.text(
        box_x + 4, y + 3, m["label.guardian"], 7.5, color=MUTED, width=box_width - 8, shrink=True
    )
    c.text(box_x + 4, y + 9, student.guardian_name, 10, bold=True, width=box_width - 8, shrink=True)
    for number, line in enumerate(student.address.split("\n")):
        c.text(box_x + 4, y + 14.5 + number * 4.8, line, 9.5, width=box_width - 8, shrink=True)

    y = 92.0
    if r.notice:
        notice_lines = c.wrap(r.notice, CONTENT_WIDTH - 10, 9)
        height = 6 + 4.4 * len(notice_lines)
        c.rect(MARGIN, y, CONTENT_WIDTH, height, fill=NOTICE_FILL, stroke=NOTICE_RULE, radius=1.5)
        c.paragraph(MARGIN + 5, y + 3, CONTENT_WIDTH - 10, r.notice, 9, leading=4.4)
        y += height + 6

    c.text(MARGIN, y + 4, m["heading.glance"], 12, bold=True, color=NAVY)
    y += 8
    subjects = r.scores.subjects
    gap = 5.0
    card_width = (CONTENT_WIDTH - gap * (len(subjects) - 1)) / max(1, len(subjects))
    for index, subject in enumerate(subjects):
        x = MARGIN + index * (card_width + gap)
        color = level_color(subject.scale, subject.level)
        c.rect(x, y, card_width, 27, fill=PANEL, radius=1.5)
        c.rect(x, y, 2.2, 27, fill=color)
        c.text(
            x + 6,
            y + 7,
            m[f"subject.{subject.subject}"],
            9,
            bold=True,
            width=card_width - 10,
            shrink=True,
        )
        c.text(x + 6, y + 17.5, str(subject.score), 20, bold=True)
        c.text(
            x + 6,
            y + 23.5,
            _level_text(m, subject.scale, subject.level),
            8.5,
            bold=True,
            color=color,
            width=card_width - 10,
            shrink=True,
        )
    y += 27 + 10

    what_is = "elpac" if r.report.test == "ELPAC" else "caaspp"
    c.text(MARGIN, y, m[f"heading.what_is_{what_is}"], 12, bold=True, color=NAVY)
    y = c.paragraph(MARGIN, y + 3, CONTENT_WIDTH, m[f"para.what_is_{what_is}"], 9.5, leading=4.7)
    y += 7
    c.text(MARGIN, y, m["heading.scores_mean"], 12, bold=True, color=NAVY)
    meaning = {"elpac": "elpac", "caa": "caa"}.get(r.level_family, "sb")
    y = c.paragraph(
        MARGIN, y + 3, CONTENT_WIDTH, m[f"para.scores_mean.{meaning}"], 9.5, leading=4.7
    )
    y += 5
    scale = subjects[0].scale if subjects else ScoreScale(0, 1, (0, 0, 0), "sb")
    levels = range(scale.level_count, 0, -1)
    column_width = CONTENT_WIDTH / 2
    for position, level in enumerate(levels):
        x = MARGIN + (position % 2) * column_width
        row_y = y + (position // 2) * 7
        c.rect(x, row_y, 4.5, 4.5, fill=level_color(scale, level), radius=0.8)
        c.text(
            x + 7,
            row_y + 3.6,
            _level_text(m, scale, level),
            9,
            width=column_width - 10,
            shrink=True,
        )
    y += 7 * ((len(levels) + 1) // 2) + 8
    c.text(MARGIN, y, m["heading.learn_more"], 12, bold=True, color=NAVY)
    site = "elpac.startingsmarter.org" if r.report.test == "ELPAC" else "ca.startingsmarter.org"
    c.paragraph(
        MARGIN, y + 3, CONTENT_WIDTH, m.format("para.learn_more", url=site), 9.5, leading=4.7
    )
    _footer(c, r, 1, pages)


def _subject_band(c: _Canvas, r: _Report, subject: SubjectScore) -> None:
    m = r.messages
    c.rect(0, 0, PAGE_WIDTH, 22, fill=NAVY)
    c.rect(0, 22, PAGE_WIDTH, 1.2, fill=GOLD)
    c.text(
        MARGIN,
        11,
        m[f"subject.{subject.subject}"],
        15,
        bold=True,
        color=WHITE,
        width=CONTENT_WIDTH,
        shrink=True,
    )
    context = (
        f"{r.test_short_name} {school_year(r.report.year)}  ·  "
        f"{r.student.full_name}  ·  SSID {r.student.ssid}"
    )
    c.text(MARGIN, 17.5, context, 8.5, color=BAND_TEXT, width=CONTENT_WIDTH, shrink=True)


def _scale_bar(
    c: _Canvas,
    x: float,
    y: float,
    width: float,
    height: float,
    scale: ScoreScale,
    score: int,
    margin: int,
    m: Messages,
    *,
    labels: bool = True,
) -> None:
    span = max(1, scale.maximum - scale.minimum)

    def at(value: float) -> float:
        return x + (min(max(value, scale.minimum), scale.maximum) - scale.minimum) / span * width

    bounds = (scale.minimum, *scale.cuts, scale.maximum)
    low, high = at(score - margin), at(score + margin)
    for level in range(1, scale.level_count + 1):
        left, right = at(bounds[level - 1]), at(bounds[level])
        c.rect(left, y, right - left, height, fill=_LEVEL_TINTS[scale.level_count][level])
        if labels:
            name = m.format("label.level_short", level=level)
            name_width = c.width(name, 7, bold=True)
            name_left = (left + right - name_width) / 2
            # A name under the score marker would be unreadable; the legend names it anyway.
            clear = name_left + name_width < low - 1.5 or name_left > high + 1.5
            if name_width < right - left - 2 and clear:
                c.text(
                    left,
                    y + height / 2 + 1.2,
                    name,
                    7,
                    bold=True,
                    color=level_color(scale, level),
                    align="center",
                    width=right - left,
                )
    c.rect(x, y, width, height, stroke=RULE, line_width=0.2)
    if labels:
        for value in bounds:
            c.text(
                at(value) - 10, y + height + 4, str(value), 7, color=MUTED, align="center", width=20
            )
    middle = y + height / 2
    c.line(low, middle, high, middle, color=INK, line_width=0.5)
    c.line(low, middle - 1.4, low, middle + 1.4, color=INK, line_width=0.5)
    c.line(high, middle - 1.4, high, middle + 1.4, color=INK, line_width=0.5)
    marker = at(score)
    c.line(marker, y - 0.5, marker, y + height + 0.5, color=INK, line_width=0.7)
    c.polygon([(marker - 2.2, y - 3.6), (marker + 2.2, y - 3.6), (marker, y - 0.6)], fill=INK)
    if labels:
        c.text(marker - 12, y - 5, str(score), 9, bold=True, align="center", width=24)


def _descriptor_table(c: _Canvas, r: _Report, subject: SubjectScore, y: float) -> float:
    m = r.messages
    heading = "heading.areas" if subject.area_kind == "sb" else "heading.domains"
    c.text(MARGIN, y, m[heading], 12, bold=True, color=NAVY)
    y += 4
    name_width = 78.0
    column_width = (CONTENT_WIDTH - name_width) / 3
    header_height = 11.0
    for descriptor in (1, 2, 3):
        x = MARGIN + name_width + (descriptor - 1) * column_width
        label = m[f"area.{subject.area_kind}.{descriptor}"]
        lines = c.wrap(label, column_width - 4, 7.5, bold=True)[:2]
        top = y + header_height / 2 - 1.8 * len(lines) + 2.6
        for number, line in enumerate(lines):
            c.text(
                x,
                top + number * 3.6,
                line,
                7.5,
                bold=True,
                color=MUTED,
                align="center",
                width=column_width,
            )
    y += header_height
    c.line(MARGIN, y, MARGIN + CONTENT_WIDTH, y, color=RULE, line_width=0.3)
    row_height = 8.5
    for index, area in enumerate(subject.areas):
        top = y + index * row_height
        if index % 2 == 0:
            c.rect(MARGIN, top, CONTENT_WIDTH, row_height, fill=PANEL)
        c.text(
            MARGIN + 3, top + 5.6, m[f"area.{area.area}"], 9.5, width=name_width - 6, shrink=True
        )
        for descriptor in (1, 2, 3):
            center = MARGIN + name_width + (descriptor - 0.5) * column_width
            if descriptor == area.descriptor:
                c.dot(center, top + row_height / 2, 2.1, fill=_DESCRIPTOR_COLORS[descriptor])
            else:
                c.dot(center, top + row_height / 2, 1.1, stroke=RULE)
    y += len(subject.areas) * row_height
    c.line(MARGIN, y, MARGIN + CONTENT_WIDTH, y, color=RULE, line_width=0.3)
    return y


def _history_chart(c: _Canvas, r: _Report, history: Sequence[HistoryPoint], y: float) -> None:
    m = r.messages
    c.text(MARGIN, y, m["heading.history"], 12, bold=True, color=NAVY)
    chart_top, chart_height = y + 10, 38.0
    baseline = chart_top + chart_height
    slot = 36.0
    c.line(MARGIN, baseline, MARGIN + slot * 3 + 4, baseline, color=RULE, line_width=0.4)
    for index, point in enumerate(history[-3:]):
        x = MARGIN + 4 + index * slot
        share = (point.score - point.scale.minimum) / max(
            1, point.scale.maximum - point.scale.minimum
        )
        height = max(2.0, share * (chart_height - 9))
        color = level_color(point.scale, point.level)
        c.rect(x + 6, baseline - height, slot - 16, height, fill=color)
        c.text(
            x,
            baseline - height - 5.2,
            str(point.score),
            9.5,
            bold=True,
            align="center",
            width=slot - 4,
        )
        c.text(
            x,
            baseline - height - 1.6,
            m.format("label.level_short", level=point.level),
            7,
            color=color,
            bold=True,
            align="center",
            width=slot - 4,
        )
        c.text(x, baseline + 4.5, school_year(point.year), 8.5, align="center", width=slot - 4)
        grade = f"{m['label.grade']} {m.grade(point.grade)}"
        c.text(
            x, baseline + 8.5, grade, 7.5, color=MUTED, align="center", width=slot - 4, shrink=True
        )
    # A table beside the chart gives the same history in words.
    table_x = MARGIN + slot * 3 + 14
    table_width = CONTENT_WIDTH - (table_x - MARGIN)
    columns = (("label.school_year", 0.0), ("label.score", 0.37), ("label.grade", 0.7))
    for key, share in columns:
        c.text(
            table_x + share * table_width,
            chart_top + 2,
            m[key],
            7.5,
            bold=True,
            color=MUTED,
            width=table_width * 0.3,
            shrink=True,
        )
    for index, point in enumerate(reversed(history[-3:])):
        row = chart_top + 8 + index * 7
        values = (school_year(point.year), str(point.score), m.grade(point.grade))
        for (_, share), value in zip(columns, values, strict=True):
            c.text(
                table_x + share * table_width, row, value, 9, width=table_width * 0.3, shrink=True
            )
        c.text(
            table_x,
            row + 3.2,
            _level_text(m, point.scale, point.level),
            7,
            color=level_color(point.scale, point.level),
            width=table_width,
            shrink=True,
        )


def _subject_page(c: _Canvas, r: _Report, subject: SubjectScore, page: int, pages: int) -> None:
    m = r.messages
    _subject_band(c, r, subject)
    c.text(MARGIN, 34, m["label.overall_score"], 9, color=MUTED)
    c.text(MARGIN, 47, str(subject.score), 30, bold=True)
    score_width = c.width(str(subject.score), 30, bold=True)
    color = level_color(subject.scale, subject.level)
    info_x = MARGIN + score_width + 8
    c.text(
        info_x,
        40.5,
        _level_text(m, subject.scale, subject.level),
        13,
        bold=True,
        color=color,
        width=CONTENT_WIDTH - score_width - 8,
        shrink=True,
    )
    c.text(info_x, 46.5, m.format("label.margin", margin=subject.margin), 8.5, color=MUTED)
    _scale_bar(c, MARGIN, 62, CONTENT_WIDTH, 9, subject.scale, subject.score, subject.margin, m)

    y = 90.0
    if subject.composites:
        card_width = (CONTENT_WIDTH - 6) / 2
        for index, composite in enumerate(subject.composites):
            x = MARGIN + index * (card_width + 6)
            composite_color = level_color(composite.scale, composite.level)
            c.rect(x, y - 6, card_width, 30, fill=PANEL, radius=1.5)
            c.text(
                x + 4,
                y,
                m[f"area.{composite.area}"],
                9.5,
                bold=True,
                width=card_width - 8,
                shrink=True,
            )
            c.text(x + 4, y + 9, str(composite.score), 16, bold=True)
            c.text(
                x + 24,
                y + 9,
                _level_text(m, composite.scale, composite.level),
                8.5,
                bold=True,
                color=composite_color,
                width=card_width - 28,
                shrink=True,
            )
            _scale_bar(
                c,
                x + 4,
                y + 15,
                card_width - 8,
                4,
                composite.scale,
                composite.score,
                0,
                m,
                labels=False,
            )
        y += 36
    if subject.areas:
        y = _descriptor_table(c, r, subject, y) + 14
    else:
        y += 4
    _history_chart(c, r, subject.history, y)
    _footer(c, r, page, pages)


# --- Entry points --------------------------------------------------------------------------


def _creation_date(year: int) -> datetime:
    # Results reach families the summer after the spring test.
    return datetime(year, 8, 15, 12, 0, tzinfo=UTC)


def render_report_pdf(world: World, student: SandboxStudent, report: SandboxReport) -> bytes:
    """The report as a PDF: the same bytes for the same world, student and report."""
    school_name = world.school_at(student, report.grade).name
    setup = _setup(student, report, school_name)
    scores = world.scores(student, report)
    r = _Report(student, report, scores, school_name, setup.messages, setup.notice)

    pdf = FPDF(unit="mm", format="letter")
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.c_margin = 0
    pdf.core_fonts_encoding = _CORE_ENCODING
    if setup.typeface.prepared is not None:
        setup.typeface.prepared.attach(pdf, _EMBEDDED_FAMILY)
        if setup.typeface.shaping:
            pdf.set_text_shaping(True)
    year_name = f"{report.test} {report.year}"
    language_name = LANGUAGES.get(report.language, report.language)
    pdf.set_title(
        f"Student Score Report — {year_name}"
        + ("" if report.language == "en" else f" ({language_name})")
    )
    pdf.set_author("caaspp sandbox")
    pdf.set_subject("Synthetic data from the caaspp sandbox — not a real student")
    pdf.set_keywords(f"SSID {student.ssid}; {year_name}; {report.language}; synthetic")
    pdf.set_creator("caaspp sandbox")
    pdf.set_lang(setup.messages.language)
    pdf.set_creation_date(_creation_date(report.year))

    canvas = _Canvas(pdf, setup.typeface, setup.messages.right_to_left)
    pages = 1 + len(scores.subjects)
    pdf.add_page()
    _cover_page(canvas, r, pages)
    for number, subject in enumerate(scores.subjects, start=2):
        pdf.add_page()  # keeps the colours set so far, as the canvas assumes
        _subject_page(canvas, r, subject, number, pages)
    return bytes(pdf.output())


def render_report_html(world: World, student: SandboxStudent, report: SandboxReport) -> str:
    """The report as a standalone HTML page, for one subject when the entry names one."""
    m = Messages(report.language)
    scores = world.scores(student, report)
    subjects = [s for s in scores.subjects if report.subject in (None, s.subject)]
    e = html.escape

    def level(scale: ScoreScale, value: int) -> str:
        red, green, blue = level_color(scale, value)
        color = f"#{red:02x}{green:02x}{blue:02x}"
        return f'<span class="level" style="color:{color}">{e(_level_text(m, scale, value))}</span>'

    parts: list[str] = []
    for subject in subjects:
        rows = "".join(
            f"<tr><td>{e(m[f'area.{area.area}'])}</td>"
            f"<td>{e(m[f'area.{subject.area_kind}.{area.descriptor}'])}</td></tr>"
            for area in subject.areas
        )
        history = "".join(
            f"<tr><td>{e(school_year(p.year))}</td><td>{e(m.grade(p.grade))}</td>"
            f"<td>{p.score}</td><td>{level(p.scale, p.level)}</td></tr>"
            for p in reversed(subject.history)
        )
        areas = (
            f"<h3>{e(m['heading.areas' if subject.area_kind == 'sb' else 'heading.domains'])}"
            f"</h3><table>{rows}</table>"
            if rows
            else ""
        )
        parts.append(
            f"<section><h2>{e(m[f'subject.{subject.subject}'])}</h2>"
            f'<p class="score">{e(m["label.overall_score"])}: <strong>{subject.score}</strong> '
            f"{level(subject.scale, subject.level)}</p>"
            f"<p>{e(m.format('label.margin', margin=subject.margin))}</p>{areas}"
            f"<h3>{e(m['heading.history'])}</h3><table><tr><th>{e(m['label.school_year'])}</th>"
            f"<th>{e(m['label.grade'])}</th><th>{e(m['label.score'])}</th><th></th></tr>"
            f"{history}</table></section>"
        )
    test_key = f"test.{report.test}"
    test_name = m[test_key] if test_key in _MESSAGE_KEYS else TEST_NAMES.get(report.test, "")
    facts = "".join(
        f"<dt>{e(m[label])}</dt><dd>{e(value)}</dd>"
        for label, value in (
            ("label.ssid", student.ssid),
            ("label.birth_date", m.date(student.birth_date)),
            ("label.grade", m.grade(report.grade)),
            ("label.school", world.school_at(student, report.grade).name),
            ("label.lea", student.lea_name),
            ("label.test_date", m.date(scores.test_date)),
        )
    )
    direction = "rtl" if m.right_to_left else "ltr"
    title = f"{m['report_title']} {school_year(report.year)}"
    if report.subject is not None and f"subject.{report.subject}" in _MESSAGE_KEYS:
        title += f" — {m[f'subject.{report.subject}']}"
    return (
        f'<!DOCTYPE html>\n<html lang="{e(m.language)}" dir="{direction}"><head>'
        f'<meta charset="utf-8"><title>{e(title)} ({e(report.test)})</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;"
        "color:#212529}header{background:#1b365d;color:#fff;padding:1rem 1.5rem}"
        "header p{margin:.2rem 0;color:#d6e0ee}dl{display:grid;grid-template-columns:auto 1fr;"
        "gap:.2rem 1rem}dt{color:#5f6770}table{border-collapse:collapse;width:100%}"
        "td,th{border-bottom:1px solid #ced4da;padding:.3rem;text-align:start}"
        ".score strong{font-size:2rem}.level{font-weight:600}footer{color:#5f6770;"
        "font-size:.8rem;margin-top:2rem}</style></head><body>"
        f"<header><h1>{e(title)}</h1><p>{e(test_name)}</p></header>"
        f"<h2>{e(student.full_name)}</h2><dl>{facts}</dl>{''.join(parts)}"
        f"<footer>{e(m['footer.synthetic'])}</footer></body></html>\n"
    )
