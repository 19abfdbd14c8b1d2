from __future__ import annotations

import json
import os
import stat
import tomllib
from datetime import date, timedelta
from pathlib import Path

import keyring
import pytest
from helpers import command_paths, quick_retries
from keyring.backends import fail

from caaspp_cli.cli import prompts
from caaspp_cli.config import profiles
from caaspp_cli.config.credentials import Credentials
from caaspp_cli.config.secrets import SERVICE_NAME
from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET

KEY = "ck-7d1f2a9b4c"
SECRET = "cs-0e3b5a6d8f2c4e1a"
CRED_ENV = {"CAASPP_CLIENT_KEY": KEY, "CAASPP_CLIENT_SECRET": SECRET}
BASE = "https://caaspp-aws.ets.org"


def _config(config_dir: Path) -> dict[str, object]:
    return tomllib.loads((config_dir / "config.toml").read_text(encoding="utf-8"))


def _add(cli, name: str = "district", *extra: str, env=CRED_ENV, input=None):
    return cli("config", "add", name, "--base-url", BASE, *extra, env=env, input=input)


# --- add -----------------------------------------------------------------------------------
def test_add_takes_credentials_from_the_environment_into_the_keyring(
    cli, config_dir: Path, memory_keyring
) -> None:
    result = _add(cli, "district", "--school", "0123456", "--school", "6543210")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "Added profile district (default): Client Key and Client Secret stored in the OS keyring ("
    )
    assert memory_keyring.entries == {
        (SERVICE_NAME, "district:client_key"): KEY,
        (SERVICE_NAME, "district:client_secret"): SECRET,
    }
    document = _config(config_dir)
    assert document["version"] == 1
    assert document["default"] == "district"
    table = document["profiles"]["district"]  # type: ignore[index]
    assert table == {
        "base_url": BASE,
        "students_endpoint": "/api/v1/students/",
        "reports_endpoint": "/score-reports/",
        "token_endpoint": "/api/v1/token/",
        "schools": ["0123456", "6543210"],
        "expires": date.today() + timedelta(days=365),
        "credentials_source": "keyring",
    }


def test_add_keeps_secrets_out_of_files_and_output_even_with_debug(
    cli, config_dir: Path, data_dir: Path
) -> None:
    results = [
        cli("--debug", "config", "add", "district", "--base-url", BASE, env=CRED_ENV),
        cli("--debug", "config", "show", "district", env={}),
        cli("--debug", "config", "show", "--json", env=CRED_ENV),
        cli("--debug", "config", "list"),
        cli("--debug", "config", "rotate", "district", env=CRED_ENV),
        cli("--debug", "config", "add", "district", "--base-url", BASE, env=CRED_ENV),  # error
    ]
    assert [r.exit_code for r in results] == [0, 0, 0, 0, 0, 2]
    for result in results:
        assert KEY not in result.output and SECRET not in result.output
    files = [p for p in config_dir.parent.rglob("*") if p.is_file()]
    assert config_dir / "config.toml" in files
    for path in files:
        content = path.read_bytes()
        assert KEY.encode() not in content and SECRET.encode() not in content, path


def test_add_with_secret_on_stdin_takes_the_key_from_the_environment(cli, memory_keyring) -> None:
    result = _add(
        cli,
        "district",
        "--client-secret-stdin",
        env={"CAASPP_CLIENT_KEY": KEY},
        input=f"{SECRET}\nignored second line\n",
    )
    assert result.exit_code == 0, result.output
    assert memory_keyring.entries[(SERVICE_NAME, "district:client_secret")] == SECRET
    assert SECRET not in result.output


def test_add_with_empty_stdin_is_refused(cli) -> None:
    result = _add(
        cli, "district", "--client-secret-stdin", env={"CAASPP_CLIENT_KEY": KEY}, input="\n"
    )
    assert result.exit_code == 2
    assert "first line of stdin is empty" in result.stderr


def test_add_without_terminal_or_environment_says_how_to_give_credentials(
    cli, config_dir: Path
) -> None:
    result = _add(cli, "district", env={})
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [
        "error: no Client Key given: stdin is not a terminal to ask for it.",
        "hint: set CAASPP_CLIENT_KEY, or run the command in a terminal to be asked.",
    ]
    assert not (config_dir / "config.toml").exists()


def test_add_prompts_with_hidden_input_on_a_terminal(
    cli, monkeypatch: pytest.MonkeyPatch, memory_keyring
) -> None:
    monkeypatch.setattr(prompts, "stdin_is_terminal", lambda: True)
    result = _add(cli, "district", env={}, input=f"{KEY}\n{SECRET}\n")
    assert result.exit_code == 0, result.output
    assert "Client Key (input hidden)" in result.output
    assert "Client Secret (input hidden)" in result.output
    assert KEY not in result.output and SECRET not in result.output
    assert profiles.activate("district").credentials == Credentials(KEY, SECRET)


def test_add_has_no_option_for_the_key_or_secret(cli) -> None:
    for option in ("--client-key", "--client-secret", "--key", "--secret"):
        result = _add(cli, "district", option, "value")
        assert result.exit_code == 2
        assert "No such option" in result.stderr


def test_add_env_credentials_stores_nothing_and_needs_no_keyring(cli, config_dir: Path) -> None:
    keyring.set_keyring(fail.Keyring())
    result = _add(cli, "server", "--env-credentials", env={})
    assert result.exit_code == 0, result.output
    assert "read from CAASPP_CLIENT_KEY and CAASPP_CLIENT_SECRET at run time" in result.stdout
    assert _config(config_dir)["profiles"]["server"]["credentials_source"] == "env"  # type: ignore[index]


def test_add_refuses_plain_http_to_another_host_in_one_line(cli, config_dir: Path) -> None:
    result = cli(
        "config", "add", "district", "--base-url", "http://caaspp-aws.ets.org", env=CRED_ENV
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: the base URL 'http://caaspp-aws.ets.org' uses http://")
    assert not (config_dir / "config.toml").exists()


def test_add_accepts_plain_http_to_this_machine(cli) -> None:
    result = cli("config", "add", "sandbox", "--base-url", "http://127.0.0.1:8765", env=CRED_ENV)
    assert result.exit_code == 0, result.output


def test_first_profile_becomes_the_default_and_later_ones_do_not(cli, config_dir: Path) -> None:
    assert _add(cli, "first").exit_code == 0
    result = _add(cli, "second")
    assert result.stdout.startswith("Added profile second: ")
    assert _config(config_dir)["default"] == "first"
    assert _add(cli, "third", "--default").exit_code == 0
    assert _config(config_dir)["default"] == "third"


@pytest.mark.parametrize("name", ["has space", "a/b", "x" * 65, "-x"])
def test_add_refuses_unsafe_profile_names(cli, name: str) -> None:
    result = cli("config", "add", "--base-url", BASE, "--", name, env=CRED_ENV)
    assert result.exit_code == 2
    assert "not a valid profile name" in result.stderr


def test_add_refuses_a_duplicate_name_and_points_to_rotate(cli, memory_keyring) -> None:
    assert _add(cli, "district").exit_code == 0
    result = _add(cli, "district", env={"CAASPP_CLIENT_KEY": "other", "CAASPP_CLIENT_SECRET": "x"})
    assert result.exit_code == 2
    assert "error: a profile named 'district' already exists." in result.stderr
    assert "caaspp config rotate district" in result.stderr
    assert memory_keyring.entries[(SERVICE_NAME, "district:client_key")] == KEY


def test_add_with_expires_stores_that_date_and_refuses_past_ones(cli, config_dir: Path) -> None:
    assert _add(cli, "district", "--expires", "2031-06-30").exit_code == 0
    assert _config(config_dir)["profiles"]["district"]["expires"] == date(2031, 6, 30)  # type: ignore[index]
    result = _add(cli, "old", "--expires", "2020-01-01")
    assert result.exit_code == 2
    assert "the expiry date 2020-01-01 is in the past" in result.stderr
    result = _add(cli, "bad", "--expires", "30/06/2031")
    assert result.exit_code == 2


def test_add_within_14_days_of_expiry_warns_at_once(cli) -> None:
    soon = (date.today() + timedelta(days=10)).isoformat()
    result = _add(cli, "district", "--expires", soon)
    assert result.exit_code == 0
    assert f"warning: credentials of profile district expire in 10 days ({soon})" in result.stderr


def test_add_without_a_keyring_but_with_both_variables_says_env_credentials_first(
    cli, config_dir: Path
) -> None:
    keyring.set_keyring(fail.Keyring())
    result = _add(cli, "district")
    assert result.exit_code == 4
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "error: no usable OS keyring to store the credentials in; CAASPP_CLIENT_KEY and "
        "CAASPP_CLIENT_SECRET are set: add the profile with --env-credentials to read them at "
        "run time."
    )
    assert lines[1].startswith(f"hint: caaspp config add district --base-url {BASE} --env-")
    assert SECRET not in result.output
    assert not (config_dir / "config.toml").exists()
    again = _add(cli, "district", "--env-credentials")
    assert again.exit_code == 0, again.output


def test_add_without_a_keyring_backend_fails_with_exit_4_and_the_hint(
    cli, config_dir: Path
) -> None:
    keyring.set_keyring(fail.Keyring())
    result = _add(
        cli, "district", "--client-secret-stdin", env={"CAASPP_CLIENT_KEY": KEY}, input="s\n"
    )
    assert result.exit_code == 4
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "error: no usable OS keyring on this machine (keyring.backends.fail.Keyring)."
    )
    assert lines[1].startswith("hint: run a Secret Service (gnome-keyring under D-Bus)")
    assert "PYTHON_KEYRING_BACKEND" in lines[1] and "CAASPP_CLIENT_KEY" in lines[1]
    assert len(lines) == 2
    assert not (config_dir / "config.toml").exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_add_creates_owner_only_config_file_and_dir(cli, config_dir: Path) -> None:
    assert _add(cli).exit_code == 0
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((config_dir / "config.toml").stat().st_mode) == 0o600


# --- list, show ----------------------------------------------------------------------------
def test_list_shows_a_table_with_the_default_marked(cli, profile_factory) -> None:
    profile_factory("north", schools=["0123456"], expires=date(2031, 1, 2))
    profile_factory("south", credentials_source="env")
    result = cli("config", "list")
    assert result.exit_code == 0
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0].split() == [
        "name",
        "default",
        "base",
        "URL",
        "schools",
        "expires",
        "credentials",
    ]
    assert lines[1].split() == [
        "north",
        "*",
        "https://caaspp.example.org",
        "0123456",
        "2031-01-02",
        "keyring",
    ]
    assert lines[2].split()[:3] == ["south", "https://caaspp.example.org", "-"]
    assert lines[2].split()[-1] == "env"


def test_list_json_and_empty_list(cli, profile_factory) -> None:
    empty = cli("config", "list")
    assert empty.exit_code == 0 and empty.stdout == ""
    assert "No profiles yet" in empty.stderr
    profile_factory("north")
    data = json.loads(cli("config", "list", "--json").stdout)
    assert [(p["name"], p["default"], p["credentials_source"]) for p in data] == [
        ("north", True, "keyring")
    ]


def test_show_hides_the_key_and_secret_and_says_whether_present(
    cli, profile_factory, memory_keyring
) -> None:
    profile_factory("district", client_key=KEY, client_secret=SECRET)
    result = cli("config", "show", "district")
    assert result.exit_code == 0
    assert "client key          <hidden> (in the keyring)" in result.stdout
    assert "client secret       <hidden> (in the keyring)" in result.stdout
    assert "token URL           https://caaspp.example.org/api/v1/token/" in result.stdout
    assert KEY not in result.output and SECRET not in result.output

    del memory_keyring.entries[(SERVICE_NAME, "district:client_secret")]
    result = cli("config", "show")  # the default profile
    assert "client secret       missing from the keyring" in result.stdout

    data = json.loads(cli("config", "show", "--json", env=CRED_ENV).stdout)
    assert data["client_key"] == {"value": "<hidden>", "present": True, "origin": "env"}


def test_show_with_an_unavailable_keyring_still_shows_the_profile(cli, profile_factory) -> None:
    profile_factory("district")
    keyring.set_keyring(fail.Keyring())
    result = cli("config", "show", "district")
    assert result.exit_code == 0
    assert "client key          unknown (the keyring is unavailable)" in result.stdout
    assert "warning: no usable OS keyring" in result.stderr


def test_show_follows_the_global_profile_option(cli, profile_factory) -> None:
    profile_factory("north")
    profile_factory("south")
    result = cli("--profile", "south", "config", "show")
    assert "name                south" in result.stdout
    result = cli("config", "show", env={"CAASPP_PROFILE": "south"})
    assert "name                south" in result.stdout


def test_unknown_profile_lists_the_known_names(cli, profile_factory) -> None:
    profile_factory("north")
    result = cli("config", "show", "east")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: no profile named 'east'.",
        "hint: known profiles: north.",
    ]


def test_no_profile_at_all_says_to_run_config_add(cli) -> None:
    result = cli("config", "show")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: no profile configured.",
        "hint: run `caaspp config add NAME --base-url URL` to add one.",
    ]


def test_corrupt_config_file_is_exit_2_in_one_line(cli, config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / "config.toml").write_text("[profiles.district\nbase_url = 1\n")
    for args in (
        ("config", "list"),
        ("config", "show", "district"),
        ("config", "add", "x", "--base-url", BASE),
    ):
        result = cli(*args, env=CRED_ENV)
        assert result.exit_code == 2
        error, hint = result.stderr.splitlines()
        assert error.startswith(f"error: {config_dir / 'config.toml'} is not valid TOML (")
        assert hint.startswith("hint: fix the file by hand")
        assert "Traceback" not in result.output


# --- expiry through the commands ----------------------------------------------------------
def test_commands_warn_within_14_days_of_expiry(cli, sandbox_profile_factory) -> None:
    soon = date.today() + timedelta(days=7)
    sandbox_profile_factory("district", expires=soon)
    result = cli("config", "test")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        f"warning: credentials of profile district expire in 7 days ({soon.isoformat()}): "
        "generate new ones in TOMS, then run `caaspp config rotate district`"
    )


def test_commands_refuse_expired_credentials_with_the_rotate_hint(cli, profile_factory) -> None:
    past = date.today() - timedelta(days=2)
    profile_factory("district", expires=past)
    result = cli("config", "test", "district")
    assert result.exit_code == 4
    assert result.stderr.splitlines()[0] == (
        f"error: the credentials of profile 'district' expired on {past.isoformat()}."
    )
    assert "caaspp config rotate district" in result.stderr
    listed = cli("config", "list")
    assert f"{past.isoformat()} (expired)" in listed.stdout


# --- test: a real token endpoint -----------------------------------------------------------
@pytest.fixture
def sandbox_profile_factory(sandbox, profile_factory):
    """``profile_factory`` for profiles that point at the running sandbox, with its
    credentials unless others are given."""

    def make(name: str = "district", **fields):
        fields.setdefault("client_key", DEMO_CLIENT_KEY)
        fields.setdefault("client_secret", DEMO_CLIENT_SECRET)
        return profile_factory(name, base_url=sandbox.base_url, **fields)

    return make


def test_config_test_reports_a_token(cli, sandbox, sandbox_profile_factory) -> None:
    sandbox_profile_factory("district")
    result = cli("config", "test", "district")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"Profile district: {sandbox.base_url}/api/v1/token/ issued a Bearer token "
        "valid for 3600 s; the Client Key and Client Secret work.\n"
    )
    assert result.stderr == ""


def test_config_test_with_a_wrong_secret_says_so_with_exit_4(cli, sandbox_profile_factory) -> None:
    sandbox_profile_factory("district", client_secret="not-the-sandbox-secret")
    result = cli("config", "test", "district")
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [
        "error: ETS refused the Client Key and Client Secret of this profile.",
        "hint: they may have been regenerated in TOMS (for another vendor) or have expired: "
        "run `caaspp config rotate` to store the current pair.",
    ]
    assert result.stdout == ""


def test_config_test_of_an_unreachable_service_says_it_could_not_reach_it(
    cli, profile_factory, monkeypatch
) -> None:
    from helpers import free_port

    quick_retries(monkeypatch)
    base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    profile_factory("district", base_url=base_url)
    result = cli("config", "test", "district")
    assert result.exit_code == 3
    error, hint = result.stderr.splitlines()
    assert error.startswith(f"error: could not reach {base_url}: ")
    assert hint == "hint: check the network connection and the base URL of this profile."
    assert result.stdout == ""


def test_config_test_against_a_real_token_endpoint(cli, profile_factory) -> None:
    httpx = pytest.importorskip("httpx")
    respx = pytest.importorskip("respx")
    profile_factory("district", client_key=KEY, client_secret=SECRET)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("https://caaspp.example.org/api/v1/token/").mock(
            return_value=httpx.Response(
                200, json={"access_token": "tok", "token_type": "Bearer", "expires_in": 600}
            )
        )
        result = cli("config", "test", "district")
    assert result.exit_code == 0, result.output
    assert "issued a Bearer token valid for 600 s" in result.stdout
    from caaspp_cli.ets.contract import basic_auth_header

    assert route.calls.last.request.headers["Authorization"] == basic_auth_header(KEY, SECRET)


def test_config_test_with_env_override_and_no_keyring(cli, sandbox_profile_factory) -> None:
    # What the keyring holds is wrong: only the environment's pair can get a token.
    sandbox_profile_factory("district", client_key=KEY, client_secret=SECRET)
    keyring.set_keyring(fail.Keyring())
    demo = {"CAASPP_CLIENT_KEY": DEMO_CLIENT_KEY, "CAASPP_CLIENT_SECRET": DEMO_CLIENT_SECRET}
    worked = cli("config", "test", env=demo)
    assert worked.exit_code == 0, worked.output
    result = cli("config", "test")
    assert result.exit_code == 4
    assert "no usable OS keyring" in result.stderr


# --- rotate --------------------------------------------------------------------------------
def test_rotate_replaces_the_keyring_entries_and_resets_expiry(
    cli, profile_factory, memory_keyring, config_dir: Path
) -> None:
    profile_factory("district", expires=date.today() + timedelta(days=3))
    result = cli("config", "rotate", "district", env=CRED_ENV)
    assert result.exit_code == 0, result.output
    assert memory_keyring.entries[(SERVICE_NAME, "district:client_key")] == KEY
    assert memory_keyring.entries[(SERVICE_NAME, "district:client_secret")] == SECRET
    expires = _config(config_dir)["profiles"]["district"]["expires"]  # type: ignore[index]
    assert expires == date.today() + timedelta(days=365)
    assert "warning" not in result.stderr

    result = cli(
        "config",
        "rotate",
        "district",
        "--expires",
        "2030-05-06",
        "--client-secret-stdin",
        env={"CAASPP_CLIENT_KEY": "k2"},
        input="s2\n",
    )
    assert result.exit_code == 0, result.output
    assert memory_keyring.entries[(SERVICE_NAME, "district:client_secret")] == "s2"
    assert _config(config_dir)["profiles"]["district"]["expires"] == date(2030, 5, 6)  # type: ignore[index]


def test_rotate_an_env_profile_only_resets_the_expiry(cli, profile_factory, memory_keyring):
    profile_factory("server", credentials_source="env")
    result = cli("config", "rotate", "server", "--expires", "2030-01-01", env={})
    assert result.exit_code == 0, result.output
    assert "put the new ones in the environment of your jobs" in result.stdout
    assert memory_keyring.entries == {}


def test_rotate_unknown_profile_is_refused_before_asking(cli) -> None:
    result = cli("config", "rotate", "nobody", env={})
    assert result.exit_code == 2
    assert "no profile named 'nobody'" in result.stderr


# --- remove --------------------------------------------------------------------------------
def test_remove_with_yes_deletes_profile_and_keyring_entries(
    cli, profile_factory, memory_keyring, config_dir: Path
) -> None:
    profile_factory("north")
    profile_factory("south")
    result = cli("config", "remove", "north", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Removed profile north.\n"
    assert "Default profile now: south" in result.stderr
    assert all(not user.startswith("north:") for _, user in memory_keyring.entries)
    assert _config(config_dir)["default"] == "south"
    result = cli("config", "remove", "south", "-y")
    assert "No default profile now." in result.stderr
    assert memory_keyring.entries == {}
    assert "default" not in _config(config_dir)


def test_remove_asks_and_a_no_keeps_the_profile(cli, profile_factory, memory_keyring) -> None:
    profile_factory("district")
    result = cli("config", "remove", "district", input="n\n")
    assert result.exit_code == 0
    assert "Remove profile district and its Client Key and Client Secret" in result.output
    assert "Kept profile district." in result.stderr
    assert profiles.load_store().names() == ["district"]
    assert len(memory_keyring.entries) == 2

    result = cli("config", "remove", "district", input="y\n")
    assert result.exit_code == 0
    assert profiles.load_store().names() == []


def test_remove_without_an_answer_keeps_the_profile(cli, profile_factory) -> None:
    profile_factory("district")
    result = cli("config", "remove", "district")
    assert result.exit_code == 2
    assert "not removed: no confirmation was given" in result.stderr
    assert "--yes" in result.stderr
    assert profiles.load_store().names() == ["district"]


def test_remove_with_a_broken_keyring_warns_how_to_clean_up(cli, profile_factory) -> None:
    profile_factory("district")
    keyring.set_keyring(fail.Keyring())
    result = cli("config", "remove", "district", "--yes")
    assert result.exit_code == 0
    assert "warning: its keyring entries were not removed" in result.stderr
    assert "'district:client_key'" in result.stderr


# --- default -------------------------------------------------------------------------------
def test_default_sets_the_default_profile(cli, profile_factory, config_dir: Path) -> None:
    profile_factory("north")
    profile_factory("south")
    result = cli("config", "default", "south")
    assert result.exit_code == 0
    assert result.stdout == "Default profile: south\n"
    assert _config(config_dir)["default"] == "south"
    assert cli("config", "default", "west").exit_code == 2


def test_every_config_command_has_help(cli) -> None:
    paths = [path for path in command_paths() if path[:1] == ["config"] and len(path) > 1]
    assert ["config", "smtp"] in paths and ["config", "smtp-test"] in paths
    for path in paths:
        result = cli(*path, "--help")
        assert result.exit_code == 0, path
        assert "Usage: caaspp " + " ".join(path) in result.stdout


# --- mail profiles beside connection profiles ------------------------------------------------
def _add_mail(cli, name: str = "district-mail", *extra: str, env=None):
    return cli(
        "config",
        "smtp",
        name,
        "--host",
        "127.0.0.1",
        "--security",
        "none",
        "--from",
        "Lincoln USD <reports@lincoln.example.org>",
        *extra,
        env=env,
    )


def test_list_shows_mail_profiles_beside_connection_profiles(cli) -> None:
    assert _add(cli, "district").exit_code == 0
    assert _add_mail(cli).exit_code == 0
    listed = cli("config", "list")
    assert listed.exit_code == 0, listed.output
    assert "district" in listed.stdout and "Mail profiles" in listed.stdout
    assert "127.0.0.1:25 (none)" in listed.stdout
    kinds = {(p["kind"], p["name"]) for p in json.loads(cli("config", "list", "--json").stdout)}
    assert kinds == {("ets", "district"), ("mail", "district-mail")}


def test_show_and_remove_find_a_mail_profile_by_its_name(cli, config_dir: Path) -> None:
    assert _add_mail(cli).exit_code == 0
    shown = cli("config", "show", "district-mail")
    assert shown.exit_code == 0, shown.output
    assert "mail (caaspp config smtp)" in shown.stdout
    assert "reports@lincoln.example.org" in shown.stdout
    removed = cli("config", "remove", "district-mail", "--yes")
    assert removed.exit_code == 0, removed.output
    assert removed.stdout.strip() == "Removed mail profile district-mail."
    assert "smtp" not in _config(config_dir)
    again = cli("config", "show", "district-mail", "--mail")
    assert again.exit_code == 2
    assert "no SMTP profile named 'district-mail'" in again.stderr


def test_a_name_used_by_both_kinds_is_told_apart_with_mail(cli, memory_keyring) -> None:
    assert _add(cli, "district").exit_code == 0
    assert _add_mail(cli, "district").exit_code == 0
    ets = cli("config", "show", "district")
    assert "base URL" in ets.stdout and "--mail shows it" in ets.stderr
    mail = cli("config", "show", "district", "--mail")
    assert "mail (caaspp config smtp)" in mail.stdout
    assert cli("config", "remove", "district", "--mail", "--yes").exit_code == 0
    assert cli("config", "show", "district").exit_code == 0  # the connection profile stays
    assert memory_keyring.entries[(SERVICE_NAME, "district:client_key")] == KEY


def test_config_smtp_without_a_keyring_names_the_smtp_variable(cli) -> None:
    keyring.set_keyring(fail.Keyring())
    args = ["config", "smtp", "m", "--host", "smtp.example.org", "--user", "u@example.org"]
    args += ["--from", "reports@lincoln.example.org"]
    plain = cli(*args)
    assert plain.exit_code == 4
    assert "CAASPP_SMTP_PASSWORD" in plain.stderr and "CAASPP_CLIENT_KEY" not in plain.stderr
    with_env = cli(*args, env={"CAASPP_SMTP_PASSWORD": "pw-123456"})
    assert with_env.exit_code == 4
    assert with_env.stderr.splitlines()[0] == (
        "error: no usable OS keyring to store the SMTP password in; CAASPP_SMTP_PASSWORD is "
        "set: add the profile with --env-password to read it at run time."
    )
    assert "pw-123456" not in with_env.output
