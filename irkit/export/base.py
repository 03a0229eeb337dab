"""What every timeline writer shares: the header, rows with the event's fields, JSON text.

JSON text is written with every control character escaped: orjson escapes C0 (U+0000 to
U+001F) as JSON requires, and ``json_text`` also escapes DEL and C1 (U+007F to U+009F),
which JSON allows raw but a terminal acts on (U+009B is CSI). Any JSON reader gives back
the original text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final, Protocol, TextIO

import orjson

from irkit.model import EXPORT_COLUMNS
from irkit.store.timeline import DEFAULT_FIELD_COLUMNS, Selection

OTHER_FIELDS: Final = "fields_other"
_RAW_IN_JSON: Final = re.compile(r"[\x7f-\x9f]")
_RESERVED: Final = frozenset(c.lower() for c in (*EXPORT_COLUMNS, OTHER_FIELDS, "tag", "label"))


def json_text(value: Any, *, sort_keys: bool = False) -> str:
    """``value`` as compact JSON with no raw control character (C0, DEL, C1) in it."""
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    # Outside strings JSON is ASCII: a DEL or C1 character can only be inside a string.
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
            cells.append(json_text(rest, sort_keys=True) if rest else "")
            yield cells

    return header, rows()
