"""The case's events: Parquet parts registered with their evidence rows.

Parser workers write the events as Parquet parts (uid, UTC timestamps and all); the
parent only moves finished parts into ``events/`` and registers them, with their
evidence rows, in one transaction. ``events`` is a view over the registered parts, so a
part becomes visible exactly when its evidence is recorded, and a run that dies leaves
nothing half-visible: unregistered files are removed the next time the case is opened.
This module owns that registry (``EvidenceRegistry``, a part of ``Case``): the parts and
evidence tables, the ``events`` and ``timeline`` views, ingest, recovered logs and the
paths seen; a sliced file's record keys are made unique by ``irkit.store.slices``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irkit.model import FileStats
from irkit.store.hosts import canonical_hosts, host_expression
from irkit.store.schema import EMPTY_EVENTS, EVENTS_DIR, FINDING_ROWS, sql_list
from irkit.store.slices import SliceRecords

#: A case whose event parts hold at most this many bytes is scanned from memory
#: (``EvidenceRegistry.events_in_memory``): about 8 times that in DuckDB's memory.
IN_MEMORY_BYTES = 16 * 1024 * 1024
_IN_MEMORY = "_irkit_scan_events"

if TYPE_CHECKING:
    import duckdb


class EvidenceRegistry(SliceRecords):
    """The evidence and its events in a case: parts, evidence rows and the views."""

    root: Path
    db: duckdb.DuckDBPyConnection
    #: Whether the connection has the ``events`` and ``timeline`` views (kept up to date).
    views: bool = True
    #: Whether ``events`` reads the in-memory copy (``events_in_memory``) just now.
    events_held: bool = False

    @property
    def spool_dir(self) -> Path:
        """Where parser workers leave their Parquet parts until the store takes them."""
        return self.root / "spool"

    @property
    def events_dir(self) -> Path:
        """Where the registered event parts live."""
        return self.root / EVENTS_DIR

    def _parts(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT file FROM parts ORDER BY file").fetchall()
        return [row[0] for row in rows]

    def _refresh_view(self) -> None:
        """``events``: a view over every registered part (none: an empty, typed view)."""
        if not self.views:
            return
        files = [str(self.events_dir / name) for name in self._parts()]
        if files:
            host = host_expression(self.host_names())
            body = f"SELECT * REPLACE ({host} AS host) FROM read_parquet({sql_list(files)})"
            if host == "host":
                body = f"SELECT * FROM read_parquet({sql_list(files)})"
        else:
            body = EMPTY_EVENTS
        self.db.execute(f"CREATE OR REPLACE TEMP VIEW events AS {body}")
        has_findings = self.db.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'findings'"
        ).fetchall()[0][0]
        findings = f" UNION ALL BY NAME {FINDING_ROWS}" if has_findings else ""
        self.db.execute(f"CREATE OR REPLACE TEMP VIEW timeline AS SELECT * FROM events{findings}")

    def host_names(self) -> dict[str, str]:
        """Each host spelling shown under another name in the ``events`` view → that name
        (irkit.store.hosts); the parts keep the spelling their evidence has."""
        rows = self.db.execute(
            """SELECT host, sum(events) FROM part_hosts
               WHERE file IN (SELECT file FROM parts) GROUP BY host"""
        ).fetchall()
        counts = {host: int(n) for host, n in rows}
        missing = [  # parts of a case made before part_hosts existed: read them here
            str(self.events_dir / row[0])
            for row in self.db.execute(
                """SELECT DISTINCT file FROM parts
                   WHERE file NOT IN (SELECT file FROM part_hosts) ORDER BY file"""
            ).fetchall()
        ]
        if missing:
            for host, n in self.db.execute(
                f"SELECT host, count(*) FROM read_parquet({sql_list(missing)}) GROUP BY host"
            ).fetchall():
                counts[host] = counts.get(host, 0) + int(n)
        return canonical_hosts({h: n for h, n in counts.items() if h})

    def _count_hosts(self, names: Sequence[str]) -> None:
        """Record how many events of each new part name each host (read once, at
        registration: only their ``host`` column)."""
        files = sorted({str(self.events_dir / name) for name in names})
        if not files:
            return
        self.db.execute(
            f"""INSERT OR REPLACE INTO part_hosts
                SELECT parse_filename(filename), coalesce(host, ''), count(*)
                FROM read_parquet({sql_list(files)}, filename = true)
                GROUP BY ALL"""
        )

    def _clean_incomplete(self) -> None:
        """Undo what a dead run left: slices of an unfinished big file, unregistered parts."""
        for (sha256,) in self.db.execute("SELECT sha256 FROM ingesting").fetchall():
            for (name,) in self.db.execute(
                "SELECT file FROM parts WHERE sha256 = ?", [sha256]
            ).fetchall():
                (self.events_dir / name).unlink(missing_ok=True)
            self.db.execute("DELETE FROM parts WHERE sha256 = ?", [sha256])
            self.db.execute("DELETE FROM ingesting WHERE sha256 = ?", [sha256])
        registered = set(self._parts())
        for path in self.events_dir.glob("*.parquet"):
            if path.name not in registered:
                path.unlink(missing_ok=True)

    def parsed_evidence(self) -> set[str]:
        """sha256 of every evidence file whose events are fully in the store."""
        rows = self.db.execute("SELECT sha256 FROM evidence WHERE status <> 'failed'").fetchall()
        return {row[0] for row in rows}

    def _take(self, batch: Sequence[FileStats]) -> list[tuple[str, str, int]]:
        """Move the files' parts into events/; small files' tables (in memory, or parked
        by a worker) become one shared part (thousands of small logs must not become
        thousands of Parquet files). A part a worker wrote for a group of small logs
        (``GROUPED``) is moved once and registered for each of its files, with its rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from irkit.store.spool import GROUPED, PARKED, unpark

        taken = []
        small: list[tuple[FileStats, list[Any]]] = []
        for stats in batch:
            tables = list(stats.tables)
            tables += [unpark(part) for part in stats.spool if part.endswith(PARKED)]
            if tables:
                small.append((stats, tables))
        if small:
            table = pa.concat_tables([t for _, tables in small for t in tables]).combine_chunks()
            name = f"batch-{uuid.uuid4().hex}.parquet"
            pq.write_table(table, self.events_dir / name, compression="snappy")
            taken += [(name, st.sha256, sum(t.num_rows for t in tables)) for st, tables in small]
        moved: set[str] = set()
        for stats in batch:
            for part in stats.spool:
                source = Path(part)
                if part.endswith(PARKED):
                    source.unlink(missing_ok=True)
                    continue
                if part.endswith(GROUPED):
                    if part not in moved:
                        source.replace(self.events_dir / source.name)
                        moved.add(part)
                    taken.append((source.name, stats.sha256, stats.records))
                    continue
                rows = pq.ParquetFile(source).metadata.num_rows
                source.replace(self.events_dir / source.name)
                taken.append((source.name, stats.sha256, rows))
            stats.tables, stats.spool = [], []
        return taken

    def _register(self, taken: list[tuple[str, str, int]]) -> None:
        if taken:
            import pyarrow as pa

            table = pa.table(
                {
                    "file": [t[0] for t in taken],
                    "sha256": [t[1] for t in taken],
                    "rows": pa.array([t[2] for t in taken], pa.int64()),
                }
            )
            self.db.register("_irkit_parts", table)
            self.db.execute("INSERT INTO parts SELECT * FROM _irkit_parts")
            self.db.unregister("_irkit_parts")
            self._count_hosts([t[0] for t in taken])

    def ingest(
        self, batch: Sequence[FileStats], run_id: str, recovered: Mapping[str, int] | None = None
    ) -> int:
        """Register parsed files' parts and evidence rows in one transaction; returns rows.

        A file's events and its evidence row commit together, so a crash leaves either
        both or neither: a file is never half in the case. ``recovered``: the damaged
        logs of the batch read with ``--recover`` (sha256 → records python-evtx added).
        """
        if not batch:
            return 0
        import pyarrow as pa

        for stats in batch:
            if stats.sliced:
                self._unique_records(stats)
        taken = self._take(batch)
        now = dt.datetime.now(dt.UTC)
        db = self.db
        db.execute("BEGIN TRANSACTION")
        try:
            self._register(taken)
            evidence = pa.table(
                {
                    "sha256": [st.sha256 for st in batch],
                    "path": [st.path for st in batch],
                    "size": pa.array([st.size for st in batch], pa.int64()),
                    "kind": [st.kind for st in batch],
                    "engine": [st.engine for st in batch],
                    "status": [st.status for st in batch],
                    "records": pa.array([st.records for st in batch], pa.int64()),
                    "skipped_chunks": pa.array([st.skipped_chunks for st in batch], pa.int64()),
                    "skipped_records": pa.array([st.skipped_records for st in batch], pa.int64()),
                    "warnings": pa.array([len(st.warnings) for st in batch], pa.int64()),
                    "run_id": [run_id] * len(batch),
                    "parsed_at": pa.array([now] * len(batch), pa.timestamp("us", tz="UTC")),
                }
            )
            db.register("_irkit_evidence", evidence)
            db.execute("INSERT OR REPLACE INTO evidence SELECT * FROM _irkit_evidence")
            db.unregister("_irkit_evidence")
            for stats in batch:
                if recovered and stats.sha256 in recovered:
                    self._mark_recovered(stats.sha256, recovered[stats.sha256], run_id, now)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._refresh_view()
        return sum(stats.records for stats in batch)

    def _mark_recovered(self, sha256: str, records: int, run_id: str, now: dt.datetime) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO recovered VALUES (?, ?, ?, ?)", [sha256, records, run_id, now]
        )

    def unrecovered(self, damage: Iterable[str]) -> set[str]:
        """sha256 of the damaged EVTX logs the fast engine read into the case without
        ``--recover``: their runs warned of damage (one of the ``damage`` kinds)."""
        rows = self.db.execute(
            """SELECT DISTINCT e.sha256 FROM evidence e
               JOIN warnings w ON w.run_id = e.run_id AND w.path = e.path
               WHERE e.kind = 'evtx' AND e.engine = 'evtx' AND e.status <> 'failed'
                 AND list_contains(?::VARCHAR[], w.kind)
                 AND e.sha256 NOT IN (SELECT sha256 FROM recovered)""",
            [sorted(damage)],
        ).fetchall()
        return {row[0] for row in rows}

    def record_ids(self, sha256: str) -> list[tuple[int, int]]:
        """The EVTX record ids of one evidence file's events, as (first, last) ranges
        (a repeat's key ``<id>#<n>`` counts as its id)."""
        files = [
            str(self.events_dir / row[0])
            for row in self.db.execute(
                "SELECT DISTINCT file FROM parts WHERE sha256 = ? ORDER BY file", [sha256]
            ).fetchall()
        ]
        if not files:
            return []
        rows = self.db.execute(
            f"""SELECT DISTINCT TRY_CAST(split_part(record, '#', 1) AS BIGINT) AS n
                FROM read_parquet({sql_list(files)})
                WHERE evidence_sha256 = ? AND n IS NOT NULL ORDER BY n""",
            [sha256],
        ).fetchall()
        ranges: list[tuple[int, int]] = []
        for (number,) in rows:
            if ranges and number == ranges[-1][1] + 1:
                ranges[-1] = (ranges[-1][0], number)
            else:
                ranges.append((number, number))
        return ranges

    def add_recovered(self, stats: FileStats, run_id: str) -> int:
        """Register the records python-evtx alone read in a damaged log already in the
        case (``stats``: the recovery pass), and mark the log recovered, in one
        transaction; returns the rows added."""
        taken = self._take([stats])
        now = dt.datetime.now(dt.UTC)
        db = self.db
        db.execute("BEGIN TRANSACTION")
        try:
            self._register(taken)
            db.execute(
                "UPDATE evidence SET records = records + ?, warnings = warnings + ? "
                "WHERE sha256 = ?",
                [stats.records, len(stats.warnings), stats.sha256],
            )
            self._mark_recovered(stats.sha256, stats.records, run_id, now)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._refresh_view()
        return stats.records

    def record_paths(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Remember every path each evidence file was seen at (copies share one sha256)."""
        import pyarrow as pa

        listed = sorted(set(pairs))
        if not listed:
            return
        table = pa.table({"sha256": [p[0] for p in listed], "path": [p[1] for p in listed]})
        self.db.register("_irkit_paths", table)
        self.db.execute("INSERT OR IGNORE INTO evidence_paths SELECT * FROM _irkit_paths")
        self.db.unregister("_irkit_paths")

    @contextlib.contextmanager
    def events_in_memory(self, max_bytes: int | None = None) -> Iterator[bool]:
        """Within: ``events`` reads one temporary table holding the case's events, when
        their parts hold at most ``max_bytes`` (yields whether it does). A scan's 200-odd
        queries then read the events once from the Parquet parts instead of each reading
        every part again (the corpus case's heuristics: 5.3 s → 3.2 s); a bigger case
        keeps the view, as a copy would not fit the store's memory. After: the view again.
        ``max_bytes``: default ``IN_MEMORY_BYTES``."""
        limit = IN_MEMORY_BYTES if max_bytes is None else max_bytes
        files = [self.events_dir / name for name in self._parts()] if self.views else []
        size = sum(f.stat().st_size for f in files if f.exists())
        if not files or size > limit:
            yield False
            return
        self.db.execute(f"CREATE OR REPLACE TEMP TABLE {_IN_MEMORY} AS SELECT * FROM events")
        try:
            self.db.execute(f"CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM {_IN_MEMORY}")
            self.events_held = True
            yield True
        finally:
            self.events_held = False
            self._refresh_view()
            self.db.execute(f"DROP TABLE IF EXISTS {_IN_MEMORY}")

    def count(self) -> int:
        """Number of events in the store."""
        row = self.db.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def add_events(self, parts: Sequence[Path], label: str) -> int:
        """Store events spooled as Parquet ``parts`` (any sources), keeping only uids the
        case does not hold yet; returns the rows added. The parts are removed."""
        if not parts:
            return 0
        files = sql_list([str(p) for p in parts])
        name = f"{label}-{uuid.uuid4().hex}.parquet"
        target = str(self.events_dir / name).replace("'", "''")
        self.db.execute(
            f"""COPY (
                SELECT * FROM read_parquet({files})
                WHERE uid NOT IN (SELECT uid FROM events)
                QUALIFY row_number() OVER (PARTITION BY uid ORDER BY record) = 1
            ) TO '{target}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 20000)"""
        )
        rows = int(
            self.db.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchall()[0][0]
        )
        if rows:
            self.db.execute("BEGIN TRANSACTION")
            try:
                self._register([(name, label, rows)])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        else:
            (self.events_dir / name).unlink(missing_ok=True)
        for part in parts:
            Path(part).unlink(missing_ok=True)
        self._refresh_view()
        return rows

    def add_file_parts(self, parts: Sequence[tuple[Path, int]], label: str, unique: bool) -> int:
        """Store file events spooled as Parquet ``parts`` (path, rows), as ``add_events``
        does; returns the rows added. ``unique``: no uid repeats among the parts.

        When no event of the parts can be in the case already (``unique``, and none of
        their uids is), they are moved into ``events/`` and registered in one transaction,
        not rewritten (``irkit.store.filewrite``, #18); else ``add_events`` filters them.
        """
        if not parts:
            return 0
        paths = [part for part, _ in parts]
        if not unique or self._holds_any(paths):
            return self.add_events(paths, label)
        run = uuid.uuid4().hex
        taken = [
            (f"{label}-{run}-{n:05d}.parquet", label, rows) for n, (_, rows) in enumerate(parts)
        ]
        for (part, _), (name, _, _) in zip(parts, taken, strict=True):
            part.replace(self.events_dir / name)
        self.db.execute("BEGIN TRANSACTION")
        try:
            self._register(taken)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            for name, _, _ in taken:
                (self.events_dir / name).unlink(missing_ok=True)
            raise
        self._refresh_view()
        return sum(rows for _, rows in parts)

    def _holds_any(self, parts: Sequence[Path]) -> bool:
        """Whether the case holds an event with a uid of one of ``parts``' events."""
        if not self.db.execute("SELECT count(*) FROM parts").fetchall()[0][0]:
            return False
        files = sql_list([str(p) for p in parts])
        return bool(
            self.db.execute(
                f"""SELECT count(*) FROM (SELECT uid FROM read_parquet({files})
                    WHERE uid IN (SELECT uid FROM events) LIMIT 1)"""
            ).fetchall()[0][0]
        )
