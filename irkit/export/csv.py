"""RFC 4180 CSV that Timesketch imports as is and Excel opens without running formulas.

Columns ``datetime,timestamp_desc,message`` come first (Timesketch's mandatory trio), then
``timestamp`` (epoch µs) and irkit's columns, then the most common event fields, then
``fields_other`` (JSON of the rest).

Every cell from the evidence (header names too) is made safe, reversibly (``restore``):

- control characters a terminal acts on are written ``\\x{HH}`` (two lower-case hex
  digits): C0 but tab, line feed and a CR that ends a line (CR-LF), DEL, C1. A ``\\``
  that the text itself has right before ``x{HH}`` is written ``\\x{5c}``, so the escape
  stays unambiguous; every other ``\\`` (Windows paths, ``\\x64\\``) is left alone.
- a cell that begins with ``=``, ``+``, ``-``, ``@``, tab or CR, after any number of
  ``'``, is prefixed with ``'`` (OWASP's advice), so a spreadsheet shows it as text.

``fields_other`` is JSON whose control characters are JSON's ``\\u00XX`` escapes: parse
it as JSON. ``datetime`` and ``timestamp`` are irkit's own and never altered.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from typing import Final, TextIO

from irkit.export.base import OTHER_FIELDS, header_and_rows
from irkit.store.timeline import DEFAULT_FIELD_COLUMNS, Selection

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
EXCEL_CELL_MAX: Final = 32_767
BOM: Final = "\ufeff"
#: Columns irkit writes itself (datetime, timestamp): never escaped nor prefixed.
OWN_COLUMNS: Final = (0, 3)
#: Rows written between two calls of a writer's ``progress``.
PROGRESS_ROWS: Final = 1_000

# A control to escape (a CR only when no LF follows), or a backslash the text has right
# before what would read as an escape.
_TO_ESCAPE: Final = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)|\\(?=x\{[0-9A-Fa-f]{2}\})"
)
_ESCAPED: Final = re.compile(r"\\x\{([0-9A-Fa-f]{2})\}")
_FORMULA: Final = re.compile(r"'*[=+\-@\t\r]")
_PREFIXED: Final = re.compile(r"'+[=+\-@\t\r]")
_MAYBE_FORMULA: Final = frozenset("'=+-@\t\r")


def escape_controls(text: str) -> str:
    """Control characters as ``\\x{HH}``, and a ``\\`` before ``x{HH}`` as ``\\x{5c}``."""
    if text.isprintable() and "\\x{" not in text:  # the common case, at C speed
        return text
    return _TO_ESCAPE.sub(lambda m: f"\\x{{{ord(m.group()):02x}}}", text)


def unescape_controls(text: str) -> str:
    """The reverse of ``escape_controls``: each ``\\x{HH}`` back to U+00HH."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def prefix_formula(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would run as a formula (after any ``'``s)."""
    if cell and cell[0] in _MAYBE_FORMULA and _FORMULA.match(cell):
        return "'" + cell
    return cell


def neutralise(cell: str) -> str:
    """A cell from the evidence made safe for a spreadsheet and a terminal (reversibly)."""
    return prefix_formula(escape_controls(cell))


def restore(cell: str) -> str:
    """The evidence's text from a neutralised cell: drop the formula ``'``, unescape."""
    if _PREFIXED.match(cell):
        cell = cell[1:]
    return unescape_controls(cell)


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

    def write(
        self, selection: Selection, out: TextIO, progress: Callable[[int], None] | None = None
    ) -> int:
        """Write the header and every row; returns the row count. ``progress`` hears of
        the rows written, ``PROGRESS_ROWS`` at a time (the rest at the end)."""
        header, rows = header_and_rows(selection, self.field_columns)
        return self.write_rows(header, rows, out, progress)

    def write_rows(
        self,
        header: list[str],
        rows: Iterable[list[str]],
        out: TextIO,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Write a header and rows of text cells (datetime first, timestamp fourth).

        Control characters are always escaped; ``escape_formulas`` adds the ``'``. A
        ``fields_other`` column is JSON already free of raw controls (``json_text``).
        ``progress``: as for ``write``.
        """
        if self.excel:
            out.write(BOM)
        safe = neutralise if self.escape_formulas else escape_controls
        json_cell = prefix_formula if self.escape_formulas else str
        plain = [i for i in range(len(header)) if i not in OWN_COLUMNS]
        json_columns = {i for i, name in enumerate(header) if name == OTHER_FIELDS}
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([safe(name) for name in header])
        count = 0
        for row in rows:
            cells = list(row)
            for index in plain:
                cell = cells[index]
                if cell:
                    cells[index] = json_cell(cell) if index in json_columns else safe(cell)
            if self.excel:
                cells = [cut_for_excel(c) for c in cells]
            writer.writerow(cells)
            count += 1
            if progress is not None and not count % PROGRESS_ROWS:
                progress(PROGRESS_ROWS)
        if progress is not None and count % PROGRESS_ROWS:
            progress(count % PROGRESS_ROWS)
        return count
