"""A YARA match as irkit shows it: severity from the rule's meta, ATT&CK ids, an excerpt.

Signature-base rules are under the Detection Rule License: a match shown to a user
keeps the rule's ``author``, so it is always in the details.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Final

from irkit.model import Severity

#: Matched strings shown in an excerpt, and string offsets kept in the details.
EXCERPT_STRINGS: Final = 3
SNIPPET_BYTES: Final = 48
MAX_OFFSETS: Final = 20
#: Meta keys that name a level outright (they win over ``score``).
_LEVEL_KEYS: Final = ("severity", "level")
_LEVELS: Final = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "alert": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "warning": Severity.MEDIUM,
    "low": Severity.LOW,
    "notice": Severity.LOW,
    "informational": Severity.INFORMATIONAL,
    "info": Severity.INFORMATIONAL,
}
#: Meta keys that may carry ATT&CK technique ids.
_ATTACK_KEYS: Final = (
    "mitre_attack",
    "attack",
    "mitre",
    "mitre_att",
    "technique",
    "mitre_technique",
)
_TECHNIQUE: Final = re.compile(r"\bT\d{4}(?:\.\d{3})?\b", re.IGNORECASE)
#: Meta copied into a finding's details when present.
_DETAIL_META: Final = ("author", "reference", "date", "modified", "score", "hash", "license")


@dataclasses.dataclass(frozen=True, slots=True)
class MatchInfo:
    """What irkit keeps of one rule matching one buffer."""

    rule: str
    name: str
    namespace: str
    severity: Severity
    description: str
    attack: tuple[str, ...]
    excerpt: str
    details: dict[str, str]


def severity_of(meta: dict[str, Any]) -> Severity:
    """``severity``/``level`` meta, else ``score`` as LOKI/THOR read it (≥ 80 high, ≥ 60
    medium, ≥ 40 low, below informational), else medium."""
    for key in _LEVEL_KEYS:
        level = _LEVELS.get(str(meta.get(key, "")).strip().lower())
        if level is not None:
            return level
    raw = meta.get("score")
    if raw is not None:
        try:
            score = float(raw)
        except (TypeError, ValueError):
            return Severity.MEDIUM
        if score >= 80:
            return Severity.HIGH
        if score >= 60:
            return Severity.MEDIUM
        if score >= 40:
            return Severity.LOW
        return Severity.INFORMATIONAL
    return Severity.MEDIUM


def attack_of(meta: dict[str, Any], tags: list[str]) -> tuple[str, ...]:
    """ATT&CK technique ids from meta and tags, as Sigma tags them (``attack.t1059.001``)."""
    found: list[str] = []
    texts = [str(meta[k]) for k in _ATTACK_KEYS if k in meta] + list(tags)
    for text in texts:
        if text.lower().startswith("attack."):
            found.append(text.lower())
            continue
        found += [f"attack.{t.lower()}" for t in _TECHNIQUE.findall(text)]
    return tuple(dict.fromkeys(found))


def printable(data: bytes, limit: int = SNIPPET_BYTES) -> str:
    """Matched bytes as one safe line: printable ASCII kept, the rest ``\\xNN``; UTF-16LE
    text (every other byte zero) is shown as its characters."""
    body = data[: limit * 2]
    wide = len(body) >= 4 and not any(body[1::2]) and all(32 <= b < 127 for b in body[0::2])
    shown = (len(data) + 1) // 2 if wide else len(data)
    body = body[0::2][:limit] if wide else data[:limit]
    out = []
    for byte in body:
        if byte == 0x5C:
            out.append("\\\\")
        elif 32 <= byte < 127:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out) + ("…" if shown > len(body) else "")


def match_info(match: Any) -> MatchInfo:
    """A ``yara.Match`` as irkit keeps it."""
    meta: dict[str, Any] = dict(match.meta)
    instances = [(s.identifier, i) for s in match.strings for i in s.instances]
    instances.sort(key=lambda pair: pair[1].offset)
    excerpt = "; ".join(
        f"{ident}@{inst.offset:#x}: {printable(inst.matched_data)}"
        for ident, inst in instances[:EXCERPT_STRINGS]
    )
    details: dict[str, str] = {k: str(meta[k]) for k in _DETAIL_META if k in meta}
    details["author"] = str(meta.get("author", ""))
    if instances:
        details["offsets"] = ",".join(
            f"{ident}@{inst.offset:#x}" for ident, inst in instances[:MAX_OFFSETS]
        )
        details["string_matches"] = str(len(instances))
    if match.tags:
        details["tags"] = ",".join(match.tags)
    details["namespace"] = match.namespace
    return MatchInfo(
        rule=f"{match.namespace}:{match.rule}",
        name=match.rule,
        namespace=match.namespace,
        severity=severity_of(meta),
        description=str(meta.get("description", "")),
        attack=attack_of(meta, list(match.tags)),
        excerpt=excerpt,
        details=details,
    )
