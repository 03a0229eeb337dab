"""The filling of the case during a parse run: parsed files (and the slices of big logs)
queued and ingested in bulk, each time in a short session of the store; the recovery
pass over damaged logs; what is stored, and the run recorded, when the run stops.

This module owns ``IngestBatch``; the run that drives it is ``irkit.ingest.parse``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from irkit.errors import IrkitError, is_interrupt
from irkit.ingest.collected import check_collected
from irkit.ingest.discovery import Candidate, Copies
from irkit.ingest.options import ParseOptions
from irkit.ingest.pool import run_recovery, run_workers
from irkit.ingest.slices import merge_slices
from irkit.ingest.summary import ParseSummary, Progress
from irkit.ingest.tasks import Done
from irkit.ingest.worker import ranges_text
from irkit.model import FileStats, ParseWarning
from irkit.sources.evtx import DAMAGE
from irkit.store.case import Case
from irkit.store.spool import GROUPED, drop_evidence

if TYPE_CHECKING:
    from irkit.collect.evidence import Collection


def _peak_rss() -> int:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024
    return max(own, children) * scale


class IngestBatch:
    """Parsed files waiting to enter the store; ingested together, in bulk, at least
    every ``options.flush_seconds`` (each time in a short session of the store)."""

    max_rows: Final = 500_000
    max_files: Final = 256

    def __init__(
        self,
        case: Case,
        summary: ParseSummary,
        run_id: str,
        ingested: set[str],
        options: ParseOptions,
        progress: Progress,
    ) -> None:
        self.case = case
        self.summary = summary
        self.run_id = run_id
        self.ingested = ingested
        self.options = options
        self.progress = progress
        self.pending: list[FileStats] = []
        self.rows = 0
        self.flushed = time.monotonic()
        self.slices: dict[str, list[FileStats | None]] = {}
        #: Shared parts (``GROUPED``) → the files whose rows must leave them.
        self.dropped: dict[str, set[str]] = {}
        #: Damaged logs of this run read with --recover: sha256 → records recovered.
        self.recovered: dict[str, int] = {}

    def parse(
        self,
        candidates: list[Candidate],
        copies: Copies,
        spool: str,
        already: frozenset[str],
        damaged: set[str],
    ) -> list[tuple[Candidate, str, str]]:
        """Parse every candidate into the case; returns the recovery passes still to run
        (candidate, sha256, the record ids read: ``""`` when the case must say)."""
        progress = self.progress
        repairs: dict[str, tuple[Candidate, str]] = {}
        copied: list[tuple[FileStats, bool]] = []
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
                copied.append((stats, candidate.explicit))
                progress.file_done(stats)
        unrecognised: dict[str, str] = {}
        unique = [c for c in candidates if c.display not in copies.copy_of]
        results = run_workers(unique, spool, already, copies.sha256, self.options, progress)
        with contextlib.closing(results):  # an error here stops the workers at once
            for done in results:
                stats = done.stats
                if done.of is None:
                    # A group's files share parts: all of them enter the same transaction.
                    members = done.members or (stats,)
                    files = done.task.group or (done.task.candidate,)
                    counted = 0
                    for member, candidate in zip(members, files, strict=True):
                        if member.status == "unrecognised":
                            unrecognised[member.path] = member.unrecognised
                        counted += self.add(member, explicit=candidate.explicit)
                        progress.file_done(member)
                        if member.status == "already" and member.sha256 in damaged:
                            repairs.setdefault(member.sha256, (candidate, ""))
                    progress.records(counted - done.reported)
                    self.flush_if_due()
                    continue
                progress.records(stats.records - done.reported)
                progress.advance(done.task.nbytes)
                whole, counted = self.add_slice(done)
                if whole is None:
                    continue
                self.flush_if_due()
                progress.records(counted - whole.records)
                progress.file_done(whole)
                if whole.status == "already" and whole.sha256 in damaged:
                    repairs.setdefault(whole.sha256, (done.task.candidate, ""))
                elif counted and self.options.recover and _damaged(whole):
                    ranges = [r for part in whole.record_ranges for r in part]
                    repairs[whole.sha256] = (done.task.candidate, ranges_text(_merged(ranges)))
        for stats, explicit in copied:  # a copy of a file no parser took is not one either
            if stats.copy_of in unrecognised:
                stats.status, stats.unrecognised = "unrecognised", unrecognised[stats.copy_of]
            self.add(stats, explicit=explicit)
        # The last files stay pending: they enter the case in the session that records
        # the run (``flush(in_session=True)``), or before the recovery pass.
        return [(c, sha, ranges) for sha, (c, ranges) in sorted(repairs.items())]

    def recover(self, repairs: list[tuple[Candidate, str, str]], spool: str) -> None:
        """Add to damaged logs in the case the records only python-evtx reads."""
        if not repairs:
            return
        self.flush()  # the logs of this run first: their record ids are the case's
        self.progress.stage(f"recovering {len(repairs):,} damaged logs with python-evtx")
        with self.case.session():  # the record ids the case holds for each log
            repairs = [
                (c, sha, ranges or ranges_text(self.case.record_ids(sha)))
                for c, sha, ranges in repairs
            ]
        summary = self.summary
        results = run_recovery(repairs, spool, self.options, self.progress)
        with contextlib.closing(results):
            for done in results:
                stats = done.stats
                summary.warnings.extend(stats.warnings)
                if stats.status == "failed":
                    self.progress.records(-done.reported)
                    continue
                with self.case.session():
                    added = self.case.add_recovered(stats, self.run_id)
                _unlink(stats.spool)
                self.progress.records(added - done.reported)
                summary.files_recovered += 1
                summary.records += added
                summary.events_added += added

    def add(self, stats: FileStats, *, explicit: bool = False) -> int:
        """Count one finished file and queue its spool for the store; returns the
        records it counts for (0 for a copy, a file already in the case, a file no parser
        took). A file no parser took is not evidence: it is listed as not recognised, or
        refused with a warning when named on the command line (``explicit``)."""
        summary = self.summary
        if stats.status == "unrecognised":
            _unlink(stats.spool)
            summary.files_found -= 1
            summary.warnings.extend(stats.warnings)
            if explicit:
                summary.files_refused += 1
                summary.warnings.append(
                    ParseWarning(
                        stats.path,
                        "unrecognised",
                        f"not a recognised artifact ({stats.unrecognised})",
                    )
                )
            else:
                summary.unrecognised += 1
                summary.not_recognised.append((stats.path, stats.unrecognised))
            return 0
        summary.files.append(stats)
        summary.warnings.extend(stats.warnings)
        if stats.status == "copy":
            summary.files_copies += 1
            return 0
        if stats.status == "already" or (stats.sha256 and stats.sha256 in self.ingested):
            summary.files_already += 1
            for part in stats.spool:
                if part.endswith(GROUPED):  # shared: only this file's rows leave it
                    self.dropped.setdefault(part, set()).add(stats.path)
                else:
                    Path(part).unlink(missing_ok=True)
            stats.spool = []
            stats.status = "already"
            return 0
        if stats.status == "failed":
            summary.files_failed += 1
            if not stats.sha256:
                return 0
        else:
            summary.files_parsed += 1
        summary.bytes += stats.size
        summary.records += stats.records
        for family, count in (stats.families or {stats.kind: stats.records}).items():
            if count:
                summary.families[family] = summary.families.get(family, 0) + count
        summary.skipped_chunks += stats.skipped_chunks
        summary.skipped_records += stats.skipped_records
        self.ingested.add(stats.sha256)
        if self.options.recover and not stats.sliced and _damaged(stats):
            self.recovered[stats.sha256] = _recovered_count(stats)
            summary.files_recovered += 1
        self.pending.append(stats)
        self.rows += stats.records
        return stats.records

    def flush_if_due(self) -> None:
        """Ingest what is pending if enough of it waits, or long enough (called between
        tasks: the files of a group share parts, so they enter the case together)."""
        if (
            self.rows >= self.max_rows
            or len(self.pending) >= self.max_files
            or time.monotonic() - self.flushed >= self.options.flush_seconds
        ):
            self.flush()

    def add_slice(self, done: Done) -> tuple[FileStats | None, int]:
        """Keep one slice of a big file (its parts stay spooled on disk: memory stays
        bounded); when its last slice is in, queues the whole file, whose parts the
        store then takes in one transaction, and returns its stats and the records it
        counts for."""
        assert done.of is not None
        parts = self.slices.setdefault(done.of.display, [None] * done.task.total)
        parts[done.task.index] = done.stats
        if any(part is None for part in parts):
            return None, 0
        whole = merge_slices(done.of, [p for p in parts if p is not None])
        del self.slices[done.of.display]
        return whole, self.add(whole)

    def flush(self, *, in_session: bool = False) -> None:
        """Ingest everything pending, in one transaction (in a session of its own, or in
        the one open: ``in_session``). A file whose transaction failed (or was
        interrupted) is not retried: nothing of it is in the case."""
        pending, self.pending, self.rows = self.pending, [], 0
        self.flushed = time.monotonic()
        if not pending:
            return
        recovered = {
            s.sha256: self.recovered.pop(s.sha256) for s in pending if s.sha256 in self.recovered
        }
        self._drop()
        with contextlib.nullcontext() if in_session else self.case.session():
            self.summary.events_added += self.case.ingest(pending, self.run_id, recovered)
        for stats in pending:
            _unlink(stats.spool)

    def _drop(self) -> None:
        """Take out of shared parts the rows of files not stored after all (a file whose
        bytes another file of the run already brought, found only once hashed)."""
        dropped, self.dropped = self.dropped, {}
        for part, displays in sorted(dropped.items()):
            drop_evidence(part, displays)

    def stop(
        self,
        exc: BaseException,
        started: float,
        started_wall: dt.datetime,
        command: Sequence[str],
        collections: Sequence[Collection],
    ) -> None:
        """The run stops before its end: the files finished so far enter the case, and
        the run is recorded as stopped, so running it again parses only the rest."""
        summary = self.summary
        if is_interrupt(exc):
            summary.stopped = "interrupted"
        elif isinstance(exc, IrkitError):
            summary.stopped = exc.message
        else:
            summary.stopped = f"{type(exc).__name__}: {exc}"
        try:
            self.progress.stage("stopping: storing the files finished so far")
            self._drop()
            with self.case.session():
                if self.pending:
                    pending, self.pending = self.pending, []
                    self.case.ingest(pending, self.run_id, self.recovered)
                    summary.events_added += sum(s.records for s in pending)
                    for stats in pending:
                        _unlink(stats.spool)
                self.finish(started, started_wall, command, collections)
        except Exception:  # the stop's own error must not hide why the run stopped
            pass

    def finish(
        self,
        started: float,
        started_wall: dt.datetime,
        command: Sequence[str],
        collections: Sequence[Collection],
    ) -> None:
        """Record the run in the open store: collections, paths, warnings, the summary."""
        summary, case, run_id = self.summary, self.case, self.run_id
        summary.seconds = time.perf_counter() - started
        # Workers finish in any order; the report does not.
        summary.warnings.sort(key=lambda w: w.path)
        summary.files.sort(key=lambda f: f.path)
        summary.not_recognised.sort()
        summary.peak_rss_bytes = _peak_rss()
        if not summary.stopped:
            check_collected(collections, summary)
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


def _damaged(stats: FileStats) -> bool:
    """An EVTX log the fast engine read with damage: records may be past it."""
    return (
        stats.kind == "evtx"
        and stats.engine == "evtx"
        and any(w.kind in DAMAGE for w in stats.warnings)
    )


def _recovered_count(stats: FileStats) -> int:
    """The records ``--recover`` added to a log, from its ``recovered`` warning."""
    for warning in stats.warnings:
        if warning.kind == "recovered" and warning.message.split(" ", 1)[0].isdigit():
            return int(warning.message.split(" ", 1)[0])
    return 0


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(first, last) ranges sorted and joined where they meet or overlap."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _unlink(parts: list[str]) -> None:
    for part in parts:
        Path(part).unlink(missing_ok=True)
