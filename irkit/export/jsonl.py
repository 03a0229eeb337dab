"""JSON Lines: one object per event, Timesketch's JSONL shape, for scripts and data lakes."""

from __future__ import annotations

from typing import TextIO

import orjson

from irkit.export.base import header_and_rows
from irkit.timeline import DEFAULT_FIELD_COLUMNS, Selection


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
            out.write(orjson.dumps(obj).decode())
            out.write("\n")
            count += 1
        return count
