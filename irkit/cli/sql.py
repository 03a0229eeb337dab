"""`irkit sql CASE|DATASET QUERY`: one SELECT over a case's or a dataset's tables."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any, TextIO

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


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _write_csv(columns: list[str], rows: list[tuple[Any, ...]], out: TextIO) -> None:
    from irkit.export.csv import neutralise

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([neutralise(c) for c in columns])
    for row in rows:
        writer.writerow([neutralise(_text(v)) for v in row])


def _write_jsonl(columns: list[str], rows: list[tuple[Any, ...]], out: TextIO) -> None:
    from irkit.export.base import json_text

    for row in rows:
        out.write(json_text({c: _jsonable(v) for c, v in zip(columns, row, strict=True)}) + "\n")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return _text(value)


@errors_handled
def sql(
    target: Annotated[Path, typer.Argument(help="Case directory, or a dataset from irkit export.")],
    query: Annotated[
        str, typer.Argument(help="One SELECT over events, findings, finding_events (…).")
    ],
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
    limit: LimitOption = None,
    debug: Debug = False,
) -> None:
    """Run one SELECT with DuckDB over a case or a dataset, read-only.

    A case has the tables events, findings, finding_events, evidence, warnings, runs; a
    dataset has events (with host_key and date), findings and finding_events.

    Examples:

      irkit sql irkit-triage "SELECT event_id, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC"

      irkit sql fleet "SELECT host, count(*) FROM events WHERE Image ILIKE '%psexesvc%' GROUP BY 1"
    """
    from irkit.errors import QueryError
    from irkit.store.dataset import check_select, open_store

    check_table_output(fmt, output, f'irkit sql {target} "…"')
    if fmt is Format.table and limit is None:
        limit = TABLE_LIMIT
    with open_store(target) as store:
        check_select(store.db, query)
        import duckdb

        try:
            relation = store.db.execute(query)
            columns = [d[0] for d in relation.description or ()]
            rows = relation.fetchmany(limit) if limit is not None else relation.fetchall()
            more = bool(limit is not None and relation.fetchmany(1))
        except duckdb.Error as exc:
            raise QueryError(f"the query failed: {str(exc).splitlines()[0]}") from exc
    if fmt is Format.table:
        from rich.console import Console

        table = fit_table([Column(c, min_width=6, lines=2) for c in columns], rows)
        Console(highlight=False).print(table)
    else:
        with text_output(output) as handle:
            (_write_csv if fmt is Format.csv else _write_jsonl)(columns, rows, handle)
    note = f"{len(rows):,} rows"
    if more:
        note += f" (the first {limit:,}: --limit)"
    stderr_console().print(safe_text(note))
