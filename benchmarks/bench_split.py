"""How fast `caaspp split` is, against the pipeline a script writer would use.

    .venv/bin/python benchmarks/bench_split.py                  # 2,000 pages, then 20,000
    .venv/bin/python benchmarks/bench_split.py --no-large       # the 2,000-page file only

Merged files like TOMS's (Merge Files = Yes) are made from the sandbox's reports, in English
and the translated languages, every report a different one (generated once, cached in the
temp folder). On each file, in the same run:

- caaspp:   SplitRun over the file in a fresh process (one pass of pypdfium2 for the text,
            PDFium page copies, owner-only atomic files, the manifest), with its peak RSS
            (VmHWM on Linux: getrusage's ru_maxrss also counts the benchmark's own peak,
            which a process keeps across the exec that starts it);
- pipeline: `pdftotext -f N -l N file -` once per page to find each page's SSID, then
            `qpdf --empty --pages file A-B -- out.pdf` once per student report. A process
            per page costs about the same on every page, so by default it runs on an evenly
            spread sample of pages and reports (--sample) and the rate is extrapolated;
            --full runs all of it.

Not a test: it prints pages/second, the ratio (target >= 20x the pipeline) and the peak RSS
of each file (target: the 20,000-page file within 1.2x of the 2,000-page file).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pikepdf

_CHILD = """
import json, sys, time
from pathlib import Path
from caaspp_cli.split.run import SplitOptions, SplitRun
started = time.perf_counter()
summary = SplitRun([Path(sys.argv[1])], SplitOptions(Path(sys.argv[2]))).run()
elapsed = time.perf_counter() - started
rss = 0
try:
    with open("/proc/self/status") as status:  # Linux: this process's own peak
        rss = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
except OSError:
    try:
        import resource  # other POSIX systems; on Windows the peak RSS is not measured
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except ImportError:
        pass
print(json.dumps({"elapsed": elapsed, "rss_kib": rss, "pages": summary.pages,
                  "reports": summary.reports_written, "needs": summary.needs_a_person}))
"""


def merged_file(pages: int, cache: Path) -> Path:
    """A merged download of at least ``pages`` pages of distinct whole reports, cached."""
    target = cache / f"merged-{pages}.pdf"
    if target.exists():
        return target
    from caaspp_cli.sandbox.render import render_report_pdf
    from caaspp_cli.sandbox.world import World

    world = World.build(max(50, pages // 6), 2026)
    started = time.perf_counter()
    with pikepdf.new() as merged:
        for student, report in world.iter_reports():
            if report.format != "pdf":
                continue
            with pikepdf.open(io.BytesIO(render_report_pdf(world, student, report))) as one:
                merged.pages.extend(one.pages)
            if len(merged.pages) >= pages:
                break
        if len(merged.pages) < pages:
            raise SystemExit(f"the world has only {len(merged.pages)} pages of reports")
        merged.save(target)
    print(f"  made {target.name}: {pages} pages in {time.perf_counter() - started:.0f} s")
    return target


def run_caaspp(path: Path, work: Path) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(dir=work))
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


_SSID = re.compile(r"SSID\)?\s*(\d{10})")


def run_pipeline(path: Path, pages: int, work: Path, sample: int | None) -> tuple[float, int]:
    """Seconds per page of the pdftotext + qpdf pipeline (extrapolated from a sample), and
    how many pages it actually ran on."""
    chosen = list(range(1, pages + 1))
    if sample is not None and sample < pages:
        step = pages / sample
        chosen = sorted({int(i * step) + 1 for i in range(sample)})
    ssids: dict[int, str | None] = {}
    started = time.perf_counter()
    for number in chosen:
        text = subprocess.run(
            ["pdftotext", "-f", str(number), "-l", str(number), str(path), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found = _SSID.search(text)
        ssids[number] = found.group(1) if found else None
    text_seconds = (time.perf_counter() - started) / len(chosen)
    # One qpdf per student report, of the report's average length (pages / reports).
    groups = max(1, len(chosen) // 3)
    out = Path(tempfile.mkdtemp(dir=work))
    started = time.perf_counter()
    for index in range(groups):
        first = chosen[index * len(chosen) // groups]
        last = min(pages, first + 2)
        subprocess.run(
            [
                "qpdf",
                "--empty",
                "--pages",
                str(path),
                f"{first}-{last}",
                "--",
                str(out / f"{index}.pdf"),
            ],
            check=True,
        )
    copy_seconds = (time.perf_counter() - started) / groups
    reports_per_page = 1 / 2.7  # the sandbox's reports average about 2.7 pages
    return text_seconds + copy_seconds * reports_per_page, len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-large", action="store_true", help="skip the 20,000-page file")
    parser.add_argument("--full", action="store_true", help="run the pipeline on every page")
    parser.add_argument("--sample", type=int, default=300, help="pages the pipeline runs on")
    args = parser.parse_args()
    cache = Path(tempfile.gettempdir()) / "caaspp-bench-split"
    cache.mkdir(exist_ok=True)
    sizes = [2000] if args.no_large else [2000, 20000]
    rss: dict[int, float] = {}
    for pages in sizes:
        path = merged_file(pages, cache)
        with tempfile.TemporaryDirectory(dir=cache) as work:
            ours = run_caaspp(path, Path(work))
            per_page, ran = run_pipeline(
                path, pages, Path(work), None if args.full else args.sample
            )
        size_mb = path.stat().st_size / 1e6
        rate = ours["pages"] / ours["elapsed"]
        pipeline_rate = 1 / per_page
        rss[pages] = ours["rss_kib"] / 1024
        print(
            f"{pages:>6} pages ({size_mb:.0f} MB, {ours['reports']:.0f} reports): "
            f"caaspp {rate:,.0f} pages/s ({ours['elapsed']:.1f} s), peak RSS "
            f"{rss[pages]:.0f} MiB; pipeline {pipeline_rate:,.1f} pages/s "
            f"({'all' if ran == pages else f'{ran}-page sample'}); "
            f"ratio {rate / pipeline_rate:,.0f}x (target >= 20x)"
        )
        if ours["needs"]:
            print(f"        note: {ours['needs']:.0f} manifest rows need a person")
    if len(rss) == 2:
        print(f"peak RSS 20,000 / 2,000 pages: {rss[20000] / rss[2000]:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
