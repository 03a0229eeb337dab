"""irkit's command line: the only code that prints or exits. Each command is one module."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Final

try:  # Ctrl-C while the command line loads: exit 130 as later, not a traceback and -2
    import typer

    from irkit import __version__
except KeyboardInterrupt:
    sys.stderr.write("irkit: interrupted\n")
    exec("")  # CPython forgets the interrupt (see irkit.cli.common.interrupted): exit 130
    raise SystemExit(130) from None

#: Each command's module (``irkit.cli.<module>``) and function, in ``--help``'s order. A
#: command line naming one imports only its module: the thirteen cost every command
#: ~30 ms of start-up, a sixth of ``irkit hash``'s (#18).
COMMANDS: Final = {
    "triage": ("triage", "triage"),
    "parse": ("parse", "parse"),
    "timeline": ("timeline", "timeline"),
    "export": ("export", "export"),
    "crosscheck": ("crosscheck", "crosscheck"),
    "hash": ("hashing", "hash_command"),
    "collect": ("collect", "collect"),
    "verify": ("collect", "verify"),
    "scan": ("scan", "scan"),
    "findings": ("findings", "findings"),
    "stack": ("analytics", "stack"),
    "firstseen": ("analytics", "firstseen"),
    "sql": ("sql", "sql"),
    "report": ("report", "report"),
}
#: Command groups: name → the module whose ``app`` they are.
GROUPS: Final = {"rules": "rules"}


def version_line() -> str:
    """``irkit 0.1.0 (C accelerator in use)``: the version and which EVTX hot path runs."""
    from irkit.speedups import speedups

    if speedups is not None:
        engine = "C accelerator in use"
    elif os.environ.get("IRKIT_PURE_PYTHON", "") not in ("", "0"):
        engine = "pure Python: IRKIT_PURE_PYTHON is set"
    else:
        engine = "pure Python: the C accelerator is not built"
    return f"irkit {__version__} ({engine})"


def _version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version, and whether the C accelerator is in use, and exit.",
    ),
) -> None:
    """irkit parses host artifacts into one timeline, scans it, and exports it."""


def build_app(only: str | None = None) -> typer.Typer:
    """The command line: every command, or only ``only`` (a command or group name)."""
    app = typer.Typer(
        name="irkit",
        help="Forensic triage for incident responders: evidence into one UTC timeline.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for name, (module, function) in COMMANDS.items():
        if only in (None, name):
            app.command(name)(getattr(importlib.import_module(f"irkit.cli.{module}"), function))
    for name, module in GROUPS.items():
        if only in (None, name):
            app.add_typer(importlib.import_module(f"irkit.cli.{module}").app, name=name)
    return app


def __getattr__(name: str) -> typer.Typer:
    """``irkit.cli.app``: the whole command line (for typer's test runner)."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _terminate(signum: int, frame: object) -> None:
    # A TERM (a script's timeout, a job killed) ends the run like Ctrl-C: worker
    # processes are shut down and the case is left consistent, not orphaned.
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(run())


def run(args: list[str] | None = None) -> int:
    """Run a command line; return its exit code.

    A mistake on the command line is one line on stderr and exit 2, as the README says
    (typer's boxed error is for --help only): ``irkit: usage: No such option: --bogus
    (see irkit triage --help)``.
    """
    from typer import _click  # typer vendors click here (ruff bans importing click)

    from irkit.cli.common import interrupted, say
    from irkit.errors import ExitCode

    words = sys.argv[1:] if args is None else args
    named = words[0] if words and (words[0] in COMMANDS or words[0] in GROUPS) else None
    try:
        app = build_app(named)  # a misspelt command gets them all, for the suggestions
        code = app(args=args, prog_name="irkit", standalone_mode=False)
    except KeyboardInterrupt:  # before the command's own handler: typer reading the line
        return interrupted().exit_code
    except _click.exceptions.UsageError as exc:
        if type(exc).__name__ != "NoArgsIsHelpError":  # that one has printed the help
            if isinstance(exc, _click.exceptions.NoSuchOption) and exc.ctx is not None:
                # Old spellings kept as hidden aliases are not offered as suggestions.
                hidden = {
                    name
                    for param in exc.ctx.command.params
                    if getattr(param, "hidden", False)
                    for name in param.opts
                }
                exc.possibilities = [p for p in exc.possibilities or () if p not in hidden]
            command = exc.ctx.command_path if exc.ctx is not None else "irkit"
            message = " ".join(exc.format_message().split()).rstrip(".")
            say("irkit: usage: ", "bold red", f"{message} (see {command} --help)")
        return int(ExitCode.USAGE)
    except _click.exceptions.ClickException as exc:
        say("irkit: error: ", "bold red", " ".join(exc.format_message().split()))
        return exc.exit_code
    except typer.Abort:
        say("irkit: aborted", "yellow")
        return int(ExitCode.FATAL)
    return code if isinstance(code, int) else int(ExitCode.OK)
