"""Which osquery columns tell a row's story and which are times: the table catalog.

The entries are data, in ``artifacts/osquery/time_columns.yaml``: each names the queries
(by glob) and the column signature it applies to, the message columns, and the time
columns that add events of their own.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from irkit.artifacts import artifacts_dir
from irkit.errors import IrkitError

_PACK = re.compile(r"^pack(?:_[^_]+_|/[^/]+/)(?=.)")


@dataclasses.dataclass(frozen=True, slots=True)
class TableSpec:
    """What irkit knows of one osquery table (an entry of time_columns.yaml)."""

    table: str
    queries: tuple[str, ...]
    signature: frozenset[str]
    message: tuple[str, ...]
    #: (column, ts_desc, format) for each time column.
    times: tuple[tuple[str, str, str], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """What applies to rows of one query with one set of columns."""

    message: tuple[str, ...]
    times: tuple[tuple[str, str, str], ...]


TIME_FORMATS: Final = ("epoch", "yyyymmdd")


class TableCatalog:
    """The table entries, and which apply to a query's rows (cached per query and columns)."""

    def __init__(self, specs: Iterable[TableSpec]) -> None:
        self.specs = tuple(specs)
        self._by_name: dict[str, tuple[TableSpec, ...]] = {}
        self._resolved: dict[tuple[str, tuple[str, ...]], Resolved] = {}

    @classmethod
    def from_file(cls, path: Path) -> TableCatalog:
        """Read and check the YAML; a malformed entry is an IrkitError naming it."""
        import yaml

        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise IrkitError(f"cannot read osquery tables {path}: {exc}") from exc
        tables = data.get("tables") if isinstance(data, dict) else None
        if not isinstance(tables, dict) or not tables:
            raise IrkitError(f"{path}: expected a mapping with a 'tables' mapping")
        return cls(_spec(path, str(name), entry) for name, entry in tables.items())

    def for_query(self, query: str) -> tuple[TableSpec, ...]:
        """Entries whose query globs match the short query name."""
        found = self._by_name.get(query)
        if found is None:
            low = query.lower()
            found = tuple(
                s for s in self.specs if any(fnmatch.fnmatchcase(low, g) for g in s.queries)
            )
            self._by_name[query] = found
        return found

    def resolve(self, query: str, columns: tuple[str, ...]) -> Resolved:
        """Message and time columns for a row of ``query`` with these ``columns``."""
        key = (query, columns)
        found = self._resolved.get(key)
        if found is not None:
            return found
        present = frozenset(columns)
        named = self.for_query(query)
        applying = [s for s in self.specs if s in named or (s.signature and s.signature <= present)]
        best: tuple[str, ...] = ()
        best_score = 0
        times: list[tuple[str, str, str]] = []
        for spec in applying:
            score = sum(1 for c in spec.message if c in present)
            if score > best_score:
                best, best_score = spec.message, score
            times += [t for t in spec.times if t[0] in present and t not in times]
        found = Resolved(best, tuple(times))
        if len(self._resolved) > 4096:  # bounded: a log of many odd column sets
            self._resolved.clear()
        self._resolved[key] = found
        return found


def _spec(path: Path, name: str, entry: Any) -> TableSpec:
    where = f"{path}: table {name!r}"
    if not isinstance(entry, dict):
        raise IrkitError(f"{where}: expected a mapping")
    unknown = set(entry) - {"queries", "signature", "message", "times"}
    if unknown:
        raise IrkitError(f"{where}: unknown keys {sorted(unknown)}")

    def names(key: str, required: bool) -> tuple[str, ...]:
        value = entry.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise IrkitError(f"{where}: {key!r} must be a list of names")
        if required and not value:
            raise IrkitError(f"{where}: {key!r} must not be empty")
        return tuple(value)

    times = []
    raw_times = entry.get("times") or {}
    if not isinstance(raw_times, dict):
        raise IrkitError(f"{where}: 'times' must map columns to descriptions")
    for column, value in raw_times.items():
        desc, fmt = (value, "epoch") if isinstance(value, str) else ("", "")
        if isinstance(value, dict):
            desc, fmt = str(value.get("desc") or ""), str(value.get("format") or "epoch")
        if not desc.strip() or fmt not in TIME_FORMATS:
            raise IrkitError(f"{where}: time column {column!r} needs a desc and a known format")
        times.append((str(column), desc, fmt))
    return TableSpec(
        table=name,
        queries=tuple(q.lower() for q in names("queries", True)),
        signature=frozenset(names("signature", False)),
        message=names("message", True),
        times=tuple(times),
    )


@functools.cache
def load_tables() -> TableCatalog:
    """The bundled table data, read once per process."""
    return TableCatalog.from_file(artifacts_dir() / "osquery" / "time_columns.yaml")


def short_query(name: str) -> str:
    """The query name without its pack prefix: ``pack_it-compliance_mounts`` -> ``mounts``."""
    return _PACK.sub("", name, count=1)
