"""How fast `caaspp protect` is, against the bare engine and against qpdf's CLI, for rosters
of several shapes (one, two, five reports per student).

    .venv/bin/python benchmarks/bench_protect.py                    # 2,000 files a shape, 3 rounds
    .venv/bin/python benchmarks/bench_protect.py --files 200 --rounds 1   # a quick look

Runs over the same sandbox score reports (rendered once, cached in the temp folder; each
shape names them, by hard links, as `caaspp bulk` does, N reports to a student):

- caaspp:    protect_reports() with the workers given: verification, password sheet
             (fsynced) and a progress display (a Rich bar drawn into memory) all included;
- engine:    bare pikepdf R=6 saves (open, save encrypted with the student's password and a
             random owner password) over a process pool as wide: no verification, no sheet,
             nothing else: the engine used the obvious way;
- qpdf:      `qpdf --encrypt ... 256` once per file, `xargs -P` as wide;
- caaspp x1: (with --scaling) caaspp with one worker, to see how it scales.

The runs alternate (A B C, A B C, ...) because the machine's speed drifts; the medians are
reported, and each ratio is the median of the rounds' ratios (runs made one after the
other), checked against the targets: caaspp >= 1.0x the engine and >= 1.0x
qpdf for every shape, and >= 1.5x the engine from three reports a student.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pikepdf

from caaspp_cli.protect.policy import PERMISSIONS
from caaspp_cli.protect.results import ProtectProgress
from caaspp_cli.protect.run import protect_reports
from caaspp_cli.protect.worker import default_workers

USER_PASSWORD = "cloak-gravy-tulip-swept-anger"  # noqa: S105 - a benchmark's dummy
SHAPES = (1, 2, 5)
_world = None

Run = Callable[[Path, Path, int], int]


# --- The corpus -------------------------------------------------------------------------------
def _render_init(n_students: int) -> None:
    global _world
    from caaspp_cli.sandbox.world import World

    _world = World.build(n_students)


def _render(job: tuple[str, Path]) -> None:
    from caaspp_cli.sandbox.render import render_report_pdf

    report_id, target = job
    assert _world is not None
    found = _world.find_report(report_id)
    assert found is not None
    student, report = found
    target.write_bytes(render_report_pdf(_world, student, report))


def rendered(files: int, workers: int) -> Path:
    """``files`` different sandbox PDFs, cached between runs."""
    from caaspp_cli.sandbox.world import World

    folder = Path(tempfile.gettempdir()) / f"caaspp-bench-protect-{files}"
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n_students = files // 2 + 50  # about 3.5 PDFs a student: more than enough
    world = World.build(n_students)
    jobs: list[tuple[str, Path]] = []
    for student in world.students.values():
        for report in student.reports:
            if report.format == "pdf" and len(jobs) < files:
                name = f"{student.ssid}_{report.test}_{report.year}_{report.language}.pdf"
                jobs.append((report.report_id, folder / name))
    if len(jobs) < files:
        raise SystemExit(f"the sandbox world holds only {len(jobs)} PDFs")
    print(f"rendering {files} sandbox reports into {folder} (cached for later runs)...")
    with ProcessPoolExecutor(workers, initializer=_render_init, initargs=(n_students,)) as pool:
        list(pool.map(_render, jobs, chunksize=16))
    done.touch()
    return folder


def shaped(pool: Path, per_student: int) -> Path:
    """The rendered reports named so that each student has ``per_student`` of them."""
    folder = pool.parent / f"{pool.name}-{per_student}-per-student"
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for number, source in enumerate(_sources(pool)):
        ssid = 1_000_000_000 + number // per_student
        target = folder / f"{ssid}_CAASPP_{2020 + number % per_student}_en.pdf"
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    done.touch()
    return folder


def _sources(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pdf"))


def _password_of(source: Path) -> str:
    return f"{USER_PASSWORD}-{source.name[6:10]}"  # one a student


# --- The contenders ---------------------------------------------------------------------------
def run_caaspp(folder: Path, scratch: Path, workers: int) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    progress = Progress("protect", BarColumn(), MofNCompleteColumn(), console=console)
    task = progress.add_task("protect", total=None)

    def update(event: ProtectProgress) -> None:
        progress.update(task, total=event.total, completed=event.done)

    with progress:
        summary = protect_reports(
            [folder],
            scratch / "out",
            scratch / "passwords.csv",
            workers=workers,
            on_progress=update,
        )
    if summary.failed:
        raise SystemExit(f"caaspp failed on {len(summary.failed)} files: {summary.failed[0]}")
    return len(summary.files)


def _engine_one(job: tuple[Path, Path]) -> None:
    source, target = job
    with pikepdf.open(source) as pdf:
        pdf.save(
            target,
            encryption=pikepdf.Encryption(
                user=_password_of(source),
                owner=secrets.token_urlsafe(32),
                R=6,
                allow=PERMISSIONS,
            ),
        )


def run_engine(folder: Path, scratch: Path, workers: int) -> int:
    out = scratch / "out"
    out.mkdir()
    jobs = [(source, out / source.name) for source in _sources(folder)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_engine_one, jobs, chunksize=8))
    return len(jobs)


def run_qpdf(folder: Path, scratch: Path, workers: int) -> int:
    """One password for every file (the cost does not depend on it), no shell between."""
    out = scratch / "out"
    out.mkdir()
    sources = _sources(folder)
    lines = "".join(f"{source}\n{out / source.name}\n" for source in sources)
    command = [
        *("xargs", "-P", str(workers), "-n", "2", "-d", "\n"),
        *("qpdf", "--encrypt", USER_PASSWORD, secrets.token_urlsafe(32), "256"),
        *("--print=full", "--modify=none", "--"),
    ]
    subprocess.run(command, input=lines, text=True, check=True)
    return len(sources)


# --- Measuring --------------------------------------------------------------------------------
def timed(run: Run, folder: Path, workers: int) -> float:
    """files/second of one run, in a fresh scratch folder beside the corpus."""
    scratch = Path(tempfile.mkdtemp(prefix="caaspp-bench-run-", dir=folder.parent))
    try:
        start = time.perf_counter()
        count = run(folder, scratch, workers)
        return count / (time.perf_counter() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="PDFs a shape (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes")
    parser.add_argument(
        "--shapes",
        default=",".join(map(str, SHAPES)),
        help="reports per student, comma-separated (1,2,5)",
    )
    parser.add_argument("--no-qpdf", action="store_true", help="leave qpdf's CLI out")
    parser.add_argument("--scaling", action="store_true", help="add caaspp with one worker")
    args = parser.parse_args(argv)
    shapes = [int(shape) for shape in args.shapes.split(",")]

    pool = rendered(args.files, args.workers)
    folders = {shape: shaped(pool, shape) for shape in shapes}
    sizes = [p.stat().st_size for p in _sources(pool)]
    print(
        f"{len(sizes)} PDFs a shape, {statistics.mean(sizes) / 1024:.0f} KiB on average; "
        f"{args.workers} workers on {os.cpu_count()} cores; pikepdf {pikepdf.__version__} "
        f"(qpdf {pikepdf.__libqpdf_version__})"
    )
    contenders: dict[str, tuple[Run, int]] = {
        "caaspp": (run_caaspp, args.workers),
        "engine": (run_engine, args.workers),
    }
    if not args.no_qpdf and shutil.which("qpdf"):
        contenders["qpdf"] = (run_qpdf, args.workers)
    if args.scaling:
        contenders["caaspp x1"] = (run_caaspp, 1)

    rates: dict[tuple[int, str], list[float]] = {}
    for number in range(args.rounds):
        for shape in shapes:
            for name, (run, workers) in contenders.items():
                rate = timed(run, folders[shape], workers)
                rates.setdefault((shape, name), []).append(rate)
                print(
                    f"  round {number + 1}: {shape}/student {name:<10} {rate:7.1f} files/s",
                    flush=True,
                )
    median = {key: statistics.median(values) for key, values in rates.items()}

    def ratio(shape: int, name: str) -> float:
        """caaspp against ``name``: the median of the rounds' ratios, each between runs made
        one after the other, so that the machine's drift (other work on it) cancels out."""
        pairs = zip(rates[(shape, "caaspp")], rates[(shape, name)], strict=True)
        return statistics.median(ours / theirs for ours, theirs in pairs)

    print()
    names = list(contenders)
    header = "reports/student" + "".join(f"{name:>12}" for name in names)
    header += f"{'vs engine':>11}" + (f"{'vs qpdf':>9}" if "qpdf" in names else "")
    print(header + "   (files/s: medians; ratios: medians of each round's)")
    failed = False
    for shape in shapes:
        row = f"{shape:>15}" + "".join(f"{median[(shape, name)]:>12.1f}" for name in names)
        engine_target = 1.5 if shape >= 3 else 1.0
        engine_ratio = ratio(shape, "engine")
        row += f"{engine_ratio:>10.2f}x"
        failed |= engine_ratio < engine_target
        if "qpdf" in names:
            qpdf_ratio = ratio(shape, "qpdf")
            row += f"{qpdf_ratio:>8.2f}x"
            failed |= qpdf_ratio < 1.0
        print(row + f"   target >= {engine_target}x the engine, >= 1.0x qpdf")
    if args.scaling:
        for shape in shapes:
            scaling = ratio(shape, "caaspp x1")
            print(f"{shape}/student: caaspp x{args.workers} / caaspp x1 = {scaling:.2f}x")
    print()
    print("targets: " + ("BELOW in at least one shape" if failed else "all met"))


if __name__ == "__main__":
    main()
