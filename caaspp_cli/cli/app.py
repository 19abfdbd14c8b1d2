"""The root command, global options, and the one place errors become exit codes."""

from __future__ import annotations

import inspect
import logging
import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from caaspp_cli import __version__
from caaspp_cli.cli import render
from caaspp_cli.errors import CaasppError, ExitCode

try:  # typer >= 0.29 carries its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer runs on the click package
    from click import exceptions as click_exceptions  # type: ignore[no-redef]


class _State:
    debug = False
    profile: str | None = None


state = _State()


class CaasppGroup(TyperGroup):
    """Runs the command tree and turns every expected failure into one line and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name or "caaspp",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = result if isinstance(result, int) else ExitCode.OK
        except CaasppError as exc:
            if state.debug:
                traceback.print_exc()
            render.error(exc.message, exc.hint)
            code = exc.exit_code
        except click_exceptions.NoArgsIsHelpError:
            # The help text has been printed already: a bare command is a usage error.
            code = ExitCode.BAD_INPUT
        except click_exceptions.UsageError as exc:
            render.error(_usage_sentence(exc), _usage_hint(exc))
            code = ExitCode.BAD_INPUT
        except click_exceptions.ClickException as exc:
            render.error(exc.format_message())
            code = ExitCode.BAD_INPUT
        except (typer.Abort, KeyboardInterrupt):
            render.error("interrupted.")
            code = ExitCode.INTERRUPTED
        except Exception as exc:  # the last line of defence: one sentence, no traceback
            if state.debug:
                traceback.print_exc()
            render.error(
                f"unexpected {type(exc).__name__}: {exc}",
                "run again with --debug for details, and report it if it persists.",
            )
            code = ExitCode.UNEXPECTED
        if standalone_mode:
            sys.exit(int(code))
        return int(code)


def _usage_sentence(exc: click_exceptions.UsageError) -> str:
    message = exc.format_message().strip().rstrip(".")
    name = exc.ctx.command_path if exc.ctx else "caaspp"
    return f"{name}: {message}."


def _usage_hint(exc: click_exceptions.UsageError) -> str:
    name = exc.ctx.command_path if exc.ctx else "caaspp"
    return f"run '{name} --help' to see the options."


app = typer.Typer(
    cls=CaasppGroup,
    name="caaspp",
    help=(
        "Fetch, protect and deliver California CAASPP and ELPAC Student Score Reports.\n\n"
        "Exit codes: 0 ok, 1 unexpected, 2 bad input, 3 some rows or files failed, "
        "4 credentials, 5 nothing to fetch, 130 interrupted."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"caaspp {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    profile: Annotated[
        str | None,
        typer.Option("--profile", envvar="CAASPP_PROFILE", help="Connection profile to use."),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Verbose logs and tracebacks (never secrets).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Fetch, protect and deliver California Student Score Reports."""
    state.debug = debug
    state.profile = profile
    _configure_logging(debug)


def _configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root_logger = logging.getLogger("caaspp_cli")
    root_logger.handlers[:] = [handler]
    root_logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    root_logger.propagate = False
    # httpx and httpcore log full URLs, and pre-signed links are bearer secrets for 30
    # minutes: keep them quiet even with --debug; our client logs redacted URLs instead.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _register_commands() -> None:
    from caaspp_cli.cli import bulk, config, fetch, protect, purge, sandbox, send, split

    bulk.register(app)
    config.register(app)
    fetch.register(app)
    protect.register(app)
    purge.register(app)
    sandbox.register(app)
    send.register(app)
    split.register(app)


_register_commands()


def _reflow(text: str) -> str:
    """Help text with each paragraph on one line: typer keeps a docstring's line breaks
    after its first paragraph, which rags every help page on a narrow terminal."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _reflow_help(typer_app: typer.Typer) -> None:
    for command in typer_app.registered_commands:
        doc = command.help or (command.callback.__doc__ if command.callback else None)
        if doc:
            command.help = _reflow(doc)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


_reflow_help(app)


def main() -> None:
    app()
