"""Built-in heuristics: behaviour rules as data, each a YAML file holding SQL over ``events``.

A heuristic is ``artifacts/heuristics/<id>.yaml`` (docs/detection.md documents the keys).
Its logic is either ``where:``, a condition on one event, or ``query:``, one SELECT over
``events`` that returns the matching events' ``uid`` and a grouping ``key`` (for counts,
windows and joins: brute force, spraying, "created then added to a group"). Either way
the matches become one finding per heuristic, host and key. The SQL is checked before it
runs: one SELECT statement, no ``;``, no table but ``events`` (and its own CTEs), no table
functions. Each file carries an example that must fire and one that must not;
``irkit.detect.heuristics_lint`` runs both. ``irkit.detect.heuristics_run`` runs them over a
case.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from irkit.artifacts import artifacts_dir, load_yaml
from irkit.detect import rulecache
from irkit.errors import IrkitError
from irkit.model import Severity

if TYPE_CHECKING:
    import duckdb


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
#: Bump when ``Heuristic`` or the checks change: old cache entries are then ignored.
CACHE_VERSION: Final = "2"


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
