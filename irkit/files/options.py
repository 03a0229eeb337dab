"""What a hash run is asked, and what it reports.

- ``HashOptions``: the digests (``ALGORITHMS``), links followed or not, file systems
  crossed or not, the size limit, the exclusions, the threads, and the files a parser
  already read whole;
- ``parse_algorithms`` and ``parse_size``: the command line's spellings of those;
- ``HashSummary``: what a run did: counts, skip reasons, warnings, notes, IOC findings.

Shared by the walk (``walk``), the hashing (``hashing``), the run (``hashrun``), the YARA
file scan and the folder listings of ``irkit collect``.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any, Final

from irkit.errors import UsageError
from irkit.model import Finding, ParseWarning

ALGORITHMS: Final = ("md5", "sha1", "sha256")


@dataclasses.dataclass(slots=True)
class HashOptions:
    """What to hash and how far to go."""

    algorithms: tuple[str, ...] = ALGORITHMS
    follow_symlinks: bool = False
    cross_filesystems: bool = False
    max_size: int | None = None
    excludes: tuple[str, ...] = ()
    workers: int = 0
    #: sha256 of files already read whole by a parser (``irkit triage``), by normalised
    #: path: their events carry it and they are not read a second time.
    known: dict[str, str] = dataclasses.field(default_factory=dict)

    def thread_count(self) -> int:
        """Hashing threads: as asked, else one per core."""
        return max(1, self.workers or os.cpu_count() or 1)


@dataclasses.dataclass(slots=True)
class HashSummary:
    """What one hash run did; ``--json`` prints ``as_dict()``."""

    run_id: str = ""
    entries: int = 0
    files: int = 0
    hashed: int = 0
    bytes_hashed: int = 0
    events: int = 0
    events_added: int = 0
    seconds: float = 0.0
    algorithms: tuple[str, ...] = ()
    skipped: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    warnings: list[ParseWarning] = dataclasses.field(default_factory=list)
    notes: list[ParseWarning] = dataclasses.field(default_factory=list)
    findings: list[Finding] = dataclasses.field(default_factory=list)
    iocs_loaded: int = 0

    @property
    def partial(self) -> bool:
        """True when a file could not be read whole (unreadable, vanished, changed)."""
        return bool(self.warnings)

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data, stable key order."""
        return {
            "run_id": self.run_id,
            "entries": self.entries,
            "regular_files": self.files,
            "files_hashed": self.hashed,
            "bytes_hashed": self.bytes_hashed,
            "algorithms": list(self.algorithms),
            "events": self.events,
            "events_added": self.events_added,
            "skipped": dict(sorted(self.skipped.items())),
            "warnings": [dataclasses.asdict(w) for w in self.warnings],
            "notes": [dataclasses.asdict(n) for n in self.notes],
            "iocs_loaded": self.iocs_loaded,
            "findings": [
                {"uid": f.uid, "severity": str(f.severity), "title": f.title, "path": f.evidence}
                for f in self.findings
            ],
            "seconds": round(self.seconds, 3),
            "mb_per_second": round(self.bytes_hashed / 1e6 / self.seconds, 1)
            if self.seconds
            else 0.0,
        }


def parse_algorithms(text: str) -> tuple[str, ...]:
    """``md5,sha1,sha256`` as a tuple in that canonical order; ``none`` alone is the empty
    tuple (times and metadata only, no file read); anything else is refused."""
    wanted = {part.strip().lower().replace("-", "") for part in text.split(",") if part.strip()}
    if wanted == {"none"}:
        return ()
    unknown = wanted - set(ALGORITHMS)
    if unknown or not wanted:
        raise UsageError(
            f"unknown hash algorithm: {', '.join(sorted(unknown)) or '(none)'}",
            hint="choose from md5, sha1, sha256, comma-separated, or none",
        )
    return tuple(a for a in ALGORITHMS if a in wanted)


def parse_size(text: str) -> int:
    """``500``, ``64K``, ``100M``, ``2G`` (powers of 1024) as bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    body = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (body[:-1], body[-1]) if body and body[-1] in units else (body, "")
    try:
        value = int(float(number) * units[unit])
    except ValueError as exc:
        raise UsageError(f"not a size: {text!r}", hint="for example 500, 64K, 100M or 2G") from exc
    if value < 0:
        raise UsageError(f"a size cannot be negative: {text!r}")
    return value
