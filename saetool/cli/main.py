"""``saetool``: the root command, global options and the error boundary."""

from __future__ import annotations

import errno
import os
import sys
from typing import TYPE_CHECKING, Any, Optional

import typer

from saetool import __version__
from saetool.console import configure, is_debug, stderr
from saetool.errors import SaetoolError
from saetool.plugins import host

if TYPE_CHECKING:
    from saetool.plugins import PluginHost

# Deferred imports: the entry point of `saetool --help`; rich's Text and the artifact file helpers load only on the
# error path.

HELP = """\
Sparse-autoencoder interpretability research from the command line.

Stages read and write HDF5 artifacts and pass a one-line JSON manifest on
stdout, so they pipe:

    saetool extract --layers 15 | saetool inspect

Progress, logs and tables go to stderr. Add `--debug` to see tracebacks.
"""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"saetool {__version__}")
        raise typer.Exit()


def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (also SAETOOL_DEBUG=1)."),
) -> None:
    configure(quiet=quiet, verbose=verbose, debug=debug or None)


def build_app(plugin_host: Optional["PluginHost"] = None) -> typer.Typer:
    """The root typer app with every command registered with ``plugin_host``.

    ``plugin_host`` defaults to the process-wide host (built-ins plus the
    third-party plugins ``SAETOOL_LOAD_PLUGINS`` allows); the CLI reference
    generator passes one without entry points, so only built-ins appear.
    """
    app = typer.Typer(
        name="saetool",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="markdown",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for reg in (plugin_host or host()).collect("commands").values():
        obj = reg.obj
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=reg.name)
        else:
            app.command(name=reg.name, **reg.options)(obj)
    return app


HELP_WIDTH = 120  # columns of --help when stdout is not a terminal and COLUMNS is unset


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: run the CLI and turn errors into exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:  # accept --debug anywhere, not only before the command
        args.remove("--debug")
        configure(debug=True)
    widened = {"--help", "-h"} & set(args) and not sys.stdout.isatty() and "COLUMNS" not in os.environ
    if widened:  # help read from a pipe or file: rich's 80 columns would cut long option names
        os.environ["COLUMNS"] = str(HELP_WIDTH)
    try:
        _run(args)
    finally:
        if widened:
            os.environ.pop("COLUMNS", None)  # main() also runs in-process (tests): leave the environment as it was
        source = sys.modules.get("saetool.models.source")
        if source is not None:  # --trust-remote-code holds for one command: the next call in this process starts untrusted
            source.trust_remote_code(False)


def _run(args: list[str]) -> None:
    """Run the command line ``args``; errors become one line and an exit code."""
    command = typer.main.get_command(build_app())
    try:
        code: Any = command.main(args=args, prog_name="saetool", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        _fail("aborted", 1)
        return
    except KeyboardInterrupt:
        _fail("interrupted", 130)
        return
    except Exception as exc:  # the error boundary
        if _is_usage_error(exc):  # click's (typer's vendored) UsageError and friends
            ctx = getattr(exc, "ctx", None)
            sub = ctx.command_path if ctx is not None else "saetool"
            _fail(f"{exc.format_message()} (see `{sub} --help`)", exc.exit_code)  # type: ignore[attr-defined]
            return
        if is_debug():
            stderr().print_exception(show_locals=False)
        if not isinstance(exc, SaetoolError):  # a failed write no stage turned into its one line
            from saetool.artifacts.files import write_error

            exc = write_error(exc, getattr(exc, "filename", None) or "the output") or exc
        if isinstance(exc, SaetoolError):
            _fail(exc.one_line(), exc.exit_code)
        elif isinstance(exc, (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError)):
            _fail(f"{exc.strerror}: {exc.filename}", 2)
        elif _is_path_error(exc):
            _fail(f"{exc.strerror}: {exc.filename}; check the path", 2)  # type: ignore[attr-defined]
        else:
            _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback, and please report it)", 1)
        return
    sys.exit(code if isinstance(code, int) else 0)


def _is_path_error(exc: BaseException) -> bool:
    """An OSError about a path the user gave (too long, a symlink loop, a read-only file system)."""
    return isinstance(exc, OSError) and exc.filename is not None and exc.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EROFS)


def _is_usage_error(exc: BaseException) -> bool:
    return hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)


def _fail(message: str, code: int) -> None:
    text = " ".join(message.split())
    try:
        from rich.text import Text

        line = Text("error: ", style="bold red")
        line.append(text)
        stderr().print(line, soft_wrap=True)
    except Exception:
        sys.stderr.write(f"error: {text}\n")
    from saetool.artifacts.files import exit_if_abandoned

    exit_if_abandoned(code)  # an HDF5 file that failed mid-write: skip HDF5's clean-up, which would crash
    sys.exit(code)


if __name__ == "__main__":
    main()
