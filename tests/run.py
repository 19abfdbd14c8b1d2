#!/usr/bin/env python3
"""Set up and run caaspp's whole test suite: `python3 tests/run.py [pytest args...]`.

What it does, in order, so that it works on a fresh machine with only Python 3.11 and pip:
1. On Debian or Ubuntu, as root, installs the system tools the tests use from outside the
   project: qpdf and poppler-utils (PDF checks), gnome-keyring and dbus (the Secret Service
   test). Elsewhere it says which are missing; the tests that need them are skipped.
2. Creates `.venv` beside the project (no pip needed inside: it falls back to the system
   pip's `--python` option where `ensurepip` is missing, as on Debian) and installs the
   project with its `test` and `fonts` extras.
3. Runs ruff, mypy and pytest; pytest runs under a private D-Bus session with an unlocked
   gnome-keyring when those are installed.
The exit code is non-zero when any step fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
DEBIAN_PACKAGES = {
    "qpdf": "qpdf",
    "pdftoppm": "poppler-utils",
    "gnome-keyring-daemon": "gnome-keyring",
    "dbus-run-session": "dbus",
}


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*cmd: str | Path, **kwargs: object) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)  # type: ignore[call-overload]


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def install_system_packages() -> None:
    missing = sorted({pkg for tool, pkg in DEBIAN_PACKAGES.items() if not shutil.which(tool)})
    if not missing:
        return
    can_apt = shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0
    if not can_apt:
        step(
            "not installing " + ", ".join(missing)
            + " (needs Debian/Ubuntu and root); the tests that use them will be skipped"
        )
        return
    step("installing " + ", ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run("apt-get", "update", "-qq", env=env, stdout=subprocess.DEVNULL)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env,
        stdout=subprocess.DEVNULL)


def ensure_venv() -> Path:
    python = venv_python()
    if not python.exists():
        step(f"creating {VENV.name}")
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except subprocess.CalledProcessError:
            # Debian's Python has no ensurepip: make the venv bare and let the system pip
            # install into it with --python.
            shutil.rmtree(VENV, ignore_errors=True)
            venv.EnvBuilder(with_pip=False).create(VENV)
    return python


def pip_install(python: Path, *args: str) -> None:
    has_pip = subprocess.run(
        [str(python), "-m", "pip", "--version"], capture_output=True
    ).returncode == 0
    base = [python, "-m", "pip"] if has_pip else [sys.executable, "-m", "pip", "--python", python]
    run(*base, "install", "--quiet", "--disable-pip-version-check", *args)


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    install_system_packages()
    python = ensure_venv()
    step("installing caaspp with its test and fonts extras")
    pip_install(python, "-e", ".[test,fonts]")
    bindir = python.parent
    try:
        step("ruff")
        run(bindir / "ruff", "check", "caaspp_cli", "tests", "benchmarks", "examples")
        step("mypy")
        run(bindir / "mypy")
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    step("pytest")
    pytest = [str(python), "-m", "pytest", *argv]
    wrapper = ROOT / ".ci" / "with-secret-service"
    if os.name != "nt" and shutil.which("dbus-run-session") and shutil.which(
        "gnome-keyring-daemon"
    ):
        env = dict(os.environ, CAASPP_REQUIRE_SECRET_SERVICE="1")
        return subprocess.run(["bash", str(wrapper), *pytest], env=env).returncode
    return subprocess.run(pytest).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
