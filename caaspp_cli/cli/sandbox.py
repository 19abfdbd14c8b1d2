"""`caaspp sandbox`: a local ETS-compatible server with synthetic students."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Annotated

import typer

from caaspp_cli.cli import render
from caaspp_cli.errors import BadInputError


def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 0,
    students: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Number of synthetic students.")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic world.")] = 2026,
    latency_ms: Annotated[
        float, typer.Option(min=0, max=60_000, help="Delay added to every request, in ms.")
    ] = 0.0,
    fault_rate: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of data and download requests that fail (5xx, cut-short PDFs, "
            "HTML with status 200).",
        ),
    ] = 0.0,
    rate_limit: Annotated[
        float | None,
        typer.Option(min=0.001, help="Requests per second; more are answered 429."),
    ] = None,
    token_ttl: Annotated[
        int, typer.Option(min=1, help="Access token lifetime, in seconds.")
    ] = 3600,
    link_ttl: Annotated[
        int, typer.Option(min=1, help="Download link lifetime, in seconds.")
    ] = 1800,
    revoke_every: Annotated[
        int | None, typer.Option(min=1, help="Revoke the current token every N data requests.")
    ] = None,
    roster_out: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False, help="Write a roster CSV of the sandbox's students to this file."
        ),
    ] = None,
    render_cache: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Keep rendered reports in this folder, so restarts serve them at once.",
        ),
    ] = None,
    release_after: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="Hold back some reports (--held-back) until WHEN: seconds from start, or an "
            "ISO time such as 2026-08-20T06:00. POST /_sandbox/release lets them out at once. "
            "For trying reports that ETS releases later (caaspp deliver, bulk --recheck-after).",
        ),
    ] = None,
    held_back: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="SHARE",
            help="With --release-after: the share of the reports held back (by the seed).",
        ),
    ] = 0.25,
    toms_export: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Write TOMS-style merged downloads (one PDF per year, school and grade, and "
            "a zip) of the sandbox's reports into this folder, then exit, for caaspp split.",
        ),
    ] = None,
) -> None:
    """Run a local ETS-compatible score-report server until Ctrl-C.

    The first line printed is the base URL; then the demo credentials and example SSIDs.
    """
    from caaspp_cli.sandbox import require_extra

    require_extra()
    from caaspp_cli.fsutil import prepare_output_dir, write_private_text
    from caaspp_cli.sandbox import i18n
    from caaspp_cli.sandbox.app import SandboxConfig, SandboxState
    from caaspp_cli.sandbox.fonts import fonts_available
    from caaspp_cli.sandbox.server import base_url_of, bind_socket, serve_foreground

    try:
        config = SandboxConfig(
            students=students,
            seed=seed,
            latency_ms=latency_ms,
            fault_rate=fault_rate,
            rate_limit=rate_limit,
            token_ttl=token_ttl,
            link_ttl=link_ttl,
            revoke_every=revoke_every,
            render_cache_dir=render_cache,
            held_back=held_back if release_after is not None else 0.0,
            release_at=_release_at(release_after) if release_after is not None else None,
        )
    except ValueError as exc:
        raise BadInputError(f"{exc}.") from None
    if roster_out is not None:
        prepare_output_dir(roster_out.parent, "folder of --roster-out")
    if toms_export is not None:
        _export_toms(students, seed, toms_export, roster_out)
        return
    if render_cache is not None:
        prepare_output_dir(render_cache, "--render-cache folder")
    sock = bind_socket(host, port)
    state = SandboxState(config)
    if roster_out is not None:
        write_private_text(roster_out, roster_csv(state.world.roster_rows()))

    base_url = base_url_of(sock)
    out = sys.stdout
    print(base_url, file=out)
    print(f"client key:    {config.client_key}", file=out)
    print(f"client secret: {config.client_secret}", file=out)
    for case, ssid in state.world.examples().items():
        print(f"example {case + ':':<14} {ssid}", file=out)
    out.flush()

    missing = [name for name, found in fonts_available().items() if not found]
    if missing:
        render.warning(
            "no font at hand for " + ", ".join(missing) + ": those reports are served with "
            "English text and a notice. Install the fonts with: "
            + i18n.FONTS_INSTALL_COMMAND
            + ' (or `python3 -m pip install ".[fonts]"` in the caaspp folder; with pipx: '
            "`pipx inject caaspp weblate-fonts uharfbuzz`)"
        )
    if roster_out is not None:
        rows = render.plural(len(state.world.roster_rows()), "row")
        render.info(f"roster of {rows} written to {roster_out}")
    render.info(
        f"sandbox: {render.plural(students, 'student')}, seed {seed}, listening on "
        f"{base_url} (press Ctrl-C to stop)"
    )
    serve_foreground(state, sock)
    render.info("sandbox stopped.")


def _release_at(when: str) -> float:
    """A --release-after value as a time.time() moment."""
    import time
    from datetime import datetime

    try:
        return time.time() + float(when)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(when)
    except ValueError:
        raise BadInputError(
            f"--release-after {when!r} is neither a number of seconds nor an ISO time."
        ) from None
    return moment.timestamp()


def _export_toms(students: int, seed: int, folder: Path, roster_out: Path | None) -> None:
    from caaspp_cli.fsutil import write_private_text
    from caaspp_cli.sandbox.toms import export_toms
    from caaspp_cli.sandbox.world import World

    world = World.build(students, seed)
    export = export_toms(world, folder)
    if roster_out is not None:
        write_private_text(roster_out, roster_csv(world.roster_rows()))
        rows = render.plural(len(world.roster_rows()), "row")
        render.info(f"roster of {rows} written to {roster_out}")
    render.info(
        f"TOMS-style download: {render.plural(export.reports, 'report')}, "
        f"{render.plural(export.pages, 'page')}, merged into "
        f"{render.plural(len(export.files), 'PDF')} and {export.zip_path}"
    )
    if export.left_out:
        from caaspp_cli.sandbox import i18n
        from caaspp_cli.vocabulary import LANGUAGES

        which = ", ".join(
            f"{render.plural(count, 'report')} in {LANGUAGES.get(language, language)}"
            for language, count in sorted(export.left_out.items())
        )
        render.warning(
            f"left out of the download, having no font to draw them: {which}. Install the "
            f"fonts with: {i18n.FONTS_INSTALL_COMMAND}"
        )


def roster_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["SSID"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def register(app: typer.Typer) -> None:
    app.command("sandbox")(sandbox)
