"""How a parser worker hands rows to the store with bounded memory.

A file with fewer rows than one batch travels back to the parent as an Arrow table (no
disk round trip); a bigger file is spooled as Parquet parts of ``batch`` rows each, which
the parent ingests one part at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from irkit.model import EVENT_COLUMNS
from irkit.sources.base import Row

DEFAULT_BATCH: Final = 50_000


class SpoolWriter:
    """Collects rows and writes a Parquet part every ``batch`` rows."""

    def __init__(self, directory: Path, stem: str, batch: int = DEFAULT_BATCH) -> None:
        self.directory = directory
        self.stem = stem
        self.batch = batch
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

        columns = list(zip(*self.rows, strict=True))
        return pa.Table.from_arrays(
            [pa.array(col, type=pa.string()) for col in columns], names=list(EVENT_COLUMNS)
        )

    def flush(self) -> None:
        """Write the pending rows as one Parquet part."""
        if not self.rows:
            return
        import pyarrow.parquet as pq

        table = self._table()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.stem}-{len(self.parts):05d}.parquet"
        pq.write_table(table, path, compression="lz4")
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
