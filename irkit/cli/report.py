"""`irkit report CASE`: the case as one self-contained HTML page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from irkit.cli.common import (
    Debug,
    JsonOut,
    Quiet,
    errors_handled,
    human_bytes,
    is_stdout,
    print_json,
    safe_text,
    stderr_console,
)
from irkit.errors import UsageError

#: The report's name in a case folder (``irkit triage`` writes it there too).
REPORT_NAME = "report.html"


@errors_handled
def report(
    case: Annotated[Path, typer.Argument(help="Case directory.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the page here ('-': stdout). Default: CASE/report.html."
        ),
    ] = None,
    max_findings: Annotated[
        int,
        typer.Option(
            "--max-findings", min=1, help="Show at most this many findings, most severe first."
        ),
    ] = 2_000,
    max_events: Annotated[
        int,
        typer.Option("--max-events", min=1, help="Show at most this many events per finding."),
    ] = 20,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Write the case as one HTML page that opens offline in any browser: the case at a
    glance, a timeline chart, ATT&CK, findings with their events, logons and rare
    entities per host. No script and no network request; the same case gives the same
    bytes.

    Examples:

      irkit report ./case -o report.html

      irkit report ./irkit-triage --max-findings 500
    """
    from irkit.report import ReportLimits, write_report

    if json_out and output is not None and is_stdout(output):
        raise UsageError("--json and -o - both write to stdout", hint="give -o FILE with --json")
    limits = ReportLimits(findings=max_findings, events_per_finding=max_events)
    if output is not None and is_stdout(output):
        written = write_report(case, sys.stdout.buffer, limits)
    else:
        import datetime as dt
        import uuid

        from irkit.cli.common import write_run_manifest

        started = dt.datetime.now(dt.UTC)
        written = write_report(case, output or case / REPORT_NAME, limits)
        # CASE/runs/RUN-ID.json: the page written, with its sha256 (docs/custody.md)
        page = [Path(written.path)]
        run_id = uuid.uuid4().hex
        write_run_manifest(case, run_id, "report", outputs=page, started=started, store_runs={})
    if json_out:
        print_json(written.as_dict())
    elif not quiet:
        shown = (
            f"{written.findings:,} findings"
            if written.findings_shown == written.findings
            else f"{written.findings_shown:,} of {written.findings:,} findings"
        )
        stderr_console().print(
            safe_text(
                f"report: {written.path} ({human_bytes(written.bytes)}, {written.events:,} "
                f"events, {shown}, {written.hosts:,} hosts) in {written.seconds:.1f} s"
            )
        )
