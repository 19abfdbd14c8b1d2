#!/usr/bin/env python3
"""Set up and run caaspp's whole test suite: `python3 tests/run.py [pytest args...]`.

What it does, in order, so that it works on a fresh machine with only Python 3.11 and pip:
1. On Debian or Ubuntu, as root, installs the system tools the tests use from outside the
   project: qpdf and poppler-utils (PDF checks), gnome-keyring and dbus (the Secret Service
   test), chromium (the status page in a real browser). Elsewhere it says which are
   missing; the tests that need them are skipped, except on CI (CI set), where a missing
   browser fails its test.
2. Creates `.venv` beside the project (no pip needed inside: it falls back to the system
   pip's `--python` option where `ensurepip` is missing, as on Debian) and installs exactly
   the versions in `requirements/test-lock.txt`, hashes checked, then caaspp itself from
   this checkout without touching its dependencies.
3. Runs ruff (lint and format check), mypy and pytest; pytest runs in parallel under a
   private D-Bus session with an unlocked gnome-keyring when those are installed.
The exit code is non-zero when any step fails.

Two other modes:
- `--latest`: the same steps in `.venv-latest`, with the newest versions pyproject.toml
  allows instead of the lock. Run it before refreshing the lock, to see drift early; its
  failures are news, not a broken build.
- `--lock [--upgrade]`: rewrite `requirements/test-lock.txt` from pyproject.toml and
  `requirements/build.in` with a pinned uv (installed into `.venv-tools`), then stop. Plain
  `--lock` keeps every pin it can (after a dependency was added or a range changed);
  `--lock --upgrade` moves everything to the newest versions allowed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "test-lock.txt"
BUILD_IN = ROOT / "requirements" / "build.in"
# The tool that writes the lock is itself pinned, so that a refresh is reproducible too.
UV = "uv==0.13.9"
DEBIAN_PACKAGES = {
    "qpdf": "qpdf",
    "pdftoppm": "poppler-utils",
    "gnome-keyring-daemon": "gnome-keyring",
    "dbus-run-session": "dbus",
    "chromium": "chromium",  # a real browser for the HTML caaspp writes (`status --html`)
}
LINTED = ("caaspp_cli", "tests", "benchmarks", "examples")


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*cmd: str | Path, env: dict[str, str] | None = None, quiet: bool = False) -> None:
    subprocess.run(
        [str(c) for c in cmd],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL if quiet else None,
    )


def venv_python(folder: Path) -> Path:
    if os.name == "nt":
        return folder / "Scripts" / "python.exe"
    return folder / "bin" / "python"


def can_install_system_packages() -> bool:
    return bool(shutil.which("apt-get")) and hasattr(os, "geteuid") and os.geteuid() == 0


def install_system_packages() -> None:
    missing = sorted({pkg for tool, pkg in DEBIAN_PACKAGES.items() if not shutil.which(tool)})
    if not missing:
        return
    if not can_install_system_packages():
        step(
            "not installing "
            + ", ".join(missing)
            + " (needs Debian/Ubuntu and root); the tests that use them will be skipped"
        )
        return
    step("installing " + ", ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run("apt-get", "update", "-qq", env=env, quiet=True)
    run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        *missing,
        env=env,
        quiet=True,
    )


def ensure_venv(folder: Path) -> Path:
    python = venv_python(folder)
    if not python.exists():
        step(f"creating {folder.name}")
        try:
            venv.EnvBuilder(with_pip=True).create(folder)
        except subprocess.CalledProcessError:
            # Debian's Python has no ensurepip: make the venv bare and let the system pip
            # install into it with --python.
            shutil.rmtree(folder, ignore_errors=True)
            venv.EnvBuilder(with_pip=False).create(folder)
    return python


def pip_install(python: Path, *args: str) -> None:
    has_pip = (
        subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True).returncode == 0
    )
    base: list[str | Path] = (
        [python, "-m", "pip"] if has_pip else [sys.executable, "-m", "pip", "--python", python]
    )
    run(*base, "install", "--quiet", "--disable-pip-version-check", *args)


def locked_packages() -> list[str]:
    return [
        line.split(" ", 1)[0]
        for line in LOCK.read_text(encoding="utf-8").splitlines()
        if line and not line[0].isspace() and not line.startswith("#") and "==" in line
    ]


def install_locked(python: Path) -> None:
    packages = locked_packages()
    step(
        f"installing the locked versions from {LOCK.relative_to(ROOT)} "
        f"({len(packages)} packages, hashes checked)"
    )
    pip_install(python, "--require-hashes", "--only-binary=:all:", "-r", str(LOCK))
    step("installing caaspp from this checkout (no dependencies: the lock has them)")
    pip_install(python, "--no-deps", "--no-build-isolation", "-e", ".")


def install_latest(python: Path) -> None:
    step("installing the newest versions pyproject.toml allows (--latest: not the lock)")
    pip_install(python, "--upgrade", "--upgrade-strategy", "eager", "-e", ".[test,sandbox,fonts]")
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
    )
    pinned = dict(
        line.split("==", 1) for line in locked_packages() if "==" in line and ";" not in line
    )
    for line in freeze.stdout.splitlines():
        name, _, version = line.partition("==")
        locked = pinned.get(name.lower().replace("_", "-"))
        if locked and locked != version:
            print(f"    {name}: {version} (lock: {locked})", flush=True)


def refresh_lock(upgrade: bool) -> int:
    tools = ROOT / ".venv-tools"
    python = ensure_venv(tools)
    pip_install(python, UV)
    uv = python.parent / ("uv.exe" if os.name == "nt" else "uv")
    step(f"writing {LOCK.relative_to(ROOT)} with {UV}")
    run(
        uv,
        "pip",
        "compile",
        "pyproject.toml",
        str(BUILD_IN.relative_to(ROOT)),
        "--extra",
        "test",
        "--extra",
        "sandbox",
        "--extra",
        "fonts",
        "--universal",
        "--python-version",
        "3.11",
        "--generate-hashes",
        *(["--upgrade"] if upgrade else []),
        "--quiet",
        "-o",
        str(LOCK.relative_to(ROOT)),
    )
    step("done: run `python3 tests/run.py` on the new lock, then commit it")
    return 0


def checks(bindir: Path) -> None:
    step("ruff check")
    run(bindir / "ruff", "check", *LINTED)
    step("ruff format --check")
    run(bindir / "ruff", "format", "--check", *LINTED)
    step("mypy (strict: caaspp_cli)")
    run(bindir / "mypy")
    step("mypy (tests, benchmarks, examples)")
    run(bindir / "mypy", "--config-file", "tests/mypy.ini")


def parallel(argv: list[str]) -> list[str]:
    """pytest-xdist options: one worker a core, each test file kept on one worker (files
    share module-scoped servers), unless the caller chose (`-n 0` runs serially)."""
    if any(arg == "-n" or arg.startswith(("-n", "--numprocesses")) for arg in argv):
        return []
    return ["-n", str(max(1, min(os.cpu_count() or 1, 4))), "--dist", "loadfile"]


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    if argv[:1] == ["--lock"]:
        return refresh_lock(upgrade="--upgrade" in argv[1:])
    latest = argv[:1] == ["--latest"]
    if latest:
        argv = argv[1:]
    install_system_packages()
    python = ensure_venv(ROOT / (".venv-latest" if latest else ".venv"))
    if latest:
        install_latest(python)
    else:
        install_locked(python)
    bindir = python.parent
    try:
        checks(bindir)
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    step("pytest")
    pytest = [str(python), "-m", "pytest", *parallel(argv), *argv]
    wrapper = ROOT / ".ci" / "with-secret-service"
    env = dict(os.environ)
    if browser_required():
        # The browser test fails, rather than skips, when chromium is missing.
        env["CAASPP_REQUIRE_BROWSER"] = "1"
    if (
        os.name != "nt"
        and shutil.which("dbus-run-session")
        and shutil.which("gnome-keyring-daemon")
    ):
        env["CAASPP_REQUIRE_SECRET_SERVICE"] = "1"
        return subprocess.run(["bash", str(wrapper), *pytest], env=env).returncode
    return subprocess.run(pytest, env=env).returncode


def on_ci() -> bool:
    """CI services set CI (``true`` or ``1``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def browser_required() -> bool:
    """Whether chromium must be there: on CI, and wherever this script installs the system
    packages itself (Debian or Ubuntu, as root). Asking only whether it *is* there would let
    a failed install pass as a skipped test."""
    return on_ci() or can_install_system_packages() or bool(shutil.which("chromium"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
