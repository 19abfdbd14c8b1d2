"""The families' languages in the messages: the built-in templates of every report language,
the greeting, one or several reports, and `caaspp send --export-templates`."""

from __future__ import annotations

import stat
from email.headerregistry import Address
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from helpers import Family, SmtpServer, add_smtp_profile, write_send_inputs

from caaspp_cli.config.mail_profiles import make_smtp_profile
from caaspp_cli.roster.read import RosterRow
from caaspp_cli.send.compose import Attachment, Composer, message_text, password_shown_in
from caaspp_cli.send.run import SendOptions, send_reports
from caaspp_cli.send.templates import (
    BUILTIN_LANGUAGES,
    PLACEHOLDERS,
    TemplateSet,
    load_templates,
    template_values,
)
from caaspp_cli.vocabulary import LANGUAGES

SENDER = Address("Distrito Escolar Ñandú", addr_spec="reports@lincoln.example.org")
PASSWORD = "maple-river-7731-stone"
ONE = ["1000000001_CAASPP_2025_en.pdf"]
TWO = ["1000000001_CAASPP_2025_en.pdf", "1000000001_ELPAC_2025_en.pdf"]
THREE = [*TWO, "1000000001_CAST_2025_en.pdf"]


def row(guardian: str = "María Ñúñez") -> RosterRow:
    return RosterRow(
        line=2,
        raw_ssid="1000000001",
        ssid="1000000001",
        first_name="José",
        last_name="Ñúñez",
        display_name="José Ñúñez",
        school_name="Lincoln Elementary",
        grade="5",
        guardian_name=guardian,
    )


def rendered(chosen: TemplateSet, values: dict[str, str]) -> list[tuple[str, str, bool]]:
    """Every part of both messages, rendered: (name, text, is_html)."""
    parts: list[tuple[str, str, bool]] = []
    for kind, message in (("report", chosen.report), ("password", chosen.password)):
        parts.append((f"{kind}.subject", message.subject.render(values), False))
        parts.append((f"{kind}.txt", message.text.render(values), False))
        assert message.html is not None, f"{chosen.language} {kind} has no HTML part"
        parts.append((f"{kind}.html", message.html.render(values, as_html=True), True))
    return parts


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.html_attrs: dict[str, str | None] | None = None
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.html_attrs = dict(attrs)
        if tag not in ("meta", "br", "!doctype"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


# --- Every language ------------------------------------------------------------------------
def test_every_report_language_has_built_in_templates() -> None:
    assert set(BUILTIN_LANGUAGES) == set(LANGUAGES)
    templates = load_templates()
    for code in LANGUAGES:
        assert templates.for_language(code).language == code


@pytest.mark.parametrize("language", list(LANGUAGES))
@pytest.mark.parametrize("files", [ONE, TWO, THREE], ids=["one", "two", "three"])
@pytest.mark.parametrize("guardian", ["María Ñúñez", ""], ids=["guardian", "no-guardian"])
def test_every_language_renders_every_placeholder(
    language: str, files: list[str], guardian: str
) -> None:
    chosen = load_templates().for_language(language)
    values = template_values(row(guardian), files, SENDER, language)
    assert set(values) == set(PLACEHOLDERS) - {"password"}
    assert all(value for name, value in values.items() if name != "guardian_name")
    values["password"] = PASSWORD

    for name, text, is_html in rendered(chosen, values):
        assert "{" not in text and "}" not in text, f"{language} {name}: {text!r}"
        assert "##" not in text, f"{language} {name} kept its comment"
        assert "José" in text, f"{language} {name} does not name the student"
        if is_html:
            parser = _Html()
            parser.feed(text)
            parser.close()
            assert parser.open == [], f"{language} {name}: unclosed {parser.open}"
            assert parser.html_attrs is not None
            assert parser.html_attrs.get("lang") == language
            assert parser.html_attrs.get("dir") == ("rtl" if language == "ar" else None)
    password_parts = [text for name, text, _ in rendered(chosen, values) if name.startswith("pa")]
    assert PASSWORD in password_parts[1] and PASSWORD in password_parts[2]


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_the_greeting_names_the_guardian_when_the_roster_has_one(language: str) -> None:
    named = template_values(row("María Ñúñez"), ONE, SENDER, language)["greeting"]
    neutral = template_values(row(""), ONE, SENDER, language)["greeting"]

    assert "María Ñúñez" in named and "José" not in named
    assert "José Ñúñez" in neutral and "María" not in neutral


@pytest.mark.parametrize(
    ("language", "one", "several"),
    [
        (
            "en",
            "Attached is José's Student Score Report",
            "Attached are José's 2 Student Score Reports",
        ),
        ("es", "Adjunto encontrará el Informe", "Adjuntos encontrará los 2 Informes"),
        ("vi", "Đính kèm là Báo cáo", "Đính kèm là 2 Báo cáo"),
        ("fil", "Nakalakip ang Ulat", "Nakalakip ang 2 Ulat"),
        ("ko", "점수 보고서를 첨부", "점수 보고서 2부를 첨부"),
        ("zh-Hant", "中的學生成績報告", "中的 2 份學生成績報告"),
        ("ar", "مرفق طيه تقرير درجات", "مرفق طيه تقريرا درجات"),
    ],
)
def test_the_wording_follows_the_number_of_reports(language: str, one: str, several: str) -> None:
    single = template_values(row(), ONE, SENDER, language)
    double = template_values(row(), TWO, SENDER, language)

    assert one in single["reports_attached"] and several not in single["reports_attached"]
    assert several in double["reports_attached"]
    assert "CAASPP 2024–25, ELPAC 2024–25" in double["reports_attached"]


def test_english_and_arabic_plurals_past_two() -> None:
    en = template_values(row(), THREE, SENDER, "en")
    ar = template_values(row(), THREE, SENDER, "ar")

    assert en["reports_title"] == "Student Score Reports"
    assert "The PDF files are protected" in en["reports_protected"]
    assert "To open them" in en["reports_sent"]
    assert ar["reports_title"] == "تقارير درجات الطالب"
    assert template_values(row(), ONE, SENDER, "en")["reports_title"] == "Student Score Report"


@pytest.mark.parametrize("language", list(LANGUAGES))
@pytest.mark.parametrize("files", [ONE, TWO], ids=["one", "two"])
def test_the_password_is_never_in_the_report_message(language: str, files: list[str]) -> None:
    profile = make_smtp_profile(
        name="district",
        host="127.0.0.1",
        port=2525,
        security="none",
        from_address="Distrito Escolar Ñandú <reports@lincoln.example.org>",
    )
    composer = Composer(profile, load_templates())
    family = row()
    report = composer.report_message(
        family,
        ["maria@example.org"],
        [Attachment(name, b"%PDF-1.7") for name in files],
        composer.new_message_id(),
        language,
    )
    password = composer.password_message(
        family, ["maria@example.org"], files, PASSWORD, composer.new_message_id(), language
    )

    assert report["Content-Language"] == password["Content-Language"] == language
    assert not password_shown_in(report, PASSWORD, attachments=True)
    assert PASSWORD not in message_text(report)
    assert not password_shown_in(password, PASSWORD, attachments=False)
    assert PASSWORD in message_text(password)


def test_a_leading_comment_is_dropped_from_a_districts_own_template(tmp_path: Path) -> None:
    folder = tmp_path / "templates" / "ko"
    folder.mkdir(parents=True)
    builtin = load_templates().for_language("ko")
    for name in ("report.subject.txt", "report.txt", "password.subject.txt", "password.txt"):
        kind, part = name.split(".", 1)
        text = getattr(builtin, kind).subject if "subject" in part else getattr(builtin, kind).text
        (folder / name).write_text(
            "## reviewed by the district office\n## second comment line\n" + text.text,
            encoding="utf-8",
        )

    own = load_templates(tmp_path / "templates").for_language("ko")
    assert own.report.subject.text == builtin.report.subject.text
    assert own.password.text.text == builtin.password.text.text
    assert own.report.html is None  # the district wrote no HTML part


# --- A send in every language ---------------------------------------------------------------
FAMILIES = [
    Family(
        "1000000011",
        "Ana",
        "García",
        guardian="Rosa García",
        email="es@example.org",
        language="Español",
    ),
    Family(
        "1000000012",
        "Hoa",
        "Nguyễn",
        guardian="Nguyễn Văn An",
        email="vi@example.org",
        language="Tiếng Việt",
        tests=("CAASPP", "ELPAC"),
    ),
    Family(
        "1000000013", "Jose", "Santos", guardian="", email="fil@example.org", language="Tagalog"
    ),
    Family(
        "1000000014", "민준", "김", guardian="김서연", email="ko@example.org", language="Korean"
    ),
    Family(
        "1000000015",
        "美玲",
        "陳",
        guardian="陳志明",
        email="zh@example.org",
        language="Chinese (Traditional)",
        tests=("CAASPP", "ELPAC", "CAST"),
    ),
    Family(
        "1000000016",
        "Omar",
        "Haddad",
        guardian="Layla Haddad",
        email="ar@example.org",
        language="ar",
    ),
    Family("1000000017", "Sam", "Lee", guardian="Pat Lee", email="en@example.org", language=""),
    Family("1000000018", "Kai", "Doe", guardian="", email="xx@example.org", language="Klingon"),
]
EXPECTED = {
    "es@example.org": "es",
    "vi@example.org": "vi",
    "fil@example.org": "fil",
    "ko@example.org": "ko",
    "zh@example.org": "zh-Hant",
    "ar@example.org": "ar",
    "en@example.org": "en",
    "xx@example.org": "en",
}


def _decoded(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_a_send_gives_each_family_its_messages_in_its_language(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    add_smtp_profile(smtp_server)
    inputs = write_send_inputs(tmp_path / "case", FAMILIES)
    summary = send_reports(
        SendOptions(
            roster=inputs.roster, pdfs=inputs.pdfs, passwords=inputs.passwords, smtp="district"
        ),
        sleep=lambda _seconds: None,
    )
    assert {r.outcome.value for r in summary.rows} == {"sent"}
    templates = load_templates()

    for family in FAMILIES:
        language = EXPECTED[family.email]
        received = [r.message for r in smtp_server.received if family.email in r.rcpt_tos]
        assert len(received) == 2
        report, password = received
        student = RosterRow(
            line=0,
            raw_ssid=family.ssid,
            ssid=family.ssid,
            first_name=family.first,
            last_name=family.last,
            display_name=f"{family.first} {family.last}",
            school_name="Lincoln Elementary",
            guardian_name=family.guardian,
        )
        values: dict[str, Any] = template_values(student, family.files(), SENDER, language)
        values["password"] = family.password
        chosen = templates.for_language(language)
        for message, template in ((report, chosen.report), (password, chosen.password)):
            assert message["Content-Language"] == language
            assert str(message["Subject"]) == template.subject.render(values)
            assert _decoded(message, "plain") == template.text.render(values)
            assert template.html is not None
            assert _decoded(message, "html") == template.html.render(values, as_html=True)
        assert family.password not in message_text(report)
        assert family.password in _decoded(password, "plain")
        assert len(list(report.iter_attachments())) == len(family.tests)


# --- Export -----------------------------------------------------------------------------------
def _tree(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.posix
def test_export_templates_writes_every_language_owner_only_and_keeps_what_is_there(
    cli: Any, tmp_path: Path
) -> None:
    target = tmp_path / "our-templates"

    first = cli("send", "--export-templates", str(target))

    assert first.exit_code == 0, first.output
    files = sorted(p for p in target.rglob("*") if p.is_file())
    assert len(files) == 6 * len(LANGUAGES)
    assert {p.parent.name for p in files} == set(LANGUAGES)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
        assert first_line.startswith("## ")
        if path.parent.name == "en":
            assert "reference" in first_line
        else:
            assert (
                "review" in first_line
                and LANGUAGES[path.parent.name].split()[-1].strip("()") in first_line
            )
    for folder in {p.parent for p in files}:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # The export loads as the district's own templates, the same as the built-ins.
    own, builtin = load_templates(target), load_templates()
    for code in LANGUAGES:
        assert own.user[code].report.text.text == builtin.builtin[code].report.text.text
        own_html, builtin_html = own.user[code].password.html, builtin.builtin[code].password.html
        assert own_html is not None and builtin_html is not None
        assert own_html.text == builtin_html.text

    # A district edits one; a second export without --force changes nothing.
    edited = target / "es" / "report.txt"
    edited.write_text("{greeting}\n\nNuestro texto.\n", encoding="utf-8")
    before = _tree(target)
    second = cli("send", "--export-templates", str(target))
    assert second.exit_code == 0, second.output
    assert _tree(target) == before
    assert "left as they were" in second.output and "--force" in second.output

    forced = cli("send", "--force", "--export-templates", str(target))
    assert forced.exit_code == 0, forced.output
    assert "Nuestro texto" not in edited.read_text(encoding="utf-8")
    assert stat.S_IMODE(edited.stat().st_mode) == 0o600


def test_send_still_requires_its_options_without_export_templates(cli: Any) -> None:
    result = cli("send", "--force")

    assert result.exit_code == 2
    assert "Missing option '--roster'" in result.output
