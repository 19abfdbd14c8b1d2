"""OAuth 2.0 access tokens for the mail transports that need one.

Microsoft 365 (SMTP with XOAUTH2, or Microsoft Graph) and Google Workspace (SMTP with
XOAUTH2) take a bearer token instead of a password. A :class:`TokenProvider` gives a
transport its current token: kept in memory for the run only, renewed before it expires,
and dropped when the server refuses it (:meth:`TokenProvider.invalidate`). A token is a
secret: it is never written to a file, a log, an error or ``--debug`` output.
"""

from __future__ import annotations

from typing import Protocol


class TokenProvider(Protocol):
    """The current access token of one mail profile."""

    def token(self) -> str:
        """A token valid for at least the next minute (fetched or renewed as needed).
        Raises CredentialsError (exit 4) when the identity provider refuses."""
        ...

    def invalidate(self) -> None:
        """Forget the token: the server refused it, so the next :meth:`token` fetches anew."""
        ...
