"""Compiled templates filled with a record's substitution values, as pyevtx-rs fills them.

Optional substitutions with an empty value vanish; an array value repeats its element
once per item, several arrays giving their cross product (``array_expand.rs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, cast

from irkit.sources.evtx.binxml_json import _has_text, _node_value
from irkit.sources.evtx.binxml_nodes import _Array, _Elem, _Sub, _Template, _Value
from irkit.sources.evtx.values import Scalar

_MAX_COPIES: Final = 0x10000  # array expansion beyond this many copies is treated as damage


_Pieces = list[Scalar | _Array]
_Attrs = list[tuple[str, _Pieces]]
_Kids = list[_Elem | Scalar | _Array]


def _empty(value: _Value) -> bool:
    """pyevtx-rs's ``is_optional_empty``: what an optional substitution drops."""
    return value == ""


def _instantiate(template: _Template, values: list[_Value]) -> list[_Elem]:
    """Fill a template element with values; an array value repeats the element per item."""
    n_values = len(values)
    arrays = False
    attrs: _Attrs = []
    for name, parts in template.attrs:
        pieces: _Pieces = []
        for part in parts:
            if isinstance(part, _Sub):
                if part.index < n_values:
                    value = values[part.index]
                    if isinstance(value, _Elem) or (part.optional and _empty(value)):
                        continue
                    if type(value) is _Array:
                        arrays = True
                    pieces.append(value)
            else:
                pieces.append(part)
        attrs.append((name, pieces))
    kids: _Kids = []
    has_elem = False
    for kid in template.kids:
        if isinstance(kid, _Sub):
            if kid.index < n_values:
                value = values[kid.index]
                if kid.optional and _empty(value):
                    continue
                if type(value) is _Elem:
                    has_elem = True
                elif type(value) is _Array:
                    arrays = True
                kids.append(value)
        elif isinstance(kid, _Template):
            elems = _instantiate(kid, values)
            kids.extend(elems)
            has_elem = has_elem or bool(elems)
        else:
            kids.append(kid)
    if arrays:
        copies = 1
        for piece in [*kids, *(piece for _, pieces in attrs for piece in pieces)]:
            if type(piece) is _Array:
                copies *= len(piece.items)
        if copies > _MAX_COPIES:  # a cross product that big is damage, not an event
            raise ValueError(f"array values would repeat <{template.name}> {copies} times")
        return [
            _element(template.name, some_attrs, some_kids, has_elem)
            for some_attrs, some_kids in _expand(attrs, kids)
        ]
    return [_element(template.name, attrs, kids, has_elem)]


def _element(name: str, attrs: _Attrs, kids: _Kids, has_elem: bool) -> _Elem:
    """An element from its resolved attributes and children (arrays expanded)."""
    element = _Elem(name)
    for attr, pieces in attrs:
        if _has_text(pieces):
            element.attrs[attr] = _node_value(pieces)
    element.kids = cast("list[_Elem | Scalar]", kids)  # no arrays left
    element.has_elem = has_elem
    return element


def _expand(attrs: _Attrs, kids: _Kids) -> Iterator[tuple[_Attrs, _Kids]]:
    """pyevtx-rs's array expansion: one element per item of the first array (children
    first, then attributes), recursively, so several arrays give their cross product.
    An empty string item leaves its slot empty."""
    for index, kid in enumerate(kids):
        if type(kid) is _Array:
            for item in kid.items:
                slot: _Kids = [item] if item != "" else []
                yield from _expand(attrs, [*kids[:index], *slot, *kids[index + 1 :]])
            return
    for a_index, (name, pieces) in enumerate(attrs):
        for index, piece in enumerate(pieces):
            if type(piece) is _Array:
                for item in piece.items:
                    part: _Pieces = [item] if item != "" else []
                    replaced = (name, [*pieces[:index], *part, *pieces[index + 1 :]])
                    yield from _expand([*attrs[:a_index], replaced, *attrs[a_index + 1 :]], kids)
                return
    yield attrs, kids
