"""A record's element tree in pyevtx-rs 0.14's JSON shape: the ``Event`` object.

As ``ir_json.rs`` writes it: an element whose only content is one integer or boolean
value is a JSON number or boolean; empty attributes are left out and empty elements are
``null``; repeated child elements are keyed ``Name``, ``Name_1``…; ``<Data Name="X">``
children of ``EventData``/``UserData`` are keyed by name, unnamed ones go to
``Data.#text`` (a list when there are several).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from irkit.sources.evtx.binxml_nodes import _Elem
from irkit.sources.evtx.values import Scalar, _text

_MAX_UNIQUE_NAMES: Final = 64  # pyevtx-rs stops numbering repeated names past 64 distinct ones

_CONTAINERS: Final = frozenset({"EventData", "UserData"})


def _has_text(nodes: Sequence[object]) -> bool:
    """Any content that is not an element and not empty."""
    for node in nodes:
        if isinstance(node, str):
            if node:
                return True
        elif isinstance(node, int):  # bool is an int
            return True
    return False


def _node_value(nodes: Sequence[object]) -> Scalar:
    """Content as pyevtx-rs writes it: one integer/boolean value as itself, else text."""
    if len(nodes) == 1:
        node = nodes[0]
        if isinstance(node, (str, int)):
            return node
    return "".join([_text(node) for node in nodes if isinstance(node, (str, int))])


def _own_text(nodes: Sequence[object]) -> Scalar:
    """``#text`` of an element that also has children: elements and empty values left
    out, one integer/boolean value as itself."""
    values = [node for node in nodes if isinstance(node, (str, int)) and node != ""]
    if len(values) == 1:
        return values[0]
    return "".join([_text(node) for node in values])


def _value(element: _Elem, container: bool) -> Any:
    """What pyevtx-rs writes for an element: null, its content, or an object."""
    if not element.has_elem and not element.attrs:
        kids = element.kids
        return _node_value(kids) if _has_text(kids) else None
    return _body(element, container)


def _data_value(element: _Elem) -> Any:
    """A ``<Data>`` of ``EventData``/``UserData``: never null, ``""`` when empty."""
    if element.has_elem:
        return _body(element, False)
    kids = element.kids
    return _node_value(kids) if _has_text(kids) else ""


def _body(element: _Elem, container: bool) -> dict[str, Any]:
    """An element as a JSON object: ``#attributes``, ``#text``, then its children."""
    obj: dict[str, Any] = {}
    if element.attrs:
        obj["#attributes"] = element.attrs
    kids = element.kids
    if _has_text(kids):
        obj["#text"] = _own_text(kids)
    if not element.has_elem:
        return obj
    children = [kid for kid in kids if type(kid) is _Elem]
    named = container and any(kid.name == "Data" and kid.attrs.get("Name") for kid in children)
    counts: dict[str, int] = {}
    data_done = False
    for kid in children:
        name = kid.name
        if container and name == "Data":
            if named:
                key = kid.attrs.get("Name")
                if key:
                    obj[_text(key)] = _data_value(kid)
            elif not data_done:
                data_done = True
                datas = [other for other in children if other.name == "Data"]
                if len(datas) == 1:
                    obj["Data"] = {"#text": _data_value(kid)}
                else:
                    obj["Data"] = {"#text": [_data_value(other) for other in datas]}
            continue
        seen = counts.get(name)
        if seen is None:
            if len(counts) < _MAX_UNIQUE_NAMES:
                counts[name] = 1
            key = name
        else:
            counts[name] = seen + 1
            key = f"{name}_{seen}"
        obj[key] = _value(kid, name in _CONTAINERS)
    return obj


def event_of(roots: list[_Elem]) -> dict[str, Any]:
    """The ``Event`` object pyevtx-rs would give for this record (``{}`` if it is not one)."""
    if len(roots) != 1 or roots[0].name != "Event":
        return {}
    value = _value(roots[0], False)
    return value if type(value) is dict else {}
