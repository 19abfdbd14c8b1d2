from __future__ import annotations

import keyring
import keyring.backend
import keyring.errors
import pytest
from keyring.backends import chainer, fail, null

from caaspp_cli.config import credentials
from caaspp_cli.config.credentials import (
    Credentials,
    EtsSecrets,
    credential_status,
    delete_credentials,
    load_credentials,
    store_credentials,
)
from caaspp_cli.config.secrets import KEY_ENV, SECRET_ENV, SERVICE_NAME, Resolver, Secret
from caaspp_cli.errors import (
    BadInputError,
    CredentialsError,
    ExitCode,
    KeyringUnavailableError,
)

KEY, SECRET = "stored-key", "stored-secret-5e1c"


class RaisingKeyring(keyring.backend.KeyringBackend):
    """A backend whose every call raises the given exception."""

    priority = 0.5

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    def get_password(self, service: str, username: str) -> str | None:
        raise self.exc

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.exc

    def delete_password(self, service: str, username: str) -> None:
        raise self.exc


def test_credentials_repr_hides_both_values() -> None:
    creds = Credentials("k-visible?", "s-visible?")
    assert repr(creds) == "Credentials(client_key=<hidden>, client_secret=<hidden>)"
    assert str(creds) == repr(creds)
    assert "visible" not in f"{creds} {creds!r} {[creds]}"


def test_store_then_load_from_the_keyring(memory_keyring) -> None:
    store_credentials("district", Credentials(KEY, SECRET))
    assert memory_keyring.entries == {
        (SERVICE_NAME, "district:client_key"): KEY,
        (SERVICE_NAME, "district:client_secret"): SECRET,
    }
    assert load_credentials("district") == Credentials(KEY, SECRET)


def test_environment_overrides_the_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    store_credentials("district", Credentials(KEY, SECRET))
    monkeypatch.setenv(KEY_ENV, "env-key")
    monkeypatch.setenv(SECRET_ENV, "env-secret")
    assert load_credentials("district") == Credentials("env-key", "env-secret")


def test_environment_is_used_without_touching_a_missing_keyring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv(KEY_ENV, "env-key")
    monkeypatch.setenv(SECRET_ENV, "env-secret")
    assert load_credentials("district") == Credentials("env-key", "env-secret")
    assert load_credentials("server", source="env") == Credentials("env-key", "env-secret")


def test_missing_credentials_say_what_is_missing_and_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch, memory_keyring
) -> None:
    with pytest.raises(CredentialsError) as caught:
        load_credentials("district")
    assert caught.value.message == (
        "no Client Key and no Client Secret for profile 'district' in the keyring."
    )
    assert "caaspp config rotate district" in (caught.value.hint or "")
    assert KEY_ENV in (caught.value.hint or "")
    assert caught.value.exit_code == ExitCode.CREDENTIALS


def test_one_variable_of_the_pair_is_refused_never_mixed_with_the_keyring(
    memory_keyring, monkeypatch
) -> None:
    memory_keyring.entries[(SERVICE_NAME, "district:client_key")] = KEY
    memory_keyring.entries[(SERVICE_NAME, "district:client_secret")] = SECRET
    monkeypatch.setenv(SECRET_ENV, "a-wrong-secret")
    with pytest.raises(CredentialsError) as caught:
        load_credentials("district")
    assert caught.value.message == (
        "CAASPP_CLIENT_SECRET is set but CAASPP_CLIENT_KEY is not: caaspp uses the "
        "environment's credentials only as a pair."
    )
    assert caught.value.exit_code == ExitCode.CREDENTIALS
    assert "a-wrong-secret" not in str(caught.value.hint)
    monkeypatch.delenv(SECRET_ENV)
    monkeypatch.setenv(KEY_ENV, "only-the-key")
    with pytest.raises(CredentialsError, match="CAASPP_CLIENT_KEY is set but CAASPP_CLIENT_SECRET"):
        load_credentials("district", source="env")


def test_env_profile_without_environment_names_the_missing_variables(
    monkeypatch: pytest.MonkeyPatch, memory_keyring
) -> None:
    store_credentials("server", Credentials(KEY, SECRET))  # never read for an env profile
    with pytest.raises(CredentialsError) as caught:
        load_credentials("server", source="env")
    assert caught.value.message == (
        "profile 'server' takes its credentials from the environment, but CAASPP_CLIENT_KEY "
        "and CAASPP_CLIENT_SECRET are not set."
    )
    monkeypatch.setenv(KEY_ENV, "k")
    with pytest.raises(CredentialsError, match="but CAASPP_CLIENT_SECRET is not:"):
        load_credentials("server", source="env")


@pytest.mark.parametrize(
    "backend",
    [fail.Keyring(), null.Keyring()],
    ids=["fail", "null"],
)
def test_no_keyring_backend_is_one_clear_error_with_the_hint(
    backend: keyring.backend.KeyringBackend,
) -> None:
    keyring.set_keyring(backend)
    for call in (
        lambda: load_credentials("district"),
        lambda: store_credentials("district", Credentials(KEY, SECRET)),
        lambda: delete_credentials("district"),
    ):
        with pytest.raises(KeyringUnavailableError) as caught:
            call()
        assert caught.value.message.startswith("no usable OS keyring on this machine")
        hint = caught.value.hint or ""
        for advice in ("Secret Service", "PYTHON_KEYRING_BACKEND", KEY_ENV, SECRET_ENV):
            assert advice in hint
        assert caught.value.exit_code == ExitCode.CREDENTIALS


def test_a_chainer_with_no_backends_is_no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty chainer stores nothing and says nothing; it must not pass for a keyring.
    monkeypatch.setattr(keyring.backend, "_limit", lambda backend: False)
    keyring.set_keyring(chainer.ChainerBackend())
    with pytest.raises(KeyringUnavailableError, match="no usable OS keyring"):
        store_credentials("district", Credentials(KEY, SECRET))


def test_an_unloadable_backend_setting_is_a_keyring_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "no.such.module.Keyring")
    with pytest.raises(KeyringUnavailableError, match="could not be loaded"):
        load_credentials("district")


@pytest.mark.parametrize(
    ("exc", "problem"),
    [
        (keyring.errors.KeyringLocked("Failed to unlock"), "it is locked and was not unlocked"),
        (keyring.errors.InitError("no collection"), "InitError: no collection"),
        (keyring.errors.NoKeyringError("none"), "no backend is available"),
        (RuntimeError("D-Bus went away"), "RuntimeError: D-Bus went away"),
    ],
)
def test_keyring_failures_in_use_become_keyring_unavailable(exc: Exception, problem: str) -> None:
    keyring.set_keyring(RaisingKeyring(exc))
    with pytest.raises(KeyringUnavailableError) as caught:
        load_credentials("district")
    assert caught.value.message.startswith("could not read the OS keyring (")
    assert caught.value.message.endswith(f"): {problem}.")
    assert "PYTHON_KEYRING_BACKEND" in (caught.value.hint or "")


def test_a_backend_echoing_the_secret_does_not_leak_it() -> None:
    keyring.set_keyring(RaisingKeyring(RuntimeError(f"refused {SECRET} for {KEY}")))
    with pytest.raises(KeyringUnavailableError) as caught:
        store_credentials("district", Credentials(KEY, SECRET))
    assert SECRET not in caught.value.message
    assert KEY not in caught.value.message
    assert "<hidden>" in caught.value.message


def test_delete_removes_both_and_tolerates_absent_entries(memory_keyring) -> None:
    store_credentials("district", Credentials(KEY, SECRET))
    memory_keyring.entries[(SERVICE_NAME, "other:client_key")] = "x"
    delete_credentials("district")
    delete_credentials("district")
    assert memory_keyring.entries == {(SERVICE_NAME, "other:client_key"): "x"}


def test_status_tells_presence_and_origin_without_values(
    monkeypatch: pytest.MonkeyPatch, memory_keyring
) -> None:
    memory_keyring.entries[(SERVICE_NAME, "district:client_key")] = KEY
    status = credential_status("district")
    assert (status.origin, status.key_present, status.secret_present) == ("keyring", True, False)
    assert status.backend and status.backend.endswith("MemoryKeyring")
    assert KEY not in repr(status)

    monkeypatch.setenv(KEY_ENV, "k")
    monkeypatch.setenv(SECRET_ENV, "s")
    assert credential_status("district").origin == "env"
    assert credential_status("district").complete

    monkeypatch.delenv(KEY_ENV)
    keyring.set_keyring(fail.Keyring())
    status = credential_status("district")
    assert status.key_present is None
    assert status.problem and "no usable OS keyring" in status.problem
    env_status = credential_status("server", source="env")
    assert (env_status.key_present, env_status.secret_present) == (False, True)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("ab\x1bcd", "control characters"),
        ("user:name", "contains ':'"),
    ],
)
def test_client_key_input_is_checked(value: str, problem: str) -> None:
    with pytest.raises(BadInputError, match=problem):
        credentials.clean_client_key(value)


def test_client_secret_input_is_trimmed_and_checked() -> None:
    assert credentials.clean_client_secret("  s3cr:et \n") == "s3cr:et"
    with pytest.raises(BadInputError, match="Client Secret is empty"):
        credentials.clean_client_secret("\n")


# --- The one resolver ----------------------------------------------------------------------
def test_the_resolver_asks_only_for_what_neither_the_environment_nor_the_keyring_has(
    memory_keyring,
) -> None:
    memory_keyring.entries[(SERVICE_NAME, "district:client_key")] = KEY
    asked: list[str] = []

    def prompt(secret: Secret) -> str:
        asked.append(secret.label)
        return "typed-secret"

    resolved = Resolver({}, prompt=prompt).resolve(EtsSecrets("district"))
    assert resolved == (KEY, "typed-secret")
    assert asked == ["Client Secret"]
    environ = {KEY_ENV: "env-key", SECRET_ENV: "env-secret"}
    assert Resolver(environ, prompt=prompt).resolve(EtsSecrets("district")) == (
        "env-key",
        "env-secret",
    )
    assert asked == ["Client Secret"]  # the environment came first: nobody was asked


def test_the_resolver_never_reads_the_keyring_for_an_env_only_profile() -> None:
    keyring.set_keyring(fail.Keyring())  # reading it would raise
    with pytest.raises(CredentialsError, match="takes its credentials from the environment"):
        Resolver({}).resolve(EtsSecrets("server", source="env"))
    prompted = Resolver({}, prompt=lambda secret: secret.env).resolve(
        EtsSecrets("server", source="env")
    )
    assert prompted == (KEY_ENV, SECRET_ENV)


def test_a_new_secret_comes_from_its_variable_announced_else_from_the_prompt(
    memory_keyring,
) -> None:
    memory_keyring.entries[(SERVICE_NAME, "district:client_key")] = "the-old-key"
    said: list[str] = []
    wanted = EtsSecrets("district")
    resolver = Resolver({KEY_ENV: "  new-key "}, prompt=lambda s: "typed", announce=said.append)
    assert resolver.ask(wanted.key) == "new-key"  # never the keyring's old value
    assert resolver.ask(wanted.secret) == "typed"
    assert said == ["Using the Client Key in CAASPP_CLIENT_KEY."]


def test_smtp_passwords_use_the_same_resolver(memory_keyring, monkeypatch) -> None:
    from caaspp_cli.config.mail_profiles import make_smtp_profile, smtp_password

    fields = {"host": "smtp.example.org", "from_address": "r@example.org"}
    keyring_profile = make_smtp_profile(name="m", user="u@example.org", **fields)
    env_profile = make_smtp_profile(
        name="e", user="u@example.org", credentials_source="env", **fields
    )
    with pytest.raises(CredentialsError, match="no password for SMTP profile 'm' in the keyring"):
        smtp_password(keyring_profile)
    memory_keyring.entries[(SERVICE_NAME, "smtp:m")] = "pw-keyring"
    assert smtp_password(keyring_profile) == "pw-keyring"
    with pytest.raises(CredentialsError, match="but CAASPP_SMTP_PASSWORD is not set"):
        smtp_password(env_profile)
    monkeypatch.setenv("CAASPP_SMTP_PASSWORD", " pw env ")  # a password is taken as set
    assert smtp_password(keyring_profile) == " pw env "
    assert smtp_password(env_profile) == " pw env "
    assert smtp_password(make_smtp_profile(name="n", **fields)) is None  # no login
