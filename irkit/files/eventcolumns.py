"""File events built as Arrow columns: the fast path of ``irkit hash --case`` (#18).

``irkit.files.events.entry_rows`` makes one row tuple per event, which the spool then
takes apart again: ~80 µs an event with the Parquet write and the SQL that stored them.
Here each walked entry is turned into its fields once (one JSON text, one path, one
message body), each of its times appends three numbers (file index, time code, µs),
and Arrow repeats the per-file columns with ``take``. The table is the one
``irkit.store.spool.build_table(entry_rows(...))`` gives, row for row (a test checks).

Names that are not UTF-8 (Linux allows any bytes) are stored with the bad bytes as
``\\xNN`` text, as the bodyfile source reads them: JSON and Parquet hold UTF-8 only.
"""

from __future__ import annotations

import array
from typing import TYPE_CHECKING, Any, Final

import orjson

from irkit.files.events import TIMES, entry_fields
from irkit.files.walk import FileEntry

if TYPE_CHECKING:
    import pyarrow as pa

#: Microseconds of 1000-01-01 and of the end of 9999: times the text path stores (a
#: four-digit year); outside them the ISO text does not parse and the time is null.
_MIN_US: Final = -30_610_224_000_000_000
_MAX_US: Final = 253_402_300_799_999_999
_DESCS: Final = tuple(desc for _, desc, _ in TIMES)
_LETTERS: Final = tuple(letter for _, _, letter in TIMES)
_FOUR: Final = list(_DESCS)
_THREE: Final = _FOUR[:3]


def _repeat(values: list[str], index: Any, count: int) -> Any:
    """The per-file ``values`` as one per event: a constant when they are all one."""
    import pyarrow as pa

    if values.count(values[0]) == len(values):
        return pa.nulls(count, pa.string()).fill_null(values[0])
    return pa.array(values, pa.string()).take(index)


def _py_uids(sha256: str, records: list[str], descs: list[str]) -> list[str]:
    from irkit.store.spool import uid

    return [uid(sha256, record, desc) for record, desc in zip(records, descs, strict=True)]


def utf8_text(text: str) -> str:
    """``text`` as valid UTF-8 text: undecodable bytes of a file name (surrogate escapes)
    become ``\\xNN``; any other text is returned as it is."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


class FileEventColumns:
    """Walked entries' file events, held as columns until :meth:`table` takes them."""

    def __init__(self) -> None:
        from irkit.model import MAX_MESSAGE, MESSAGE_CONTROL
        from irkit.speedups import speedups

        #: uids(sha256, records, ts_descs): the C twin of ``irkit.store.spool.uid``.
        self._uid_maker = speedups.uids if speedups is not None else _py_uids
        self._control = MESSAGE_CONTROL
        self._max_body = MAX_MESSAGE - max(len(d) for d in _DESCS)
        self.clear()

    def clear(self) -> None:
        """Forget every entry taken."""
        # One value a file; ``times`` holds its four times (µs; None: no birth time).
        self.paths: list[str] = []
        # The fields' JSON texts end to end, and where each ends: orjson's bytes keep
        # a 4 KiB allocation each, whatever their length (a 100 MB batch held 2 GB).
        self.blobs = bytearray()
        self.blob_ends = array.array("i", [0])
        self.users: list[str] = []
        self.artifacts: list[str] = []
        self.shas: list[str] = []
        self.bodies: list[str] = []
        self.times: tuple[list[int | None], ...] = ([], [], [], [])
        #: Files whose message is longer than a message may be (cut per event).
        self.long: list[int] = []
        #: One a event, in order.
        self.uids: list[str] = []
        self.events = 0
        self._root: str | None = None
        self._artifact = ""

    def add(self, entry: FileEntry) -> int:
        """Take one walked entry's events (one per known time); returns how many."""
        fields = entry_fields(entry)
        path = fields["path"]
        if not path.isascii():
            path = fields["path"] = utf8_text(path)
        if "symlink_target" in fields:
            fields["symlink_target"] = utf8_text(fields["symlink_target"])
        info = entry.info
        born = entry.born_ns
        what = f"{fields['size']} bytes, {fields['mode']}, uid {fields['uid']}"
        sha = fields["sha256"]
        if sha:
            what += f", sha256 {sha[:16]}…"
        body = f": {path} ({what})"
        if not body.isprintable():  # as one_line: desc and ": " are printable
            body = self._control.sub(" ", body)
        if len(body) > self._max_body:
            self.long.append(len(self.paths))
        if entry.root is not self._root:
            self._root, self._artifact = entry.root, utf8_text(entry.root)
        self.paths.append(path)
        self.blobs += orjson.dumps(fields)
        self.blob_ends.append(len(self.blobs))
        self.users.append(fields["uid"])
        self.artifacts.append(self._artifact)
        self.shas.append(sha)
        self.bodies.append(body)
        m, a, c, b = self.times
        m.append(info.st_mtime_ns // 1000)
        a.append(info.st_atime_ns // 1000)
        c.append(info.st_ctime_ns // 1000)
        if born:
            b.append(born // 1000)
            descs = _FOUR
        else:
            b.append(None)
            descs = _THREE
        count = len(descs)
        self.uids += self._uid_maker(sha, [path] * count, descs)
        self.events += count
        return count

    def table(self) -> pa.Table:
        """The events taken, as an Arrow table in the event schema (``EVENT_COLUMNS``):
        each file's events in MACB order, a file without a birth time without its
        ``File Created``."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from irkit.model import EVENT_COLUMNS, one_line

        files = len(self.paths)
        strings = pa.string()
        # Event e of the full grid is time e % 4 of file e // 4; the grid's times are
        # the four lists one after another, so event e is times[(e % 4) * files + e // 4].
        grid = pa.array(range(4 * files), pa.int64())
        codes = pc.bit_wise_and(grid, 3)
        index = pc.shift_right(grid, 2)
        times = pa.concat_arrays([pa.array(t, pa.int64()) for t in self.times])
        micros = times.take(pc.add(pc.multiply(codes, files), index))
        # A missing birth time is no event; a time outside years 1000-9999 is a null ts.
        keep = pc.or_(pc.not_equal(codes, 3), pc.is_valid(micros))
        codes, index, micros = codes.filter(keep), index.filter(keep), micros.filter(keep)
        in_range = pc.and_(pc.greater_equal(micros, _MIN_US), pc.less_equal(micros, _MAX_US))
        micros = pc.if_else(in_range, micros, pa.scalar(None, pa.int64()))
        count = len(codes)
        descs = pa.array(_DESCS, strings).take(codes)
        record = pa.array(self.paths, strings).take(index)
        if self.long:  # a path of ~1,000 characters: cut each message as one_line does
            bodies = self.bodies
            messages: Any = pa.array(
                [
                    one_line(_DESCS[c] + bodies[i])
                    for i, c in zip(index.to_pylist(), codes.to_pylist(), strict=True)
                ],
                strings,
            )
        else:
            messages = pc.binary_join_element_wise(
                descs, pa.array(self.bodies, strings).take(index), ""
            )
        arrays: dict[str, Any] = {
            "uid": pa.array(self.uids, strings),
            "ts": micros.cast(pa.timestamp("us", tz="UTC")),
            "ts_desc": descs,
            "source": pa.nulls(count, strings).fill_null("file"),
            "artifact": _repeat(self.artifacts, index, count),
            "host": pa.nulls(count, strings).fill_null(""),
            "user": _repeat(self.users, index, count),
            "event_id": pa.array(_LETTERS, strings).take(codes),
            "message": messages,
            "fields": pa.Array.from_buffers(
                strings, files, [None, pa.py_buffer(self.blob_ends), pa.py_buffer(self.blobs)]
            ).take(index),
            "evidence": record,
            "evidence_sha256": _repeat(self.shas, index, count),
            "record": record,
        }
        return pa.Table.from_arrays([arrays[n] for n in EVENT_COLUMNS], names=list(EVENT_COLUMNS))
