"""`irkit hash` as a run: digest list, bodyfile, file events and IOC findings into a case.

``irkit.files.walk`` and ``irkit.files.hashing`` walk and hash, ``irkit.files.events`` makes
the entries fields and events; this module decides where the results go. The case is opened
on a background thread while the files are hashed (the main thread is idle then); file
events are built as Arrow columns (``irkit.files.eventcolumns``) and written as Parquet
parts on another thread during the walk, then moved into the case in one transaction.

The roots are walked by their absolute paths (``os.path.abspath``: links not resolved), so
the case, which outlives the shell's current folder, names every file wherever it is read
from. The digest list and the bodyfile, written for the responder, keep the paths as they
were typed: ``sha256sum -c`` run from the same folder checks the list.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from irkit.errors import CaseError
from irkit.files.events import digest_line, entry_fields
from irkit.files.hashing import hash_paths
from irkit.files.options import HashOptions, HashSummary
from irkit.files.walk import FileEntry
from irkit.model import ParseWarning

if TYPE_CHECKING:
    from irkit.files.ioc import IocSet


#: File events per Parquet part, written on a thread of their own while the walk goes on
#: (two parts at most wait in memory).
SPOOL_BATCH: Final = 100_000
#: While files are being read, events come slowly: a part at least every second (of
#: this many events or more), so that little is left to write when the hashing ends.
FLUSH_SECONDS: Final = 1.0
FLUSH_EVENTS: Final = 1_000


class _CaseOpener:
    """Opens (or creates) a case on a background thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.case: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._open, name="irkit-case", daemon=True)
        self.thread.start()

    def _open(self) -> None:
        try:
            import pyarrow.parquet  # noqa: F401  (the spool needs it: import it here too)

            from irkit.store.case import Case

            self.case = Case(self.root, create=True)
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc

    def result(self, raise_error: bool = True) -> Any:
        """The open case; the opening error is raised here."""
        self.thread.join()
        if self.error is not None and raise_error:
            raise self.error
        return self.case


class _EventSpool:
    """File events as Arrow columns, written as Parquet parts of ``batch`` events on a
    thread of their own (``irkit.store.filewrite``); each file is its own evidence."""

    def __init__(self, directory: Path, stem: str, batch: int = SPOOL_BATCH) -> None:
        from irkit.files.eventcolumns import FileEventColumns

        self.batch = batch
        self.columns = FileEventColumns()
        self.directory = directory
        self.stem = stem
        self.writer: Any = None
        self.total = 0
        self.flushed = time.monotonic()

    def add(self, entry: FileEntry) -> None:
        self.total += self.columns.add(entry)
        events = self.columns.events
        if events >= self.batch or (
            events >= FLUSH_EVENTS and time.monotonic() - self.flushed >= FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if not self.columns.events:
            return
        if self.writer is None:
            from irkit.store.filewrite import PartWriter

            self.writer = PartWriter(self.directory, self.stem)
        batch, self.columns = self.columns, type(self.columns)()
        self.flushed = time.monotonic()
        self.writer.write(batch.table)  # built on the writer's thread

    def parts(self) -> list[tuple[Path, int]]:
        """Every part written, with its rows, once all are on disk."""
        if self.writer is None:
            return []
        self.writer.close()
        return list(zip(self.writer.parts, self.writer.counts, strict=True))

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.discard()


def _nested(roots: Sequence[Path]) -> bool:
    """Whether one walked root is inside another (their entries would repeat)."""
    tops = sorted(str(root).rstrip(os.sep) + os.sep for root in roots)
    return any(b.startswith(a) for a, b in itertools.pairwise(tops))


class _Typed:
    """The roots walked by their absolute paths, and each entry's path as typed."""

    def __init__(self, roots: Sequence[Path]) -> None:
        #: Absolute root → the root as typed (the first spelling, if two name one folder).
        self.roots: dict[str, str] = {}
        for root in roots:
            self.roots.setdefault(os.path.abspath(root), str(root))  # noqa: PTH100 (no links)
        self.walked = [Path(top) for top in self.roots]

    def entry(self, entry: FileEntry) -> FileEntry:
        """``entry`` named as typed: the typed root, then the path below the root."""
        given = self.roots.get(entry.root)
        if given is None or given == entry.root:
            return entry
        below = entry.path[len(entry.root) :].lstrip(os.sep)
        path = os.path.join(given, below) if below else given  # noqa: PTH118 (keeps ./)
        return dataclasses.replace(entry, path=path)


def run_hash(
    roots: Sequence[Path],
    options: HashOptions,
    *,
    case_dir: Path | None = None,
    iocs: IocSet | None = None,
    digest_out: Any = None,
    bodyfile_out: Any = None,
    progress: Callable[[int], None] | None = None,
    command: Sequence[str] = (),
) -> HashSummary:
    """Hash ``roots``; write the digest list and bodyfile to the open text handles given,
    and the file events and IOC findings into the case at ``case_dir`` when given."""
    import datetime as dt
    import uuid

    summary = HashSummary(run_id=uuid.uuid4().hex)
    if iocs is not None:
        summary.iocs_loaded = len(iocs.by_digest)
        summary.warnings += iocs.warnings
        for kind in sorted(iocs.kinds() - set(options.algorithms)):
            summary.notes.append(
                ParseWarning(
                    "--ioc",
                    "ioc-not-computed",
                    f"{iocs.count(kind)} {kind} IOCs cannot match: {kind} is not computed",
                )
            )
    strongest = options.algorithms[-1] if options.algorithms else ""
    typed = _Typed(roots)
    started = dt.datetime.now(dt.UTC)
    spool: _EventSpool | None = None
    opener: _CaseOpener | None = None
    own_list = None
    if case_dir is not None:
        if case_dir.exists() and not case_dir.is_dir():
            raise CaseError(f"{case_dir} exists and is not a directory")
        # The store (DuckDB, Arrow: a third of a second to import) opens while the
        # threads hash; the main thread is idle then.
        opener = _CaseOpener(case_dir)
        case_dir.mkdir(parents=True, exist_ok=True)
        spool = _EventSpool(case_dir / "spool", f"hash-{summary.run_id[:12]}")
        if digest_out is None and strongest:
            list_path = case_dir / f"hashes-{summary.run_id[:12]}.{strongest}"
            own_list = digest_out = list_path.open("w", encoding="utf-8", errors="surrogateescape")
    case = None
    try:

        def on_entry(entry: FileEntry) -> None:
            if digest_out is not None and strongest in entry.digests:
                digest_out.write(digest_line(typed.entry(entry), strongest))
            if bodyfile_out is not None:
                from irkit.export.bodyfile import bodyfile_line

                bodyfile_out.write(bodyfile_line(entry_fields(typed.entry(entry))))
            if spool is not None:
                spool.add(entry)
            else:
                summary.events += 4 if entry.btime else 3

        only_events = spool is not None and digest_out is None and bodyfile_out is None
        hash_paths(
            list(typed.walked),
            options,
            spool.add if only_events and spool is not None else on_entry,
            summary,
            iocs,
            progress,
        )
        if opener is not None and spool is not None:
            case = opener.result()
            spool.flush()
            summary.events = spool.total
            summary.events_added = case.add_file_parts(
                spool.parts(), f"hash-{summary.run_id[:12]}", unique=not _nested(typed.walked)
            )
            case.add_findings(summary.findings, summary.run_id)
            case.record_warnings(summary.run_id, summary.warnings)
            case.record_run(summary.run_id, list(command), started, summary.as_dict())
    finally:
        if own_list is not None:
            own_list.close()
        if case is None and opener is not None:
            case = opener.result(raise_error=False)
        if spool is not None:
            spool.discard()
        if case is not None:
            case.close()
    return summary
