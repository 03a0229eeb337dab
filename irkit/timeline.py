"""Selecting timeline rows from a case: filters, stable order, field columns.

The timeline is the case's events and its findings (``source`` = ``finding``), each
finding at the time, host, evidence and record of the event it rests on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from irkit.errors import QueryError
from irkit.model import EXPORT_COLUMNS

if TYPE_CHECKING:
    from irkit.case import Case

#: Field columns an export carries at most; the rest go, as JSON, to ``fields_other``.
DEFAULT_FIELD_COLUMNS: Final = 64
FETCH: Final = 10_000

# Same evidence, same order: time, host, evidence, record number, record, uid.
ORDER: Final = (
    "ts NULLS LAST, host, evidence, "
    "TRY_CAST(split_part(record, '#', 1) AS BIGINT) NULLS LAST, record, uid"
)

_SELECT: Final = """
SELECT strftime(ts, '%Y-%m-%dT%H:%M:%S.%f+00:00') AS datetime, ts_desc, message,
       epoch_us(ts) AS timestamp, source, artifact, host, "user", event_id, evidence,
       record, uid, fields
FROM timeline
"""


@dataclasses.dataclass(slots=True)
class TimelineFilter:
    """What to keep: every set criterion must hold."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    sources: Sequence[str] = ()
    hosts: Sequence[str] = ()
    event_ids: Sequence[str] = ()
    search: str = ""
    where: str = ""
    limit: int | None = None

    def sql(self) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.start is not None:
            clauses.append("ts >= ?")
            params.append(self.start)
        if self.end is not None:
            clauses.append("ts <= ?")
            params.append(self.end)
        for column, values in (
            ("source", self.sources),
            ("host", self.hosts),
            ("event_id", self.event_ids),
        ):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if self.search:
            clauses.append("(contains(lower(message), ?) OR contains(lower(fields::VARCHAR), ?))")
            params += [self.search.lower()] * 2
        if self.where:
            if ";" in self.where:
                raise QueryError("--where takes one SQL condition, without ';'")
            clauses.append(f"({self.where})")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def parse_time(text: str, option: str) -> dt.datetime:
    """An ISO 8601 date or time; a time without an offset is UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError as exc:
        raise QueryError(
            f"{option} {text!r} is not an ISO 8601 time",
            hint="for example 2024-05-01 or 2024-05-01T12:00:00Z",
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclasses.dataclass(slots=True)
class Selection:
    """A filtered, ordered view of a case's events, ready to export."""

    case: Case
    where: str
    params: list[Any]
    limit: int | None

    @classmethod
    def of(cls, case: Case, flt: TimelineFilter) -> Selection:
        """Check the filter against the store and return the selection."""
        where, params = flt.sql()
        selection = cls(case, where, params, flt.limit)
        try:
            case.db.execute(f"SELECT count(*) FROM timeline{where}", params).fetchone()
        except Exception as exc:  # duckdb.Error, but duckdb is imported lazily
            raise QueryError(f"the timeline filter is not valid SQL here: {exc}") from exc
        return selection

    def count(self) -> int:
        """Rows in the selection (before the limit)."""
        row = self.case.db.execute(f"SELECT count(*) FROM timeline{self.where}", self.params)
        found = row.fetchone()
        return int(found[0]) if found else 0

    def field_columns(self, most: int = DEFAULT_FIELD_COLUMNS) -> list[str]:
        """The most common field names in the selection, most frequent first."""
        rows = self.case.db.execute(
            f"""SELECT key, count(*) AS n FROM (
                    SELECT unnest(json_keys(fields)) AS key FROM timeline{self.where})
                GROUP BY key ORDER BY n DESC, key LIMIT {int(most)}""",
            self.params,
        ).fetchall()
        return [row[0] for row in rows]

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Rows as EXPORT_COLUMNS values plus the fields JSON, in the stable order."""
        limit = f" LIMIT {int(self.limit)}" if self.limit is not None else ""
        cursor = self.case.db.execute(f"{_SELECT}{self.where} ORDER BY {ORDER}{limit}", self.params)
        while batch := cursor.fetchmany(FETCH):
            yield from batch


assert EXPORT_COLUMNS[-1] == "uid"
