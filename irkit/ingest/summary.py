"""What a parse run reports: the ``ParseSummary`` it returns and the ``Progress`` it feeds.

Both are plain library types; the CLI renders the summary and subclasses ``Progress``
with a progress bar.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from irkit.errors import ExitCode
from irkit.model import FileStats, ParseWarning


@dataclasses.dataclass(slots=True)
class ParseSummary:
    """What one parse run did; the CLI renders it and ``--json`` prints ``as_dict()``."""

    run_id: str
    case: str
    files_found: int = 0
    files_parsed: int = 0
    files_already: int = 0
    files_copies: int = 0
    files_failed: int = 0
    #: Damaged EVTX logs read again with python-evtx (``--recover``), in this run's
    #: parse or, for those already in the case, afterwards.
    files_recovered: int = 0
    #: Files not recognised as evidence, skipped without a warning (a file in a folder
    #: that is empty or that no parser took); ``not_recognised`` names each, with why.
    unrecognised: int = 0
    not_recognised: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: Rows parsed per parser family (``evtx``, ``osquery``, ``winreg``, ``text/syslog``…).
    families: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Files skipped with a warning: a ``.evtx`` that is not EVTX (or empty), a file named
    #: on the command line that no parser recognises, an unreadable or vanished file.
    files_refused: int = 0
    bytes: int = 0
    records: int = 0
    events_added: int = 0
    skipped_chunks: int = 0
    skipped_records: int = 0
    seconds: float = 0.0
    peak_rss_bytes: int = 0
    warnings: list[ParseWarning] = dataclasses.field(default_factory=list)
    files: list[FileStats] = dataclasses.field(default_factory=list)
    #: Why the run stopped before its end ("interrupted", or the error), else "".
    stopped: str = ""

    @property
    def exit_code(self) -> ExitCode:
        """OK when every input was read whole, PARTIAL when anything was skipped."""
        return ExitCode.PARTIAL if self.warnings else ExitCode.OK

    @property
    def events_per_second(self) -> float:
        """Records parsed per wall-clock second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data (stable key order) for --json and the case's run log."""
        errors: dict[str, list[str]] = {}
        for warning in self.warnings:
            errors.setdefault(warning.path, []).append(f"{warning.kind}: {warning.message}")
        return {
            "run_id": self.run_id,
            "case": self.case,
            "files_found": self.files_found,
            "files_parsed": self.files_parsed,
            "files_already_in_case": self.files_already,
            "files_copies": self.files_copies,
            "files_failed": self.files_failed,
            "files_recovered": self.files_recovered,
            "unrecognised_files": self.unrecognised,
            "not_recognised": {path: why for path, why in self.not_recognised},
            "records_by_family": dict(sorted(self.families.items())),
            "files_refused": self.files_refused,
            "copies": {f.path: f.copy_of for f in self.files if f.status == "copy"},
            "bytes": self.bytes,
            "records": self.records,
            "events_added": self.events_added,
            "skipped_chunks": self.skipped_chunks,
            "skipped_records": self.skipped_records,
            "warnings": len(self.warnings),
            "errors_by_file": errors,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
            "mb_per_second": round(self.bytes / 1e6 / self.seconds, 2) if self.seconds else 0.0,
            "peak_rss_bytes": self.peak_rss_bytes,
            "exit_code": int(self.exit_code),
            "stopped": self.stopped or None,
        }


class Progress:
    """Receives progress as work happens; the CLI subclasses it with a rich bar."""

    def start(self, files: int, total_bytes: int) -> None:
        """Work is about to begin."""

    def records(self, count: int) -> None:
        """``count`` more records were parsed."""

    def advance(self, nbytes: int) -> None:
        """A slice of ``nbytes`` of a big file is finished."""

    def file_done(self, stats: FileStats) -> None:
        """One file is finished (parsed, skipped or failed); a sliced one has advanced already."""

    def stage(self, what: str) -> None:
        """The run moved on to ``what`` (e.g. storing the last files, recovering logs)."""
