"""The sandbox's synthetic world: one school district, its students and their score reports.

Everything derives from ``(n_students, seed)`` through seeded ``random.Random`` instances,
never from the clock. A dozen archetypes sit at places spread over the roster, so every
world of 20 students or more holds each case a client must handle (see
:meth:`World.examples`); the rest follows California's shares: about a third of families
corresponding in Spanish, one student in five learning English, a few taking alternate
assessments, two in a hundred no longer enrolled.

Scores are not stored: :meth:`World.scores` computes them from the seed, the SSID, the test
and the year, so a world of 100,000 students stays small and quick to build.

Over 600 lines on purpose: most of it is the data of the world (archetypes, schools, names,
score scales, subjects per test), kept beside the one builder that reads it.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import itertools
import random
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import Final, TypeVar

from caaspp_cli.ets.contract import FORMAT_HTML, FORMAT_PDF
from caaspp_cli.vocabulary import LANGUAGES

YEARS: Final[tuple[int, ...]] = (2023, 2024, 2025)
# The world stands in the 2025–26 school year: the spring 2025 results are the latest.
CURRENT_SPRING: Final = 2026
GRADES: Final[tuple[str, ...]] = ("KN", *(f"{grade:02d}" for grade in range(1, 13)))
LEA_NAME: Final = "Sandbox Unified School District"

SMARTER_BALANCED_GRADES: Final = frozenset({3, 4, 5, 6, 7, 8, 11})
SCIENCE_GRADES: Final = frozenset({5, 8})  # plus one high-school grade per student
HTML_SUBJECTS: Final[tuple[str, ...]] = ("ELA", "Math")
FIRST_HTML_YEAR: Final = 2024

ENGLISH: Final = "en"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class School:
    code: str  # the 7-digit school part of the CDS code
    name: str
    lowest_grade: int  # 0 is kindergarten
    highest_grade: int


SCHOOLS: Final[tuple[School, ...]] = (
    School("6012583", "Alder Creek Elementary School", 0, 5),
    School("6012591", "Bayview Elementary School", 0, 5),
    School("6012609", "Las Palmas Elementary School", 0, 5),
    School("6098217", "César Chávez Middle School", 6, 8),
    School("6098225", "Golden Hills Middle School", 6, 8),
    School("1932467", "Sandbox High School", 9, 12),
)


@dataclass(frozen=True, slots=True)
class SandboxReport:
    """One report the API lists for a student: a PDF, or an HTML page for one subject."""

    report_id: str  # opaque, url-safe, unique in the world
    test: str  # a code from vocabulary.TEST_CODES
    year: int  # spring year of the administration
    grade: str  # the student's grade in that year
    language: str  # a code from vocabulary.LANGUAGES
    format: str  # "pdf" or "html"
    subject: str | None  # html only: "ELA" or "Math"; None for a PDF


@dataclass(frozen=True, slots=True)
class SandboxStudent:
    ssid: str
    first_name: str
    last_name: str
    birth_date: date
    grade: str  # in the current (2025–26) school year
    school_code: str
    school_name: str
    lea_name: str
    correspondence_language: str  # a contract language code, "en" for English
    guardian_name: str
    guardian_email: str  # reserved example domains only; "" for a few students
    address: str  # mailing address, lines separated by "\n"
    enrolled: bool  # False: the API refuses the student (403 not_enrolled)
    reports: tuple[SandboxReport, ...]  # () for a known student without reports

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


# --- Scores --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreScale:
    """The scale of one test, subject and grade, and where each level starts."""

    minimum: int
    maximum: int
    cuts: tuple[int, ...]  # the lowest score of level 2, level 3 (and level 4)
    levels: str  # the family of level names: "sb", "caa" or "elpac"

    @property
    def level_count(self) -> int:
        return len(self.cuts) + 1

    def level_of(self, score: int) -> int:
        return 1 + sum(score >= cut for cut in self.cuts)


@dataclass(frozen=True, slots=True)
class AreaResult:
    area: str  # a name such as "reading"; the renderer translates it
    descriptor: int  # 1 below, 2 at or near, 3 above (ELPAC: beginning, somewhat, well)


@dataclass(frozen=True, slots=True)
class CompositeScore:
    """ELPAC's oral and written language scores."""

    area: str  # "oral" or "written"
    score: int
    level: int
    scale: ScoreScale


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    year: int
    grade: str
    score: int
    level: int
    scale: ScoreScale


@dataclass(frozen=True, slots=True)
class SubjectScore:
    subject: str  # "ELA", "Math", "Science" or "ELPAC"
    score: int
    margin: int  # the standard error of measurement, in scale points
    level: int
    scale: ScoreScale
    area_kind: str  # "sb", "cast", "elpac" or "" (no area results)
    areas: tuple[AreaResult, ...]
    composites: tuple[CompositeScore, ...]
    history: tuple[HistoryPoint, ...]  # oldest first, this year last


@dataclass(frozen=True, slots=True)
class ReportScores:
    test: str
    year: int
    grade: str
    test_date: date
    subjects: tuple[SubjectScore, ...]


# Smarter Balanced: (minimum, maximum, level 2, level 3, level 4) by grade.
_SB_SCALES: Final[dict[str, dict[int, tuple[int, int, int, int, int]]]] = {
    "ELA": {
        3: (2114, 2623, 2367, 2432, 2490),
        4: (2131, 2663, 2416, 2473, 2533),
        5: (2201, 2701, 2442, 2502, 2582),
        6: (2210, 2724, 2457, 2531, 2618),
        7: (2258, 2745, 2479, 2552, 2649),
        8: (2288, 2769, 2487, 2567, 2668),
        11: (2299, 2795, 2493, 2583, 2682),
    },
    "Math": {
        3: (2189, 2621, 2381, 2436, 2501),
        4: (2204, 2659, 2411, 2485, 2549),
        5: (2219, 2700, 2455, 2528, 2579),
        6: (2235, 2748, 2473, 2552, 2610),
        7: (2250, 2778, 2484, 2567, 2635),
        8: (2265, 2802, 2504, 2586, 2653),
        11: (2280, 2862, 2543, 2628, 2718),
    },
}
# CAST: grade 5, grade 8 and high school (10–12).
_CAST_SCALES: Final[dict[str, tuple[int, int, int, int, int]]] = {
    "5": (150, 250, 179, 214, 231),
    "8": (350, 450, 378, 415, 433),
    "HS": (550, 650, 576, 615, 636),
}
# Summative ELPAC overall: (maximum, level 2, level 3, level 4); the minimum is 1150.
_ELPAC_SCALES: Final[dict[int, tuple[int, int, int, int]]] = {
    0: (1700, 1374, 1422, 1474),
    1: (1700, 1411, 1455, 1507),
    2: (1700, 1424, 1471, 1532),
    3: (1800, 1448, 1488, 1535),
    4: (1800, 1459, 1499, 1549),
    5: (1800, 1467, 1514, 1560),
    6: (1900, 1475, 1517, 1567),
    7: (1900, 1481, 1527, 1576),
    8: (1900, 1486, 1534, 1590),
    9: (1950, 1493, 1545, 1606),
    10: (1950, 1493, 1545, 1606),
    11: (1950, 1500, 1555, 1615),
    12: (1950, 1500, 1555, 1615),
}
_AREAS: Final[dict[str, tuple[str, ...]]] = {
    "ELA": ("reading", "writing", "listening", "research"),
    "Math": ("concepts", "problem_solving", "reasoning"),
    "Science": ("life", "physical", "earth"),
    "ELPAC": ("listening", "speaking", "reading", "writing"),
}


def grade_number(grade: str) -> int:
    """0 for "KN", else the grade as a number."""
    return 0 if grade == "KN" else int(grade)


def high_school_science_grade(ssid: str) -> int:
    """The high-school grade (10, 11 or 12) in which a student takes the science test."""
    return (10, 11, 11, 11, 12)[int(ssid) % 5]


def subjects_of(test: str, grade: str, ssid: str) -> tuple[str, ...]:
    """The subjects a test's report holds for a student in a grade."""
    number = grade_number(grade)
    science = number in SCIENCE_GRADES or number == high_school_science_grade(ssid)
    if test == "CAST":
        return ("Science",)
    if test == "ELPAC":
        return ("ELPAC",)
    if test == "CAAS":
        core = ("ELA", "Math") if number in SMARTER_BALANCED_GRADES else ()
        return (*core, "Science") if science else core
    return ("ELA", "Math")


def score_scale(test: str, subject: str, grade: str) -> ScoreScale:
    """The scale a score of this test, subject and grade is reported on."""
    number = grade_number(grade)
    if test == "ELPAC":
        maximum, *cuts = _ELPAC_SCALES[min(number, 12)]
        return ScoreScale(1150, maximum, tuple(cuts), "elpac")
    if test == "CAAS":
        # A synthetic scale in the CAA's style: three levels, a hundred points per grade.
        base = 100 * number if number <= 8 else 900
        return ScoreScale(base, base + 99, (base + 35, base + 50), "caa")
    if subject == "Science":
        band = "5" if number <= 5 else "8" if number <= 8 else "HS"
        minimum, maximum, *cuts = _CAST_SCALES[band]
        return ScoreScale(minimum, maximum, tuple(cuts), "sb")
    table = _SB_SCALES.get(subject, _SB_SCALES["ELA"])
    nearest = min(table, key=lambda tested: abs(tested - number))
    minimum, maximum, *cuts = table[nearest]
    return ScoreScale(minimum, maximum, tuple(cuts), "sb")


# --- Names and places ----------------------------------------------------------------------

_NAMES: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]] = {
    # heritage: (children's first names, adults' first names, last names)
    "hispanic": (
        (
            "José",
            "María",
            "Sofía",
            "Mateo",
            "Santiago",
            "Valentina",
            "Camila",
            "Diego",
            "Ximena",
            "Jesús",
            "Andrés",
            "Lucía",
            "Ángel",
            "Daniela",
            "Emiliano",
            "Guadalupe",
            "Itzel",
            "Joaquín",
            "Renata",
            "Julián",
            "María José",
            "Matías",
            "Inés",
            "Adrián",
        ),
        (
            "Rosa",
            "Juan",
            "Verónica",
            "Alejandro",
            "Guadalupe",
            "Martín",
            "Leticia",
            "Raúl",
            "Maribel",
            "Héctor",
            "Yolanda",
            "Óscar",
        ),
        (
            "García",
            "Hernández",
            "López",
            "Martínez",
            "González",
            "Rodríguez",
            "Pérez",
            "Sánchez",
            "Ramírez",
            "Flores",
            "Gómez",
            "Díaz",
            "Reyes",
            "Cruz",
            "Morales",
            "Ortiz",
            "Gutiérrez",
            "Chávez",
            "Ruiz",
            "Núñez",
            "Muñoz",
            "Ibáñez",
            "Peña",
            "Castañeda",
            "Ordóñez",
        ),
    ),
    "vietnamese": (
        (
            "Hoa",
            "Minh Anh",
            "Đức",
            "Bảo Ngọc",
            "Quốc Huy",
            "Thu Trang",
            "Gia Hân",
            "Khánh Linh",
            "Thịnh",
            "Ngọc Lan",
            "Tuấn",
            "Phương Vy",
            "Nhật Minh",
            "Hải Yến",
        ),
        ("Thị Hoa", "Văn Hùng", "Thị Mai", "Quang", "Thị Lan", "Văn Dũng", "Hương"),
        ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"),
    ),
    "filipino": (
        (
            "Jose Miguel",
            "Maria Clarissa",
            "Angelo",
            "Kristine",
            "Jericho",
            "Princess",
            "Rhea",
            "Mark Anthony",
            "Jasmine",
            "Carlo",
            "Althea",
            "Paolo",
            "Bea",
            "Nathaniel",
        ),
        ("Ma. Teresa", "Rolando", "Cristina", "Eduardo", "Marites", "Romeo", "Lourdes"),
        (
            "Santos",
            "Reyes",
            "Cruz",
            "Bautista",
            "Ocampo",
            "Garcia",
            "Mendoza",
            "Dela Cruz",
            "Villanueva",
            "Aquino",
            "Castillo",
            "Ramos",
            "Manalo",
            "Dimaculangan",
        ),
    ),
    "korean": (
        (
            "Ji-woo",
            "Seo-yeon",
            "Min-jun",
            "Ha-eun",
            "Do-yoon",
            "Ye-jin",
            "Joon-ho",
            "Soo-ah",
            "Eun-ji",
            "Hyun-woo",
            "Seo-jun",
            "Ji-an",
        ),
        ("Young-hee", "Sung-min", "Mi-kyung", "Jae-won", "Hye-jin", "Dong-hyun"),
        ("Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim"),
    ),
    "chinese": (
        (
            "Wei",
            "Jia Hui",
            "Zi Xuan",
            "Hao Ran",
            "Yu Tong",
            "Jun Jie",
            "Mei Ling",
            "Ka Wai",
            "Wing Yan",
            "Chun Kit",
            "Yi Chen",
            "Kai",
        ),
        ("Li Na", "Jian", "Xiu Ying", "Wai Man", "Siu Ling", "Guo Qiang"),
        (
            "Chen",
            "Wang",
            "Li",
            "Zhang",
            "Liu",
            "Huang",
            "Wong",
            "Chan",
            "Lam",
            "Cheung",
            "Lau",
            "Ng",
        ),
    ),
    "arabic": (
        (
            "Omar",
            "Layla",
            "Yousef",
            "Mariam",
            "Ahmad",
            "Noor",
            "Khalid",
            "Huda",
            "Karim",
            "Salma",
            "Zainab",
            "Ibrahim",
        ),
        ("Fatima", "Mohammed", "Amal", "Hassan", "Rania", "Tariq"),
        (
            "Haddad",
            "Khoury",
            "Nasser",
            "Saleh",
            "Al-Masri",
            "Hamdan",
            "Aziz",
            "Mansour",
            "Farah",
            "Abdullah",
        ),
    ),
    "anglo": (
        (
            "Emma",
            "Olivia",
            "Liam",
            "Noah",
            "Ava",
            "Ethan",
            "Harper",
            "James",
            "Chloé",
            "Zoë",
            "Mia",
            "Lucas",
            "Amelia",
            "Benjamin",
            "Aarav",
            "Priya",
            "Hiroshi",
            "Anahit",
            "Dmitri",
            "Siobhan",
        ),
        (
            "Sarah",
            "Michael",
            "Jennifer",
            "David",
            "Jessica",
            "Robert",
            "Ashley",
            "Daniel",
            "Anjali",
            "Ruben",
        ),
        (
            "Smith",
            "Johnson",
            "Williams",
            "Brown",
            "Jones",
            "Miller",
            "Davis",
            "Anderson",
            "Taylor",
            "Thomas",
            "O'Brien",
            "Nakamura",
            "Patel",
            "Singh",
            "Kowalski",
            "Johansson",
            "Petrosyan",
            "Ivanova",
            "McAllister",
            "Brontë",
        ),
    ),
}
_HERITAGE_OF_LANGUAGE: Final[dict[str, str]] = {
    "es": "hispanic",
    "vi": "vietnamese",
    "fil": "filipino",
    "ko": "korean",
    "zh-Hant": "chinese",
    "ar": "arabic",
}
# Families corresponding in English, by heritage.
_ENGLISH_HERITAGES: Final = (
    ("anglo", 44),
    ("hispanic", 38),
    ("filipino", 5),
    ("vietnamese", 4),
    ("chinese", 4),
    ("korean", 3),
    ("arabic", 2),
)
# Correspondence languages, roughly as California's families choose them.
_LANGUAGE_SHARES: Final = (
    ("en", 600),
    ("es", 320),
    ("vi", 20),
    ("zh-Hant", 20),
    ("fil", 14),
    ("ko", 12),
    ("ar", 14),
)
_STREETS: Final = (
    "Maple Ave",
    "Oak St",
    "Calle Primavera",
    "Mission Blvd",
    "Sycamore Dr",
    "Vista Del Mar",
    "Camino Real",
    "Pacific Ave",
    "Jacaranda Ln",
    "Sequoia Ct",
    "Avenida del Sol",
    "Poppy Way",
    "Manzanita Rd",
    "Harbor View Dr",
)
_TOWNS: Final = (
    ("Sandbox", "95990"),
    ("Sandbox", "95991"),
    ("North Sandbox", "95992"),
    ("Sandbox Valley", "95993"),
)
_EMAIL_DOMAINS: Final = ("example.org", "example.com", "example.net", "mail.example.org")


@cache
def ascii_fold(text: str) -> str:
    """Accents off, as many student information systems store names: "Núñez" -> "Nunez"."""
    text = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


# random.choice and randrange cost several calls each; a world of 100,000 students makes
# millions of picks, so these two do it with one call to random().
def _pick(rng: random.Random, options: Sequence[T]) -> T:
    return options[int(rng.random() * len(options))]


def _below(rng: random.Random, limit: int) -> int:
    return int(rng.random() * limit)


def _weighted(rng: random.Random, shares: tuple[tuple[str, int], ...]) -> str:
    values, bounds = _cumulative(shares)
    return values[bisect.bisect_right(bounds, rng.random() * bounds[-1])]


@cache
def _cumulative(shares: tuple[tuple[str, int], ...]) -> tuple[tuple[str, ...], list[int]]:
    return tuple(value for value, _ in shares), list(itertools.accumulate(w for _, w in shares))


# --- Building ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Profile:
    """What an archetype fixes; None leaves it to chance."""

    case: str
    language: str | None = None
    grade: int | None = None
    english_learner: bool | None = None
    alternate: bool = False
    enrolled: bool = True
    html: bool | None = None
    leading_zero: bool = False
    keep_accents: bool = False


_ARCHETYPES: Final[tuple[_Profile, ...]] = (
    _Profile("english_only", "en", grade=7, english_learner=False, html=False, leading_zero=True),
    _Profile("spanish", "es", grade=6, keep_accents=True),
    _Profile("vietnamese", "vi", grade=5, keep_accents=True),
    _Profile("filipino", "fil", grade=8),
    _Profile("korean", "ko", grade=4),
    _Profile("chinese", "zh-Hant", grade=9),
    _Profile("arabic", "ar", grade=12),
    _Profile("several_tests", "es", grade=9, english_learner=True),
    _Profile("html", "en", grade=6, html=True),
    _Profile("no_reports", "en", grade=1, english_learner=False),
    _Profile("not_enrolled", "en", grade=8, enrolled=False),
    _Profile("alternate", "en", grade=6, english_learner=False, alternate=True),
)
_RANDOM_PROFILE: Final = _Profile("random")


def _archetype_positions(n_students: int) -> dict[int, _Profile]:
    count = len(_ARCHETYPES)
    if n_students >= count:
        # Spread out, so the examples are not simply the first rows of the roster.
        return {k * n_students // count: profile for k, profile in enumerate(_ARCHETYPES)}
    return dict(enumerate(_ARCHETYPES[:n_students]))


@cache
def _tests_taken(grade: int, science_grade: int, alternate: bool) -> tuple[str, ...]:
    """The CAASPP tests of a spring (ELPAC aside) for a student in a grade."""
    science = grade in SCIENCE_GRADES or grade == science_grade
    if alternate:
        return ("CAAS",) if grade in SMARTER_BALANCED_GRADES or science else ()
    return (
        *(("CAASPP",) if grade in SMARTER_BALANCED_GRADES else ()),
        *(("CAST",) if science else ()),
    )


def _report_id(
    seed: int, ssid: str, test: str, year: int, language: str, fmt: str, subject: str | None
) -> str:
    key = f"{seed}|{ssid}|{test}|{year}|{language}|{fmt}|{subject or ''}"
    return hashlib.blake2b(key.encode(), digest_size=10).hexdigest()


def _new_ssid(rng: random.Random, taken: set[str], leading_zero: bool) -> str:
    while True:
        ssid = f"0{_below(rng, 10**9):09d}" if leading_zero else f"{_below(rng, 10**10):010d}"
        if ssid not in taken:
            taken.add(ssid)
            return ssid


def _person_name(rng: random.Random, heritage: str, *, adult: bool) -> tuple[str, str]:
    children, adults, last_names = _NAMES[heritage]
    return _pick(rng, adults if adult else children), _pick(rng, last_names)


@cache
def _mailbox_part(name: str) -> str:
    return "".join(char for char in ascii_fold(name).lower() if char.isalnum())


def _email(rng: random.Random, first: str, last: str) -> str:
    number = str(10 + _below(rng, 90)) if rng.random() < 0.5 else ""
    mailbox = f"{_mailbox_part(first.split()[0])}.{_mailbox_part(last)}{number}"
    return f"{mailbox}@{_pick(rng, _EMAIL_DOMAINS)}"


def _address(rng: random.Random) -> str:
    street = f"{100 + _below(rng, 9800)} {_pick(rng, _STREETS)}"
    if rng.random() < 0.15:
        street += f", Apt {1 + _below(rng, 39)}{_pick(rng, 'ABCD')}"
    town, zip_code = _pick(rng, _TOWNS)
    return f"{street}\n{town}, CA {zip_code}"


@cache
def _schools_teaching(grade: int) -> tuple[School, ...]:
    return tuple(s for s in SCHOOLS if s.lowest_grade <= grade <= s.highest_grade)


def _school_for(rng: random.Random, grade: int) -> School:
    return _pick(rng, _schools_teaching(grade))


def _make_student(
    rng: random.Random, seed: int, profile: _Profile, taken: set[str]
) -> SandboxStudent:
    language = profile.language or _weighted(rng, _LANGUAGE_SHARES)
    grade = profile.grade if profile.grade is not None else _below(rng, 13)
    ssid = _new_ssid(rng, taken, profile.leading_zero)

    heritage = _HERITAGE_OF_LANGUAGE.get(language) or _weighted(rng, _ENGLISH_HERITAGES)
    first, last = _person_name(rng, heritage, adult=False)
    guardian_first, guardian_last = _person_name(rng, heritage, adult=True)
    if rng.random() < 0.8:
        guardian_last = last
    # Families corresponding in English mostly have their names stored without accents.
    keep_accents = profile.keep_accents or rng.random() < (0.35 if language == ENGLISH else 0.7)
    if not keep_accents:
        first, last = ascii_fold(first), ascii_fold(last)
        guardian_first, guardian_last = ascii_fold(guardian_first), ascii_fold(guardian_last)
    guardian_name = f"{guardian_first} {guardian_last}"
    # Archetypes fix what they name; for everybody else chance decides.
    by_chance = profile is _RANDOM_PROFILE
    email = "" if by_chance and rng.random() < 0.03 else _email(rng, guardian_first, guardian_last)

    # Kindergarten in 2025–26 means turning five by September 1, 2025.
    born_from = date(CURRENT_SPRING - 7 - grade, 9, 2)
    birth_date = born_from + timedelta(days=_below(rng, 365))
    school = _school_for(rng, grade)

    learner_share = (0.55 if grade <= 5 else 0.35) if language != ENGLISH else 0.03
    english_learner = (
        profile.english_learner
        if profile.english_learner is not None
        else (not profile.alternate and rng.random() < learner_share)
    )
    alternate = profile.alternate or (by_chance and rng.random() < 0.012)
    if alternate:
        english_learner = False
    # The last spring with an ELPAC: this year for learners, earlier for the reclassified.
    last_elpac_year = YEARS[-1] if english_learner else None
    if not english_learner and language != ENGLISH and not alternate and rng.random() < 0.4:
        last_elpac_year = _pick(rng, YEARS[:-1])
    html = profile.html if profile.html is not None else rng.random() < 0.35
    enrolled = profile.enrolled and not (by_chance and rng.random() < 0.02)
    # Most students were here all three years; some arrived later.
    arrived_later = by_chance and rng.random() >= 0.88
    first_year = _pick(rng, YEARS[1:]) if arrived_later else YEARS[0]
    absent_share = 0.03 if by_chance else 0.0

    report_languages = (ENGLISH,) if language == ENGLISH else (ENGLISH, language)
    science_grade = high_school_science_grade(ssid)
    reports: list[SandboxReport] = []
    for year in reversed(YEARS):
        tested_grade = grade - (CURRENT_SPRING - year)
        if tested_grade < 0 or year < first_year:
            continue
        tests = _tests_taken(tested_grade, science_grade, alternate)
        if last_elpac_year is not None and year <= last_elpac_year:
            tests = (*tests, "ELPAC")
        grade_code = GRADES[tested_grade]
        for test in tests:
            if absent_share and rng.random() < absent_share:
                continue
            with_html = html and test == "CAASPP" and year >= FIRST_HTML_YEAR
            for report_language in report_languages:
                reports.append(
                    SandboxReport(
                        _report_id(seed, ssid, test, year, report_language, FORMAT_PDF, None),
                        test,
                        year,
                        grade_code,
                        report_language,
                        FORMAT_PDF,
                        None,
                    )
                )
                if with_html:
                    reports.extend(
                        SandboxReport(
                            _report_id(
                                seed, ssid, test, year, report_language, FORMAT_HTML, subject
                            ),
                            test,
                            year,
                            grade_code,
                            report_language,
                            FORMAT_HTML,
                            subject,
                        )
                        for subject in HTML_SUBJECTS
                    )

    return SandboxStudent(
        ssid=ssid,
        first_name=first,
        last_name=last,
        birth_date=birth_date,
        grade=GRADES[grade],
        school_code=school.code,
        school_name=school.name,
        lea_name=LEA_NAME,
        correspondence_language=language,
        guardian_name=guardian_name,
        guardian_email=email,
        address=_address(rng),
        enrolled=enrolled,
        reports=tuple(reports),
    )


# --- The cases a client must handle --------------------------------------------------------


def _has_pdf_in(student: SandboxStudent, language: str) -> bool:
    return any(r.format == FORMAT_PDF and r.language == language for r in student.reports)


def _is_bilingual(language: str) -> Callable[[SandboxStudent], bool]:
    def check(student: SandboxStudent) -> bool:
        return _has_pdf_in(student, language) and _has_pdf_in(student, ENGLISH)

    return check


_CASES: Final[dict[str, Callable[[SandboxStudent], bool]]] = {
    "english_only": lambda s: (
        bool(s.reports)
        and s.correspondence_language == ENGLISH
        and all(r.language == ENGLISH for r in s.reports)
    ),
    "spanish": _is_bilingual("es"),
    "vietnamese": _is_bilingual("vi"),
    "filipino": _is_bilingual("fil"),
    "korean": _is_bilingual("ko"),
    "chinese": _is_bilingual("zh-Hant"),
    "arabic": _is_bilingual("ar"),
    "several_tests": lambda s: len({r.test for r in s.reports}) >= 3,
    "html": lambda s: any(r.format == FORMAT_HTML for r in s.reports),
    "no_reports": lambda s: not s.reports,
    "alternate": lambda s: any(r.test == "CAAS" for r in s.reports),
    "leading_zero": lambda s: s.ssid.startswith("0") and bool(s.reports),
}
EXAMPLE_CASES: Final[tuple[str, ...]] = (*_CASES, "not_enrolled", "unknown")


@dataclass(frozen=True, eq=True)
class World:
    """A district's students and the reports ETS holds for them."""

    seed: int
    students: dict[str, SandboxStudent] = field(repr=False)  # by SSID, in roster order
    unknown_ssids: tuple[str, ...]  # valid-looking SSIDs nobody has (the API answers 404)
    # case -> SSID of the student placed for it; examples() prefers these
    _archetype_ssids: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    # report id -> the student holding it (a student has a few dozen reports at most)
    _student_of_report: dict[str, SandboxStudent] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, SandboxStudent] = {}
        for student in self.students.values():
            for report in student.reports:
                index[report.report_id] = student
        if len(index) != sum(len(s.reports) for s in self.students.values()):
            raise RuntimeError("two reports share an id")  # pragma: no cover - 80-bit ids
        object.__setattr__(self, "_student_of_report", index)

    @classmethod
    def build(cls, n_students: int = 200, seed: int = 2026) -> World:
        if n_students < 0:
            raise ValueError("n_students must not be negative")
        positions = _archetype_positions(n_students)
        rng = random.Random(f"{seed}/students")
        taken: set[str] = set()
        students: dict[str, SandboxStudent] = {}
        archetypes: dict[str, str] = {}
        # Nothing built here forms a cycle; without pauses to scan the growing heap a large
        # world builds in half the time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for index in range(n_students):
                profile = positions.get(index, _RANDOM_PROFILE)
                student = _make_student(rng, seed, profile, taken)
                students[student.ssid] = student
                if profile is not _RANDOM_PROFILE:
                    archetypes[profile.case] = student.ssid
        finally:
            if collecting:
                gc.enable()
        rng = random.Random(f"{seed}/unknown")
        unknown = tuple(
            _new_ssid(rng, taken, leading_zero=False)
            for _ in range(max(1, round(n_students * 0.02)))
        )
        return cls(seed=seed, students=students, unknown_ssids=unknown, _archetype_ssids=archetypes)

    def __repr__(self) -> str:
        return (
            f"World(seed={self.seed}, students={len(self.students)}, "
            f"reports={len(self._student_of_report)})"
        )

    @property
    def report_count(self) -> int:
        return len(self._student_of_report)

    def held_back(self, report_id: str, share: float) -> bool:
        """Whether a release schedule holding back ``share`` of the reports holds this one
        (the same answer for a seed and report every time)."""
        if share <= 0.0:
            return False
        return random.Random(f"{self.seed}/held-back/{report_id}").random() < share

    def find_report(self, report_id: str) -> tuple[SandboxStudent, SandboxReport] | None:
        student = self._student_of_report.get(report_id)
        if student is None:
            return None
        report = next(r for r in student.reports if r.report_id == report_id)
        return student, report

    def select(
        self, ssid: str, test: str | None, language: str | None, year: int | None
    ) -> list[SandboxReport]:
        """A student's reports matching every filter given (None matches all)."""
        student = self.students.get(ssid)
        if student is None:
            return []
        return [
            report
            for report in student.reports
            if (test is None or report.test == test)
            and (language is None or report.language == language)
            and (year is None or report.year == year)
        ]

    def examples(self) -> dict[str, str]:
        """One SSID per case a client must handle (see EXAMPLE_CASES).

        Every case is present from 20 students up; a smaller world leaves some out.
        """
        found: dict[str, str] = {}
        checks: dict[str, Callable[[SandboxStudent], bool]] = {
            **{case: _enrolled_and(check) for case, check in _CASES.items()},
            "not_enrolled": lambda s: not s.enrolled,
        }
        for case, check in checks.items():
            placed = self.students.get(self._archetype_ssids.get(case, ""))
            if placed is not None and check(placed):
                found[case] = placed.ssid
                continue
            ssid = next((s.ssid for s in self.students.values() if check(s)), None)
            if ssid is not None:
                found[case] = ssid
        if self.unknown_ssids:
            found["unknown"] = self.unknown_ssids[0]
        return found

    def roster_rows(self) -> list[dict[str, str]]:
        """The roster a student information system would export, unknown SSIDs mixed in."""
        unknown_after: dict[int, list[str]] = {}
        count = len(self.unknown_ssids)
        for k, ssid in enumerate(self.unknown_ssids):
            unknown_after.setdefault((k + 1) * len(self.students) // (count + 1), []).append(ssid)
        rows: list[dict[str, str]] = []
        for position, student in enumerate(self.students.values()):
            rows.extend(self._unknown_row(ssid) for ssid in unknown_after.get(position, ()))
            rows.append(_roster_row(student))
        rows.extend(self._unknown_row(ssid) for ssid in unknown_after.get(len(self.students), ()))
        return rows

    def _unknown_row(self, ssid: str) -> dict[str, str]:
        rng = random.Random(f"{self.seed}/unknown/{ssid}")
        heritage = _weighted(rng, _ENGLISH_HERITAGES)
        first, last = _person_name(rng, heritage, adult=False)
        guardian_first, _ = _person_name(rng, heritage, adult=True)
        grade = _below(rng, 13)
        school = _school_for(rng, grade)
        return {
            "SSID": ssid,
            "First Name": first,
            "Last Name": last,
            "Grade": GRADES[grade],
            "School Code": school.code,
            "School Name": school.name,
            "Correspondence Language": LANGUAGES[ENGLISH],
            "Guardian Name": f"{guardian_first} {last}",
            "Guardian Email": _email(rng, guardian_first, last),
        }

    def school_at(self, student: SandboxStudent, grade: str) -> School:
        """The school a student attended in a (past) grade: theirs if it teaches the grade."""
        number = grade_number(grade)
        current = next(s for s in SCHOOLS if s.code == student.school_code)
        if current.lowest_grade <= number <= current.highest_grade:
            return current
        options = _schools_teaching(number)
        return options[int(student.ssid) % len(options)]

    def scores(self, student: SandboxStudent, report: SandboxReport) -> ReportScores:
        """The results on a report, the same every time for the same world."""
        subjects = subjects_of(report.test, report.grade, student.ssid)
        if report.subject is not None:
            subjects = tuple(s for s in subjects if s == report.subject) or subjects
        earlier = sorted(
            {
                (r.year, r.grade)
                for r in student.reports
                if r.test == report.test and r.year <= report.year and r.format == FORMAT_PDF
            }
            | {(report.year, report.grade)}
        )
        results: list[SubjectScore] = []
        for subject in subjects:
            history = tuple(
                HistoryPoint(year, grade, score, scale.level_of(score), scale)
                for year, grade in earlier
                if subject in subjects_of(report.test, grade, student.ssid)
                for scale in (score_scale(report.test, subject, grade),)
                for score in (
                    self._scale_score(student.ssid, report.test, subject, year, scale)[0],
                )
            )
            results.append(self._subject_score(student.ssid, report, subject, history))
        return ReportScores(
            test=report.test,
            year=report.year,
            grade=report.grade,
            test_date=self._test_date(student.ssid, report.test, report.year),
            subjects=tuple(results),
        )

    def _ability(self, ssid: str, subject: str) -> float:
        rng = random.Random(f"{self.seed}/{ssid}/ability")
        general = rng.gauss(0.0, 1.0)
        by_subject = {
            name: 0.75 * general + 0.66 * rng.gauss(0.0, 1.0)
            for name in ("ELA", "Math", "Science", "ELPAC")
        }
        return by_subject.get(subject, general)

    def _scale_score(
        self, ssid: str, test: str, subject: str, year: int, scale: ScoreScale
    ) -> tuple[int, random.Random]:
        rng = random.Random(f"{self.seed}/{ssid}/{test}/{year}/{subject}")
        z = self._ability(ssid, subject) + rng.gauss(0.0, 0.35)
        if test == "ELPAC":
            z += 0.25 * (year - YEARS[0])  # learners grow in English year on year
        cuts = scale.cuts
        spread = (cuts[-1] - cuts[0]) / (1.6 if len(cuts) == 3 else 1.2)
        # Centred so that roughly the state's shares meet the standard.
        centre = cuts[1] - (0.4 if subject == "Math" else 0.12) * spread
        score = round(centre + z * spread)
        return max(scale.minimum, min(scale.maximum, score)), rng

    def _subject_score(
        self, ssid: str, report: SandboxReport, subject: str, history: tuple[HistoryPoint, ...]
    ) -> SubjectScore:
        scale = score_scale(report.test, subject, report.grade)
        score, rng = self._scale_score(ssid, report.test, subject, report.year, scale)
        position = (score - scale.cuts[0]) / max(1, scale.cuts[-1] - scale.cuts[0])
        if report.test == "CAAS":
            area_kind, margin = "", rng.randrange(5, 10)
        elif report.test == "ELPAC":
            area_kind, margin = "elpac", rng.randrange(15, 31)
        else:
            area_kind = "cast" if subject == "Science" else "sb"
            margin = rng.randrange(6, 12) if subject == "Science" else rng.randrange(18, 33)
        areas: tuple[AreaResult, ...] = ()
        if area_kind:
            areas = tuple(
                AreaResult(area, _descriptor(position + rng.gauss(0.0, 0.45)))
                for area in _AREAS[subject]
            )
        composites: tuple[CompositeScore, ...] = ()
        if report.test == "ELPAC":
            oral = max(scale.minimum, min(scale.maximum, score + round(rng.gauss(18, 22))))
            written = max(scale.minimum, min(scale.maximum, 2 * score - oral))
            composites = (
                CompositeScore("oral", oral, scale.level_of(oral), scale),
                CompositeScore("written", written, scale.level_of(written), scale),
            )
        return SubjectScore(
            subject=subject,
            score=score,
            margin=margin,
            level=scale.level_of(score),
            scale=scale,
            area_kind=area_kind,
            areas=areas,
            composites=composites,
            history=history,
        )

    def _test_date(self, ssid: str, test: str, year: int) -> date:
        rng = random.Random(f"{self.seed}/{ssid}/{test}/{year}/date")
        # ELPAC runs February to May; the CAASPP window is spring.
        start = date(year, 2, 3) if test == "ELPAC" else date(year, 4, 7)
        day = start + timedelta(days=rng.randrange(100 if test == "ELPAC" else 52))
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return day

    def iter_reports(self) -> Iterator[tuple[SandboxStudent, SandboxReport]]:
        """Every (student, report) pair, in roster order."""
        for student in self.students.values():
            for report in student.reports:
                yield student, report


def _enrolled_and(check: Callable[[SandboxStudent], bool]) -> Callable[[SandboxStudent], bool]:
    return lambda student: student.enrolled and check(student)


def _descriptor(position: float) -> int:
    return 1 if position < 0.15 else 3 if position > 0.85 else 2


def _roster_row(student: SandboxStudent) -> dict[str, str]:
    return {
        "SSID": student.ssid,
        "First Name": student.first_name,
        "Last Name": student.last_name,
        "Grade": student.grade,
        "School Code": student.school_code,
        "School Name": student.school_name,
        "Correspondence Language": LANGUAGES[student.correspondence_language],
        "Guardian Name": student.guardian_name,
        "Guardian Email": student.guardian_email,
    }
