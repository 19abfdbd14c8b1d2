"""Composing the two messages of a family, and checking what each one shows.

For each roster row, ``caaspp send`` sends two messages to all of the row's addresses at
once (one message, every guardian in To):

1. the *report message*: the student's protected PDF(s) as attachments, saying that the
   password follows in a separate email;
2. the *password message*: the password, and no attachment.

No message carries both: the password is a placeholder of the password message's body
only (see :mod:`caaspp_cli.send.templates`), and :func:`password_shown_in` finds a password
that can be read elsewhere (a password column holding the student's first name, which the
greeting repeats), so that the row is failed instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, localtime, make_msgid

from caaspp_cli.config.mail_profiles import SmtpProfile
from caaspp_cli.roster.read import RosterRow
from caaspp_cli.send.templates import (
    PASSWORD_FIELD,
    MessageTemplate,
    Templates,
    TemplateSet,
    one_line,
    template_values,
)


@dataclass(frozen=True)
class Attachment:
    """A protected PDF to attach, by the name the family sees."""

    name: str
    data: bytes = field(repr=False)


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
        *,
        later: bool = False,
    ) -> EmailMessage:
        """The report message; ``later``: the family was sent reports before, and this one
        says another is now available."""
        chosen = self.templates.for_language(language)
        names = [a.name for a in attachments]
        values = template_values(row, names, self.sender, chosen.language, later=later)
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
        chosen = self.templates.for_language(language)
        values = template_values(row, files, self.sender, chosen.language)
        values[PASSWORD_FIELD] = password
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
    name = one_line(row.guardian_name).strip() if len(recipients) == 1 else ""
    return tuple(Address(display_name=name, addr_spec=address) for address in recipients)


def message_text(message: EmailMessage) -> str:
    """The subject and every text part of a message, decoded: what a reader can see."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_attachment():
            assert isinstance(part, EmailMessage)
            parts.append(str(part.get_content()))
    return "\n".join(parts)


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
