"""Behavioural analytics: least-frequency stacking, first-seen entities, rare-pair findings.

An entity kind (a process image, a parent→child pair, a service, a logon…) is data:
``artifacts/analytics/entities.yaml`` says which events name it and which fields give its
values. ``stack`` counts every entity across all hosts and sources in one SQL query over the
case's events, rarest first; ``first_seen`` keeps the entities that appeared only after a
baseline window; ``rare_findings`` turns rare-and-suspicious rows (the rules of
``artifacts/analytics/findings.yaml``) into findings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import functools
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from irkit.artifacts import artifacts_dir
from irkit.detect import DetectorResult
from irkit.errors import IrkitError, UsageError
from irkit.model import MAX_EVENT_UIDS, Finding, Severity

if TYPE_CHECKING:
    from irkit.case import Case

DETECTOR: Final = "analytics"
NORMALISERS: Final = ("text", "lower", "path")
SOURCES: Final = ("evtx", "osquery")
CONDITIONS: Final = ("basename_in", "contains_any")
#: Field names the definitions may use: Sigma names, osquery columns, dotted paths.
FIELD_NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*$")
_TEMPLATE_FIELD: Final = re.compile(r"\{([^{}]*)\}")


@dataclasses.dataclass(frozen=True, slots=True)
class Value:
    """How one column's value comes out of an event's fields."""

    fields: tuple[str, ...] = ()
    template: str = ""
    constant: str | None = None
    regex: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Extract:
    """One kind of event that names an entity, and how its values are read."""

    source: str
    values: Mapping[str, Value]
    channels: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    queries: tuple[str, ...] = ()
    match: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    exclude: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class EntityKind:
    """An entity kind of entities.yaml: its columns and the events that give it."""

    name: str
    title: str
    columns: tuple[str, ...]
    normalise: Mapping[str, str]
    labels: Mapping[str, Mapping[str, str]]
    required: tuple[str, ...]
    extracts: tuple[Extract, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Definitions:
    """Everything entities.yaml says."""

    kinds: Mapping[str, EntityKind]
    empty_values: tuple[str, ...]
    path_prefixes: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class StackRow:
    """One stacked entity: its values, how often and where it was seen."""

    kind: str
    columns: tuple[str, ...]
    values: tuple[str, ...]
    count: int
    hosts: tuple[str, ...]
    sources: tuple[str, ...]
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    event_uids: tuple[str, ...]

    def value(self, column: str) -> str:
        """The value of one column ('' when the entity has none)."""
        return self.values[self.columns.index(column)]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the values by column, then the counts and times."""
        return {
            "kind": self.kind,
            **dict(zip(self.columns, self.values, strict=True)),
            "count": self.count,
            "host_count": len(self.hosts),
            "hosts": list(self.hosts),
            "sources": list(self.sources),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "event_uids": list(self.event_uids),
        }


def _iso(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat() if value is not None else ""


# --- definitions ---------------------------------------------------------------------------


class _InvalidError(IrkitError):
    """A definition file that does not say what irkit expects."""


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str | int) and not isinstance(value, bool):
        return (str(value),)
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise _InvalidError(f"{where}: expected a string or a non-empty list of strings, got {value!r}")


def _field(name: str, where: str) -> str:
    if not FIELD_NAME.match(name):
        raise _InvalidError(f"{where}: {name!r} is not a field name")
    return name


def _value(spec: object, where: str) -> Value:
    if isinstance(spec, str | list):
        return Value(fields=tuple(_field(f, where) for f in _strings(spec, where)))
    if not isinstance(spec, dict) or len(spec.keys() - {"regex"}) != 1:
        raise _InvalidError(f"{where}: expected a field, a list of fields or one of template/value")
    if "template" in spec:
        template = str(spec["template"])
        names = _TEMPLATE_FIELD.findall(template)
        if not names:
            raise _InvalidError(f"{where}: the template names no {{Field}}")
        return Value(fields=tuple(_field(n, where) for n in names), template=template)
    if "value" in spec:
        return Value(constant=str(spec["value"]))
    if "field" in spec:
        regex = str(spec.get("regex", ""))
        if regex:
            try:
                if re.compile(regex).groups != 1:
                    raise _InvalidError(f"{where}: the regex needs exactly one group")
            except re.error as exc:
                raise _InvalidError(f"{where}: bad regex: {exc}") from exc
        return Value(fields=(_field(str(spec["field"]), where),), regex=regex)
    raise _InvalidError(f"{where}: unknown value keys {sorted(spec)}")


def _extract(spec: object, columns: tuple[str, ...], where: str) -> Extract:
    if not isinstance(spec, dict):
        raise _InvalidError(f"{where}: expected a mapping")
    allowed = {"source", "channels", "event_ids", "queries", "values", "match", "exclude"}
    if unknown := spec.keys() - allowed:
        raise _InvalidError(f"{where}: unknown keys {sorted(unknown)}")
    source = spec.get("source")
    if source not in SOURCES:
        raise _InvalidError(f"{where}: source must be one of {', '.join(SOURCES)}")
    raw_values = spec.get("values")
    if not isinstance(raw_values, dict) or not raw_values:
        raise _InvalidError(f"{where}: values must map columns to fields")
    if unknown := raw_values.keys() - set(columns):
        raise _InvalidError(f"{where}: values for unknown columns {sorted(unknown)}")
    values = {c: _value(v, f"{where}.values.{c}") for c, v in raw_values.items()}
    filters: dict[str, dict[str, tuple[str, ...]]] = {}
    for key in ("match", "exclude"):
        raw = spec.get(key, {})
        if not isinstance(raw, dict):
            raise _InvalidError(f"{where}.{key}: expected field -> [values]")
        filters[key] = {
            _field(str(k), f"{where}.{key}"): _strings(v, f"{where}.{key}.{k}")
            for k, v in raw.items()
        }
    if source == "evtx":
        if "queries" in spec or not spec.get("channels") or not spec.get("event_ids"):
            raise _InvalidError(
                f"{where}: an evtx extract needs channels and event_ids, no queries"
            )
        return Extract(
            source,
            values,
            channels=_strings(spec["channels"], f"{where}.channels"),
            event_ids=_strings(spec["event_ids"], f"{where}.event_ids"),
            match=filters["match"],
            exclude=filters["exclude"],
        )
    if "channels" in spec or "event_ids" in spec or not spec.get("queries"):
        raise _InvalidError(f"{where}: an osquery extract needs queries, no channels or event_ids")
    return Extract(
        source,
        values,
        queries=_strings(spec["queries"], f"{where}.queries"),
        match=filters["match"],
        exclude=filters["exclude"],
    )


def _kind(name: str, spec: object) -> EntityKind:
    where = f"kinds.{name}"
    if not isinstance(spec, dict):
        raise _InvalidError(f"{where}: expected a mapping")
    if unknown := spec.keys() - {"title", "columns", "required", "from"}:
        raise _InvalidError(f"{where}: unknown keys {sorted(unknown)}")
    raw_columns = spec.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise _InvalidError(f"{where}.columns: expected column -> options")
    columns = tuple(_field(str(c), f"{where}.columns") for c in raw_columns)
    normalise: dict[str, str] = {}
    labels: dict[str, dict[str, str]] = {}
    for column, options in raw_columns.items():
        options = options or {}
        if not isinstance(options, dict) or options.keys() - {"normalise", "labels"}:
            raise _InvalidError(f"{where}.columns.{column}: only normalise and labels")
        normalise[column] = str(options.get("normalise", "text"))
        if normalise[column] not in NORMALISERS:
            raise _InvalidError(f"{where}.columns.{column}: normalise is one of {NORMALISERS}")
        raw_labels = options.get("labels", {})
        if not isinstance(raw_labels, dict):
            raise _InvalidError(f"{where}.columns.{column}.labels: expected value -> label")
        labels[column] = {str(k): str(v) for k, v in raw_labels.items()}
    required = _strings(spec.get("required", [columns[0]]), f"{where}.required")
    if unknown := set(required) - set(columns):
        raise _InvalidError(f"{where}.required: unknown columns {sorted(unknown)}")
    raw_from = spec.get("from")
    if not isinstance(raw_from, list) or not raw_from:
        raise _InvalidError(f"{where}.from: expected a list of extracts")
    extracts = tuple(_extract(e, columns, f"{where}.from[{i}]") for i, e in enumerate(raw_from))
    for index, extract in enumerate(extracts):
        if missing := set(required) - extract.values.keys():
            raise _InvalidError(f"{where}.from[{index}]: no value for required {sorted(missing)}")
    return EntityKind(
        name, str(spec.get("title", name)), columns, normalise, labels, required, extracts
    )


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise IrkitError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise IrkitError(f"{path}: expected a mapping at the top")
    return data


def load_definitions(path: Path | None = None) -> Definitions:
    """Read and check entities.yaml (irkit's own unless a path is given)."""
    path = path or artifacts_dir() / "analytics" / "entities.yaml"
    data = _load_yaml(path)
    try:
        if unknown := data.keys() - {"kinds", "empty_values", "path_prefixes"}:
            raise _InvalidError(f"unknown keys {sorted(unknown)}")
        raw_kinds = data.get("kinds")
        if not isinstance(raw_kinds, dict) or not raw_kinds:
            raise _InvalidError("kinds: expected name -> kind")
        prefixes = data.get("path_prefixes", {})
        if not isinstance(prefixes, dict):
            raise _InvalidError("path_prefixes: expected prefix -> replacement")
        empty = data.get("empty_values", [""])
        return Definitions(
            kinds={str(k): _kind(str(k), v) for k, v in raw_kinds.items()},
            empty_values=tuple(str(v) for v in empty) if isinstance(empty, list) else ("",),
            path_prefixes={str(k).lower(): str(v or "") for k, v in prefixes.items()},
        )
    except _InvalidError as exc:
        raise IrkitError(f"{path}: {exc.message}") from exc


@functools.cache
def _definitions() -> Definitions:
    return load_definitions()


def kinds() -> tuple[str, ...]:
    """The entity kinds irkit knows, in the order of entities.yaml."""
    return tuple(_definitions().kinds)


def entity_kind(name: str) -> EntityKind:
    """One entity kind; an unknown name is a usage error that lists the kinds."""
    known = _definitions().kinds
    if name not in known:
        raise UsageError(
            f"unknown entity kind {name!r}",
            hint=f"use one of: {', '.join(known)}",
        )
    return known[name]


# --- SQL -----------------------------------------------------------------------------------


class _Sql:
    """Builds one query with named parameters (the pieces are written in any order)."""

    def __init__(self, definitions: Definitions) -> None:
        self.params: dict[str, Any] = {}
        self.definitions = definitions

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def params_in(self, values: Sequence[Any]) -> str:
        return "(" + ", ".join(self.param(v) for v in values) + ")"

    def raw(self, name: str) -> str:
        """A field's trimmed text, NULL when it is absent or an 'empty' value."""
        text = f"trim(json_extract_string(fields, {self.param(name)}))"
        return f"(CASE WHEN {text} IN {self.params_in(self.definitions.empty_values)} THEN NULL ELSE {text} END)"  # noqa: E501

    def value(self, spec: Value) -> str:
        if spec.constant is not None:
            return self.param(spec.constant)
        if spec.regex:
            found = f"regexp_extract({self.raw(spec.fields[0])}, {self.param(spec.regex)}, 1)"
            return f"nullif(trim({found}), '')"
        if spec.template:
            parts: list[str] = []
            last = 0
            for match in _TEMPLATE_FIELD.finditer(spec.template):
                parts.append(self.param(spec.template[last : match.start()]))
                parts.append(f"coalesce({self.raw(match.group(1))}, '')")
                last = match.end()
            parts.append(self.param(spec.template[last:]))
            none = " AND ".join(f"{self.raw(f)} IS NULL" for f in spec.fields)
            return f"(CASE WHEN {none} THEN NULL ELSE concat({', '.join(parts)}) END)"
        return f"coalesce({', '.join(self.raw(f) for f in spec.fields)})"

    def normalised(self, column: str, how: str, labels: Mapping[str, str]) -> str:
        """A column's value after its normalisation and labels (a column name goes in)."""
        expr = column
        if how == "lower":
            expr = f"lower({column})"
        elif how == "path":
            cases = " ".join(
                f"WHEN starts_with(lower({column}), {self.param(prefix)}) THEN "
                f"{self.param(replacement)} || lower({column})[{len(prefix) + 1}:]"
                for prefix, replacement in self.definitions.path_prefixes.items()
            )
            # EVTX speaks of Windows; elsewhere a backslash or a drive letter says Windows.
            windows = (
                rf"source = 'evtx' OR contains({column}, '\') "
                f"OR regexp_matches({column}, '^[A-Za-z]:')"
            )
            expr = f"(CASE WHEN NOT ({windows}) THEN {column} {cases} ELSE lower({column}) END)"
        if labels:
            cases = " ".join(
                f"WHEN {self.param(k)} THEN {self.param(v)}" for k, v in labels.items()
            )
            expr = f"(CASE {expr} {cases} ELSE {expr} END)"
        return expr


def _osquery_artifacts(case: Case) -> list[str]:
    rows = case.db.execute(
        "SELECT DISTINCT artifact FROM events WHERE source = 'osquery' AND artifact IS NOT NULL"
    ).fetchall()
    return sorted(str(row[0]) for row in rows)


def _select(
    sql: _Sql,
    kind: EntityKind,
    extract: Extract,
    osquery_artifacts: Sequence[str],
    sources: Sequence[str],
    hosts: Sequence[str],
) -> str | None:
    """One extract's events as (uid, ts, host, source, r0, r1…): the raw values, one per
    column of the kind; None when no event can match."""
    if sources and extract.source not in sources:
        return None
    if extract.source == "osquery":
        from irkit.sources.osquery import short_query

        names = [
            name
            for name in osquery_artifacts
            if any(fnmatch.fnmatch(short_query(name).lower(), q.lower()) for q in extract.queries)
        ]
        if not names:
            return None
    where = [f"source = {sql.param(extract.source)}"]
    if extract.source == "evtx":
        where.append(f"artifact IN {sql.params_in(extract.channels)}")
        where.append(f"event_id IN {sql.params_in(extract.event_ids)}")
    else:
        where.append(f"artifact IN {sql.params_in(names)}")
        where.append("json_extract_string(fields, 'osquery.time_column') IS NULL")
        where.append("coalesce(event_id, '') <> 'removed'")
    if hosts:
        where.append(f"lower(host) IN {sql.params_in([h.lower() for h in hosts])}")
    for name, patterns in extract.match.items():
        field = f"coalesce(json_extract_string(fields, {sql.param(name)}), '')"
        where.append("(" + " OR ".join(f"{field} ILIKE {sql.param(p)}" for p in patterns) + ")")
    for name, values in extract.exclude.items():
        field = f"coalesce(trim(json_extract_string(fields, {sql.param(name)})), '')"
        where.append(f"{field} NOT IN {sql.params_in(values)}")
    cells = []
    for index, column in enumerate(kind.columns):
        spec = extract.values.get(column)
        cells.append(f"{'NULL::VARCHAR' if spec is None else sql.value(spec)} AS r{index}")
    return f"SELECT uid, ts, host, source, {', '.join(cells)} FROM events WHERE " + " AND ".join(
        where
    )


def stack(
    case: Case,
    kind: str,
    rare: int | None = None,
    sources: Sequence[str] = (),
    hosts: Sequence[str] = (),
) -> list[StackRow]:
    """Every entity of a kind with its count, hosts and first and last times, rarest first.

    ``rare`` keeps the entities seen at most that many times; ``sources`` and ``hosts``
    keep the events of those sources and hosts (hosts compared without case).
    """
    spec = entity_kind(kind)
    if rare is not None and rare < 1:
        raise UsageError(f"--rare {rare}: the count must be 1 or more")
    sql = _Sql(_definitions())
    osquery = _osquery_artifacts(case) if any(e.source == "osquery" for e in spec.extracts) else []
    selects = [
        s
        for e in spec.extracts
        if (s := _select(sql, spec, e, osquery, sources, hosts)) is not None
    ]
    if not selects:
        return []
    cols = [f"c{i}" for i in range(len(spec.columns))]
    required = " AND ".join(f"c{spec.columns.index(c)} IS NOT NULL" for c in spec.required)
    having = f" HAVING count(*) <= {sql.param(rare)}" if rare is not None else ""
    normalised = ", ".join(
        f"{sql.normalised(f'r{i}', spec.normalise[c], spec.labels.get(c, {}))} AS c{i}"
        for i, c in enumerate(spec.columns)
    )
    query = f"""
        WITH raw AS ({" UNION ALL ".join(selects)}),
        hits AS (SELECT uid, ts, host, source, {normalised} FROM raw)
        SELECT {", ".join(cols)}, count(*) AS n,
               list(DISTINCT host ORDER BY host) FILTER (WHERE coalesce(host, '') <> ''),
               list(DISTINCT source ORDER BY source),
               min(ts) AS first, max(ts),
               list(uid ORDER BY ts NULLS LAST, uid)[1:{MAX_EVENT_UIDS}]
        FROM hits WHERE {required}
        GROUP BY ALL{having}
        ORDER BY n, first NULLS LAST, {", ".join(f"{c} NULLS FIRST" for c in cols)}
    """
    rows = case.db.execute(query, sql.params).fetchall()
    width = len(cols)
    return [
        StackRow(
            kind=kind,
            columns=spec.columns,
            values=tuple("" if v is None else str(v) for v in row[:width]),
            count=int(row[width]),
            hosts=tuple(row[width + 1] or ()),
            sources=tuple(row[width + 2] or ()),
            first_seen=row[width + 3],
            last_seen=row[width + 4],
            event_uids=tuple(row[width + 5] or ()),
        )
        for row in rows
    ]


def first_seen(case: Case, kind: str, baseline_until: dt.datetime) -> list[StackRow]:
    """Entities first seen after the baseline window (first appearance > baseline_until).

    Sorted by first appearance, then rarest first. An entity whose events all lack a time
    is left out: it cannot be placed on either side of the baseline.
    """
    if baseline_until.tzinfo is None:
        baseline_until = baseline_until.replace(tzinfo=dt.UTC)
    rows = [
        r for r in stack(case, kind) if r.first_seen is not None and r.first_seen > baseline_until
    ]
    return sorted(rows, key=lambda r: (r.first_seen, r.count, r.values))


# --- rare-and-suspicious findings ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """A test on one column of a stacked row: ``basename_in`` or ``contains_any`` a list."""

    column: str
    test: str
    entries: tuple[str, ...]
    tags: Mapping[str, tuple[str, ...]]

    def matches(self, row: StackRow) -> tuple[str, ...] | None:
        """The matched entry's ATT&CK tags (maybe none) when the row matches, else None."""
        value = row.value(self.column).lower()
        if not value:
            return None
        if self.test == "basename_in":
            name = re.split(r"[\\/]", value.strip().strip('"'))[-1]
            return self.tags.get(name, ()) if name in self.entries else None
        for entry in self.entries:
            if entry in value:
                return self.tags.get(entry, ())
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class RareRule:
    """A rule of findings.yaml: rare rows of a kind that meet every condition."""

    id: str
    kind: str
    max_count: int
    title: str
    description: str
    severity: Severity
    attack: tuple[str, ...]
    when: tuple[Condition, ...]
    escalate_to: Severity | None = None
    escalate_when: tuple[Condition, ...] = ()
    unless: tuple[Condition, ...] = ()


def _conditions(raw: object, kind: EntityKind, lists: Mapping[str, Any], where: str) -> Any:
    if not isinstance(raw, dict) or not raw:
        raise _InvalidError(f"{where}: expected column -> condition")
    found = []
    for column, test in raw.items():
        if column not in kind.columns:
            raise _InvalidError(f"{where}: {kind.name} has no column {column!r}")
        if not isinstance(test, dict) or len(test) != 1 or next(iter(test)) not in CONDITIONS:
            raise _InvalidError(f"{where}.{column}: one of {', '.join(CONDITIONS)}")
        name, list_name = next(iter(test.items()))
        if list_name not in lists:
            raise _InvalidError(f"{where}.{column}: no list {list_name!r}")
        entries = lists[list_name]
        tags = {k: tuple(v or ()) for k, v in entries.items()} if isinstance(entries, dict) else {}
        found.append(Condition(str(column), name, tuple(entries), tags))
    return tuple(found)


def _severity(value: object, where: str) -> Severity:
    try:
        return Severity(str(value))
    except ValueError as exc:
        raise _InvalidError(f"{where}: severity is one of {', '.join(Severity)}") from exc


def load_rules(path: Path | None = None, definitions: Definitions | None = None) -> list[RareRule]:
    """Read and check findings.yaml (irkit's own unless a path is given)."""
    path = path or artifacts_dir() / "analytics" / "findings.yaml"
    known = (definitions or _definitions()).kinds
    data = _load_yaml(path)
    rules = []
    try:
        lists = data.get("lists", {})
        if not isinstance(lists, dict):
            raise _InvalidError("lists: expected name -> list")
        for name, entries in lists.items():
            if not isinstance(entries, list | dict) or not entries:
                raise _InvalidError(f"lists.{name}: expected a non-empty list or mapping")
            if any(not isinstance(e, str) or e != e.lower() for e in entries):
                raise _InvalidError(f"lists.{name}: entries are lower-case strings")
        raw_rules = data.get("rules")
        if not isinstance(raw_rules, dict) or not raw_rules:
            raise _InvalidError("rules: expected id -> rule")
        allowed = {"kind", "max_count", "title", "description", "severity", "attack", "when"}
        for rule_id, spec in raw_rules.items():
            where = f"rules.{rule_id}"
            if not isinstance(spec, dict) or spec.keys() - allowed - {"escalate", "unless"}:
                raise _InvalidError(f"{where}: expected a mapping of {sorted(allowed)}")
            if spec.get("kind") not in known:
                raise _InvalidError(f"{where}: kind is one of {', '.join(known)}")
            kind = known[spec["kind"]]
            max_count = spec.get("max_count")
            if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 1:
                raise _InvalidError(f"{where}: max_count is a whole number, 1 or more")
            attack = _strings(spec.get("attack", []) or [""], f"{where}.attack")
            if any(not re.match(r"^attack\.[a-z0-9_.]+$", a) for a in attack):
                raise _InvalidError(f"{where}.attack: tags look like attack.t1059.001")
            escalate = spec.get("escalate") or {}
            if not isinstance(escalate, dict) or escalate.keys() - {"severity", "when"}:
                raise _InvalidError(f"{where}.escalate: expected severity and when")
            rules.append(
                RareRule(
                    id=str(rule_id),
                    kind=kind.name,
                    max_count=max_count,
                    title=str(spec.get("title", rule_id)),
                    description=str(spec.get("description", "")),
                    severity=_severity(spec.get("severity"), where),
                    attack=attack,
                    when=_conditions(spec.get("when"), kind, lists, f"{where}.when"),
                    escalate_to=(
                        _severity(escalate["severity"], f"{where}.escalate") if escalate else None
                    ),
                    escalate_when=(
                        _conditions(escalate.get("when"), kind, lists, f"{where}.escalate.when")
                        if escalate
                        else ()
                    ),
                    unless=(
                        _conditions(spec["unless"], kind, lists, f"{where}.unless")
                        if "unless" in spec
                        else ()
                    ),
                )
            )
    except _InvalidError as exc:
        raise IrkitError(f"{path}: {exc.message}") from exc
    return rules


def _all_match(conditions: Sequence[Condition], row: StackRow) -> tuple[str, ...] | None:
    tags: list[str] = []
    for condition in conditions:
        found = condition.matches(row)
        if found is None:
            return None
        tags += found
    return tuple(tags)


def rare_findings(case: Case) -> DetectorResult:
    """Rare-and-suspicious entities of the case as findings (detector ``analytics``).

    Each rule of findings.yaml stacks its kind, keeps the rows seen at most ``max_count``
    times that meet its conditions, and gives one finding per row, linked to its events.
    """
    started = time.perf_counter()
    result = DetectorResult(DETECTOR)
    rules = load_rules()
    matched: list[tuple[RareRule, StackRow, Severity, tuple[str, ...]]] = []
    fired: dict[str, int] = {}
    for rule in rules:
        fired[rule.id] = 0
        for row in stack(case, rule.kind, rare=rule.max_count):
            tags = _all_match(rule.when, row)
            if tags is None or not row.event_uids or row.first_seen is None:
                continue
            if any(c.matches(row) is not None for c in rule.unless):
                continue
            severity = rule.severity
            if rule.escalate_to is not None:
                extra = _all_match(rule.escalate_when, row)
                if extra is not None:
                    severity, tags = rule.escalate_to, tags + extra
            matched.append((rule, row, severity, tags))
            fired[rule.id] += 1
    firsts = sorted({row.event_uids[0] for _, row, _, _ in matched})
    events: dict[str, tuple[str, str, str, str]] = {}
    if firsts:
        placeholders = ", ".join("?" * len(firsts))
        for uid, source, host, evidence, record in case.db.execute(
            f"SELECT uid, source, host, evidence, record FROM events WHERE uid IN ({placeholders})",
            firsts,
        ).fetchall():
            events[uid] = (source or "", host or "", evidence or "", record or "")
    for rule, row, severity, tags in matched:
        source, host, evidence, record = events.get(row.event_uids[0], ("", "", "", ""))
        result.findings.append(
            Finding(
                ts=_iso(row.first_seen),
                severity=severity,
                detector=DETECTOR,
                rule=rule.id,
                title=rule.title,
                description=rule.description,
                event_uid=row.event_uids[0],
                source=source,
                host=host,
                evidence=evidence,
                record=record,
                details={
                    "kind": row.kind,
                    **dict(zip(row.columns, row.values, strict=True)),
                    "stack_count": str(row.count),
                    "max_count": str(rule.max_count),
                    "hosts": ", ".join(row.hosts),
                },
                last_seen=_iso(row.last_seen),
                count=row.count,
                attack=tuple(sorted(set(rule.attack + tags))),
                event_uids=row.event_uids,
                excerpt=" → ".join(v for v in row.values if v),
            )
        )
    result.findings.sort(key=lambda f: (f.ts, f.rule, f.event_uid))
    result.report = {"rules": len(rules), "fired": fired}
    result.seconds = time.perf_counter() - started
    return result
