"""Selecting timeline rows from a case: filters, stable order, field columns.

The timeline is the case's events and its findings (``source`` = ``finding``), each
finding at the time, host, evidence and record of the event it rests on.

A filter that cannot match anything sensible is a ``QueryError`` (a usage error), never a
silent empty result: ``--from`` after ``--to``, an event id that is neither a number nor
an id some source writes. User SQL (``--where``) runs on a connection confined to the
case (``confine``): no file, network, extension or setting beyond the case's own parts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from irkit.errors import QueryError
from irkit.model import EXPORT_COLUMNS

if TYPE_CHECKING:
    from irkit.store.case import Case

#: Field columns an export carries at most; the rest go, as JSON, to ``fields_other``.
DEFAULT_FIELD_COLUMNS: Final = 64
FETCH: Final = 10_000

#: The event ids that are not numbers, by the source that writes them: osquery results
#: (the action) and status logs (the severity), file events (MACB), findings (the level).
#: Any other word is accepted only when the case holds it (``--event-id`` compares
#: without case).
EVENT_ID_WORDS: Final = (
    "added",
    "removed",
    "snapshot",
    "info",
    "warning",
    "error",
    "fatal",
    "m",
    "a",
    "c",
    "b",
    "informational",
    "low",
    "medium",
    "high",
    "critical",
)

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
    #: Only the events these findings rest on (uids, or their first 8+ hex digits).
    findings: Sequence[str] = ()

    def check(self) -> None:
        """Refuse what cannot match anything: a reversed time range, malformed values."""
        if self.start is not None and self.end is not None and self.start > self.end:
            raise QueryError(
                f"--from {self.start.isoformat()} is after --to {self.end.isoformat()}",
                hint="swap them: --from is the earliest time, --to the latest",
            )
        for option, values in (
            ("--source", self.sources),
            ("--host", self.hosts),
            ("--event-id", self.event_ids),
        ):
            for value in values:
                if not value.strip().rstrip("."):
                    raise QueryError(f"{option} is given an empty value ({value!r})")
        for value in self.event_ids:
            event_id_key(value)  # raises on a malformed id
        for value in self.findings:
            if not (
                8 <= len(value.strip()) <= 32
                and all(c in "0123456789abcdef" for c in value.strip().lower())
            ):
                raise QueryError(
                    f"--finding {value!r} is not a finding uid",
                    hint="the uid column of `irkit findings` (32 hex digits; the first 8 do)",
                )
        if self.where:
            check_where(self.where)

    def sql(self) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters."""
        self.check()
        clauses: list[str] = []
        params: list[Any] = []
        if self.start is not None:
            clauses.append("ts >= ?")
            params.append(self.start)
        if self.end is not None:
            clauses.append("ts <= ?")
            params.append(self.end)
        if self.sources:
            sources = sorted({s.strip().lower() for s in self.sources})
            clauses.append(f"lower(source) IN ({', '.join('?' * len(sources))})")
            params.extend(sources)
        if self.hosts:
            host_sql, host_params = host_condition(self.hosts)
            clauses.append(host_sql)
            params.extend(host_params)
        if self.event_ids:
            keys = sorted({event_id_key(value) for value in self.event_ids})
            clauses.append(f"lower(event_id) IN ({', '.join('?' * len(keys))})")
            params.extend(keys)
        if self.findings:
            prefixes = sorted({value.strip().lower() for value in self.findings})
            chosen = " OR ".join(["starts_with(uid, ?)"] * len(prefixes))
            clauses.append(
                "uid IN (SELECT event_uid FROM finding_events WHERE finding_uid IN "
                f"(SELECT uid FROM findings WHERE {chosen}) "
                "UNION ALL SELECT unnest(event_uids) FROM findings WHERE "
                f"({chosen}) AND uid NOT IN (SELECT finding_uid FROM finding_events)) "
                "AND source <> 'finding'"
            )
            params += prefixes * 2
        if self.search:
            clauses.append("(contains(lower(message), ?) OR contains(lower(fields::VARCHAR), ?))")
            params += [self.search.lower()] * 2
        if self.where:
            clauses.append(f"({self.where})")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def event_id_key(value: str) -> str:
    """An ``--event-id`` value as the lower-case text it is compared with: a number
    without leading zeros (``04624`` is ``4624``), else the word lower-cased."""
    text = value.strip()
    if text.isdecimal() and text.isascii():
        return str(int(text))
    if not text or any(not (c.isalnum() or c in "-_.:") for c in text):
        raise QueryError(
            f"--event-id {value!r} is not an event id",
            hint="EVTX ids are numbers (4624); give several as 4624,4625",
        )
    return text.lower()


def host_condition(hosts: Sequence[str]) -> tuple[str, list[str]]:
    """SQL matching any of ``hosts`` without case: a short name ``H`` matches ``H`` and
    every ``H.<domain>``; a dotted name (an FQDN) matches itself and its short name; an IP
    address matches only itself."""
    clauses: list[str] = []
    params: list[str] = []
    for given in sorted({h.strip().lower().rstrip(".") for h in hosts}):
        try:
            ipaddress.ip_address(given)
        except ValueError:
            pass
        else:
            clauses.append("lower(host) = ?")
            params.append(given)
            continue
        short, dot, _ = given.partition(".")
        if dot:
            clauses.append("lower(host) IN (?, ?)")
            params += [given, short]
        else:
            clauses.append("(lower(host) = ? OR starts_with(lower(host), ?))")
            params += [given, given + "."]
    return "(" + " OR ".join(clauses) + ")", params


def check_where(where: str) -> None:
    """``--where`` is one SQL condition: no ``;``, no comment, its parentheses balanced
    (string literals may hold anything). It cannot end the condition and start another."""
    import duckdb

    depth = 0
    tokens = duckdb.tokenize(where)
    for index, (start, kind) in enumerate(tokens):
        end = tokens[index + 1][0] if index + 1 < len(tokens) else len(where)
        if kind == duckdb.token_type.comment:
            raise QueryError("--where takes one SQL condition, without comments")
        if kind != duckdb.token_type.operator:
            continue
        for char in where[start:end]:
            if char == ";":
                raise QueryError("--where takes one SQL condition, without ';'")
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                raise QueryError("--where has a ')' with no '(' before it")
    if depth:
        raise QueryError("--where has a '(' that is not closed")


def confine(case: Case) -> None:
    """Let ``case``'s connection read the case and nothing else, for good: DuckDB's external
    access off (no file, URL, COPY, ATTACH, INSTALL or LOAD) except the case's own event
    parts, and its configuration locked (no SET, RESET or PRAGMA that changes a setting).
    The ``events`` view reads its parts through ``read_parquet``, so those files, and only
    those, stay allowed."""
    rows = case.db.execute("SELECT DISTINCT file FROM parts ORDER BY file").fetchall()
    case.db.execute("SET allowed_paths = ?", [[str(case.events_dir / name) for (name,) in rows]])
    case.db.execute("SET enable_external_access = false")
    case.db.execute("SET lock_configuration = true")


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
        """Check the filter against the store and return the selection.

        With user SQL (``flt.where``) the case's connection is ``confine``d first, and stays
        so: open the case for this selection alone.
        """
        where, params = flt.sql()
        if flt.where:
            confine(case)
        if flt.event_ids:
            _check_event_ids(case, flt.event_ids)
        for value in flt.findings:
            found = case.db.execute(
                "SELECT count(*) FROM findings WHERE starts_with(uid, ?)", [value.strip().lower()]
            ).fetchone()
            if not found or not found[0]:
                raise QueryError(
                    f"--finding {value}: no finding of the case has this uid",
                    hint=f"irkit findings {case.root} --format csv lists them with their uid",
                )
        selection = cls(case, where, params, flt.limit)
        try:
            case.db.execute(f"SELECT count(*) FROM timeline{where}", params).fetchone()
        except Exception as exc:  # duckdb.Error, but duckdb is imported lazily
            raise _query_error(exc) from exc
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


def _check_event_ids(case: Case, values: Sequence[str]) -> None:
    """A word that no source writes and the case does not hold can match nothing."""
    words = {event_id_key(v) for v in values} - set(EVENT_ID_WORDS)
    words = {w for w in words if not w.isdecimal()}
    if not words:
        return
    marks = ", ".join("?" * len(words))
    found = case.db.execute(
        f"SELECT DISTINCT lower(event_id) FROM timeline WHERE lower(event_id) IN ({marks})",
        sorted(words),
    ).fetchall()
    missing = sorted(words - {row[0] for row in found})
    if missing:
        raise QueryError(
            f"--event-id {missing[0]!r} is not an event id of any source, nor in this case",
            hint="EVTX ids are numbers (4624,4625); others: " + ", ".join(EVENT_ID_WORDS),
        )


def _query_error(exc: Exception) -> QueryError:
    """A DuckDB error on the user's filter as one line; refused file or setting access
    says that the SQL may read the case only."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = type(exc).__name__
    if name == "PermissionException" or "configuration has been locked" in first:
        return QueryError(
            f"--where may read only the case's events and tables: {first}",
            hint="files, URLs, COPY, ATTACH, extensions and settings are disabled in --where",
        )
    return QueryError(f"the timeline filter is not valid SQL here: {first}")


assert EXPORT_COLUMNS[-1] == "uid"
