"""How a parse run works: the engine, the parallelism, the batch and slice sizes.

``ParseOptions`` is the one knob set every stage of a run reads (workers, slice planning,
the pool and ``parse_evidence``); it is pickled to the worker processes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Final

from irkit.store.spool import DEFAULT_BATCH

#: EVTX files at least this big are parsed as slices of SLICE_CHUNKS chunks (4 MiB) by all
#: workers.
SLICE_THRESHOLD: Final = 48 << 20
SLICE_CHUNKS: Final = 64
FLUSH_SECONDS: Final = 3.0
#: EVTX files smaller than this are parsed in groups, many to a task and one spool part
#: (a host's ``winevt/Logs`` holds hundreds of small or empty logs)…
GROUP_FILE_MAX: Final = 8 << 20
#: …of at most this many bytes (fewer when the run's small files are few, so that every
#: worker gets several groups).
GROUP_BYTES: Final = 4 << 20
#: A file inside an image or archive is copied out (into the case's spool) to be parsed;
#: one bigger than this is a warning, not copied (a decompression bomb stops here).
INNER_LIMIT: Final = 4 << 30


@dataclasses.dataclass(slots=True)
class ParseOptions:
    """How to parse: engine choice, parallelism, batch size."""

    evtx_engine: str = "evtx"
    recover: bool = False
    workers: int = 0
    batch: int = DEFAULT_BATCH
    slice_bytes: int = SLICE_THRESHOLD
    slice_chunks: int = SLICE_CHUNKS
    #: Finished files enter the case at least this often (seconds), so a reader sees
    #: them while a long run goes on, and an interrupted run keeps them.
    flush_seconds: float = FLUSH_SECONDS
    #: EVTX files smaller than ``group_file_max`` go to the workers in groups of up to
    #: ``group_bytes``.
    group_file_max: int = GROUP_FILE_MAX
    group_bytes: int = GROUP_BYTES
    #: Walk each VSS store of a Windows volume in an image too (``--vss``).
    vss: bool = False
    #: The biggest file copied out of an image or archive to be parsed (bytes).
    inner_limit: int = INNER_LIMIT
    #: plaso's options for the files it reads: ``preferred_year``, ``time_zone``,
    #: ``plaso_parsers`` (``irkit.sources.plaso.options.PlasoOptions``).
    plaso: dict[str, str] = dataclasses.field(default_factory=dict)

    def worker_count(self, files: int) -> int:
        """Workers to start: as asked, else one per core, never more than files."""
        wanted = self.workers or os.cpu_count() or 1
        return max(1, min(wanted, files))
