"""The element trees of the python-evtx engine: a record's, and a compiled template's.

A record is read into ``_Elem`` trees, values rendered (``_Array``: an array value whose
element is repeated once per item); a template definition is compiled once per chunk into
a ``_Template`` tree whose ``_Sub`` slots take each record's substitution values.
"""

from __future__ import annotations

from irkit.sources.evtx.values import Scalar


class _Elem:
    """One element of a record, its values rendered."""

    __slots__ = ("attrs", "has_elem", "kids", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.attrs: dict[str, Scalar] = {}
        self.kids: list[_Elem | Scalar] = []
        self.has_elem = False


class _Array:
    """An array value of two or more items: its element is repeated once per item."""

    __slots__ = ("items",)

    def __init__(self, items: list[Scalar]) -> None:
        self.items = items


class _Sub:
    """A substitution slot in a compiled template; optional ones vanish when empty."""

    __slots__ = ("index", "optional")

    def __init__(self, index: int, optional: bool) -> None:
        self.index = index
        self.optional = optional


class _Template:
    """A template element compiled once per chunk."""

    __slots__ = ("attrs", "kids", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.attrs: list[tuple[str, tuple[Scalar | _Sub, ...]]] = []
        self.kids: list[_Template | Scalar | _Sub] = []


_Value = _Elem | _Array | Scalar
