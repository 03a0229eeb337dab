"""How a parser worker hands rows to the store with bounded memory.

A file with fewer rows than one batch travels back to the parent as an Arrow table (no
disk round trip); a bigger file, or a slice of one, is spooled as Arrow IPC parts of
``batch`` rows each (no encoding, memory-mapped by the parent), which the parent ingests
one part at a time. The per-file columns (source, evidence, its sha256) are filled in
here, in C, not once per row in the parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from irkit.model import FILE_COLUMNS, ROW_COLUMNS
from irkit.sources.base import Row

DEFAULT_BATCH: Final = 20_000


def read_part(path: str) -> Any:
    """A spool part as an Arrow table (memory-mapped)."""
    import pyarrow as pa

    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()


class SpoolWriter:
    """Collects rows and writes an Arrow part every ``batch`` rows."""

    def __init__(
        self,
        directory: Path,
        stem: str,
        batch: int = DEFAULT_BATCH,
        constants: tuple[str, str, str] = ("", "", ""),
    ) -> None:
        self.directory = directory
        self.stem = stem
        self.batch = batch
        self.constants = dict(zip(FILE_COLUMNS, constants, strict=True))
        self.rows: list[Row] = []
        self.parts: list[str] = []
        self.total = 0
        self.tables: list[Any] = []
        self.to_disk = False

    def add(self, row: Row) -> None:
        """Take one row; flush a part when the batch is full."""
        self.rows.append(row)
        if len(self.rows) >= self.batch:
            self.flush()

    def _table(self) -> Any:
        import pyarrow as pa

        count = len(self.rows)
        arrays = [pa.array(col, type=pa.string()) for col in zip(*self.rows, strict=True)]
        arrays += [pa.nulls(count, pa.string()).fill_null(v) for v in self.constants.values()]
        return pa.Table.from_arrays(arrays, names=[*ROW_COLUMNS, *FILE_COLUMNS])

    def flush(self) -> None:
        """Write the pending rows as one Arrow IPC part."""
        if not self.rows:
            return
        import pyarrow as pa

        table = self._table()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.stem}-{len(self.parts):05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        self.parts.append(str(path))
        self.total += len(self.rows)
        self.rows = []

    def close(self) -> None:
        """Finish: a small file stays in memory in ``tables``; a big one writes its last part."""
        if self.parts or self.to_disk:
            self.flush()
        elif self.rows:
            self.tables = [self._table()]
            self.total += len(self.rows)
            self.rows = []

    def discard(self) -> None:
        """Remove every part written so far."""
        for part in self.parts:
            Path(part).unlink(missing_ok=True)
        self.parts = []
        self.rows = []
        self.tables = []
