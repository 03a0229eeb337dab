"""Sigma logsources as tables: the events a ``category`` or ``service`` means, one column
per Sigma field, read from ``artifacts/sigma/logsources.yaml``.

Windows logsources pick EVTX events by channel and EventID. Linux, macOS and web-server
logsources pick plaso's and osquery's events by parser chain (or query columns) and field
values; their Sigma fields may be SQL expressions over the event (a web request line split
into ``cs-method`` and ``cs-uri-stem``, an audit record's ``key=value`` pairs), and a Linux
audit record may take fields from the other records of the same audit event (``partner``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import yaml

from irkit.artifacts import artifacts_dir, load_yaml
from irkit.detect.heuristics import FIELD_MACRO
from irkit.detect.sigma_sql import KEYWORDS_COLUMN, literal
from irkit.errors import IrkitError

#: Columns every logsource table carries, besides the Sigma fields.
BASE_COLUMNS = ("uid", "ts", "host", "source", "evidence", "record", "message")
#: ``kv(text, 'key')``: the value of ``key=value`` in a Linux audit record's text, quotes
#: removed; auditd writes a string with spaces or odd bytes as upper-case hex, decoded here.
KV_MACRO: Final = (
    "CREATE OR REPLACE TEMP MACRO kv_raw(body, k) AS "
    "regexp_extract(body, '(?:^|[\\s''])' || k || '=(\"[^\"]*\"|[^\\s'']+)', 1)",
    "CREATE OR REPLACE TEMP MACRO kv(body, k) AS audit_value(kv_raw(body, k))",
)
#: ``audit_value(v)``: one auditd value as written: quoted, upper-case hex (a string with
#: spaces or odd bytes; never all digits: those are numbers), or plain.
VALUE_MACRO: Final = (
    "CREATE OR REPLACE TEMP MACRO audit_value(v) AS CASE WHEN v IS NULL OR v = '' THEN NULL"
    " WHEN starts_with(v, '\"') THEN trim(v, '\"')"
    " WHEN regexp_full_match(v, '([0-9A-F]{2})+') AND NOT regexp_full_match(v, '[0-9]+')"
    " THEN coalesce(try(decode(unhex(v))), v) ELSE v END"
)
#: ``audit_args(text)``: an EXECVE record's arguments (``a0``, ``a1``…) as one command line.
ARGS_MACRO: Final = (
    "CREATE OR REPLACE TEMP MACRO audit_args(body) AS array_to_string(list_transform("
    'regexp_extract_all(body, \'(?:^|\\s)a[0-9]+=("[^"]*"|\\S+)\', 1),'
    " lambda v: audit_value(v)), ' ')"
)
MACROS: Final = (FIELD_MACRO, VALUE_MACRO, *KV_MACRO, ARGS_MACRO)


@dataclasses.dataclass(frozen=True, slots=True)
class Partner:
    """Records of the same audit event a variant's record takes fields from."""

    where: str  # SQL: which rows are partners
    by: tuple[str, ...]  # SQL over the event that ties them (with the evidence file)
    fields: tuple[tuple[str, str], ...]  # Sigma field -> SQL over the partner row


@dataclasses.dataclass(frozen=True, slots=True)
class Variant:
    """One kind of event a logsource means: its source, channels (EVTX) or parser chains
    (plaso) or query names (osquery), EventIDs, other values, and where each field is."""

    channels: tuple[str, ...] | None  # None: every event of the source
    event_ids: tuple[str, ...] = ()
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()
    source: str = "evtx"
    has: tuple[str, ...] = ()  # fields every event must carry (osquery columns)
    filter: str = ""  # more SQL over the event
    exprs: tuple[tuple[str, str], ...] = ()  # Sigma field -> SQL over the event
    partner: Partner | None = None
    kv_from: str = ""  # a field with ``key=value`` text: other Sigma fields are read there

    def source_sql(self) -> str:
        """The events of this variant's source and channels (before ``where``)."""
        if self.source == "plaso":
            parts = ["(source = 'plaso' OR source LIKE 'plaso-%')"]
        else:
            parts = [f"source = {literal(self.source)}"]
        if self.channels is not None:
            names = ", ".join(literal(c.lower()) for c in self.channels) or "NULL"
            parts.append(f"lower(artifact) IN ({names})")
        return " AND ".join(parts)

    def filter_sql(self) -> str:
        """The WHERE clause picking this variant's events from ``events``."""
        parts = [self.source_sql()]
        if self.event_ids:
            parts.append(f"event_id IN ({', '.join(literal(e) for e in self.event_ids)})")
        for field, values in self.where:
            names = ", ".join(literal(v.lower()) for v in values)
            parts.append(f"lower(fields->>{literal(field)}) IN ({names})")
        parts += [f"json_exists(fields, {literal(_json_path(k))})" for k in self.has]
        if self.filter:
            parts.append(f"({self.filter})")
        return " AND ".join(parts)

    def mapped(self, field: str) -> tuple[str, ...] | None:
        """The event fields holding Sigma ``field`` in this variant, if renamed."""
        for name, keys in self.fields:
            if name.lower() == field.lower():
                return keys
        return None

    def expression(self, field: str) -> str | None:
        """The SQL computing Sigma ``field`` in this variant, if it is computed."""
        for name, sql in self.exprs:
            if name.lower() == field.lower():
                return sql
        if self.partner is not None:
            for name, sql in self.partner.fields:
                if name.lower() == field.lower():
                    by = ", ".join(["evidence", *self.partner.by])
                    return (
                        f"max(CASE WHEN {self.partner.where} THEN {sql} END) "
                        f"OVER (PARTITION BY {by})"
                    )
        return None


def _pairs(mapping: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in (mapping or {}).items())


def _variant(item: Mapping[str, Any]) -> Variant:
    fields = tuple(
        (str(name), tuple(str(k) for k in (keys if isinstance(keys, list) else [keys])))
        for name, keys in (item.get("fields") or {}).items()
    )
    where = tuple(
        (str(name), tuple(str(v) for v in values))
        for name, values in (item.get("where") or {}).items()
    )
    partner = None
    if item.get("partner"):
        spec = item["partner"]
        partner = Partner(
            where=str(spec["where"]),
            by=tuple(str(k) for k in spec["by"]),
            fields=_pairs(spec.get("fields")),
        )
    names = item.get("artifacts", item.get("channels"))
    return Variant(
        channels=None if names is None and "source" in item else tuple(str(c) for c in names or ()),
        event_ids=tuple(str(e) for e in item.get("event_ids") or ()),
        where=where,
        fields=fields,
        source=str(item.get("source", "evtx")),
        has=tuple(str(k) for k in item.get("has") or ()),
        filter=str(item.get("filter") or ""),
        exprs=_pairs(item.get("exprs")),
        partner=partner,
        kv_from=str(item.get("kv_from") or ""),
    )


def _table(data: Mapping[str, Any]) -> dict[str, tuple[Variant, ...]]:
    return {str(name): tuple(_variant(v) for v in items or []) for name, items in data.items()}


@functools.cache
def logsource_map() -> dict[str, dict[str, dict[str, tuple[Variant, ...]]]]:
    """``{product: {"categories": {name: variants}, "services": {…}, "all": {"": …}}}``
    from the YAML; ``""`` holds the categories of rules without a product (webserver)."""
    path = artifacts_dir() / "sigma" / "logsources.yaml"
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
        out = {"windows": {kind: _table(data[kind]) for kind in ("categories", "services")}}
        for product, tables in (data.get("products") or {}).items():
            out[str(product)] = {
                kind: _table(tables.get(kind) or {}) for kind in ("categories", "services")
            }
            out[str(product)]["all"] = {"": tuple(_variant(v) for v in tables.get("all") or [])}
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise IrkitError(f"cannot read the Sigma logsource map {path}: {exc}") from exc
    return out


def logsource_key(logsource: Mapping[str, str]) -> str:
    """A short name for a rule's logsource: ``process_creation``, ``service:security``;
    other products than Windows first: ``linux:process_creation``, ``linux:service:sshd``."""
    product = logsource.get("product", "")
    prefix = f"{product}:" if product not in ("", "windows") else ""
    if logsource.get("category"):
        return prefix + logsource["category"]
    if logsource.get("service"):
        return prefix + "service:" + logsource["service"]
    return "product:" + product


def variants(logsource: Mapping[str, str]) -> tuple[Variant, ...] | None:
    """The events a rule's logsource means; ``None`` if irkit does not know it."""
    product = logsource.get("product", "")
    table = logsource_map()
    category, service = logsource.get("category"), logsource.get("service")
    if product == "" and category and category in table.get("", {}).get("categories", {}):
        return table[""]["categories"][category]
    product = product or "windows"  # SigmaHQ's rules without a product are Windows rules
    if product not in table:
        return None
    if category:
        return table[product]["categories"].get(category)
    if service:
        return table[product]["services"].get(service)
    if product == "windows":
        return (Variant(channels=None),) if logsource.get("product") else None
    return table[product]["all"][""] or None


def event_keys(db: Any, where: str = "source = 'evtx'") -> dict[tuple[str, str, str], set[str]]:
    """Every field name present, per (source, lower-case channel or parser chain, EventID),
    in one pass over the events ``where`` picks."""
    rows = db.execute(
        f"""SELECT source, lower(artifact), event_id, list(DISTINCT json_keys(fields))
            FROM events WHERE {where} GROUP BY ALL"""
    ).fetchall()
    return {
        (row[0] or "", row[1] or "", row[2] or ""): {k for keys in row[3] for k in keys}
        for row in rows
    }


def _same_source(variant: Variant, source: str) -> bool:
    if variant.source == "plaso":
        return source == "plaso" or source.startswith("plaso-")
    return source == variant.source


def _variant_groups(
    variant: Variant, keys: Mapping[tuple[str, str, str], set[str]]
) -> Iterator[set[str]]:
    """The field names of each (source, channel, EventID) group of events in ``keys``
    the variant may read (its ``where`` and ``filter`` are not tested here)."""
    channels = None if variant.channels is None else {c.lower() for c in variant.channels}
    for (source, channel, event_id), names in keys.items():
        if not _same_source(variant, source):
            continue
        if channels is not None and channel not in channels:
            continue
        if variant.event_ids and event_id not in variant.event_ids:
            continue
        if variant.has and not set(variant.has) <= names:
            continue
        yield names


def variant_keys(variant: Variant, keys: Mapping[tuple[str, str, str], set[str]]) -> set[str]:
    """The field names a variant's events carry in this case."""
    out: set[str] = set()
    for names in _variant_groups(variant, keys):
        out |= names
    return out


def may_have_events(
    variants: Iterable[Variant], keys: Mapping[tuple[str, str, str], set[str]]
) -> bool:
    """False when no event of the case can be one of ``variants`` (no source, channel and
    EventID of theirs in ``keys``): their table would be empty, so it is not built."""
    return any(next(_variant_groups(v, keys), None) is not None for v in variants)


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


def _regex_name(name: str) -> str:
    """``name`` for a regular expression: metacharacters escaped."""
    return "".join("\\" + c if not (c.isalnum() or c in "_-") else c for c in name)


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def create_macros(db: Any) -> None:
    """The macros the logsource tables are built with, on ``db``."""
    for macro in MACROS:
        db.execute(macro)


def build_table(
    db: Any,
    name: str,
    variant_list: Iterable[Variant],
    fields: Iterable[str],
    keys: Mapping[tuple[str, str, str], set[str]],
    source: str = "events",
) -> tuple[dict[str, int], dict[str, bool]]:
    """Create temp table ``name`` holding the logsource's events (read from ``source``).

    Each field has two columns: ``cN`` lower-cased (what most matching reads) and ``oN`` as
    stored (regular expressions, ``cased``). Returns the column number of each Sigma field
    and whether any event of the logsource has the field. A field name is looked up as
    written, then case-insensitively, then as rule authors write names the event spells
    otherwise (``field_names``): without spaces (Defender's ``Threat Name`` is
    ``ThreatName``), then as the last part of a UserData path (``Operation`` of
    ``Operation_ClientFailure.Operation``; every path that ends so). The ``MACROS`` must
    have been created on ``db`` (once: ``create_macros``).
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
            computed = variant.expression(field)
            if computed is not None:
                present[field] = present[field] or bool(exact)
                exprs.append(f"({computed})::VARCHAR AS {columns[field]}")
                continue
            sources = variant.mapped(field) or (field,)
            # Exact names first: System's ProcessID is not EventData's ProcessId.
            found = [
                s if s in exact else folded[s.lower()]
                for s in sources
                if s in exact or s.lower() in folded
            ] or [k for s in sources for k in spelled.get(_squash(s), ())]
            if not found and variant.kv_from and exact:
                present[field] = True  # whether the text holds it is known row by row
                text = f"field({literal(variant.kv_from)})"
                exprs.append(f"kv({text}, {literal(_regex_name(field))}) AS {columns[field]}")
                continue
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
        inner = f"SELECT *, json_extract_string(fields, {path_list}::VARCHAR[]) AS _j FROM {source}"
        if variant.partner is None:
            selects.append(f"SELECT {', '.join(exprs)} FROM ({inner} WHERE {variant.filter_sql()})")
        else:  # the partner rows are read for their fields, then left out
            own = variant.filter_sql()
            both = f"({variant.source_sql()}) AND (({own}) OR ({variant.partner.where}))"
            names = ", ".join([*BASE_COLUMNS, *(columns[f] for f in wanted)])
            selects.append(
                f"SELECT {names} FROM (SELECT {', '.join(exprs)}, ({own}) AS _own "
                f"FROM ({inner} WHERE {both})) WHERE _own"
            )
    union = " UNION ALL ".join(selects)
    lowered = "".join(f", lower({c}) AS c{c[1:]}" for c in columns.values())
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT row_number() OVER () - 1 AS _row, *"
        f"{lowered} FROM ({union})"
    )
    return {field: int(c[1:]) for field, c in columns.items()}, present
