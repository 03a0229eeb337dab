"""A case directory: events in Parquet files, everything else in one DuckDB store.

Parser workers write the events as Parquet parts (uid, UTC timestamps and all); the
parent only moves finished parts into ``events/`` and registers them, with their
evidence rows, in one transaction. ``events`` is a view over the registered parts, so a
part becomes visible exactly when its evidence is recorded, and a run that dies leaves
nothing half-visible: unregistered files are removed the next time the case is opened.
The same Parquet files can be read unchanged by Spark, Trino or pandas.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from irkit.errors import CaseError
from irkit.model import FileStats, Finding, ParseWarning

if TYPE_CHECKING:
    import duckdb

STORE_NAME: Final = "irkit.duckdb"
EVENTS_DIR: Final = "events"
SCHEMA_VERSION: Final = 3

_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS parts (
        file VARCHAR, sha256 VARCHAR, rows BIGINT, PRIMARY KEY (file, sha256)
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
    """CREATE TABLE IF NOT EXISTS findings (
        uid VARCHAR PRIMARY KEY,
        ts TIMESTAMPTZ,
        last_seen TIMESTAMPTZ,
        count BIGINT,
        severity VARCHAR,
        detector VARCHAR,
        rule VARCHAR,
        title VARCHAR,
        description VARCHAR,
        attack VARCHAR[],
        event_uid VARCHAR,
        event_uids VARCHAR[],
        source VARCHAR,
        host VARCHAR,
        evidence VARCHAR,
        record VARCHAR,
        excerpt VARCHAR,
        details JSON,
        run_id VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS collections (
        collection_id VARCHAR, manifest_sha256 VARCHAR, path VARCHAR, host VARCHAR,
        started_utc VARCHAR, finished_utc VARCHAR, files BIGINT,
        manifest_verified BOOLEAN, run_id VARCHAR, recorded_at TIMESTAMPTZ,
        PRIMARY KEY (collection_id, manifest_sha256)
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, command VARCHAR, started TIMESTAMPTZ,
        finished TIMESTAMPTZ, summary JSON
    )""",
)

#: The events view's columns, typed, for a case with no parts yet.
_EMPTY_EVENTS: Final = """
SELECT NULL::VARCHAR AS uid, NULL::TIMESTAMPTZ AS ts, NULL::VARCHAR AS ts_desc,
       NULL::VARCHAR AS source, NULL::VARCHAR AS artifact, NULL::VARCHAR AS host,
       NULL::VARCHAR AS "user", NULL::VARCHAR AS event_id, NULL::VARCHAR AS message,
       NULL::VARCHAR AS fields, NULL::VARCHAR AS evidence, NULL::VARCHAR AS evidence_sha256,
       NULL::VARCHAR AS record
WHERE false
"""


#: Findings as timeline rows: same time, host, evidence and record as the event they rest
#: on, so a stable sort puts each one next to its event.
_FINDING_ROWS: Final = """
SELECT uid, ts, 'Finding: ' || severity AS ts_desc, 'finding' AS source, rule AS artifact,
       host, NULL::VARCHAR AS "user", severity AS event_id,
       upper(severity) || ' ' || title || ': ' || description
         || CASE WHEN count > 1 THEN ' (' || count || ' events)' ELSE '' END AS message,
       CAST(json_merge_patch(details, json_object(
            'detector', detector, 'rule', rule, 'event_uid', event_uid,
            'event_source', source, 'attack', array_to_string(attack, ','),
            'excerpt', excerpt, 'count', count::VARCHAR,
            'last_seen', strftime(last_seen, '%Y-%m-%dT%H:%M:%S.%f+00:00'))) AS VARCHAR)
         AS fields,
       evidence, NULL::VARCHAR AS evidence_sha256, record
FROM findings
"""


def _sql_list(items: Sequence[str]) -> str:
    return "[" + ", ".join("'" + item.replace("'", "''") + "'" for item in items) + "]"


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
            self.events_dir.mkdir(exist_ok=True)
            self._clean_incomplete()
        self._refresh_view()

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
        files = [str(self.events_dir / name) for name in self._parts()]
        body = f"SELECT * FROM read_parquet({_sql_list(files)})" if files else _EMPTY_EVENTS
        self.db.execute(f"CREATE OR REPLACE TEMP VIEW events AS {body}")
        has_findings = self.db.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'findings'"
        ).fetchall()[0][0]
        findings = f" UNION ALL BY NAME {_FINDING_ROWS}" if has_findings else ""
        self.db.execute(f"CREATE OR REPLACE TEMP VIEW timeline AS SELECT * FROM events{findings}")

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
        """Move the files' parts into events/; small files' tables become one shared part
        (thousands of small logs must not become thousands of Parquet files)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        taken = []
        small = [stats for stats in batch if stats.tables]
        if small:
            table = pa.concat_tables([t for st in small for t in st.tables]).combine_chunks()
            name = f"batch-{uuid.uuid4().hex}.parquet"
            pq.write_table(table, self.events_dir / name, compression="snappy")
            taken += [(name, st.sha256, sum(t.num_rows for t in st.tables)) for st in small]
        for stats in batch:
            for part in stats.spool:
                source = Path(part)
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

    def ingest(self, batch: Sequence[FileStats], run_id: str) -> int:
        """Register parsed files' parts and evidence rows in one transaction; returns rows.

        A file's events and its evidence row commit together, so a crash leaves either
        both or neither: a file is never half in the case.
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
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._refresh_view()
        return sum(stats.records for stats in batch)

    def _unique_records(self, stats: FileStats) -> None:
        """A file parsed as slices may repeat a record id across slices: key repeats apart.

        Within one slice the parser keys a repeat ``<id>#<n>``; across slices only the
        store sees them all. The slices' record-id ranges say whether any repeat is
        possible, and only the slices sharing ids are read back and rewritten. Repeats
        are numbered by content, so the keys do not depend on which slice finished first.
        """
        from irkit.spool import slices_sharing_ids

        if len(stats.spool) < 2:
            return
        if stats.slice_spool and len(stats.record_ranges) == len(stats.slice_spool):
            involved = [
                part
                for index in sorted(slices_sharing_ids(stats.record_ranges))
                for part in stats.slice_spool[index]
            ]
        else:  # ranges unknown: every part may hold repeats
            involved = list(stats.spool)
        if len(involved) < 2:
            return
        files = _sql_list(involved)
        repeats = self.db.execute(
            f"""SELECT count(*) FROM (SELECT record FROM read_parquet({files})
                GROUP BY record HAVING count(*) > 1)"""
        ).fetchone()
        if not repeats or not repeats[0]:
            return
        fixed = Path(involved[0]).with_name(
            f"{stats.sha256[:16]}-{uuid.uuid4().hex[:12]}-unique.parquet"
        )
        target = str(fixed).replace("'", "''")
        # Only the repeated records are numbered (a small set); every row is copied once.
        self.db.execute(
            f"""COPY (
                WITH src AS NOT MATERIALIZED (
                    SELECT * FROM read_parquet({files}, filename = true, file_row_number = true)
                ),
                repeated AS (SELECT record FROM src GROUP BY record HAVING count(*) > 1),
                numbered AS (
                    SELECT filename AS f, file_row_number AS r, row_number() OVER (
                        PARTITION BY record ORDER BY ts, md5(message), md5(fields)) AS n
                    FROM src WHERE record IN (SELECT record FROM repeated)
                )
                SELECT src.* EXCLUDE (filename, file_row_number) REPLACE (
                    CASE WHEN n > 1 THEN src.record || '#x' || n ELSE src.record END AS record,
                    CASE WHEN n > 1 THEN md5(src.evidence_sha256 || '|' || src.record || '#x'
                                             || n || '|' || src.ts_desc)
                         ELSE src.uid END AS uid)
                FROM src LEFT JOIN numbered
                  ON src.filename = numbered.f AND src.file_row_number = numbered.r
            ) TO '{target}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 20000)"""
        )
        for name in involved:
            Path(name).unlink(missing_ok=True)
        rewritten = set(involved)
        stats.spool = [part for part in stats.spool if part not in rewritten] + [str(fixed)]

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

    def record_collection(
        self,
        run_id: str,
        collection_id: str,
        manifest_sha256: str,
        path: str,
        *,
        host: str = "",
        started: str = "",
        finished: str = "",
        files: int = 0,
        manifest_verified: bool = False,
    ) -> None:
        """Remember an irkit collection parsed into the case: its id and manifest digest."""
        self.db.execute(
            "INSERT OR REPLACE INTO collections VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                collection_id,
                manifest_sha256,
                path,
                host,
                started,
                finished,
                files,
                manifest_verified,
                run_id,
                dt.datetime.now(dt.UTC),
            ],
        )

    def count(self) -> int:
        """Number of events in the store."""
        row = self.db.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def add_events(self, parts: Sequence[Path], label: str) -> int:
        """Store events spooled as Parquet ``parts`` (any sources), keeping only uids the
        case does not hold yet; returns the rows added. The parts are removed."""
        if not parts:
            return 0
        files = _sql_list([str(p) for p in parts])
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

    def add_findings(self, findings: Sequence[Finding], run_id: str) -> int:
        """Store findings; one already in the case (same uid) is kept as it was."""
        if not findings:
            return 0
        import pyarrow as pa

        before = self.count_findings()
        table = pa.table(
            {
                "uid": [f.uid for f in findings],
                "ts": pa.array([f.ts for f in findings], pa.string()),
                "last_seen": pa.array([f.last_seen or f.ts for f in findings], pa.string()),
                "count": pa.array([f.count for f in findings], pa.int64()),
                "severity": [str(f.severity) for f in findings],
                "detector": [f.detector for f in findings],
                "rule": [f.rule for f in findings],
                "title": [f.title for f in findings],
                "description": [f.description for f in findings],
                "attack": pa.array([list(f.attack) for f in findings], pa.list_(pa.string())),
                "event_uid": [f.event_uid for f in findings],
                "event_uids": pa.array(
                    [
                        list(f.event_uids or ((f.event_uid,) if f.event_uid else ()))
                        for f in findings
                    ],
                    pa.list_(pa.string()),
                ),
                "source": [f.source for f in findings],
                "host": [f.host for f in findings],
                "evidence": [f.evidence for f in findings],
                "record": [f.record for f in findings],
                "excerpt": [f.excerpt for f in findings],
                "details": [json.dumps(f.details, sort_keys=True) for f in findings],
                "run_id": [run_id] * len(findings),
            }
        )
        self.db.register("_irkit_findings", table)
        self.db.execute(
            "INSERT OR IGNORE INTO findings SELECT * REPLACE "
            "(ts::TIMESTAMPTZ AS ts, last_seen::TIMESTAMPTZ AS last_seen) FROM _irkit_findings"
        )
        self.db.unregister("_irkit_findings")
        return self.count_findings() - before

    def count_findings(self) -> int:
        """Number of findings in the store."""
        return int(self.db.execute("SELECT count(*) FROM findings").fetchall()[0][0])
