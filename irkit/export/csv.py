"""RFC 4180 CSV that Timesketch imports as is and Excel opens without running formulas.

Columns ``datetime,timestamp_desc,message`` come first (Timesketch's mandatory trio), then
``timestamp`` (epoch µs) and irkit's columns, then the most common event fields, then
``fields_other`` (JSON of the rest). Any cell from the evidence that begins with ``=``,
``+``, ``-``, ``@``, tab or CR is prefixed with ``'`` (OWASP's advice), so a spreadsheet
shows it as text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Final, TextIO

from irkit.export.base import header_and_rows
from irkit.timeline import DEFAULT_FIELD_COLUMNS, Selection

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
EXCEL_CELL_MAX: Final = 32_767
BOM: Final = "\ufeff"
_FORMULA_FIRST: Final = frozenset(FORMULA_START)


def neutralise(cell: str) -> str:
    """Make a cell that a spreadsheet would run as a formula read as text."""
    if cell.startswith(FORMULA_START):
        return "'" + cell
    return cell


def cut_for_excel(cell: str) -> str:
    """Excel holds 32,767 characters a cell; longer text is cut with a visible marker."""
    if len(cell) <= EXCEL_CELL_MAX:
        return cell
    keep = EXCEL_CELL_MAX - len(f" [irkit: cut {len(cell)} chars]")
    return cell[:keep] + f" [irkit: cut {len(cell) - keep} chars]"


class CsvWriter:
    """Timeline rows as CSV."""

    def __init__(
        self,
        field_columns: int = DEFAULT_FIELD_COLUMNS,
        *,
        excel: bool = False,
        escape_formulas: bool = True,
    ) -> None:
        self.field_columns = field_columns
        self.excel = excel
        self.escape_formulas = escape_formulas

    def write(self, selection: Selection, out: TextIO) -> int:
        """Write the header and every row; returns the row count."""
        header, rows = header_and_rows(selection, self.field_columns)
        return self.write_rows(header, rows, out)

    def write_rows(self, header: list[str], rows: Iterable[list[str]], out: TextIO) -> int:
        """Write a header and rows of text cells (datetime first, timestamp fourth)."""
        if self.excel:
            out.write(BOM)
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        count = 0
        for cells in rows:
            if self.escape_formulas:
                # datetime (0) and timestamp (3) are irkit's, never the evidence's: kept as is
                # (a 1601 timestamp is negative, and must stay a number).
                safe = [f"'{c}" if c and c[0] in _FORMULA_FIRST else c for c in cells]
                safe[0], safe[3] = cells[0], cells[3]
                cells = safe
            if self.excel:
                cells = [cut_for_excel(c) for c in cells]
            writer.writerow(cells)
            count += 1
        return count
