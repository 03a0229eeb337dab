"""JSON Lines: one object per event, Timesketch's JSONL shape, for scripts and data lakes.

Values are the case's text exactly; control characters are JSON escapes (``json_text``:
C0, DEL and C1 as ``\\u00XX``), so no raw control reaches a terminal that shows the file.
"""

from __future__ import annotations

from typing import TextIO

from irkit.export.base import header_and_rows, json_text
from irkit.store.timeline import DEFAULT_FIELD_COLUMNS, Selection


class JsonlWriter:
    """Timeline rows as JSON objects, one a line; empty cells are left out."""

    def __init__(self, field_columns: int = DEFAULT_FIELD_COLUMNS) -> None:
        self.field_columns = field_columns

    def write(self, selection: Selection, out: TextIO) -> int:
        """Write every row; returns the row count."""
        header, rows = header_and_rows(selection, self.field_columns)
        count = 0
        for cells in rows:
            obj: dict[str, object] = {k: v for k, v in zip(header, cells, strict=True) if v}
            if "timestamp" in obj:
                obj["timestamp"] = int(cells[3])
            out.write(json_text(obj))
            out.write("\n")
            count += 1
        return count
