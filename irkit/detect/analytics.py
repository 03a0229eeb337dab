"""Behavioural analytics: least-frequency stacking, first-seen entities, rare-pair findings.

An entity kind (a process image, a parent→child pair, a service, a logon…) is data:
``artifacts/analytics/entities.yaml`` says which events name it and which fields give its
values. ``stack`` counts every entity across all hosts and sources in one SQL query over the
case's events, rarest first; ``first_seen`` keeps the entities that appeared only after a
baseline window; ``rare_findings`` turns rare-and-suspicious rows (the rules of
``artifacts/analytics/findings.yaml``) into findings. ``irkit.detect.analytics_defs`` reads and
checks entities.yaml, ``irkit.detect.analytics_rules`` findings.yaml; their names are exported here.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from irkit.detect import NO_PROGRESS, DetectorResult, ScanProgress
from irkit.detect.analytics_defs import (
    _TEMPLATE_FIELD,
    FIELD_NAME,
    NORMALISERS,
    SOURCES,
    Definitions,
    EntityKind,
    Extract,
    StackRow,
    Value,
    _definitions,
    entity_kind,
    iso_utc,
    kinds,
    load_definitions,
)
from irkit.detect.analytics_rules import CONDITIONS, Condition, RareRule, load_rules
from irkit.errors import EngineError, UsageError
from irkit.model import MAX_EVENT_UIDS, Finding, Severity

if TYPE_CHECKING:
    from irkit.store.dataset import EventStore

__all__ = [
    "CONDITIONS",
    "DETECTOR",
    "FIELD_NAME",
    "NORMALISERS",
    "SOURCES",
    "Condition",
    "Definitions",
    "EntityKind",
    "Extract",
    "RareRule",
    "StackRow",
    "Value",
    "entity_kind",
    "first_seen",
    "kinds",
    "load_definitions",
    "load_rules",
    "rare_findings",
    "stack",
]

DETECTOR: Final = "analytics"


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


def _osquery_artifacts(case: EventStore) -> list[str]:
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
    case: EventStore,
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


def first_seen(case: EventStore, kind: str, baseline_until: dt.datetime) -> list[StackRow]:
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


def _all_match(conditions: Sequence[Condition], row: StackRow) -> tuple[str, ...] | None:
    tags: list[str] = []
    for condition in conditions:
        found = condition.matches(row)
        if found is None:
            return None
        tags += found
    return tuple(tags)


def rare_findings(case: EventStore, progress: ScanProgress = NO_PROGRESS) -> DetectorResult:
    """Rare-and-suspicious entities of the case as findings (detector ``analytics``).

    Each rule of findings.yaml stacks its kind, keeps the rows seen at most ``max_count``
    times that meet its conditions, and gives one finding per row, linked to its events.
    """
    started = time.perf_counter()
    result = DetectorResult(DETECTOR)
    rules = load_rules()
    matched: list[tuple[RareRule, StackRow, Severity, tuple[str, ...]]] = []
    fired: dict[str, int] = {}
    progress.phase("analytics", len(rules), "rules")
    not_run: dict[str, str] = {}
    for rule in rules:
        fired[rule.id] = 0
        try:
            rows = stack(case, rule.kind, rare=rule.max_count)
        except EngineError as exc:  # another engine cannot run it: said in the report
            not_run[rule.id] = exc.message
            progress.advance()
            continue
        for row in rows:
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
        progress.advance()
    progress.done()
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
                ts=iso_utc(row.first_seen),
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
                last_seen=iso_utc(row.last_seen),
                count=row.count,
                attack=tuple(sorted(set(rule.attack + tags))),
                event_uids=row.event_uids,
                excerpt=" → ".join(v for v in row.values if v),
            )
        )
    result.findings.sort(key=lambda f: (f.ts, f.rule, f.event_uid))
    result.report = {"rules": len(rules), "fired": fired}
    if not_run:
        result.report["not_run_on_engine"] = not_run
    result.seconds = time.perf_counter() - started
    return result
