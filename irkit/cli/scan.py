"""`irkit scan CASE` and `irkit findings CASE`: detections in, findings out."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from irkit.cli.common import (
    Debug,
    JsonOut,
    Quiet,
    errors_handled,
    print_json,
    safe_text,
    summary_table,
)
from irkit.errors import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from irkit.scan import ScanSummary

MAX_SHOWN = 25
Level = Annotated[
    str,
    typer.Option(
        "--min-level", help="Keep findings at this level or above (informational…critical)."
    ),
]

SigmaRules = Annotated[
    list[Path] | None,
    typer.Option("--sigma", help="Sigma rule file or folder (repeatable)."),
]
YaraRules = Annotated[
    list[Path] | None,
    typer.Option("--yara", help="YARA rule file or folder (repeatable)."),
]
FailOn = Annotated[
    str | None,
    typer.Option("--fail-on", help="Exit 4 when a finding at this level or above is found."),
]


@errors_handled
def scan(
    case: Annotated[Path, typer.Argument(help="Case directory (from irkit parse or triage).")],
    yara: YaraRules = None,
    yara_target: Annotated[
        list[Path] | None,
        typer.Option("--yara-target", help="Also scan these files or folders with YARA."),
    ] = None,
    sigma: SigmaRules = None,
    sigma_config: Annotated[
        Path | None,
        typer.Option("--sigma-config", help="YAML with placeholder values for Sigma rules."),
    ] = None,
    no_builtin: Annotated[
        bool, typer.Option("--no-builtin", help="Skip irkit's heuristics and analytics.")
    ] = False,
    min_level: Level = "informational",
    fail_on: FailOn = None,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Run built-in heuristics, analytics, Sigma and YARA over a case; store findings."""
    from irkit.cli.common import stderr_console
    from irkit.scan import ScanOptions, check_level
    from irkit.scan import scan as run_scan

    if fail_on is not None:
        check_level(fail_on, "--fail-on")
    summary = run_scan(
        case,
        ScanOptions(
            yara=yara or (),
            yara_targets=yara_target or (),
            sigma=sigma or (),
            sigma_config=sigma_config,
            builtin=not no_builtin,
            min_level=min_level,
        ),
        command=sys.argv,
    )
    data = summary.as_dict()
    if json_out:
        print_json(data)
    elif not quiet:
        render_scan(stderr_console(), summary, data)
    if fail_on is not None and summary.at_or_above(fail_on):
        raise typer.Exit(int(ExitCode.FINDINGS))
    raise typer.Exit(int(ExitCode.PARTIAL if summary.warnings else ExitCode.OK))


def render_scan(console: Console, summary: ScanSummary, data: dict[str, Any]) -> None:
    """Detectors, findings by level, the most severe findings."""
    from rich.table import Table

    table = summary_table("irkit scan")
    table.add_row("case", safe_text(summary.case))
    table.add_row("events", f"{summary.events:,}")
    for name, info in data["detectors"].items():
        table.add_row(
            name,
            safe_text(
                f"{info['findings']:,} findings, {info['seconds']:.1f} s"
                + _report_line(info["report"])
            ),
        )
    levels = ", ".join(f"{n:,} {level}" for level, n in data["by_level"].items()) or "none"
    table.add_row("findings", safe_text(f"{levels} ({summary.findings_added:,} new)"))
    table.add_row("warnings", f"{len(summary.warnings):,}")
    table.add_row("time", f"{summary.seconds:.1f} s")
    console.print(table)
    ranked = sorted(summary.findings, key=lambda f: (-_rank(f.severity), f.ts, f.rule, f.uid))
    if ranked:
        shown = Table(title="most severe findings", title_justify="left")
        for column in ("level", "title", "host", "count", "first seen"):
            shown.add_column(column, overflow="fold")
        for finding in ranked[:MAX_SHOWN]:
            shown.add_row(
                safe_text(finding.severity),
                safe_text(finding.title),
                safe_text(finding.host),
                str(finding.count),
                safe_text(finding.ts[:19].replace("T", " ")),
            )
        console.print(shown)
        if len(ranked) > MAX_SHOWN:
            console.print(f"… and {len(ranked) - MAX_SHOWN:,} more: irkit findings CASE")


def _rank(level: str) -> int:
    from irkit.model import severity_rank

    return severity_rank(level)


def _report_line(report: dict[str, Any]) -> str:
    parts = []
    for key in ("rules_loaded", "rules_run", "unsupported", "files_scanned"):
        value = report.get(key)
        if isinstance(value, int):
            parts.append(f"{key.replace('_', ' ')} {value:,}")
        elif isinstance(value, dict):
            parts.append(f"{key} {sum(v for v in value.values() if isinstance(v, int)):,}")
    return ("; " + ", ".join(parts)) if parts else ""


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
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
    min_level: Level = "informational",
    detector: Annotated[
        list[str] | None,
        typer.Option("--detector", help="Only this detector (repeatable): sigma, yara, …"),
    ] = None,
    debug: Debug = False,
) -> None:
    """List the case's findings, most severe first (table, CSV or JSON Lines)."""
    from irkit.case import Case
    from irkit.scan import iter_findings

    with Case(case, read_only=True) as store:
        rows = iter_findings(store, min_level, detector or ())
        if fmt is FindingsFormat.table:
            _table(rows)
            return
        if output is None:
            import io

            stream = io.TextIOWrapper(
                sys.stdout.buffer, encoding="utf-8", newline="", errors="backslashreplace"
            )
            try:
                write_findings(fmt, rows, stream)
            finally:
                stream.flush()
                stream.detach()
            return
        tmp = output.with_name(f".{output.name}.irkit-tmp")
        with tmp.open("w", encoding="utf-8", newline="", errors="backslashreplace") as handle:
            write_findings(fmt, rows, handle)
        tmp.replace(output)


def write_findings(fmt: FindingsFormat, rows: Any, out: TextIO) -> None:
    """Findings as CSV (cells neutralised) or JSON Lines."""
    from irkit.scan import FINDING_EXPORT

    if fmt is FindingsFormat.jsonl:
        import orjson

        for row in rows:
            obj = {k: v for k, v in row.items() if v}
            if "details" in obj:
                obj["details"] = orjson.loads(obj["details"])
            if "attack" in obj:
                obj["attack"] = obj["attack"].split(",")
            if "count" in obj:
                obj["count"] = int(obj["count"])
            out.write(orjson.dumps(obj).decode() + "\n")
        return
    import csv

    from irkit.export.csv import neutralise

    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FINDING_EXPORT)
    for row in rows:
        writer.writerow([neutralise(row[name]) for name in FINDING_EXPORT])


def _table(rows: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(expand=True)
    for column in ("first seen (UTC)", "level", "detector", "title", "host", "count", "excerpt"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            safe_text(row["first_seen"][:19].replace("T", " ")),
            safe_text(row["severity"]),
            safe_text(row["detector"]),
            safe_text(row["title"]),
            safe_text(row["host"]),
            safe_text(row["count"]),
            safe_text(row["excerpt"][:200]),
        )
    Console(highlight=False).print(table)
