"""`irkit parse EVIDENCE... --case DIR`: evidence into a case store."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from irkit.cli.common import (
    CaseDir,
    Debug,
    JsonOut,
    Quiet,
    Workers,
    errors_handled,
    print_json,
)
from irkit.errors import UsageError

Engine = Annotated[
    Literal["evtx", "python-evtx"],
    typer.Option(
        "--evtx-engine",
        help="EVTX engine: evtx (fast, Rust) or python-evtx (pure Python, reads inactive chunks).",
    ),
]
Recover = Annotated[
    bool,
    typer.Option(
        "--recover",
        help="Read damaged EVTX again with python-evtx and add the records only it can read.",
    ),
]
Vss = Annotated[
    bool,
    typer.Option(
        "--vss",
        help="In disk images, also read every Volume Shadow Copy store (as /vss1, /vss2…).",
    ),
]


Year = Annotated[
    int | None,
    typer.Option(
        "--year",
        help="Year of the logs without one (syslog): default, from each file's dates, "
        "with an assumed-year warning.",
    ),
]
TimeZone = Annotated[
    str,
    typer.Option("--timezone", help="Zone of logs in local time that plaso reads (default UTC)."),
]
PlasoParsers = Annotated[
    str,
    typer.Option(
        "--plaso-parsers",
        help="plaso parser filter for the files plaso reads, e.g. 'winreg,prefetch' or "
        "'!sqlite' (default: all but filestat).",
    ),
]


def plaso_options(year: int | None, zone: str, parsers: str) -> dict[str, str]:
    """The plaso options given on the command line."""
    given = {"preferred_year": "" if year is None else str(year), "time_zone": zone}
    given["plaso_parsers"] = parsers
    return {key: value for key, value in given.items() if value}


def check_outside_evidence(out: Path, evidence: list[Path]) -> None:
    """Evidence is read-only: refuse to write a case or output inside it."""
    target = out.resolve()
    for item in evidence:
        if not item.is_dir():  # a file holds no output (and hundreds are not resolved)
            continue
        root = item.resolve()
        if target == root or root in target.parents:
            raise UsageError(
                f"the output {out} is inside the evidence folder {item}",
                hint="irkit never writes into evidence; choose a folder outside it",
            )


def open_evidence(evidence: list[Path], case: Path) -> tuple[list[Path], list[Any]]:
    """The paths to parse, a collection zip replaced by its folder unpacked in the case,
    and the irkit collections among them."""
    from irkit.collect.evidence import open_evidence as open_collections

    check_outside_evidence(case, evidence)
    return open_collections(evidence, case)


def run_parse(
    evidence: list[Path],
    case: Path,
    engine: str,
    workers: int,
    quiet: bool,
    recover: bool = False,
    allow_empty: bool = False,
    collections: Sequence[Any] | None = None,
    *,
    vss: bool = False,
    plaso: dict[str, str] | None = None,
) -> object:
    """Parse with a progress bar when on a terminal; returns the ParseSummary.

    ``collections`` None: the evidence is opened here (collections found and unpacked).
    """
    from irkit.cli.common import show_progress, stderr_console
    from irkit.ingest.options import ParseOptions
    from irkit.ingest.parse import parse_evidence

    check_outside_evidence(case, evidence)
    if collections is None:
        evidence, collections = open_evidence(evidence, case)
    progress = None
    if show_progress(quiet):  # rich's progress bar is not even imported without one
        from irkit.cli.summary import RichProgress

        progress = RichProgress(stderr_console())
    try:
        return parse_evidence(
            evidence,
            case,
            ParseOptions(
                evtx_engine=engine, workers=workers, recover=recover, vss=vss, plaso=plaso or {}
            ),
            progress,
            command=sys.argv,
            allow_empty=allow_empty,
            collections=collections,
        )
    finally:
        if progress is not None:
            progress.stop()


@errors_handled
def parse(
    evidence: Annotated[list[Path], typer.Argument(help="Evidence files or folders (read-only).")],
    case: CaseDir = Path("irkit-case"),
    evtx_engine: Engine = "evtx",
    recover: Recover = False,
    vss: Vss = False,
    year: Year = None,
    timezone: TimeZone = "",
    plaso_parsers: PlasoParsers = "",
    workers: Workers = 0,
    cross_check: Annotated[
        bool,
        typer.Option("--cross-check", help="Also read each EVTX with both engines and compare."),
    ] = False,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Parse evidence into a case. Re-parsing the same evidence adds nothing.

    Examples:

      irkit parse /mnt/evidence/winevt/Logs --case host01

      irkit parse host01.zip osquery/ -c host01 --evtx-engine python-evtx --recover

      irkit parse disk.E01 --vss -c host01
    """
    from irkit.cli.common import stderr_console
    from irkit.ingest.summary import ParseSummary

    plaso = plaso_options(year, timezone, plaso_parsers)
    summary = run_parse(evidence, case, evtx_engine, workers, quiet, recover, vss=vss, plaso=plaso)
    assert isinstance(summary, ParseSummary)
    from irkit.cli.common import write_run_manifest  # CASE/runs/RUN-ID.json: custody

    write_run_manifest(case, summary.run_id, "parse", files=summary.files)
    data = summary.as_dict()
    code = int(summary.exit_code)
    if cross_check:
        from irkit.cli.crosscheck import run_crosscheck

        report = run_crosscheck(evidence, workers, quiet=quiet or json_out)
        data["cross_check"] = report
    if json_out:
        print_json(data)
    elif not quiet:
        from irkit.cli.summary import render_summary

        render_summary(stderr_console(), summary, [str(p) for p in evidence])
    if quiet and summary.warnings:
        from irkit.cli.common import say, warnings_line

        say("irkit: partial: ", "yellow", warnings_line(summary.warnings))
    raise typer.Exit(code)
