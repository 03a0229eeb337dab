"""The worker side of a parse run: one file (or one slice of a big log, or a group of
small logs: ``parse_group``) hashed and parsed into spool parts, and the worker processes
that do it.

Workers fork from a server that has imported ``WORKER_PRELOAD`` once (spawn on macOS);
each tells the parent through a queue which task it starts, and its progress every
``PROGRESS_EVERY`` records. The server starts with Python's safe path (no current folder
on ``sys.path``), so it imports irkit from where this process did, whatever folder the
run starts in. A worker that dies is a ``worker-died`` warning for its file (``died``;
``irkit.ingest.runner`` decides which file killed it), never the end of the run.

Ctrl-C is the parent's: a terminal sends SIGINT to the whole process group, and the
parent stops the workers itself (stores what they finished, then terminates them). The
fork server and the workers ignore SIGINT from their first instruction (``ensure_server``
starts the server with it ignored, which ``exec`` and every fork keep; ``init_worker``
says it again), so none of them prints a ``KeyboardInterrupt`` traceback or dies
half-way through its imports.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from irkit.errors import IrkitError
from irkit.ingest.discovery import IMAGE, Candidate, sha256_file
from irkit.ingest.images import copy_inner, list_image
from irkit.ingest.options import ParseOptions
from irkit.ingest.slices import plan_slices
from irkit.model import FileStats, ParseWarning
from irkit.sources import by_name
from irkit.sources.base import ParseContext
from irkit.sources.evtx.chunks import FILE_HEADER_SIZE
from irkit.store.spool import GroupWriter, SpoolWriter, park

#: Imported once by the fork server, so each worker starts with the parsers loaded: the
#: module the workers run (``parse_file``, ``init_worker``) and the parsers' own.
WORKER_PRELOAD: Final = ("irkit.ingest.worker", "irkit.sources.evtx", "evtx", "orjson", "pyarrow")
#: Imported by the fork server too when a run has files for plaso: it sets plaso up (~3 s)
#: once, not in every worker. Decided by the first run of the process (one fork server).
PLASO_PRELOAD: Final = "irkit.sources.plaso.preload"
_PRELOAD_PLASO = False
PROGRESS_EVERY: Final = 5_000


# Per worker process: where progress goes.
_PROGRESS_QUEUE: Any = None


def init_worker(queue: Any) -> None:
    """Run by each worker process as it starts: where its progress goes; Ctrl-C is the
    parent's to handle (it terminates the workers), so SIGINT is ignored here."""
    global _PROGRESS_QUEUE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # ignored: nothing pends
    _PROGRESS_QUEUE = queue


class _Progress:
    """Reports a writer's rows to ``_report`` every ``PROGRESS_EVERY`` rows (mixed in
    before the writer class)."""

    _report: Callable[[int], None]
    _unreported: int

    def _count(self, count: int) -> None:
        self._unreported += count
        if self._unreported >= PROGRESS_EVERY:
            self._report(self._unreported)
            self._unreported = 0

    def add(self, row: Any) -> None:
        super().add(row)  # type: ignore[misc]
        self._count(1)

    def grown(self, count: int) -> None:
        super().grown(count)  # type: ignore[misc]
        self._count(count)


class _CountingSink(_Progress, SpoolWriter):
    """A spool writer that also reports progress every few thousand records."""

    def __init__(
        self,
        directory: Path,
        stem: str,
        batch: int,
        report: Callable[[int], None],
        constants: tuple[str, str, str],
    ):
        SpoolWriter.__init__(self, directory, stem, batch, constants)
        self._report = report
        self._unreported = 0

    def finish(self) -> None:
        # The remainder (< PROGRESS_EVERY) is counted by the parent from the file's stats:
        # one message less per file, which matters across thousands of small logs.
        self.close()


class _CountingGroup(_Progress, GroupWriter):
    """A group writer that also reports progress every few thousand records."""

    def __init__(self, directory: Path, stem: str, batch: int, report: Callable[[int], None]):
        GroupWriter.__init__(self, directory, stem, batch)
        self._report = report
        self._unreported = 0


def _reporter(task: int, report: Callable[[int], None] | None) -> Callable[[int], None]:
    """Where progress goes: ``report``, else (in a worker process) the progress queue,
    told first that ``task`` starts (if this process dies now, this task killed it)."""
    if report is not None:
        return report
    queue = _PROGRESS_QUEUE
    if queue is None:
        return _no_report
    queue.put((task, 0))
    return lambda n: queue.put((task, n))


def parse_group(
    candidates: Sequence[Candidate],
    spool_dir: str,
    already: frozenset[str],
    options: ParseOptions,
    shas: Sequence[str] = (),
    report: Callable[[int], None] | None = None,
    *,
    task: int = -1,
) -> list[FileStats]:
    """Hash and parse a group of small EVTX logs into shared spool parts (one, unless
    they hold more than a batch of rows): the per-file cost of many small logs (a task,
    an Arrow table and a part each) paid once. Returns each file's stats, in order; a
    file's ``spool`` names the part that holds its rows. Never raises for bad evidence."""
    report = _reporter(task, report)
    stem = f"group-{uuid.uuid4().hex[:16]}"
    sink = _CountingGroup(Path(spool_dir), stem, options.batch, report)
    out: list[tuple[FileStats, int]] = []
    for number, candidate in enumerate(candidates):
        started = time.perf_counter()
        stats = FileStats(path=candidate.display, kind=candidate.kind)
        sha256 = shas[number] if number < len(shas) else ""
        try:
            where = _parse(
                candidate, stats, spool_dir, already, options, report, False, None, sha256, "", sink
            )
        except (IrkitError, OSError) as exc:
            sink.abandon()
            where, stats.status, stats.records = -1, "failed", 0
            stats.warnings.append(ParseWarning(candidate.display, "unreadable", str(exc)))
        stats.seconds = time.perf_counter() - started
        out.append((stats, where))
    sink.close()
    for stats, where in out:
        if where >= 0 and stats.records:
            stats.spool = [sink.parts[where]]
    return [stats for stats, _ in out]


def parse_file(
    candidate: Candidate,
    spool_dir: str,
    already: frozenset[str],
    options: ParseOptions,
    report: Callable[[int], None] | None = None,
    span: tuple[int, int] | None = None,
    sha256: str = "",
    *,
    task: int = -1,
    recover: str = "",
) -> FileStats:
    """Hash and parse one file (or one slice of chunks) into spool parts.

    Never raises for bad evidence: problems are warnings in the returned stats. A slice
    (``span``, first and last chunk) comes with the file's ``sha256``, hashed once by the
    parent. ``task`` names the work in the progress messages of a worker process.
    ``recover``: the record ids of a damaged EVTX log already in the case (``ranges``
    text): only the records python-evtx adds to them are parsed.
    """
    started = time.perf_counter()
    stats = FileStats(path=candidate.display, kind=candidate.kind)
    parked = report is None and _PROGRESS_QUEUE is not None  # in a worker process
    report = _reporter(task, report)
    scratch: Path | None = None
    try:
        if candidate.inner:  # a file inside an image: parsed from a copy in the spool
            candidate, scratch = copy_inner(candidate, Path(spool_dir), options.inner_limit)
        _parse(candidate, stats, spool_dir, already, options, report, parked, span, sha256, recover)
    except (IrkitError, OSError) as exc:  # copying it out of the image failed
        stats.status = "failed"
        stats.warnings.append(ParseWarning(candidate.display, "image-read", str(exc)))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    stats.seconds = time.perf_counter() - started
    return stats


def _parse(
    candidate: Candidate,
    stats: FileStats,
    spool_dir: str,
    already: frozenset[str],
    options: ParseOptions,
    report: Callable[[int], None],
    parked: bool,
    span: tuple[int, int] | None,
    sha256: str,
    recover: str,
    group: GroupWriter | None = None,
) -> int:
    """``parse_file``'s work on a file on disk: hash, parse, spool; stats filled in.

    With ``group``, the rows go there (after the rows of the group's files before it);
    returns the index of the group's part that will hold them (-1: none, or no group)."""
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
        return -1
    except OSError as exc:
        stats.status = "failed"
        stats.warnings.append(
            ParseWarning(candidate.display, "unreadable", exc.strerror or str(exc))
        )
        return -1
    if stats.sha256 in already and not recover:
        stats.status = "already"
        return -1
    stem = f"{stats.sha256[:16]}-{uuid.uuid4().hex[:12]}"
    source = "file" if candidate.kind == IMAGE else candidate.kind  # an image's listing
    constants = (source, candidate.display, stats.sha256)
    sink: SpoolWriter
    single: _CountingSink | None = None
    if group is not None:
        group.begin(constants)
        sink = group
    else:
        sink = single = _CountingSink(Path(spool_dir), stem, options.batch, report, constants)
        single.to_disk = span is not None  # a slice's rows wait for its siblings: not in memory
    opts = {"evtx_engine": options.evtx_engine, "recover": "1" if options.recover else ""}
    opts.update(options.plaso)
    if span is not None:
        opts["chunks"] = f"{span[0]}:{span[1]}"
    ctx = ParseContext(
        candidate.path,
        candidate.display,
        stats.sha256,
        stats,
        opts,
        collected_at=candidate.collected_at,
        host=candidate.host,
    )
    try:
        if recover:
            from irkit.sources.evtx.source import EvtxSource

            stats.engine = "python-evtx"
            EvtxSource().recover(ctx, sink, set(ids_of(recover)))
        elif candidate.kind == IMAGE:
            list_image(ctx, sink, options.vss)
        else:
            by_name(candidate.kind).parse(ctx, sink)
        if single is not None:
            single.finish()
    except Exception as exc:  # one bad file must never end the run
        if group is not None:
            group.abandon()
        else:
            sink.discard()
        stats.status = "failed"
        stats.records = 0
        kind = "vanished" if isinstance(exc, FileNotFoundError) else "parser-error"
        stats.warnings.append(ParseWarning(candidate.display, kind, f"{type(exc).__name__}: {exc}"))
        return -1
    where = -1
    if group is not None:
        where = group.end()
    else:
        stats.spool = sink.parts
        stats.tables = sink.tables
        if stats.tables and parked:  # a few bytes back to the parent, not the rows
            stats.spool = [park(stats.tables, Path(spool_dir), stem)]
            stats.tables = []
    if (
        stats.records == 0
        and stats.status == "ok"
        and candidate.kind == "evtx"  # a text log may hold only timeless lines
        and candidate.size > FILE_HEADER_SIZE
        and not span
        and not recover
    ):
        stats.warnings.append(ParseWarning(candidate.display, "no-records", "no records found"))
        stats.status = "partial"
    return where


def _no_report(count: int) -> None:
    """Progress nobody watches."""


def ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    """Record-id ranges as compact text for a worker: ``1:200,205:300``."""
    return ",".join(f"{lo}:{hi}" for lo, hi in ranges)


def ids_of(text: str) -> Iterator[int]:
    """Every id of :func:`ranges_text`'s ranges."""
    for item in text.split(","):
        if item:
            lo, _, hi = item.partition(":")
            yield from range(int(lo), int(hi) + 1)


def died(candidate: Candidate, exc: BaseException) -> FileStats:
    """The stats of a file (or slice) whose worker died: failed, with a warning."""
    stats = FileStats(path=candidate.display, kind=candidate.kind)
    stats.status = "failed"
    stats.warnings.append(
        ParseWarning(candidate.display, "worker-died", f"{type(exc).__name__}: {exc}")
    )
    return stats


@contextlib.contextmanager
def safe_path() -> Iterator[None]:
    """Python processes started meanwhile (the fork server, spawned workers) put no
    current folder on ``sys.path`` (``PYTHONSAFEPATH``): a folder named ``irkit`` (a
    clone of the repository, say) where the run starts must not become the ``irkit``
    they import. They import it as this process did (its ``sys.path`` never held the
    current folder when started as ``irkit``)."""
    before = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONSAFEPATH", None)
        else:
            os.environ["PYTHONSAFEPATH"] = before


def worker_context() -> Any:
    """The multiprocessing context of the workers: they fork from a server that has
    imported the parsers once (spawn on macOS), and the main script too when there is
    one, so a worker does not run it again as it starts."""
    context = mp.get_context("spawn" if sys.platform == "darwin" else "forkserver")
    if sys.platform != "darwin":
        preload = list(WORKER_PRELOAD)
        if _PRELOAD_PLASO:
            preload.append(PLASO_PRELOAD)
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        if isinstance(main, str) and Path(main).is_file():
            preload.insert(0, "__main__")
        context.set_forkserver_preload(preload)
    return context


@contextlib.contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Processes started meanwhile ignore SIGINT from their first instruction: a signal
    ignored stays ignored across ``exec``, Python then installs no handler of its own for
    it, and the fork server's children keep it. Meanwhile a Ctrl-C to this process is
    blocked, not lost: it is delivered, as ``KeyboardInterrupt``, on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change a handler; Python's pool spawns there
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def ensure_server() -> None:
    """Start the fork server (with its resource tracker) under :func:`safe_path`, with
    SIGINT ignored (:func:`children_ignore_sigint`): a Ctrl-C while it imports the
    parsers must not print its traceback, nor kill it under the parent's pool."""
    if sys.platform == "darwin":
        return
    from multiprocessing import forkserver, resource_tracker

    worker_context()
    with safe_path():
        # The tracker first: it starts with SIGINT blocked and unblocks it after, which
        # inside children_ignore_sigint would let a Ctrl-C be ignored, and lost.
        resource_tracker.ensure_running()
        with children_ignore_sigint():
            forkserver.ensure_running()


def start_worker_server(candidates: Sequence[Candidate], options: ParseOptions) -> None:
    """Start the fork server now, so its imports overlap opening the case and hashing;
    with plaso set up in it when some file is plaso's."""
    global _PRELOAD_PLASO
    _PRELOAD_PLASO = _PRELOAD_PLASO or any(c.kind == "plaso" for c in candidates)
    if options.worker_count(len(candidates) or 1) < 2:
        return
    if len(candidates) < 2 and not any(plan_slices(c, options) for c in candidates):
        return
    ensure_server()
