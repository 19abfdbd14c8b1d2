"""How fast `caaspp protect` is, against the engine's own limit and against qpdf's CLI.

    .venv/bin/python benchmarks/bench_protect.py                 # 2,000 files, 2 rounds
    .venv/bin/python benchmarks/bench_protect.py --files 200 --rounds 1   # a quick look

Runs over the same sandbox score reports (generated once, cached in the temp folder):

- caaspp:    protect_reports() with N workers: verification, password sheet (fsynced) and a
             progress display (a Rich bar drawn into memory) all included;
- caaspp x1: the same with one worker, to see how it scales;
- engine:    bare pikepdf R=6 saves (open, save encrypted) over a process pool of N: no
             verification, no sheet, nothing else: the limit of the engine used the
             obvious way;
- qpdf:      `qpdf --encrypt ... 256` once per file, `xargs -P N`.

The runs alternate (A B C D, A B C D, ...) because the machine's speed drifts, and the
medians are reported. Not a test: it prints figures and ratios against the targets
(caaspp >= 0.8x the engine, N workers >= 1.8x one worker on 2 cores).
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
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pikepdf

from caaspp_cli.protect.policy import PERMISSIONS
from caaspp_cli.protect.results import ProtectProgress
from caaspp_cli.protect.run import protect_reports
from caaspp_cli.protect.worker import default_workers

USER_PASSWORD = "cloak-gravy-tulip-swept-anger"  # noqa: S105 - a benchmark's dummy
_world = None


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


def corpus(files: int, workers: int) -> Path:
    """``files`` sandbox PDFs named as `caaspp bulk` names them, cached between runs."""
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


def _sources(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pdf"))


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
                user=USER_PASSWORD, owner=secrets.token_urlsafe(32), R=6, allow=PERMISSIONS
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
    out = scratch / "out"
    out.mkdir()
    sources = _sources(folder)
    lines = "".join(f"{source}\n{out / source.name}\n" for source in sources)
    command = [
        "xargs",
        "-P",
        str(workers),
        "-n",
        "2",
        "-d",
        "\n",
        "qpdf",
        "--encrypt",
        USER_PASSWORD,
        secrets.token_urlsafe(32),
        "256",
        "--print=full",
        "--modify=none",
        "--",
    ]
    subprocess.run(command, input=lines, text=True, check=True)
    return len(sources)


# --- Measuring --------------------------------------------------------------------------------
def timed(run: Callable[[Path, Path, int], int], folder: Path, workers: int) -> float:
    """files/second of one run, in a fresh scratch folder beside the corpus."""
    scratch = Path(tempfile.mkdtemp(prefix="caaspp-bench-run-", dir=folder.parent))
    try:
        start = time.perf_counter()
        count = run(folder, scratch, workers)
        return count / (time.perf_counter() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def rounds(
    contenders: dict[str, tuple[Callable[[Path, Path, int], int], int]],
    folder: Path,
    count: int,
) -> Iterator[tuple[str, float]]:
    for number in range(count):
        for name, (run, workers) in contenders.items():
            rate = timed(run, folder, workers)
            print(f"  round {number + 1}: {name:<10} {rate:7.1f} files/s", flush=True)
            yield name, rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="PDFs to protect (2000)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (2)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes")
    parser.add_argument("--no-qpdf", action="store_true", help="leave qpdf's CLI out")
    args = parser.parse_args(argv)

    folder = corpus(args.files, args.workers)
    sizes = [p.stat().st_size for p in _sources(folder)]
    print(
        f"{len(sizes)} PDFs, {statistics.mean(sizes) / 1024:.0f} KiB on average; "
        f"{args.workers} workers on {os.cpu_count()} cores; pikepdf {pikepdf.__version__} "
        f"(qpdf {pikepdf.__libqpdf_version__})"
    )
    contenders: dict[str, tuple[Callable[[Path, Path, int], int], int]] = {
        "caaspp": (run_caaspp, args.workers),
        "engine": (run_engine, args.workers),
    }
    if not args.no_qpdf and shutil.which("qpdf"):
        contenders["qpdf"] = (run_qpdf, args.workers)
    contenders["caaspp x1"] = (run_caaspp, 1)

    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for name, rate in rounds(contenders, folder, args.rounds):
        rates[name].append(rate)
    median = {name: statistics.median(values) for name, values in rates.items()}

    engine = median["engine"]
    print()
    print(f"{'run':<12}{'files/s (median)':>18}{'vs engine':>11}   rounds")
    for name, value in median.items():
        shown = " ".join(f"{rate:.1f}" for rate in rates[name])
        print(f"{name:<12}{value:>18.1f}{value / engine:>10.2f}x   {shown}")
    print()
    caaspp = median["caaspp"]
    checks: list[tuple[str, float, float | None]] = [
        ("caaspp / engine limit", caaspp / engine, 0.8),
        (f"caaspp x{args.workers} / caaspp x1", caaspp / median["caaspp x1"], 1.8),
    ]
    if "qpdf" in median:
        checks.append(("caaspp / qpdf CLI", caaspp / median["qpdf"], None))
    for label, ratio, target in checks:
        verdict = "" if target is None else ("  ok" if ratio >= target else "  BELOW")
        goal = "" if target is None else f"  (target >= {target}x)"
        print(f"{label:<28}{ratio:6.2f}x{goal}{verdict}")


if __name__ == "__main__":
    main()
