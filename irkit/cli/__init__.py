"""irkit's command line: the only code that prints or exits. Each command is one module."""

from __future__ import annotations

import signal

import typer

from irkit import __version__
from irkit.cli import analytics, collect, crosscheck, hashing, parse, rules, scan, timeline, triage

app = typer.Typer(
    name="irkit",
    help="Forensic triage for incident responders: evidence into one UTC timeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"irkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """irkit parses host artifacts into one timeline, scans it, and exports it."""


app.command("triage")(triage.triage)
app.command("parse")(parse.parse)
app.command("timeline")(timeline.timeline)
app.command("crosscheck")(crosscheck.crosscheck)
app.command("hash")(hashing.hash_command)
app.command("collect")(collect.collect)
app.command("verify")(collect.verify)
app.command("scan")(scan.scan)
app.command("findings")(scan.findings)
app.command("stack")(analytics.stack)
app.command("firstseen")(analytics.firstseen)
app.add_typer(rules.app, name="rules")


def _terminate(signum: int, frame: object) -> None:
    # A TERM (a script's timeout, a job killed) ends the run like Ctrl-C: worker
    # processes are shut down and the case is left consistent, not orphaned.
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    app()
