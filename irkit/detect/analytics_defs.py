"""Entity kinds: ``artifacts/analytics/entities.yaml`` read and checked.

An entity kind (a process image, a parent→child pair, a service, a logon…) says which events
name it (``from``: an evtx channel and event ids, or osquery queries) and which fields give
each of its columns. ``load_definitions`` checks the whole file; ``kinds`` and ``entity_kind``
look up irkit's own set, read once per process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from irkit.artifacts import artifacts_dir, load_yaml
from irkit.errors import IrkitError, UsageError

NORMALISERS: Final = ("text", "lower", "path")
SOURCES: Final = ("evtx", "osquery")
#: Field names the definitions may use: Sigma names, osquery columns, dotted paths.
FIELD_NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*$")
_TEMPLATE_FIELD: Final = re.compile(r"\{([^{}]*)\}")


@dataclasses.dataclass(frozen=True, slots=True)
class Value:
    """How one column's value comes out of an event's fields."""

    fields: tuple[str, ...] = ()
    template: str = ""
    constant: str | None = None
    regex: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Extract:
    """One kind of event that names an entity, and how its values are read."""

    source: str
    values: Mapping[str, Value]
    channels: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    queries: tuple[str, ...] = ()
    match: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    exclude: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class EntityKind:
    """An entity kind of entities.yaml: its columns and the events that give it."""

    name: str
    title: str
    columns: tuple[str, ...]
    normalise: Mapping[str, str]
    labels: Mapping[str, Mapping[str, str]]
    required: tuple[str, ...]
    extracts: tuple[Extract, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Definitions:
    """Everything entities.yaml says."""

    kinds: Mapping[str, EntityKind]
    empty_values: tuple[str, ...]
    path_prefixes: Mapping[str, str]


class _InvalidError(IrkitError):
    """A definition file that does not say what irkit expects."""


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str | int) and not isinstance(value, bool):
        return (str(value),)
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise _InvalidError(f"{where}: expected a string or a non-empty list of strings, got {value!r}")


def _field(name: str, where: str) -> str:
    if not FIELD_NAME.match(name):
        raise _InvalidError(f"{where}: {name!r} is not a field name")
    return name


def _value(spec: object, where: str) -> Value:
    if isinstance(spec, str | list):
        return Value(fields=tuple(_field(f, where) for f in _strings(spec, where)))
    if not isinstance(spec, dict) or len(spec.keys() - {"regex"}) != 1:
        raise _InvalidError(f"{where}: expected a field, a list of fields or one of template/value")
    if "template" in spec:
        template = str(spec["template"])
        names = _TEMPLATE_FIELD.findall(template)
        if not names:
            raise _InvalidError(f"{where}: the template names no {{Field}}")
        return Value(fields=tuple(_field(n, where) for n in names), template=template)
    if "value" in spec:
        return Value(constant=str(spec["value"]))
    if "field" in spec:
        regex = str(spec.get("regex", ""))
        if regex:
            try:
                if re.compile(regex).groups != 1:
                    raise _InvalidError(f"{where}: the regex needs exactly one group")
            except re.error as exc:
                raise _InvalidError(f"{where}: bad regex: {exc}") from exc
        return Value(fields=(_field(str(spec["field"]), where),), regex=regex)
    raise _InvalidError(f"{where}: unknown value keys {sorted(spec)}")


def _extract(spec: object, columns: tuple[str, ...], where: str) -> Extract:
    if not isinstance(spec, dict):
        raise _InvalidError(f"{where}: expected a mapping")
    allowed = {"source", "channels", "event_ids", "queries", "values", "match", "exclude"}
    if unknown := spec.keys() - allowed:
        raise _InvalidError(f"{where}: unknown keys {sorted(unknown)}")
    source = spec.get("source")
    if source not in SOURCES:
        raise _InvalidError(f"{where}: source must be one of {', '.join(SOURCES)}")
    raw_values = spec.get("values")
    if not isinstance(raw_values, dict) or not raw_values:
        raise _InvalidError(f"{where}: values must map columns to fields")
    if unknown := raw_values.keys() - set(columns):
        raise _InvalidError(f"{where}: values for unknown columns {sorted(unknown)}")
    values = {c: _value(v, f"{where}.values.{c}") for c, v in raw_values.items()}
    filters: dict[str, dict[str, tuple[str, ...]]] = {}
    for key in ("match", "exclude"):
        raw = spec.get(key, {})
        if not isinstance(raw, dict):
            raise _InvalidError(f"{where}.{key}: expected field -> [values]")
        filters[key] = {
            _field(str(k), f"{where}.{key}"): _strings(v, f"{where}.{key}.{k}")
            for k, v in raw.items()
        }
    if source == "evtx":
        if "queries" in spec or not spec.get("channels") or not spec.get("event_ids"):
            raise _InvalidError(
                f"{where}: an evtx extract needs channels and event_ids, no queries"
            )
        return Extract(
            source,
            values,
            channels=_strings(spec["channels"], f"{where}.channels"),
            event_ids=_strings(spec["event_ids"], f"{where}.event_ids"),
            match=filters["match"],
            exclude=filters["exclude"],
        )
    if "channels" in spec or "event_ids" in spec or not spec.get("queries"):
        raise _InvalidError(f"{where}: an osquery extract needs queries, no channels or event_ids")
    return Extract(
        source,
        values,
        queries=_strings(spec["queries"], f"{where}.queries"),
        match=filters["match"],
        exclude=filters["exclude"],
    )


def _kind(name: str, spec: object) -> EntityKind:
    where = f"kinds.{name}"
    if not isinstance(spec, dict):
        raise _InvalidError(f"{where}: expected a mapping")
    if unknown := spec.keys() - {"title", "columns", "required", "from"}:
        raise _InvalidError(f"{where}: unknown keys {sorted(unknown)}")
    raw_columns = spec.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise _InvalidError(f"{where}.columns: expected column -> options")
    columns = tuple(_field(str(c), f"{where}.columns") for c in raw_columns)
    normalise: dict[str, str] = {}
    labels: dict[str, dict[str, str]] = {}
    for column, options in raw_columns.items():
        options = options or {}
        if not isinstance(options, dict) or options.keys() - {"normalise", "labels"}:
            raise _InvalidError(f"{where}.columns.{column}: only normalise and labels")
        normalise[column] = str(options.get("normalise", "text"))
        if normalise[column] not in NORMALISERS:
            raise _InvalidError(f"{where}.columns.{column}: normalise is one of {NORMALISERS}")
        raw_labels = options.get("labels", {})
        if not isinstance(raw_labels, dict):
            raise _InvalidError(f"{where}.columns.{column}.labels: expected value -> label")
        labels[column] = {str(k): str(v) for k, v in raw_labels.items()}
    required = _strings(spec.get("required", [columns[0]]), f"{where}.required")
    if unknown := set(required) - set(columns):
        raise _InvalidError(f"{where}.required: unknown columns {sorted(unknown)}")
    raw_from = spec.get("from")
    if not isinstance(raw_from, list) or not raw_from:
        raise _InvalidError(f"{where}.from: expected a list of extracts")
    extracts = tuple(_extract(e, columns, f"{where}.from[{i}]") for i, e in enumerate(raw_from))
    for index, extract in enumerate(extracts):
        if missing := set(required) - extract.values.keys():
            raise _InvalidError(f"{where}.from[{index}]: no value for required {sorted(missing)}")
    return EntityKind(
        name, str(spec.get("title", name)), columns, normalise, labels, required, extracts
    )


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise IrkitError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise IrkitError(f"{path}: expected a mapping at the top")
    return data


def load_definitions(path: Path | None = None) -> Definitions:
    """Read and check entities.yaml (irkit's own unless a path is given)."""
    path = path or artifacts_dir() / "analytics" / "entities.yaml"
    data = _load_yaml(path)
    try:
        if unknown := data.keys() - {"kinds", "empty_values", "path_prefixes"}:
            raise _InvalidError(f"unknown keys {sorted(unknown)}")
        raw_kinds = data.get("kinds")
        if not isinstance(raw_kinds, dict) or not raw_kinds:
            raise _InvalidError("kinds: expected name -> kind")
        prefixes = data.get("path_prefixes", {})
        if not isinstance(prefixes, dict):
            raise _InvalidError("path_prefixes: expected prefix -> replacement")
        empty = data.get("empty_values", [""])
        return Definitions(
            kinds={str(k): _kind(str(k), v) for k, v in raw_kinds.items()},
            empty_values=tuple(str(v) for v in empty) if isinstance(empty, list) else ("",),
            path_prefixes={str(k).lower(): str(v or "") for k, v in prefixes.items()},
        )
    except _InvalidError as exc:
        raise IrkitError(f"{path}: {exc.message}") from exc


@functools.cache
def _definitions() -> Definitions:
    return load_definitions()


def kinds() -> tuple[str, ...]:
    """The entity kinds irkit knows, in the order of entities.yaml."""
    return tuple(_definitions().kinds)


def entity_kind(name: str) -> EntityKind:
    """One entity kind; an unknown name is a usage error that lists the kinds."""
    known = _definitions().kinds
    if name not in known:
        raise UsageError(
            f"unknown entity kind {name!r}",
            hint=f"use one of: {', '.join(known)}",
        )
    return known[name]


@dataclasses.dataclass(frozen=True, slots=True)
class StackRow:
    """One stacked entity: its values, how often and where it was seen."""

    kind: str
    columns: tuple[str, ...]
    values: tuple[str, ...]
    count: int
    hosts: tuple[str, ...]
    sources: tuple[str, ...]
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    event_uids: tuple[str, ...]

    def value(self, column: str) -> str:
        """The value of one column ('' when the entity has none)."""
        return self.values[self.columns.index(column)]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the values by column, then the counts and times."""
        return {
            "kind": self.kind,
            **dict(zip(self.columns, self.values, strict=True)),
            "count": self.count,
            "host_count": len(self.hosts),
            "hosts": list(self.hosts),
            "sources": list(self.sources),
            "first_seen": iso_utc(self.first_seen),
            "last_seen": iso_utc(self.last_seen),
            "event_uids": list(self.event_uids),
        }


def iso_utc(value: dt.datetime | None) -> str:
    """A time as ISO 8601 in UTC ('' for none)."""
    return value.astimezone(dt.UTC).isoformat() if value is not None else ""
