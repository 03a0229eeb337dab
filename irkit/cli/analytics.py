"""`irkit stack` and `irkit firstseen`: least-frequency stacking and first-seen entities."""

from __future__ import annotations

import enum
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from irkit.cli.common import Debug, errors_handled, safe_text, stderr_console
from irkit.timeline import parse_time

if TYPE_CHECKING:
    from irkit.analytics import StackRow

TABLE_LIMIT = 500
#: Hosts named in a table cell; the rest are counted.
TABLE_HOSTS = 3
KINDS_HELP = "process, parent-child, service, task, logon, autorun or network"


class Format(enum.StrEnum):
    """Output formats."""

    table = "table"
    csv = "csv"
    jsonl = "jsonl"


def _when(row: StackRow, first: bool) -> str:
    value = row.first_seen if first else row.last_seen
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_csv(rows: Sequence[StackRow], columns: Sequence[str], out: TextIO) -> None:
    import csv

    from irkit.export.csv import neutralise

    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            *columns,
            "count",
            "host_count",
            "hosts",
            "sources",
            "first_seen",
            "last_seen",
            "event_uid",
        ]
    )
    for row in rows:
        writer.writerow(
            [
                *(neutralise(v) for v in row.values),
                str(row.count),
                str(len(row.hosts)),
                neutralise(";".join(row.hosts)),
                ";".join(row.sources),
                row.as_dict()["first_seen"],
                row.as_dict()["last_seen"],
                row.event_uids[0] if row.event_uids else "",
            ]
        )


def _write_jsonl(rows: Sequence[StackRow], out: TextIO) -> None:
    for row in rows:
        out.write(json.dumps(row.as_dict(), ensure_ascii=False) + "\n")


def _render_table(rows: Sequence[StackRow], columns: Sequence[str]) -> None:
    """A rich table on stdout; evidence text escaped. Narrow terminals drop the last time."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    wide = console.width >= 140
    table = Table(expand=True)
    table.add_column("count", justify="right", no_wrap=True)
    for column in columns:
        table.add_column(column, overflow="fold", ratio=1, min_width=16)
    table.add_column("hosts", overflow="fold", max_width=40 if wide else 20)
    table.add_column("first seen (UTC)", no_wrap=True)
    if wide:
        table.add_column("last seen (UTC)", no_wrap=True)
    for row in rows:
        hosts = ", ".join(row.hosts[:TABLE_HOSTS])
        if len(row.hosts) > TABLE_HOSTS:
            hosts += f" +{len(row.hosts) - TABLE_HOSTS}"
        times = [_when(row, True)[:19].replace("T", " ")]
        if wide:
            times.append(_when(row, False)[:19].replace("T", " "))
        table.add_row(
            str(row.count),
            *(safe_text(v) for v in row.values),
            safe_text(f"{len(row.hosts)}: {hosts}" if row.hosts else "0"),
            *times,
        )
    console.print(table)


def _output(
    rows: Sequence[StackRow],
    columns: Sequence[str],
    fmt: Format,
    output: Path | None,
    limit: int | None,
) -> None:
    if limit is not None:
        rows = rows[:limit]
    if fmt is Format.table:
        _render_table(rows, columns)
        return
    if output is not None:
        tmp = output.with_name(f".{output.name}.irkit-tmp")
        with tmp.open("w", encoding="utf-8", newline="", errors="backslashreplace") as handle:
            _write(rows, columns, fmt, handle)
        tmp.replace(output)
        return
    stream = io.TextIOWrapper(
        sys.stdout.buffer, encoding="utf-8", newline="", errors="backslashreplace"
    )
    try:
        _write(rows, columns, fmt, stream)
    finally:
        stream.flush()
        stream.detach()


def _write(rows: Sequence[StackRow], columns: Sequence[str], fmt: Format, out: TextIO) -> None:
    if fmt is Format.csv:
        _write_csv(rows, columns, out)
    else:
        _write_jsonl(rows, out)


def _summary(text: str) -> None:
    stderr_console().print(safe_text(text))


Fmt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")]
Limit = Annotated[
    int | None,
    typer.Option("--limit", help="At most this many rows (table: 500 unless set).", min=0),
]


@errors_handled
def stack(
    case: Annotated[Path, typer.Argument(help="Case directory.")],
    by: Annotated[str, typer.Argument(help=f"Entity kind: {KINDS_HELP}.")],
    rare: Annotated[
        int | None,
        typer.Option("--rare", help="Only entities seen at most this many times.", min=1),
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only this source (repeatable).")
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Only this host, any case (repeatable)."),
    ] = None,
    fmt: Fmt = Format.table,
    output: Output = None,
    limit: Limit = None,
    debug: Debug = False,
) -> None:
    """Least-frequency stacking: every entity of a kind across all hosts, rarest first."""
    from irkit import analytics
    from irkit.case import Case

    spec = analytics.entity_kind(by)
    with Case(case, read_only=True) as store:
        rows = analytics.stack(store, by, rare=rare, sources=source or (), hosts=host or ())
    if fmt is Format.table and limit is None:
        limit = TABLE_LIMIT
    _output(rows, spec.columns, fmt, output, limit)
    shown = len(rows) if limit is None else min(limit, len(rows))
    events = sum(r.count for r in rows)
    note = f"{by}: {len(rows):,} entities from {events:,} events"
    if shown < len(rows):
        note += f"; showing the {shown:,} rarest (--limit)"
    _summary(note)


@errors_handled
def firstseen(
    case: Annotated[Path, typer.Argument(help="Case directory.")],
    entity: Annotated[str, typer.Option("--entity", "-e", help=f"Entity kind: {KINDS_HELP}.")],
    baseline_until: Annotated[
        str,
        typer.Option(
            "--baseline-until",
            help="End of the baseline window (ISO 8601, UTC unless an offset is given).",
        ),
    ],
    fmt: Fmt = Format.table,
    output: Output = None,
    limit: Limit = None,
    debug: Debug = False,
) -> None:
    """Entities first seen after the baseline window, oldest first."""
    from irkit import analytics
    from irkit.case import Case

    spec = analytics.entity_kind(entity)
    until = parse_time(baseline_until, "--baseline-until")
    with Case(case, read_only=True) as store:
        every = analytics.stack(store, entity)
        rows = analytics.first_seen(store, entity, until)
    if fmt is Format.table and limit is None:
        limit = TABLE_LIMIT
    _output(rows, spec.columns, fmt, output, limit)
    baseline = sum(1 for r in every if r.first_seen is not None and r.first_seen <= until)
    note = (
        f"{entity}: {len(rows):,} of {len(every):,} entities first seen after "
        f"{until.isoformat()}; {baseline:,} seen in the baseline"
    )
    if not baseline and every:
        note += " (no event of this kind before it: every entity counts as new)"
    _summary(note)
