"""A case directory: events in Parquet files, everything else in one DuckDB store.

``Case`` is the one class users open; it is made of parts, one module each:
``irkit.store.registry`` (evidence, event parts, the ``events`` and ``timeline`` views;
``irkit.store.slices`` keys a sliced file's repeated records apart),
``irkit.store.findings`` and ``irkit.store.runs`` (runs, warnings, collections), over the
tables of ``irkit.store.schema``. Opening a case creates its tables and removes what a
dead run left. The same Parquet files can be read unchanged by Spark, Trino or pandas.

Readers and writers share a case (``irkit.store.lock``): one writer at a time holds the
case's write lock; DuckDB lets no other process open the store file while a writer has
it open, so a parse opens it only for each transaction (``session``), and a reader
copies the small store file (the events are Parquet parts outside it) and reads the
copy: it sees what was registered when it opened, and holds the file for milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

from irkit.errors import CaseError
from irkit.store.findings import FindingsStore
from irkit.store.lock import WriteLock, tell_waiting
from irkit.store.registry import EvidenceRegistry
from irkit.store.runs import RunLog
from irkit.store.schema import DDL, SCHEMA_VERSION, STORE_NAME

if TYPE_CHECKING:
    import duckdb

#: How long opening the store waits in silence for another process to let go of it,
#: before the wait notice (if any) is called.
NOTICE_AFTER: Final = 1.0

_HOLDER: Final = re.compile(r"\(PID (\d+)\)")
#: The tables ``DDL`` creates.
TABLES: Final = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", " ".join(DDL)))


def _load_duckdb() -> None:
    """Import ``duckdb`` (the first time) with Ctrl-C held back until it is in, a
    fraction of a second: a KeyboardInterrupt inside its extension's start-up code
    becomes an ImportError, is lost, or makes CPython end the process by SIGINT (exit
    -2) whatever exit code the command then chooses. The interrupt lands right after,
    as a plain KeyboardInterrupt. Only the main thread is ever interrupted."""
    if "duckdb" in sys.modules or threading.current_thread() is not threading.main_thread():
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        import duckdb  # noqa: F401
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _connect(store: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the store; while another process holds it (a writer's transaction, a reader
    copying it), wait for it: never fail on the lock."""
    _load_duckdb()
    import duckdb

    delay, waited, told = 0.01, 0.0, False
    while True:
        try:
            return duckdb.connect(str(store), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise CaseError(f"cannot open the case store {store}: {exc}") from exc
            if not told and waited >= NOTICE_AFTER:
                found = _HOLDER.search(str(exc))
                holder = f"process {found.group(1)}" if found else "another process"
                told = tell_waiting(
                    f"waiting for {holder} to release the case store {store} (Ctrl-C to stop)"
                )
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.25)
        except duckdb.Error as exc:
            raise CaseError(
                f"cannot open the case store {store}: {exc}",
                hint="another irkit may be writing this case; wait for it to finish",
            ) from exc


def _add_tables(store: Path) -> None:
    """Every table of the schema, in one transaction (those present are kept), and the
    schema version of a new store."""
    _load_duckdb()
    import duckdb

    db = duckdb.connect(str(store))
    try:
        db.execute("BEGIN TRANSACTION")
        for statement in DDL:
            db.execute(statement)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        db.execute("COMMIT")
        db.execute("CHECKPOINT")  # everything in the file itself: no write-ahead log beside
    finally:
        db.close()


def _create_store(store: Path) -> None:
    """A new store with all its tables, made under a temporary name and renamed into
    place: a creation cut short (Ctrl-C, a kill) leaves no store rather than one without
    its tables, which readers could not read. A leftover of such a cut is replaced."""
    _load_duckdb()
    import duckdb

    temporary = store.with_name(f".{store.name}.new")
    for leftover in (temporary, temporary.with_name(f"{temporary.name}.wal")):
        leftover.unlink(missing_ok=True)
    try:
        _add_tables(temporary)
        temporary.replace(store)
    except duckdb.Error as exc:
        raise CaseError(f"cannot create the case store {store}: {exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def _has_tables(db: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store holds every table of the schema (a store whose creation an
    older irkit did not finish may hold none)."""
    found = {row[0] for row in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    return found >= TABLES


class Case(EvidenceRegistry, FindingsStore, RunLog):
    """An open case; use as a context manager so the store is always closed.

    Writable: takes the case's write lock (or uses ``lock``, held by the caller for a
    whole run). Read-only: a snapshot of the store, taken when opened.
    """

    def __init__(
        self,
        root: Path,
        *,
        create: bool = False,
        read_only: bool = False,
        lock: WriteLock | None = None,
    ) -> None:
        self.root = root
        self._own_lock: WriteLock | None = None
        self._snapshot: Path | None = None
        self.store = store = root / STORE_NAME
        if not store.exists():
            if not create or read_only:
                raise CaseError(
                    f"{root} is not an irkit case (no {STORE_NAME})",
                    hint="create one with: irkit parse EVIDENCE --case DIR",
                )
            if root.exists() and not root.is_dir():
                raise CaseError(f"{root} exists and is not a directory")
            root.mkdir(parents=True, exist_ok=True)
        if read_only:
            self.db = self._open_snapshot(store)
        else:
            if lock is None:
                self._own_lock = lock = WriteLock(root)
            created = False
            try:
                if not store.exists():  # the write lock held: no other writer makes it
                    _create_store(store)
                    created = True
                self.db = _connect(store, read_only=False)
            except BaseException:
                self._release_lock()
                raise
        self._settings()
        if not read_only:
            if not created:  # a store made just now has every table already
                for statement in DDL:
                    self.db.execute(statement)
                self.db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    [str(SCHEMA_VERSION)],
                )
            self.events_dir.mkdir(exist_ok=True)
            self._clean_incomplete()
        self._refresh_view()

    def _settings(self) -> None:
        self.db.execute("SET TimeZone = 'UTC'")
        # Bounded memory whatever the evidence size: DuckDB spills to disk past this.
        self.db.execute(f"SET memory_limit = '{os.environ.get('IRKIT_DB_MEMORY', '256MB')}'")
        self.db.execute("SET preserve_insertion_order = false")

    def _open_snapshot(self, store: Path) -> duckdb.DuckDBPyConnection:
        """Copy the store (and its write-ahead log) while holding it read-only, so no
        writer is mid-transaction, and read the copy: a writer waits milliseconds, not
        for the whole read."""
        live = _connect(store, read_only=True)
        folder = Path(tempfile.mkdtemp(prefix="irkit-case-"))
        try:
            complete = _has_tables(live)
            shutil.copyfile(store, folder / STORE_NAME)
            wal = store.with_name(f"{STORE_NAME}.wal")
            if wal.exists():
                shutil.copyfile(wal, folder / f"{STORE_NAME}.wal")
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise CaseError(
                f"cannot copy the case store {store} to read it: {exc.strerror or exc}",
                hint="irkit reads a copy of the (small) store: free space in the temporary "
                "folder or point TMPDIR elsewhere",
            ) from exc
        finally:
            live.close()
        self._snapshot = folder
        try:
            if not complete:  # an older irkit stopped while it created the store
                _add_tables(folder / STORE_NAME)
            return _connect(folder / STORE_NAME, read_only=True)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def pause(self) -> None:
        """Close the store file and keep the write lock: readers may open the case until
        :meth:`resume`. Nothing may touch ``db`` meanwhile."""
        self.db.close()

    def resume(self) -> None:
        """Open the store again after :meth:`pause` (waiting for a reader's copy), for
        the run's own statements: the ``events`` and ``timeline`` views are not made
        (over thousands of parts they cost more than a batch's transaction)."""
        self.db = _connect(self.store, read_only=False)
        self._settings()
        self.views = False

    @contextlib.contextmanager
    def session(self) -> Iterator[Case]:
        """The store open for the body, closed after it (the case paused outside)."""
        self.resume()
        try:
            yield self
        finally:
            self.pause()

    def __enter__(self) -> Case:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the store (and release the write lock this case took)."""
        try:
            self.db.close()
        finally:
            if self._snapshot is not None:
                shutil.rmtree(self._snapshot, ignore_errors=True)
                self._snapshot = None
            self._release_lock()

    def _release_lock(self) -> None:
        if self._own_lock is not None:
            self._own_lock.release()
            self._own_lock = None
