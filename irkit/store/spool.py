"""How a parser worker hands events to the store with bounded memory.

Rows become Arrow tables in the final event schema (uid and UTC timestamps included),
built here, in the worker. A file with fewer rows than one batch stays an Arrow table
(parked in an Arrow IPC file by a worker process, ``park``), which the store writes with
other small files' as one part; a bigger file, or a slice of one, is written as Parquet
parts of ``batch`` rows each, which the store then only moves into place. The per-file
columns (source, evidence, its sha256) are filled in with Arrow, not once per row.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Final

from irkit.model import EVENT_COLUMNS, ROW_COLUMNS
from irkit.sources.base import Row
from irkit.speedups import speedups

DEFAULT_BATCH: Final = 10_000
#: A small file's rows parked by a worker process as one Arrow IPC file, so that only a
#: few bytes travel back to the parent (a worker killed while sending a big result would
#: leave the process pool waiting for the rest of it forever).
PARKED: Final = "-small.arrow"
#: A part holding the rows of several small files of one worker task, one file after
#: another (``GroupWriter``): the store registers it once per file, with that file's rows.
GROUPED: Final = "-group.parquet"


def park(tables: list[Any], directory: Path, stem: str) -> str:
    """Write a small file's tables as one Arrow IPC file; returns its path."""
    import pyarrow as pa

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}{PARKED}"
    with pa.OSFile(str(path), "wb") as out, pa.ipc.new_file(out, tables[0].schema) as writer:
        for table in tables:
            writer.write_table(table)
    return str(path)


def unpark(path: str) -> Any:
    """The table :func:`park` wrote."""
    import pyarrow as pa

    with pa.memory_map(path, "r") as source:
        return pa.ipc.open_file(source).read_all()


def uid(sha256: str, record: str, ts_desc: str) -> str:
    """The stable id of an event: md5 of evidence sha256, record and ts_desc, in hex."""
    return hashlib.md5(f"{sha256}|{record}|{ts_desc}".encode(), usedforsecurity=False).hexdigest()


def to_timestamps(texts: Any) -> Any:
    """ISO 8601 texts (Z or +00:00, up to 9 fraction digits) as UTC microsecond timestamps;
    ``texts`` a list of str or an Arrow string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = pa.timestamp("us", tz="UTC")
    if isinstance(texts, list):
        texts = pa.array(texts, pa.string())
    array = pc.replace_substring_regex(texts, pattern=r"(\.\d{6})\d+", replacement=r"\1")
    try:
        return pc.cast(array, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # One odd value must not cost the batch: parse one by one, unparseable as null.
        import datetime as dt

        values: list[dt.datetime | None] = []
        for text in array.to_pylist():
            try:
                value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                values.append(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
            except (TypeError, ValueError):
                values.append(None)
        return pa.array(values, kind)


def _string_array(values: Any) -> Any:
    """A column (a list of str, or a C ``Column``, which this empties) as an Arrow string
    array."""
    import pyarrow as pa

    if isinstance(values, list):
        return pa.array(values, pa.string())
    count, nulls, validity, offsets, data, raw = values.take()
    array = pa.Array.from_buffers(
        pa.string(),
        count,
        [
            None if validity is None else pa.py_buffer(validity),
            pa.py_buffer(offsets),
            pa.py_buffer(data),
        ],
        null_count=nulls,
    )
    if raw:  # bytes were appended: UTF-8 as the cast from binary checked it
        array.validate(full=True)
    return array


def _new_column() -> Any:
    """An empty row column: a C ``Column`` (Arrow buffers, no object per row) when the
    accelerator is built, else a list."""
    return [] if _Column is None else _Column()


_Column: Any = getattr(speedups, "Column", None)


def _constant(value: str | list[str], count: int) -> Any:
    import pyarrow as pa

    if isinstance(value, list):
        return pa.array(value, pa.string())
    return pa.nulls(count, pa.string()).fill_null(value)


def build_table(
    rows: list[Row], source: str, evidence: str | list[str], sha256: str | list[str]
) -> Any:
    """Rows as an Arrow table in the event schema.

    ``evidence`` and ``sha256`` are one value for a whole file's rows, or one per row
    (``irkit hash``: each file is its own evidence).
    """
    # One comprehension per column: several times faster than zip(*rows) on big batches.
    columns = tuple([row[i] for row in rows] for i in range(len(ROW_COLUMNS)))
    return build_table_columns(columns, source, evidence, sha256)


def build_table_columns(
    columns: tuple[Any, ...],
    source: str | list[str],
    evidence: str | list[str],
    sha256: str | list[str],
    uids: Any = None,
) -> Any:
    """:func:`build_table` from the rows' columns (one list, or one C ``Column``, which
    this empties, per name of ``ROW_COLUMNS``); ``uids``, when given, are the rows' uids
    already made (a list or a ``Column``)."""
    import pyarrow as pa

    by_name = dict(zip(ROW_COLUMNS, columns, strict=True))
    count = len(columns[0])
    records, descs = by_name["record"], by_name["ts_desc"]
    if uids is None and not isinstance(records, list):
        if isinstance(sha256, str) and speedups is not None:
            uids = speedups.Column()
            speedups.uids_into(uids, sha256, records, descs, 0, count)
        else:
            records, descs = records.to_list(), descs.to_list()
    if uids is None:
        shas = [sha256] * count if isinstance(sha256, str) else sha256
        if speedups is not None and isinstance(sha256, str):
            uids = speedups.uids(sha256, records, descs)
        else:
            uids = [uid(sha, r, d) for sha, r, d in zip(shas, records, descs, strict=True)]
    fields = by_name["fields"]
    arrays: dict[str, Any] = {
        "uid": _string_array(uids),
        "ts": to_timestamps(
            by_name["ts"] if isinstance(by_name["ts"], list) else _string_array(by_name["ts"])
        ),
        # fields travel as the UTF-8 bytes orjson wrote: no decode, no re-encode.
        "fields": pa.array(fields, pa.binary()).cast(pa.string())
        if isinstance(fields, list)
        else _string_array(fields),
        "source": _constant(source, count),
        "evidence": _constant(evidence, count),
        "evidence_sha256": _constant(sha256, count),
    }
    for name in ROW_COLUMNS:
        if name not in arrays:
            arrays[name] = _string_array(by_name[name])
    return pa.Table.from_arrays([arrays[n] for n in EVENT_COLUMNS], names=list(EVENT_COLUMNS))


def _no_rows() -> tuple[Any, ...]:
    return tuple(_new_column() for _ in ROW_COLUMNS)


class SpoolWriter:
    """Collects rows, column by column, and writes a Parquet part every ``batch`` rows."""

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
        self.constants = constants
        self.columns = _no_rows()
        self.parts: list[str] = []
        self.total = 0
        self.tables: list[Any] = []
        self.to_disk = False

    @property
    def pending(self) -> int:
        """Rows taken and not yet written."""
        return len(self.columns[0])

    def add(self, row: Row) -> None:
        """Take one row; flush a part when the batch is full."""
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)
        if len(self.columns[0]) >= self.batch:
            self.flush()

    def open_columns(self) -> tuple[tuple[Any, ...], int]:
        """The pending columns and the room left in this batch, for a producer that
        appends whole rows to them directly (at most ``room``) and then calls
        :meth:`grown`: no row tuples to take apart again."""
        return self.columns, self.batch - self.pending

    def grown(self, count: int) -> None:
        """``count`` rows were appended to the open columns."""
        if self.pending >= self.batch:
            self.flush()

    def _table(self) -> Any:
        return build_table_columns(self.columns, *self.constants)

    def flush(self) -> None:
        """Write the pending rows as one Parquet part."""
        if not self.pending:
            return
        import pyarrow.parquet as pq

        pending = self.pending  # a C Column is emptied as its table is made
        table = self._table()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.stem}-{len(self.parts):05d}.parquet"
        pq.write_table(table, path, compression="snappy")
        self.parts.append(str(path))
        self.total += pending
        self.columns = _no_rows()

    def close(self) -> None:
        """Finish: a small file stays in memory in ``tables``; a big one writes its last part."""
        if self.parts or self.to_disk:
            self.flush()
        elif self.pending:
            self.total += self.pending
            self.tables = [self._table()]
            self.columns = _no_rows()

    def discard(self) -> None:
        """Remove every part written so far."""
        for part in self.parts:
            Path(part).unlink(missing_ok=True)
        self.parts = []
        self.columns = _no_rows()
        self.tables = []


class GroupWriter(SpoolWriter):
    """The rows of several small files, one file after another, written as shared parts
    (``GROUPED``): one Parquet part for many small logs, in place of a part (or a parked
    table) each. A part is cut only between files, when it holds ``batch`` rows or more,
    so each file's rows are in one part; a file that fails takes its rows back out."""

    def __init__(self, directory: Path, stem: str, batch: int = DEFAULT_BATCH) -> None:
        super().__init__(directory, stem, batch)
        #: The pending rows' files, in order: (rows, source, evidence, sha256).
        self.segments: list[tuple[int, str, str, str]] = []
        self.start = 0

    def begin(self, constants: tuple[str, str, str]) -> None:
        """The rows that follow are one file's (source, evidence, its sha256)."""
        self.constants = constants
        self.start = self.pending

    def end(self) -> int:
        """The file's rows are all in; returns the index in ``parts`` of the part that
        will hold them."""
        self.segments.append((self.pending - self.start, *self.constants))
        index = len(self.parts)
        if self.pending >= self.batch:
            self.flush()
        self.start = self.pending  # nothing of this file is taken back after this
        return index

    def abandon(self) -> None:
        """Take the current file's rows back out (it failed)."""
        for column in self.columns:
            if isinstance(column, list):
                del column[self.start :]
            else:
                column.truncate(self.start)

    def add(self, row: Row) -> None:
        """Take one row (a part is cut only between files)."""
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)

    def open_columns(self) -> tuple[tuple[Any, ...], int]:
        """The pending columns, and room for a batch more (a file is never cut)."""
        return self.columns, self.batch

    def grown(self, count: int) -> None:
        """Rows appended to the open columns (a part is cut only between files)."""

    def _table(self) -> Any:
        by_name = dict(zip(ROW_COLUMNS, self.columns, strict=True))
        records, descs = by_name["record"], by_name["ts_desc"]
        direct = not isinstance(records, list) and speedups is not None
        uids: Any = speedups.Column() if direct and speedups is not None else []
        sources: list[str] = []
        evidence: list[str] = []
        shas: list[str] = []
        at = 0
        for rows, source, display, sha in self.segments:
            if direct and speedups is not None:
                speedups.uids_into(uids, sha, records, descs, at, rows)
            elif speedups is not None:
                uids += speedups.uids(sha, records[at : at + rows], descs[at : at + rows])
            else:
                mine, kinds = records[at : at + rows], descs[at : at + rows]
                uids += [uid(sha, r, d) for r, d in zip(mine, kinds, strict=True)]
            sources += [source] * rows
            evidence += [display] * rows
            shas += [sha] * rows
            at += rows
        return build_table_columns(self.columns, sources, evidence, shas, uids)

    def flush(self) -> None:
        """Write the pending files' rows as one shared part."""
        if not self.pending:
            self.segments = []
            return
        import pyarrow.parquet as pq

        pending = self.pending  # a C Column is emptied as its table is made
        table = self._table()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.stem}-{len(self.parts):05d}{GROUPED}"
        pq.write_table(table, path, compression="snappy")
        self.parts.append(str(path))
        self.total += pending
        self.columns = _no_rows()
        self.segments = []

    def close(self) -> None:
        """Write the last part."""
        self.flush()


def drop_evidence(part: str, displays: set[str]) -> bool:
    """Take the rows of the files ``displays`` out of a shared part; returns whether
    rows are left (the part is removed when none are)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(part)
    keep = pc.invert(pc.is_in(table["evidence"], value_set=pa.array(sorted(displays))))
    table = table.filter(keep)
    if not table.num_rows:
        Path(part).unlink(missing_ok=True)
        return False
    pq.write_table(table, part, compression="snappy")
    return True


def slices_sharing_ids(ranges_by_slice: list[list[tuple[int, int]]]) -> set[int]:
    """The slices of a file that saw a record id another slice saw too.

    Only these can hold colliding record keys: a repeat inside one slice is already
    keyed apart by its parser. Ranges are (first, last) record ids, one list per slice.
    """
    spans: list[tuple[int, int, int]] = []
    for index, ranges in enumerate(ranges_by_slice):
        own: list[tuple[int, int]] = []
        for lo, hi in sorted(ranges):
            if own and lo <= own[-1][1]:
                own[-1] = (own[-1][0], max(own[-1][1], hi))
            else:
                own.append((lo, hi))
        spans.extend((lo, hi, index) for lo, hi in own)
    spans.sort()
    involved: set[int] = set()
    # Sweep: the open spans so far, as (last id, slice), biggest ``last`` kept.
    open_spans: list[tuple[int, int]] = []
    for lo, hi, index in spans:
        open_spans = [(end, owner) for end, owner in open_spans if end >= lo]
        for _end, owner in open_spans:
            if owner != index:
                involved.update((owner, index))
        open_spans.append((hi, index))
    return involved
