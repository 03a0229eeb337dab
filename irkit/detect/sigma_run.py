"""Run a ``SigmaRuleSet`` over a case: one temp table per logsource, its rules evaluated in
passes (each rule's predicate a column of one query), findings grouped per rule and host,
and a report of what ran and what could not fire."""

from __future__ import annotations

import collections
import functools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from irkit.detect import NO_PROGRESS, DetectorResult, ScanProgress, sigma_logsource, sigma_sql
from irkit.detect.sigma import SigmaRule, SigmaRuleSet
from irkit.detect.sigma_correlation import run_correlations
from irkit.detect.sigma_findings import Matches, findings_for
from irkit.errors import EngineError, is_interrupt
from irkit.model import ParseWarning, severity_rank

if TYPE_CHECKING:
    from irkit.store.dataset import EventStore

MAX_EXAMPLES = 5


def _present(present: dict[str, bool], field: str) -> bool:
    return present.get(field, False)


def _columns(columns: dict[str, int], field: str) -> tuple[str, str]:
    """A field's lower-cased and stored columns."""
    return f"c{columns[field]}", f"o{columns[field]}"


def _fast_settings(db: Any) -> dict[str, str]:
    """Thousands of small queries: DuckDB's optimizer costs more than it saves on them
    (6.8 ms against 1.4 ms a rule on the corpus), and one thread beats two. (Other
    engines keep their own settings.)"""
    if getattr(db, "dialect", "duckdb") != "duckdb":
        return {}
    saved = {
        name: str(db.execute(f"SELECT current_setting('{name}')").fetchall()[0][0])
        for name in ("threads", "enable_optimizer")
    }
    db.execute("SET threads = 1")
    db.execute("SET enable_optimizer = false")
    return saved


def _restore_settings(db: Any, saved: dict[str, str]) -> None:
    if not saved:
        return
    db.execute(f"SET threads = {int(saved['threads'])}")
    db.execute(f"SET enable_optimizer = {saved['enable_optimizer'].lower() == 'true'}")


def _group(rules: Sequence[SigmaRule]) -> dict[str, list[SigmaRule]]:
    groups: dict[str, list[SigmaRule]] = collections.defaultdict(list)
    for rule in rules:
        groups[sigma_logsource.logsource_key(rule.logsource)].append(rule)
    return groups


def _sources_sql(groups: dict[str, list[SigmaRule]]) -> str:
    """The events any of the groups' logsources may read (EVTX always: its keys are cheap)."""
    parts = {"source = 'evtx'"}
    for group in groups.values():
        for variant in sigma_logsource.variants(group[0].logsource) or ():
            parts.add(f"({variant.source_sql()})")
    return " OR ".join(sorted(parts))


def _examples(rules: Sequence[SigmaRule]) -> list[str]:
    return [r.id for r in rules[:MAX_EXAMPLES]]


#: A logsource table of at most this many rows has its fields' distinct values read once
#: (``ValueIndex``): a rule that needs a literal no event holds is then decided without a
#: query. On a host's events that is most rules. Columns are indexed while their cells
#: (rows × columns) and text stay within the budgets: ~100 bytes of memory a value held,
#: so at most ~60 MB for a table's index; a column over budget is not indexed, and its
#: rules run.
VALUES_ROWS = 200_000
VALUES_CELLS = 500_000
VALUES_BYTES = 16 << 20


class ValueIndex:
    """The distinct values of a logsource table's columns that rules test for literals
    (``_Values``), so that ``sigma_sql.possible`` can ask whether any event passes a test.
    Exact: the values are the table's own (lower-cased by DuckDB as the rules' SQL reads
    them), and the tests are the SQL's, character for character."""

    def __init__(
        self, db: Any, table: str, columns: dict[str, int], plans: Sequence[Any], rows: int
    ) -> None:
        wanted = sorted(
            {
                key
                for plan in plans
                for key in sigma_sql.text_fields(plan)
                if key[0] in columns and key[0] != sigma_sql.KEYWORDS_COLUMN
            }
        )
        names = [("c" if lowered else "o") + str(columns[field]) for field, lowered in wanted]
        self.values: dict[tuple[str, bool], _Values] = {}
        self._seen: dict[tuple[str, bool, str, str], bool] = {}
        if not names:
            return
        sizes = db.execute(
            "SELECT "
            + ", ".join(f"coalesce(sum(strlen({n})), 0)" for n in names)
            + f" FROM {table}"
        ).fetchone()
        budget, cells, chosen = VALUES_BYTES, VALUES_CELLS, []
        for key, name, size in zip(wanted, names, sizes or (), strict=False):
            if int(size) <= budget and rows <= cells:
                budget -= int(size)
                cells -= rows
                chosen.append((key, name))
        if not chosen:
            return
        listed = ", ".join(name for _, name in chosen)
        keys = {name: key for key, name in chosen}
        found = db.execute(  # one DISTINCT over (column, value) pairs: 3× one per column
            "SELECT k, list(v) FROM (SELECT DISTINCT k, v FROM (UNPIVOT "
            f"(SELECT {listed} FROM {table}) ON COLUMNS(*) INTO NAME k VALUE v)) GROUP BY k"
        ).fetchall()
        for key in keys.values():  # a column without a value: no test passes on it
            self.values[key] = _Values([])
        for name, values in found:
            self.values[keys[name]] = _Values(values)

    def holds(self, field: str, lowered: bool, func: str, text: str) -> bool:
        """Whether some event's value of ``field`` may pass the test (True: not indexed)."""
        key = (field, lowered, func, text)
        known = self._seen.get(key)
        if known is None:
            values = self.values.get((field, lowered))
            known = True if values is None else values.holds(func, text)
            self._seen[key] = known
        return known


class _Values:
    """One column's distinct values, for the four literal tests: a set (``=``), and the
    values joined and framed by NUL (``contains``, ``starts_with``, ``ends_with``). A
    literal holds no NUL, so a match across two values can only come from a value that
    holds one, and only keeps a rule."""

    def __init__(self, values: Sequence[str]) -> None:
        self.exact = frozenset(values)
        self.joined = "\0" + "\0".join(self.exact) + "\0" if self.exact else ""

    def holds(self, func: str, text: str) -> bool:
        if func == "=":
            return text in self.exact
        if func == "starts_with":
            text = "\0" + text
        elif func == "ends_with":
            text += "\0"
        return bool(self.exact) and text in self.joined


#: Rules evaluated in one pass over a logsource table: each rule's predicate a column of
#: one query, not a query of its own (the per-query cost, ~1 ms, was the bill).
PASS_RULES = 256


def _error_line(exc: Exception) -> str:
    if is_interrupt(exc):  # DuckDB reports Ctrl-C as an error
        raise KeyboardInterrupt from exc
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def evaluate(
    db: Any, table: str, planned: Sequence[tuple[SigmaRule, str]], size: int = PASS_RULES
) -> tuple[dict[int, list[int]], list[tuple[SigmaRule, str]]]:
    """The rows of ``table`` each planned rule matches, by the rule's index in
    ``planned``, in few passes: ``size`` rules a query, each rule's predicate a ``CASE``
    whose labels are joined per row (rows no rule matches are not returned). A pass that
    fails is split in two and each half run again, down to the rules that fail alone,
    which are returned with the error: one bad rule costs a few passes, not the others."""
    matched: dict[int, list[int]] = {}
    failed: list[tuple[SigmaRule, str]] = []

    def run(indexes: Sequence[int]) -> None:
        cases = ", ".join(f"CASE WHEN {planned[i][1]} THEN '{i}' END" for i in indexes)
        query = (
            f"SELECT _row, _m FROM (SELECT _row, concat_ws(',', {cases}) AS _m FROM {table}) "
            "WHERE _m <> ''"
        )
        try:
            rows = db.execute(query).fetchall()
        except Exception as exc:  # a rule's error: find it by halves, run the others
            detail = _error_line(exc)
            if len(indexes) == 1:
                failed.append((planned[indexes[0]][0], detail))
                return
            half = len(indexes) // 2
            run(indexes[:half])
            run(indexes[half:])
            return
        for row, labels in rows:
            for label in str(labels).split(","):
                matched.setdefault(int(label), []).append(int(row))

    for start in range(0, len(planned), size):
        run(range(start, min(start + size, len(planned))))
    for rows in matched.values():
        rows.sort()
    failed.sort(key=lambda item: item[0].id)
    return matched, failed


def _prefetch(
    matches: Matches, planned: Sequence[tuple[SigmaRule, str]], matched: dict[int, list[int]]
) -> None:
    """Read at once what the findings of a logsource table show: every matched row's
    time and host, and the excerpt's fields of each rule's first row on each host."""
    from irkit.detect.sigma_findings import EXCERPT_FIELDS

    meta = matches.meta({r for rows in matched.values() for r in rows})
    firsts: set[int] = set()
    fields: set[str] = set(EXCERPT_FIELDS)
    for index, rows in matched.items():
        seen: dict[str, int] = {}
        for row in rows:
            host = meta[row][2] or ""
            best = seen.get(host)
            if best is None or _order(meta[row]) < _order(meta[best]):
                seen[host] = row
        firsts |= set(seen.values())
        fields |= set(planned[index][0].fields)
    fields.discard(sigma_sql.KEYWORDS_COLUMN)
    matches.prefetch(firsts, fields)


def _order(meta: tuple[Any, ...]) -> tuple[bool, Any, Any]:
    return (meta[1] is None, meta[1], meta[0])


def run_sigma(
    case: EventStore,
    rules: SigmaRuleSet,
    min_level: str = "informational",
    progress: ScanProgress = NO_PROGRESS,
) -> DetectorResult:
    """Run every runnable rule at or above ``min_level`` over the case's events.

    A file or rule that is not valid Sigma is a ``rule-file-error`` warning, a rule irkit
    cannot run a ``sigma-unsupported`` one (the others run); the report counts the rules
    loaded, run and not run, and why.
    """
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
    groups = _group(chosen)
    wanted = _sources_sql(groups)
    keys = sigma_logsource.event_keys(db, wanted)
    sigma_logsource.create_macros(db)
    coverage: dict[str, Any] = {"logsource_absent": {}, "logsource_unmapped": {}}
    never: list[dict[str, Any]] = []
    unsupported_at_run: list[SigmaRule] = []
    engine = str(getattr(db, "dialect", "duckdb"))
    # DuckDB: one scan of the Parquet parts, not one per logsource. Another engine reads
    # its own sorted copy, each logsource's row groups only: a table of every event
    # would be the whole dataset again, in memory (on 200 hosts, spilled and read back
    # whole for each logsource).
    kind = "TABLE" if engine == "duckdb" else "VIEW"
    db.execute(
        f"CREATE OR REPLACE TEMP {kind} _irkit_sigma_events AS SELECT * FROM events WHERE {wanted}"
    )
    not_on_engine: list[dict[str, str]] = []
    run_count = 0
    table_seconds = 0.0
    rule_seconds = 0.0
    work = 0
    decided_total = 0
    matched_rows: dict[str, tuple[list[int], Matches]] = {}
    progress.phase("sigma: running rules", len(chosen), "rules")
    for index, (key, group) in enumerate(sorted(groups.items())):
        ls_variants = sigma_logsource.variants(group[0].logsource)
        if ls_variants is None:
            coverage["logsource_unmapped"][key] = {
                "rules": len(group),
                "examples": _examples(group),
            }
            progress.advance(len(group))
            continue
        t0 = time.perf_counter()
        if not ls_variants:
            coverage["logsource_absent"][key] = {
                "rules": len(group), "channels": [], "event_ids": [],
                "examples": _examples(group), "note": "not written to any event log",
            }  # fmt: skip
            progress.advance(len(group))
            continue
        fields = {f for r in group for f in r.fields}
        for corr in correlations:
            fields |= set(corr.correlation["group_by"])  # type: ignore[index]
            if corr.correlation and corr.correlation.get("field"):
                fields.add(corr.correlation["field"])
        table = f"_irkit_sigma_{index}"
        size = 0  # a table no event can be in is not built (one query each, ~5 ms)
        if sigma_logsource.may_have_events(ls_variants, keys):
            try:
                columns, present = sigma_logsource.build_table(
                    db, table, ls_variants, fields, keys, source="_irkit_sigma_events"
                )
            except EngineError as exc:  # another engine cannot build it: its rules said
                not_on_engine += [
                    {"id": r.id, "title": r.title, "reason": exc.message} for r in group
                ]
                progress.advance(len(group))
                continue
            size = int(db.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
        table_seconds += time.perf_counter() - t0
        if size == 0:
            channels = sorted({c for v in ls_variants for c in (v.channels or ())})
            coverage["logsource_absent"][key] = {
                "rules": len(group),
                "channels": channels,
                "event_ids": sorted({e for v in ls_variants for e in v.event_ids}, key=int),
                "sources": sorted({v.source for v in ls_variants}),
                "examples": _examples(group),
            }
            db.execute(f"DROP TABLE IF EXISTS {table}")
            progress.advance(len(group))
            continue
        matches = Matches(db, table, columns)
        t0 = time.perf_counter()
        saved = _fast_settings(db)
        decided = 0
        planned: list[tuple[SigmaRule, str]] = []
        values = None
        if engine == "duckdb" and size <= VALUES_ROWS:
            values = ValueIndex(db, table, columns, [r.plan for r in group], size)
        for rule in group:
            progress.advance()
            plan = rule.plan
            assert plan is not None
            if sigma_sql.can_match(plan, functools.partial(_present, present)) is False:
                missing = sorted({f for f in rule.fields if not present.get(f, False)})
                never.append({"id": rule.id, "title": rule.title, "missing_fields": missing})
                continue
            if values is not None and not sigma_sql.possible(plan, values.holds):
                decided += 1  # no event holds a literal it needs: it matches nothing
                continue
            where = sigma_sql.plan_sql(
                plan, functools.partial(_columns, columns), merge=engine == "duckdb"
            )
            planned.append((rule, where))
        matched, failed = evaluate(db, table, planned, getattr(db, "pass_rules", PASS_RULES))
        for rule, detail in failed:
            if engine != "duckdb":  # said in the report, not a failure of the scan
                not_on_engine.append({"id": rule.id, "title": rule.title, "reason": detail})
                continue
            rule.unsupported, rule.detail = "query failed", detail
            unsupported_at_run.append(rule)
        ran = len(planned) - len(failed) + decided
        run_count += ran
        work += size * ran
        decided_total += decided
        if matched:  # what the findings show, read in a few queries, not one a finding
            _prefetch(matches, planned, matched)
        for index, (rule, _) in enumerate(planned):
            rows = matched.get(index)
            if not rows:
                continue
            matched_rows[rule.id] = (rows, matches)
            if rule.name:
                matched_rows[rule.name] = (rows, matches)
            if id(rule) in selected_ids and rule.generate:
                result.findings += findings_for(rule, rows, matches)
        _restore_settings(db, saved)
        if not any(r.id in needed or r.name in needed for r, _ in planned):
            db.execute(f"DROP TABLE {table}")  # no correlation reads it: free it now
        rule_seconds += time.perf_counter() - t0
    progress.done()
    result.findings += run_correlations(correlations, matched_rows, floor, result.warnings)
    db.execute(f"DROP {kind} IF EXISTS _irkit_sigma_events")
    for table_index in range(len(groups)):
        db.execute(f"DROP TABLE IF EXISTS _irkit_sigma_{table_index}")
    for rule in rules.invalid:
        result.warnings.append(
            ParseWarning(rule.path, "rule-file-error", f"{rule.unsupported}: {rule.detail}")
        )
    failed_at_run = {id(r) for r in unsupported_at_run}
    for rule in rules.unsupported:
        if id(rule) not in failed_at_run and not rule.correlation:  # those warn already
            result.warnings.append(ParseWarning(rule.path, "sigma-unsupported", _reason(rule)))
    for rule in unsupported_at_run:
        result.warnings.append(ParseWarning(rule.path, "sigma-query-failed", rule.detail))
    result.seconds = time.perf_counter() - started
    result.report = _report(
        rules, selected, correlations, coverage, never, run_count, events, work,
        {"load": rules.seconds, "tables": table_seconds, "rules": rule_seconds,
         "total": result.seconds},
        len(result.findings),
    )  # fmt: skip
    # Counted as run: decided for every event from the table's values (``ValueIndex``).
    result.report["decided_by_values"] = decided_total
    result.report["not_run"] = {
        "below_min_level": len(detections) - len(chosen),
        "logsource_absent": sum(v["rules"] for v in coverage["logsource_absent"].values()),
        "logsource_unmapped": sum(v["rules"] for v in coverage["logsource_unmapped"].values()),
        "cannot_fire": len(never),
        "query_failed": len(unsupported_at_run),
    }
    if engine != "duckdb":
        result.report["engine"] = engine
        result.report["not_run"]["not_run_on_engine"] = len(not_on_engine)
        result.report["not_run_on_engine"] = sorted(not_on_engine, key=lambda r: r["id"])
    return result


def _reason(rule: SigmaRule) -> str:
    """``reason: detail`` (or the reason alone), one line."""
    detail = " ".join(rule.detail.split())
    return f"{rule.unsupported}: {detail}" if detail else rule.unsupported


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
        "loaded": len(rules.rules) - len(rules.unsupported) - len(rules.invalid),
        "selected": len(selected),
        "correlations": len(correlations),
        "run": run_count,
        "unsupported": unsupported,
        "unsupported_count": len(rules.unsupported),
        "invalid": [
            {"path": r.path, "id": r.id, "reason": r.unsupported, "detail": r.detail}
            for r in rules.invalid
        ],
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
