"""Sigma logsources as tables: the events a ``category`` or ``service`` means, one column
per Sigma field, read from ``artifacts/sigma/logsources.yaml``."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from irkit.artifacts import artifacts_dir
from irkit.detect.sigma_sql import KEYWORDS_COLUMN, literal
from irkit.errors import IrkitError

#: Columns every logsource table carries, besides the Sigma fields.
BASE_COLUMNS = ("uid", "ts", "host", "source", "evidence", "record", "message")


@dataclasses.dataclass(frozen=True, slots=True)
class Variant:
    """One kind of event a logsource means: channels, EventIDs, other values, field names."""

    channels: tuple[str, ...] | None  # None: every EVTX event
    event_ids: tuple[str, ...] = ()
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def filter_sql(self) -> str:
        """The WHERE clause picking this variant's events from ``events``."""
        parts = ["source = 'evtx'"]
        if self.channels is not None:
            names = ", ".join(literal(c.lower()) for c in self.channels) or "NULL"
            parts.append(f"lower(artifact) IN ({names})")
        if self.event_ids:
            parts.append(f"event_id IN ({', '.join(literal(e) for e in self.event_ids)})")
        for field, values in self.where:
            names = ", ".join(literal(v.lower()) for v in values)
            parts.append(f"lower(fields->>{literal(field)}) IN ({names})")
        return " AND ".join(parts)

    def mapped(self, field: str) -> tuple[str, ...] | None:
        """The event fields holding Sigma ``field`` in this variant, if renamed."""
        for name, keys in self.fields:
            if name.lower() == field.lower():
                return keys
        return None


def _variant(item: Mapping[str, Any]) -> Variant:
    fields = tuple(
        (str(name), tuple(str(k) for k in (keys if isinstance(keys, list) else [keys])))
        for name, keys in (item.get("fields") or {}).items()
    )
    where = tuple(
        (str(name), tuple(str(v) for v in values))
        for name, values in (item.get("where") or {}).items()
    )
    return Variant(
        channels=tuple(str(c) for c in item.get("channels") or ()),
        event_ids=tuple(str(e) for e in item.get("event_ids") or ()),
        where=where,
        fields=fields,
    )


@functools.cache
def logsource_map() -> dict[str, dict[str, tuple[Variant, ...]]]:
    """``{"categories": {name: variants}, "services": {name: variants}}`` from the YAML."""
    path = artifacts_dir() / "sigma" / "logsources.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise IrkitError(f"cannot read the Sigma logsource map {path}: {exc}") from exc
    return {
        kind: {str(name): tuple(_variant(v) for v in items or []) for name, items in table.items()}
        for kind, table in data.items()
    }


def logsource_key(logsource: Mapping[str, str]) -> str:
    """A short name for a rule's logsource: ``process_creation``, ``service:security``."""
    if logsource.get("category"):
        return logsource["category"]
    if logsource.get("service"):
        return "service:" + logsource["service"]
    return "product:" + logsource.get("product", "")


def variants(logsource: Mapping[str, str]) -> tuple[Variant, ...] | None:
    """The events a rule's logsource means; ``None`` if irkit does not know it."""
    product = logsource.get("product", "")
    if product not in ("", "windows"):
        return None
    table = logsource_map()
    if logsource.get("category"):
        return table["categories"].get(logsource["category"])
    if logsource.get("service"):
        return table["services"].get(logsource["service"])
    return (Variant(channels=None),) if product else None


def event_keys(db: Any) -> dict[tuple[str, str], set[str]]:
    """Every field name present, per (lower-case channel, EventID), in one pass."""
    rows = db.execute(
        """SELECT lower(artifact), event_id, list(DISTINCT json_keys(fields))
           FROM events WHERE source = 'evtx' GROUP BY ALL"""
    ).fetchall()
    return {(row[0] or "", row[1] or ""): {k for keys in row[2] for k in keys} for row in rows}


def variant_keys(variant: Variant, keys: Mapping[tuple[str, str], set[str]]) -> set[str]:
    """The field names a variant's events carry in this case."""
    channels = None if variant.channels is None else {c.lower() for c in variant.channels}
    out: set[str] = set()
    for (channel, event_id), names in keys.items():
        if channels is not None and channel not in channels:
            continue
        if variant.event_ids and event_id not in variant.event_ids:
            continue
        out |= names
    return out


def _squash(name: str) -> str:
    return name.replace(" ", "").lower()


def field_names(keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Stored field names by the other spellings rule authors use for them: the name
    without spaces, lower-cased (``Process Name`` → ``processname``), and the last part of
    a dotted UserData path (``LogFileCleared.SubjectUserName`` → ``subjectusername``).
    A spelling several names share gives them all, sorted."""
    out: dict[str, set[str]] = {}
    for key in keys:
        out.setdefault(_squash(key), set()).add(key)
        if "." in key:
            out.setdefault(_squash(key.rsplit(".", 1)[1]), set()).add(key)
    return {name: tuple(sorted(found)) for name, found in out.items()}


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_table(
    db: Any,
    name: str,
    variant_list: Iterable[Variant],
    fields: Iterable[str],
    keys: Mapping[tuple[str, str], set[str]],
    source: str = "events",
) -> tuple[dict[str, int], dict[str, bool]]:
    """Create temp table ``name`` holding the logsource's events (read from ``source``).

    Each field has two columns: ``cN`` lower-cased (what most matching reads) and ``oN`` as
    stored (regular expressions, ``cased``). Returns the column number of each Sigma field
    and whether any event of the logsource has the field. A field name is looked up as
    written, then case-insensitively, then as rule authors write names the event spells
    otherwise (``field_names``): without spaces (Defender's ``Threat Name`` is
    ``ThreatName``), then as the last part of a UserData path (``Operation`` of
    ``Operation_ClientFailure.Operation``; every path that ends so).
    """
    wanted = sorted(set(fields))
    columns = {field: f"o{i}" for i, field in enumerate(wanted)}
    present = dict.fromkeys(wanted, False)
    selects = []
    for variant in variant_list:
        exact = variant_keys(variant, keys)
        folded = {k.lower(): k for k in sorted(exact, reverse=True)}
        spelled = field_names(exact)
        paths: list[str] = []
        exprs = [*BASE_COLUMNS]
        for field in wanted:
            if field == KEYWORDS_COLUMN:
                present[field] = bool(exact)
                exprs.append(
                    "coalesce(message, '') || chr(10) || coalesce(array_to_string("
                    f"json_extract_string(fields, '$.*'), chr(10)), '') AS {columns[field]}"
                )
                continue
            sources = variant.mapped(field) or (field,)
            # Exact names first: System's ProcessID is not EventData's ProcessId.
            found = [
                s if s in exact else folded[s.lower()]
                for s in sources
                if s in exact or s.lower() in folded
            ] or [k for s in sources for k in spelled.get(_squash(s), ())]
            if not found:
                exprs.append(f"NULL::VARCHAR AS {columns[field]}")
                continue
            present[field] = True
            items = []
            for key in found:
                paths.append(_json_path(key))
                items.append(f"_j[{len(paths)}]")
            expr = (
                items[0]
                if len(items) == 1
                else f"nullif(concat_ws(chr(10), {', '.join(items)}), '')"
            )
            exprs.append(f"{expr} AS {columns[field]}")
        path_list = "[" + ", ".join(literal(p) for p in paths) + "]" if paths else "['$.x']"
        selects.append(
            f"SELECT {', '.join(exprs)} FROM (SELECT *, json_extract_string(fields, "
            f"{path_list}::VARCHAR[]) AS _j FROM {source} WHERE {variant.filter_sql()})"
        )
    union = " UNION ALL ".join(selects)
    lowered = "".join(f", lower({c}) AS c{c[1:]}" for c in columns.values())
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT row_number() OVER () - 1 AS _row, *"
        f"{lowered} FROM ({union})"
    )
    return {field: int(c[1:]) for field, c in columns.items()}, present
