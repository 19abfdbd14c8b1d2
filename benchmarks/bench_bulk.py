#!/usr/bin/env python3
"""How fast and how lean is `caaspp bulk`? Figures and ratios, not a pass/fail test.

    python benchmarks/bench_bulk.py [--students 2000] [--latency-ms 100] [--concurrency 16]

Runs the sandbox in its own process with injected latency (a district's round trip to
ETS), then `caaspp bulk` in another, over a roster whose students have one report each
(CAASPP 2025, English), and prints:

- wall time against the ideal (requests / concurrency x latency) and their ratio;
- students per second, client CPU per report saved, peak RSS of the bulk process;
- the same roster's first students through a plain sequential loop (what a user would
  otherwise write), measured in the same run, and the speed-up over it;
- peak RSS of `bulk --dry-run` over 10,000 and 100,000 roster rows, and their ratio.

Reports are rendered once into a cache folder before anything is timed, so the sandbox
serves them without drawing them on the clock.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx

from caaspp_cli.ets import contract
from caaspp_cli.sandbox.app import DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET
from caaspp_cli.sandbox.world import World

TEST, YEAR, LANGUAGE = "CAASPP", 2025, "en"
SEED = 4242
CACHE = Path(tempfile.gettempdir()) / "caaspp-bench-render-cache"


def chosen_students(world: World, count: int) -> list[tuple[str, str]]:
    """(ssid, report_id) of the first ``count`` students with exactly the one wanted report."""
    picked = []
    for student in world.students.values():
        if not student.enrolled:
            continue
        matches = [
            r
            for r in student.reports
            if (r.test, r.year, r.language, r.format) == (TEST, YEAR, LANGUAGE, "pdf")
        ]
        if len(matches) == 1:
            picked.append((student.ssid, matches[0].report_id))
            if len(picked) == count:
                return picked
    raise SystemExit(f"the world has only {len(picked)} suitable students; raise --world")


def _render_one(args: tuple[int, int, str]) -> None:
    from caaspp_cli.sandbox.render import render_report_pdf

    n, seed, report_id = args
    target = CACHE / f"{report_id}.pdf"
    if target.exists():
        return
    world = _world(n, seed)
    found = world.find_report(report_id)
    assert found is not None
    data = render_report_pdf(world, *found)
    temp = target.with_suffix(".tmp")
    temp.write_bytes(data)
    temp.replace(target)


_WORLDS: dict[tuple[int, int], World] = {}


def _world(n: int, seed: int) -> World:
    if (n, seed) not in _WORLDS:
        _WORLDS[(n, seed)] = World.build(n, seed)
    return _WORLDS[(n, seed)]


def warm_cache(world_size: int, report_ids: list[str]) -> None:
    CACHE.mkdir(mode=0o700, exist_ok=True)
    missing = [r for r in report_ids if not (CACHE / f"{r}.pdf").exists()]
    if not missing:
        return
    print(f"rendering {len(missing)} reports into {CACHE} (once) ...", flush=True)
    with ProcessPoolExecutor() as pool:
        list(pool.map(_render_one, [(world_size, SEED, r) for r in missing], chunksize=32))


def start_sandbox(world_size: int, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "caaspp_cli",
            "sandbox",
            "--port",
            "0",
            "--students",
            str(world_size),
            "--seed",
            str(SEED),
            "--latency-ms",
            str(latency_ms),
            "--render-cache",
            str(CACHE),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def write_roster(path: Path, ssids: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["SSID", "First Name", "Last Name", "School Code"])
        for i, ssid in enumerate(ssids):
            writer.writerow([ssid, f"First{i}", f"Last{i}", "6012583"])


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MiB, stdout) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:5])} failed ({process.returncode}): {err.decode()}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, out.decode()


def sequential_baseline(base_url: str, ssids: list[str], out: Path) -> float:
    """A plain loop: one request after the other. Returns students per second."""
    out.mkdir(mode=0o700)
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=60) as http:
        token = http.post(
            contract.DEFAULT_TOKEN_ENDPOINT,
            headers={
                "Authorization": contract.basic_auth_header(DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET)
            },
            data=contract.token_form(),
        ).json()["access_token"]
        headers = {"Authorization": contract.bearer_header(token)}
        for ssid in ssids:
            path = contract.reports_path(
                ssid, contract.DEFAULT_STUDENTS_ENDPOINT, contract.DEFAULT_REPORTS_ENDPOINT
            )
            reports = http.get(
                path, params=contract.reports_query(TEST, LANGUAGE, YEAR), headers=headers
            ).json()["reports"]
            for report in reports:
                body = http.get(report["url"]).content
                (
                    out / f"{ssid}_{report['test']}_{report['year']}_{report['language']}.pdf"
                ).write_bytes(body)
    return len(ssids) / (time.perf_counter() - started)


def bare_client_run(
    base_url: str, ssids: list[str], out: Path, concurrency: int
) -> tuple[float, float]:
    """The reference: bare httpx clients, no ledger, validation, retries or progress.

    Runs in this process; returns (wall seconds, CPU seconds)."""
    out.mkdir(mode=0o700)

    async def run() -> None:
        pools = [
            httpx.AsyncClient(
                base_url=base_url,
                timeout=60,
                limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
            )
            for _ in range(max(1, (concurrency + 7) // 8))
        ]
        token = (
            await pools[0].post(
                contract.DEFAULT_TOKEN_ENDPOINT,
                headers={
                    "Authorization": contract.basic_auth_header(DEMO_CLIENT_KEY, DEMO_CLIENT_SECRET)
                },
                data=contract.token_form(),
            )
        ).json()["access_token"]
        headers = {"Authorization": contract.bearer_header(token)}
        queue = iter(ssids)

        async def worker(number: int) -> None:
            http = pools[number % len(pools)]
            for ssid in queue:
                path = contract.reports_path(
                    ssid, contract.DEFAULT_STUDENTS_ENDPOINT, contract.DEFAULT_REPORTS_ENDPOINT
                )
                listing = await http.get(
                    path, params=contract.reports_query(TEST, LANGUAGE, YEAR), headers=headers
                )
                for report in listing.json()["reports"]:
                    body = (await http.get(report["url"])).content
                    (out / f"{ssid}.pdf").write_bytes(body)

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        for pool in pools:
            await pool.aclose()

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    asyncio.run(run())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def dry_run_rss(folder: Path, rows: int, env: dict[str, str]) -> float:
    roster = folder / f"roster-{rows}.csv"
    write_roster(roster, [f"{i:010d}" for i in range(1, rows + 1)])
    _, _, rss, _ = run_measured(
        [
            sys.executable,
            "-m",
            "caaspp_cli",
            "bulk",
            str(roster),
            "--out",
            str(folder / "dry"),
            "--dry-run",
            "--json",
        ],
        env,
    )
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--world", type=int, default=9000, help="sandbox world size")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--baseline-students", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="A B A B ... rounds; medians")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    world = World.build(args.world, SEED)
    picked = chosen_students(world, args.students)
    warm_cache(args.world, [report_id for _, report_id in picked])
    ssids = [ssid for ssid, _ in picked]

    work = Path(tempfile.mkdtemp(prefix="caaspp-bench-"))
    env = dict(os.environ)
    env.update(
        CAASPP_CONFIG_DIR=str(work / "config"),
        CAASPP_DATA_DIR=str(work / "data"),
        CAASPP_CLIENT_KEY=DEMO_CLIENT_KEY,
        CAASPP_CLIENT_SECRET=DEMO_CLIENT_SECRET,
    )
    sandbox, base_url = start_sandbox(args.world, args.latency_ms)
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "caaspp_cli",
                "config",
                "add",
                "bench",
                "--base-url",
                base_url,
                "--env-credentials",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        roster = work / "roster.csv"
        write_roster(roster, ssids)
        bulk_runs: list[tuple[float, float, float]] = []
        bare_runs: list[tuple[float, float]] = []
        for number in range(args.rounds):  # alternate: the machine's speed drifts
            bare_runs.append(
                bare_client_run(base_url, ssids, work / f"bare{number}", args.concurrency)
            )
            wall, cpu, rss, out = run_measured(
                [
                    sys.executable,
                    "-m",
                    "caaspp_cli",
                    "bulk",
                    str(roster),
                    "--out",
                    str(work / f"out{number}"),
                    "--test",
                    TEST,
                    "--year",
                    str(YEAR),
                    "--language",
                    LANGUAGE,
                    "--concurrency",
                    str(args.concurrency),
                    "--json",
                ],
                env,
            )
            saved = json.loads(out)["reports_saved"]
            assert saved == len(ssids), out
            bulk_runs.append((wall, cpu, rss))
        seq_rate = sequential_baseline(
            base_url, ssids[: args.baseline_students], work / "sequential"
        )
    finally:
        sandbox.terminate()
        sandbox.wait()

    requests = 2 * len(ssids) + 1
    ideal = requests / args.concurrency * args.latency_ms / 1000
    wall = statistics.median(r[0] for r in bulk_runs)
    cpu = statistics.median(r[1] for r in bulk_runs)
    rss = max(r[2] for r in bulk_runs)
    bare_wall = statistics.median(r[0] for r in bare_runs)
    bare_cpu = statistics.median(r[1] for r in bare_runs)
    saved = len(ssids)
    rate = saved / wall
    print()
    print(
        f"caaspp bulk: {saved} students, one report each, latency {args.latency_ms:g} ms, "
        f"concurrency {args.concurrency}, medians of {args.rounds} alternated rounds"
    )
    print(f"  ideal time              {ideal:8.2f} s   (requests / concurrency x latency)")
    print(f"  caaspp bulk wall time   {wall:8.2f} s   {wall / ideal:6.3f}x ideal (target <= 1.2)")
    print(
        f"  bare httpx wall time    {bare_wall:8.2f} s   {bare_wall / ideal:6.3f}x ideal "
        "(reference: no ledger, checks, retries)"
    )
    print(f"  bulk / bare             {wall / bare_wall:8.3f}x")
    print(f"  students per second     {rate:8.1f}")
    print(
        f"  client CPU per report   {cpu / saved * 1000:8.2f} ms (target <= 4; whole process, "
        f"start-up included); bare {bare_cpu / saved * 1000:.2f} ms"
    )
    print(f"  peak RSS                {rss:8.1f} MiB (target < 150)")
    print(
        f"sequential loop over {args.baseline_students} students: {seq_rate:.2f} students/s; "
        f"bulk is {rate / seq_rate:.1f}x faster"
    )
    if not args.skip_memory:
        small = dry_run_rss(work, 10_000, env)
        large = dry_run_rss(work, 100_000, env)
        print(
            f"dry run peak RSS: 10,000 rows {small:.1f} MiB, 100,000 rows {large:.1f} MiB, "
            f"ratio {large / small:.3f} (target <= 1.2)"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
