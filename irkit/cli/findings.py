"""`irkit findings CASE`: the case's findings, most severe first, grouped by event."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from irkit.cli.common import Debug, errors_handled, is_stdout, safe_text, text_output
from irkit.errors import UsageError
from irkit.model import Severity

if TYPE_CHECKING:
    from irkit.detect.scan import FindingGroup

Level = Annotated[
    Severity,
    typer.Option("--min-level", help="Keep findings at this level or above."),
]


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _titles(group: FindingGroup) -> str:
    """The members' titles; a member's level or count when it is not the group's."""
    if len(group.members) == 1:
        return group.lead["title"]
    titles = []
    for member in group.members:
        extra = [member["severity"]] if member["severity"] != group.severity else []
        if int(member["count"] or 0) != group.count:
            extra.append(plural(int(member["count"] or 0), "event"))
        titles.append(member["title"] + (f" ({', '.join(extra)})" if extra else ""))
    return f"{len(group.members)} rules: " + "; ".join(titles)


def groups_table(groups: Sequence[FindingGroup], width: int | None, title: str | None) -> Any:
    from irkit.cli.common import Column, fit_table

    columns = [  # a group's title names every rule: it may take more lines
        Column("first seen (UTC)", priority=1, min_width=19, max_width=19),
        Column("level", priority=0, min_width=6, max_width=13),
        Column("detector", priority=5, min_width=10, max_width=20, lines=3),
        Column("title", priority=0, min_width=20, max_width=70, lines=24),
        Column("host", priority=2, min_width=6, max_width=24),
        Column("count", priority=3, min_width=5, max_width=7, justify="right"),
        Column("excerpt", priority=4, min_width=12, max_width=80, lines=2),
        Column("uid", priority=6, min_width=8, max_width=8),
    ]
    rows = [
        (
            group.first_seen[:19].replace("T", " "),
            group.severity,
            ", ".join(group.detectors),
            _titles(group),
            group.lead["host"],
            f"{group.count:,}",
            group.lead["excerpt"][:300],
            group.lead["uid"][:8],
        )
        for group in groups
    ]
    return fit_table(columns, rows, width=width, title=title)


class FindingsFormat(enum.StrEnum):
    """Output formats of `irkit findings`."""

    table = "table"
    csv = "csv"
    jsonl = "jsonl"


@errors_handled
def findings(
    case: Annotated[Path, typer.Argument(help="Case directory.")],
    fmt: Annotated[
        FindingsFormat, typer.Option("--format", "-f", help="Output format.")
    ] = FindingsFormat.table,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file ('-': standard output)."),
    ] = None,
    min_level: Level = Severity.INFORMATIONAL,
    detector: Annotated[
        list[str] | None,
        typer.Option("--detector", help="Only this detector (repeatable): sigma, yara, …"),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="At most this many findings (table: rows), most severe first."
        ),
    ] = None,
    group: Annotated[
        bool,
        typer.Option(
            "--group/--no-group",
            help="Table: one row per event, naming every rule on it (--no-group: one row "
            "per finding). CSV and JSON Lines list every finding.",
        ),
    ] = True,
    debug: Debug = False,
) -> None:
    """List the case's findings, most severe first (table, CSV or JSON Lines).

    Examples:

      irkit findings ./case --min-level high --limit 20

      irkit findings ./case --format csv -o findings.csv
    """
    from irkit.detect.scan import iter_findings
    from irkit.store.dataset import open_store

    if fmt is FindingsFormat.table and not is_stdout(output):
        raise UsageError(
            "--output writes CSV or JSON Lines, not the table", hint="add --format csv or jsonl"
        )
    with open_store(case) as store:
        if fmt is FindingsFormat.table:
            _table(iter_findings(store, min_level.value, detector or ()), limit, group)
            return
        rows = iter_findings(store, min_level.value, detector or (), limit)
        with text_output(output) as handle:
            write_findings(fmt, rows, handle)


def write_findings(fmt: FindingsFormat, rows: Any, out: TextIO) -> None:
    """Findings as CSV (cells neutralised) or JSON Lines."""
    from irkit.detect.scan import FINDING_EXPORT

    if fmt is FindingsFormat.jsonl:
        import orjson

        from irkit.export.base import json_text

        for row in rows:
            obj = {k: v for k, v in row.items() if v}
            if "details" in obj:
                obj["details"] = orjson.loads(obj["details"])
            if "attack" in obj:
                obj["attack"] = obj["attack"].split(",")
            if "count" in obj:
                obj["count"] = int(obj["count"])
            out.write(json_text(obj) + "\n")
        return
    import csv

    from irkit.export.csv import neutralise

    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FINDING_EXPORT)
    for row in rows:
        writer.writerow([neutralise(row[name]) for name in FINDING_EXPORT])


def _table(rows: Iterator[Mapping[str, str]], limit: int | None, group: bool) -> None:
    """The findings (or their groups) as a table fitted to the terminal, on stdout."""
    from rich.console import Console

    from irkit.detect.scan import FindingGroup, group_findings

    every = list(rows)
    groups = group_findings(every) if group else [FindingGroup([row]) for row in every]
    shown = groups[:limit] if limit is not None else groups
    console = Console(highlight=False)
    console.print(groups_table(shown, None, None))
    what = plural(len(every), "finding")
    if group and len(groups) < len(every):
        what += f" on {plural(len(groups), 'event')}"
    if len(shown) < len(groups):
        what = f"{len(shown):,} rows shown of {what} (--limit)"
    if every:
        what += "; irkit timeline CASE --finding UID lists the events of one"
    console.print(safe_text(what))
