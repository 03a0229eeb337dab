"""`irkit timeline CASE`: filter and export the case's events (table, CSV, JSONL, bodyfile,
l2tcsv)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, TextIO

import typer

from irkit.cli.common import (
    Debug,
    errors_handled,
    is_stdout,
    safe_text,
    stderr_console,
    text_output,
)
from irkit.errors import UsageError
from irkit.store.timeline import DEFAULT_FIELD_COLUMNS, Selection, TimelineFilter, parse_time

TABLE_LIMIT = 500
#: ``-o -``: standard output, as for ``irkit hash``.


class Format(enum.StrEnum):
    """Output formats."""

    table = "table"
    csv = "csv"
    jsonl = "jsonl"
    bodyfile = "bodyfile"
    l2tcsv = "l2tcsv"


def split_values(values: list[str] | None) -> list[str]:
    """Repeated options and comma-separated lists alike: ``--event-id 1102,104``."""
    return [part.strip() for value in values or () for part in value.split(",")]


def build_filter(
    start: str | None,
    end: str | None,
    source: list[str] | None,
    host: list[str] | None,
    event_id: list[str] | None,
    search: str | None,
    where: str | None,
    limit: int | None,
    finding: list[str] | None = None,
) -> TimelineFilter:
    """The library filter from the command-line options."""
    return TimelineFilter(
        start=parse_time(start, "--from") if start else None,
        end=parse_time(end, "--to") if end else None,
        sources=split_values(source),
        hosts=split_values(host),
        event_ids=split_values(event_id),
        search=search or "",
        where=where or "",
        limit=limit,
        findings=split_values(finding),
    )


def _write(
    selection: Selection, fmt: Format, handle: TextIO, *, excel: bool, field_columns: int
) -> int:
    from irkit.export.bodyfile import BodyfileWriter
    from irkit.export.csv import CsvWriter
    from irkit.export.jsonl import JsonlWriter
    from irkit.export.l2tcsv import L2tCsvWriter

    if fmt is Format.csv:
        return CsvWriter(field_columns, excel=excel).write(selection, handle)
    if fmt is Format.bodyfile:
        writer = BodyfileWriter(field_columns)
        count = writer.write(selection, handle)
        if writer.skipped or (not count and writer.events):
            stderr_console().print(
                safe_text(
                    f"bodyfile: {count:,} files from {writer.events:,} file events; "
                    f"{writer.skipped:,} other events skipped (not file events)"
                )
            )
        return count
    if fmt is Format.l2tcsv:
        l2t = L2tCsvWriter(field_columns)
        count = l2t.write(selection, handle)
        if l2t.untimed:
            stderr_console().print(
                safe_text(
                    f"l2tcsv: {l2t.untimed:,} events without a time that l2tcsv can write: "
                    "dated 01/01/1970 00:00:00, said in notes"
                )
            )
        return count
    return JsonlWriter(field_columns).write(selection, handle)


def render_table(selection: Selection) -> int:
    """A rich table on stdout; evidence text is escaped (no markup, no ANSI).

    Narrow terminals get time, host and message (the message names the event id and
    channel); wide ones also get source, event id and artifact columns.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    wide = console.width >= 140
    table = Table(show_lines=False, expand=True)
    table.add_column("datetime (UTC)", no_wrap=True, min_width=27)
    table.add_column("host", no_wrap=True, overflow="ellipsis", max_width=16)
    picks = [0, 6]
    if wide:
        for name, index in (("source", 4), ("event_id", 8), ("artifact", 5)):
            table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=20)
            picks.append(index)
    table.add_column("message", overflow="fold", ratio=1, min_width=30)
    picks.append(2)
    count = 0
    for row in selection.rows():
        cells = ["" if row[i] is None else str(row[i]) for i in picks]
        cells[0] = cells[0].replace("+00:00", "Z")
        table.add_row(*(safe_text(c) for c in cells))
        count += 1
    console.print(table)
    return count


@errors_handled
def timeline(
    case: Annotated[Path, typer.Argument(help="Case directory.")],
    start: Annotated[
        str | None,
        typer.Option("--from", help="Earliest time (ISO 8601; UTC unless it has an offset)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Latest time (ISO 8601; UTC unless it has an offset)."),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source", help="Only these sources: evtx, osquery, file, … (repeatable, or a,b)."
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="Only these hosts (any case; a short name matches its FQDN; repeatable, or a,b).",
        ),
    ] = None,
    event_id: Annotated[
        list[str] | None,
        typer.Option("--event-id", help="Only these event ids (repeatable, or 1102,104)."),
    ] = None,
    search: Annotated[
        str | None, typer.Option("--search", help="Text in the message or fields (any case).")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            "--where", help="An SQL condition on the events (reads the case and nothing else)."
        ),
    ] = None,
    finding: Annotated[
        list[str] | None,
        typer.Option(
            "--finding",
            help="Only the events these findings rest on: their uid (or its first 8+ digits) "
            "from `irkit findings` (repeatable, or a,b).",
        ),
    ] = None,
    fmt: Annotated[
        Format,
        typer.Option("--format", "-f", help="Output format (l2tcsv: plaso's 17-column CSV)."),
    ] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (atomically); - for stdout."),
    ] = None,
    excel: Annotated[
        bool,
        typer.Option("--excel", help="CSV for Excel: UTF-8 BOM, cells cut at 32,767 characters."),
    ] = False,
    field_columns: Annotated[
        int,
        typer.Option(
            "--field-columns",
            help="Event fields with a column of their own; the rest go to fields_other.",
            min=0,
        ),
    ] = DEFAULT_FIELD_COLUMNS,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="At most this many rows (table: 500 unless set).", min=0),
    ] = None,
    debug: Debug = False,
) -> None:
    """Export the case's timeline, sorted by time, host, evidence and record.

    Examples:

    irkit timeline irkit-triage --host dc01 --event-id 4624,4625 --from 2024-05-01 --to 2024-05-02

    irkit timeline irkit-triage -f csv -o - --where "fields->>'Image' LIKE '%powershell%'" | less -S
    """
    from irkit.store.case import Case

    if fmt is Format.table and not is_stdout(output):
        raise UsageError(
            "--output needs --format csv, jsonl, l2tcsv or bodyfile: the table is for the terminal",
            hint=f"irkit timeline {case} --format csv -o {output}",
        )
    if fmt is Format.table and limit is None:
        limit = TABLE_LIMIT
    flt = build_filter(start, end, source, host, event_id, search, where, limit, finding)
    with Case(case, read_only=True) as store:
        selection = Selection.of(store, flt)
        if fmt is Format.table:
            total = selection.count()
            if not total:
                _none_matched()
                return
            shown = render_table(selection)
            if shown < total:
                stderr_console().print(
                    safe_text(f"showing {shown:,} of {total:,} events (--limit)")
                )
            return
        with text_output(output) as handle:
            count = _write(selection, fmt, handle, excel=excel, field_columns=field_columns)
        if not count and not selection.count():
            _none_matched()


def _none_matched() -> None:
    """An empty result is said on stderr (never in the data on stdout)."""
    stderr_console().print(safe_text("0 events matched"))
