"""`irkit export CASE... --format parquet --out DATASET`: cases into one Parquet dataset."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Annotated

import typer

from irkit.cli.common import Debug, errors_handled, print_json, safe_text


class Format(enum.StrEnum):
    """Dataset formats."""

    parquet = "parquet"


@errors_handled
def export(
    cases: Annotated[list[Path], typer.Argument(help="Case directories (one or more).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The dataset folder (new, empty, or irkit's).")
    ],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Dataset format.")] = Format.parquet,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what each case added as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing.")] = False,
    debug: Debug = False,
) -> None:
    """Add cases' events and findings to a Hive-partitioned Parquet dataset.

    Events go to events/source=…/host_key=…/date=…/, findings to findings/host_key=…/.
    Exporting a case again replaces its own files (the same bytes if it has not changed);
    other cases' files stay. Spark, Trino, DuckDB and pandas read the folder as it is.

    Examples:

    irkit export case-ws01 case-ws02 --format parquet --out fleet

    irkit export case-ws03 --out fleet   (adds ws03; exporting ws01 again replaces its files)
    """
    from rich.console import Console
    from rich.table import Table

    from irkit.export.dataset import export_dataset

    done = export_dataset(cases, out)
    if quiet:
        return
    if as_json:
        print_json([dataclasses.asdict(d) for d in done])
        return
    table = Table(title=safe_text(f"dataset {out}"), title_justify="left")
    for name in ("case", "id", "events", "findings", "files", "replaced"):
        table.add_column(name, justify="left" if name in ("case", "id") else "right")
    for d in done:
        table.add_row(
            safe_text(d.case), d.case_id, f"{d.events:,}", f"{d.findings:,}",
            f"{d.files:,}", f"{d.replaced:,}",
        )  # fmt: skip
    Console(highlight=False).print(table)
