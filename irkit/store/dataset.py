"""A Parquet dataset written by ``irkit export`` (docs/dataset.md), opened read-only with the
views a case has: ``events``, ``findings``, ``finding_events``. The analytics (``irkit stack``,
``irkit firstseen``) and ``irkit sql`` run on a case or a dataset alike (``open_store``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol

import duckdb

from irkit.errors import CaseError, QueryError
from irkit.model import Finding
from irkit.store.case import Case
from irkit.store.findings import finding_links, findings_table
from irkit.store.schema import sql_list

#: The folder ``irkit export`` writes into a dataset (docs/dataset.md).
DATASET_MARKER: Final = "_irkit"
#: A host as a safe folder name (docs/dataset.md); ``irkit.export.dataset`` writes it too.
HOST_KEY_SQL: Final = (
    "nullif(regexp_replace(lower(coalesce(host, '')), '[^a-z0-9._-]+', '_', 'g'), '')"
)
#: (view, files under the dataset, Hive partitions in the path).
VIEWS: Final = (
    ("events", "events/**/*.parquet", True),
    ("findings", "findings/**/*.parquet", True),
    ("finding_events", "finding_events/*.parquet", False),
)

#: The partition columns' types (not guessed from the folder names: a host key of digits
#: stays text).
HIVE_TYPES: Final = {
    "events": "{'source': VARCHAR, 'host_key': VARCHAR, 'date': DATE}",
    "findings": "{'host_key': VARCHAR}",
}

#: The findings tables of a dataset without findings yet (the export's columns).
EMPTY: Final = {
    "findings": (
        "SELECT NULL::VARCHAR AS uid, NULL::TIMESTAMPTZ AS ts, NULL::TIMESTAMPTZ AS last_seen, "
        "NULL::BIGINT AS count, NULL::VARCHAR AS severity, NULL::VARCHAR AS detector, "
        "NULL::VARCHAR AS rule, NULL::VARCHAR AS title, NULL::VARCHAR AS description, "
        "NULL::VARCHAR[] AS attack, NULL::VARCHAR AS event_uid, NULL::VARCHAR[] AS event_uids, "
        "NULL::VARCHAR AS source, NULL::VARCHAR AS host, NULL::VARCHAR AS evidence, "
        "NULL::VARCHAR AS record, NULL::VARCHAR AS excerpt, NULL::VARCHAR AS details, "
        "NULL::VARCHAR AS host_key WHERE false"
    ),
    "finding_events": "SELECT NULL::VARCHAR AS finding_uid, NULL::VARCHAR AS event_uid WHERE false",
}


#: Parquet read (and sorted) a batch when a scan copies a dataset's events (``materialise``).
MATERIALISE_BYTES: Final = 64 * 1024 * 1024
#: Rows a row group in that copy: small, so filters skip most of them.
ROW_GROUP_ROWS: Final = 16384


def _batches(files: Sequence[Path], size: int) -> list[list[Path]]:
    """``files`` in runs of about ``size`` bytes."""
    batches: list[list[Path]] = []
    current: list[Path] = []
    total = 0
    for path in files:
        current.append(path)
        total += path.stat().st_size
        if total >= size:
            batches.append(current)
            current, total = [], 0
    if current:
        batches.append(current)
    return batches


class EventStore(Protocol):
    """What reads of events need: a DuckDB connection with the ``events`` view."""

    @property
    def db(self) -> duckdb.DuckDBPyConnection: ...

    def count(self) -> int: ...


def is_dataset(path: Path) -> bool:
    """Whether ``path`` is a dataset irkit exported."""
    return (path / DATASET_MARKER).is_dir() and (path / "events").is_dir()


def sql_string(text: str) -> str:
    """A SQL string literal for a path or name irkit chose (quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


class Dataset:
    """An exported dataset, read-only; use as a context manager."""

    def __init__(self, root: Path) -> None:
        if not is_dataset(root):
            raise CaseError(
                f"{root} is not an irkit dataset (no {DATASET_MARKER}/ and events/)",
                hint="make one with: irkit export CASE --format parquet --out DIR",
            )
        if not any(root.glob(VIEWS[0][1])):
            raise CaseError(f"{root} is an irkit dataset with no events yet")
        self.root = root
        self._db = duckdb.connect()
        self._db.execute("SET TimeZone = 'UTC'")
        self._db.execute(f"SET memory_limit = '{os.environ.get('IRKIT_DB_MEMORY', '512MB')}'")
        self._db.execute("SET preserve_insertion_order = false")
        # Every file has the export's schema: no union_by_name (binding each file's schema
        # costs memory and time on thousands of files).
        for name, pattern, hive in VIEWS:
            if not any(root.glob(pattern)):  # no case with findings exported yet
                self._db.execute(f"CREATE VIEW {name} AS {EMPTY[name]}")
                continue
            options = f"hive_types = {HIVE_TYPES[name]}" if hive else "hive_partitioning = false"
            self._db.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet("
                f"{sql_string(str(root / pattern))}, {options})"
            )

    @property
    def db(self) -> duckdb.DuckDBPyConnection:
        return self._db

    def materialise(self, folder: Path) -> None:
        """Read the events once into a DuckDB file in ``folder`` (a scratch folder the
        caller removes): the many queries of a scan then read one table, not thousands of
        small Parquet files each time. DuckDB spills past its memory limit.

        The files are read ``MATERIALISE_BYTES`` at a time, each batch sorted by log and
        event id, into row groups of ``ROW_GROUP_ROWS``: a rule's ``artifact`` and
        ``event_id`` filter then skips most row groups instead of evaluating its field
        conditions on every event (on 200 hosts, 7.1 million events, a heuristic's query
        went from 2–6 s to 0.1–1.4 s). One sort of everything does not fit the memory
        limit; sorting batches does."""
        self._db.execute(f"SET temp_directory = {sql_string(str(folder / 'spill'))}")
        target = sql_string(str(folder / "scan.duckdb"))
        try:
            self._db.execute(f"ATTACH {target} AS scratch (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        except duckdb.Error:  # a DuckDB without the option: its default row groups
            self._db.execute(f"ATTACH {target} AS scratch")
        files = sorted(self.root.glob(VIEWS[0][1]))
        # The sorted order must reach the table (unordered, threads interleave the runs).
        self._db.execute("SET preserve_insertion_order = true")
        verb = "CREATE TABLE scratch.events AS"
        for batch in _batches(files, MATERIALISE_BYTES):
            self._db.execute(
                f"{verb} SELECT * FROM read_parquet({sql_list([str(p) for p in batch])}, "
                f"hive_partitioning = true, hive_types = {HIVE_TYPES['events']}) "
                "ORDER BY artifact, event_id"
            )
            verb = "INSERT INTO scratch.events"
        self._db.execute("SET preserve_insertion_order = false")
        self._db.execute("DROP VIEW events")
        self._db.execute("CREATE VIEW events AS SELECT * FROM scratch.events")

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM events").fetchall()[0][0])

    def __enter__(self) -> Dataset:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()


def open_store(path: Path) -> Case | Dataset:
    """A case (read-only snapshot) or an exported dataset, whichever ``path`` is."""
    return Dataset(path) if is_dataset(path) else Case(path, read_only=True)


def check_select(db: duckdb.DuckDBPyConnection, query: str) -> None:
    """``query`` must be one SELECT (or WITH … SELECT) statement: no writes, no settings."""
    try:
        statements = db.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"not valid SQL: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1:
        raise QueryError(f"one statement, please (got {len(statements)})")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise QueryError(
            f"only SELECT queries are run (this is {statements[0].type.name})",
            hint="irkit sql reads; it never changes the case or the dataset",
        )


def add_findings(root: Path, db: duckdb.DuckDBPyConnection, findings: Sequence[Finding]) -> int:
    """Write the findings not yet in the dataset (by uid) into ``findings/`` and their events
    into ``finding_events/``, in files named after them (the same findings: the same
    files); return how many were new. ``db`` is the dataset's connection."""
    known = {row[0] for row in db.execute("SELECT uid FROM findings").fetchall()}
    new: dict[str, Finding] = {}
    for finding in findings:
        if finding.uid not in known:
            new.setdefault(finding.uid, finding)
    if not new:
        return 0
    chosen = [new[uid] for uid in sorted(new)]
    ident = hashlib.sha256("\n".join(sorted(new)).encode()).hexdigest()[:16]
    table = findings_table(chosen, None)
    links = finding_links(chosen)
    db.register("_irkit_new_findings", table)
    db.register("_irkit_new_links", links)
    db.execute("SET threads = 1")
    db.execute("SET preserve_insertion_order = true")
    (root / "findings").mkdir(exist_ok=True)
    (root / "finding_events").mkdir(exist_ok=True)
    db.execute(
        f"""COPY (SELECT uid, CAST(ts AS TIMESTAMPTZ) AS ts,
                   CAST(last_seen AS TIMESTAMPTZ) AS last_seen, count, severity, detector,
                   rule, title, description, attack, event_uid, event_uids, source, host,
                   evidence, record, excerpt, details,
                   {HOST_KEY_SQL} AS host_key
                 FROM _irkit_new_findings ORDER BY host_key, ts, uid)
            TO {sql_string(str(root / "findings"))} (FORMAT PARQUET, COMPRESSION ZSTD,
            PARTITION_BY (host_key), FILENAME_PATTERN 'part-scan-{ident}-{{i}}',
            OVERWRITE_OR_IGNORE)"""
    )
    target = root / "finding_events" / f"part-scan-{ident}.parquet"
    db.execute(
        f"COPY (SELECT * FROM _irkit_new_links ORDER BY finding_uid, event_uid) "
        f"TO {sql_string(str(target))} (FORMAT PARQUET, COMPRESSION ZSTD)"
    )
    db.unregister("_irkit_new_findings")
    db.unregister("_irkit_new_links")
    return len(chosen)
