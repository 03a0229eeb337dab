"""`irkit hash PATH...`: digests, file times as events, hash IOC findings."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

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
from irkit.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from irkit.files.options import HashSummary

MAX_SHOWN = 20


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO | None]:
    """A text file written atomically (temporary name, renamed at the end), ``-`` stdout."""
    if path is None:
        yield None
        return
    if str(path) == "-":
        yield sys.stdout
        return
    tmp = path.with_name(f".{path.name}.irkit-tmp")
    with tmp.open("w", encoding="utf-8", newline="\n", errors="surrogateescape") as handle:
        yield handle
    tmp.replace(path)


@errors_handled
def hash_command(
    path: Annotated[list[Path], typer.Argument(help="Files or folders to hash (read-only).")],
    case: Annotated[
        Path | None,
        typer.Option("--case", "-c", help="Store file events and findings in this case."),
    ] = None,
    algorithms: Annotated[
        str,
        typer.Option(
            "--algorithms",
            "-a",
            help="Digests to compute, comma-separated; 'none': times and metadata only, "
            "no file read.",
        ),
    ] = "md5,sha1,sha256",
    ioc: Annotated[
        list[Path] | None,
        typer.Option(
            "--ioc",
            help="Hash IOC list (repeatable; LOKI hash;description, sha256sum, CSV). "
            "A match exits 4.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Digest list (sha256sum -c format) to this file; '-' for stdout. "
            "Default: stdout without --case, CASE/hashes-RUN.sha256 with it.",
        ),
    ] = None,
    bodyfile: Annotated[
        Path | None, typer.Option("--bodyfile", help="Also write a TSK bodyfile (mactime -b).")
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option("--max-size", help="Do not hash files larger than this (e.g. 512M)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Skip paths or names matching this glob (repeatable)."),
    ] = None,
    follow_symlinks: Annotated[
        bool, typer.Option("--follow-symlinks", help="Follow symbolic links (loops are cut).")
    ] = False,
    cross_filesystems: Annotated[
        bool,
        typer.Option(
            "--cross-filesystems", help="Enter other mounted file systems (never proc, sys…)."
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", "-j", help="Hashing threads (0: one per core).", min=0)
    ] = 0,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Hash files (one read, every digest), record their times, match hash IOCs.

    Exit 4 when a file matched an --ioc list.

    Examples:

      irkit hash /mnt/evidence/home -o home.sha256

      irkit hash /mnt/c/Windows/Temp --case host01 --ioc signature-base/iocs/hash-iocs.txt
    """
    from irkit.cli.common import say, stderr_console, warnings_line
    from irkit.cli.parse import check_outside_evidence
    from irkit.cli.scan import scan_progress
    from irkit.files.hashrun import run_hash
    from irkit.files.options import HashOptions, parse_algorithms, parse_size

    options = HashOptions(
        algorithms=parse_algorithms(algorithms),
        follow_symlinks=follow_symlinks,
        cross_filesystems=cross_filesystems,
        max_size=parse_size(max_size) if max_size else None,
        excludes=tuple(exclude or ()),
        workers=workers,
    )
    for target in (case, output, bodyfile):
        if target is not None and str(target) != "-":
            check_outside_evidence(target, path)
    if json_out and output is not None and str(output) == "-":
        raise UsageError("--json and --output - both want stdout", hint="write -o to a file")
    iocs = None
    if ioc:
        from irkit.files.ioc import load_iocs

        iocs = load_iocs(ioc)
    if output is None:
        output = Path("-") if case is None and not json_out else None
    # The digests on the terminal itself leave no room for a progress line beside them.
    on_terminal = output is not None and str(output) == "-" and sys.stdout.isatty()
    with (
        _output(output) as digests,
        _output(bodyfile) as body,
        scan_progress(quiet or on_terminal) as progress,
    ):
        progress.phase("hashing files", unit="bytes")
        summary = run_hash(
            path,
            options,
            case_dir=case,
            iocs=iocs,
            digest_out=digests,
            bodyfile_out=body,
            progress=progress.advance,
            command=sys.argv,
        )
    if case is not None:  # CASE/runs/RUN-ID.json: what was hashed and written (custody)
        _hash_manifest(case, summary, output, bodyfile, ioc or [])
    data = summary.as_dict()
    if json_out:
        print_json(data)
    elif not quiet:
        render_hash_summary(stderr_console(), summary, data, in_case=case is not None)
    if quiet and summary.warnings:  # the first file and warning that made the run partial
        say("irkit: partial: ", "yellow", warnings_line(summary.warnings))
    if summary.findings:
        raise typer.Exit(int(ExitCode.FINDINGS))
    raise typer.Exit(int(ExitCode.PARTIAL if summary.partial else ExitCode.OK))


def _hash_manifest(
    case: Path, summary: HashSummary, output: Path | None, bodyfile: Path | None, ioc: list[Path]
) -> None:
    """The run's manifest: the digest list (its sha256 lines are the evidence), the
    bodyfile, the IOC lists."""
    from irkit.cli.common import write_run_manifest
    from irkit.store.custody import ioc_rule_set

    strongest = summary.algorithms[-1] if summary.algorithms else ""
    listing: Path | None = output
    if output is None and strongest:  # --algorithms none writes no digest list
        listing = case / f"hashes-{summary.run_id[:12]}.{strongest}"
    written = [p for p in (listing, bodyfile) if p is not None and str(p) != "-"]
    write_run_manifest(
        case,
        summary.run_id,
        "hash",
        digest_lists=[listing]
        if listing is not None and strongest == "sha256" and str(listing) != "-"
        else [],
        rule_sets=[ioc_rule_set(ioc, summary.iocs_loaded, summary.warnings)] if ioc else [],
        outputs=written,
    )


def render_hash_summary(
    console: Console, summary: HashSummary, data: dict[str, Any], in_case: bool = True
) -> None:
    """Counts, skips by reason, warnings and findings (``in_case``: the events went to
    a case, which says how many were new)."""
    from rich.text import Text

    table = summary_table("irkit hash")
    skipped = ", ".join(f"{n:,} {k}" for k, n in data["skipped"].items()) or "none"
    for key, value in (
        ("entries", f"{summary.entries:,} ({summary.files:,} regular files)"),
        ("hashed", f"{summary.hashed:,} files, {human_bytes(summary.bytes_hashed)}"),
        ("digests", ", ".join(summary.algorithms)),
        (
            "events",
            f"{summary.events:,}"
            + (f" ({summary.events_added:,} new in the case)" if in_case else ""),
        ),
        ("not hashed", skipped),
        ("warnings", f"{len(summary.warnings):,}"),
        ("findings", f"{len(summary.findings):,} (IOCs loaded: {summary.iocs_loaded:,})"),
        ("rate", f"{data['mb_per_second']:.1f} MB/s, {summary.seconds:.2f} s"),
    ):
        table.add_row(key, safe_text(value))
    console.print(table)
    for title, items, style in (
        ("warnings", summary.warnings, "yellow"),
        ("not hashed", summary.notes, "dim"),
    ):
        if not items:
            continue
        console.print(Text(f"{title}:", style=f"bold {style}"))
        for item in items[:MAX_SHOWN]:
            line = Text(f"  {item.kind}: ", style=style)
            line.append_text(safe_text(item.path, "cyan"))
            line.append_text(safe_text(f": {item.message}"))
            console.print(line)
        if len(items) > MAX_SHOWN:
            console.print(f"  … and {len(items) - MAX_SHOWN} more (--json lists all)")
    for finding in summary.findings[:MAX_SHOWN]:
        line = Text(f"FINDING {finding.severity}: ", style="bold red")
        line.append_text(safe_text(f"{finding.evidence}: {finding.description}"))
        console.print(line)
