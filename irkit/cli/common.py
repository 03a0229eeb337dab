"""What every command shares: options, the error boundary, the console, progress, summaries."""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, ParamSpec, TypeVar

import typer

from irkit.errors import ExitCode, IrkitError

if TYPE_CHECKING:  # rich is imported when something is printed: start-up stays short
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

P = ParamSpec("P")
R = TypeVar("R")

Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar and no summary; errors only.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]
CaseDir = Annotated[Path, typer.Option("--case", "-c", help="Case directory (created if missing).")]

_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def stderr_console() -> Console:
    """The console for progress, summaries and errors (stderr, never stdout)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=False)


def summary_table(title: str) -> Table:
    """The closing summary's two-column table (a bold key, its value) every command prints."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    return table


def safe_text(value: object, style: str = "") -> Text:
    """Evidence text for the terminal: no markup, no escape sequences reach it."""
    from rich.text import Text

    text = str(value)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return Text(text, style=style)


def _say(prefix: str, style: str, message: str = "", hint: str = "") -> None:
    """One error line on stderr (evidence text escaped), and its hint."""
    from rich.text import Text

    console = stderr_console()
    line = Text(prefix, style=style)
    line.append_text(safe_text(message))
    console.print(line)
    if hint:
        console.print(Text("hint: ", style="yellow") + safe_text(hint))


def errors_handled(func: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into one line on stderr with a hint, and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        debug = bool(kwargs.get("debug")) or os.environ.get("IRKIT_DEBUG") == "1"
        try:
            return func(*args, **kwargs)
        except IrkitError as exc:
            if debug:
                traceback.print_exc(file=sys.stderr)
            _say("irkit: error: ", "bold red", exc.message, exc.hint)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            _say("irkit: interrupted", "yellow")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            # The reader went away (| head): leave quietly, like a Unix tool.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(int(ExitCode.OK)) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if debug:
                traceback.print_exc(file=sys.stderr)
            _say(
                "irkit: internal error: ",
                "bold red",
                f"{type(exc).__name__}: {exc}",
                "run again with --debug and report the traceback",
            )
            raise typer.Exit(int(ExitCode.FATAL)) from None

    return wrapper


def show_progress(quiet: bool) -> bool:
    """A progress bar only on a terminal, and not when asked to be quiet."""
    return not quiet and sys.stderr.isatty()


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KB' (decimal units, as disks are sold)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
