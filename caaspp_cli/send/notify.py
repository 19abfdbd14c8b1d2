"""The staff summary: a night's counts, mailed to staff through the district's mail profile.

``caaspp deliver --notify ADDRESS`` sends one plain-text message after each run. It takes
only labels and numbers, so it cannot carry a name, an SSID or a password: a label that
looks like an SSID (ten digits) or an address is refused before anything is sent. It goes
through the same transport as the families' messages (SMTP, OAuth, or Graph), once, with
no ledger: a staff summary that fails is reported, and the next night sends another.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Final

from caaspp_cli.addresses import is_address
from caaspp_cli.artifacts import STAFF_SUMMARY_NAME
from caaspp_cli.config.mail_profiles import get_smtp_profile, smtp_password
from caaspp_cli.errors import BadInputError, MailError
from caaspp_cli.fsutil import prepare_output_dir, write_private_bytes

_PERSONAL: Final = re.compile(r"\d{10}|@")


def staff_message(
    sender: str, recipients: Sequence[str], subject: str, lines: Sequence[tuple[str, int]]
) -> EmailMessage:
    """The summary message: one ``label: number`` line each, and nothing else."""
    for label, number in lines:
        if _PERSONAL.search(label) or not isinstance(number, int):
            raise ValueError("a staff summary holds labels and numbers only")
    if _PERSONAL.search(subject):
        raise ValueError("a staff summary's subject holds no SSID or address")
    width = max((len(label) for label, _ in lines), default=0)
    body = "\n".join(f"{label.ljust(width)}  {number:>7}" for label, number in lines)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
    message.set_content(
        body + "\n\nCounts only: who needs a person is in follow-up.csv in the season folder, "
        "and `caaspp status` shows the deadline clock.\n"
    )
    return message


def notify_staff(
    profile_name: str,
    recipients: Sequence[str],
    subject: str,
    lines: Sequence[tuple[str, int]],
    *,
    outbox: Path | None = None,
) -> None:
    """Mail staff the summary (with ``outbox``: write it there as an .eml file instead)."""
    from caaspp_cli.send.run import open_transport
    from caaspp_cli.send.transport import ConnectionLost, SmtpRefusal, UncertainDelivery

    bad = [address for address in recipients if not is_address(address)]
    if bad:
        raise BadInputError(f"{bad[0]!r} is not an email address: no staff summary was sent.")
    profile = get_smtp_profile(profile_name)
    message = staff_message(str(profile.sender), recipients, subject, lines)
    data = message.as_bytes(policy=SMTP_POLICY)
    if outbox is not None:
        prepare_output_dir(outbox, "outbox")
        write_private_bytes(outbox / STAFF_SUMMARY_NAME, data)
        return
    transport = open_transport(profile, smtp_password(profile))
    try:
        delivery = transport.deliver(
            profile.sender.addr_spec, tuple(recipients), data, lambda: None
        )
    except SmtpRefusal as exc:
        raise MailError(f"the mail server refused the staff summary: {exc}.") from None
    except (ConnectionLost, UncertainDelivery) as exc:
        raise MailError(f"the staff summary could not be sent: {exc}.") from None
    finally:
        transport.close()
    if delivery.refused:
        refused = ", ".join(f"{who} ({why})" for who, why in delivery.refused.items())
        raise MailError(f"the mail server refused the staff summary for {refused}.")
