"""`irkit triage PATH`: the main job, parse everything and write the timeline."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from irkit.cli.common import (
    Debug,
    JsonOut,
    Quiet,
    Workers,
    errors_handled,
    print_json,
    safe_text,
    text_output,
)
from irkit.cli.parse import (
    Engine,
    PlasoParsers,
    Recover,
    TimeZone,
    Vss,
    Year,
    open_evidence,
    plaso_options,
    run_parse,
)
from irkit.cli.scan import FailOn, SigmaRules, YaraRules
from irkit.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from irkit.detect import ScanProgress
    from irkit.detect.scan import ScanSummary
    from irkit.files.options import HashSummary
    from irkit.ingest.summary import ParseSummary
    from irkit.report import ReportSummary

DEFAULT_CASE = Path("irkit-triage")
TIMELINE_NAME = "timeline.csv"
FINDINGS_NAME = "findings.csv"
#: The files triage hashed itself, as `sha256sum -c` reads them (logs are in the case).
HASHES_NAME = "hashes.sha256"


@errors_handled
def triage(
    path: Annotated[list[Path], typer.Argument(help="Evidence files or folders (read-only).")],
    case: Annotated[
        Path | None,
        typer.Option(
            "--case",
            "-c",
            help="Case folder: the case store, timeline.csv, findings.csv, hashes.sha256. "
            "Default: ./irkit-triage.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", hidden=True, help="Old name of --case (still accepted)."),
    ] = None,
    evtx_engine: Engine = "evtx",
    recover: Recover = False,
    vss: Vss = False,
    year: Year = None,
    timezone: TimeZone = "",
    plaso_parsers: PlasoParsers = "",
    workers: Workers = 0,
    ioc: Annotated[
        list[Path] | None,
        typer.Option(
            "--ioc",
            help="Hash IOC list (repeatable; LOKI hash;description, sha256sum, CSV). "
            "A match exits 4.",
        ),
    ] = None,
    sigma: SigmaRules = None,
    yara: YaraRules = None,
    no_scan: Annotated[
        bool, typer.Option("--no-scan", help="Parse and hash only: no heuristics, no findings.")
    ] = False,
    fail_on: FailOn = None,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Parse all recognised evidence under PATH, hash the other files, scan for findings,
    write CASE/timeline.csv and CASE/findings.csv, print a summary.

    Exit 4 when a file matched an --ioc list, or with --fail-on when a finding is at
    that level or above.

    Examples:

      irkit triage /mnt/evidence/host01 --case host01

      irkit triage host01.zip -c host01 --ioc hash-iocs.txt --sigma sigma/rules/windows
    """
    from irkit.cli.common import say, stderr_console, warnings_line
    from irkit.cli.scan import scan_progress
    from irkit.cli.summary import render_summary
    from irkit.ingest.summary import ParseSummary

    out = _case_dir(case, out)
    given = [str(p) for p in path]  # as typed: the --recover hint repeats them
    path, collections = open_evidence(path, out)
    summary = run_parse(
        path,
        out,
        evtx_engine,
        workers,
        quiet,
        recover,
        allow_empty=True,
        collections=collections,
        vss=vss,
        plaso=plaso_options(year, timezone, plaso_parsers),
    )
    assert isinstance(summary, ParseSummary)
    scanned = None
    if not no_scan and fail_on is not None:
        from irkit.detect.scan import check_level

        check_level(fail_on, "--fail-on")
    timeline_path = out / TIMELINE_NAME
    # One live display (a terminal only, not with -q) for what follows the parse: the
    # hashing, the scan's phases, and the timeline written, with the time left.
    with scan_progress(quiet) as progress:
        hashed = _hash_files(path, out, summary, ioc, progress)
        if not no_scan:
            from irkit.detect.scan import ScanOptions, scan

            options = ScanOptions(sigma=sigma or (), yara=yara or (), progress=progress)
            scanned = scan(out, options, command=sys.argv)
            _write_findings(out / FINDINGS_NAME, out)
        rows = _write_timeline(timeline_path, out, progress)
        reported = _write_report(out, progress)
    _triage_manifest(out, summary, hashed, scanned, ioc or [], sigma or [], yara or [])
    data = summary.as_dict()
    data["hash"] = hashed.as_dict()
    data["timeline"] = {"path": str(timeline_path), "rows": rows}
    data["report"] = reported.as_dict()
    if scanned is not None:
        data["scan"] = scanned.as_dict()
        data["scan"]["path"] = str(out / FINDINGS_NAME)
    if json_out:
        print_json(data)
    elif not quiet:
        from irkit.cli.hashing import render_hash_summary

        console = stderr_console()
        render_summary(console, summary, given)
        render_hash_summary(console, hashed, data["hash"])
        if scanned is not None:
            from irkit.cli.scan import render_scan

            render_scan(console, scanned, data["scan"])
            console.print(safe_text(f"findings: {out / FINDINGS_NAME}"))
        console.print(safe_text(f"timeline: {timeline_path} ({rows:,} events)"))
        console.print(safe_text(f"report: {reported.path}"))
    scan_warnings = scanned.warnings if scanned is not None else []
    if quiet and (summary.warnings or hashed.warnings or scan_warnings):
        # A partial run still says, in one line, the first file and warning that made it
        # so: the parse's first, else the hashing's, else the scan's.
        line = warnings_line(summary.warnings or hashed.warnings or scan_warnings)
        say("irkit: partial: ", "yellow", line)
    if hashed.findings:  # an IOC match: exit 4, as irkit hash --ioc does
        raise typer.Exit(int(ExitCode.FINDINGS))
    if scanned is not None and fail_on is not None and scanned.at_or_above(fail_on):
        raise typer.Exit(int(ExitCode.FINDINGS))
    partial = summary.exit_code != ExitCode.OK or hashed.partial or bool(scan_warnings)
    raise typer.Exit(int(ExitCode.PARTIAL if partial else ExitCode.OK))


def _triage_manifest(
    out: Path,
    summary: ParseSummary,
    hashed: HashSummary,
    scanned: ScanSummary | None,
    ioc: list[Path],
    sigma: list[Path],
    yara: list[Path],
) -> None:
    """CASE/runs/RUN-ID.json (the parse's run id): the evidence, IOC lists and rule
    files used, the files written, with their sha256 (docs/custody.md)."""
    from irkit.cli.common import write_run_manifest
    from irkit.store.custody import ioc_rule_set

    rules = [ioc_rule_set(ioc, hashed.iocs_loaded, hashed.warnings)] if ioc else []
    outputs = [out / TIMELINE_NAME, out / HASHES_NAME]
    runs = {"parse": summary.run_id, "hash": hashed.run_id}
    if scanned is not None:
        from irkit.detect.rulesets import scan_rule_sets

        rules += scan_rule_sets(scanned, sigma=sigma, yara=yara)
        outputs.append(out / FINDINGS_NAME)
        runs["scan"] = scanned.run_id
    report = out / "report.html"  # written by this run: newer than its hashes.sha256
    if report.is_file() and report.stat().st_mtime >= (out / HASHES_NAME).stat().st_mtime:
        outputs.append(report)
    write_run_manifest(
        out,
        summary.run_id,
        "triage",
        files=summary.files,
        digest_lists=[out / HASHES_NAME],
        rule_sets=rules,
        outputs=outputs,
        store_runs=runs,
    )


def _case_dir(case: Path | None, out: Path | None) -> Path:
    """--case, or its old spelling --out; both naming different folders is a mistake."""
    if case is not None and out is not None and case != out:
        raise UsageError(
            f"--case {case} and --out {out} name different folders",
            hint="--out is the old name of --case: give one of them",
        )
    return case or out or DEFAULT_CASE


def _write_findings(target: Path, case: Path) -> None:
    """Every finding of the case as CSV (the same file `irkit findings -f csv` writes)."""
    from irkit.cli.findings import FindingsFormat, write_findings
    from irkit.detect.scan import iter_findings
    from irkit.store.case import Case

    with Case(case, read_only=True) as store, text_output(target) as handle:
        write_findings(FindingsFormat.csv, iter_findings(store), handle)


def _write_report(case: Path, progress: ScanProgress) -> ReportSummary:
    """CASE/report.html: the page `irkit report CASE` writes (docs/report.md)."""
    from irkit.cli.report import REPORT_NAME
    from irkit.report import write_report

    progress.phase(f"writing {REPORT_NAME}")
    written = write_report(case, case / REPORT_NAME)
    progress.done()
    return written


def _write_timeline(target: Path, case: Path, progress: ScanProgress) -> int:
    """The whole timeline as CSV (the file `irkit timeline -f csv -o` writes), written
    atomically, its rows shown on ``progress`` against the case's count."""
    from irkit.export.csv import CsvWriter
    from irkit.store.case import Case
    from irkit.store.timeline import DEFAULT_FIELD_COLUMNS, Selection, TimelineFilter

    with Case(case, read_only=True) as store:
        selection = Selection.of(store, TimelineFilter())
        progress.phase(f"writing {target.name}", total=selection.count(), unit="rows")
        with text_output(target) as handle:
            rows = CsvWriter(DEFAULT_FIELD_COLUMNS).write(selection, handle, progress.advance)
        progress.done()
    return rows


def _hash_files(
    evidence: list[Path],
    out: Path,
    summary: ParseSummary,
    ioc: list[Path] | None,
    progress: ScanProgress,
) -> HashSummary:
    """Every file under the evidence as file events; files no parser read are hashed
    (md5, sha1, sha256) and matched against the IOC lists."""
    from irkit.files.hashrun import run_hash
    from irkit.files.ioc import load_iocs
    from irkit.files.options import HashOptions

    known = {os.path.normpath(f.path): f.sha256 for f in summary.files if f.sha256}
    target = out / HASHES_NAME
    tmp = target.with_name(f".{target.name}.irkit-tmp")
    progress.phase("hashing files", unit="bytes")
    with tmp.open("w", encoding="utf-8", newline="\n", errors="surrogateescape") as digests:
        hashed = run_hash(
            evidence,
            HashOptions(known=known),
            case_dir=out,
            iocs=load_iocs(ioc) if ioc else None,
            digest_out=digests,
            progress=progress.advance,
            command=sys.argv,
        )
    progress.done()
    tmp.replace(target)
    return hashed
