"""A hostile or broken ETS on loopback: what it sends never leaves --out, never aborts the
run, never costs unbounded memory or time; a rate limit slows the run instead of failing it."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hostile_ets import HostileEts, drip_pdf, entry, gzip_bomb, hostile_ets, listing_body, send_pdf

from caaspp_cli.config.credentials import Credentials
from caaspp_cli.errors import ServerError, ServiceConnectionError
from caaspp_cli.ets.client import Endpoints, EtsClient
from caaspp_cli.ets.contract import ReportEntry
from caaspp_cli.fetch.bulk import BulkOptions, BulkRun
from caaspp_cli.retry import RetryPolicy
from caaspp_cli.roster.read import open_roster

SSID = "1234567890"


@pytest.fixture
def pdf_bytes(tmp_path: Path) -> bytes:
    from helpers import report_pdf

    path = tmp_path / "report.pdf"
    report_pdf("A score report").save(path)
    return path.read_bytes()


def serve_entries(ets: HostileEts, entries: list[dict[str, Any]], pdf: bytes) -> None:
    ets.listing = lambda ssid, path: (200, {}, listing_body(ssid, entries))
    ets.download = lambda handler, name: send_pdf(handler, pdf)


def run_bulk(ets: HostileEts, profile_factory: Any, tmp_path: Path) -> tuple[Any, list[dict]]:
    profile_factory(
        "hostile", base_url=ets.base_url, client_key="k", client_secret="s", make_default=True
    )
    roster = tmp_path / "roster.csv"
    roster.write_text(f"SSID,First Name,Last Name\n{SSID},Ana,Lopez\n", encoding="utf-8")
    out = tmp_path / "work" / "out"
    summary = asyncio.run(BulkRun(open_roster(roster), BulkOptions(out_dir=out)).run())
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        return summary, list(csv.DictReader(handle))


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


# --- Values from the wire never reach a path unchecked -------------------------------------
HOSTILE_FIELDS: list[dict[str, Any]] = [
    {"test": "../../../victim/pwned"},
    {"test": "CAASPP", "language": "../../victim"},
    {"test": "CAASPP\x00", "language": "en"},
    {"test": "CAASPP", "year": 99999},
]


def test_fetch_refuses_server_values_outside_the_vocabulary(
    cli: Any, profile_factory: Any, tmp_path: Path, pdf_bytes: bytes
) -> None:
    with hostile_ets() as ets:
        entries = [entry(ets.link(f"x{i}"), **fields) for i, fields in enumerate(HOSTILE_FIELDS)]
        entries.append(entry(ets.link("good")))
        serve_entries(ets, entries, pdf_bytes)
        profile_factory(
            "hostile", base_url=ets.base_url, client_key="k", client_secret="s", make_default=True
        )
        out = tmp_path / "work" / "out"
        result = cli("fetch", "--ssid", SSID, "--out", str(out), "--json")
    assert "unexpected" not in result.output.lower()
    assert files_under(tmp_path / "work") == {f"out/{SSID}_CAASPP_2025_en.pdf"}
    reports = json.loads(result.stdout)["reports"]
    failed = [r for r in reports if r["outcome"] == "failed"]
    assert len(failed) == len(HOSTILE_FIELDS)
    assert all("it was not saved" in r["detail"] for r in failed)
    # The hostile entries were never requested.
    assert not [p for p in ets.requests if p.startswith("/dl/x")]


def test_bulk_refuses_server_values_outside_the_vocabulary(
    profile_factory: Any, tmp_path: Path, pdf_bytes: bytes
) -> None:
    with hostile_ets() as ets:
        entries = [entry(ets.link(f"x{i}"), **fields) for i, fields in enumerate(HOSTILE_FIELDS)]
        entries.append(entry(ets.link("good")))
        serve_entries(ets, entries, pdf_bytes)
        summary, rows = run_bulk(ets, profile_factory, tmp_path)
    assert files_under(tmp_path / "work") - {"out/manifest.csv"} == {
        f"out/{SSID}_CAASPP_2025_en.pdf"
    } | {p for p in files_under(tmp_path / "work") if p.startswith("out/.caaspp")}
    statuses = sorted(r["status"] for r in rows)
    assert statuses == ["downloaded"] + ["failed"] * len(HOSTILE_FIELDS)
    assert summary.failed == len(HOSTILE_FIELDS)
    assert all("unknown" in r["detail"] or "year" in r["detail"] for r in rows if r["detail"])


# --- One malformed link fails its report, not the run --------------------------------------
def test_malformed_links_fail_their_report_and_the_run_goes_on(
    profile_factory: Any, tmp_path: Path, pdf_bytes: bytes
) -> None:
    with hostile_ets() as ets:
        bad_links = {
            "CAASPP": ets.link("a\x01b"),
            "CST": "http://127.0.0.1:99999/dl/x",
            "CA": ets.link("x" * 65536),
            "ESA": "ftp://127.0.0.1/dl/x",
            "STS": "https://example.org:0/dl/x",
            "CAST": "http://[::1/dl/x",
        }
        entries = [entry(url, test=test) for test, url in bad_links.items()]
        entries.append(entry(ets.link("good"), test="ELPAC"))
        serve_entries(ets, entries, pdf_bytes)
        summary, rows = run_bulk(ets, profile_factory, tmp_path)
    by_test = {r["test"]: r for r in rows}
    assert by_test["ELPAC"]["status"] == "downloaded"
    for test in bad_links:
        assert by_test[test]["status"] == "failed", by_test[test]
        assert "link" in by_test[test]["detail"] or "address" in by_test[test]["detail"]
        assert "unexpected" not in by_test[test]["detail"].lower()
    assert summary.failed == len(bad_links)


# --- Duplicate listings ---------------------------------------------------------------------
def test_a_report_listed_twice_is_kept_once_and_the_repeat_is_reported(
    profile_factory: Any, tmp_path: Path, pdf_bytes: bytes
) -> None:
    with hostile_ets() as ets:
        entries = [entry(ets.link("first")), entry(ets.link("second"))]
        serve_entries(ets, entries, pdf_bytes)
        summary, rows = run_bulk(ets, profile_factory, tmp_path)
        assert "/dl/second" not in ets.requests
        assert "/dl/first" in ets.requests
    assert [r["status"] for r in rows] == ["downloaded", "duplicate_entry"]
    assert "listed this test, year and language twice" in rows[1]["detail"]
    assert summary.failed == 0


def test_fetch_reports_a_repeated_listing_as_a_duplicate(
    cli: Any, profile_factory: Any, tmp_path: Path, pdf_bytes: bytes
) -> None:
    with hostile_ets() as ets:
        serve_entries(ets, [entry(ets.link("first")), entry(ets.link("second"))], pdf_bytes)
        profile_factory(
            "hostile", base_url=ets.base_url, client_key="k", client_secret="s", make_default=True
        )
        result = cli("fetch", "--ssid", SSID, "--out", str(tmp_path / "out"), "--json")
    outcomes = [r["outcome"] for r in json.loads(result.stdout)["reports"]]
    assert outcomes == ["saved", "duplicate"]


# --- Bounded memory and time ----------------------------------------------------------------
def client_for(ets: HostileEts, **kwargs: Any) -> EtsClient:
    return EtsClient(
        Endpoints(ets.base_url),
        Credentials("k", "s"),
        retry=RetryPolicy(max_attempts=1),
        **kwargs,
    )


def test_a_dripped_pdf_times_out_at_the_request_deadline(tmp_path: Path, pdf_bytes: bytes) -> None:
    # One byte every 0.3 s never trips the 60 s read timeout; only the overall deadline ends it.
    with hostile_ets() as ets:
        ets.download = lambda handler, name: drip_pdf(handler, pdf_bytes, every=0.3)
        report = ReportEntry.model_validate(entry(ets.link("slow")))

        async def main() -> None:
            async with client_for(ets, request_deadline=1.5) as client:
                await client.download_report(SSID, report, tmp_path / "r.pdf")

        started = time.monotonic()
        with pytest.raises(ServiceConnectionError) as caught:
            asyncio.run(main())
        elapsed = time.monotonic() - started
    assert "did not finish answering within 1.5 s" in caught.value.message
    assert elapsed < 6
    assert not (tmp_path / "r.pdf").exists()


def test_an_oversized_report_list_is_refused(tmp_path: Path) -> None:
    with hostile_ets() as ets:
        body = b'{"ssid": "1234567890", "reports": [' + b" " * (3 * 1024 * 1024) + b"]}"
        ets.listing = lambda ssid, path: (200, {}, body)

        async def main() -> None:
            async with client_for(ets) as client:
                await client.list_reports(SSID)

        with pytest.raises(ServerError) as caught:
            asyncio.run(main())
    assert "more than 1048576 bytes" in caught.value.message


@pytest.mark.skipif(sys.platform != "linux", reason="reads VmHWM from /proc")
def test_a_gzip_bomb_report_list_is_cut_off_with_bounded_memory(tmp_path: Path) -> None:
    # 400 MB of JSON in 400 KB of gzip. Reading it whole took gigabytes; the client must
    # stop at its cap. Measured in a fresh process so that the high-water mark is its own.
    bomb = gzip_bomb(400 * 1024 * 1024)
    with hostile_ets() as ets:
        ets.listing = lambda ssid, path: (200, {"Content-Encoding": "gzip"}, bomb)
        script = textwrap.dedent(
            f"""
            import asyncio, sys
            from caaspp_cli.config.credentials import Credentials
            from caaspp_cli.errors import ServerError
            from caaspp_cli.ets.client import Endpoints, EtsClient
            from caaspp_cli.retry import RetryPolicy

            async def main():
                async with EtsClient(
                    Endpoints({ets.base_url!r}), Credentials("k", "s"),
                    retry=RetryPolicy(max_attempts=1),
                ) as client:
                    try:
                        await client.list_reports("{SSID}")
                    except ServerError as exc:
                        print(exc.message)
            asyncio.run(main())
            # VmHWM belongs to this program alone: ru_maxrss keeps the high-water mark of
            # the process that forked it (a test worker) across exec.
            status = open("/proc/self/status").read()
            print(int(status.split("VmHWM:")[1].split()[0]) // 1024)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ},
            check=False,
        )
    assert done.returncode == 0, done.stderr
    message, peak_mb = done.stdout.strip().splitlines()
    assert "more than 1048576 bytes" in message
    print(f"gzip bomb: peak RSS {peak_mb} MB")
    # Python and its imports take about 60-80 MB; the client inflates at most the cap (1 MiB)
    # plus one byte at a time, whatever the size of a network read. Whole, it is 400 MB.
    assert int(peak_mb) < 120


# --- Throttling ------------------------------------------------------------------------------
def test_a_429_storm_with_retry_after_fails_no_row(
    profile_factory: Any, tmp_path: Path, pdf_bytes: bytes
) -> None:
    # For 6.5 s every call is answered 429 with Retry-After: 1. Six attempts used to be
    # spent in about five seconds and the row failed; a service that says when to come
    # back is waited for (up to RetryPolicy.max_throttle_wait), then the row succeeds.
    storm_ends = time.monotonic() + 6.5
    with hostile_ets() as ets:
        entries = [entry(ets.link("good"))]
        listing = listing_body(SSID, entries)

        def answer(ssid: str, path: str) -> tuple[int, dict[str, str], bytes]:
            if time.monotonic() < storm_ends:
                return 429, {"Retry-After": "1"}, b'{"error": "rate_limited"}'
            return 200, {}, listing

        ets.listing = answer
        ets.download = lambda handler, name: send_pdf(handler, pdf_bytes)
        summary, rows = run_bulk(ets, profile_factory, tmp_path)
    assert [r["status"] for r in rows] == ["downloaded"]
    assert summary.failed == 0


@pytest.mark.parametrize("encoding", ["gzip", "deflate-zlib", "deflate-raw", "identity"])
def test_each_content_encoding_is_undone_within_the_bound(encoding: str) -> None:
    import zlib

    from caaspp_cli.ets.body import BoundedDecoder

    body = b'{"reports": []}' + b" " * 10_000
    if encoding == "gzip":
        wire, name = gzip.compress(body), "gzip"
    elif encoding == "deflate-zlib":
        wire, name = zlib.compress(body), "deflate"
    elif encoding == "deflate-raw":
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        wire, name = packer.compress(body) + packer.flush(), "deflate"
    else:
        wire, name = body, "identity"
    decoder = BoundedDecoder(name)
    out = b"".join(decoder.feed(wire[i : i + 7], 1 << 20) for i in range(0, len(wire), 7))
    assert out + decoder.flush() == body
    if name != "identity":
        assert len(BoundedDecoder(name).feed(wire, 100)) == 100  # never more than asked
