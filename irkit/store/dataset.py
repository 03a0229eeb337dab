"""A Parquet dataset written by ``irkit export`` (docs/dataset.md), opened read-only with the
views a case has: ``events``, ``findings``, ``finding_events``. The analytics (``irkit stack``,
``irkit firstseen``) and ``irkit sql`` run on a case or a dataset alike (``open_store``)."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol

import duckdb

from irkit.errors import CaseError, QueryError
from irkit.store.case import Case

#: The folder ``irkit export`` writes into a dataset (docs/dataset.md).
DATASET_MARKER: Final = "_irkit"
#: (view, files under the dataset, Hive partitions in the path).
VIEWS: Final = (
    ("events", "events/**/*.parquet", True),
    ("findings", "findings/**/*.parquet", True),
    ("finding_events", "finding_events/*.parquet", False),
)


class EventStore(Protocol):
    """What reads of events need: a DuckDB connection with the ``events`` view."""

    @property
    def db(self) -> duckdb.DuckDBPyConnection: ...

    def count(self) -> int: ...


def is_dataset(path: Path) -> bool:
    """Whether ``path`` is a dataset irkit exported."""
    return (path / DATASET_MARKER).is_dir() and (path / "events").is_dir()


def _literal(text: str) -> str:
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
            if not any(root.glob(pattern)):
                continue  # no case with findings exported yet
            self._db.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet("
                f"{_literal(str(root / pattern))}, hive_partitioning = {str(hive).lower()})"
            )

    @property
    def db(self) -> duckdb.DuckDBPyConnection:
        return self._db

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
