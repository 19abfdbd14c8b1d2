"""Bad input: config.toml edited by hand, and config paths of the wrong kind.

See tests/bad_input_checks.py for what each refusal must look like.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bad_input_checks import (
    ANA,
    BAD,
    _roster,
    bad_input,
)
from helpers import write_send_inputs


# --- config.toml, edited by hand ---------------------------------------------------------------
@dataclass(frozen=True)
class BrokenConfig:
    """config.toml as found: the commands of ``kind`` refuse it, naming ``words``; ``never``
    must not be echoed (a secret pasted into the file)."""

    kind: str  # "ets": every command reading profiles; "smtp": those using the SMTP profile
    words: tuple[str, ...]
    never: str | None = None
    names_the_file: bool = True


CONFIGS: dict[str, BrokenConfig | None] = {
    "not_toml.toml": BrokenConfig("ets", ("is not valid TOML", "line 2")),
    "not_utf8.toml": BrokenConfig("ets", ("is not UTF-8 text",)),
    "duplicate_profile.toml": BrokenConfig("ets", ("is not valid TOML", "twice")),
    "schools_not_a_list.toml": BrokenConfig("ets", ("profile 'district'", "schools")),
    "base_url_a_number.toml": BrokenConfig("ets", ("profile 'district'", "base_url")),
    "expires_not_a_date.toml": BrokenConfig("ets", ("profile 'district'", "expires")),
    "secret_in_config.toml": BrokenConfig(
        "ets", ("unknown key 'client_secret'",), never="hand-pasted-SECRET-9d41c"
    ),
    "profile_without_base_url.toml": BrokenConfig("ets", ("base_url: field required",)),
    "profiles_not_a_table.toml": BrokenConfig("ets", ("'profiles' key that is not a table",)),
    "profile_not_a_table.toml": BrokenConfig("ets", ("profile 'district' that is not a table",)),
    "default_names_no_profile.toml": BrokenConfig("ets", ("'distrcit' as the default",)),
    "version_from_the_future.toml": BrokenConfig("ets", ("has version 2",)),
    "http_to_a_remote_host.toml": BrokenConfig("ets", ("http://", "HTTPS")),
    "profile_name_with_spaces.toml": BrokenConfig("ets", ("'my district' is not a valid",)),
    "credentials_source_unknown.toml": BrokenConfig("ets", ("credentials_source",)),
    "smtp_not_a_table.toml": BrokenConfig("smtp", ("'smtp' key that is not a table",)),
    "smtp_profile_not_a_table.toml": BrokenConfig(
        "smtp", ("SMTP profile 'district' that is not a table",)
    ),
    "smtp_without_host.toml": BrokenConfig("smtp", ("host: field required",)),
    "smtp_without_from.toml": BrokenConfig("smtp", ("from: field required",)),
    "smtp_port_as_text.toml": BrokenConfig("smtp", ("port",)),
    "smtp_port_out_of_range.toml": BrokenConfig("smtp", ("port", "65535")),
    "smtp_security_unknown.toml": BrokenConfig("smtp", ("security",)),
    "smtp_from_not_an_address.toml": BrokenConfig("smtp", ("From address",)),
    "smtp_password_in_config.toml": BrokenConfig(
        "smtp", ("unknown key 'password'",), never="hand-pasted-PASSWORD-51e7"
    ),
    "smtp_clear_text_to_remote.toml": BrokenConfig("smtp", ("clear text",)),
    "smtp_host_is_a_url.toml": BrokenConfig("smtp", ("not a mail server host name",)),
    "smtp_empty_user.toml": BrokenConfig("smtp", ("user name is empty",)),
    "smtp_ca_file_missing.toml": BrokenConfig(
        "smtp", ("the CA file /nonexistent/district-ca.pem cannot be read",), names_the_file=False
    ),
    "utf8_with_bom.toml": None,  # Notepad's UTF-8: read as it is
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_file(cli: Any, config_dir: Path, tmp_path: Path, name: str) -> None:
    config_dir.mkdir()
    config = config_dir / "config.toml"
    config.write_bytes((BAD / "config" / name).read_bytes())
    case = CONFIGS[name]
    roster = _roster(tmp_path / "roster.csv", ["1000000001"])
    inputs = write_send_inputs(tmp_path / "send", [ANA])
    ets_commands = [
        ("config", "list"),
        ("config", "show", "district"),
        ("fetch", "--ssid", "1000000001"),
        ("bulk", str(roster), "--out", str(tmp_path / "out")),
    ]
    smtp_commands = [("config", "smtp-test", "district"), tuple(inputs.args())]
    if case is None:
        listed = cli("config", "list", "--json")
        assert listed.exit_code == 0, listed.output
        assert [p["name"] for p in json.loads(listed.stdout)] == ["district"]
        return
    before = config.read_bytes()
    for command in ets_commands if case.kind == "ets" else smtp_commands:
        result = cli(*command)
        error = bad_input(result, *case.words)
        if case.names_the_file:
            assert str(config) in error
        if case.never is not None:
            assert case.never not in result.output
    assert config.read_bytes() == before  # never "repaired" behind the user's back
    assert not (tmp_path / "out").exists()
    # Refused before any row: no ledger, no send report beside the PDFs.
    assert sorted(p.name for p in inputs.pdfs.iterdir()) == sorted(ANA.files())


def test_config_dir_that_is_a_file_and_config_toml_that_is_a_folder(
    cli: Any, config_dir: Path, tmp_path: Path
) -> None:
    config_dir.parent.mkdir(parents=True, exist_ok=True)
    config_dir.write_text("not a folder", "utf-8")
    bad_input(cli("config", "list"), "config.toml cannot be read")
    config_dir.unlink()
    (config_dir / "config.toml").mkdir(parents=True)
    bad_input(cli("config", "list"), "config.toml cannot be read")
    bad_input(
        cli(
            "config",
            "add",
            "x",
            "--base-url",
            "https://caaspp.example.org",
            env={"CAASPP_CLIENT_KEY": "k", "CAASPP_CLIENT_SECRET": "s"},
        ),
        "config.toml cannot be read",
    )
