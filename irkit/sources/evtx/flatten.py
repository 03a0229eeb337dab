"""pyevtx-rs's JSON ``Event`` flattened to Sigma field names: the one field convention.

``EventID``, ``Channel``, ``Provider_Name``…; named ``<Data>`` as their names, unnamed as
``Data_1``…, UserData as dotted paths. Both engines flatten with :data:`flatten_event`,
so detections and exports never care which engine read the file. :func:`flatten_event_py`
is the reference; ``flatten_event`` is its C twin (``_evtxflat.c``) when that is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from irkit.speedups import speedups

# Attribute-only System elements whose attributes become top-level fields.
_ATTR_ELEMENTS: Final = frozenset({"Correlation", "Execution", "Security"})


def scalar(value: Any) -> str:
    """Render one JSON leaf the way the XML shows it."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _put(out: dict[str, str], key: str, value: Any) -> None:
    """Flatten one value under ``key``: dicts to dotted paths, lists to ``key_1``…"""
    kind = type(value)
    if kind is str:
        out[key] = value
    elif kind is int:
        out[key] = str(value)
    elif kind is dict:
        for sub, item in value.items():
            if sub == "#text":
                _put(out, key, item)
            elif sub == "#attributes":
                for attr, attr_value in item.items():
                    if attr != "xmlns" and not attr.startswith("xmlns:"):
                        out[f"{key}.{attr}"] = scalar(attr_value)
            else:
                _put(out, f"{key}.{sub}", item)
    elif kind is list:
        for index, item in enumerate(value, 1):
            _put(out, f"{key}_{index}", item)
    else:
        out[key] = scalar(value)


def normalise_guid(guid: str) -> str:
    """GUIDs as pyevtx-rs writes them: no braces, upper case."""
    return guid.strip("{}").upper()


_SYSTEM_SIMPLE: Final = frozenset(
    {"Version", "Level", "Task", "Opcode", "Keywords", "EventRecordID", "Channel", "Computer"}
)


def flatten_system(system: Mapping[str, Any], out: dict[str, str]) -> None:
    """Flatten ``Event/System`` into ``out`` with Sigma's names (the hot path: no calls
    for the plain integer and text elements that make up most of it)."""
    for key, value in system.items():
        kind = type(value)
        if kind is int:  # EventID, Version, Level, Task, Opcode, EventRecordID
            out[key] = str(value)
        elif kind is str:  # Keywords, Channel, Computer
            out[key] = value
        elif kind is dict:
            attrs = value.get("#attributes")
            if key == "TimeCreated":
                system_time = attrs.get("SystemTime") if attrs else None
                if system_time:
                    out["SystemTime"] = scalar(system_time)
            elif key == "Provider":
                for attr, attr_value in (attrs or {}).items():
                    text = scalar(attr_value)
                    out["Provider_" + attr] = normalise_guid(text) if attr == "Guid" else text
            elif key == "EventID":
                out["EventID"] = scalar(value.get("#text"))
                qualifiers = attrs.get("Qualifiers") if attrs else None
                if qualifiers is not None and qualifiers != "":
                    out["EventID_Qualifiers"] = scalar(qualifiers)
            elif key in _ATTR_ELEMENTS and len(value) == 1 and attrs is not None:
                for attr, attr_value in attrs.items():
                    if attr_value is not None and attr_value != "":
                        text = scalar(attr_value)
                        out[attr] = normalise_guid(text) if "ActivityID" in attr else text
            else:
                _put(out, key, value)
        elif value is not None:
            _put(out, key, value)


def flatten_event_py(event: Mapping[str, Any]) -> tuple[dict[str, str], int]:
    """Flatten a pyevtx-rs JSON ``Event``; returns the fields and how many are System's.

    The reference: :data:`flatten_event` is the C twin (``_evtxflat.c``) when it is built.
    """
    out: dict[str, str] = {}
    system = event.get("System")
    if type(system) is dict:
        flatten_system(system, out)
    n_system = len(out)
    for section, value in event.items():
        if section == "System" or section == "#attributes" or value is None:
            continue
        if section == "EventData" and type(value) is dict:
            for key, item in value.items():
                kind = type(item)
                if key in out:  # an EventData name equal to a System one keeps both
                    key = "EventData." + key
                if key == "Data":
                    _put_unnamed(out, item)
                elif kind is str:
                    out[key] = item
                elif kind is int:
                    out[key] = str(item)
                elif key != "#attributes":
                    _put(out, key, item)
        elif section == "UserData" and type(value) is dict:
            for key, item in value.items():
                _put(out, key, item)
        else:
            _put(out, section, value)
    return out, n_system


def _put_unnamed(out: dict[str, str], item: Any) -> None:
    """Unnamed ``<Data>`` elements become ``Data_1``, ``Data_2``… in document order."""
    if isinstance(item, dict) and "#text" in item and len(item) == 1:
        item = item["#text"]
    if not isinstance(item, list):
        item = [item]
    for index, value in enumerate(item, 1):
        _put(out, f"Data_{index}", value)


flatten_event: Callable[[Mapping[str, Any]], tuple[dict[str, str], int]] = (
    flatten_event_py if speedups is None else speedups.flatten_event
)
