"""The sandbox's synthetic world: deterministic, covering every case a client must handle."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from caaspp_cli.sandbox.world import (
    EXAMPLE_CASES,
    GRADES,
    SCHOOLS,
    YEARS,
    SandboxStudent,
    World,
    grade_number,
)
from caaspp_cli.vocabulary import LANGUAGES, TEST_CODES, is_valid_ssid

ROSTER_COLUMNS = [
    "SSID",
    "First Name",
    "Last Name",
    "Grade",
    "School Code",
    "School Name",
    "Correspondence Language",
    "Guardian Name",
    "Guardian Email",
]
LANGUAGE_CASES = {
    "spanish": "es",
    "vietnamese": "vi",
    "filipino": "fil",
    "korean": "ko",
    "chinese": "zh-Hant",
    "arabic": "ar",
}


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(200)


def _pdf_languages(student: SandboxStudent) -> set[str]:
    return {r.language for r in student.reports if r.format == "pdf"}


def test_two_builds_with_the_same_seed_are_equal() -> None:
    first, second = World.build(300, seed=7), World.build(300, seed=7)

    assert first == second
    assert list(first.students) == list(second.students)
    assert first.unknown_ssids == second.unknown_ssids
    assert first.roster_rows() == second.roster_rows()
    assert first.examples() == second.examples()


def test_another_seed_gives_another_world() -> None:
    assert set(World.build(50, seed=1).students) != set(World.build(50, seed=2).students)


@pytest.mark.parametrize("size", [20, 200])
def test_examples_name_a_student_for_every_case(size: int) -> None:
    examples = World.build(size).examples()

    assert set(EXAMPLE_CASES) <= set(examples)


@pytest.mark.parametrize("size", [20, 200, 1000])
def test_each_example_student_has_its_property(size: int) -> None:
    world = World.build(size)
    examples = world.examples()
    student = world.students.__getitem__

    english = student(examples["english_only"])
    assert english.reports and english.enrolled
    assert {r.language for r in english.reports} == {"en"}
    for case, language in LANGUAGE_CASES.items():
        bilingual = student(examples[case])
        assert bilingual.enrolled
        assert bilingual.correspondence_language == language
        assert {"en", language} <= _pdf_languages(bilingual), case
    assert len({r.test for r in student(examples["several_tests"]).reports}) >= 3
    html = student(examples["html"])
    assert any(r.format == "html" for r in html.reports)
    assert student(examples["no_reports"]).reports == ()
    assert student(examples["no_reports"]).enrolled
    assert not student(examples["not_enrolled"]).enrolled
    assert any(r.test == "CAAS" for r in student(examples["alternate"]).reports)
    assert examples["leading_zero"].startswith("0")
    assert examples["unknown"] in world.unknown_ssids
    assert examples["unknown"] not in world.students


def test_unknown_ssids_look_valid_but_belong_to_nobody(world: World) -> None:
    assert len(world.unknown_ssids) == 4  # 2% of 200
    assert len(set(world.unknown_ssids)) == len(world.unknown_ssids)
    for ssid in world.unknown_ssids:
        assert is_valid_ssid(ssid)
        assert ssid not in world.students
        assert world.select(ssid, None, None, None) == []
    assert len(World.build(10).unknown_ssids) == 1


def test_students_have_unique_ten_digit_ssids_some_with_a_leading_zero() -> None:
    world = World.build(1000)

    assert all(is_valid_ssid(ssid) for ssid in world.students)
    assert all(student.ssid == ssid for ssid, student in world.students.items())
    assert 40 < sum(ssid.startswith("0") for ssid in world.students) < 200


def test_students_are_plausible_district_records(world: World) -> None:
    school_codes = {school.code for school in SCHOOLS}
    for student in world.students.values():
        assert student.grade in GRADES
        assert student.school_code in school_codes
        assert re.fullmatch(r"[0-9]{7}", student.school_code)
        assert student.correspondence_language in LANGUAGES
        assert student.lea_name == "Sandbox Unified School District"
        age_in_fall_2025 = 2025 - student.birth_date.year
        assert 4 <= age_in_fall_2025 - grade_number(student.grade) <= 6
        assert "\n" in student.address
        if student.guardian_email:
            domain = student.guardian_email.rsplit("@", 1)[1]
            assert domain.split(".")[-2:] in (
                ["example", "org"],
                ["example", "com"],
                ["example", "net"],
            )


def test_names_include_accents_from_californias_languages() -> None:
    names = " ".join(s.full_name for s in World.build(500).students.values())

    assert re.search("[áéíóúñ]", names)  # Spanish
    assert re.search("[ễệịộứừữđĐạảấầ]", names)  # Vietnamese


def test_reports_follow_the_grades_each_test_is_given_in() -> None:
    world = World.build(2000)
    for student in world.students.values():
        for report in student.reports:
            grade = grade_number(report.grade)
            assert report.test in TEST_CODES
            assert report.year in YEARS
            assert report.language in ("en", student.correspondence_language)
            if report.test == "CAASPP":
                assert grade in {3, 4, 5, 6, 7, 8, 11}
            if report.test == "CAST":
                assert grade in {5, 8, 10, 11, 12}
            if report.format == "html":
                assert report.test == "CAASPP" and report.subject in ("ELA", "Math")
            else:
                assert report.format == "pdf" and report.subject is None
        # A grade each year: grade of the report = current grade minus the years since.
        for report in student.reports:
            assert grade_number(student.grade) - grade_number(report.grade) == 2026 - report.year


def test_spanish_is_the_most_common_second_language() -> None:
    shares = Counter(s.correspondence_language for s in World.build(3000).students.values())

    assert shares.most_common(2)[0][0] == "en"
    assert shares.most_common(2)[1][0] == "es"
    assert set(shares) == set(LANGUAGES)


def test_most_tested_students_have_three_years_of_history() -> None:
    world = World.build(2000)
    # Students now in grades 7–9 tested in CAASPP grades all three springs.
    cohort = [
        s
        for s in world.students.values()
        if grade_number(s.grade) in (7, 8, 9)
        and s.enrolled
        and any(r.test == "CAASPP" for r in s.reports)
    ]
    three_years = [
        s for s in cohort if {r.year for r in s.reports if r.test == "CAASPP"} == set(YEARS)
    ]

    assert len(three_years) > 0.75 * len(cohort)


def test_about_one_student_in_fifty_is_not_enrolled() -> None:
    students = World.build(5000).students.values()

    assert 50 < sum(not s.enrolled for s in students) < 160


def test_select_applies_every_filter(world: World) -> None:
    ssid = world.examples()["several_tests"]
    everything = world.select(ssid, None, None, None)

    assert everything == list(world.students[ssid].reports)
    for report in everything:
        assert report in world.select(ssid, report.test, report.language, report.year)
    elpac = world.select(ssid, "ELPAC", None, None)
    assert elpac and all(r.test == "ELPAC" for r in elpac)
    latest_english = world.select(ssid, None, "en", 2025)
    assert latest_english and all(r.language == "en" and r.year == 2025 for r in latest_english)
    assert world.select(ssid, "CST", None, None) == []
    assert world.select(ssid, None, None, 1999) == []


def test_find_report_returns_the_student_and_the_report(world: World) -> None:
    ids = [r.report_id for s in world.students.values() for r in s.reports]

    assert len(ids) == len(set(ids)) == world.report_count
    assert all(re.fullmatch(r"[0-9a-f]{20}", report_id) for report_id in ids)
    for student in list(world.students.values())[:40]:
        for report in student.reports:
            assert world.find_report(report.report_id) == (student, report)
    assert world.find_report("0" * 20) is None


def test_roster_has_the_sis_columns_and_the_unknown_ssids(world: World) -> None:
    rows = world.roster_rows()

    assert len(rows) == len(world.students) + len(world.unknown_ssids)
    assert all(list(row) == ROSTER_COLUMNS for row in rows)
    assert all(isinstance(value, str) for row in rows for value in row.values())
    ssids = [row["SSID"] for row in rows]
    assert set(ssids) == set(world.students) | set(world.unknown_ssids)
    known = [ssid for ssid in ssids if ssid in world.students]
    assert known == list(world.students)  # the world's order, unknowns mixed in
    spanish = world.students[world.examples()["spanish"]]
    row = next(r for r in rows if r["SSID"] == spanish.ssid)
    assert row["Correspondence Language"] == "Spanish"
    assert row["First Name"] == spanish.first_name
    assert row["Grade"] == spanish.grade
    unknown_row = next(r for r in rows if r["SSID"] == world.unknown_ssids[0])
    assert unknown_row["School Code"] in {school.code for school in SCHOOLS}


def test_scores_are_deterministic_and_on_their_scales(world: World) -> None:
    again = World.build(200)
    for student in list(world.students.values())[:60]:
        for report in student.reports:
            scores = world.scores(student, report)
            assert scores == again.scores(again.students[student.ssid], report)
            assert scores.year == report.year and scores.test_date.year == report.year
            assert scores.test_date.weekday() < 5
            assert scores.subjects
            for subject in scores.subjects:
                scale = subject.scale
                assert scale.minimum <= subject.score <= scale.maximum
                assert subject.level == scale.level_of(subject.score)
                assert subject.history[-1].year == report.year
                assert subject.history[-1].score == subject.score
                assert [p.year for p in subject.history] == sorted(p.year for p in subject.history)
                if report.format == "html":
                    assert subject.subject == report.subject


def test_smarter_balanced_scores_lie_between_2000_and_3000(world: World) -> None:
    for student in world.students.values():
        for report in student.reports:
            if report.test == "CAASPP":
                for subject in world.scores(student, report).subjects:
                    assert 2000 < subject.score < 3000
                    assert len(subject.scale.cuts) == 3


@pytest.mark.slow
def test_a_world_of_100000_students_builds() -> None:
    world = World.build(100_000)

    assert len(world.students) == 100_000
    assert len(world.unknown_ssids) == 2000
    assert set(EXAMPLE_CASES) <= set(world.examples())
    assert world.report_count > 300_000
