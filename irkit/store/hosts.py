"""One host, one name: the spellings of a host in a case resolved to one identity.

Logs spell the same machine several ways: ``DESKTOP-BZ202CP`` in one channel,
``DESKTOP-BZ202CP.cybercorp.com`` in another, ``desktop-bz202cp`` in an osquery log. A
host is one host in the timeline, the findings and the stacks, so the ``events`` view
shows every spelling of a host under one name; the event parts keep the original
spelling (and EVTX keeps it in ``Computer``).

The rule, deterministic for a given case:

- spellings that differ only in case are one host;
- a short name and the fully qualified names that start with it are one host, when the
  case holds exactly one such qualified name (``WS01`` with ``WS01.corp.example``); when
  it holds several (``DC1.a.local`` and ``DC1.b.local``), they are different hosts and the
  bare short name stays as it is, since it cannot be told which it is;
- an IP address is only itself.

The name shown is the qualified one, in the spelling that most events use (ties: the
first in code-point order).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _pick(spellings: Iterable[tuple[str, int]]) -> str:
    """The spelling most events use; ties broken by code-point order."""
    return min(spellings, key=lambda item: (-item[1], item[0]))[0]


def canonical_hosts(counts: Mapping[str, int]) -> dict[str, str]:
    """Each spelling (with its event count) that is shown under another name → that name.

    Spellings shown as they are (the identity) are left out, so the mapping is empty for
    a case whose hosts are all spelled one way.
    """
    by_key: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for spelling, count in counts.items():
        if spelling:
            by_key[spelling.lower()].append((spelling, count))
    by_short: dict[str, list[str]] = defaultdict(list)
    for key in by_key:
        short = key if _is_address(key) else key.split(".", 1)[0]
        by_short[short].append(key)
    mapping: dict[str, str] = {}
    for short, keys in by_short.items():
        qualified = [key for key in keys if key != short]
        groups: list[list[str]]
        if len(qualified) == 1 and short in keys:
            groups = [[short, qualified[0]]]
        else:
            groups = [[key] for key in keys]
        for group in groups:
            longest = max(group, key=len)
            name = _pick(by_key[longest])
            for key in group:
                for spelling, _ in by_key[key]:
                    if spelling != name:
                        mapping[spelling] = name
    return dict(sorted(mapping.items()))


def host_expression(mapping: Mapping[str, str], column: str = "host") -> str:
    """SQL giving the host's one name for ``column`` (the column itself when none differ)."""
    if not mapping:
        return column

    cases = " ".join(f"WHEN {_literal(k)} THEN {_literal(v)}" for k, v in sorted(mapping.items()))
    return f"CASE {column} {cases} ELSE {column} END"


def _literal(text: str) -> str:
    """A SQL string literal for any text (a host name is evidence: it may hold anything);
    control characters are spelled with chr(), so the statement stays plain text."""
    parts: list[str] = []
    plain = ""
    for char in text:
        if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            if plain:
                parts.append("'" + plain.replace("'", "''") + "'")
                plain = ""
            parts.append(f"chr({ord(char)})")
        else:
            plain += char
    if plain or not parts:
        parts.append("'" + plain.replace("'", "''") + "'")
    return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"
