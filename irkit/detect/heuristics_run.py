"""Running the built-in heuristics (``irkit.detect.heuristics``) over a case: on DuckDB
the ``where:`` rules sixteen to a query (``UNION ALL``), the ``query:`` rules too when the
case's events are held in memory, else one by one; each rule's matches grouped into one
finding per host and key; the first event of each read once for all of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from irkit.detect import NO_PROGRESS, DetectorResult, ScanProgress
from irkit.detect.heuristics import FIELD_MACRO, Heuristic, check_sql, one_line, scan_heuristics
from irkit.errors import EngineError, IrkitError
from irkit.model import MAX_EVENT_UIDS, Finding, ParseWarning
from irkit.model import severity_rank as _rank

if TYPE_CHECKING:
    import duckdb

    from irkit.store.dataset import EventStore

DETECTOR: Final = "heuristic"
EXCERPT_MAX: Final = 300
_ISO: Final = "%Y-%m-%dT%H:%M:%S.%f+00:00"

#: A heuristic's matches: its events' ``uid`` and key, once each. Most rules match
#: nothing, and then nothing more is run (grouping every rule's empty result cost a small
#: case as much again: ~2 ms a rule, #18).
_HITS: Final = (
    "SELECT DISTINCT uid, coalesce(CAST(key AS VARCHAR), '') AS key FROM ({body}) AS rule_hits"
)
_KEEP_HITS: Final = "CREATE OR REPLACE TEMP TABLE _irkit_hits AS "
#: The matches (``_irkit_hits``) grouped per host and key, from the narrow columns only:
#: the wide ones (``fields``, ``message``…) of every event would be read once per
#: heuristic otherwise, which on millions of events costs more than the rule (#16). The
#: first event's wide columns are read once for all heuristics (``_first_rows``).
_GROUPED: Final = """
SELECT hits.rule, coalesce(e.host, '') AS host, hits.key,
       strftime(min(e.ts), '{iso}'), strftime(max(e.ts), '{iso}'), count(*),
       list(e.uid ORDER BY e.ts, e.uid)
FROM events AS e JOIN _irkit_hits AS hits ON e.uid = hits.uid
GROUP BY hits.rule, coalesce(e.host, ''), hits.key
ORDER BY hits.rule, min(e.ts), coalesce(e.host, ''), hits.key
"""
#: Heuristics run together on DuckDB (``_run_batch``): a query costs ~1–2 ms before it
#: reads a row, and most heuristics match nothing (#18).
BATCH: Final = 16

#: ``_GROUPED`` in Spark SQL (``--engine spark``): the same rows, the same order (DuckDB
#: sorts NULL last; Spark's ``array_sort`` is given that order).
_GROUPED_SPARK: Final = """
WITH matched AS (
    SELECT /*+ BROADCAST(hits) */ e.uid, e.ts, coalesce(e.host, '') AS host, hits.key,
           struct(e.ts IS NULL, e.ts, e.uid) AS _o
    FROM events AS e JOIN _irkit_hits AS hits ON e.uid = hits.uid
)
SELECT host, key,
       date_format(min(ts), "{iso}"), date_format(max(ts), "{iso}"), count(*),
       transform(array_sort(collect_list(struct(_o, uid))), x -> x.uid)
FROM matched
GROUP BY host, key
ORDER BY min(ts) ASC NULLS LAST, host, key
"""
_HITS_SPARK: Final = _HITS.replace("VARCHAR", "STRING")
_ISO_SPARK: Final = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'+00:00'"
#: The first events' wide columns, read this many a query (a literal IN list).
FIRST_BATCH: Final = 5000

#: (host, key, first, last, count, uids) of one finding; the first event's (source,
#: evidence, record, fields, message) come from ``_first_rows``.
_Group = tuple[str, str, str, str, int, list[str]]


def run_heuristics(
    case: EventStore,
    heuristics: Sequence[Heuristic] | None = None,
    min_level: str = "informational",
    progress: ScanProgress = NO_PROGRESS,
) -> DetectorResult:
    """Run heuristics (default: the shipped set) at ``min_level`` or above over the case.

    A heuristic that fails to run is a counted warning; the others still run.
    """
    every = scan_heuristics() if heuristics is None else list(heuristics)
    chosen = [h for h in every if _rank(h.level) >= _rank(min_level)]
    result = DetectorResult(detector=DETECTOR)
    case.db.execute(FIELD_MACRO)
    counts: dict[str, int] = {}
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    found: dict[int, list[_Group]] = {}
    failed: dict[int, ParseWarning] = {}
    progress.phase("heuristics", len(chosen), "rules")
    batches: list[dict[str, Any]] = []
    duck = getattr(case.db, "dialect", "duckdb") == "duckdb"
    for unit in _units(chosen, duck, held=getattr(case, "events_held", False)):
        started = time.perf_counter()
        together = None
        if len(unit) > 1:
            try:
                together = _run_batch(case.db, [chosen[i] for i in unit])
            except IrkitError:
                pass  # its rules alone, so that the one at fault is named
        if together is not None:
            seconds = round(time.perf_counter() - started, 3)
            batches.append({"rules": [chosen[i].id for i in unit], "seconds": seconds})
            found.update(zip(unit, together, strict=True))
            progress.advance(len(unit))
            continue
        for index in unit:  # alone: a query, another engine, or a batch that failed
            heuristic = chosen[index]
            started = time.perf_counter()
            try:
                found[index] = _run_one(case.db, heuristic)
            except EngineError as exc:  # another engine cannot run it: said, not a failure
                skipped[heuristic.id] = exc.message
            except IrkitError as exc:
                failed[index] = ParseWarning(heuristic.id, "heuristic-failed", exc.message)
            finally:
                timings[heuristic.id] = round(time.perf_counter() - started, 3)
                progress.advance()
    result.warnings += [failed[i] for i in sorted(failed)]
    grouped = [(chosen[i], found[i]) for i in sorted(found)]
    for heuristic, groups in grouped:
        counts[heuristic.id] = len(groups)
    if duck:
        case.db.execute("DROP TABLE IF EXISTS _irkit_hits")
    firsts = _first_rows(case.db, {g[5][0] for _, groups in grouped for g in groups})
    for heuristic, groups in grouped:
        result.findings += _findings(heuristic, groups, firsts)
    progress.done()
    result.report = {
        "heuristics": len(chosen),
        "below_min_level": len(every) - len(chosen),
        "failed": [w.path for w in result.warnings],
        "not_run_on_engine": skipped,
        "findings_by_rule": {k: v for k, v in sorted(counts.items()) if v},
        "seconds_by_rule": timings,
        "seconds_by_batch": batches,
    }
    return result


def _units(chosen: Sequence[Heuristic], duck: bool, held: bool) -> list[list[int]]:
    """How the chosen heuristics run, by index: on DuckDB ``BATCH`` to a query, the
    ``where:`` rules together and the ``query:`` rules together; a ``query:`` alone when
    the events are not held in memory (``held``: a small case), as sixteen of their joins
    and windows at once over a big case's parts passed DuckDB's memory limit (256 MB). On
    another engine each alone."""
    if not duck:
        return [[i] for i in range(len(chosen))]
    units: list[list[int]] = []
    for query in (False, True):
        kind = [i for i, h in enumerate(chosen) if h.query == query]
        size = BATCH if held or not query else 1
        units += [kind[start : start + size] for start in range(0, len(kind), size)]
    return units


def _run_one(db: duckdb.DuckDBPyConnection, heuristic: Heuristic) -> list[_Group]:
    if getattr(db, "dialect", "duckdb") == "duckdb":
        return _run_batch(db, [heuristic])[0]
    problems = check_sql(heuristic.sql)
    if problems:
        raise IrkitError(problems[0])
    engine: Any = db  # Spark: the rule translated
    body = engine.translate(heuristic.sql)
    hits = engine.query(_HITS_SPARK.format(body=body)).fetchall()
    if not hits:
        return []
    engine.register("_irkit_hits", "uid string, key string", hits)
    rows = engine.query(_GROUPED_SPARK.format(iso=_ISO_SPARK)).fetchall()
    return [(h, k, first, last, int(n), list(uids)) for h, k, first, last, n, uids in rows]


def _run_batch(db: duckdb.DuckDBPyConnection, batch: Sequence[Heuristic]) -> list[list[_Group]]:
    """Each heuristic's groups, the batch's matches collected by one query (each rule's
    own query, its filters kept, joined by ``UNION ALL``) and grouped by another.

    Raises:
        IrkitError: a rule's SQL is refused, or the query fails (``run_heuristics`` then
            runs the batch's rules alone, so that the one at fault is named).
    """
    import duckdb

    for heuristic in batch:
        problems = check_sql(heuristic.sql)
        if problems:
            raise IrkitError(problems[0])
    union = " UNION ALL ".join(
        f"SELECT {i} AS rule, * FROM ({_HITS.format(body=h.sql)}) AS hits_{i}"
        for i, h in enumerate(batch)
    )
    groups: list[list[_Group]] = [[] for _ in batch]
    try:
        made = db.execute(_KEEP_HITS + union).fetchone()
        if not (made and made[0]):  # DuckDB answers CREATE TABLE AS with its row count
            return groups
        rows = db.execute(_GROUPED.format(iso=_ISO)).fetchall()
    except duckdb.Error as exc:
        raise IrkitError(f"SQL failed: {one_line(str(exc))}") from exc
    for rule, host, key, first, last, count, uids in rows:
        groups[rule].append((host, key, first, last, int(count), list(uids)))
    return groups


def _first_rows(db: duckdb.DuckDBPyConnection, uids: set[str]) -> dict[str, tuple[Any, ...]]:
    """(source, evidence, record, fields, message) of each event in ``uids``: one read of
    the wide columns for every heuristic's findings. An uid held by more than one event
    (a log parsed twice) gives the least of its rows, so the choice does not depend on
    the engine's order."""
    import duckdb

    from irkit.store.dataset import sql_string

    found: dict[str, tuple[Any, ...]] = {}
    wanted = sorted(uids)
    for start in range(0, len(wanted), FIRST_BATCH):
        listed = ", ".join(sql_string(u) for u in wanted[start : start + FIRST_BATCH])
        try:
            rows = db.execute(
                "SELECT uid, source, evidence, record, fields, message FROM events "
                f"WHERE uid IN ({listed})"
            ).fetchall()
        except duckdb.Error as exc:
            raise IrkitError(f"reading the matched events failed: {one_line(str(exc))}") from exc
        for uid, *rest in rows:
            row = tuple(rest)
            known = found.get(uid)
            if known is None or _order(row) < _order(known):
                found[uid] = row
    return found


def _order(row: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, "" if value is None else str(value)) for value in row)


def _findings(
    heuristic: Heuristic, groups: Sequence[_Group], firsts: Mapping[str, tuple[Any, ...]]
) -> list[Finding]:
    findings = []
    for host, key, first, last, count, uids in groups:
        source, evidence, record, fields, message = firsts.get(uids[0], (None,) * 5)
        details = {"key": key} if key else {}
        findings.append(
            Finding(
                ts=first,
                last_seen=last,
                count=count,
                severity=heuristic.level,
                detector=DETECTOR,
                rule=heuristic.id,
                title=heuristic.title,
                description=heuristic.description,
                attack=heuristic.attack,
                event_uid=uids[0],
                event_uids=tuple(uids[:MAX_EVENT_UIDS]),
                all_event_uids=tuple(uids) if len(uids) > MAX_EVENT_UIDS else (),
                source=source or "",
                host=host,
                evidence=evidence or "",
                record=record or "",
                excerpt=_excerpt(heuristic.excerpt, fields, message),
                details=details,
            )
        )
    return findings


def _excerpt(names: Sequence[str], fields: str | None, message: str | None) -> str:
    """The telling fields of the first event as ``Name=value``, else its message."""
    text = ""
    if names and fields:
        try:
            flat = json.loads(fields)
        except ValueError:
            flat = {}
        if isinstance(flat, dict):
            text = " ".join(
                f"{n}={one_line(str(flat[n]))}" for n in names if str(flat.get(n, "")).strip()
            )
    text = text or one_line(message or "")
    return text if len(text) <= EXCERPT_MAX else text[: EXCERPT_MAX - 1] + "…"
