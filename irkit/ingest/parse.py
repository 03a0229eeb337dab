"""`irkit parse`: find evidence, parse files in parallel worker processes, fill the case.

Each file is hashed, then parsed by the source that recognises its content, in a worker
process that spools Parquet batches (memory stays bounded on a log of any size). The
parent alone writes the store, opening it only for each transaction so that readers
(``irkit timeline`` during a long parse) see the files registered so far. One bad file
is a counted, named warning; the run goes on. A run stopped by Ctrl-C, TERM or dead
workers keeps the files it finished: running it again parses only the rest.

This module owns the run itself (``parse_evidence``); the filling of the case is in
``irkit.ingest.batch``, the collection checks in ``irkit.ingest.collected``, the options
in ``irkit.ingest.options``, the summary and progress in ``irkit.ingest.summary``, the
workers in ``irkit.ingest.worker``, the process pool in ``irkit.ingest.pool`` (run by
``irkit.ingest.runner``) and big-log slices in ``irkit.ingest.slices``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from irkit.errors import EvidenceError, UsageError
from irkit.ingest.batch import IngestBatch
from irkit.ingest.collected import collection_warnings
from irkit.ingest.discovery import discover, find_copies
from irkit.ingest.options import ParseOptions
from irkit.ingest.summary import ParseSummary, Progress
from irkit.ingest.worker import start_worker_server
from irkit.sources.evtx import DAMAGE, ENGINES
from irkit.store.case import Case

if TYPE_CHECKING:
    from irkit.collect.evidence import Collection

#: Warnings of discovery that name a file left out (not a folder, not a collection).
REFUSED: Final = frozenset({"unrecognised", "unreadable", "vanished", "broken-link"})


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

    Ctrl-C (``KeyboardInterrupt``), TERM or workers that all die stop the run: the files
    finished by then enter the case, the run is recorded as stopped, and the exception
    goes on up. With ``options.recover``, damaged logs already in the case that were
    read without it get the records only python-evtx reads.
    """
    options = options or ParseOptions()
    progress = progress or Progress()
    if options.evtx_engine not in ENGINES:
        raise UsageError(
            f"unknown EVTX engine {options.evtx_engine!r}", hint="use evtx or python-evtx"
        )
    if options.plaso:  # a bad year, zone or parser name is the command's error, once
        from irkit.sources.plaso.engine import engine
        from irkit.sources.plaso.options import PlasoOptions

        engine(PlasoOptions.from_options(options.plaso).parsers)
    started_wall = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    run_id = uuid.uuid4().hex
    _import_store_modules()
    listed = {c.root: {str(f.path): f.collected_utc for f in c.files} for c in collections}
    candidates, warnings, unrecognised = discover(
        paths, listed, vss=options.vss, hosts={c.root: c.host for c in collections}
    )
    refused = len({w.path for w in warnings if w.kind in REFUSED})
    warnings += collection_warnings(collections)
    summary = ParseSummary(run_id=run_id, case=str(case_dir), unrecognised=len(unrecognised))
    summary.not_recognised.extend(unrecognised)
    summary.files_found = len(candidates)
    summary.files_refused = refused
    summary.warnings.extend(warnings)
    if not candidates and not warnings and not allow_empty:
        raise EvidenceError(
            "no evidence irkit can parse was found under " + ", ".join(map(str, paths)),
            hint="irkit recognises EVTX, osquery logs and bodyfiles by their content; "
            "`irkit hash` or `irkit triage` take any file",
        )
    copies = find_copies(candidates)
    start_worker_server(candidates, options)
    with Case(case_dir, create=True) as case:
        _remove_dead_spools(case.spool_dir)
        already = frozenset(case.parsed_evidence())
        damaged = case.unrecovered(DAMAGE) if options.recover else set()
        case.pause()  # readers may open the case between the transactions of the run
        spool = case.spool_dir / run_id
        run = IngestBatch(case, summary, run_id, set(already), options, progress)
        progress.start(len(candidates), sum(c.size for c in candidates))
        try:
            repairs = run.parse(candidates, copies, str(spool), already, damaged)
            run.recover(repairs, str(spool))
            # The last files and the run's record: one session of the store, not two.
            progress.stage(f"storing the last {len(run.pending):,} files")
            with case.session():
                run.flush(in_session=True)
                progress.stage("recording the run")
                run.finish(started, started_wall, command, collections)
        except BaseException as exc:
            run.stop(exc, started, started_wall, command, collections)
            raise
        finally:
            shutil.rmtree(spool, ignore_errors=True)
            if case.spool_dir.exists() and not any(case.spool_dir.iterdir()):
                case.spool_dir.rmdir()
    return summary


def _import_store_modules() -> None:
    """Import DuckDB and Arrow (the store's) on a thread of their own while the evidence
    is found and hashed and the workers start: the main thread waits on files and
    processes then, and these imports (~0.2 s) were on the run's critical path, Arrow's
    at its very end. An import the main thread needs meanwhile waits for this one."""
    if "duckdb" in sys.modules and "pyarrow.parquet" in sys.modules:
        return

    def run() -> None:
        try:
            import duckdb  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except BaseException:  # the main thread's own import says why
            pass

    threading.Thread(target=run, name="irkit-imports", daemon=True).start()


def _remove_dead_spools(spool_dir: Path) -> None:
    """Remove what killed runs left in the spool (their parts were never registered).

    Holding the case's write lock means no other run is live on this case."""
    if spool_dir.is_dir():
        for entry in spool_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
