"""The progress bar and the closing summary of a parse run."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from irkit.cli.common import human_bytes, safe_text
from irkit.ingest import ParseSummary
from irkit.ingest import Progress as ParseProgress
from irkit.model import FileStats

MAX_WARNINGS_SHOWN = 40


class RichProgress(ParseProgress):
    """Files, records and MB/s on a rich bar (stderr)."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(
            TextColumn("[bold]parsing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            TextColumn("{task.fields[records]:,} records"),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.files: TaskID | None = None
        self.bytes: TaskID | None = None
        self.count = 0

    def start(self, files: int, total_bytes: int) -> None:
        """Show the bar."""
        self.bar.start()
        self.files = self.bar.add_task("files", total=files, records=0)
        self._total_bytes = total_bytes

    def records(self, count: int) -> None:
        """Add parsed records."""
        self.count += count
        if self.files is not None:
            self.bar.update(self.files, records=self.count)

    def file_done(self, stats: FileStats) -> None:
        """Advance by one file and its bytes."""
        if self.files is not None:
            self.bar.update(self.files, advance=1, records=self.count)

    def stop(self) -> None:
        """Remove the bar."""
        self.bar.stop()


def render_summary(console: Console, summary: ParseSummary) -> None:
    """The closing summary: inputs, events, skips, errors by file, rate, memory."""
    data: dict[str, Any] = summary.as_dict()
    table = Table(title="irkit parse", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("case", data["case"]),
        (
            "files",
            f"{data['files_found']:,} found, {data['files_parsed']:,} parsed, "
            f"{data['files_already_in_case']:,} already in case, "
            f"{data['files_failed']:,} failed, {data['unrecognised_files']:,} not recognised",
        ),
        ("records", f"{data['records']:,} parsed, {data['events_added']:,} new events"),
        ("skipped", f"{data['skipped_chunks']:,} chunks, {data['skipped_records']:,} records"),
        ("warnings", f"{data['warnings']:,} in {len(data['errors_by_file']):,} files"),
        (
            "rate",
            f"{data['events_per_second']:,.0f} events/s, {data['mb_per_second']:.1f} MB/s, "
            f"{data['seconds']:.2f} s",
        ),
        ("peak memory", human_bytes(data["peak_rss_bytes"])),
    ]
    for key, value in rows:
        table.add_row(key, safe_text(value))
    console.print(table)
    if summary.warnings:
        console.print(Text("warnings by file:", style="bold yellow"))
        for index, warning in enumerate(summary.warnings):
            if index == MAX_WARNINGS_SHOWN:
                console.print(f"  … and {len(summary.warnings) - index} more (see --json)")
                break
            line = Text("  ")
            line.append_text(safe_text(warning.path, "cyan"))
            line.append(f" [{warning.kind}] ")
            line.append_text(safe_text(warning.message))
            console.print(line)
