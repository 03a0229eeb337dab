"""What ``irkit collect`` is asked, and what it reports.

- ``CollectOptions``: the profile or artifacts, the root, the output folder, the limits;
- ``CollectSummary``: what one collection did; ``Skipped``: a file or command not
  collected, and why (a reason in ``WARNING_REASONS`` makes the exit code 3);
- ``CollectProgress``: the progress callbacks, which the command line subclasses.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, Final

from irkit.errors import ExitCode

DEFAULT_MAX_FILE_SIZE: Final = 2 << 30
#: Skip reasons that mean something that should have been collected was not (exit 3).
WARNING_REASONS: Final = frozenset(
    {"unreadable", "unreadable-directory", "cannot-store", "path-too-long", "command-failed"}
)


@dataclasses.dataclass(slots=True)
class CollectOptions:
    """What to collect, from where, into where."""

    out: Path
    root: Path | None = None
    profile: str = ""
    artifacts: tuple[str, ...] = ()
    case: dict[str, str] = dataclasses.field(default_factory=dict)
    zip: bool = False
    max_file_size: int | None = DEFAULT_MAX_FILE_SIZE
    osquery: bool = True
    argv: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Skipped:
    """A file or command not collected, and why."""

    artifact: str
    source_path: str
    reason: str
    detail: str


@dataclasses.dataclass(slots=True)
class CollectSummary:
    """What one collection did; ``--json`` prints ``as_dict()``."""

    collection_id: str
    out: str
    profile: str = ""
    os_name: str = ""
    root: str = ""
    live: bool = True
    folder: str = ""
    zip_path: str = ""
    zip_sha256: str = ""
    manifest_sha256: str = ""
    files: int = 0
    bytes: int = 0
    truncated: int = 0
    changed: int = 0
    listings: int = 0
    seconds: float = 0.0
    artifacts: int = 0
    not_for_os: list[str] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    commands: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    osquery: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """PARTIAL when a file that should have been read could not be; else OK."""
        warned = any(s.reason in WARNING_REASONS for s in self.skipped)
        return ExitCode.PARTIAL if warned else ExitCode.OK

    def skipped_by_reason(self) -> dict[str, int]:
        """How many were skipped, by reason."""
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data, stable key order."""
        return {
            "collection_id": self.collection_id,
            "out": self.out,
            "folder": self.folder,
            "zip": self.zip_path,
            "zip_sha256": self.zip_sha256,
            "manifest_sha256": self.manifest_sha256,
            "profile": self.profile,
            "os": self.os_name,
            "root": self.root,
            "live": self.live,
            "artifacts": self.artifacts,
            "artifacts_not_for_this_os": self.not_for_os,
            "files": self.files,
            "bytes": self.bytes,
            "truncated": self.truncated,
            "changed_while_copied": self.changed,
            "listings": self.listings,
            "commands": len(self.commands),
            "commands_failed": sum(1 for c in self.commands if c["status"] != "ran"),
            "osquery": self.osquery,
            "skipped": self.skipped_by_reason(),
            "skipped_files": [dataclasses.asdict(s) for s in self.skipped],
            "seconds": round(self.seconds, 3),
            "mb_per_second": round(self.bytes / 1e6 / self.seconds, 1) if self.seconds else 0.0,
            "exit_code": int(self.exit_code),
        }


class CollectProgress:
    """Hears of progress; the CLI subclasses it with a live line on a terminal."""

    def artifact(self, name: str) -> None:
        """Collection of an artifact begins."""

    def stored(self, nbytes: int) -> None:
        """``nbytes`` more were stored."""

    def file_done(self) -> None:
        """One more file is stored."""
