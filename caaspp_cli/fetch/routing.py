"""Which ETS profile serves which roster row: by school, or one for all (``--profile``)."""

from __future__ import annotations

from caaspp_cli.config.profiles import Profile, ProfileStore
from caaspp_cli.errors import ConfigError
from caaspp_cli.roster.read import RosterRow


class ProfileRouter:
    """Each roster row goes through the profile that serves its school.

    ``--profile`` forces one for every row. Otherwise, where profiles name schools, a row
    goes to the profile naming its school code, and a row whose school no profile serves
    is reported, not guessed; where no profile names schools, the default serves all.
    """

    def __init__(self, store: ProfileStore, forced: str | None) -> None:
        self.forced = store.resolve(forced) if forced else None
        self.by_school: dict[str, Profile] = {}
        for profile in store.profiles.values():
            for school in profile.schools:
                other = self.by_school.get(school)
                if other is not None and other.name != profile.name:
                    raise ConfigError(
                        f"school {school} is served by two profiles, {other.name} and "
                        f"{profile.name}.",
                        hint="remove it from one of them, or choose one with --profile.",
                    )
                self.by_school[school] = profile
        self.default = None
        if self.forced is None and not self.by_school:
            self.default = store.resolve(None)

    def profiles(self) -> list[Profile]:
        """Every profile a row may be sent through."""
        if self.forced is not None:
            return [self.forced]
        if self.default is not None:
            return [self.default]
        return list(self.by_school.values())

    def profile_for(self, row: RosterRow) -> Profile | None:
        if self.forced is not None:
            return self.forced
        if self.default is not None:
            return self.default
        code = row.school_code.strip()
        return self.by_school.get(code) or self.by_school.get(code[-7:]) if code else None

    def describe_miss(self, row: RosterRow) -> str:
        if not row.school_code:
            return "no school code in the roster, and profiles are chosen by school"
        return f"no profile serves school {row.school_code}"
