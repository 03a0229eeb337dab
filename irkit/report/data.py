"""What the report shows, read from a case: plain, ordered data, no HTML.

Every query orders its rows completely (ties broken by uid or name), so the same case
gives the same data, and so the same report bytes. What is too big to show whole is
cut at a limit of ``ReportLimits`` and the cut is counted, never silent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from irkit.detect.analytics import entity_kind, kinds, stack
from irkit.detect.attack import attack_columns
from irkit.model import Severity

if TYPE_CHECKING:
    from irkit.store.case import Case

#: Severity names, most severe first.
SEVERITIES: Final = tuple(s.value for s in reversed(Severity))
_RANK: Final = " ".join(f"WHEN '{level}' THEN {i}" for i, level in enumerate(SEVERITIES))
_ISO: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclasses.dataclass(frozen=True, slots=True)
class ReportLimits:
    """How much of a big case the report shows whole; the rest is counted and named."""

    findings: int = 2_000
    events_per_finding: int = 20
    #: Events shown for all findings together: past it, each finding shows fewer (the
    #: same number for all, the most that fits), so a big case stays a light page.
    events_total: int = 6_000
    hosts: int = 50
    logons_per_host: int = 40
    rare_per_host: int = 40
    rare_count: int = 2
    evidence: int = 2_000
    warnings: int = 500


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence:
    """One evidence file of the case."""

    path: str
    sha256: str
    size: int
    kind: str
    engine: str
    status: str
    records: int
    warnings: int


@dataclasses.dataclass(frozen=True, slots=True)
class CaseWarning:
    """One warning a run of the case recorded."""

    kind: str
    path: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """An event a finding rests on."""

    uid: str
    ts: str
    host: str
    user: str
    source: str
    artifact: str
    event_id: str
    message: str
    evidence: str
    evidence_sha256: str
    record: str


@dataclasses.dataclass(frozen=True, slots=True)
class FindingView:
    """A finding with the first of its events."""

    uid: str
    first_seen: str
    last_seen: str
    severity: str
    detector: str
    rule: str
    title: str
    description: str
    tactics: tuple[str, ...]
    techniques: tuple[str, ...]
    count: int
    host: str
    evidence: str
    record: str
    excerpt: str
    events: tuple[Event, ...]
    linked: int


@dataclasses.dataclass(frozen=True, slots=True)
class HostView:
    """One host: its events and findings, logons, and rare entities."""

    host: str
    events: int
    findings: int
    first: str
    last: str
    logons: tuple[tuple[str, str, str, str, int], ...]  # user, type, address, outcome, n
    logons_total: int
    rare: tuple[tuple[str, str, int, str], ...]  # kind, value, count, first seen
    rare_total: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReportData:
    """Everything the report shows."""

    case: str
    events: int
    hosts: tuple[tuple[str, int, int, str, str], ...]  # host, events, findings, first, last
    sources: tuple[tuple[str, str, int, str, str], ...]  # source, artifact, events, first, last
    first: str
    last: str
    severity_counts: tuple[tuple[str, int], ...]
    findings_total: int
    findings: tuple[FindingView, ...]
    evidence: tuple[Evidence, ...]
    evidence_total: int
    warnings: tuple[CaseWarning, ...]
    warnings_total: int
    warning_kinds: tuple[tuple[str, int], ...]
    hourly: tuple[tuple[str, int, int], ...]  # series, epoch hour, events
    finding_hours: tuple[tuple[int, str, int], ...]  # epoch hour, severity, findings
    host_views: tuple[HostView, ...]
    parsed_until: int | None  # epoch hour of the last parse: later events are in the future
    limits: ReportLimits


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _iso(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime(_ISO)


def _rows(
    case: Case, query: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[tuple[Any, ...]]:
    return case.db.execute(query, params if isinstance(params, dict) else list(params)).fetchall()


def collect(case: Case, limits: ReportLimits = ReportLimits()) -> ReportData:
    """Read what the report shows from an open case."""
    case.db.execute("SET enable_progress_bar = false")  # the library never prints
    events = int(_rows(case, "SELECT count(*) FROM events")[0][0])
    span = _rows(case, "SELECT min(ts), max(ts) FROM events")[0]
    host_findings = dict(
        _rows(case, "SELECT coalesce(host, ''), count(*) FROM findings GROUP BY ALL")
    )
    hosts = tuple(
        (_text(h), int(n), int(host_findings.get(_text(h), 0)), _iso(a), _iso(b))
        for h, n, a, b in _rows(
            case,
            "SELECT coalesce(host, '') AS h, count(*), min(ts), max(ts) FROM events "
            "GROUP BY ALL ORDER BY 2 DESC, h",
        )
    )
    sources = tuple(
        (_text(s), _text(a), int(n), _iso(f), _iso(t))
        for s, a, n, f, t in _rows(
            case,
            "SELECT coalesce(source, '') AS s, coalesce(artifact, '') AS a, count(*), "
            "min(ts), max(ts) FROM events GROUP BY ALL ORDER BY s, 3 DESC, a",
        )
    )
    counts = dict(_rows(case, "SELECT severity, count(*) FROM findings GROUP BY ALL"))
    severity_counts = tuple((level, int(counts.get(level, 0))) for level in SEVERITIES)
    evidence_total = int(_rows(case, "SELECT count(*) FROM evidence")[0][0])
    evidence = tuple(
        Evidence(
            _text(p), _text(s), int(z or 0), _text(k), _text(e), _text(st), int(r or 0), int(w or 0)
        )
        for p, s, z, k, e, st, r, w in _rows(
            case,
            "SELECT path, sha256, size, kind, engine, status, records, warnings FROM evidence "
            f"ORDER BY path, sha256 LIMIT {int(limits.evidence)}",
        )
    )
    warnings_total = int(_rows(case, "SELECT count(*) FROM warnings")[0][0])
    warnings = tuple(
        CaseWarning(_text(k), _text(p), _text(m))
        for k, p, m in _rows(
            case,
            "SELECT DISTINCT kind, path, message FROM warnings ORDER BY kind, path, message "
            f"LIMIT {int(limits.warnings)}",
        )
    )
    warning_kinds = tuple(
        (_text(k), int(n))
        for k, n in _rows(
            case, "SELECT kind, count(*) FROM warnings GROUP BY ALL ORDER BY 2 DESC, 1"
        )
    )
    parsed = _rows(case, "SELECT max(parsed_at) FROM evidence")[0][0]
    return ReportData(
        case=str(case.root.resolve()),
        events=events,
        hosts=hosts,
        sources=sources,
        first=_iso(span[0]),
        last=_iso(span[1]),
        severity_counts=severity_counts,
        findings_total=sum(n for _, n in severity_counts),
        findings=_findings(case, limits),
        evidence=evidence,
        evidence_total=evidence_total,
        warnings=warnings,
        warnings_total=warnings_total,
        warning_kinds=warning_kinds,
        hourly=_hourly(case, sources),
        finding_hours=tuple(
            (int(h), _text(s), int(n))
            for h, s, n in _rows(
                case,
                "SELECT epoch(date_trunc('hour', ts))::BIGINT // 3600 AS h, severity, count(*) "
                "FROM findings WHERE ts IS NOT NULL GROUP BY ALL ORDER BY h, severity",
            )
        ),
        host_views=_host_views(case, hosts, limits),
        parsed_until=None if parsed is None else int(parsed.timestamp()) // 3600,
        limits=limits,
    )


#: At most this many series in the timeline chart; the rest are summed as ``other``.
MAX_SERIES: Final = 8


def _hourly(
    case: Case, sources: Sequence[tuple[str, str, int, str, str]]
) -> tuple[tuple[str, int, int], ...]:
    """Events per hour per series: the sources, or, in a case of one source, its
    artifacts (the busiest, the others summed as ``other``)."""
    names = sorted({s for s, *_ in sources})
    column = "coalesce(source, '')"
    keep: list[str] = []
    if len(names) == 1:
        busiest = [a for _, a, *_ in sorted(sources, key=lambda r: (-r[2], r[1]))]
        keep = busiest[: MAX_SERIES - 1] if len(busiest) > MAX_SERIES else busiest
        column = (
            "CASE WHEN list_contains($keep, coalesce(artifact, '')) "
            "THEN coalesce(artifact, '') ELSE 'other' END"
        )
    rows = _rows(
        case,
        f"SELECT {column} AS series, epoch(date_trunc('hour', ts))::BIGINT // 3600 AS h, "
        "count(*) FROM events WHERE ts IS NOT NULL GROUP BY ALL ORDER BY series, h",
        {"keep": keep} if len(names) == 1 else (),
    )
    return tuple((_text(s), int(h), int(n)) for s, h, n in rows)


def _findings(case: Case, limits: ReportLimits) -> tuple[FindingView, ...]:
    """The most severe findings (then by time, rule, uid), each with its first events."""
    chosen = _rows(
        case,
        f"""SELECT uid, ts, last_seen, severity, detector, rule, title, description,
                   array_to_string(attack, ','), count, host, evidence, record, excerpt
            FROM findings
            ORDER BY CASE severity {_RANK} ELSE 9 END, ts NULLS LAST, rule, uid
            LIMIT {int(limits.findings)}""",
    )
    if not chosen:
        return ()
    # Every event each finding rests on (finding_events; an older store's event_uids).
    rows = _rows(
        case,
        f"""WITH chosen AS (SELECT unnest($chosen::VARCHAR[]) AS uid),
            links AS (
                SELECT finding_uid, event_uid FROM finding_events
                WHERE finding_uid IN (SELECT uid FROM chosen)
                UNION
                SELECT uid, unnest(event_uids) FROM findings
                WHERE uid IN (SELECT uid FROM chosen)
                  AND uid NOT IN (SELECT finding_uid FROM finding_events)
            ),
            counted AS (SELECT finding_uid, count(*) AS n FROM links GROUP BY ALL),
            joined AS (
                SELECT l.finding_uid, e.uid, e.ts, e.host, e."user", e.source, e.artifact,
                       e.event_id, e.message, e.evidence, e.evidence_sha256, e.record,
                       row_number() OVER (PARTITION BY l.finding_uid
                                          ORDER BY e.ts NULLS LAST, e.uid) AS k
                FROM links AS l JOIN events AS e ON e.uid = l.event_uid
            )
            SELECT j.*, c.n FROM joined AS j JOIN counted AS c USING (finding_uid)
            WHERE k <= {int(limits.events_per_finding)}
            ORDER BY finding_uid, k""",
        {"chosen": [r[0] for r in chosen]},
    )
    events: dict[str, list[Event]] = {}
    linked: dict[str, int] = {}
    for row in rows:
        events.setdefault(row[0], []).append(
            Event(*(_iso(v) if i == 1 else _text(v) for i, v in enumerate(row[1:12])))
        )
        linked[row[0]] = int(row[13])
    cap = shared_cap([len(v) for v in events.values()], limits.events_total)
    out = []
    for r in chosen:
        tactics, techniques = attack_columns(_text(r[8]).split(","))
        out.append(
            FindingView(
                uid=r[0],
                first_seen=_iso(r[1]),
                last_seen=_iso(r[2]),
                severity=_text(r[3]),
                detector=_text(r[4]),
                rule=_text(r[5]),
                title=_text(r[6]),
                description=_text(r[7]),
                tactics=tuple(t for t in tactics.split(",") if t),
                techniques=tuple(t for t in techniques.split(",") if t),
                count=int(r[9] or 0),
                host=_text(r[10]),
                evidence=_text(r[11]),
                record=_text(r[12]),
                excerpt=_text(r[13]),
                events=tuple(events.get(r[0], ())[:cap]),
                linked=linked.get(r[0], 0),
            )
        )
    return tuple(out)


def shared_cap(counts: Sequence[int], budget: int) -> int:
    """The most events each finding may show so that all of them together show at most
    ``budget`` (a finding with fewer shows all of its own); at least one each."""
    if sum(counts) <= budget:
        return max(counts, default=1)
    low, high = 1, max(counts)
    while low < high:  # the largest cap whose total fits
        middle = (low + high + 1) // 2
        if sum(min(n, middle) for n in counts) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


#: The entity kinds whose rare values each host lists (logons have their own table).
RARE_KINDS: Final = ("process", "parent-child", "service", "task", "autorun", "network")


class _StackEvents:
    """The events stacking reads, copied once into a temporary table named ``events`` on
    a connection of its own, where it hides the case's view: each of the report's many
    stacks (one per kind, one per host for logons) then reads thousands of rows, not
    the whole case (16 s → 9 s for a report of a million events)."""

    def __init__(self, case: Case, names: Sequence[str]) -> None:
        self.db = case.db.cursor()
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute("SET enable_progress_bar = false")
        # The case's views are temporary, its connection's own: define them here too.
        for (sql,) in case.db.execute(
            "SELECT sql FROM duckdb_views() WHERE temporary AND view_name = 'events'"
        ).fetchall():
            self.db.execute(sql.replace("VIEW events AS", "VIEW _case_events AS", 1))
        where: list[str] = []
        params: list[Any] = []
        for name in names:
            for extract in entity_kind(name).extracts:
                if extract.source == "evtx":
                    channels = ", ".join("?" * len(extract.channels))
                    ids = ", ".join("?" * len(extract.event_ids))
                    where.append(
                        f"(source = 'evtx' AND artifact IN ({channels}) AND event_id IN ({ids}))"
                    )
                    params += [*extract.channels, *extract.event_ids]
                else:
                    where.append("source = ?")
                    params.append(extract.source)
        self.db.execute(
            "CREATE TEMP TABLE events AS SELECT * FROM _case_events "
            f"WHERE {' OR '.join(where) or 'false'}",
            params,
        )

    def count(self) -> int:
        """How many events the copy holds."""
        return int(self.db.execute("SELECT count(*) FROM events").fetchall()[0][0])

    def close(self) -> None:
        """Drop the copy and the connection."""
        self.db.close()


def _host_views(
    case: Case, hosts: Sequence[tuple[str, int, int, str, str]], limits: ReportLimits
) -> tuple[HostView, ...]:
    """The busiest hosts (events), each with its logons and the case's rare entities it saw."""
    known = set(kinds())
    wanted = [k for k in (*RARE_KINDS, "logon") if k in known]
    events = _StackEvents(case, wanted)
    try:
        return _stacked_hosts(events, hosts, limits, wanted)
    finally:
        events.close()


def _stacked_hosts(
    events: _StackEvents,
    hosts: Sequence[tuple[str, int, int, str, str]],
    limits: ReportLimits,
    wanted: Sequence[str],
) -> tuple[HostView, ...]:
    rare: dict[str, list[tuple[str, str, int, str]]] = {}
    for kind in wanted:
        if kind == "logon":
            continue
        for row in stack(events, kind, rare=limits.rare_count):
            value = " → ".join(v for v in row.values if v) if len(row.values) > 1 else row.values[0]
            for host in row.hosts:
                rare.setdefault(host, []).append((kind, value, row.count, _iso(row.first_seen)))
    logon_hosts: set[str] = set()
    if "logon" in wanted:
        logon_hosts = {h for row in stack(events, "logon") for h in row.hosts}
    views = []
    for host, n_events, n_findings, first, last in hosts[: limits.hosts]:
        logons: list[tuple[str, str, str, str, int]] = []
        if host and host in logon_hosts:
            for row in stack(events, "logon", hosts=(host,)):
                logons.append(
                    (
                        row.value("user") if "user" in row.columns else "",
                        row.value("logon_type") if "logon_type" in row.columns else "",
                        row.value("source_address") if "source_address" in row.columns else "",
                        row.value("outcome") if "outcome" in row.columns else "",
                        row.count,
                    )
                )
        logons.sort(key=lambda r: (-r[4], r[0], r[1], r[2], r[3]))
        found = sorted(rare.get(host, ()), key=lambda r: (r[2], r[3], r[0], r[1]))
        views.append(
            HostView(
                host=host,
                events=n_events,
                findings=n_findings,
                first=first,
                last=last,
                logons=tuple(logons[: limits.logons_per_host]),
                logons_total=len(logons),
                rare=tuple(found[: limits.rare_per_host]),
                rare_total=len(found),
            )
        )
    return tuple(views)
