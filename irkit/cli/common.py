"""What every command shares: options, the error boundary, the console, progress, summaries."""

from __future__ import annotations

import contextlib
import enum
import functools
import io
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, ParamSpec, TextIO, TypeVar

import typer
from typer import _click  # typer vendors click here (ruff bans importing click)

from irkit.errors import ExitCode, IrkitError, UsageError, is_interrupt

if TYPE_CHECKING:  # rich is imported when something is printed: start-up stays short
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from irkit.model import ParseWarning

P = ParamSpec("P")
R = TypeVar("R")

Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar and no summary; errors only.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]
CaseDir = Annotated[Path, typer.Option("--case", "-c", help="Case directory (created if missing).")]

#: Seconds before a Ctrl-C lost in a callback is delivered again (``errors_handled``).
LOST_INTERRUPT_DELAY: Final = 0.01

_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES: Final = re.compile(r"[\r\n\t]+")


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


def say(prefix: str, style: str, message: str = "", hint: str = "") -> None:
    """One error line on stderr (evidence text escaped, never wrapped), and its hint."""
    from rich.text import Text

    console = stderr_console()
    line = Text(prefix, style=style)
    line.append_text(safe_text(message))
    console.print(line, soft_wrap=True)
    if hint:
        console.print(Text("hint: ", style="yellow") + safe_text(hint), soft_wrap=True)


def errors_handled(func: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into one line on stderr with a hint, and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        debug = bool(kwargs.get("debug")) or os.environ.get("IRKIT_DEBUG") == "1"
        from irkit.store.lock import on_wait  # a case held by another irkit: say we wait

        on_wait(lambda message: say("irkit: ", "yellow", message))
        _deliver_lost_interrupts()
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            raise interrupted() from None
        except IrkitError as exc:
            if is_interrupt(exc):  # a query cut by Ctrl-C, reported as a failed query
                raise interrupted() from None
            if debug:
                traceback.print_exc(file=sys.stderr)
            say("irkit: error: ", "bold red", exc.message, exc.hint)
            raise typer.Exit(int(exc.exit_code)) from None
        except BrokenPipeError:
            # The reader went away (| head): leave quietly, like a Unix tool.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(int(ExitCode.OK)) from None
        except (typer.Exit, typer.Abort, _click.exceptions.ClickException):
            raise  # a usage error raised by a command: main() says it in one line
        except Exception as exc:
            if is_interrupt(exc):  # DuckDB's form of Ctrl-C during a query
                raise interrupted() from None
            if debug:
                traceback.print_exc(file=sys.stderr)
            say(
                "irkit: internal error: ",
                "bold red",
                f"{type(exc).__name__}: {exc}",
                "run again with --debug and report the traceback",
            )
            raise typer.Exit(int(ExitCode.FATAL)) from None

    return wrapper


#: ``-o -``: standard output, for every command that writes data.
STDOUT: Final = "-"


def is_stdout(path: Path | None) -> bool:
    """Whether an ``--output`` means standard output (none given, or ``-``)."""
    return path is None or str(path) == STDOUT


@contextlib.contextmanager
def text_output(path: Path | None) -> Iterator[TextIO]:
    """Where exported text goes: standard output for none or ``-``, else ``path``
    written atomically (a temporary name, renamed into place once complete). UTF-8,
    newlines as written, text that cannot be encoded backslash-escaped."""
    if is_stdout(path):
        stream = io.TextIOWrapper(
            sys.stdout.buffer, encoding="utf-8", newline="", errors="backslashreplace"
        )
        try:
            yield stream
        finally:
            stream.flush()
            stream.detach()
        return
    assert path is not None
    tmp = path.with_name(f".{path.name}.irkit-tmp")
    with tmp.open("w", encoding="utf-8", newline="", errors="backslashreplace") as handle:
        yield handle
    tmp.replace(path)


def warnings_line(warnings: Sequence[ParseWarning]) -> str:
    """A partial run shown without its summary (``-q``) in one line: how many warnings,
    and the first, so a script's log still names the file (``irkit hash``, ``triage``)."""
    first = warnings[0]
    files = len({w.path for w in warnings})
    return (
        f"{len(warnings):,} warnings in {files:,} files, first: {first.path}: "
        f"{first.kind} (run without -q for the list)"
    )


def interrupted() -> typer.Exit:
    """Ctrl-C handled: say so, and the exit (130) to raise.

    CPython 3.11 remembers a KeyboardInterrupt that escaped code it ran from a string
    (``exec`` of source: every dataclass and namedtuple being defined, C extensions'
    start-up code) and, caught or not, ends the process by SIGINT (exit -2) instead of
    the exit code asked for. Running an empty string the same way makes it forget.
    """
    say("irkit: interrupted", "yellow")
    exec("")  # the reset the docstring says
    return typer.Exit(int(ExitCode.INTERRUPTED))


def _deliver_lost_interrupts() -> None:
    """Ctrl-C that lands inside a callback Python cannot raise from (a weakref callback
    of the import system, a ``__del__``) is printed as "Exception ignored" and lost: the
    run would go on to its end. Such an interrupt is delivered again, as a new Ctrl-C a
    moment later (from the hook itself it would land in the hook, and be lost again),
    and nothing is printed."""
    default = sys.unraisablehook
    if getattr(default, "irkit", False):
        return

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            import _thread
            import threading

            again = threading.Timer(LOST_INTERRUPT_DELAY, _thread.interrupt_main)
            again.daemon = True
            again.start()
            return
        default(unraisable)

    hook.irkit = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


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


Workers = Annotated[
    int, typer.Option("--workers", "-j", help="Parser processes (0: one per core).", min=0)
]


@dataclass(frozen=True)
class Column:
    """A column of a table fitted to the terminal by `fit_table`.

    ``priority``: lower is more useful; when even the narrowest columns do not fit, the
    column with the highest number is dropped first (ties: the rightmost). ``min_width``:
    narrowest it may be squeezed to; ``max_width``: widest it may grow (None: as wide as
    its longest cell). ``lines``: at most this many lines per cell (word-wrapped, the last
    one ending in '…'); 1 keeps every row on one line.
    """

    header: str
    priority: int = 0
    min_width: int = 6
    max_width: int | None = None
    lines: int = 1
    justify: Literal["left", "right", "center"] = "left"
    style: str = ""


def _overhead(columns: int) -> int:
    """A box table's own width: a border before each column, one after the last, padding."""
    return 3 * columns + 1


def _one_line(value: object) -> Text:
    """A cell as one escaped line: newlines and tabs become spaces."""
    from rich.text import Text

    if isinstance(value, Text):
        if not any(c in value.plain for c in "\r\n\t"):
            return value
        return Text(_SPACES.sub(" ", value.plain), style=value.style)
    return safe_text(_SPACES.sub(" ", str(value)))


def _fit_cell(cell: Text, width: int, lines: int, console: Console) -> Text:
    """Cut a cell to ``width`` columns and at most ``lines`` lines, ending in '…' if cut."""
    from rich.text import Text

    if cell.cell_len <= width:
        return cell
    if lines > 1:
        wrapped = cell.wrap(console, width, overflow="fold")
        if len(wrapped) <= lines:
            return Text("\n").join(wrapped)
        kept = list(wrapped)[:lines]
        last = kept[-1].copy()
        last.rstrip()
        if last.cell_len >= width:
            last.truncate(width - 1)
        last.append("…")
        kept[-1] = last
        return Text("\n").join(kept)
    cut = cell.copy()
    cut.truncate(width, overflow="ellipsis")
    return cut


def fit_table(
    columns: Sequence[Column],
    rows: Iterable[Sequence[object]],
    width: int | None = None,
    title: str | None = None,
) -> Table:
    """A rich table whose rows fit ``width`` (default: the terminal; 80 when piped).

    Column widths follow their content up to ``max_width``. If the sum is too wide, the
    least useful columns (highest ``priority``; then the widest) are narrowed down to
    ``min_width``; if even that is too wide, the least useful are dropped, named in the
    caption.
    Long cells end in '…' (CSV and JSONL keep full values). Cells are escaped with
    `safe_text` unless they already are rich ``Text``; newlines become spaces.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    total = width if width is not None else console.width
    cells = [[_one_line(v) for v in row] for row in rows]
    keep = list(range(len(columns)))
    while len(keep) > 1 and (
        sum(min(columns[i].min_width, _natural(columns[i], cells, i)) for i in keep)
        + _overhead(len(keep))
        > total
    ):
        drop = max(keep, key=lambda i: (columns[i].priority, i))
        keep.remove(drop)
    widths = {i: _natural(columns[i], cells, i) for i in keep}
    floor = {i: min(columns[i].min_width, widths[i]) for i in keep}
    excess = sum(widths.values()) + _overhead(len(keep)) - total
    while excess > 0:
        shrinkable = [i for i in keep if widths[i] > floor[i]]
        if not shrinkable:
            break
        # The least useful first; among equals, the widest.
        widest = max(shrinkable, key=lambda i: (columns[i].priority, widths[i], i))
        widths[widest] -= 1
        excess -= 1
    dropped = [columns[i].header for i in range(len(columns)) if i not in keep]
    caption = None
    if dropped:
        caption = f"not shown at this width: {', '.join(dropped)} (see --format csv or jsonl)"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for i in keep:
        col = columns[i]
        table.add_column(
            col.header if len(col.header) <= widths[i] else col.header[: widths[i] - 1] + "…",
            width=widths[i],
            justify=col.justify,
            style=col.style or None,
            no_wrap=col.lines == 1,
            overflow="ellipsis" if col.lines == 1 else "fold",
        )
    for row in cells:
        table.add_row(*(_fit_cell(row[i], widths[i], columns[i].lines, console) for i in keep))
    return table


def _natural(column: Column, cells: Sequence[Sequence[Text]], index: int) -> int:
    """The width a column would like: its header or longest cell, at most max_width."""
    longest = max((row[index].cell_len for row in cells), default=0)
    wanted = max(len(column.header), longest, 1)
    return wanted if column.max_width is None else min(wanted, column.max_width)


#: Rows a table shows unless ``--limit`` says otherwise (stack, firstseen, sql).
TABLE_LIMIT: Final = 500


class RowFormat(enum.StrEnum):
    """Output formats of the row-listing commands (stack, firstseen, sql)."""

    table = "table"
    csv = "csv"
    jsonl = "jsonl"


FormatOption = Annotated[RowFormat, typer.Option("--format", "-f", help="Output format.")]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file ('-': stdout); CSV or JSONL only."),
]
LimitOption = Annotated[
    int | None,
    typer.Option("--limit", help="At most this many rows (table: 500 unless set).", min=0),
]


def check_table_output(fmt: RowFormat, output: Path | None, command: str) -> None:
    """The table is for the terminal: -o FILE needs CSV or JSONL (as for irkit timeline)."""
    if fmt is RowFormat.table and not is_stdout(output):
        raise UsageError(
            "--output needs --format csv or jsonl: the table is for the terminal",
            hint=f"{command} --format csv -o {output}",
        )


def write_run_manifest(case: Path, run_id: str, command: str, **inputs: Any) -> None:
    """``CASE/runs/RUN-ID.json`` for the running command: its argv, its options as given
    and ``inputs`` (keywords of ``irkit.store.custody.record_run``); docs/custody.md."""
    from typer._click.globals import get_current_context

    from irkit.store.custody import record_run

    context = get_current_context(silent=True)
    options = dict(context.params) if context is not None else {}
    record_run(case, run_id, command, argv=sys.argv, options=options, **inputs)
