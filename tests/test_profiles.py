from __future__ import annotations

import os
import stat
import tomllib
from datetime import date, timedelta
from pathlib import Path

import pytest

from caaspp_cli.config import profiles
from caaspp_cli.config.credentials import Credentials, key_username, secret_username
from caaspp_cli.config.profiles import Profile, ProfileStore
from caaspp_cli.config.secrets import SERVICE_NAME
from caaspp_cli.errors import BadInputError, ConfigError, CredentialsError, ExitCode
from caaspp_cli.ets.contract import (
    DEFAULT_REPORTS_ENDPOINT,
    DEFAULT_STUDENTS_ENDPOINT,
    DEFAULT_TOKEN_ENDPOINT,
)

TODAY = date(2025, 3, 1)
CREDS = Credentials("key-1", "secret-1")


def _profile(name: str = "district", **fields: object) -> Profile:
    return profiles.make_profile(name=name, base_url="https://caaspp-aws.ets.org", **fields)


# --- Validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["district", "a", "Unified_2025", "north.county-1", "x" * 64])
def test_profile_accepts_short_safe_names(name: str) -> None:
    assert _profile(name).name == name


@pytest.mark.parametrize("name", ["", "x" * 65, "two words", "a/b", "-dash", ".hidden", "é", "a:b"])
def test_profile_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(BadInputError, match="not a valid profile name"):
        _profile(name)


def test_profile_defaults_to_the_public_endpoints() -> None:
    profile = _profile()
    assert profile.students_endpoint == DEFAULT_STUDENTS_ENDPOINT
    assert profile.reports_endpoint == DEFAULT_REPORTS_ENDPOINT
    assert profile.token_endpoint == DEFAULT_TOKEN_ENDPOINT
    assert profile.credentials_source == "keyring"
    assert profile.endpoints().token_url == "https://caaspp-aws.ets.org/api/v1/token/"


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://caaspp-aws.ets.org/", "https://caaspp-aws.ets.org"),
        ("HTTPS://caaspp-aws.ets.org", "https://caaspp-aws.ets.org"),
        ("https://proxy.district.org:8443/ets", "https://proxy.district.org:8443/ets"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.8.9.10", "http://127.8.9.10"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_profile_accepts_https_and_loopback_http(url: str, stored: str) -> None:
    assert profiles.make_profile(name="p", base_url=url).base_url == stored


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://caaspp-aws.ets.org", "uses http://"),
        ("http://10.0.0.5:8000", "uses http://"),
        ("http://localhost.evil.org", "uses http://"),
        ("ftp://caaspp-aws.ets.org", "not an http"),
        ("caaspp-aws.ets.org", "did you mean https://caaspp-aws.ets.org"),
        ("https://", "not an http"),
        ("https://user:pw@caaspp-aws.ets.org", "user name or password"),
        ("https://caaspp-aws.ets.org/?a=1", "query or fragment"),
        ("https://caaspp-aws.ets.org:99999", "invalid port"),
        ("http://[::1", "not an http"),
    ],
)
def test_profile_refuses_bad_base_urls_in_one_sentence(url: str, problem: str) -> None:
    with pytest.raises(BadInputError, match=problem) as caught:
        profiles.make_profile(name="p", base_url=url)
    assert "\n" not in caught.value.message
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_profile_normalizes_endpoints_and_schools() -> None:
    profile = _profile(token_endpoint="oauth/token", schools=["0123456", " 0123456 ", "6543210"])
    assert profile.token_endpoint == "/oauth/token"
    assert profile.schools == ["0123456", "6543210"]


@pytest.mark.parametrize("endpoint", ["", "https://x.org/token", "/token?x=1", "/a b"])
def test_profile_refuses_endpoints_that_are_not_paths(endpoint: str) -> None:
    with pytest.raises(BadInputError, match="not an endpoint path"):
        _profile(token_endpoint=endpoint)


def test_profile_refuses_bad_school_codes() -> None:
    with pytest.raises(BadInputError, match="not a school code"):
        _profile(schools=["12 34"])


# --- The store -----------------------------------------------------------------------------
def test_store_round_trips_profiles_and_keeps_other_sections(config_dir: Path) -> None:
    (config_dir).mkdir(mode=0o700)
    (config_dir / "config.toml").write_text(
        'version = 1\n[mail]\nhost = "smtp.district.org"\n', encoding="utf-8"
    )
    store = ProfileStore.load()
    store.profiles["district"] = _profile(schools=["0123456"], expires=date(2026, 1, 31))
    store.default = "district"
    store.save()

    again = ProfileStore.load()
    assert again.profiles == store.profiles
    assert again.default == "district"
    document = tomllib.loads((config_dir / "config.toml").read_text(encoding="utf-8"))
    assert document["version"] == 1
    assert document["mail"] == {"host": "smtp.district.org"}
    assert document["profiles"]["district"]["expires"] == date(2026, 1, 31)
    assert "name" not in document["profiles"]["district"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_store_writes_an_owner_only_file_in_an_owner_only_dir(config_dir: Path) -> None:
    profiles.add_profile(_profile(), CREDS)
    path = config_dir / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert not [p for p in config_dir.iterdir() if p.name != "config.toml"]  # no temp left


def test_missing_config_file_is_an_empty_store(config_dir: Path) -> None:
    store = ProfileStore.load()
    assert store.profiles == {}
    assert store.default is None
    assert not config_dir.exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("this is [not toml", "is not valid TOML"),
        ("version = 2\n", "has version 2, but this caaspp reads version 1"),
        ('version = "1"\n', "has version '1'"),
        ("version = 1\nprofiles = 3\n", "'profiles' key that is not a table"),
        ("version = 1\n[profiles]\nd = 1\n", "profile 'd' that is not a table"),
        ("version = 1\ndefault = 5\n", "'default' that is not a profile name"),
        ('version = 1\ndefault = "ghost"\n', "names 'ghost' as the default"),
        ("version = 1\n[profiles.d]\nbase_url = 42\n", "profile 'd': base_url: input should"),
        ('version = 1\n[profiles.d]\nschools = ["1"]\n', "profile 'd': base_url: field required"),
        (
            'version = 1\n[profiles.d]\nbase_url = "https://x.org"\nexpires = "soon"\n',
            "profile 'd': expires: input should be a valid date",
        ),
        (
            'version = 1\n[profiles.d]\nbase_url = "http://x.org"\n',
            "profile 'd': the base URL 'http://x.org' uses http://",
        ),
        (
            'version = 1\n[profiles.d]\nbase_url = "https://x.org"\ncredentials_source = "file"\n',
            "profile 'd': credentials_source: input should be 'keyring' or 'env'",
        ),
        ('version = 1\n[profiles."bad name"]\nbase_url = "https://x.org"\n', "valid profile name"),
    ],
)
def test_hand_edited_config_errors_name_the_file_in_one_line(
    config_dir: Path, text: str, problem: str
) -> None:
    config_dir.mkdir()
    (config_dir / "config.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        ProfileStore.load()
    message = caught.value.message
    assert str(config_dir / "config.toml") in message
    assert problem.lower() in message.lower()
    assert "\n" not in message
    assert caught.value.hint
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_a_secret_pasted_into_config_is_refused_without_echoing_it(config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / "config.toml").write_text(
        'version = 1\n[profiles.d]\nbase_url = "https://x.org"\n'
        'client_secret = "pasted-secret-value"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="unknown key 'client_secret'") as caught:
        ProfileStore.load()
    assert "pasted-secret-value" not in str(caught.value) + (caught.value.hint or "")


def test_config_that_is_not_utf8_is_a_config_error(config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / "config.toml").write_bytes(b"version = 1\n# \xff\xfe\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        ProfileStore.load()


# --- Resolution ----------------------------------------------------------------------------
def test_resolve_prefers_the_given_name_then_the_default(profile_factory) -> None:
    profile_factory("first")
    profile_factory("second")
    assert profiles.resolve_profile("second").name == "second"
    assert profiles.resolve_profile(None).name == "first"


def test_resolve_without_profiles_says_to_run_config_add() -> None:
    with pytest.raises(ConfigError, match="no profile configured") as caught:
        profiles.resolve_profile(None)
    assert "caaspp config add" in (caught.value.hint or "")


def test_resolve_unknown_name_lists_the_known_ones(profile_factory) -> None:
    profile_factory("north")
    profile_factory("south")
    with pytest.raises(ConfigError, match="no profile named 'east'") as caught:
        profiles.resolve_profile("east")
    assert caught.value.hint == "known profiles: north, south."


# --- Expiry --------------------------------------------------------------------------------
def test_expiry_far_away_gives_no_warning() -> None:
    assert profiles.check_expiry(_profile(expires=TODAY + timedelta(days=15)), TODAY) is None
    assert profiles.check_expiry(_profile(expires=None), TODAY) is None


@pytest.mark.parametrize(
    ("days", "when"), [(14, "in 14 days"), (3, "in 3 days"), (1, "in 1 day"), (0, "today")]
)
def test_expiry_within_14_days_warns_with_the_rotate_command(days: int, when: str) -> None:
    profile = _profile(expires=TODAY + timedelta(days=days))
    warning = profiles.check_expiry(profile, TODAY)
    expires = (TODAY + timedelta(days=days)).isoformat()
    assert warning == (
        f"credentials of profile district expire {when} ({expires}): generate new ones in "
        "TOMS, then run `caaspp config rotate district`"
    )


def test_expired_credentials_are_refused_with_the_rotate_hint() -> None:
    profile = _profile(expires=TODAY - timedelta(days=1))
    with pytest.raises(CredentialsError, match="expired on 2025-02-28") as caught:
        profiles.check_expiry(profile, TODAY)
    assert "caaspp config rotate district" in (caught.value.hint or "")
    assert caught.value.exit_code == ExitCode.CREDENTIALS


def test_default_expiry_is_365_days_from_today() -> None:
    assert profiles.default_expiry(TODAY) == date(2026, 3, 1)


# --- add / rotate / remove / default -------------------------------------------------------
def test_add_stores_credentials_in_the_keyring_and_makes_the_first_default(
    memory_keyring,
) -> None:
    store = profiles.add_profile(_profile("first"), CREDS)
    assert store.default == "first"
    assert memory_keyring.entries == {
        (SERVICE_NAME, "first:client_key"): "key-1",
        (SERVICE_NAME, "first:client_secret"): "secret-1",
    }
    assert profiles.add_profile(_profile("second"), CREDS).default == "first"
    assert profiles.add_profile(_profile("third"), CREDS, make_default=True).default == "third"


def test_add_asks_for_credentials_only_after_checking_everything() -> None:
    profiles.add_profile(_profile("taken"), CREDS)

    def ask() -> Credentials:
        raise AssertionError("asked for credentials of a profile that cannot be added")

    with pytest.raises(BadInputError, match="already exists") as caught:
        profiles.add_profile(_profile("taken"), ask)
    assert "config rotate taken" in (caught.value.hint or "")
    with pytest.raises(BadInputError, match="is in the past"):
        profiles.add_profile(_profile("new", expires=date(2000, 1, 1)), ask)


def test_add_env_profile_stores_nothing_in_the_keyring(memory_keyring) -> None:
    profiles.add_profile(_profile(credentials_source="env"))
    assert memory_keyring.entries == {}
    assert profiles.load_store().profiles["district"].credentials_source == "env"


def test_add_that_cannot_write_the_config_leaves_no_keyring_entries(
    memory_keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: ProfileStore) -> None:
        raise ConfigError("could not write config.toml.")

    monkeypatch.setattr(ProfileStore, "save", fail)
    with pytest.raises(ConfigError):
        profiles.add_profile(_profile(), CREDS)
    assert memory_keyring.entries == {}


def test_rotate_replaces_credentials_and_resets_the_expiry(profile_factory, memory_keyring) -> None:
    profile_factory("district", expires=TODAY + timedelta(days=3))
    rotated = profiles.rotate_profile("district", Credentials("key-2", "secret-2"), today=TODAY)
    assert rotated.expires == date(2026, 3, 1)
    assert profiles.load_store().profiles["district"].expires == date(2026, 3, 1)
    assert memory_keyring.entries[(SERVICE_NAME, secret_username("district"))] == "secret-2"
    given = profiles.rotate_profile("district", CREDS, expires=date(2026, 1, 2), today=TODAY)
    assert given.expires == date(2026, 1, 2)


def test_remove_deletes_keyring_entries_and_moves_the_default(
    profile_factory, memory_keyring
) -> None:
    profile_factory("b-first")
    profile_factory("c-second")
    profile_factory("a-third")
    removed = profiles.remove_profile("b-first")
    assert removed.was_default
    assert removed.new_default == "a-third"
    assert removed.keyring_problem is None
    assert (SERVICE_NAME, key_username("b-first")) not in memory_keyring.entries
    assert profiles.load_store().default == "a-third"

    assert profiles.remove_profile("c-second").was_default is False
    last = profiles.remove_profile("a-third")
    assert last.new_default is None
    assert memory_keyring.entries == {}
    assert profiles.load_store().default is None


def test_remove_with_an_unreachable_keyring_removes_the_profile_and_says_so(
    profile_factory,
) -> None:
    import keyring
    from keyring.backends import fail

    profile_factory("district")
    keyring.set_keyring(fail.Keyring())
    removed = profiles.remove_profile("district")
    assert removed.keyring_problem and "no usable OS keyring" in removed.keyring_problem
    assert profiles.load_store().profiles == {}


def test_set_default_switches_and_refuses_unknown_names(profile_factory) -> None:
    profile_factory("one")
    profile_factory("two")
    profiles.set_default("two")
    assert profiles.load_store().default == "two"
    with pytest.raises(ConfigError, match="no profile named 'three'"):
        profiles.set_default("three")


def test_activate_loads_credentials_and_the_expiry_warning(profile_factory) -> None:
    profile_factory(
        "district",
        expires=date.today() + timedelta(days=5),
        client_key="the-key",
        client_secret="the-secret",
    )
    active = profiles.activate(None)
    assert active.profile.name == "district"
    assert active.credentials == Credentials("the-key", "the-secret")
    assert active.expiry_warning and "expire in 5 days" in active.expiry_warning
    assert "the-secret" not in repr(active)


def test_activate_refuses_expired_credentials_before_reading_them(profile_factory) -> None:
    profile_factory("district", expires=date.today() - timedelta(days=1))
    with pytest.raises(CredentialsError, match="expired"):
        profiles.activate("district")
