"""Timeline writers: one module per format, registered here explicitly; ``dataset``
writes cases as a Parquet dataset (``irkit export``).

May import: ``irkit.store`` (the timeline query), ``irkit.sources`` (formats shared with
a source, as the bodyfile's) and the base modules. Never a stage that produces events
or findings, nor the CLI.
"""

from __future__ import annotations

from typing import Final

from irkit.export.base import Writer
from irkit.export.bodyfile import BodyfileWriter
from irkit.export.csv import CsvWriter
from irkit.export.jsonl import JsonlWriter
from irkit.export.l2tcsv import L2tCsvWriter

#: Every file format ``irkit timeline --format`` writes (``table`` is rendered by the CLI).
WRITERS: Final[dict[str, type[Writer]]] = {
    "csv": CsvWriter,
    "jsonl": JsonlWriter,
    "bodyfile": BodyfileWriter,
    "l2tcsv": L2tCsvWriter,
}
