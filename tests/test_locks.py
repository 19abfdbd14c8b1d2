"""One folder lock for every command that writes a folder: real processes, real signals."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from caaspp_cli.errors import ExitCode, FolderBusyError
from caaspp_cli.folderlock import FolderLock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")

_HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from caaspp_cli.folderlock import FolderLock\n"
    "path = Path(sys.argv[1])\n"
    "lock = FolderLock.for_file(path, 'protect', 'password file') if sys.argv[2] == 'file' "
    "else FolderLock.for_folder(path, sys.argv[2])\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


def _holder(path: Path, command: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), command], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from caaspp_cli.sandbox.render import render_report_pdf
    from caaspp_cli.sandbox.world import World

    folder = tmp_path_factory.mktemp("corpus")
    world = World.build(30)
    for student in list(world.students.values())[:4]:
        for report in [r for r in student.reports if r.format == "pdf"][:2]:
            name = f"{student.ssid}_{report.test}_{report.year}_{report.language}.pdf"
            (folder / name).write_bytes(render_report_pdf(world, student, report))
    return folder


def _caaspp(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("caaspp")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )


def test_a_second_protect_into_a_held_folder_is_refused_at_once_naming_the_holder(
    corpus: Path, tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    out = tmp_path / "protected"
    out.mkdir()
    holders.append(holder := _holder(out, "protect"))
    started = time.monotonic()
    result = _caaspp(
        "protect", str(corpus), "--out", str(out), "--passwords", str(tmp_path / "p.csv")
    )
    assert time.monotonic() - started < 30
    assert result.returncode == ExitCode.BUSY, result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert "caaspp protect" in said and f"PID {holder.pid}" in said and "since" in said
    assert "unexpected" not in said.lower()
    assert not list(out.glob("*.pdf")) and not (tmp_path / "p.csv").exists()


def test_two_protects_into_different_folders_with_one_sheet_are_refused(
    corpus: Path, tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    sheet = tmp_path / "passwords.csv"
    holders.append(_holder(sheet, "file"))
    result = _caaspp(
        "protect", str(corpus), "--out", str(tmp_path / "b"), "--passwords", str(sheet)
    )
    assert result.returncode == ExitCode.BUSY, result.stderr
    assert "password file" in " ".join(result.stderr.split())
    assert not sheet.exists()


def test_two_real_protect_runs_at_once_give_each_student_one_password(
    corpus: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    exe = str(Path(sys.executable).with_name("caaspp"))
    args = [exe, "protect", str(corpus), "--out", str(out), "--passwords", str(sheet)]
    runs = [subprocess.Popen(args, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(run.wait(timeout=120) for run in runs)
    for run in runs:
        assert run.stderr is not None
        run.stderr.close()
    assert codes[0] == ExitCode.OK and codes[1] in (ExitCode.OK, ExitCode.BUSY)
    import csv

    with sheet.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    passwords: dict[str, set[str]] = {}
    for row in rows:
        passwords.setdefault(row["ssid"], set()).add(row["password"])
    assert passwords and all(len(found) == 1 for found in passwords.values())
    assert _caaspp(*args[1:]).returncode == ExitCode.OK  # and a re-run is never stuck


def test_purge_while_a_run_holds_the_folder_is_refused_and_removes_nothing(
    corpus: Path, tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    folder = tmp_path / "reports"
    shutil.copytree(corpus, folder)
    (folder / "manifest.csv").write_text("ssid\n")
    holders.append(_holder(folder, "bulk"))
    result = _caaspp("purge", str(folder), "--yes")
    assert result.returncode == ExitCode.BUSY, result.stdout + result.stderr
    assert "caaspp bulk" in " ".join(result.stderr.split())
    assert len(list(folder.glob("*.pdf"))) == len(list(corpus.glob("*.pdf")))


@pytest.mark.posix
def test_a_lock_held_by_a_process_killed_with_sigkill_does_not_block_the_next_run(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    holders.append(holder := _holder(tmp_path, "bulk"))
    with pytest.raises(FolderBusyError):
        FolderLock.for_folder(tmp_path, "fetch")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with FolderLock.for_folder(tmp_path, "fetch"):
        pass


def test_two_real_bulk_runs_into_one_folder_download_each_report_once(
    tmp_path: Path, profile_factory: object
) -> None:
    from collections import Counter

    from caaspp_cli.cli.sandbox import roster_csv
    from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET, SandboxConfig
    from caaspp_cli.sandbox.server import SandboxServer
    from caaspp_cli.sandbox.world import World

    world = World.build(20, 7)
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv(world.roster_rows()), encoding="utf-8")
    env = {
        **os.environ,
        "CAASPP_CLIENT_KEY": DEMO_CLIENT_KEY,
        "CAASPP_CLIENT_SECRET": DEMO_CLIENT_SECRET,
    }
    out = tmp_path / "out"
    exe = str(Path(sys.executable).with_name("caaspp"))
    with SandboxServer(SandboxConfig(students=20, seed=7, latency_ms=100)) as server:
        profile_factory(  # type: ignore[operator]
            "sandbox", base_url=server.base_url, make_default=True, credentials_source="env"
        )
        args = [exe, "bulk", str(roster), "--concurrency", "2", "--out", str(out)]
        runs = [
            subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=120)[1].decode() for run in runs]
        codes = sorted(run.returncode for run in runs)
        downloads = Counter(server.state.stats()["downloads"])
    assert codes == [ExitCode.OK, ExitCode.BUSY], outputs
    assert "caaspp bulk" in " ".join("".join(outputs).split())
    assert downloads and max(downloads.values()) == 1, "a report was downloaded twice"


def _marked_processes(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark.encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.posix
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="walks /proc")
def test_protect_killed_with_sigkill_leaves_no_worker_behind(corpus: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    pdfs = sorted(corpus.glob("*.pdf"))
    for number in range(240):
        source = pdfs[number % len(pdfs)]
        (inputs / f"{9000000000 + number}_CAASPP_2025_en.pdf").write_bytes(source.read_bytes())
    out = tmp_path / "out"
    mark = f"CAASPP_TEST_RUN={os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, mark.split("=")[0]: mark.split("=")[1]}
    exe = str(Path(sys.executable).with_name("caaspp"))
    args = [exe, "protect", str(inputs), "--out", str(out), "--passwords", str(tmp_path / "p.csv")]
    run = subprocess.Popen([*args, "--workers", "2"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.pdf"))) < 5 and run.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run.poll() is None, "the run ended before it could be killed"
    assert len(_marked_processes(mark)) >= 3  # the run, and its workers
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 5
    while (left := _marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # do not leave them to the next test
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} process(es) of the killed run still running"


def _sheet_rows(sheet: Path) -> list[dict[str, str]]:
    import csv

    with sheet.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_protect_keeps_each_files_recorded_password_when_a_student_has_two(
    corpus: Path, tmp_path: Path
) -> None:
    from caaspp_cli.protect.verify import verify_protected_pdf

    first, second = sorted(corpus.glob("*.pdf"))[:2]
    assert first.name[:10] == second.name[:10]  # one student's two reports
    out, sheet = tmp_path / "out", tmp_path / "passwords.csv"
    # What two runs at once left before the lock: each file of the student protected with
    # its own password, both in the sheet.
    for number, source in enumerate((first, second)):
        inputs = tmp_path / f"in{number}"
        inputs.mkdir()
        shutil.copy(source, inputs)
        part = tmp_path / f"part{number}.csv"
        result = _caaspp("protect", str(inputs), "--out", str(out), "--passwords", str(part))
        assert result.returncode == ExitCode.OK, result.stderr
    lines = (tmp_path / "part0.csv").read_text(encoding="utf-8").splitlines()
    lines += (tmp_path / "part1.csv").read_text(encoding="utf-8").splitlines()[1:]
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    passwords = {row["file"]: row["password"] for row in _sheet_rows(sheet)}
    assert len(set(passwords.values())) == 2

    inputs = tmp_path / "all"
    inputs.mkdir()
    for source in (first, second):
        shutil.copy(source, inputs)
    rerun = ["protect", str(inputs), "--out", str(out), "--passwords", str(sheet)]
    result = _caaspp(*rerun)
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    for name, password in passwords.items():
        verify_protected_pdf(out / name, password)

    # A new report of that student: which password would the family expect? Not guessed.
    third = inputs / (first.name[:10] + "_ELPAC_2024_en.pdf")
    shutil.copy(first, third)
    result = _caaspp(*rerun)
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == ExitCode.FAILED, said
    assert "2 passwords" in said and first.name in said and second.name in said
    assert not (out / third.name).exists()
    assert len(_sheet_rows(sheet)) == 2
    assert _caaspp(*rerun).returncode == ExitCode.FAILED  # the same answer, not worse
