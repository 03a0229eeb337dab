"""The units of work of the process pool: a ``Task`` handed to a worker (a whole file, a
group of small logs, a slice of a big log, or a recovery pass) and the ``Done`` it comes
back as.
"""

from __future__ import annotations

import dataclasses

from irkit.ingest.discovery import Candidate
from irkit.model import FileStats
from irkit.sources.evtx.chunks import CHUNK_SIZE, FILE_HEADER_SIZE


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """One piece of work for a worker: a whole file, slice ``index`` of ``total`` of a
    big one (``span``: its chunks), or the recovery pass over a damaged log already in
    the case (``recover``: the record ids it holds, as ranges text). A group of small
    EVTX logs (``group``, with the sha256 already known of each, or "") is parsed into
    one shared part; ``candidate`` is then its first file."""

    id: int
    candidate: Candidate
    sha256: str = ""
    span: tuple[int, int] | None = None
    index: int = -1
    total: int = 1
    recover: str = ""
    group: tuple[Candidate, ...] = ()
    shas: tuple[str, ...] = ()

    @property
    def nbytes(self) -> int:
        """The bytes of a slice (0 for a whole file)."""
        if self.span is None:
            return 0
        first, last = self.span
        end = min(self.candidate.size, FILE_HEADER_SIZE + last * CHUNK_SIZE)
        return max(end - (FILE_HEADER_SIZE + first * CHUNK_SIZE), 0)


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    """A finished task and its stats; ``reported``: the records the progress bar was
    already given for it, as it ran. A group's ``members`` are the stats of each of its
    files (``stats`` is the first's)."""

    task: Task
    stats: FileStats
    reported: int = 0
    members: tuple[FileStats, ...] = ()

    @property
    def of(self) -> Candidate | None:
        """The big file this is a slice of; None for a whole file."""
        return self.task.candidate if self.task.index >= 0 else None
