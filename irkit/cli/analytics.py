"""`irkit stack` and `irkit firstseen`: least-frequency stacking and first-seen entities."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from irkit.cli.common import (
    TABLE_LIMIT,
    Column,
    Debug,
    FormatOption,
    LimitOption,
    OutputOption,
    check_table_output,
    errors_handled,
    fit_table,
    safe_text,
    stderr_console,
    text_output,
)
from irkit.cli.common import RowFormat as Format
from irkit.store.timeline import parse_time

if TYPE_CHECKING:
    from irkit.detect.analytics import StackRow

#: Hosts named in a table cell; the rest are counted.
TABLE_HOSTS = 3
KINDS_HELP = "process, parent-child, service, task, logon, autorun or network"


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


def _render_table(rows: Sequence[StackRow], columns: Sequence[str], by_time: bool) -> None:
    """A table on stdout fitted to the terminal: long values end in '…', the least useful
    columns go first on a narrow one (the hosts before the first-seen time when
    ``by_time``, else the other way round); evidence escaped."""
    from rich.console import Console

    table_columns = [
        Column("count", justify="right", min_width=5),
        *(Column(name, priority=1, min_width=20, lines=2) for name in columns),
        Column("hosts", priority=3 if by_time else 2, min_width=14, max_width=32),
        Column("first seen (UTC)", priority=1 if by_time else 3, min_width=19, max_width=19),
        Column("last seen (UTC)", priority=4, min_width=19, max_width=19),
    ]
    cells: list[list[object]] = []
    for row in rows:
        hosts = ", ".join(row.hosts[:TABLE_HOSTS])
        if len(row.hosts) > TABLE_HOSTS:
            hosts += f" +{len(row.hosts) - TABLE_HOSTS}"
        cells.append(
            [
                str(row.count),
                *row.values,
                f"{len(row.hosts)}: {hosts}" if row.hosts else "0",
                _when(row, True)[:19].replace("T", " "),
                _when(row, False)[:19].replace("T", " "),
            ]
        )
    Console(highlight=False).print(fit_table(table_columns, cells))


def _output(
    rows: Sequence[StackRow],
    columns: Sequence[str],
    fmt: Format,
    output: Path | None,
    limit: int | None,
    by_time: bool = False,
) -> None:
    if limit is not None:
        rows = rows[:limit]
    if fmt is Format.table:
        _render_table(rows, columns, by_time)
        return
    with text_output(output) as handle:
        _write(rows, columns, fmt, handle)


def _write(rows: Sequence[StackRow], columns: Sequence[str], fmt: Format, out: TextIO) -> None:
    if fmt is Format.csv:
        _write_csv(rows, columns, out)
    else:
        _write_jsonl(rows, out)


def _kind(kind: str | None, entity: str | None) -> str:
    """KIND, or its old spelling --entity/-e; both naming different kinds is a mistake."""
    from irkit.errors import UsageError

    if kind is not None and entity is not None and kind != entity:
        raise UsageError(
            f"KIND {kind!r} and --entity {entity!r} differ",
            hint="--entity is the old spelling of KIND: give one of them",
        )
    chosen = kind or entity
    if chosen is None:
        raise UsageError(
            "missing the entity kind",
            hint=f"irkit firstseen CASE KIND --baseline-until ISO; KIND is one of {KINDS_HELP}",
        )
    return chosen


def _summary(text: str) -> None:
    stderr_console().print(safe_text(text), soft_wrap=True)


@errors_handled
def stack(
    case: Annotated[Path, typer.Argument(help="Case directory, or a dataset from irkit export.")],
    by: Annotated[str, typer.Argument(help=f"Entity kind: {KINDS_HELP}.", metavar="KIND")],
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
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
    limit: LimitOption = None,
    debug: Debug = False,
) -> None:
    """Least-frequency stacking: every entity of a kind across all hosts, rarest first.

    Examples:

      irkit stack irkit-triage service --rare 1

      irkit stack irkit-triage parent-child --host dc01 -f csv -o parent-child.csv

      irkit stack fleet-dataset parent-child --rare 1   (across every host of a dataset)
    """
    from irkit.detect import analytics
    from irkit.store.dataset import open_store

    check_table_output(fmt, output, f"irkit stack {case} {by}")
    spec = analytics.entity_kind(by)
    with open_store(case) as store:
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
    case: Annotated[Path, typer.Argument(help="Case directory, or a dataset from irkit export.")],
    kind: Annotated[
        str | None,
        typer.Argument(help=f"Entity kind: {KINDS_HELP}.", metavar="KIND", show_default=False),
    ] = None,
    entity: Annotated[
        str | None,
        typer.Option("--entity", "-e", hidden=True, help="Old spelling of KIND (still accepted)."),
    ] = None,
    *,
    baseline_until: Annotated[
        str,
        typer.Option(
            "--baseline-until",
            help="End of the baseline window (ISO 8601, UTC unless an offset is given).",
        ),
    ],
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
    limit: LimitOption = None,
    debug: Debug = False,
) -> None:
    """Entities first seen after the baseline window, oldest first.

    Examples:

      irkit firstseen irkit-triage service --baseline-until 2024-05-01

      irkit firstseen irkit-triage process --baseline-until 2024-05-01T08:00+02:00 -f jsonl -o -
    """
    from irkit.detect import analytics
    from irkit.store.dataset import open_store

    entity = _kind(kind, entity)
    check_table_output(
        fmt, output, f"irkit firstseen {case} {entity} --baseline-until {baseline_until}"
    )
    spec = analytics.entity_kind(entity)
    until = parse_time(baseline_until, "--baseline-until")
    with open_store(case) as store:
        every = analytics.stack(store, entity)
        rows = analytics.first_seen(store, entity, until)
    if fmt is Format.table and limit is None:
        limit = TABLE_LIMIT
    _output(rows, spec.columns, fmt, output, limit, by_time=True)
    baseline = sum(1 for r in every if r.first_seen is not None and r.first_seen <= until)
    note = (
        f"{entity}: {len(rows):,} of {len(every):,} entities first seen after "
        f"{until.isoformat()}; {baseline:,} seen in the baseline"
    )
    if not baseline and every:
        note += " (no event of this kind before it: every entity counts as new)"
    _summary(note)
