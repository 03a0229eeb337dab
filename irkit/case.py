"""A case directory: one DuckDB store of events, evidence, warnings and runs.

Only the parent process writes to the store; parser workers hand over Parquet spool files
that the store ingests in bulk, casting ``ts`` to UTC timestamps and computing ``uid``
once per batch in SQL.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from irkit.errors import CaseError
from irkit.model import FileStats, ParseWarning

if TYPE_CHECKING:
    import duckdb

STORE_NAME: Final = "irkit.duckdb"
SCHEMA_VERSION: Final = 1

_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS events (
        uid VARCHAR NOT NULL,
        ts TIMESTAMPTZ,
        ts_desc VARCHAR,
        source VARCHAR,
        artifact VARCHAR,
        host VARCHAR,
        "user" VARCHAR,
        event_id VARCHAR,
        message VARCHAR,
        fields JSON,
        evidence VARCHAR,
        evidence_sha256 VARCHAR,
        record VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS evidence (
        sha256 VARCHAR PRIMARY KEY,
        path VARCHAR,
        size BIGINT,
        kind VARCHAR,
        engine VARCHAR,
        status VARCHAR,
        records BIGINT,
        skipped_chunks BIGINT,
        skipped_records BIGINT,
        warnings BIGINT,
        run_id VARCHAR,
        parsed_at TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS ingesting (sha256 VARCHAR PRIMARY KEY)""",
    """CREATE TABLE IF NOT EXISTS evidence_paths (
        sha256 VARCHAR, path VARCHAR, PRIMARY KEY (sha256, path)
    )""",
    """CREATE TABLE IF NOT EXISTS warnings (
        run_id VARCHAR, path VARCHAR, kind VARCHAR, message VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, command VARCHAR, started TIMESTAMPTZ,
        finished TIMESTAMPTZ, summary JSON
    )""",
)

# uid = md5(evidence_sha256 | record | ts_desc) in hex: a stable id and dedup key, not a seal.
_INGEST: Final = """
INSERT INTO events
SELECT md5(evidence_sha256 || '|' || record || '|' || ts_desc),
       TRY_CAST(ts AS TIMESTAMPTZ), ts_desc, source, artifact, host, "user", event_id,
       message, fields, evidence, evidence_sha256, record
FROM _irkit_batch
"""


class Case:
    """An open case; use as a context manager so the store is always closed."""

    def __init__(self, root: Path, *, create: bool = False, read_only: bool = False) -> None:
        import duckdb

        self.root = root
        store = root / STORE_NAME
        if not store.exists():
            if not create:
                raise CaseError(
                    f"{root} is not an irkit case (no {STORE_NAME})",
                    hint="create one with: irkit parse EVIDENCE --case DIR",
                )
            if root.exists() and not root.is_dir():
                raise CaseError(f"{root} exists and is not a directory")
            root.mkdir(parents=True, exist_ok=True)
        try:
            self.db: duckdb.DuckDBPyConnection = duckdb.connect(str(store), read_only=read_only)
        except duckdb.Error as exc:
            raise CaseError(
                f"cannot open the case store {store}: {exc}",
                hint="another irkit may be writing this case; wait for it to finish",
            ) from exc
        self.db.execute("SET TimeZone = 'UTC'")
        # Bounded memory whatever the evidence size: DuckDB spills to disk past this.
        self.db.execute(f"SET memory_limit = '{os.environ.get('IRKIT_DB_MEMORY', '256MB')}'")
        self.db.execute("SET preserve_insertion_order = false")
        if not read_only:
            for statement in _DDL:
                self.db.execute(statement)
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
            self._clean_incomplete()

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
        """Close the store."""
        self.db.close()

    @property
    def spool_dir(self) -> Path:
        """Where parser workers leave Parquet batches for the store to ingest."""
        return self.root / "spool"

    def parsed_evidence(self) -> set[str]:
        """sha256 of every evidence file whose events are fully in the store."""
        rows = self.db.execute("SELECT sha256 FROM evidence WHERE status <> 'failed'").fetchall()
        return {row[0] for row in rows}

    def ingest(self, batch: Sequence[FileStats], run_id: str) -> int:
        """Move parsed files' spools into the store in one transaction; returns rows added.

        A file's events and its evidence row commit together, so a crash leaves either
        both or neither: a file is never half in the case.
        """
        if not batch:
            return 0
        import pyarrow as pa

        from irkit.spool import read_part

        tables = [table for stats in batch for table in stats.tables]
        parts = [part for stats in batch for part in stats.spool]
        now = dt.datetime.now(dt.UTC)
        db = self.db
        db.execute("BEGIN TRANSACTION")
        try:
            if tables:
                self._insert(pa.concat_tables(tables))
            for part in parts:  # one part at a time: memory stays bounded
                self._insert(read_part(part))
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
                if stats.sliced:
                    self._unique_records(stats.sha256)
                    db.execute("DELETE FROM ingesting WHERE sha256 = ?", [stats.sha256])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return sum(stats.records for stats in batch)

    def _unique_records(self, sha256: str) -> None:
        """A file parsed as slices may repeat a record id across slices: key repeats apart.

        Within one slice the parser keys a repeat ``<id>#<n>``; across slices only the
        store sees them all. Repeats are numbered by content, so the keys do not depend
        on which slice finished first.
        """
        row = self.db.execute(
            "SELECT count(*) - count(DISTINCT record) FROM events WHERE evidence_sha256 = ?",
            [sha256],
        ).fetchone()
        if not row or not row[0]:
            return
        self.db.execute(
            """
            UPDATE events SET record = events.record || '#x' || d.n,
                   uid = md5(events.evidence_sha256 || '|' || events.record || '#x' || d.n
                             || '|' || events.ts_desc)
            FROM (SELECT rowid AS rid, row_number() OVER (
                      PARTITION BY record ORDER BY ts, message, fields::VARCHAR) AS n
                  FROM events
                  WHERE evidence_sha256 = ? AND record IN (
                      SELECT record FROM events WHERE evidence_sha256 = ?
                      GROUP BY record HAVING count(*) > 1)) AS d
            WHERE events.rowid = d.rid AND d.n > 1
            """,
            [sha256, sha256],
        )

    def _clean_incomplete(self) -> None:
        """Remove the events of a big file whose ingest an earlier run did not finish."""
        for (sha256,) in self.db.execute("SELECT sha256 FROM ingesting").fetchall():
            self.db.execute("DELETE FROM events WHERE evidence_sha256 = ?", [sha256])
            self.db.execute("DELETE FROM ingesting WHERE sha256 = ?", [sha256])

    def ingest_slice(self, stats: FileStats) -> None:
        """Store one slice of a big file now; the file counts as parsed only once
        ``ingest`` records it (until then it is marked as being ingested)."""
        from irkit.spool import read_part

        db = self.db
        db.execute("BEGIN TRANSACTION")
        try:
            db.execute("INSERT OR IGNORE INTO ingesting VALUES (?)", [stats.sha256])
            for table in stats.tables:
                self._insert(table)
            for part in stats.spool:
                self._insert(read_part(part))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _insert(self, table: Any) -> None:
        self.db.register("_irkit_batch", table)
        try:
            self.db.execute(_INGEST)
        finally:
            self.db.unregister("_irkit_batch")

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

    def record_warnings(self, run_id: str, items: Iterable[ParseWarning]) -> None:
        """Keep the run's warnings in the case, for the report and later runs."""
        import pyarrow as pa

        listed = list(items)
        if not listed:
            return
        table = pa.table(
            {
                "run_id": [run_id] * len(listed),
                "path": [w.path for w in listed],
                "kind": [w.kind for w in listed],
                "message": [w.message for w in listed],
            }
        )
        self.db.register("_irkit_warnings", table)
        self.db.execute("INSERT INTO warnings SELECT * FROM _irkit_warnings")
        self.db.unregister("_irkit_warnings")

    def record_run(
        self, run_id: str, command: Sequence[str], started: dt.datetime, summary: dict[str, Any]
    ) -> None:
        """Remember one command run and its summary."""
        self.db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
            [run_id, " ".join(command), started, dt.datetime.now(dt.UTC), json.dumps(summary)],
        )

    def count(self) -> int:
        """Number of events in the store."""
        row = self.db.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0
