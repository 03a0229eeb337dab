"""Sigma matches into findings: the matching rows of a logsource table, read back for the
excerpt and the event links a responder follows, grouped per rule and host."""

from __future__ import annotations

import collections
from collections.abc import Sequence
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
