"""`irkit triage PATH`: the main job, parse everything and write the timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irkit.cli.common import Debug, JsonOut, Quiet, errors_handled, print_json, safe_text
from irkit.cli.parse import Engine, Recover, Workers, run_parse

TIMELINE_NAME = "timeline.csv"


@errors_handled
def triage(
    path: Annotated[list[Path], typer.Argument(help="Evidence files or folders (read-only).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder: the case and timeline.csv.")
    ] = Path("irkit-triage"),
    evtx_engine: Engine = "evtx",
    recover: Recover = False,
    workers: Workers = 0,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Parse all recognised evidence under PATH, write OUT/timeline.csv, print a summary."""
    from irkit.case import Case
    from irkit.cli.common import stderr_console
    from irkit.cli.summary import render_summary
    from irkit.cli.timeline import Format, write_file
    from irkit.ingest import ParseSummary
    from irkit.timeline import DEFAULT_FIELD_COLUMNS, Selection, TimelineFilter

    summary = run_parse(path, out, evtx_engine, workers, quiet, recover)
    assert isinstance(summary, ParseSummary)
    timeline_path = out / TIMELINE_NAME
    with Case(out, read_only=True) as store:
        rows = write_file(
            Selection.of(store, TimelineFilter()),
            Format.csv,
            timeline_path,
            excel=False,
            field_columns=DEFAULT_FIELD_COLUMNS,
        )
    data = summary.as_dict()
    data["timeline"] = {"path": str(timeline_path), "rows": rows}
    if json_out:
        print_json(data)
    elif not quiet:
        console = stderr_console()
        render_summary(console, summary)
        console.print(safe_text(f"timeline: {timeline_path} ({rows:,} events)"))
    raise typer.Exit(int(summary.exit_code))
