"""Composing and sending messages: everything ``caaspp send`` does.

Two messages per family
-----------------------
For each roster row with a guardian email and protected reports, caaspp sends two
messages to all of the row's addresses at once (one message, every guardian in To):

1. the *report message*: the student's protected PDF(s) as attachments, saying that the
   password follows in a separate email;
2. the *password message*: the password, and no attachment. It is sent only once the
   report message is recorded as accepted, and to the addresses that accepted it.

No message carries both: the password is a placeholder of the password message's body
only, and before anything goes to a family both its messages are composed and checked: a
password that can be read elsewhere (a password column holding the student's first name,
which the greeting repeats) fails that row, and the run goes on. Every PDF is checked
before it is attached: a file that opens without a password, or that the student's
password does not open, is refused.

Recipients are the addresses of the roster's cell as :mod:`caaspp_cli.addresses` reads it:
never text of a name or a comment; a cell that reads two ways sends nothing.

Templates
---------
Built-in English and Spanish templates (``caaspp_cli/templates/<language>/``), chosen by the
roster's correspondence language, English otherwise; ``--templates DIR`` puts the user's own
first (``DIR/<language>/``, same file names). Every template is parsed before anything is
sent: an unknown placeholder, ``{password}`` anywhere but the password message's body, or
a password body without it, is an error.

Delivery, and never a second copy
---------------------------------
Messages go one at a time through one SMTP session (stdlib ``smtplib``), at most ``rate``
a minute. A temporary refusal (4xx) or a lost connection is retried with a growing delay; a
permanent one (5xx) is recorded and the run goes on. The send ledger (see
:class:`caaspp_cli.ledger.SendLedger`) is written around each transaction: *sending* once the
server has said 354 and before the body goes, *accepted* the moment it answers 250. A message
whose body went out without an answer being recorded (the connection lost while waiting, the
process killed) is *uncertain*: it is not sent again unless asked (``resend_uncertain``), and
the report lists it with its Message-ID, to look up in the mail server's log. A re-sent
message keeps its Message-ID, so a mail client that got both shows one.
"""

from __future__ import annotations

import html
import logging
import re
import smtplib
import socket
import ssl
import string
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, localtime, make_msgid
from enum import StrEnum
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Final

from caaspp_cli.addresses import is_address
from caaspp_cli.artifacts import (
    OUTBOX_MESSAGE_NAME,
    REPORT_NAME,
    PasswordSheet,
    outbox_message_name,
    report_ssids_in,
    unneutralize_cell,
    write_send_report,
)
from caaspp_cli.config.mail_profiles import SmtpProfile, get_smtp_profile, smtp_password
from caaspp_cli.errors import (
    BadInputError,
    CaasppError,
    CredentialsError,
    ExitCode,
)
from caaspp_cli.ets.contract import LANGUAGES, TEST_NAMES, normalize_language
from caaspp_cli.fsutil import prepare_output_dir, write_private_bytes
from caaspp_cli.ledger import PASSWORD, REPORT, MessageRecord, SendLedger
from caaspp_cli.protect.verify import protection_problem as protected_report_problem
from caaspp_cli.roster.read import RosterRow, RowProblem, open_roster

log = logging.getLogger(__name__)

DEFAULT_RATE: Final = 30  # messages a minute: Exchange Online's limit for one mailbox
RETRY_DELAYS: Final[tuple[float, ...]] = (10.0, 30.0, 90.0)  # then the message has failed
SMTP_TIMEOUT: Final = 60.0
IDLE_CHECK_SECONDS: Final = 30.0  # a session idle this long is checked (NOOP) before use
DEFAULT_OUTBOX: Final = Path("caaspp-outbox")
DEFAULT_LANGUAGE: Final = "en"
BUILTIN_LANGUAGES: Final = ("en", "es")


# --- Errors ------------------------------------------------------------------------------------
class MailError(CaasppError):
    """The mail server could not be used; what was done is in the send report."""

    exit_code = ExitCode.FAILED


class MailConnectionError(MailError):
    """The mail server could not be reached, or kept dropping the connection."""


class MailTLSError(MailConnectionError):
    """TLS failed: the server's certificate is not trusted, or it offers no STARTTLS."""


class MailAuthenticationError(CredentialsError):
    """The mail server refused the user name and password."""


# --- Templates ---------------------------------------------------------------------------------
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
    "password": "the password (the password message's body only)",
}
_PASSWORD_FIELD: Final = "password"  # noqa: S105 - the name of a placeholder
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
                    if name == _PASSWORD_FIELD:
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
        escape: Callable[[str], str] = html.escape if as_html else _one_line
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
            texts[name] = entry.read_bytes().decode("utf-8-sig")
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
    common = frozenset(PLACEHOLDERS) - {_PASSWORD_FIELD}
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
            allowed=common | {_PASSWORD_FIELD} if body_of_password else common,
        )
        if body_of_password and _PASSWORD_FIELD not in template.fields:
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


def _one_line(value: str) -> str:
    """A value as plain text on one line: control characters (line breaks) become spaces."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in value)


# --- Composition -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes = field(repr=False)


def school_year(spring: str) -> str:
    """'2025' -> '2024–25'."""
    year = int(spring)
    return f"{year - 1}–{year % 100:02d}"


def template_values(row: RosterRow, files: Sequence[str], sender: Address) -> dict[str, str]:
    """The placeholder values (but the password) for a student and their reports' files."""
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
    return {
        "student_name": name,
        "student_first_name": row.first_name or name,
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


class Composer:
    """Builds the two messages of a family from the templates and the SMTP profile."""

    def __init__(self, profile: SmtpProfile, templates: Templates) -> None:
        self.profile = profile
        self.templates = templates
        self.sender = profile.sender

    def new_message_id(self) -> str:
        return make_msgid(domain=self.sender.domain)

    def report_message(
        self,
        row: RosterRow,
        recipients: Sequence[str],
        attachments: Sequence[Attachment],
        message_id: str,
        language: str | None,
    ) -> EmailMessage:
        values = template_values(row, [a.name for a in attachments], self.sender)
        chosen = self.templates.for_language(language)
        message = self._message(chosen, chosen.report, values, row, recipients, message_id)
        for attachment in attachments:
            message.add_attachment(
                attachment.data,
                maintype="application",
                subtype="pdf",
                filename=attachment.name,
            )
        message["Content-Language"] = chosen.language
        return message

    def password_message(
        self,
        row: RosterRow,
        recipients: Sequence[str],
        files: Sequence[str],
        password: str,
        message_id: str,
        language: str | None,
    ) -> EmailMessage:
        values = template_values(row, files, self.sender)
        values[_PASSWORD_FIELD] = password
        chosen = self.templates.for_language(language)
        message = self._message(chosen, chosen.password, values, row, recipients, message_id)
        message["Content-Language"] = chosen.language
        return message

    def _message(
        self,
        chosen: TemplateSet,
        template: MessageTemplate,
        values: Mapping[str, str],
        row: RosterRow,
        recipients: Sequence[str],
        message_id: str,
    ) -> EmailMessage:
        message = EmailMessage(policy=SMTP_POLICY)
        message["From"] = self.sender
        message["To"] = _to_header(row, recipients)
        if self.profile.reply_to:
            message["Reply-To"] = self.profile.reply_to
        message["Subject"] = " ".join(template.subject.render(values).split())
        message["Date"] = format_datetime(localtime())
        message["Message-ID"] = message_id
        message.set_content(template.text.render(values), cte="quoted-printable")
        if template.html is not None:
            message.add_alternative(
                template.html.render(values, as_html=True),
                subtype="html",
                cte="quoted-printable",
            )
        return message


def _to_header(row: RosterRow, recipients: Sequence[str]) -> tuple[Address, ...]:
    # With one address, the guardian's name goes with it; with several it is not known
    # whose each address is.
    name = _one_line(row.guardian_name).strip() if len(recipients) == 1 else ""
    return tuple(Address(display_name=name, addr_spec=address) for address in recipients)


def message_text(message: EmailMessage) -> str:
    """The subject and every text part of a message, decoded: what a reader can see."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_attachment():
            assert isinstance(part, EmailMessage)
            parts.append(str(part.get_content()))
    return "\n".join(parts)


_SHOWN_DETAIL: Final = (
    "the password appears in the {} message's text (its subject, names or body), so it "
    "would reach the family without the separate password message; nothing was sent: use "
    "passwords that are not the student's or guardian's name (let `caaspp protect` make them)"
)


def password_shown_in(message: EmailMessage, password: str, *, attachments: bool) -> bool:
    """True if ``password`` can be read in what the message shows besides its password
    placeholder: the subject, the names and addresses of its headers, the text of a report
    message (``attachments``: also the attachments' names). Case does not matter to a
    reader, so it does not matter here."""
    shown = [str(message[name] or "") for name in ("From", "To", "Reply-To")]
    if attachments:
        shown.append(message_text(message))
        shown.extend(part.get_filename() or "" for part in message.iter_attachments())
    else:
        shown.append(str(message["Subject"]))
    needle = password.casefold()
    return bool(needle) and any(needle in text.casefold() for text in shown)


# --- SMTP ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """The server accepted the message (250) for ``accepted``; ``refused`` it refused."""

    accepted: tuple[str, ...]
    refused: Mapping[str, str] = field(default_factory=dict)


class SmtpRefusal(Exception):
    """The server answered a command with an error: the message was not accepted."""

    def __init__(self, code: int, text: str, stage: str) -> None:
        super().__init__(f"{stage}: {code} {text}".strip())
        self.code = code
        self.temporary = 400 <= code < 500


class ConnectionLost(Exception):
    """The connection failed before the server could accept the message."""


class UncertainDelivery(Exception):
    """The whole message went out, and no answer came back: it may have been accepted."""


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:200]


def _dot_stuffed(data: bytes) -> bytes:
    """A message body as DATA carries it: CRLF lines, leading dots doubled, the final dot."""
    body = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    body = re.sub(rb"(?m)^\.", b"..", body)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The system's trusted CAs (and SSL_CERT_FILE), plus ``ca_file`` if given; the host
    name is checked. There is no way to turn verification off."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            raise BadInputError(
                f"the CA file {ca_file} holds no usable PEM certificate ({exc.reason or exc}).",
                hint=_CA_HINT,
            ) from None
        except OSError as exc:
            raise BadInputError(
                f"the CA file {ca_file} cannot be read ({exc.strerror or exc}).", hint=_CA_HINT
            ) from None
    return context


_CA_HINT: Final = (
    "give the district CA's certificate as a PEM file with `caaspp config smtp NAME ... "
    "--ca-file FILE`."
)


class MailServer:
    """One SMTP session, opened when first needed and again after it is lost."""

    def __init__(
        self,
        profile: SmtpProfile,
        password: str | None,
        *,
        timeout: float = SMTP_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self._password = password
        self.timeout = timeout
        self._clock = clock
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0

    def __repr__(self) -> str:
        return f"MailServer({self.profile.host}:{self.profile.port}, password=<hidden>)"

    def __enter__(self) -> MailServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def connect(self) -> smtplib.SMTP:
        """The open session, opening and logging in as needed.

        Raises MailTLSError and MailAuthenticationError (no use retrying), and
        ConnectionLost for what may pass (refused, timed out, 4xx greeting).
        """
        if self._smtp is not None and self._clock() - self._last_used > IDLE_CHECK_SECONDS:
            try:
                if self._smtp.noop()[0] != 250:
                    self._drop()
            except (smtplib.SMTPException, OSError):
                self._drop()
        if self._smtp is not None:
            return self._smtp
        profile = self.profile
        where = f"{profile.host}:{profile.port}"
        context = tls_context(profile.ca_file) if profile.security != "none" else None
        smtp: smtplib.SMTP | None = None
        try:
            if profile.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    profile.host, profile.port, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(profile.host, profile.port, timeout=self.timeout)
            smtp.ehlo()
            if profile.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise MailTLSError(
                        f"the mail server {where} does not offer STARTTLS: caaspp will not "
                        "send reports and passwords over a connection in clear text.",
                        hint="check the port and security of the SMTP profile (587 with "
                        "starttls, 465 with ssl).",
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if profile.user is not None:
                smtp.login(profile.user, self._password or "")
        except ssl.SSLCertVerificationError as exc:
            _close_quietly(smtp)
            raise MailTLSError(
                f"the certificate of the mail server {where} is not trusted "
                f"({exc.verify_message or exc.reason}).",
                hint=f"if the district's mail server uses its own CA, give its certificate "
                f"with `caaspp config smtp {profile.name} ... --ca-file FILE` (or set "
                "SSL_CERT_FILE); check the host name.",
            ) from None
        except ssl.SSLError as exc:
            _close_quietly(smtp)
            raise MailTLSError(
                f"TLS with the mail server {where} failed ({exc.reason or exc}).",
                hint="check the port and security of the SMTP profile (587 with starttls, "
                "465 with ssl).",
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(smtp)
            raise MailAuthenticationError(
                f"the mail server {where} refused the login of {profile.user} "
                f"({exc.smtp_code} {_reply_text(exc.smtp_error)}).",
                hint=f"store the right password with `caaspp config smtp {profile.name} ...`, "
                "or set CAASPP_SMTP_PASSWORD; some servers need an app password.",
            ) from None
        except smtplib.SMTPNotSupportedError:
            _close_quietly(smtp)
            raise MailConnectionError(
                f"the mail server {where} offers no login (AUTH) on this connection.",
                hint="check the port and security of the SMTP profile, or remove --user.",
            ) from None
        except smtplib.SMTPResponseException as exc:  # SMTPConnectError included
            _close_quietly(smtp)
            if exc.smtp_code == -1:
                raise _not_smtp(where) from None
            reply = f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                raise ConnectionLost(f"{where} said {reply}") from None
            if isinstance(exc, smtplib.SMTPConnectError):
                raise MailConnectionError(
                    f"the mail server {where} refused the connection ({reply})."
                ) from None
            raise MailConnectionError(f"the mail server {where} answered {reply}.") from None
        except (smtplib.SMTPException, OSError) as exc:
            _close_quietly(smtp)
            raise ConnectionLost(f"{where}: {_os_reason(exc)}") from None
        self._smtp = smtp
        self._last_used = self._clock()
        return smtp

    def check(self) -> None:
        """Connect, log in and say goodbye (``caaspp config smtp-test``)."""
        try:
            self.connect()
        except ConnectionLost as exc:
            raise MailConnectionError(
                f"could not reach the mail server: {exc}.",
                hint="check the host and port of the SMTP profile, and the network.",
            ) from None
        self.close()

    def deliver(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        before_body: Callable[[], None],
    ) -> Delivery:
        """Send one message. ``before_body`` runs once the server is ready for the body.

        Returns who accepted it. Raises SmtpRefusal (not accepted: ``temporary`` for 4xx),
        ConnectionLost (not accepted; the connection is gone), UncertainDelivery (the body
        went out and no answer came: it may have been accepted).
        """
        smtp = self.connect()
        try:
            code, reply = smtp.mail(sender)
            if code != 250:
                self._reset()
                raise SmtpRefusal(code, _reply_text(reply), "the sender was refused")
            accepted: list[str] = []
            refused: dict[str, str] = {}
            temporary: tuple[int, str] | None = None
            for address in recipients:
                code, reply = smtp.rcpt(address)
                if code in (250, 251):
                    accepted.append(address)
                elif 400 <= code < 500:
                    temporary = (code, _reply_text(reply))
                else:
                    refused[address] = f"{code} {_reply_text(reply)}"
            if temporary is not None:
                self._reset()
                raise SmtpRefusal(*temporary, "a recipient was deferred")
            if not accepted:
                self._reset()
                first = next(iter(refused.values()), "550")
                code_text, _, text = first.partition(" ")
                raise SmtpRefusal(int(code_text), text, "every recipient was refused")
            smtp.putcmd("data")
            code, reply = smtp.getreply()
            if code != 354:
                self._reset()
                raise SmtpRefusal(code, _reply_text(reply), "DATA was refused")
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as exc:
            self._drop()
            raise ConnectionLost(_os_reason(exc)) from None
        try:
            before_body()
        except BaseException:
            self._drop()  # the server drops a body that never ends: nothing is sent
            raise
        try:
            smtp.send(_dot_stuffed(data))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # The final dot is in the last bytes, which did not go: the server cannot
            # have accepted the message.
            self._drop()
            raise ConnectionLost(_os_reason(exc)) from None
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise UncertainDelivery(
                f"the connection was lost while waiting for the server's answer ({_os_reason(exc)})"
            ) from None
        self._last_used = self._clock()
        if code != 250:
            raise SmtpRefusal(code, _reply_text(reply), "the message was refused")
        return Delivery(tuple(accepted), refused)

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()


def _not_smtp(where: str) -> MailConnectionError:
    # smtplib reports an answer without a three-digit code (a web server's, say) as -1.
    return MailConnectionError(
        f"the server at {where} does not answer as a mail server: it is not an SMTP server, "
        "or not on that port.",
        hint="check the host and port of the SMTP profile (587 with starttls, 465 with ssl).",
    )


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# --- Rate ----------------------------------------------------------------------------------------
class RateLimiter:
    """At most ``per_minute`` SMTP transactions a minute, evenly spaced."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        if per_minute < 1:
            raise ValueError("the rate must be at least 1 message a minute")
        self.interval = 60.0 / per_minute
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = max(self._clock(), self._next)
        self._next = now + self.interval


# --- The run -------------------------------------------------------------------------------------
class SendOutcome(StrEnum):
    """What became of one roster row."""

    SENT = "sent"  # both messages accepted in this run
    ALREADY_SENT = "already_sent"  # both accepted by an earlier run
    WOULD_SEND = "would_send"  # dry run: its messages are in the outbox
    NO_REPORT = "no_report"  # nothing for this student in the password file or the folder
    DUPLICATE = "duplicate"  # another row of the roster has the same SSID
    INVALID_SSID = "invalid_ssid"
    NO_EMAIL = "no_email"
    BAD_ADDRESS = "bad_address"
    PASSWORD_IN_MESSAGE = "password_in_message"  # noqa: S105 - the name of an outcome
    MISSING_PDF = "missing_pdf"
    MISSING_PASSWORD = "missing_password"  # noqa: S105 - the name of an outcome
    NOT_ENCRYPTED = "not_encrypted"  # a PDF opens without a password, or not with its own
    REFUSED = "refused"  # the server refused a message for good (5xx)
    FAILED = "failed"  # still refused for now (4xx) or unreachable after every retry
    UNCERTAIN = "uncertain"  # a message may or may not have been accepted: not re-sent
    STOPPED = "stopped"  # the run stopped before this row


FINAL_OUTCOMES: Final = frozenset(
    {
        SendOutcome.SENT,
        SendOutcome.ALREADY_SENT,
        SendOutcome.WOULD_SEND,
        SendOutcome.NO_REPORT,
    }
)
"""Outcomes that need nothing more; any other one makes the run end with exit code 3.

The rule is bulk's: a row is done when it reached an answer no person can improve on (sent,
sent before, nothing to send). A duplicate row needs a person: it may carry another
guardian's address that got nothing, or be a second student given the same SSID. A row with
no email needs a person too: its family has a report and was sent nothing (print it, or add
the address and run again)."""

UNCERTAIN_HINT: Final = (
    "the server may have accepted it before the connection was lost or caaspp stopped: look "
    "up its Message-ID in the mail server's log; run again with --resend-uncertain to send "
    "it again, or with --mark-uncertain-sent if the log shows it was accepted"
)


@dataclass
class RowResult:
    """One roster row's outcome; holds no password."""

    line: int
    ssid: str
    student_name: str
    language: str
    outcome: SendOutcome = SendOutcome.STOPPED
    detail: str = ""
    emails: tuple[str, ...] = ()  # the roster's, valid or not
    sent_to: tuple[str, ...] = ()  # those that accepted the reports (dry run: would get them)
    files: tuple[str, ...] = ()
    report_message: str = ""  # accepted | uncertain | not_accepted | would_send | ''
    password_message: str = ""
    report_message_id: str = ""
    password_message_id: str = ""


@dataclass(frozen=True)
class SendProgress:
    """Handed to the progress callback after each row."""

    total: int
    done: int
    sent: int
    problems: int


@dataclass
class SendSummary:
    rows: list[RowResult]
    report: Path
    dry_run: bool
    outbox: Path | None
    messages_sent: int
    messages_written: int
    elapsed: float

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((o.value for o in SendOutcome), 0)
        for row in self.rows:
            counts[row.outcome.value] += 1
        return counts

    @property
    def problems(self) -> list[RowResult]:
        return [row for row in self.rows if row.outcome not in FINAL_OUTCOMES]


@dataclass(frozen=True)
class SendOptions:
    roster: Path
    pdfs: Path
    passwords: Path
    smtp: str
    email_column: str | None = None
    language_column: str | None = None
    templates: Path | None = None
    rate: int = DEFAULT_RATE
    dry_run: bool = False
    outbox: Path = DEFAULT_OUTBOX
    resend_uncertain: bool = False
    mark_uncertain_sent: bool = False
    retry_delays: tuple[float, ...] = RETRY_DELAYS


@dataclass(frozen=True)
class _Entry:
    file: str  # relative to the PDFs folder, as in the password file
    password: str = field(repr=False)


def send_reports(
    options: SendOptions,
    *,
    on_progress: Callable[[SendProgress], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    server: MailServer | None = None,
) -> SendSummary:
    """Send each family its reports and, separately, its password; or, with ``dry_run``,
    write those messages into the outbox. Everything the input lacks is an error before
    anything is sent; each row's outcome goes into the send report."""
    run = SendRun(options, clock=clock, sleep=sleep, server=server, on_progress=on_progress)
    return run.run()


class SendRun:
    """One ``caaspp send``: checked inputs, then the rows one at a time."""

    def __init__(
        self,
        options: SendOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        server: MailServer | None = None,
        on_progress: Callable[[SendProgress], None] | None = None,
    ) -> None:
        if options.resend_uncertain and options.mark_uncertain_sent:
            raise BadInputError(
                "--resend-uncertain and --mark-uncertain-sent contradict each other.",
                hint="check the mail server's log, then pass the one that fits.",
            )
        self.options = options
        self.roster = open_roster(
            options.roster,
            email_column=options.email_column,
            language_column=options.language_column,
        )
        self.roster.require("email")
        self.templates = load_templates(options.templates)
        self.profile = get_smtp_profile(options.smtp)
        if self.profile.ca_file and not options.dry_run:
            tls_context(self.profile.ca_file)  # a CA file gone since: refused before any row
        self.composer = Composer(self.profile, self.templates)
        if not options.pdfs.is_dir():
            raise BadInputError(f"the folder of protected PDFs {options.pdfs} does not exist.")
        if not options.passwords.is_file():
            raise BadInputError(
                f"the password file {options.passwords} does not exist.",
                hint="give the --passwords file that `caaspp protect` wrote.",
            )
        sheet = PasswordSheet(options.passwords)
        self.entries: dict[str, list[_Entry]] = {}
        for row in sheet.rows:
            if row.ssid:
                self.entries.setdefault(row.ssid, []).append(
                    _Entry(unneutralize_cell(row.file), row.password)
                )
        self.pdf_ssids = report_ssids_in(options.pdfs)
        if options.dry_run:
            outbox = options.outbox.resolve()
            if outbox == options.pdfs.resolve() or outbox.is_relative_to(options.pdfs.resolve()):
                raise BadInputError(
                    f"the outbox {options.outbox} is inside the folder of PDFs.",
                    hint="the review copies hold the passwords: choose an --outbox elsewhere.",
                )
        self._clock = clock
        self._sleep = sleep
        self._server = server
        self._on_progress = on_progress
        self._limiter = RateLimiter(options.rate, clock, sleep)
        self._ledger: SendLedger | None = None
        self._current: RowResult | None = None
        self._run_id = 0
        self._sent = 0
        self._written = 0

    # --- the run -------------------------------------------------------------------------------
    def run(self) -> SendSummary:
        options = self.options
        started = self._clock()
        if options.dry_run:
            self._prepare_outbox()
            self._ledger = SendLedger.existing(options.pdfs)
        else:
            password = smtp_password(self.profile)
            if self._server is None:
                self._server = MailServer(self.profile, password, clock=self._clock)
            self._ledger = SendLedger.in_folder(options.pdfs)
            self._run_id = self._ledger.start_run()
        results: list[RowResult] = []
        rows = iter(self.roster)
        stopped: BaseException | None = None
        sent = problems = 0
        try:
            for row in rows:
                self._current = self._result(row)
                result = self._row(row, self._current)
                self._current = None
                results.append(result)
                sent += result.outcome is SendOutcome.SENT
                problems += result.outcome not in FINAL_OUTCOMES
                if self._on_progress is not None:
                    self._on_progress(
                        SendProgress(self.roster.row_count, len(results), sent, problems)
                    )
        except (CaasppError, KeyboardInterrupt) as exc:
            stopped = exc
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
            current = self._current
            if current is not None:  # the row in hand: what it got so far, and why not more
                if self._ledger is not None and current.ssid:
                    _note(
                        current,
                        self._ledger.message(current.ssid, REPORT),
                        self._ledger.message(current.ssid, PASSWORD),
                    )
                results.append(
                    _done(current, SendOutcome.STOPPED, f"the run stopped here ({reason})")
                )
            for row in rows:
                results.append(
                    replace(
                        self._result(row),
                        outcome=SendOutcome.STOPPED,
                        detail=f"not attempted: the run stopped ({reason})",
                    )
                )
        finally:
            if self._server is not None:
                self._server.close()
            ledger = self._ledger
            if ledger is not None:
                if not options.dry_run:
                    ledger.finish_run(
                        self._run_id, "stopped" if stopped is not None else "finished"
                    )
                ledger.close()
        report = self._write_report(results)
        if isinstance(stopped, CaasppError):
            stopped.hint = (f"{stopped.hint} " if stopped.hint else "") + (
                f"What was done is in {report}; run the same command again to go on: "
                "nothing accepted is sent twice."
            )
            raise stopped
        if stopped is not None:
            raise stopped
        return SendSummary(
            results,
            report,
            options.dry_run,
            options.outbox if options.dry_run else None,
            self._sent,
            self._written,
            self._clock() - started,
        )

    def _result(self, row: RosterRow) -> RowResult:
        return RowResult(
            line=row.line,
            ssid=row.ssid or row.raw_ssid,
            student_name=row.display_name,
            language=row.language or "",
            emails=row.emails + row.invalid_emails,
        )

    def _row(self, row: RosterRow, result: RowResult) -> RowResult:
        if row.problem is RowProblem.DUPLICATE:
            return _done(result, SendOutcome.DUPLICATE, row.detail)
        if row.ssid is None:
            return _done(result, SendOutcome.INVALID_SSID, row.detail or "no SSID")
        ssid = row.ssid
        ledger = self._ledger
        report_record = ledger.message(ssid, REPORT) if ledger else None
        password_record = ledger.message(ssid, PASSWORD) if ledger else None
        _note(result, report_record, password_record)
        entries = self.entries.get(ssid, [])
        result.files = tuple(dict.fromkeys(entry.file for entry in entries))
        if (
            report_record
            and report_record.is_accepted
            and password_record
            and (password_record.is_accepted)
        ):
            return _done(result, SendOutcome.ALREADY_SENT)
        if not entries:
            if ssid in self.pdf_ssids or report_record is not None:
                return _done(
                    result,
                    SendOutcome.MISSING_PASSWORD,
                    "the password file has no password for this student's reports",
                )
            return _done(result, SendOutcome.NO_REPORT)
        passwords = {entry.password for entry in entries}
        if len(passwords) > 1:
            return _done(
                result,
                SendOutcome.MISSING_PASSWORD,
                "the password file holds several passwords for this student",
            )
        password = passwords.pop()
        files = result.files

        # Message 1: the reports.
        if report_record is not None and report_record.is_accepted:
            recipients = report_record.recipients
        elif (
            report_record is not None
            and report_record.is_uncertain
            and not (self.options.resend_uncertain)
        ):
            if not self.options.mark_uncertain_sent:
                return _done(
                    result,
                    SendOutcome.UNCERTAIN,
                    f"the report message ({report_record.message_id}): {UNCERTAIN_HINT}",
                )
            recipients = self._mark_sent(result, report_record)
        else:
            sent = self._send_report(row, result, report_record, files, password)
            if sent is None:
                return result
            recipients = sent

        # Message 2: the password, to those who accepted the reports.
        if password_record is not None and password_record.is_uncertain:
            if self.options.mark_uncertain_sent:
                self._mark_sent(result, password_record)
                return _done(result, SendOutcome.SENT)
            if not self.options.resend_uncertain:
                return _done(
                    result,
                    SendOutcome.UNCERTAIN,
                    f"the password message ({password_record.message_id}): {UNCERTAIN_HINT}",
                )
        message_id = _message_id(password_record, self.composer)
        message = self.composer.password_message(
            row, recipients, files, password, message_id, row.language
        )
        if password_shown_in(message, password, attachments=False):
            return _done(result, SendOutcome.PASSWORD_IN_MESSAGE, _SHOWN_DETAIL.format("password"))
        unusable = [address for address in recipients if not is_address(address)]
        if unusable:  # read back from the ledger: the one check of an address applies too
            return _done(
                result,
                SendOutcome.BAD_ADDRESS,
                "the send ledger records recipients that are not email addresses ("
                + ", ".join(unusable)
                + "): the password was not sent",
            )
        outcome = self._deliver(row, result, PASSWORD, message, recipients)
        if outcome is not None:
            return _done(
                result, outcome[0], "the reports were sent; the password was not: " + outcome[1]
            )
        return _done(result, SendOutcome.WOULD_SEND if self.options.dry_run else SendOutcome.SENT)

    def _send_report(
        self,
        row: RosterRow,
        result: RowResult,
        record: MessageRecord | None,
        files: Sequence[str],
        password: str,
    ) -> tuple[str, ...] | None:
        """Check and send the report message; the addresses that accepted it, or None
        (``result`` then says why)."""
        if row.email_problem:
            _done(result, SendOutcome.BAD_ADDRESS, row.email_problem + "; nothing was sent")
            return None
        if not row.emails:
            if row.invalid_emails:
                _done(
                    result,
                    SendOutcome.BAD_ADDRESS,
                    "not an email address: " + ", ".join(row.invalid_emails),
                )
            else:
                _done(result, SendOutcome.NO_EMAIL, "the roster has no guardian email")
            return None
        attachments: list[Attachment] = []
        for file in files:
            attachment, problem = self._attachment(file, password)
            if attachment is None:
                _done(result, *problem)
                return None
            attachments.append(attachment)
        recipients = row.emails
        message_id = _message_id(record, self.composer)
        message = self.composer.report_message(
            row, recipients, attachments, message_id, row.language
        )
        # The templates keep {password} out of it, but a value may be the password itself
        # (a password column holding the student's first name): then nothing goes.
        if password_shown_in(message, password, attachments=True):
            _done(result, SendOutcome.PASSWORD_IN_MESSAGE, _SHOWN_DETAIL.format("report"))
            return None
        password_message = self.composer.password_message(
            row, recipients, files, password, self.composer.new_message_id(), row.language
        )
        if password_shown_in(password_message, password, attachments=False):
            _done(result, SendOutcome.PASSWORD_IN_MESSAGE, _SHOWN_DETAIL.format("password"))
            return None
        outcome = self._deliver(row, result, REPORT, message, recipients)
        if outcome is not None:
            _done(result, *outcome)
            return None
        if row.invalid_emails:
            result.detail = _join(
                result.detail, "not an email address, not sent to: " + ", ".join(row.invalid_emails)
            )
        if row.emails_in_names:
            result.detail = _join(
                result.detail,
                "in a name or a comment, not an address, not sent to: "
                + ", ".join(row.emails_in_names),
            )
        return result.sent_to

    def _attachment(
        self, file: str, password: str
    ) -> tuple[Attachment | None, tuple[SendOutcome, str]]:
        folder = self.options.pdfs.resolve()
        path = (folder / PurePosixPath(file)).resolve()
        if not path.is_relative_to(folder):
            return None, (
                SendOutcome.MISSING_PDF,
                f"{file} is outside the folder of PDFs: it is not sent",
            )
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, (SendOutcome.MISSING_PDF, f"{file} is not in {self.options.pdfs}")
        except OSError as exc:
            return None, (SendOutcome.MISSING_PDF, f"{file} cannot be read: {exc.strerror}")
        problem = protection_problem(data, password)
        if problem is not None:
            return None, (SendOutcome.NOT_ENCRYPTED, f"{file}: {problem}; it is not sent")
        return Attachment(PurePosixPath(file).name, data), (SendOutcome.SENT, "")

    def _mark_sent(self, result: RowResult, record: MessageRecord) -> tuple[str, ...]:
        note = "recorded as accepted with --mark-uncertain-sent"
        if self._ledger is not None and not self.options.dry_run:
            self._ledger.mark_accepted(record.ssid, record.kind, record.recipients, note)
        self._status(result, record.kind, "accepted")
        if record.kind == REPORT:
            result.sent_to = record.recipients
        result.detail = _join(result.detail, f"the {record.kind} message was {note}")
        return record.recipients

    # --- one message -----------------------------------------------------------------------------
    def _deliver(
        self,
        row: RosterRow,
        result: RowResult,
        kind: str,
        message: EmailMessage,
        recipients: Sequence[str],
    ) -> tuple[SendOutcome, str] | None:
        """Send (or, in a dry run, write) one message; None once accepted, else why not."""
        message_id = str(message["Message-ID"])
        assert row.ssid is not None
        ssid = row.ssid
        if kind == REPORT:
            result.report_message_id = message_id
        else:
            result.password_message_id = message_id
        data = message.as_bytes(policy=SMTP_POLICY)
        if self.options.dry_run:
            number = 1 if kind == REPORT else 2
            write_private_bytes(
                self.options.outbox / outbox_message_name(row.line, ssid, number, kind), data
            )
            self._written += 1
            self._status(result, kind, "would_send")
            if kind == REPORT:
                result.sent_to = tuple(recipients)
            return None
        ledger, server = self._ledger, self._server
        assert ledger is not None and server is not None
        recipients = tuple(recipients)
        sender = self.composer.sender.addr_spec
        problem = ""
        unreachable = False
        for attempt in range(len(self.options.retry_delays) + 1):
            if attempt:
                self._sleep(self.options.retry_delays[attempt - 1])
            self._limiter.wait()

            def before_body() -> None:
                ledger.mark_sending(ssid, kind, message_id, recipients, self._run_id)

            try:
                delivery = server.deliver(sender, recipients, data, before_body)
            except UncertainDelivery as exc:
                log.warning(
                    "line %d: the %s message may or may not have been accepted: %s",
                    row.line,
                    kind,
                    exc,
                )
                self._status(result, kind, "uncertain")
                return SendOutcome.UNCERTAIN, f"the {kind} message ({message_id}): {exc}; " + (
                    UNCERTAIN_HINT
                )
            except SmtpRefusal as exc:
                unreachable = False
                problem = str(exc)
                ledger.mark_not_accepted(ssid, kind, message_id, recipients, problem, self._run_id)
                if exc.temporary:
                    log.info("line %d: %s; retrying", row.line, problem)
                    continue
                self._status(result, kind, "not_accepted")
                return SendOutcome.REFUSED, f"the mail server refused the {kind} message: " + (
                    problem
                )
            except ConnectionLost as exc:
                unreachable = True
                problem = f"the connection to the mail server failed ({exc})"
                ledger.mark_not_accepted(ssid, kind, message_id, recipients, problem, self._run_id)
                log.info("line %d: %s; retrying", row.line, problem)
                continue
            # Recorded the moment the server has said 250: the window in which a kill
            # leaves an accepted message uncertain is this one statement.
            detail = "; ".join(f"refused {a}: {why}" for a, why in delivery.refused.items())
            ledger.mark_accepted(ssid, kind, delivery.accepted, detail)
            self._sent += 1
            self._status(result, kind, "accepted")
            if kind == REPORT:
                result.sent_to = delivery.accepted
            result.detail = _join(result.detail, detail)
            log.debug("line %d: the %s message was accepted", row.line, kind)
            return None
        self._status(result, kind, "not_accepted")
        if unreachable:
            raise MailConnectionError(
                f"the mail server {self.profile.host}:{self.profile.port} could not be used "
                f"after {len(self.options.retry_delays) + 1} attempts: {problem}.",
                hint="check the network and the SMTP profile (`caaspp config smtp-test "
                f"{self.profile.name}`).",
            )
        return SendOutcome.FAILED, (
            f"the {kind} message was still refused after "
            f"{len(self.options.retry_delays) + 1} attempts: {problem}"
        )

    @staticmethod
    def _status(result: RowResult, kind: str, status: str) -> None:
        if kind == REPORT:
            result.report_message = status
        else:
            result.password_message = status

    # --- files -----------------------------------------------------------------------------------
    def _prepare_outbox(self) -> None:
        """The outbox, owner-only, without the messages of an earlier dry run."""
        outbox = self.options.outbox
        prepare_output_dir(outbox, "outbox", "choose another --outbox folder.")
        for entry in outbox.iterdir():
            if OUTBOX_MESSAGE_NAME.match(entry.name) and entry.is_file():
                entry.unlink()

    def _write_report(self, results: Sequence[RowResult]) -> Path:
        folder = self.options.outbox if self.options.dry_run else self.options.pdfs
        return write_send_report(
            folder,
            (
                {
                    "line": r.line,
                    "ssid": r.ssid,
                    "student_name": r.student_name,
                    "emails": "; ".join(r.emails),
                    "sent_to": "; ".join(r.sent_to),
                    "language": r.language,
                    "reports": len(r.files),
                    "outcome": r.outcome.value,
                    "report_message": r.report_message,
                    "password_message": r.password_message,
                    "detail": r.detail,
                    "report_message_id": r.report_message_id,
                    "password_message_id": r.password_message_id,
                }
                for r in results
            ),
        )


def protection_problem(data: bytes, password: str) -> str | None:
    """Why a PDF must not be sent as a protected report, or None: it must be what
    `caaspp protect` makes and checks (AES-256, R=6, opened by the student's password and
    by nothing else, no changes allowed), by the same definition."""
    return protected_report_problem(data, password)


def _note(result: RowResult, report: MessageRecord | None, password: MessageRecord | None) -> None:
    for record in (report, password):
        if record is None:
            continue
        status = {"accepted": "accepted", "sending": "uncertain"}.get(record.status, "not_accepted")
        SendRun._status(result, record.kind, status)
        if record.kind == REPORT:
            result.report_message_id = record.message_id
            if record.is_accepted:
                result.sent_to = record.recipients
        else:
            result.password_message_id = record.message_id


def _message_id(record: MessageRecord | None, composer: Composer) -> str:
    # A message sent again keeps its Message-ID: a mail client that gets both shows one.
    return (
        record.message_id
        if record is not None and record.message_id
        else (composer.new_message_id())
    )


def _done(result: RowResult, outcome: SendOutcome, detail: str = "") -> RowResult:
    result.outcome = outcome
    result.detail = _join(result.detail, detail)
    return result


def _join(first: str, second: str) -> str:
    return "; ".join(part for part in (first, second) if part)
