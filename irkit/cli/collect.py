"""`irkit collect --out DIR` and `irkit verify DIR|ZIP`: a collection and its custody."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from irkit.cli.common import Debug, JsonOut, Quiet, errors_handled, print_json, safe_text

if TYPE_CHECKING:
    from rich.console import Console

    from irkit.collect.options import CollectSummary
    from irkit.collect.verify import VerifyReport
    from irkit.store.custody_verify import CaseVerifyReport


@errors_handled
def collect(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (new or empty): the collection.")
    ],
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Collect from this mounted image or copied tree, not live."),
    ] = None,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="triage-linux, triage-windows or triage-macos (default: the root's OS).",
        ),
    ] = "",
    artifact: Annotated[
        list[str] | None,
        typer.Option("--artifact", "-a", help="Collect this artifact definition (repeatable)."),
    ] = None,
    case_number: Annotated[str, typer.Option("--case-number", help="Case number.")] = "",
    evidence_number: Annotated[
        str, typer.Option("--evidence-number", help="Evidence number.")
    ] = "",
    examiner: Annotated[str, typer.Option("--examiner", help="Who collects.")] = "",
    notes: Annotated[str, typer.Option("--notes", help="Free text for the manifest.")] = "",
    zip_out: Annotated[
        bool,
        typer.Option("--zip", help="Zip the collection; its sha256 is printed and logged beside."),
    ] = False,
    max_file_size: Annotated[
        str,
        typer.Option(
            "--max-file-size", help="Store at most this much of a file (500M, 2G; 0: no cap)."
        ),
    ] = "2G",
    no_osquery: Annotated[
        bool, typer.Option("--no-osquery", help="Do not run osqueryi even if it is installed.")
    ] = False,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Copy a profile's artifacts with their hashes and a manifest. Never prompts.

    Examples:

      sudo irkit collect --out /media/usb/host01 --zip --case-number IR-2024-17

      irkit collect --out host01 --root /mnt/image --profile triage-windows
    """
    from irkit.collect.collector import run_collect
    from irkit.collect.options import CollectOptions
    from irkit.files.options import parse_size

    limit = parse_size(max_file_size)
    options = CollectOptions(
        out=out,
        root=root,
        profile=profile,
        artifacts=tuple(artifact or ()),
        case={
            "case_number": case_number,
            "evidence_number": evidence_number,
            "examiner": examiner,
            "notes": notes,
        },
        zip=zip_out,
        max_file_size=limit or None,
        osquery=not no_osquery,
        argv=tuple(sys.argv),
    )
    progress = _progress(quiet or json_out)
    try:
        summary = run_collect(options, progress)
    finally:
        if progress is not None:
            progress.stop()
    if json_out:
        print_json(summary.as_dict())
    elif not quiet:
        _render(summary)
    if summary.zip_sha256 and quiet and not json_out:
        # The container's digest is the anchor of custody: always said, outside the zip.
        sys.stdout.write(f"{summary.zip_sha256}  {summary.zip_path}\n")
    raise typer.Exit(int(summary.exit_code))


def _progress(quiet: bool) -> Any:
    from irkit.cli.common import show_progress

    if not show_progress(quiet):
        return None
    from irkit.cli.common import stderr_console
    from irkit.collect.options import CollectProgress

    class _Live(CollectProgress):
        def __init__(self, console: Console) -> None:
            self.files = 0
            self.bytes = 0
            self.name = ""
            self.status = console.status("collecting…")
            self.status.start()

        def artifact(self, name: str) -> None:
            self.name = name
            self._show()

        def stored(self, nbytes: int) -> None:
            self.bytes += nbytes

        def file_done(self) -> None:
            self.files += 1
            if self.files % 25 == 0:
                self._show()

        def _show(self) -> None:
            from irkit.cli.common import human_bytes

            self.status.update(
                safe_text(f"{self.name}: {self.files:,} files, {human_bytes(self.bytes)}")
            )

        def stop(self) -> None:
            self.status.stop()

    return _Live(stderr_console())


def _render(summary: CollectSummary) -> None:
    from irkit.cli.common import human_bytes, stderr_console

    console = stderr_console()
    data = summary.as_dict()
    where = summary.zip_path or summary.folder
    console.print(
        safe_text(
            f"collected {summary.files:,} files ({human_bytes(summary.bytes)}) and "
            f"{summary.listings} listings from {summary.root} ({summary.os_name}, profile "
            f"{summary.profile or 'artifacts named'}) in {summary.seconds:.1f} s into {where}"
        )
    )
    if data["commands"]:
        console.print(
            safe_text(f"commands: {data['commands']} run, {data['commands_failed']} failed")
        )
    if not summary.osquery.get("available"):
        console.print(safe_text(f"osquery: {summary.osquery.get('reason', 'not run')}"))
    if data["skipped"]:
        counts = ", ".join(f"{k} {v}" for k, v in data["skipped"].items())
        console.print(safe_text(f"skipped: {counts} (the manifest names each)"))
        for item in summary.skipped:
            if item.reason in ("unreadable", "unreadable-directory", "cannot-store"):
                console.print(safe_text(f"  {item.reason}: {item.source_path}: {item.detail}"))
    console.print(safe_text(f"manifest.json sha256: {summary.manifest_sha256}"))
    if summary.zip_sha256:
        sys.stdout.write(f"{summary.zip_sha256}  {summary.zip_path}\n")


@errors_handled
def verify(
    path: Annotated[
        Path, typer.Argument(help="A collection folder or zip (or the --out folder), or a case.")
    ],
    quiet: Quiet = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
    debug: Debug = False,
) -> None:
    """Re-hash a collection against its manifest, or a case against its run manifests;
    exit 5 on any mismatch.

    Examples:

      irkit verify /media/usb/host01

      irkit verify ./irkit-triage

      irkit verify /media/usb/host01/host01-20240501T101500Z.zip --json
    """
    from irkit.collect.verify import verify as run_verify
    from irkit.store.custody import is_case

    if is_case(path):  # a case: its run manifests (docs/custody.md)
        from irkit.store.custody_verify import verify_case

        checked = verify_case(path)
        if json_out:
            print_json(checked.as_dict())
        elif not quiet:
            _render_case_verify(checked)
        raise typer.Exit(int(checked.exit_code))
    report = run_verify(path)
    if json_out:
        print_json(report.as_dict())
    elif not quiet:
        _render_verify(report)
    raise typer.Exit(int(report.exit_code))


def _render_verify(report: VerifyReport) -> None:
    from irkit.cli.common import human_bytes, stderr_console

    console = stderr_console()
    for problem in report.problems:
        console.print(safe_text(f"{problem.kind}: {problem.path}: {problem.message}", "red"))
    verdict = "FAILED" if report.problems else "verified"
    console.print(
        safe_text(
            f"{verdict}: {report.path} (collection {report.collection_id}): "
            f"{report.files_checked:,} files, {human_bytes(report.bytes_checked)} re-hashed, "
            f"{len(report.problems)} problems",
            "bold red" if report.problems else "green",
        )
    )


def _render_case_verify(report: CaseVerifyReport) -> None:
    from irkit.cli.common import human_bytes, stderr_console

    console = stderr_console()
    for problem in report.problems:
        line = f"{problem.kind}: {problem.role}: {problem.path}: {problem.message}"
        console.print(safe_text(line, "red"), soft_wrap=True)  # one line each: grep
    if report.superseded:
        console.print(
            safe_text(
                f"{len(report.superseded):,} outputs of older runs were rewritten later: "
                "checked against the latest run that wrote them",
                "dim",
            )
        )
    verdict = "FAILED" if report.problems else "verified"
    console.print(
        safe_text(
            f"{verdict}: case {report.path}: {report.runs:,} runs, {report.files_checked:,} "
            f"files, {human_bytes(report.bytes_checked)} re-hashed, "
            f"{len(report.problems)} problems",
            "bold red" if report.problems else "green",
        )
    )
