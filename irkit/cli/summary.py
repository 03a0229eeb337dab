"""The progress bar and the closing summary of a parse run."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from irkit.cli.common import human_bytes, safe_text, summary_table
from irkit.ingest.summary import ParseSummary
from irkit.ingest.summary import Progress as ParseProgress
from irkit.model import FileStats
from irkit.sources.evtx import DAMAGE

MAX_FILES_SHOWN = 20


class RichProgress(ParseProgress):
    """Files, records and MB/s on a rich bar (stderr); the bar advances by bytes parsed."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
            TextColumn("{task.fields[records]:,} records"),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.count = 0
        self.files = 0

    def start(self, files: int, total_bytes: int) -> None:
        """Show the bar."""
        self.bar.start()
        self.task = self.bar.add_task(
            "parsing", total=total_bytes, files=0, total_files=files, records=0
        )

    def records(self, count: int) -> None:
        """Add parsed records."""
        self.count += count
        if self.task is not None:
            self.bar.update(self.task, records=self.count)

    def advance(self, nbytes: int) -> None:
        """A slice of a big file is done: advance by its bytes."""
        if self.task is not None:
            self.bar.update(self.task, advance=nbytes, records=self.count)

    def file_done(self, stats: FileStats) -> None:
        """Advance by one file and its bytes (a sliced file's bytes are in already)."""
        self.files += 1
        if self.task is not None:
            advance = 0 if stats.sliced else stats.size
            self.bar.update(self.task, advance=advance, files=self.files, records=self.count)

    def stage(self, what: str) -> None:
        """Say what the run does now that the files are parsed (the bar stays full)."""
        if self.task is not None:
            self.bar.update(self.task, description=what, records=self.count)

    def stop(self) -> None:
        """Remove the bar."""
        self.bar.stop()


def render_summary(console: Console, summary: ParseSummary, evidence: Sequence[str] = ()) -> None:
    """The closing summary: inputs, events, skips, errors by file, rate, memory.

    ``evidence``: the paths parsed, for the command the hint on damaged logs gives.
    """
    data: dict[str, Any] = summary.as_dict()
    table = summary_table("irkit parse")
    rows = [
        ("case", data["case"]),
        ("files", files_line(data)),
        (
            "not read",
            f"{data['unrecognised_files']:,} not recognised (skipped), "
            f"{data['files_refused']:,} refused (a warning each: empty, unreadable, or not "
            "what their name says)",
        ),
        ("records", f"{data['records']:,} parsed, {data['events_added']:,} new events"),
        ("by family", families_line(data["records_by_family"])),
        ("skipped", f"{data['skipped_chunks']:,} chunks, {data['skipped_records']:,} records"),
        ("warnings", f"{data['warnings']:,} in {len(data['errors_by_file']):,} files"),
        (
            "rate",
            f"{data['events_per_second']:,.0f} events/s, {data['mb_per_second']:.1f} MB/s, "
            f"{data['seconds']:.2f} s",
        ),
        ("peak memory", human_bytes(data["peak_rss_bytes"])),
    ]
    if data["files_recovered"]:
        rows.insert(
            4,
            (
                "recovered",
                f"{data['files_recovered']:,} damaged "
                + ("log" if data["files_recovered"] == 1 else "logs")
                + " read again with python-evtx for the records past the damage",
            ),
        )
    for key, value in rows:
        if value:
            table.add_row(key, safe_text(value))
    console.print(table)
    if summary.not_recognised:
        render_not_recognised(console, summary.not_recognised)
    if summary.warnings:
        render_warnings(console, summary)
    kinds = {w.kind for w in summary.warnings}
    if kinds & DAMAGE and "recovered" not in kinds:
        paths = " ".join(shlex.quote(p) for p in evidence) or "EVIDENCE..."
        command = f"irkit parse {paths} --case {shlex.quote(summary.case)} --recover"
        console.print(
            Text("hint: ", style="yellow")
            + safe_text(
                f"damaged logs: `{command}` reads only the damaged logs again and adds the "
                "records past the damage that the fast engine cannot read "
                "(`irkit crosscheck` compares both engines)"
            )
        )


def files_line(data: dict[str, Any]) -> str:
    """Where each file found went; the four parts add up to the files found."""
    return (
        f"{data['files_found']:,} found: {data['files_parsed']:,} parsed, "
        f"{data['files_already_in_case']:,} already in case, "
        + (
            "1 copy of a file in this run, "
            if data["files_copies"] == 1
            else f"{data['files_copies']:,} copies of files in this run, "
        )
        + f"{data['files_failed']:,} failed"
    )


def families_line(families: dict[str, int], shown: int = 12) -> str:
    """Records per parser family, most first: ``evtx 1,234 · winreg 567 · …``."""
    ranked = sorted(families.items(), key=lambda item: (-item[1], item[0]))
    line = " · ".join(f"{name} {count:,}" for name, count in ranked[:shown])
    if len(ranked) > shown:
        line += f" · {len(ranked) - shown} more families (--json lists all)"
    return line


def render_not_recognised(console: Console, files: Sequence[tuple[str, str]]) -> None:
    """The files no parser took, each with why (the first ``MAX_FILES_SHOWN``)."""
    console.print(Text(f"not recognised ({len(files):,} files, no events):", style="bold"))
    for shown, (path, why) in enumerate(files):
        if shown == MAX_FILES_SHOWN:
            console.print(f"  … and {len(files) - shown:,} more files (--json lists all)")
            break
        line = Text("  ")
        line.append_text(safe_text(path, "cyan"))
        line.append(": ")
        line.append_text(safe_text(why))
        line.truncate(max(console.width, 40), overflow="ellipsis")
        console.print(line, no_wrap=True, overflow="ellipsis")


def render_warnings(console: Console, summary: ParseSummary) -> None:
    """Warnings grouped by file: counts by kind, then the first message of each kind."""
    by_file: dict[str, dict[str, list[str]]] = {}
    for warning in summary.warnings:
        by_file.setdefault(warning.path, {}).setdefault(warning.kind, []).append(warning.message)
    console.print(Text(f"warnings by file ({len(by_file)} files):", style="bold yellow"))
    for shown, (path, kinds) in enumerate(by_file.items()):
        if shown == MAX_FILES_SHOWN:
            console.print(f"  … and {len(by_file) - shown} more files (--json lists all)")
            break
        line = Text("  ")
        line.append_text(safe_text(path, "cyan"))
        line.append(": " + ", ".join(f"{len(v)} {k}" for k, v in sorted(kinds.items())))
        console.print(line)
        for kind, messages in sorted(kinds.items()):
            detail = Text(f"    {kind}: ", style="dim")
            detail.append_text(safe_text(messages[0]))
            detail.truncate(max(console.width, 40), overflow="ellipsis")
            console.print(detail, no_wrap=True, overflow="ellipsis")
