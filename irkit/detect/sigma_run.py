"""Run a ``SigmaRuleSet`` over a case: one temp table per logsource, one SQL query per rule,
findings grouped per rule and host, and a report of what ran and what could not fire."""

from __future__ import annotations

import collections
import functools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from irkit.detect import DetectorResult, sigma_logsource, sigma_sql
from irkit.detect.sigma import SigmaRule, SigmaRuleSet
from irkit.detect.sigma_correlation import run_correlations
from irkit.model import MAX_EVENT_UIDS, Finding, ParseWarning, Severity, severity_rank

if TYPE_CHECKING:
    from irkit.case import Case

#: Fields shown first in a finding's excerpt, when the event has them.
EXCERPT_FIELDS = (
    "CommandLine",
    "Image",
    "ParentImage",
    "ScriptBlockText",
    "Payload",
    "TargetFilename",
    "TargetObject",
    "Details",
    "ImageLoaded",
    "TargetImage",
    "QueryName",
    "DestinationIp",
    "PipeName",
    "ServiceName",
    "ImagePath",
    "TargetUserName",
)
MAX_EXAMPLES = 5


class Matches:
    """The matching rows of one logsource table, with what findings need from them."""

    def __init__(self, db: Any, table: str, columns: dict[str, int]) -> None:
        self.db, self.table, self.columns = db, table, columns
        self._meta: list[tuple[Any, ...]] | None = None

    def meta(self) -> list[tuple[Any, ...]]:
        """(uid, ts, host, source, evidence, record, message) by row number."""
        if self._meta is None:
            cols = ", ".join(sigma_logsource.BASE_COLUMNS)
            self._meta = self.db.execute(
                f"SELECT {cols} FROM {self.table} ORDER BY _row"
            ).fetchall()
        return self._meta

    def values(self, row: int, fields: Sequence[str]) -> dict[str, str]:
        """The given Sigma fields' values on one row (those that have one)."""
        named = [(f, f"o{self.columns[f]}") for f in fields if f in self.columns]
        if not named:
            return {}
        got = self.db.execute(
            f"SELECT {', '.join(c for _, c in named)} FROM {self.table} WHERE _row = ?", [row]
        ).fetchone()
        return {f: v for (f, _), v in zip(named, got or (), strict=False) if v}


def _excerpt(matches: Matches, row: int, rule: SigmaRule) -> str:
    fields = [*EXCERPT_FIELDS, *(f for f in rule.fields if f not in EXCERPT_FIELDS)]
    fields = [f for f in fields if f != sigma_sql.KEYWORDS_COLUMN]
    values = matches.values(row, fields)
    picked = [f"{f}={v[:200]}" for f, v in values.items() if f in EXCERPT_FIELDS][:3]
    if not picked:
        picked = [f"{f}={v[:200]}" for f, v in values.items()][:3]
    if not picked:
        message = matches.meta()[row][6] or ""
        return str(message)[:300]
    return " | ".join(picked)


def rule_details(rule: SigmaRule) -> dict[str, str]:
    """What a responder reads about the rule on a finding (DRL 1.1: keep the author)."""
    return {
        "rule_path": rule.path,
        "status": rule.status,
        "author": rule.author,
        "date": rule.date,
        "falsepositives": "; ".join(rule.falsepositives),
        "references": " ".join(rule.references[:3]),
        "logsource": ",".join(f"{k}={v}" for k, v in sorted(rule.logsource.items())),
        "licence": "Detection Rule License 1.1 (SigmaHQ)",
    }


def _severity(level: str) -> Severity:
    return Severity(level) if level in Severity._value2member_map_ else Severity.INFORMATIONAL


def findings_for(rule: SigmaRule, rows: list[int], matches: Matches) -> list[Finding]:
    """One finding per host the rule matched on, with first/last time and up to 100 uids."""
    meta = matches.meta()
    by_host: dict[str, list[int]] = collections.defaultdict(list)
    for row in sorted(rows, key=lambda r: (meta[r][1] is None, meta[r][1], meta[r][0])):
        by_host[meta[row][2] or ""].append(row)
    out = []
    for host, host_rows in sorted(by_host.items()):
        first, last = meta[host_rows[0]], meta[host_rows[-1]]
        out.append(
            Finding(
                ts=first[1].isoformat() if first[1] else "",
                last_seen=last[1].isoformat() if last[1] else "",
                count=len(host_rows),
                severity=_severity(rule.level),
                detector="sigma",
                rule=rule.id,
                title=rule.title,
                description=rule.description,
                attack=rule.attack,
                event_uid=first[0],
                event_uids=tuple(meta[r][0] for r in host_rows[:MAX_EVENT_UIDS]),
                source=first[3] or "",
                host=host,
                evidence=first[4] or "",
                record=first[5] or "",
                excerpt=_excerpt(matches, host_rows[0], rule),
                details=rule_details(rule),
            )
        )
    return out


def _present(present: dict[str, bool], field: str) -> bool:
    return present.get(field, False)


def _columns(columns: dict[str, int], field: str) -> tuple[str, str]:
    """A field's lower-cased and stored columns."""
    return f"c{columns[field]}", f"o{columns[field]}"


def _fast_settings(db: Any) -> dict[str, str]:
    """Thousands of small queries: DuckDB's optimizer costs more than it saves on them
    (6.8 ms against 1.4 ms a rule on the corpus), and one thread beats two."""
    saved = {
        name: str(db.execute(f"SELECT current_setting('{name}')").fetchall()[0][0])
        for name in ("threads", "enable_optimizer")
    }
    db.execute("SET threads = 1")
    db.execute("SET enable_optimizer = false")
    return saved


def _restore_settings(db: Any, saved: dict[str, str]) -> None:
    db.execute(f"SET threads = {int(saved['threads'])}")
    db.execute(f"SET enable_optimizer = {saved['enable_optimizer'].lower() == 'true'}")


def _group(rules: Sequence[SigmaRule]) -> dict[str, list[SigmaRule]]:
    groups: dict[str, list[SigmaRule]] = collections.defaultdict(list)
    for rule in rules:
        groups[sigma_logsource.logsource_key(rule.logsource)].append(rule)
    return groups


def _examples(rules: Sequence[SigmaRule]) -> list[str]:
    return [r.id for r in rules[:MAX_EXAMPLES]]


def run_sigma(case: Case, rules: SigmaRuleSet, min_level: str = "informational") -> DetectorResult:
    """Run every runnable rule at or above ``min_level`` over the case's events."""
    started = time.perf_counter()
    db = case.db
    result = DetectorResult(detector="sigma")
    floor = severity_rank(min_level)
    runnable = rules.runnable
    detections = [r for r in runnable if r.plan is not None]
    correlations = [r for r in runnable if r.correlation is not None]
    selected = [r for r in detections if severity_rank(r.level) >= floor]
    needed = {ref for c in correlations for ref in c.correlation["rules"]}  # type: ignore[index]
    selected_ids = {id(r) for r in selected}
    chosen = [r for r in detections if id(r) in selected_ids or r.id in needed or r.name in needed]
    events = case.count()
    keys = sigma_logsource.event_keys(db)
    # One scan of the Parquet parts, not one per logsource.
    db.execute(
        "CREATE OR REPLACE TEMP TABLE _irkit_sigma_events AS "
        "SELECT * FROM events WHERE source = 'evtx'"
    )
    coverage: dict[str, Any] = {"logsource_absent": {}, "logsource_unmapped": {}}
    never: list[dict[str, Any]] = []
    unsupported_at_run: list[SigmaRule] = []
    run_count = 0
    table_seconds = 0.0
    rule_seconds = 0.0
    work = 0
    matched_rows: dict[str, tuple[list[int], Matches]] = {}
    for index, (key, group) in enumerate(sorted(_group(chosen).items())):
        ls_variants = sigma_logsource.variants(group[0].logsource)
        if ls_variants is None:
            coverage["logsource_unmapped"][key] = {
                "rules": len(group),
                "examples": _examples(group),
            }
            continue
        t0 = time.perf_counter()
        if not ls_variants:
            coverage["logsource_absent"][key] = {
                "rules": len(group), "channels": [], "event_ids": [],
                "examples": _examples(group), "note": "not written to any event log",
            }  # fmt: skip
            continue
        fields = {f for r in group for f in r.fields}
        for corr in correlations:
            fields |= set(corr.correlation["group_by"])  # type: ignore[index]
            if corr.correlation and corr.correlation.get("field"):
                fields.add(corr.correlation["field"])
        table = f"_irkit_sigma_{index}"
        columns, present = sigma_logsource.build_table(
            db, table, ls_variants, fields, keys, source="_irkit_sigma_events"
        )
        size = int(db.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
        table_seconds += time.perf_counter() - t0
        if size == 0:
            channels = sorted({c for v in ls_variants for c in (v.channels or ())})
            coverage["logsource_absent"][key] = {
                "rules": len(group),
                "channels": channels,
                "event_ids": sorted({e for v in ls_variants for e in v.event_ids}, key=int),
                "examples": _examples(group),
            }
            db.execute(f"DROP TABLE {table}")
            continue
        matches = Matches(db, table, columns)
        t0 = time.perf_counter()
        saved = _fast_settings(db)
        for rule in group:
            plan = rule.plan
            assert plan is not None
            if sigma_sql.can_match(plan, functools.partial(_present, present)) is False:
                missing = sorted({f for f in rule.fields if not present.get(f, False)})
                never.append({"id": rule.id, "title": rule.title, "missing_fields": missing})
                continue
            sql = sigma_sql.plan_sql(plan, functools.partial(_columns, columns))
            try:
                rows = [
                    r[0] for r in db.execute(f"SELECT _row FROM {table} WHERE {sql}").fetchall()
                ]
            except Exception as exc:  # a DuckDB error in one rule must not stop the others
                rule.unsupported, rule.detail = "query failed", str(exc).splitlines()[0][:200]
                unsupported_at_run.append(rule)
                continue
            run_count += 1
            work += size
            if not rows:
                continue
            matched_rows[rule.id] = (rows, matches)
            if rule.name:
                matched_rows[rule.name] = (rows, matches)
            if id(rule) in selected_ids and rule.generate:
                result.findings += findings_for(rule, rows, matches)
        _restore_settings(db, saved)
        rule_seconds += time.perf_counter() - t0
    result.findings += run_correlations(correlations, matched_rows, floor, result.warnings)
    db.execute("DROP TABLE IF EXISTS _irkit_sigma_events")
    for table_index in range(len(_group(chosen))):
        db.execute(f"DROP TABLE IF EXISTS _irkit_sigma_{table_index}")
    for rule in unsupported_at_run:
        result.warnings.append(ParseWarning(rule.path, "sigma-query-failed", rule.detail))
    result.seconds = time.perf_counter() - started
    result.report = _report(
        rules, selected, correlations, coverage, never, run_count, events, work,
        {"load": rules.seconds, "tables": table_seconds, "rules": rule_seconds,
         "total": result.seconds},
        len(result.findings),
    )  # fmt: skip
    return result


def _report(
    rules: SigmaRuleSet,
    selected: Sequence[SigmaRule],
    correlations: Sequence[SigmaRule],
    coverage: dict[str, Any],
    never: list[dict[str, Any]],
    run_count: int,
    events: int,
    work: int,
    seconds: dict[str, float],
    findings: int,
) -> dict[str, Any]:
    by_reason: dict[str, list[SigmaRule]] = collections.defaultdict(list)
    for rule in rules.unsupported:
        by_reason[rule.unsupported].append(rule)
    unsupported = {
        reason: {"count": len(items), "examples": _examples(items)}
        for reason, items in sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
    }
    coverage["cannot_fire"] = never
    elapsed = seconds["tables"] + seconds["rules"]
    return {
        "files": rules.files,
        "cached_files": rules.cached_files,
        "rules_found": len(rules.rules),
        "loaded": len(rules.rules) - len(rules.unsupported),
        "selected": len(selected),
        "correlations": len(correlations),
        "run": run_count,
        "unsupported": unsupported,
        "unsupported_count": len(rules.unsupported),
        "skipped_placeholders": [
            {"id": r.id, "title": r.title, "placeholders": r.placeholders}
            for r in rules.skipped_placeholders
        ],
        "coverage": coverage,
        "events": events,
        "findings": findings,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "events_x_rules_per_second": round(events * run_count / elapsed) if elapsed else 0,
        "rows_x_rules_per_second": round(work / elapsed) if elapsed else 0,
    }
