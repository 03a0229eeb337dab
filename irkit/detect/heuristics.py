"""Built-in heuristics: behaviour rules as data, each a YAML file holding SQL over ``events``.

A heuristic is ``artifacts/heuristics/<id>.yaml`` (docs/detection.md documents the keys).
Its logic is either ``where:``, a condition on one event, or ``query:``, one SELECT over
``events`` that returns the matching events' ``uid`` and a grouping ``key`` (for counts,
windows and joins: brute force, spraying, "created then added to a group"). Either way
the matches become one finding per heuristic, host and key. The SQL is checked before it
runs: one SELECT statement, no ``;``, no table but ``events`` (and its own CTEs), no table
functions. Each file carries an example that must fire and one that must not;
``irkit.detect.heuristics_lint`` runs both.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from irkit.artifacts import artifacts_dir, load_yaml
from irkit.detect import NO_PROGRESS, DetectorResult, ScanProgress, rulecache
from irkit.errors import EngineError, IrkitError
from irkit.model import MAX_EVENT_UIDS, Finding, ParseWarning, Severity
from irkit.model import severity_rank as _rank

if TYPE_CHECKING:
    import duckdb

    from irkit.store.dataset import EventStore

DETECTOR: Final = "heuristic"
REQUIRED: Final = ("id", "title", "level", "attack", "description", "falsepositives", "examples")
OPTIONAL: Final = ("where", "query", "key", "excerpt", "references")
#: ``attack.t1059``, ``attack.t1059.001`` or a tactic such as ``attack.credential_access``.
ATTACK_ID: Final = re.compile(r"^attack\.(t\d{4}(\.\d{3})?|[a-z]+(_[a-z]+)*)$")
TACTICS: Final = frozenset(
    {
        "reconnaissance",
        "resource_development",
        "initial_access",
        "execution",
        "persistence",
        "privilege_escalation",
        "defense_evasion",
        "credential_access",
        "discovery",
        "lateral_movement",
        "collection",
        "command_and_control",
        "exfiltration",
        "impact",
    }
)
#: ``field('Name')``: one value of the event's flat ``fields`` JSON (NULL when absent).
FIELD_MACRO: Final = (
    "CREATE OR REPLACE TEMP MACRO field(name) AS "
    "json_extract_string(fields, '$.\"' || name || '\"')"
)
#: Scalar functions a rule may not call (settings, environment, sequences).
BLOCKED_FUNCTIONS: Final = frozenset(
    {"getenv", "current_setting", "nextval", "currval", "setseed", "json_serialize_sql"}
)
EXCERPT_MAX: Final = 300
#: Bump when ``Heuristic`` or the checks change: old cache entries are then ignored.
CACHE_VERSION: Final = "2"
_ISO: Final = "%Y-%m-%dT%H:%M:%S.%f+00:00"


@dataclasses.dataclass(frozen=True, slots=True)
class Heuristic:
    """One built-in heuristic, as its YAML file states it."""

    id: str
    title: str
    level: Severity
    attack: tuple[str, ...]
    description: str
    falsepositives: tuple[str, ...]
    sql: str
    excerpt: tuple[str, ...] = ()
    fires: tuple[Mapping[str, Any], ...] = ()
    silent: tuple[Mapping[str, Any], ...] = ()
    path: str = ""
    #: A whole ``query:`` (not a ``where:`` condition).
    query: bool = False


def heuristics_dir() -> Path:
    """The shipped heuristics: ``artifacts/heuristics``."""
    return artifacts_dir() / "heuristics"


def _files(folder: Path | None) -> list[Path]:
    folder = folder or heuristics_dir()
    if not folder.is_dir():
        raise IrkitError(f"heuristics folder not found: {folder}")
    return sorted(folder.glob("*.yaml"))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(v.strip() for v in value)
    return None


def parse_heuristic(path: Path) -> tuple[Heuristic | None, list[str]]:
    """Read one file: the heuristic (None when unusable) and the problems found."""
    import yaml

    name = path.name
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, [f"{name}: cannot read: {one_line(str(exc))}"]
    if not isinstance(data, dict):
        return None, [f"{name}: expected a mapping"]
    problems = [f"{name}: missing key {k!r}" for k in REQUIRED if k not in data]
    problems += [f"{name}: unknown key {k!r}" for k in data if k not in (*REQUIRED, *OPTIONAL)]
    if data.get("id") != path.stem:
        problems.append(f"{name}: id {data.get('id')!r} is not the file name {path.stem!r}")
    level = data.get("level")
    if level not in [s.value for s in Severity]:
        problems.append(f"{name}: bad level {level!r} (informational, low, medium, high, critical)")
    attack = _strings(data.get("attack")) or ()
    if not attack:
        problems.append(f"{name}: 'attack' must be a non-empty list of ATT&CK tags")
    for tag in attack:
        bad_tactic = not tag.startswith("attack.t") and tag.removeprefix("attack.") not in TACTICS
        if not ATTACK_ID.match(tag) or bad_tactic:
            problems.append(f"{name}: bad ATT&CK tag {tag!r} (attack.t1234[.001] or a tactic)")
    for key in ("title", "description"):
        if key in data and not _text(data[key]):
            problems.append(f"{name}: {key!r} must be non-empty text")
    falsepositives = _strings(data.get("falsepositives"))
    if "falsepositives" in data and not falsepositives:
        problems.append(f"{name}: 'falsepositives' must be a non-empty list of text")
    excerpt = _strings(data.get("excerpt", [])) if data.get("excerpt") else ()
    if excerpt is None:
        problems.append(f"{name}: 'excerpt' must be a list of field names")
    where, query, key = _text(data.get("where")), _text(data.get("query")), _text(data.get("key"))
    if bool(where) == bool(query):
        problems.append(f"{name}: give exactly one of 'where' and 'query'")
    if query and key:
        problems.append(f"{name}: 'key' goes with 'where'; a 'query' returns its own key column")
    sql = compile_sql(where, key) if where else query
    if sql:
        problems += [f"{name}: {p}" for p in check_sql(sql)]
    examples = data.get("examples")
    fires: tuple[Mapping[str, Any], ...] = ()
    silent: tuple[Mapping[str, Any], ...] = ()
    if "examples" in data:
        if isinstance(examples, dict):
            fires, silent = _events(examples.get("fires")), _events(examples.get("silent"))
        if not fires or not silent:
            problems.append(f"{name}: 'examples' needs non-empty lists 'fires' and 'silent'")
    if problems:
        return None, problems
    return (
        Heuristic(
            id=path.stem,
            title=_text(data["title"]),
            level=Severity(str(level)),
            attack=attack,
            description=" ".join(_text(data["description"]).split()),
            falsepositives=falsepositives or (),
            sql=sql,
            excerpt=excerpt or (),
            fires=fires,
            silent=silent,
            path=str(path),
            query=bool(query),
        ),
        [],
    )


def _events(value: Any) -> tuple[Mapping[str, Any], ...]:
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return tuple(value)
    return ()


def one_line(text: str) -> str:
    """Whitespace runs as single spaces."""
    return " ".join(text.split())


def load_heuristics(folder: Path | None = None) -> list[Heuristic]:
    """Every heuristic of ``folder`` (default: the shipped set), by id.

    Raises:
        IrkitError: a file is malformed (``lint_heuristics`` lists every problem).
    """
    loaded = []
    for path in _files(folder):
        heuristic, problems = parse_heuristic(path)
        if heuristic is None:
            raise IrkitError(problems[0], hint="run: irkit rules lint")
        loaded.append(heuristic)
    return loaded


def scan_heuristics(folder: Path | None = None) -> list[Heuristic]:
    """``load_heuristics`` as a scan needs them: without their examples (only the linter
    runs those), from a cache named by the files' names and contents (and DuckDB's
    version, which checked their SQL). Reading and checking the 204 shipped files costs
    a scan ~0.6 s; the cache, a few ms.

    Raises:
        IrkitError: as ``load_heuristics``.
    """
    import duckdb

    files = _files(folder)
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, duckdb.__version__]).encode())
    try:
        for path in files:
            digest.update(
                f"{path.name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\0".encode()
            )
    except OSError:  # load_heuristics names the file
        return [_without_examples(h) for h in load_heuristics(folder)]
    cache = rulecache.cache_dir("heuristics") / f"{digest.hexdigest()}.json"
    items = rulecache.read_items(cache)
    if items is not None and len(items) == len(files):
        try:
            cached = [_from_cache(item, path) for item, path in zip(items, files, strict=True)]
        except (TypeError, ValueError, KeyError):
            pass  # compiled again below
        else:
            _CHECKED.update(h.sql for h in cached)
            return cached
    loaded = [_without_examples(h) for h in load_heuristics(folder)]
    rulecache.write_items(cache, [_to_cache(h) for h in loaded])
    return loaded


def _without_examples(heuristic: Heuristic) -> Heuristic:
    return dataclasses.replace(heuristic, fires=(), silent=())


def _to_cache(heuristic: Heuristic) -> dict[str, Any]:
    item = {f.name: getattr(heuristic, f.name) for f in dataclasses.fields(Heuristic)}
    for name in ("fires", "silent", "path"):  # the path is the file's, wherever it is now
        del item[name]
    item["level"] = heuristic.level.value
    return item


def _from_cache(item: dict[str, Any], path: Path) -> Heuristic:
    if item.get("id") != path.stem:
        raise ValueError("cache out of step with the files")
    tuples = {k: tuple(item[k]) for k in ("attack", "falsepositives", "excerpt")}
    return Heuristic(**{**item, **tuples, "level": Severity(item["level"]), "path": str(path)})


# --- SQL: compiling and checking -----------------------------------------------------------


def compile_sql(where: str, key: str = "") -> str:
    """A ``where:`` rule as the query every heuristic is: events' ``uid`` and ``key``."""
    return f"SELECT uid, CAST({key or 'NULL'} AS VARCHAR) AS key FROM events WHERE ({where})"


#: SQL known to pass ``check_sql``: heuristics read from the cache were checked when it
#: was written, by the same DuckDB (0.3 s a scan to check the 204 again).
_CHECKED: Final[set[str]] = set()


def check_sql(sql: str) -> list[str]:
    """Problems that keep ``sql`` from being a safe read of ``events`` (empty: none)."""
    return [] if sql in _CHECKED else list(_check(sql))


@functools.lru_cache(maxsize=4096)
def _check(sql: str) -> tuple[str, ...]:
    """``check_sql``, once a process for each text: a heuristic is checked when it is
    loaded and again before it runs (1 ms each, 204 of them)."""
    import duckdb

    if ";" in sql:
        return ("SQL must be one statement without ';'",)
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        return (f"SQL does not parse: {one_line(str(exc))}",)
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        return ("SQL must be a single SELECT",)
    row = _scratch().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True, "error_message": "no parse tree"}
    if tree.get("error"):
        return (f"SQL does not parse: {one_line(str(tree.get('error_message')))}",)
    ctes: set[str] = set()
    tables: set[str] = set()
    functions: set[str] = set()
    problems: list[str] = []
    _walk(tree, ctes, tables, functions, problems)
    for table in sorted(tables - ctes - {"events"}):
        problems.append(f"SQL reads {table!r}: only 'events' (and the query's own CTEs)")
    for function in sorted(functions & BLOCKED_FUNCTIONS):
        problems.append(f"SQL calls {function}(), which rules may not use")
    return tuple(problems)


@functools.cache
def _scratch() -> duckdb.DuckDBPyConnection:
    """An empty in-memory database that only parses SQL (one per process)."""
    import duckdb

    return duckdb.connect()


def _walk(
    node: Any, ctes: set[str], tables: set[str], functions: set[str], problems: list[str]
) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, tables, functions, problems)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "BASE_TABLE":
        name = str(node.get("table_name", "")).lower()
        if node.get("schema_name") or node.get("catalog_name"):
            name = f"{node.get('catalog_name') or ''}.{node.get('schema_name') or ''}.{name}"
        tables.add(name)
    elif kind == "TABLE_FUNCTION":
        problems.append("SQL calls a table function: only 'events' may be read")
    if node.get("class") == "FUNCTION":
        functions.add(str(node.get("function_name", "")).lower())
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        for entry in cte_map.get("map") or []:
            if isinstance(entry, dict) and entry.get("key"):
                ctes.add(str(entry["key"]).lower())
    for value in node.values():
        _walk(value, ctes, tables, functions, problems)


# --- running -------------------------------------------------------------------------------

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
        together = _run_batch(case.db, [chosen[i] for i in unit]) if len(unit) > 1 else None
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
        groups = _run_batch(db, [heuristic], alone=True)
        return groups[0] if groups else []
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


def _run_batch(
    db: duckdb.DuckDBPyConnection, batch: Sequence[Heuristic], alone: bool = False
) -> list[list[_Group]] | None:
    """Each heuristic's groups, the batch's matches collected by one query (each rule's
    own query, its filters kept, joined by ``UNION ALL``) and grouped by another. None
    when a rule's SQL is refused or the batch fails, so that each runs alone and the one
    at fault is named; ``alone`` (one rule): its error is raised instead.

    Raises:
        IrkitError: ``alone``, and the rule's SQL is refused or fails.
    """
    import duckdb

    for heuristic in batch:
        problems = check_sql(heuristic.sql)
        if problems:
            if alone:
                raise IrkitError(problems[0])
            return None
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
        if alone:
            raise IrkitError(f"SQL failed: {one_line(str(exc))}") from exc
        return None
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
