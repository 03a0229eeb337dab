"""File events into a case at the speed of the parse path (#18).

``PartWriter`` builds Arrow tables and writes them as Parquet parts on a thread of its
own (Arrow's compute and writer let go of the GIL, so the walk goes on meanwhile), at
most ``depth`` tables waiting, so memory stays bounded however many files a tree holds.
``EvidenceRegistry.add_file_parts`` then stores the parts: moved into ``events/`` and
registered in one transaction when no event in them can already be in the case, else
through ``add_events``, which keeps only the uids the case does not hold yet.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

#: Tables waiting for the writer thread: bounds memory (one table is one batch).
DEPTH: Final = 2


class PartWriter:
    """Writes tables as numbered Parquet parts ``<stem>-NNNNN.parquet`` in ``directory``."""

    def __init__(self, directory: Path, stem: str, depth: int = DEPTH) -> None:
        self.directory = directory
        self.stem = stem
        self.parts: list[Path] = []
        #: Rows of each part, in the order of ``parts``.
        self.counts: list[int] = []
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None

    def write(self, make: Callable[[], Any]) -> None:
        """Queue one table, given as the call that builds it: the thread builds it too
        (Arrow's ``take`` and casts let go of the GIL while the walk goes on). Waits
        while ``depth`` tables are queued."""
        if self.error is not None:
            raise self.error
        if self._thread is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="irkit-parts", daemon=True)
            self._thread.start()
        path = self.directory / f"{self.stem}-{len(self.parts):05d}.parquet"
        self.parts.append(path)
        self._queue.put((path, make))

    def _run(self) -> None:
        import pyarrow.parquet as pq

        while (item := self._queue.get()) is not None:
            if self.error is not None:
                continue  # drain: the caller learns of the error at its next call
            path, make = item
            try:
                table = make()
                pq.write_table(table, path, compression="snappy", row_group_size=1 << 20)
                self.counts.append(table.num_rows)
            except BaseException as exc:
                self.error = exc

    def close(self) -> list[Path]:
        """Wait for every queued table to be written; returns the parts."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self.error is not None:
            raise self.error
        return self.parts

    def discard(self) -> None:
        """Stop, and remove every part written or being written."""
        with contextlib.suppress(Exception):  # the parts go either way
            self.close()
        for part in self.parts:
            part.unlink(missing_ok=True)
        self.parts, self.counts = [], []
