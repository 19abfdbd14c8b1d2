"""Finding and loading the fonts that translated score reports need.

A font family is looked for in a fixed order: the ``weblate-fonts`` package (installed with
the ``fonts`` extra), then the usual places of Debian, macOS and Windows. A candidate counts
only if it is a TrueType font that has every sample character of its script.

fpdf2 parses a font file on every ``add_font`` and subsets it with fontTools on every
``output``; with a 6 MB CJK font that is over a second per report. So each family is cut
down once per process to the characters reports can use (:class:`PreparedFont`), and every
document gets a light copy of the parsed font instead of parsing the file again.
Preparation happens on the first report that needs the script, never at import.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from caaspp_cli.sandbox import i18n
from caaspp_cli.vocabulary import LANGUAGES

logger = logging.getLogger(__name__)

LATIN: Final = "latin"
KOREAN: Final = "korean"
CHINESE: Final = "chinese"
ARABIC: Final = "arabic"

SCRIPT_OF_LANGUAGE: Final[dict[str, str]] = {
    "en": LATIN,
    "es": LATIN,
    "fil": LATIN,
    "vi": LATIN,
    "ko": KOREAN,
    "zh-Hant": CHINESE,
    "ar": ARABIC,
}
# The language whose texts decide which characters a non-Latin font keeps.
_LANGUAGE_OF_SCRIPT: Final[dict[str, str]] = {KOREAN: "ko", CHINESE: "zh-Hant", ARABIC: "ar"}

# Languages whose every text fits the PDF core fonts (Windows-1252): they never need a file.
CORE_FONT_LANGUAGES: Final = frozenset({"en", "es", "fil"})

# A family must draw all of these to be used for its script. Latin includes Vietnamese,
# because Latin reports carry Vietnamese names.
_SAMPLES: Final[dict[str, str]] = {
    LATIN: "AZaz09ÑñÉéÜü–—’ Nguyễn Thị Đức Phương ờ ự",
    KOREAN: "AZaz09 학생 성적 보고서",
    CHINESE: "AZaz09 學生成績報告",
    ARABIC: "AZaz09 تقرير درجات الطالب",
}

_LATIN_RANGES: Final = (
    (0x20, 0x7E),  # Basic Latin
    (0xA0, 0x17F),  # Latin-1 Supplement, Latin Extended-A
    (0x1A0, 0x1B0),  # Vietnamese horned letters
    (0x1EA0, 0x1EF9),  # Vietnamese precomposed letters
    (0x2010, 0x2027),  # dashes, quotes, bullet, ellipsis
    (0x2030, 0x203A),
    (0x20AC, 0x20AC),
)
# Features Arabic shaping needs; cutting GSUB/GPOS to these keeps preparation near a second.
_ARABIC_FEATURES: Final = (
    "ccmp",
    "locl",
    "isol",
    "init",
    "medi",
    "fina",
    "rlig",
    "liga",
    "calt",
    "mark",
    "mkmk",
    "kern",
    "curs",
)


@dataclass(frozen=True)
class FontFace:
    """One font file, and the face in it for a collection (.ttc)."""

    path: Path
    index: int = 0


@dataclass(frozen=True)
class FontFamily:
    """A regular and a bold face, and where they were found."""

    name: str
    origin: str  # "weblate-fonts" or "system"
    regular: FontFace
    bold: FontFace


def _weblate_fonts_dir() -> Path | None:
    # find_spec locates the package without importing it (or Django along with it).
    try:
        spec = importlib.util.find_spec("weblate_fonts")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        static = Path(location) / "static" / "weblate_fonts"
        if static.is_dir():
            return static
    return None


def _weblate_candidates(script: str) -> list[FontFamily]:
    base = _weblate_fonts_dir()
    if base is None:
        return []
    kurinto = base / "kurinto" / "ttf"

    def family(name: str, regular: Path, bold: Path) -> FontFamily:
        return FontFamily(name, "weblate-fonts", FontFace(regular), FontFace(bold))

    if script == LATIN:
        sans = base / "source-sans" / "ttf"
        return [
            family(
                "Source Sans 3", sans / "SourceSans3-Regular.ttf", sans / "SourceSans3-Bold.ttf"
            ),
            family("Kurinto Sans", kurinto / "KurintoSans-Rg.ttf", kurinto / "KurintoSans-Bd.ttf"),
        ]
    if script == KOREAN:
        return [
            family(
                "Kurinto Sans KR",
                kurinto / "KurintoSansKR-Rg.ttf",
                kurinto / "KurintoSansKR-Bd.ttf",
            )
        ]
    if script == CHINESE:
        return [
            family(
                "Kurinto Sans TC",
                kurinto / "KurintoSansTC-Rg.ttf",
                kurinto / "KurintoSansTC-Bd.ttf",
            )
        ]
    if script == ARABIC:
        return [
            family("Kurinto Sans", kurinto / "KurintoSans-Rg.ttf", kurinto / "KurintoSans-Bd.ttf")
        ]
    return []


# (name, regular, bold, face index) per script, most likely first. Paths that do not exist
# on this system are skipped.
_SYSTEM_FONTS: Final[dict[str, tuple[tuple[str, str, str, int], ...]]] = {
    LATIN: (
        (
            "DejaVu Sans",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
            0,
        ),
        (
            "Noto Sans",
            "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
            "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
            0,
        ),
        (
            "Liberation Sans",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
            0,
        ),
        (
            "Arial",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
            "/System/Library/Fonts/Supplemental/Arial Bold.ttf",
            0,
        ),
        ("Arial", "/Library/Fonts/Arial.ttf", "/Library/Fonts/Arial Bold.ttf", 0),
        ("Arial", "{windir}/Fonts/arial.ttf", "{windir}/Fonts/arialbd.ttf", 0),
    ),
    KOREAN: (
        (
            "Nanum Gothic",
            "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
            "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf",
            0,
        ),
        ("Malgun Gothic", "{windir}/Fonts/malgun.ttf", "{windir}/Fonts/malgunbd.ttf", 0),
        (
            "Apple SD Gothic Neo",
            "/System/Library/Fonts/AppleSDGothicNeo.ttc",
            "/System/Library/Fonts/AppleSDGothicNeo.ttc",
            0,
        ),
        (
            "Arial Unicode MS",
            "/Library/Fonts/Arial Unicode.ttf",
            "/Library/Fonts/Arial Unicode.ttf",
            0,
        ),
    ),
    CHINESE: (
        (
            "AR PL UMing",
            "/usr/share/fonts/truetype/arphic/uming.ttc",
            "/usr/share/fonts/truetype/arphic/uming.ttc",
            0,
        ),
        ("Microsoft JhengHei", "{windir}/Fonts/msjh.ttc", "{windir}/Fonts/msjhbd.ttc", 0),
        (
            "Arial Unicode MS",
            "/Library/Fonts/Arial Unicode.ttf",
            "/Library/Fonts/Arial Unicode.ttf",
            0,
        ),
    ),
    ARABIC: (
        (
            "DejaVu Sans",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
            0,
        ),
        (
            "Noto Naskh Arabic UI",
            "/usr/share/fonts/truetype/noto/NotoNaskhArabicUI-Regular.ttf",
            "/usr/share/fonts/truetype/noto/NotoNaskhArabicUI-Bold.ttf",
            0,
        ),
        ("Arial", "{windir}/Fonts/arial.ttf", "{windir}/Fonts/arialbd.ttf", 0),
        (
            "Arial",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
            "/System/Library/Fonts/Supplemental/Arial Bold.ttf",
            0,
        ),
    ),
}


def _system_candidates(script: str) -> list[FontFamily]:
    windir = os.environ.get("WINDIR", r"C:\Windows") if sys.platform == "win32" else None
    found: list[FontFamily] = []
    for name, regular, bold, index in _SYSTEM_FONTS.get(script, ()):
        if "{windir}" in regular:
            if windir is None:
                continue
            regular, bold = regular.format(windir=windir), bold.format(windir=windir)
        regular_path, bold_path = Path(regular), Path(bold)
        if not regular_path.is_file():
            continue
        if not bold_path.is_file():
            bold_path = regular_path  # a report without bold beats no report
        found.append(
            FontFamily(name, "system", FontFace(regular_path, index), FontFace(bold_path, index))
        )
    return found


def _covers(face: FontFace, script: str) -> bool:
    try:
        from fontTools.ttLib import TTFont
    except ImportError:  # pragma: no cover - fontTools comes with fpdf2
        return False
    try:
        font = TTFont(str(face.path), lazy=True, fontNumber=face.index)
        try:
            if "glyf" not in font:  # CFF outlines: fpdf2 embeds them differently; skip
                return False
            cmap = font.getBestCmap() or {}
        finally:
            font.close()
    except Exception:  # any unreadable file is simply not a candidate
        logger.debug("font %s unreadable", face.path, exc_info=True)
        return False
    return all(ord(char) in cmap for char in _SAMPLES[script] if not char.isspace())


def _harfbuzz_available() -> bool:
    return importlib.util.find_spec("uharfbuzz") is not None


def candidate_families(script: str) -> list[FontFamily]:
    """Every family that could draw a script, in the order they are tried."""
    return _weblate_candidates(script) + _system_candidates(script)


def _usable_families(script: str) -> list[FontFamily]:
    if script == ARABIC and not _harfbuzz_available():
        # Unshaped Arabic is wrong Arabic; better the English copy with a notice.
        return []
    # The bold face of a family covers what the regular does; reading one cmap of a 6 MB
    # font is what fonts_available() costs, so only that one is read here.
    return [
        family
        for family in candidate_families(script)
        if family.bold.path.is_file() and _covers(family.regular, script)
    ]


_found: dict[str, FontFamily | None] = {}
_found_lock = threading.Lock()


def find_font_family(script: str) -> FontFamily | None:
    """The first usable family for a script, or None. Cached for the process."""
    with _found_lock:
        if script not in _found:
            usable = _usable_families(script)
            _found[script] = usable[0] if usable else None
        return _found[script]


def fonts_available() -> dict[str, bool]:
    """For each report language: True when reports come out fully in that language.

    English, Spanish and Filipino always do (the PDF core font Helvetica covers them);
    Vietnamese, Korean, Chinese and Arabic need a font file.
    """
    return {
        language: language in CORE_FONT_LANGUAGES
        or find_font_family(SCRIPT_OF_LANGUAGE[language]) is not None
        for language in LANGUAGES
    }


# --- Preparing fonts for fpdf2 -------------------------------------------------------------


def _charset(script: str) -> set[int]:
    code_points: set[int] = set()
    for first, last in _LATIN_RANGES:
        code_points.update(range(first, last + 1))
    language = _LANGUAGE_OF_SCRIPT.get(script)
    if language is not None:
        # Non-Latin fonts keep Latin only as far as names, digits and punctuation need.
        code_points = {point for point in code_points if point < 0x250 or point >= 0x2000}
        code_points.update(map(ord, i18n.characters(language)))
    return code_points


@dataclass(frozen=True)
class _PreparedFace:
    embed_data: bytes  # what goes into each PDF: no layout tables, nothing to shape with
    prototype: Any  # an fpdf.fonts.TTFFont parsed once; documents get copies of it
    shaping_blob: Any  # a uharfbuzz.Blob of the face with its layout tables, or None


class PreparedFont:
    """A font family cut down to the characters reports use, parsed once per process."""

    def __init__(self, family: FontFamily, script: str) -> None:
        self.family = family
        self.script = script
        self.shaping = script == ARABIC
        self._faces: dict[str, _PreparedFace] = {}
        coverage: list[set[int]] = []
        for style, face in (("", family.regular), ("B", family.bold)):
            self._faces[style], face_covers = self._prepare(face, style)
            coverage.append(face_covers)
        # Text is fitted once for both weights, so only what both can draw counts.
        self.covered: frozenset[int] = frozenset(set.intersection(*coverage))
        self._check()

    def _check(self) -> None:
        """Draw a line with each face, so a font fpdf2 cannot embed fails here, once."""
        from fpdf import FPDF

        pdf = FPDF()
        self.attach(pdf, "check")
        pdf.add_page()
        if self.shaping:
            pdf.set_text_shaping(True)
        sample = "".join(c for c in _SAMPLES[self.script] if ord(c) in self.covered)
        for style in self._faces:
            pdf.set_font("check", style, 10)
            pdf.cell(text=sample)
        pdf.output()

    def _prepare(self, face: FontFace, style: str) -> tuple[_PreparedFace, set[int]]:
        from fontTools import subset
        from fontTools.ttLib import TTFont
        from fpdf import FPDF
        from fpdf.fonts import TTFFont

        font = TTFont(str(face.path), lazy=True, fontNumber=face.index, recalcTimestamp=False)
        cmap = font.getBestCmap() or {}
        wanted = [point for point in _charset(self.script) if point in cmap]
        options = subset.Options()
        options.notdef_outline = True
        options.recommended_glyphs = True
        options.hinting = False  # PDF viewers do their own; hints only add bytes
        options.name_IDs = [1, 2, 3, 4, 6]
        options.drop_tables += ["DSIG", "STAT", "hdmx", "FFTM", "MATH", "BASE", "JSTF"]
        if self.shaping:
            options.layout_features = list(_ARABIC_FEATURES)
            options.layout_scripts = ["arab", "latn", "DFLT"]
        else:
            options.layout_features = []
            options.drop_tables += ["GSUB", "GPOS", "GDEF", "kern"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=wanted)
        subsetter.subset(font)
        shaping_data = _save(font) if self.shaping else None
        # Only HarfBuzz reads the layout tables, from its own copy; without them fpdf2's
        # per-document subsetting of the embedded font is several times faster.
        for tag in ("GSUB", "GPOS", "GDEF", "kern"):
            if tag in font:
                del font[tag]
        embed_data = _save(font)
        covered = set(font.getBestCmap() or {})
        font.close()

        # fpdf2 hands the "path" to fontTools, which reads a file object just as well.
        source: Any = io.BytesIO(embed_data)
        prototype = TTFFont(FPDF(), source, f"prepared{style}", style)
        blob = None
        if shaping_data is not None:
            import uharfbuzz

            blob = uharfbuzz.Blob(shaping_data)
        return _PreparedFace(embed_data, prototype, blob), covered

    def attach(self, pdf: Any, family: str) -> None:
        """Make the regular and bold faces available to ``pdf.set_font(family, ...)``."""
        from fontTools.ttLib import TTFont
        from fpdf.fonts import SubsetMap

        for style, prepared in self._faces.items():
            fontkey = family.lower() + style
            font = copy.copy(prepared.prototype)
            font.i = len(pdf.fonts) + 1
            font.fontkey = fontkey
            # fpdf2 subsets the font object in place when the PDF is written, so each
            # document needs its own; reading the small prepared bytes is cheap.
            font.ttfont = TTFont(
                io.BytesIO(prepared.embed_data),
                lazy=True,
                recalcTimestamp=False,
                recalcBBoxes=False,
            )
            font.subset = SubsetMap(font)
            font.missing_glyphs = []
            font.biggest_size_pt = 0
            # fpdf2 numbers the descriptor and hangs the font file on it while writing.
            font.desc = copy.copy(prepared.prototype.desc)
            if prepared.shaping_blob is not None:
                import uharfbuzz

                # fpdf2 defines HarfBuzzFont only when uharfbuzz is installed, as it is
                # wherever a shaping blob exists.
                from fpdf.fonts import HarfBuzzFont

                # fpdf2 would open the shaping face by file path, which this font lacks; and
                # fpdf2 sets the size on the HarfBuzz font, so threads must not share one.
                font._hbfont = HarfBuzzFont(uharfbuzz.Face(prepared.shaping_blob))
            pdf.fonts[fontkey] = font


def _save(font: Any) -> bytes:
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


_prepared: dict[str, PreparedFont | None] = {}
# One lock per script: preparing Arabic (about a second) must not hold up Korean, and
# reading a font already prepared takes no lock at all.
_prepare_locks: Final = {script: threading.Lock() for script in _SAMPLES}


def prepared_font(script: str) -> PreparedFont | None:
    """The prepared family for a script, or None without one; made on first use."""
    if script in _prepared:
        return _prepared[script]
    lock = _prepare_locks.get(script)
    if lock is None:
        return None
    with lock:
        if script not in _prepared:
            prepared: PreparedFont | None = None
            for family in _usable_families(script):
                try:
                    prepared = PreparedFont(family, script)
                    break
                except Exception as exc:  # a font that fails to load is a missing font
                    logger.info(
                        "cannot use font %s for %s: %s",
                        family.name,
                        script,
                        exc,
                        exc_info=logger.isEnabledFor(logging.DEBUG),
                    )
            _prepared[script] = prepared
        return _prepared[script]


def forget_fonts() -> None:
    """Drop every cached look-up (for tests that hide or add fonts)."""
    with _found_lock:
        _found.clear()
        _prepared.clear()
