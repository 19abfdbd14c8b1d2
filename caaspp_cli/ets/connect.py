"""From a profile name to a ready ETS client: the one place a profile's client is opened.

Every command that talks to ETS starts here (`fetch`, `bulk`, `config test`): the profile
is resolved, its expiry checked, its credentials found by the one Resolver, and the client
made with them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from caaspp_cli.config.profiles import Profile, activate
from caaspp_cli.ets.client import EtsClient


def connect(
    name: str | None, *, warn: Callable[[str], None], **client_options: Any
) -> tuple[Profile, EtsClient]:
    """Resolve the profile, check its expiry (warning through ``warn``), load its credentials,
    and open a client. Raises ConfigError or CredentialsError with a hint."""
    active = activate(name)
    if active.expiry_warning:
        warn(active.expiry_warning)
    return active.profile, EtsClient(
        active.profile.endpoints(), active.credentials, **client_options
    )
