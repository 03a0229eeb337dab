"""Rare-and-suspicious rules: ``artifacts/analytics/findings.yaml`` read and checked.

A rule keeps the rows of one entity kind seen at most ``max_count`` times whose columns meet
every condition (``basename_in`` or ``contains_any`` one of the file's lists); it may raise
its severity when more conditions hold, or skip a row ``unless`` others do.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from irkit.artifacts import artifacts_dir
from irkit.detect.analytics_defs import (
    Definitions,
    EntityKind,
    StackRow,
    _definitions,
    _InvalidError,
    _load_yaml,
    _strings,
)
from irkit.errors import IrkitError
from irkit.model import Severity

CONDITIONS: Final = ("basename_in", "contains_any")


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
