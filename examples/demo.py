#!/usr/bin/env python3
"""caaspp end to end on the local sandbox: `python3 examples/demo.py`.

Installs caaspp into `.venv` beside the project (creating it if needed, also where Debian's
Python lacks ensurepip), starts the sandbox on a free loopback port, adds a connection
profile for it, fetches one student's score reports (English and Spanish), then the
reports of every student in `examples/roster.csv`, protects them with a password per
student, and writes the emails to families as files for review (a dry run: nothing is
sent). Everything goes under `demo-output/`, with its own config folder, so your real
profiles and keyring are never touched; the sandbox is stopped at the end.
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
OUT = ROOT / "demo-output"


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def venv_bin(name: str) -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / f"{name}.exe"
    return VENV / "bin" / name


def install() -> None:
    python = venv_bin("python")
    if not python.exists():
        say(f"creating {VENV}")
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except subprocess.CalledProcessError:
            shutil.rmtree(VENV, ignore_errors=True)
            venv.EnvBuilder(with_pip=False).create(VENV)
    say("installing caaspp")
    probe = subprocess.run([python, "-m", "pip", "--version"], capture_output=True)
    has_pip = probe.returncode == 0
    pip: list[str | Path] = (
        [python, "-m", "pip"] if has_pip else [sys.executable, "-m", "pip", "--python", python]
    )
    subprocess.run(
        # The sandbox is an extra: the demo runs on it.
        [*pip, "install", "--quiet", "--disable-pip-version-check", "-e", f"{ROOT}[sandbox]"],
        check=True,
    )


def caaspp(*args: str, env: dict[str, str], expected: str = "") -> None:
    """Run one command; stop the demo unless it exits 0, or 3 where ``expected`` says why
    rows are left for a person (exit 3: some roster rows need a person, the rest is done)."""
    command = [str(venv_bin("caaspp")), *args]
    print("$ caaspp " + " ".join(args), flush=True)
    code = subprocess.run(command, env=env).returncode
    if code == 3 and expected:
        print(f"(exit 3, as expected here: {expected})", flush=True)
    elif code != 0:
        raise SystemExit(f"demo stopped: caaspp {args[0]} exited with {code}")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun if count == 1 else noun + 's'}"


def main() -> int:
    install()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(mode=0o700)
    env = dict(os.environ)
    env.update(
        CAASPP_CONFIG_DIR=str(OUT / "config"),
        CAASPP_DATA_DIR=str(OUT / "data"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("CAASPP_PROFILE", None)

    say("starting the sandbox (a local ETS-compatible server with synthetic students)")
    # Its own messages go to a log of their own, not between the other steps' output.
    sandbox_log = os.fdopen(
        os.open(OUT / "sandbox.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w"
    )
    sandbox = subprocess.Popen(
        [str(venv_bin("caaspp")), "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=sandbox_log,
        text=True,
        env=env,
    )
    try:
        assert sandbox.stdout is not None
        base_url = sandbox.stdout.readline().strip()
        key = sandbox.stdout.readline().split(":", 1)[1].strip()
        secret = sandbox.stdout.readline().split(":", 1)[1].strip()
        examples: dict[str, str] = {}
        while len(examples) < 12:
            line = sandbox.stdout.readline()
            if not line.startswith("example "):
                break
            case, ssid = line[len("example ") :].split(":", 1)
            examples[case.strip()] = ssid.strip()
        print(f"sandbox at {base_url}", flush=True)

        # Demo credentials come from the environment, as for an unattended job: nothing is
        # stored in this machine's keyring.
        env.update(CAASPP_CLIENT_KEY=key, CAASPP_CLIENT_SECRET=secret)
        say("adding a connection profile for the sandbox")
        caaspp("config", "add", "sandbox", "--base-url", base_url, "--env-credentials", env=env)
        caaspp("config", "test", "sandbox", env=env)

        say("fetching one student's score reports, in English and Spanish")
        caaspp("fetch", "--ssid", examples["spanish"], "--out", str(OUT / "student"), env=env)

        say("fetching the 2025 reports of a whole roster (with rows Excel damaged)")
        caaspp(
            "bulk",
            str(ROOT / "examples" / "roster.csv"),
            "--out",
            str(OUT / "reports"),
            "--year",
            "2025",
            env=env,
            expected="the roster's four SSIDs that Excel damaged and one repeated row are "
            "left for a person, each with its reason in manifest.csv; every other row is done",
        )

        say("the whole season as one nightly job: fetch, protect, send, follow-ups, paper")
        caaspp(
            "config",
            "smtp",
            "demo",
            "--host",
            "127.0.0.1",
            "--security",
            "none",
            "--from",
            "Sandbox Unified Assessment Office <assessment@sandbox-usd.example.org>",
            env=env,
        )
        caaspp(
            "deliver",
            str(ROOT / "examples" / "roster.csv"),
            "--out",
            str(OUT / "season"),
            "--passwords",
            str(OUT / "private" / "season-passwords.csv"),
            "--mail",
            "demo",
            "--year",
            "2025",
            "--print-pack",
            "--dry-run",
            env=env,
        )
        caaspp("status", str(OUT / "season"), "--html", str(OUT / "season-status.html"), env=env)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=15)
        sandbox_log.close()

    say("protecting every report with a password per student; the passwords go apart")
    caaspp(
        "protect",
        str(OUT / "reports"),
        "--out",
        str(OUT / "protected"),
        "--passwords",
        str(OUT / "private" / "passwords.csv"),
        "--roster",
        str(ROOT / "examples" / "roster.csv"),
        env=env,
    )

    say("writing the emails that would go to families (a dry run: nothing is sent)")
    caaspp(
        "send",
        "--roster",
        str(ROOT / "examples" / "roster.csv"),
        "--pdfs",
        str(OUT / "protected"),
        "--passwords",
        str(OUT / "private" / "passwords.csv"),
        "--smtp",
        "demo",
        "--dry-run",
        "--outbox",
        str(OUT / "outbox"),
        env=env,
        expected="the same five rows get no email, each with its reason in send-report.csv",
    )

    say("the TOMS route: a merged download from TOMS, split into one PDF per report")
    caaspp(
        "sandbox",
        "--students",
        "30",
        "--toms-export",
        str(OUT / "toms"),
        "--roster-out",
        str(OUT / "toms-roster.csv"),
        env=env,
    )
    caaspp(
        "split",
        str(OUT / "toms" / "toms-download.zip"),
        "--out",
        str(OUT / "toms-reports"),
        "--roster",
        str(OUT / "toms-roster.csv"),
        env=env,
    )

    student = sorted((OUT / "student").glob("*.pdf"))
    protected = sorted((OUT / "protected").glob("*.pdf"))
    say("done")
    folder = (OUT / "student").relative_to(ROOT)
    print(f"  {plural(len(student), 'report')} of one student in {folder}")
    for path in student:
        print(f"    {path.name}  ({path.stat().st_size // 1024} KB)")
    print(f"  manifest of the roster:  {(OUT / 'reports' / 'manifest.csv').relative_to(ROOT)}")
    print(
        f"  {plural(len(protected), 'protected report')} in {(OUT / 'protected').relative_to(ROOT)}"
    )
    sheet = (OUT / "private" / "passwords.csv").relative_to(ROOT)
    print(f"  their passwords (keep apart): {sheet}")
    split_out = (OUT / "toms-reports").relative_to(ROOT)
    split = len(list((OUT / "toms-reports").glob("*.pdf")))
    print(
        f"  {plural(split, 'report')} split from the TOMS "
        f"download in {split_out}, ready for protect and send as the bulk folder"
    )
    season = (OUT / "season").relative_to(ROOT)
    print(
        f"  a season folder as `caaspp deliver` keeps it: {season} (follow-up.csv, print/, "
        f"outbox/); where it stands: {(OUT / 'season-status.html').relative_to(ROOT)}"
    )
    emails = sorted((OUT / "outbox").rglob("*.eml"))
    print(
        f"  {plural(len(emails), 'email')} for review, report and password apart: "
        f"{(OUT / 'outbox').relative_to(ROOT)}"
    )
    return 0 if student and protected else 1


if __name__ == "__main__":
    sys.exit(main())
