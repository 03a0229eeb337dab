"""Big EVTX logs as slices: which chunk ranges a file is cut into, and the slices' stats
merged back into the file's.

An EVTX file of ``ParseOptions.slice_bytes`` or more is cut into ranges of
``slice_chunks`` chunks, so all workers share one huge log (``irkit.ingest.pool`` runs
them); when its last slice is in, ``merge_slices`` gives the whole file's ``FileStats``.
"""

from __future__ import annotations

from irkit.ingest.discovery import Candidate
from irkit.ingest.options import ParseOptions
from irkit.model import FileStats, ParseWarning


def plan_slices(candidate: Candidate, options: ParseOptions) -> list[tuple[int, int]]:
    """Chunk ranges for a big EVTX file, so several workers share it; [] for small files."""
    from irkit.sources.evtx.chunks import chunk_count

    if (
        candidate.kind != "evtx"
        or candidate.inner  # a log inside an image is copied out whole, then parsed
        or options.evtx_engine != "evtx"
        or candidate.size < options.slice_bytes
    ):
        return []
    chunks, step = chunk_count(candidate.size), options.slice_chunks
    return [(a, min(a + step, chunks)) for a in range(0, chunks, step)]


def merge_slices(candidate: Candidate, parts: list[FileStats]) -> FileStats:
    """One file's stats from its slices' (in chunk order)."""
    merged = FileStats(path=candidate.display, kind=candidate.kind, sliced=True)
    merged.sha256 = next((p.sha256 for p in parts if p.sha256), "")
    merged.size = candidate.size
    merged.engine = parts[0].engine
    statuses = {p.status for p in parts}
    merged.status = "failed" if statuses == {"failed"} else "partial" if statuses - {"ok"} else "ok"
    for part in parts:
        merged.spool.extend(part.spool)
        merged.slice_spool.append(part.spool)
        merged.record_ranges.append(part.record_ranges[0] if part.record_ranges else [])
        merged.records += part.records
        merged.skipped_chunks += part.skipped_chunks
        merged.skipped_records += part.skipped_records
        merged.seconds += part.seconds
        merged.warnings.extend(part.warnings)
    if merged.records == 0 and merged.status == "ok":
        merged.warnings.append(ParseWarning(candidate.display, "no-records", "no records found"))
        merged.status = "partial"
    return merged
