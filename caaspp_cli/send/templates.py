"""The message templates of ``caaspp send``, and the values of their placeholders.

Built-in templates in every report language (``caaspp_cli/templates/<language>/``), chosen
by the roster's correspondence language, English otherwise; ``--templates DIR`` puts the
user's own first (``DIR/<language>/``, same file names). Every template is parsed before
anything is sent: an unknown placeholder, ``{password}`` anywhere but the password message's
body, or a password body without it, is an error. Leading lines that start with ``##`` are
comments, dropped when a template is read (the built-ins say there which text is the
reference and which translations need a review). :func:`template_values` gives the
placeholders' values (but the password) for a student and their reports, with the
family-dependent phrases of :mod:`caaspp_cli.send.phrases`; :func:`export_templates` writes
the built-ins out as a starting point for a district's own.
"""

from __future__ import annotations

import html
import re
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Final

from caaspp_cli.artifacts import REPORT_NAME
from caaspp_cli.errors import BadInputError
from caaspp_cli.fsutil import ensure_private_dir, write_private_bytes
from caaspp_cli.roster.read import RosterRow
from caaspp_cli.send.ledger import PASSWORD, REPORT
from caaspp_cli.send.phrases import PHRASE_PLACEHOLDERS, phrase_values
from caaspp_cli.vocabulary import LANGUAGES, TEST_NAMES, normalize_language

DEFAULT_LANGUAGE: Final = "en"
BUILTIN_LANGUAGES: Final = tuple(LANGUAGES)  # en, es, vi, fil, ko, zh-Hant, ar
COMMENT_PREFIX: Final = "##"

PLACEHOLDERS: Final[Mapping[str, str]] = {
    "student_name": "the student's name as in the roster",
    "student_first_name": "the student's first name (the whole name if the roster has one)",
    "guardian_name": "the guardian's name, if the roster has one",
    "school": "the school's name, if the roster has one",
    "grade": "the student's grade, if the roster has one",
    "test": "the test(s) of the attached reports, e.g. CAASPP",
    "test_name": "their full names, e.g. California Assessment of Student Performance ...",
    "year": "the spring year(s) of the reports, e.g. 2025",
    "school_year": "the school year(s), e.g. 2024–25",
    "reports": "one phrase listing the reports, e.g. CAASPP 2024–25, ELPAC 2024–25",
    "report_count": "how many reports are attached",
    "sender_name": "the name in the From address (the address if it has none)",
    **PHRASE_PLACEHOLDERS,
    "password": "the password (the password message's body only)",
}
PASSWORD_FIELD: Final = "password"  # noqa: S105 - the name of a placeholder
_FILES: Final = {
    "report.subject.txt": (REPORT, "subject"),
    "report.txt": (REPORT, "text"),
    "report.html": (REPORT, "html"),
    "password.subject.txt": (PASSWORD, "subject"),
    "password.txt": (PASSWORD, "text"),
    "password.html": (PASSWORD, "html"),
}
_REQUIRED_FILES: Final = (
    "report.subject.txt",
    "report.txt",
    "password.subject.txt",
    "password.txt",
)
_BRACE_HINT: Final = "write {{ and }} for a literal brace."
_UTF8_HINT: Final = "save it again as UTF-8 text (in Notepad: Save As, Encoding UTF-8)."
_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Template:
    """One template text, checked: its placeholders are known."""

    text: str
    source: str
    fields: frozenset[str]

    @classmethod
    def parse(cls, text: str, source: str, *, allowed: frozenset[str]) -> Template:
        fields: set[str] = set()
        try:
            for _literal, name, spec, conversion in string.Formatter().parse(text):
                if name is None:
                    continue
                if name not in allowed or spec or conversion:
                    shown = (
                        "{"
                        + name
                        + (f"!{conversion}" if conversion else "")
                        + (f":{spec}" if spec else "")
                        + "}"
                    )
                    if name == PASSWORD_FIELD:
                        raise BadInputError(
                            f"{source}: {{password}} may appear only in the body of the "
                            "password message (password.txt, password.html).",
                            hint="the report and its password must travel in separate emails, "
                            "and a subject is shown in notifications and logs.",
                        )
                    raise BadInputError(
                        f"{source}: unknown placeholder {shown}.",
                        hint="the placeholders are "
                        + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                        + "; "
                        + _BRACE_HINT,
                    )
                fields.add(name)
        except ValueError as exc:
            raise BadInputError(f"{source}: {exc}.", hint=_BRACE_HINT) from None
        return cls(text, source, frozenset(fields))

    def render(self, values: Mapping[str, str], *, as_html: bool = False) -> str:
        escape: Callable[[str], str] = html.escape if as_html else one_line
        return self.text.format_map({name: escape(values[name]) for name in self.fields})


@dataclass(frozen=True)
class MessageTemplate:
    """Subject and bodies of one message (the HTML body is optional)."""

    subject: Template
    text: Template
    html: Template | None


@dataclass(frozen=True)
class TemplateSet:
    """The two messages in one language."""

    language: str
    source: str
    report: MessageTemplate
    password: MessageTemplate


@dataclass(frozen=True)
class Templates:
    """The user's template sets first, then the built-in ones, by language."""

    user: Mapping[str, TemplateSet]
    builtin: Mapping[str, TemplateSet]

    def for_language(self, language: str | None) -> TemplateSet:
        """The set for a correspondence language, else the English one."""
        for code in (language, DEFAULT_LANGUAGE):
            if code is None:
                continue
            found = self.user.get(code) or self.builtin.get(code)
            if found is not None:
                return found
        raise AssertionError("the built-in English templates are missing")


def load_templates(folder: Path | None = None) -> Templates:
    """The built-in templates, and the user's from ``folder`` (``folder/<language>/``).

    Every template is parsed now: an error in any of them is a BadInputError before
    anything is sent.
    """
    root = resources.files("caaspp_cli").joinpath("templates")
    builtin = {
        code: _load_set(root.joinpath(code), code, f"built-in {code}") for code in BUILTIN_LANGUAGES
    }
    user: dict[str, TemplateSet] = {}
    if folder is not None:
        if not folder.is_dir():
            raise BadInputError(f"the templates folder {folder} does not exist.")
        for entry in sorted(folder.iterdir()):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            code = normalize_language(entry.name)
            if code is None:
                raise BadInputError(
                    f"the templates folder {entry} is not named after a language.",
                    hint="name each folder by its language code: " + ", ".join(LANGUAGES) + ".",
                )
            user[code] = _load_set(entry, code, str(entry))
        if not user:
            raise BadInputError(
                f"the templates folder {folder} has no language folder in it.",
                hint="put the templates in DIR/en/, DIR/es/, ...: report.subject.txt, "
                "report.txt, report.html, password.subject.txt, password.txt, password.html.",
            )
    return Templates(user, builtin)


def _load_set(folder: Traversable, language: str, source: str) -> TemplateSet:
    texts: dict[str, str] = {}
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith(".") or not name.endswith((".txt", ".html")):
            continue
        if name not in _FILES:
            raise BadInputError(
                f"{source}/{name} is not a template caaspp knows.",
                hint="the templates are " + ", ".join(_FILES) + ".",
            )
        try:
            texts[name] = strip_comments(entry.read_bytes().decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise BadInputError(f"{source}/{name} is not UTF-8 text.", hint=_UTF8_HINT) from None
        except OSError as exc:
            raise BadInputError(f"{source}/{name} cannot be read: {exc}.") from None
    for name, text in texts.items():
        # UTF-16 without a byte-order mark decodes as UTF-8 with a NUL after every letter.
        if _CONTROL_CHARACTERS.search(text):
            raise BadInputError(
                f"{source}/{name} holds control characters: it is not plain "
                "UTF-8 text (perhaps UTF-16).",
                hint=_UTF8_HINT,
            )
    missing = [name for name in _REQUIRED_FILES if name not in texts]
    if missing:
        raise BadInputError(
            f"the templates in {source} lack {', '.join(missing)}.",
            hint="each language folder needs report.subject.txt, report.txt, "
            "password.subject.txt and password.txt (the .html bodies are optional).",
        )
    common = frozenset(PLACEHOLDERS) - {PASSWORD_FIELD}
    parsed: dict[str, Template] = {}
    for name, text in texts.items():
        kind, part = _FILES[name]
        body_of_password = kind == PASSWORD and part != "subject"
        if part == "subject":
            text = text.strip()
            if "\n" in text or "\r" in text:
                raise BadInputError(f"{source}/{name}: a subject must be one line.")
        template = Template.parse(
            text,
            f"{source}/{name}",
            allowed=common | {PASSWORD_FIELD} if body_of_password else common,
        )
        if body_of_password and PASSWORD_FIELD not in template.fields:
            raise BadInputError(
                f"{source}/{name} has no {{password}}: the family would never get it.",
                hint="put {password} where the password should appear.",
            )
        parsed[name] = template

    def message(kind: str) -> MessageTemplate:
        return MessageTemplate(
            parsed[f"{kind}.subject.txt"], parsed[f"{kind}.txt"], parsed.get(f"{kind}.html")
        )

    return TemplateSet(language, source, message(REPORT), message(PASSWORD))


def strip_comments(text: str) -> str:
    """``text`` without its leading comment lines (those that start with ``##``)."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].lstrip().startswith(COMMENT_PREFIX):
        lines.pop(0)
    return "".join(lines)


def one_line(value: str) -> str:
    """A value as plain text on one line: control characters (line breaks) become spaces."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in value)


def school_year(spring: str) -> str:
    """'2025' -> '2024–25'."""
    year = int(spring)
    return f"{year - 1}–{year % 100:02d}"


def template_values(
    row: RosterRow,
    files: Sequence[str],
    sender: Address,
    language: str = DEFAULT_LANGUAGE,
    *,
    later: bool = False,
) -> dict[str, str]:
    """The placeholder values (but the password) for a student and their reports' files;
    the phrases in ``language``, that of the templates the family gets (``later``: a report
    message after the family was sent reports before, see :mod:`caaspp_cli.send.phrases`)."""
    tests: list[str] = []
    years: list[str] = []
    phrases: list[str] = []
    for name in files:
        match = REPORT_NAME.match(PurePosixPath(name).name)
        if match is None:
            phrases.append(PurePosixPath(name).name)
            continue
        test, year = match.group(2), match.group(3)
        tests += [test] if test not in tests else []
        years += [year] if year not in years else []
        phrase = f"{test} {school_year(year)}"
        phrases += [phrase] if phrase not in phrases else []
    name = row.display_name
    first = row.first_name or name
    return {
        **phrase_values(
            language,
            guardian=row.guardian_name,
            name=name,
            first=first,
            reports=", ".join(phrases),
            count=len(files),
            later=later,
        ),
        "student_name": name,
        "student_first_name": first,
        "guardian_name": row.guardian_name,
        "school": row.school_name,
        "grade": row.grade,
        "test": ", ".join(tests),
        "test_name": "; ".join(TEST_NAMES.get(t.upper(), t) for t in tests),
        "year": ", ".join(years),
        "school_year": ", ".join(school_year(y) for y in years),
        "reports": ", ".join(phrases),
        "report_count": str(len(files)),
        "sender_name": sender.display_name or sender.addr_spec,
    }


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_templates` did: the files it wrote and those it left as they were."""

    written: tuple[Path, ...]
    kept: tuple[Path, ...]


def export_templates(folder: Path, *, force: bool = False) -> ExportResult:
    """Write the built-in templates, every language, into ``folder/<language>/`` (owner-only),
    comments included, as a starting point for the district's own.

    An existing file is kept as it is (and listed in :attr:`ExportResult.kept`) unless
    ``force``: a district's edited templates are not lost to a second export.
    """
    if folder.exists() and not folder.is_dir():
        raise BadInputError(f"{folder} is a file, not a folder.")
    root = resources.files("caaspp_cli").joinpath("templates")
    written: list[Path] = []
    kept: list[Path] = []
    for code in BUILTIN_LANGUAGES:
        source = root.joinpath(code)
        target_dir = folder / code
        for name in _FILES:
            entry = source.joinpath(name)
            if not entry.is_file():
                continue
            target = target_dir / name
            if (target.exists() or target.is_symlink()) and not force:
                kept.append(target)
                continue
            ensure_private_dir(target_dir)
            try:
                write_private_bytes(target, entry.read_bytes())
            except OSError as exc:
                raise BadInputError(f"cannot write {target}: {exc.strerror or exc}.") from None
            written.append(target)
    return ExportResult(tuple(written), tuple(kept))
