"""`irkit parse`: find evidence, parse files in parallel worker processes, fill the case.

Each file is hashed, then parsed by the source that recognises its content, in a worker
process that spools Parquet batches (memory stays bounded on a log of any size). The
parent alone writes the store. One bad file is a counted, named warning; the run goes on.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import datetime as dt
import multiprocessing as mp
import os
import resource
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from irkit.case import Case
from irkit.discovery import Candidate, discover, find_copies, sha256_file
from irkit.errors import EvidenceError, ExitCode, UsageError
from irkit.model import FileStats, ParseWarning
from irkit.sources import by_name
from irkit.sources.base import ParseContext
from irkit.sources.evtx import ENGINES
from irkit.sources.evtx_chunks import CHUNK_SIZE, FILE_HEADER_SIZE
from irkit.spool import DEFAULT_BATCH, SpoolWriter

if TYPE_CHECKING:
    from irkit.collect.evidence import Collection

WORKER_PRELOAD: Final = ("irkit.ingest", "irkit.sources.evtx", "evtx", "orjson", "pyarrow")
#: EVTX files at least this big are parsed as slices of SLICE_CHUNKS chunks (4 MiB) by all
#: workers.
SLICE_THRESHOLD: Final = 48 << 20
SLICE_CHUNKS: Final = 64
PROGRESS_EVERY: Final = 5_000


@dataclasses.dataclass(slots=True)
class ParseOptions:
    """How to parse: engine choice, parallelism, batch size."""

    evtx_engine: str = "evtx"
    recover: bool = False
    workers: int = 0
    batch: int = DEFAULT_BATCH
    slice_bytes: int = SLICE_THRESHOLD
    slice_chunks: int = SLICE_CHUNKS

    def worker_count(self, files: int) -> int:
        """Workers to start: as asked, else one per core, never more than files."""
        wanted = self.workers or os.cpu_count() or 1
        return max(1, min(wanted, files))


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
    unrecognised: int = 0
    bytes: int = 0
    records: int = 0
    events_added: int = 0
    skipped_chunks: int = 0
    skipped_records: int = 0
    seconds: float = 0.0
    peak_rss_bytes: int = 0
    warnings: list[ParseWarning] = dataclasses.field(default_factory=list)
    files: list[FileStats] = dataclasses.field(default_factory=list)

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
            "unrecognised_files": self.unrecognised,
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


# Per worker process: where progress goes.
_PROGRESS_QUEUE: Any = None


def _init_worker(queue: Any) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue


class _CountingSink(SpoolWriter):
    """A spool writer that also reports progress every few thousand records."""

    def __init__(
        self,
        directory: Path,
        stem: str,
        batch: int,
        report: Callable[[int], None],
        constants: tuple[str, str, str],
    ):
        super().__init__(directory, stem, batch, constants)
        self._report = report
        self._unreported = 0

    def _count(self, count: int) -> None:
        self._unreported += count
        if self._unreported >= PROGRESS_EVERY:
            self._report(self._unreported)
            self._unreported = 0

    def add(self, row: Any) -> None:
        super().add(row)
        self._count(1)

    def grown(self, count: int) -> None:
        super().grown(count)
        self._count(count)

    def finish(self) -> None:
        # The remainder (< PROGRESS_EVERY) is counted by the parent from the file's stats:
        # one message less per file, which matters across thousands of small logs.
        self.close()


def parse_file(
    candidate: Candidate,
    spool_dir: str,
    already: frozenset[str],
    options: ParseOptions,
    report: Callable[[int], None] | None = None,
    span: tuple[int, int] | None = None,
    sha256: str = "",
) -> FileStats:
    """Hash and parse one file (or one slice of chunks) into spool parts.

    Never raises for bad evidence: problems are warnings in the returned stats. A slice
    (``span``, first and last chunk) comes with the file's ``sha256``, hashed once by the
    parent.
    """
    started = time.perf_counter()
    stats = FileStats(path=candidate.display, kind=candidate.kind)
    if report is None:
        queue = _PROGRESS_QUEUE
        report = (lambda n: queue.put(n)) if queue is not None else (lambda n: None)
    try:
        if sha256:
            stats.sha256, stats.size = sha256, candidate.size
        else:
            stats.sha256, stats.size = sha256_file(candidate.path)
    except FileNotFoundError:
        stats.status = "failed"
        stats.warnings.append(
            ParseWarning(candidate.display, "vanished", "file disappeared mid-run")
        )
        return stats
    except OSError as exc:
        stats.status = "failed"
        stats.warnings.append(
            ParseWarning(candidate.display, "unreadable", exc.strerror or str(exc))
        )
        return stats
    if stats.sha256 in already:
        stats.status = "already"
        return stats
    stem = f"{stats.sha256[:16]}-{uuid.uuid4().hex[:12]}"
    constants = (candidate.kind, candidate.display, stats.sha256)
    sink = _CountingSink(Path(spool_dir), stem, options.batch, report, constants)
    sink.to_disk = span is not None  # a slice's rows wait for its siblings: not in memory
    opts = {"evtx_engine": options.evtx_engine, "recover": "1" if options.recover else ""}
    if span is not None:
        opts["chunks"] = f"{span[0]}:{span[1]}"
    ctx = ParseContext(
        candidate.path,
        candidate.display,
        stats.sha256,
        stats,
        opts,
        collected_at=candidate.collected_at,
    )
    try:
        by_name(candidate.kind).parse(ctx, sink)
        sink.finish()
    except Exception as exc:  # one bad file must never end the run
        sink.discard()
        stats.status = "failed"
        stats.records = 0
        kind = "vanished" if isinstance(exc, FileNotFoundError) else "parser-error"
        stats.warnings.append(ParseWarning(candidate.display, kind, f"{type(exc).__name__}: {exc}"))
    else:
        stats.spool = sink.parts
        stats.tables = sink.tables
        if (
            stats.records == 0
            and stats.status == "ok"
            and candidate.kind == "evtx"  # a text log may hold only timeless lines
            and candidate.size > FILE_HEADER_SIZE
            and not span
        ):
            stats.warnings.append(ParseWarning(candidate.display, "no-records", "no records found"))
            stats.status = "partial"
    stats.seconds = time.perf_counter() - started
    return stats


def _peak_rss() -> int:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024
    return max(own, children) * scale


def parse_evidence(
    paths: Sequence[Path],
    case_dir: Path,
    options: ParseOptions | None = None,
    progress: Progress | None = None,
    command: Sequence[str] = (),
    *,
    allow_empty: bool = False,
    collections: Sequence[Collection] = (),
) -> ParseSummary:
    """Parse every recognised file under ``paths`` into the case at ``case_dir``.

    Finding nothing to parse is an error unless ``allow_empty`` (triage hashes the files).
    A path that is an irkit collection (``collections``, opened by
    ``irkit.collect.evidence.open_evidence``) is read through its manifest; the case
    records its id and the manifest's digest, and a file whose sha256 differs from the
    manifest's is a warning.
    """
    options = options or ParseOptions()
    progress = progress or Progress()
    if options.evtx_engine not in ENGINES:
        raise UsageError(
            f"unknown EVTX engine {options.evtx_engine!r}", hint="use evtx or python-evtx"
        )
    started_wall = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    run_id = uuid.uuid4().hex
    listed = {c.root: {str(f.path): f.collected_utc for f in c.files} for c in collections}
    candidates, warnings, unrecognised = discover(paths, listed)
    warnings += _collection_warnings(collections)
    summary = ParseSummary(run_id=run_id, case=str(case_dir), unrecognised=unrecognised)
    summary.files_found = len(candidates)
    summary.warnings.extend(warnings)
    if not candidates and not warnings and not allow_empty:
        raise EvidenceError(
            "no evidence irkit can parse was found under " + ", ".join(map(str, paths)),
            hint="irkit recognises EVTX, osquery logs and bodyfiles by their content; "
            "`irkit hash` or `irkit triage` take any file",
        )
    copies = find_copies(candidates)
    _start_worker_server(candidates, options)
    with Case(case_dir, create=True) as case:
        _remove_dead_spools(case.spool_dir)
        already = frozenset(case.parsed_evidence())
        spool = case.spool_dir / run_id
        progress.start(len(candidates), sum(c.size for c in candidates))
        batch = _IngestBatch(case, summary, run_id, set(already))
        for candidate in candidates:
            if (kept := copies.copy_of.get(candidate.display)) is not None:
                stats = FileStats(
                    candidate.display,
                    copies.sha256[candidate.display],
                    candidate.size,
                    candidate.kind,
                    status="copy",
                    copy_of=kept,
                )
                batch.add(stats)
                progress.file_done(stats)
        unique = [c for c in candidates if c.display not in copies.copy_of]
        try:
            for done in _run(unique, str(spool), already, copies.sha256, options, progress):
                progress.records(done.stats.records % PROGRESS_EVERY)
                if done.of is None:
                    batch.add(done.stats)
                    progress.file_done(done.stats)
                else:
                    progress.advance(done.nbytes)
                    if (whole := batch.add_slice(done)) is not None:
                        progress.file_done(whole)
            batch.flush()
        finally:
            shutil.rmtree(spool, ignore_errors=True)
            if case.spool_dir.exists() and not any(case.spool_dir.iterdir()):
                case.spool_dir.rmdir()
        summary.seconds = time.perf_counter() - started
        # Workers finish in any order; the report does not.
        summary.warnings.sort(key=lambda w: w.path)
        summary.files.sort(key=lambda f: f.path)
        summary.peak_rss_bytes = _peak_rss()
        _check_collected(collections, summary)
        for collection in collections:
            case.record_collection(
                run_id,
                collection.collection_id,
                collection.manifest_sha256,
                str(collection.given),
                host=collection.host,
                started=collection.started_utc,
                finished=collection.finished_utc,
                files=len(collection.files),
                manifest_verified=collection.manifest_verified,
            )
        case.record_paths((f.sha256, f.path) for f in summary.files if f.sha256)
        case.record_warnings(run_id, summary.warnings)
        case.record_run(run_id, command, started_wall, summary.as_dict())
    return summary


def _collection_warnings(collections: Sequence[Collection]) -> list[ParseWarning]:
    """What a collection's manifest itself says is wrong."""
    warnings = []
    for collection in collections:
        if not collection.manifest_verified:
            warnings.append(
                ParseWarning(
                    str(collection.given),
                    "manifest-altered",
                    "manifest.json does not match manifest.json.sha256: run irkit verify",
                )
            )
        for stored in collection.outside:
            warnings.append(
                ParseWarning(
                    str(collection.given),
                    "manifest-outside",
                    f"the manifest names {stored!r}, outside the collection: not read",
                )
            )
    return warnings


def _check_collected(collections: Sequence[Collection], summary: ParseSummary) -> None:
    """A parsed file of a collection whose sha256 is not the manifest's is a warning."""
    if not collections:
        return
    expected: dict[str, str] = {}
    for collection in collections:
        expected |= {str(f.path): f.sha256 for f in collection.files}
    for stats in summary.files:
        want = expected.get(stats.path)
        if want and stats.sha256 and stats.sha256 != want:
            summary.warnings.append(
                ParseWarning(
                    stats.path,
                    "collection-mismatch",
                    f"sha256 {stats.sha256} is not the manifest's {want}: altered since collection",
                )
            )


class _IngestBatch:
    """Parsed files waiting to enter the store; ingested together, in bulk."""

    max_rows: Final = 500_000
    max_files: Final = 256

    def __init__(self, case: Case, summary: ParseSummary, run_id: str, ingested: set[str]):
        self.case = case
        self.summary = summary
        self.run_id = run_id
        self.ingested = ingested
        self.pending: list[FileStats] = []
        self.rows = 0
        self.slices: dict[str, list[FileStats | None]] = {}

    def add(self, stats: FileStats) -> None:
        """Count one finished file and queue its spool for the store."""
        summary = self.summary
        summary.files.append(stats)
        summary.warnings.extend(stats.warnings)
        if stats.status == "copy":
            summary.files_copies += 1
            return
        if stats.status == "already" or (stats.sha256 and stats.sha256 in self.ingested):
            summary.files_already += 1
            _unlink(stats.spool)
            stats.status = "already"
            return
        if stats.status == "failed":
            summary.files_failed += 1
            if not stats.sha256:
                return
        else:
            summary.files_parsed += 1
        summary.bytes += stats.size
        summary.records += stats.records
        summary.skipped_chunks += stats.skipped_chunks
        summary.skipped_records += stats.skipped_records
        self.ingested.add(stats.sha256)
        self.pending.append(stats)
        self.rows += stats.records
        if self.rows >= self.max_rows or len(self.pending) >= self.max_files:
            self.flush()

    def add_slice(self, done: _Done) -> FileStats | None:
        """Keep one slice of a big file (its parts stay spooled on disk: memory stays
        bounded); returns the whole file's stats when its last slice is in, and queues
        the whole file, whose parts the store then takes in one transaction."""
        assert done.of is not None
        parts = self.slices.setdefault(done.of.display, [None] * done.total)
        parts[done.index] = done.stats
        if any(part is None for part in parts):
            return None
        whole = merge_slices(done.of, [p for p in parts if p is not None])
        del self.slices[done.of.display]
        self.add(whole)
        return whole

    def flush(self) -> None:
        """Ingest everything pending."""
        if self.pending:
            self.summary.events_added += self.case.ingest(self.pending, self.run_id)
            for stats in self.pending:
                _unlink(stats.spool)
        self.pending = []
        self.rows = 0


def _remove_dead_spools(spool_dir: Path) -> None:
    """Remove what killed runs left in the spool (their parts were never registered).

    Holding the store open for writing means no other run is live on this case."""
    if spool_dir.is_dir():
        for entry in spool_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _unlink(parts: list[str]) -> None:
    for part in parts:
        Path(part).unlink(missing_ok=True)


def plan_slices(candidate: Candidate, options: ParseOptions) -> list[tuple[int, int]]:
    """Chunk ranges for a big EVTX file, so several workers share it; [] for small files."""
    from irkit.sources.evtx_chunks import chunk_count

    if (
        candidate.kind != "evtx"
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


def _died(candidate: Candidate, exc: BaseException) -> FileStats:
    stats = FileStats(path=candidate.display, kind=candidate.kind)
    stats.status = "failed"
    stats.warnings.append(
        ParseWarning(candidate.display, "worker-died", f"{type(exc).__name__}: {exc}")
    )
    return stats


@dataclasses.dataclass(frozen=True, slots=True)
class _Done:
    """A finished task: a whole file (``of`` is None) or slice ``index`` of ``total``."""

    stats: FileStats
    of: Candidate | None = None
    index: int = 0
    total: int = 1
    nbytes: int = 0


def _worker_context() -> Any:
    """The multiprocessing context of the workers: they fork from a server that has
    imported the parsers once (spawn on macOS)."""
    context = mp.get_context("spawn" if sys.platform == "darwin" else "forkserver")
    if sys.platform != "darwin":
        context.set_forkserver_preload(list(WORKER_PRELOAD))
    return context


def _start_worker_server(candidates: Sequence[Candidate], options: ParseOptions) -> None:
    """Start the fork server now, so its imports overlap opening the case and hashing."""
    if sys.platform == "darwin" or options.worker_count(len(candidates) or 1) < 2:
        return
    if len(candidates) < 2 and not any(plan_slices(c, options) for c in candidates):
        return
    from multiprocessing import forkserver

    _worker_context()
    forkserver.ensure_running()


def _run(
    candidates: list[Candidate],
    spool: str,
    already: frozenset[str],
    known: dict[str, str],
    options: ParseOptions,
    progress: Progress,
) -> Iterator[_Done]:
    """Yield each file (or slice) as it finishes; one process per core, or inline for one.

    A big EVTX file is hashed here, then parsed as slices of chunks by all workers at
    once; each slice is yielded as it is done, so the store takes it at once.
    """
    slices = {c: plan_slices(c, options) for c in candidates}
    workers = options.worker_count(sum(max(1, len(spans)) for spans in slices.values()))
    if workers == 1:
        for candidate in candidates:
            sha256 = known.get(candidate.display, "")
            yield _Done(
                parse_file(candidate, spool, already, options, progress.records, None, sha256)
            )
        return
    context = _worker_context()
    queue = context.SimpleQueue()
    pool = cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(queue,)
    )
    try:
        submitted: dict[cf.Future[FileStats], tuple[Candidate, int]] = {}
        big_seen: set[str] = set()
        # Biggest files first, so one huge log does not start last and run alone.
        for candidate in sorted(candidates, key=lambda c: -c.size):
            spans = slices[candidate]
            if not spans:
                sha256 = known.get(candidate.display, "")
                future = pool.submit(
                    parse_file, candidate, spool, already, options, None, None, sha256
                )
                submitted[future] = (candidate, -1)
                continue
            try:
                sha256 = known.get(candidate.display) or sha256_file(candidate.path)[0]
            except OSError as exc:
                stats = _died(candidate, exc)
                stats.warnings[0] = ParseWarning(candidate.display, "unreadable", str(exc))
                yield _Done(stats)
                continue
            if sha256 in already or sha256 in big_seen:
                yield _Done(
                    FileStats(
                        candidate.display, sha256, candidate.size, candidate.kind, status="already"
                    )
                )
                continue
            big_seen.add(sha256)
            for index, span in enumerate(spans):
                future = pool.submit(
                    parse_file, candidate, spool, already, options, None, span, sha256
                )
                submitted[future] = (candidate, index)
        pending = set(submitted)
        while pending:
            done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            while not queue.empty():
                progress.records(queue.get())
            for future in sorted(done, key=lambda f: submitted[f][1]):
                candidate, index = submitted[future]
                try:
                    stats = future.result()
                except Exception as exc:  # a worker died (crash, out of memory)
                    stats = _died(candidate, exc)
                if index < 0:
                    yield _Done(stats)
                else:
                    first, last = slices[candidate][index]
                    nbytes = min(candidate.size, FILE_HEADER_SIZE + last * CHUNK_SIZE) - (
                        FILE_HEADER_SIZE + first * CHUNK_SIZE
                    )
                    yield _Done(stats, candidate, index, len(slices[candidate]), max(nbytes, 0))
        while not queue.empty():
            progress.records(queue.get())
    except BaseException:
        # Ctrl-C, TERM, or the consumer gave up: drop the queued files, do not parse
        # them all before exiting.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
