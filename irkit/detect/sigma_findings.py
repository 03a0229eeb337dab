"""Sigma matches into findings: the matching rows of a logsource table, read back for the
excerpt and the event links a responder follows, grouped per rule and host."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from typing import Any

from irkit.detect import sigma_logsource, sigma_sql
from irkit.detect.sigma import SigmaRule
from irkit.model import MAX_EVENT_UIDS, Finding, Severity

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


#: Matched rows read back per query.
META_BATCH = 5000


class Matches:
    """The matching rows of one logsource table, with what findings need from them."""

    def __init__(self, db: Any, table: str, columns: dict[str, int]) -> None:
        self.db, self.table, self.columns = db, table, columns
        self._meta: dict[int, tuple[Any, ...]] = {}
        self._values: dict[int, dict[str, str]] = {}
        self._fetched: frozenset[str] = frozenset()

    def meta(self, rows: Iterable[int]) -> dict[int, tuple[Any, ...]]:
        """(uid, ts, host, source, evidence, record, message) by row number, read for
        ``rows`` (and kept): only matched rows are read, not the whole table."""
        missing = sorted(set(rows) - self._meta.keys())
        cols = ", ".join(sigma_logsource.BASE_COLUMNS)
        for start in range(0, len(missing), META_BATCH):
            listed = ", ".join(str(int(r)) for r in missing[start : start + META_BATCH])
            for row in self.db.execute(
                f"SELECT _row, {cols} FROM {self.table} WHERE _row IN ({listed})"
            ).fetchall():
                self._meta[int(row[0])] = tuple(row[1:])
        return self._meta

    def prefetch(self, rows: Iterable[int], fields: Iterable[str]) -> None:
        """Read ``fields`` of ``rows`` in a few queries, for ``values`` to answer from: on
        an engine where each query costs a job (Spark), not one query a finding."""
        self._fetched = frozenset(f for f in fields if f in self.columns)
        named = sorted(self._fetched)
        wanted = sorted(set(rows))
        if not named:
            return
        cols = ", ".join(f"o{self.columns[f]}" for f in named)
        for start in range(0, len(wanted), META_BATCH):
            listed = ", ".join(str(int(r)) for r in wanted[start : start + META_BATCH])
            for row in self.db.execute(
                f"SELECT _row, {cols} FROM {self.table} WHERE _row IN ({listed})"
            ).fetchall():
                self._values[int(row[0])] = {f: v for f, v in zip(named, row[1:], strict=True)}

    def values(self, row: int, fields: Sequence[str]) -> dict[str, str]:
        """The given Sigma fields' values on one row (those that have one)."""
        named = [(f, f"o{self.columns[f]}") for f in fields if f in self.columns]
        if not named:
            return {}
        known = self._values.get(row)
        if known is not None and all(f in self._fetched for f, _ in named):
            return {f: known[f] for f, _ in named if known[f]}
        got = self.db.execute(
            f"SELECT {', '.join(c for _, c in named)} FROM {self.table} WHERE _row = {int(row)}"
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
        message = matches.meta([row])[row][6] or ""
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
    meta = matches.meta(rows)
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
                all_event_uids=tuple(meta[r][0] for r in host_rows)
                if len(host_rows) > MAX_EVENT_UIDS
                else (),
                source=first[3] or "",
                host=host,
                evidence=first[4] or "",
                record=first[5] or "",
                excerpt=_excerpt(matches, host_rows[0], rule),
                details=rule_details(rule),
            )
        )
    return out
