"""What every timeline writer shares: the header, and rows with the event's fields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Protocol, TextIO

import orjson

from irkit.model import EXPORT_COLUMNS
from irkit.timeline import DEFAULT_FIELD_COLUMNS, Selection

OTHER_FIELDS: Final = "fields_other"
_RESERVED: Final = frozenset(c.lower() for c in (*EXPORT_COLUMNS, OTHER_FIELDS, "tag", "label"))


def column_name(field: str) -> str:
    """The export column for an event field; names that clash with ours get a prefix."""
    if field.lower() in _RESERVED or field.startswith("_"):
        return "field_" + field
    return field


class Writer(Protocol):
    """Writes a selection to a text stream."""

    def __init__(self, field_columns: int = DEFAULT_FIELD_COLUMNS) -> None:
        """``field_columns`` bounds how many event fields get a column of their own."""

    def write(self, selection: Selection, out: TextIO) -> int:
        """Write every row; returns how many."""


def header_and_rows(
    selection: Selection, field_columns: int
) -> tuple[list[str], Iterator[list[str]]]:
    """The export header and an iterator of rows as text cells (empty for absent)."""
    fields = selection.field_columns(field_columns)
    header = [*EXPORT_COLUMNS, *(column_name(f) for f in fields), OTHER_FIELDS]
    chosen = frozenset(fields)

    def rows() -> Iterator[list[str]]:
        for row in selection.rows():
            flat: dict[str, str] = orjson.loads(row[-1]) if row[-1] else {}
            cells = ["" if value is None else str(value) for value in row[:-1]]
            cells += [flat.get(name, "") for name in fields]
            rest = {k: v for k, v in flat.items() if k not in chosen}
            cells.append(orjson.dumps(rest, option=orjson.OPT_SORT_KEYS).decode() if rest else "")
            yield cells

    return header, rows()
