"""`irkit crosscheck EVTX...`: read each EVTX with both engines and compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from irkit.cli.common import (
    Debug,
    Quiet,
    Workers,
    errors_handled,
    print_json,
    safe_text,
    show_progress,
    stderr_console,
)
from irkit.errors import ExitCode

SHOW_IDS = 10


def run_crosscheck(paths: list[Path], workers: int, *, quiet: bool) -> dict[str, Any]:
    """Compare the engines on every EVTX under ``paths``; render unless quiet; return data."""
    from irkit.ingest.crosscheck import crosscheck_files
    from irkit.ingest.discovery import discover

    candidates, _, _ = discover(paths)
    files = [c.path for c in candidates if c.kind == "evtx"]
    console = stderr_console()
    if show_progress(quiet):
        with console.status(f"cross-checking {len(files)} EVTX files (python-evtx is slow)…"):
            results = crosscheck_files(files, workers=workers or 2)
    else:
        results = crosscheck_files(files, workers=workers or 2)
    report: dict[str, Any] = {"files": len(results), "agree": 0, "disagree": [], "errors": []}
    for result in results:
        if result.error:
            report["errors"].append({"path": str(result.path), "error": result.error})
        if result.agrees:
            report["agree"] += 1
            continue
        report["disagree"].append(
            {
                "path": str(result.path),
                "evtx_records": result.fast_records,
                "python_evtx_records": result.python_records,
                "only_evtx": len(result.only_fast),
                "only_python_evtx": len(result.only_python),
                "differing": len(result.differing),
                "only_evtx_ids": list(result.only_fast[:SHOW_IDS]),
                "only_python_evtx_ids": list(result.only_python[:SHOW_IDS]),
                "differences": [f"{rid}: {what}" for rid, what in result.differing[:SHOW_IDS]],
            }
        )
    if not quiet:
        render_report(report)
    return report


def render_report(report: dict[str, Any]) -> None:
    """Per-file disagreements as a table on stderr."""
    from rich.table import Table

    console = stderr_console()
    table = Table(title=f"engines disagree on {len(report['disagree'])} of {report['files']} files")
    for name in ("file", "evtx", "python-evtx", "only evtx", "only python-evtx", "differing"):
        table.add_column(name, justify="left" if name == "file" else "right")
    for row in report["disagree"]:
        table.add_row(
            safe_text(row["path"]),
            *(
                safe_text(f"{row[k]:,}")
                for k in (
                    "evtx_records",
                    "python_evtx_records",
                    "only_evtx",
                    "only_python_evtx",
                    "differing",
                )
            ),
        )
    console.print(table)
    for row in report["errors"]:
        console.print(safe_text(f"  {row['path']}: {row['error']}", "yellow"))


@errors_handled
def crosscheck(
    evidence: Annotated[list[Path], typer.Argument(help="EVTX files or folders.")],
    workers: Workers = 0,
    quiet: Quiet = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
    debug: Debug = False,
) -> None:
    """Read each EVTX with evtx and python-evtx; list files where they disagree.

    Examples:

      irkit crosscheck /mnt/evidence/winevt/Logs

      irkit crosscheck Security.evtx System.evtx --json
    """
    report = run_crosscheck(evidence, workers, quiet=quiet or json_out)
    if json_out:
        print_json(report)
    raise typer.Exit(int(ExitCode.PARTIAL if report["errors"] else ExitCode.OK))
