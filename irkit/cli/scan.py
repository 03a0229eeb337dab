"""`irkit scan CASE` and `irkit findings CASE`: detections in, findings out."""

from __future__ import annotations

import contextlib
import enum
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from irkit.cli.common import (
    Debug,
    JsonOut,
    Quiet,
    errors_handled,
    human_bytes,
    print_json,
    safe_text,
    summary_table,
)
from irkit.cli.findings import Level, groups_table, plural
from irkit.errors import ExitCode
from irkit.model import Severity

if TYPE_CHECKING:
    from rich.console import Console

    from irkit.detect import ScanProgress
    from irkit.detect.scan import ScanSummary

MAX_SHOWN = 25
#: Warnings listed by name in the scan summary (all of them are in --json).
MAX_WARNINGS_SHOWN = 20
#: Warning kinds that say a rule file or rule did not load or run.
RULE_PROBLEMS: Final = {
    "rule-file-error": "not loaded",
    "sigma-unsupported": "not run, unsupported",
    "sigma-query-failed": "not run, query failed",
}

SigmaRules = Annotated[
    list[Path] | None,
    typer.Option("--sigma", help="Sigma rule file or folder (repeatable)."),
]
YaraRules = Annotated[
    list[Path] | None,
    typer.Option("--yara", help="YARA rule file or folder (repeatable)."),
]
FailOn = Annotated[
    Severity | None,
    typer.Option("--fail-on", help="Exit 4 when a finding at this level or above is found."),
]


@contextlib.contextmanager
def scan_progress(quiet: bool) -> Iterator[ScanProgress]:
    """A live display of the scan's phases on stderr (on a terminal, unless quiet)."""
    from irkit.cli.common import show_progress, stderr_console
    from irkit.detect import NO_PROGRESS

    if not show_progress(quiet):
        yield NO_PROGRESS
        return
    live = _rich_progress(stderr_console())
    try:
        yield live
    finally:
        live.stop()


def _rich_progress(console: Console) -> Any:
    """A `ScanProgress` drawn by rich: the phase, a bar, done/total, elapsed, time left."""
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        Task,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from irkit.detect import ScanProgress

    class Amount(ProgressColumn):
        """``12/58 rules``, ``1.2 MB/3.4 MB``, ``5,000 events``."""

        def render(self, task: Task) -> Text:
            unit = task.fields.get("unit", "")
            if unit == "bytes":
                done = human_bytes(task.completed)
                total = f"/{human_bytes(task.total)}" if task.total is not None else " read"
                return Text(done + total)
            total = f"/{task.total:,.0f}" if task.total is not None else ""
            return Text(f"{task.completed:,.0f}{total} {unit}".rstrip())

    class Live(ScanProgress):
        def __init__(self) -> None:
            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                Amount(),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.task: TaskID | None = None
            self.bar.start()

        def phase(self, label: str, total: float | None = None, unit: str = "") -> None:
            self.done()
            self.task = self.bar.add_task(label, total=total, unit=unit)

        def advance(self, amount: float = 1) -> None:
            if self.task is not None:
                self.bar.update(self.task, advance=amount)

        def done(self) -> None:
            if self.task is not None:
                self.bar.remove_task(self.task)
                self.task = None

        def stop(self) -> None:
            self.done()
            self.bar.stop()

    return Live()


class Engine(enum.StrEnum):
    """``--engine``."""

    DUCKDB = "duckdb"
    SPARK = "spark"


@errors_handled
def scan(
    case: Annotated[
        Path,
        typer.Argument(help="Case directory (from irkit parse or triage), or a dataset."),
    ],
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
    min_level: Level = Severity.INFORMATIONAL,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="What runs the rules over a dataset: duckdb on this machine, or spark "
            "(PySpark, local[*] unless --master).",
        ),
    ] = Engine.DUCKDB,
    master: Annotated[
        str | None,
        typer.Option(
            "--master",
            help="Spark master URL for --engine spark (spark://HOST:7077, yarn, local[4]…).",
        ),
    ] = None,
    spark_uri: Annotated[
        str | None,
        typer.Option(
            "--spark-uri",
            help="The dataset as Spark's executors reach it (s3a://…, hdfs://…, dbfs:/…); "
            "default: the path given.",
        ),
    ] = None,
    fail_on: FailOn = None,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Run built-in heuristics, analytics, Sigma and YARA over a case; store findings.

    YARA reads the files the case knows (parsed logs, files hashed with irkit hash
    --case), the text of its events, and any --yara-target paths.

    Examples:

      irkit scan ./case --sigma sigma/rules/windows --fail-on high

      irkit scan ./case --yara signature-base/yara --yara-target /mnt/c/Users

      irkit scan ./fleet-dataset --sigma sigma/rules --engine spark
    """
    from irkit.cli.common import stderr_console
    from irkit.detect.scan import ScanOptions
    from irkit.detect.scan import scan as run_scan

    with scan_progress(quiet) as progress:
        summary = run_scan(
            case,
            ScanOptions(
                yara=yara or (),
                yara_targets=yara_target or (),
                sigma=sigma or (),
                sigma_config=sigma_config,
                builtin=not no_builtin,
                min_level=min_level.value,
                engine=engine.value,
                master=master,
                spark_uri=spark_uri,
                progress=progress,
            ),
            command=sys.argv,
        )
    from irkit.store.custody import is_case

    if is_case(case):  # CASE/runs/RUN-ID.json: the rule files used (custody); not a dataset
        from irkit.cli.common import write_run_manifest
        from irkit.detect.rulesets import scan_rule_sets

        rules = scan_rule_sets(
            summary, sigma=sigma or (), yara=yara or (), sigma_config=sigma_config
        )
        write_run_manifest(case, summary.run_id, "scan", rule_sets=rules)
    data = summary.as_dict()
    if json_out:
        print_json(data)
    elif not quiet:
        render_scan(stderr_console(), summary, data)
    if fail_on is not None and summary.at_or_above(fail_on.value):
        raise typer.Exit(int(ExitCode.FINDINGS))
    raise typer.Exit(int(ExitCode.PARTIAL if summary.warnings else ExitCode.OK))


def render_scan(console: Console, summary: ScanSummary, data: dict[str, Any]) -> None:
    """Detectors (rules loaded, run, failed; files and bytes read), findings by level,
    rule files that failed and why, other warnings, the most severe findings."""
    from irkit.detect.scan import group_findings, ranked

    groups = group_findings(ranked(summary.findings))
    table = summary_table("irkit scan")
    table.add_row("case", safe_text(summary.case))
    table.add_row("events", f"{summary.events:,}")
    for name, info in data["detectors"].items():
        line = f"{plural(info['findings'], 'finding')}, {info['seconds']:.1f} s"
        detail = _report_line(name, info["report"])
        table.add_row(name, safe_text(line + (f"; {detail}" if detail else "")))
    levels = ", ".join(f"{n:,} {level}" for level, n in data["by_level"].items()) or "none"
    on = f" on {plural(len(groups), 'event')}" if len(groups) < len(summary.findings) else ""
    table.add_row("findings", safe_text(f"{levels} ({summary.findings_added:,} new){on}"))
    table.add_row("warnings", f"{len(summary.warnings):,}")
    table.add_row("time", f"{summary.seconds:.1f} s")
    console.print(table)
    note = _yara_note(data["detectors"])
    if note:
        console.print(safe_text(note, style="yellow"))
    _render_warnings(console, summary)
    if groups:
        console.print(groups_table(groups[:MAX_SHOWN], console.width, "most severe findings"))
        if len(groups) > MAX_SHOWN:
            import shlex  # the real case, ready to paste into a shell

            more = f"… and {len(groups) - MAX_SHOWN:,} more: irkit findings "
            console.print(safe_text(more + shlex.quote(summary.case)))


def _report_line(name: str, report: dict[str, Any]) -> str:
    """What a detector loaded, ran, skipped and read, in one line."""
    if name == "sigma":
        return _sigma_line(report)
    if name.startswith("yara"):
        return _yara_line(name, report)
    if "heuristics" in report:  # heuristic
        parts = [f"{plural(report['heuristics'], 'rule')} run"]
        if report.get("below_min_level"):
            parts.append(f"{report['below_min_level']:,} below --min-level")
        if report.get("failed"):
            parts.append(f"{len(report['failed']):,} failed")
        parts += _not_on_engine(report)
        return ", ".join(parts)
    if "rules" in report and isinstance(report["rules"], int):  # analytics
        return ", ".join([f"{plural(report['rules'], 'rule')} run", *_not_on_engine(report)])
    return ""


def _not_on_engine(report: dict[str, Any]) -> list[str]:
    """The rules another engine (Spark) could not run, named (--json gives the reasons)."""
    skipped = report.get("not_run_on_engine") or {}
    if not skipped:
        return []
    names = ", ".join(sorted(skipped)[:3]) + (", …" if len(skipped) > 3 else "")
    return [f"{len(skipped):,} not run on this engine ({names})"]


def _sigma_line(report: dict[str, Any]) -> str:
    parts = [
        f"{plural(report['rules_found'], 'rule')} in {plural(report['files'], 'file')}: "
        f"{report['loaded']:,} loaded, {report['run']:,} run"
    ]
    not_run = {k: v for k, v in report.get("not_run", {}).items() if v}
    if not_run:
        why = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in not_run.items())
        parts.append(f"{sum(not_run.values()):,} not run ({why})")
    if report.get("skipped_placeholders"):
        parts.append(f"{len(report['skipped_placeholders']):,} waiting for --sigma-config")
    if report.get("unsupported_count"):
        parts.append(f"{report['unsupported_count']:,} unsupported")
    if report.get("invalid"):
        parts.append(f"{len(report['invalid']):,} failed")
    return ", ".join(parts)


def _yara_line(name: str, report: dict[str, Any]) -> str:
    rules = report.get("rules", {})
    parts = []
    if name != "yara-events":
        bad = len(rules.get("bad_files", []))
        loaded = plural(rules.get("rules", 0), "rule")
        files = plural(rules.get("rule_files", 0) + bad, "file")
        failed = f" ({bad:,} failed)" if bad else ""
        parts.append(f"{loaded} from {files}{failed}")
    if "texts_scanned" in report:
        parts.append(
            f"{report['texts_scanned']:,} distinct texts of "
            f"{plural(report['events_with_text'], 'event')} scanned"
        )
    if "files_scanned" in report and name != "yara-events":
        read = plural(report["files_scanned"], "file") + " scanned"
        read += f" ({human_bytes(report['bytes_scanned'])})"
        known = report.get("case_files")
        if known is not None:
            total = known["parsed"] + known["hashed"]
            read += f" of the {total:,} the case knows"
            read += f" ({known['parsed']:,} parsed, {known['hashed']:,} hashed)"
        parts.append(read)
        skipped = {k: v for k, v in report.get("skipped", {}).items() if v}
        if skipped:
            parts.append("not scanned: " + ", ".join(f"{v:,} {k}" for k, v in skipped.items()))
    return "; ".join(parts)


def _yara_note(detectors: Mapping[str, Any]) -> str:
    """When YARA ran but read no file, say so and how to give it some."""
    parts = [d for n, d in detectors.items() if n in ("yara-evidence", "yara-targets")]
    if not parts or any(d["report"].get("files_scanned") for d in parts):
        return ""
    report = detectors.get("yara-evidence", {}).get("report", {})
    total = sum(report.get("case_files", {}).values())
    skipped = report.get("skipped", {})
    why = "the case knows no file (irkit parse, or irkit hash --case, records them)"
    if total:
        missing, changed = skipped.get("evidence-missing", 0), skipped.get("evidence-changed", 0)
        gone = [f"{missing:,} not on disk here"] if missing else []
        gone += [f"{changed:,} changed since"] if changed else []
        why = f"of the {total:,} files the case knows, " + (", ".join(gone) or "none was read")
    return f"YARA scanned 0 files: {why}; name files or folders with --yara-target."


def _render_warnings(console: Console, summary: ScanSummary) -> None:
    """Rule files that did not load or run, and why; then the other warnings."""
    from rich.text import Text

    rules = [w for w in summary.warnings if w.kind in RULE_PROBLEMS]
    other = [w for w in summary.warnings if w.kind not in RULE_PROBLEMS]
    for title, items in (("rule problems", rules), ("warnings", other)):
        if not items:
            continue
        console.print(Text(f"{title} ({len(items):,}):", style="bold yellow"))
        for warning in items[:MAX_WARNINGS_SHOWN]:
            kind = RULE_PROBLEMS.get(warning.kind, warning.kind)
            console.print(safe_text(f"  {warning.path}: {kind}: {warning.message}"))
        if len(items) > MAX_WARNINGS_SHOWN:
            console.print(f"  … and {len(items) - MAX_WARNINGS_SHOWN:,} more (--json lists all)")
