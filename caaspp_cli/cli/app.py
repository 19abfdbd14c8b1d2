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
        render.configure_streams()
        from caaspp_cli import audit

        audit.start_run()
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
            name = exc.ctx.command_path if exc.ctx else self._command_path(args)
            message = exc.format_message().strip().rstrip(".")
            render.error(f"{name}: {message}.", f"run '{name} --help' to see the options.")
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
        self._audit(args, int(code))
        if standalone_mode:
            sys.exit(int(code))
        return int(code)

    def _audit(self, args: Any, code: int) -> None:
        """The run line of the audit log: which command (its words, never its values)."""
        from caaspp_cli import audit

        command = self._command_path(args).removeprefix("caaspp").strip()
        if not command:
            words = list(sys.argv[1:] if args is None else args)
            if not any(not word.startswith("-") for word in words):
                return  # help or the version, asked of caaspp itself: no command ran
            # A word that is no command (never written: it may be an SSID or a name).
            command = "(unknown command)"
        try:
            audit.record_run(command, code)
        except OSError as exc:
            if code not in (ExitCode.OK, ExitCode.FAILED):
                return  # the run's own error is the one sentence to read
            render.warning(
                f"the audit log {audit.audit_path()} cannot be written "
                f"({exc.strerror or exc}): this run is not recorded in it."
            )

    def _command_path(self, args: Any) -> str:
        """The command a usage error is about, from the words typed: some errors of the
        option parser come without the command's context."""
        words = list(sys.argv[1:] if args is None else args)
        path, current = ["caaspp"], self
        position = 0
        while position < len(words):
            word = words[position]
            position += 1
            if word == "--profile":
                position += 1
            elif not word.startswith("-"):
                command = getattr(current, "commands", {}).get(word)
                if command is None:
                    break
                path.append(word)
                current = command
        return " ".join(path)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy_help(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _tidy_help(self, ctx)
        super().format_help(ctx, formatter)


def _tidy_help(command: Any, ctx: Any) -> None:
    """typer shows each parameter's Python type in help (``<bool>`` beside a flag,
    ``<list[Path]>`` beside an argument, ``<str>``): show nothing for a flag or an argument
    (its name says what it is) and a placeholder a person reads for an option's value."""
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: None
            continue
        if param.metavar is not None:
            continue
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
            continue
        shown = str(param.display_type(ctx))
        if shown.startswith("<") and "|" not in shown:
            kind = shown.strip("<>").split()[0]
            param.metavar = _PLACEHOLDERS.get(kind) or (param.name or "value").upper()
    for subcommand in getattr(command, "commands", {}).values():
        _tidy_help(subcommand, ctx)


_PLACEHOLDERS = {"dir": "DIR", "file": "FILE", "path": "PATH", "int": "N", "float": "NUMBER"}


app = typer.Typer(
    cls=CaasppGroup,
    name="caaspp",
    help=(
        "Fetch, protect and deliver California CAASPP and ELPAC Student Score Reports.\n\n"
        "Exit codes: 0 ok, 1 unexpected, 2 bad input, 3 some rows or files failed, "
        "4 credentials, 5 nothing to fetch, 6 another caaspp run holds the folder, "
        "130 interrupted."
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
    from caaspp_cli.cli import (
        bulk,
        config,
        deliver,
        fetch,
        protect,
        purge,
        sandbox,
        send,
        split,
        status,
    )

    bulk.register(app)
    config.register(app)
    deliver.register(app)
    fetch.register(app)
    protect.register(app)
    purge.register(app)
    sandbox.register(app)
    send.register(app)
    split.register(app)
    status.register(app)


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
