"""Sigma correlation rules (``event_count``, ``value_count``, ``temporal``) over the matches
of the rules they name: grouped by the ``group-by`` fields, in sliding ``timespan`` windows."""

from __future__ import annotations

import collections
import datetime as dt
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from irkit.detect.sigma_findings import rule_details
from irkit.model import MAX_EVENT_UIDS, Finding, ParseWarning, Severity, severity_rank

if TYPE_CHECKING:
    from irkit.detect.sigma import SigmaRule
    from irkit.detect.sigma_findings import Matches

SUPPORTED = ("event_count", "value_count", "temporal")
_OPS: dict[str, Callable[[int, int], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}


class _Event:
    __slots__ = ("group", "meta", "rule", "ts", "value")

    def __init__(
        self, ts: dt.datetime, rule: str, group: tuple[str, ...], value: str, meta: Any
    ) -> None:
        self.ts, self.rule, self.group, self.value, self.meta = ts, rule, group, value, meta


def _events(corr: dict[str, Any], matched: Mapping[str, tuple[list[int], Matches]]) -> list[_Event]:
    out = []
    for ref in corr["rules"]:
        if ref not in matched:
            continue
        rows, matches = matched[ref]
        wanted = [*corr["group_by"], *([corr["field"]] if corr.get("field") else [])]
        meta = matches.meta(rows)
        for row in rows:
            values = matches.values(row, wanted) if wanted else {}
            group = tuple(values.get(f, "") for f in corr["group_by"])
            if meta[row][1] is not None:
                value = values.get(corr["field"], "") if corr.get("field") else ""
                out.append(_Event(meta[row][1], ref, group, value, meta[row]))
    return out


def _window_hit(
    corr: dict[str, Any], events: Sequence[_Event], refs: set[str]
) -> list[_Event] | None:
    """The first window of ``timespan`` seconds whose events meet the condition."""
    span = dt.timedelta(seconds=corr["timespan"])
    compare: Callable[[int, int], bool] = _OPS.get(corr["op"], operator.ge)
    start = 0
    for end in range(len(events)):
        while events[end].ts - events[start].ts > span:
            start += 1
        window = events[start : end + 1]
        if corr["type"] == "event_count":
            measure: int = len(window)
        elif corr["type"] == "value_count":
            measure = len({e.value for e in window if e.value})
        else:
            measure = len({e.rule for e in window} & refs)
            if measure == len(refs):
                return list(window)
            continue
        if compare(measure, int(corr["count"])):
            return list(window)
    return None


def run_correlations(
    correlations: Sequence[SigmaRule],
    matched: Mapping[str, tuple[list[int], Matches]],
    floor: int,
    warnings: list[ParseWarning],
) -> list[Finding]:
    """One finding per correlation rule and group whose condition is met in some window."""
    findings = []
    for rule in correlations:
        corr = rule.correlation
        if corr is None or severity_rank(rule.level) < floor:
            continue
        if corr["type"] not in SUPPORTED or corr.get("aliases"):
            kind = "aliases" if corr.get("aliases") else corr["type"]
            rule.unsupported = f"correlation {kind}"
            warnings.append(ParseWarning(rule.path, "sigma-unsupported", rule.unsupported))
            continue
        groups: dict[tuple[str, ...], list[_Event]] = collections.defaultdict(list)
        for event in _events(corr, matched):
            groups[event.group].append(event)
        for group, events in sorted(groups.items()):
            events.sort(key=lambda e: (e.ts, e.meta[0]))
            window = _window_hit(corr, events, set(corr["rules"]))
            if not window:
                continue
            first, last = window[0].meta, window[-1].meta
            level = rule.level if rule.level in Severity._value2member_map_ else "informational"
            findings.append(
                Finding(
                    ts=window[0].ts.isoformat(),
                    last_seen=window[-1].ts.isoformat(),
                    count=len(window),
                    severity=Severity(level),
                    detector="sigma",
                    rule=rule.id,
                    title=rule.title,
                    description=rule.description,
                    attack=rule.attack,
                    event_uid=first[0],
                    event_uids=tuple(e.meta[0] for e in window[:MAX_EVENT_UIDS]),
                    source=first[3] or "",
                    host=first[2] or "",
                    evidence=first[4] or "",
                    record=first[5] or "",
                    excerpt=", ".join(
                        f"{f}={v}" for f, v in zip(corr["group_by"], group, strict=True)
                    )
                    or f"{len(window)} events",
                    details={
                        **rule_details(rule),
                        "correlation": corr["type"],
                        "last_event_uid": last[0],
                    },
                )
            )
    return findings
