"""ATT&CK tags (Sigma's ``attack.*``) as the tactic and technique columns of a finding."""

from __future__ import annotations

import re
from collections.abc import Sequence


def attack_columns(tags: Sequence[str]) -> tuple[str, str]:
    """ATT&CK tactics and techniques of Sigma-style tags, as text: ``attack.execution``
    and ``attack.privilege_escalation`` → ``execution,privilege-escalation``;
    ``attack.t1059.001`` → ``T1059.001`` (groups and software, ``attack.g0016``,
    ``attack.s0002``, are neither)."""
    tactics: list[str] = []
    techniques: list[str] = []
    for tag in tags:
        name = tag.strip().lower().removeprefix("attack.")
        if not name or name == tag.strip().lower():
            continue
        if re.fullmatch(r"t\d{4}(\.\d{3})?", name):
            techniques.append(name.upper())
        elif not re.fullmatch(r"[gs]\d{4}", name):
            tactics.append(name.replace("_", "-"))
    return ",".join(dict.fromkeys(tactics)), ",".join(dict.fromkeys(techniques))
