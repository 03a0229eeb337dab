"""Windows XML event logs (EVTX): two engines, one flat field convention.

The fast engine is pyevtx-rs (``evtx``) with ``skip_errors``; the second engine is
python-evtx reading inactive chunks too. Both flatten a record to Sigma field names
(``EventID``, ``Channel``, ``Provider_Name``, named ``<Data>`` as their names, unnamed
as ``Data_1``…, UserData as dotted paths) so detections and exports never care which
engine read the file. ``ts`` is always ``System/TimeCreated/@SystemTime``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson

from irkit.messages import MessageCatalog, load_catalog, one_line
from irkit.sources.base import ParseContext, Row, RowSink
from irkit.sources.evtx_chunks import chunk_warnings, read_slice
from irkit.speedups import speedups

SIGNATURE: Final = b"ElfFile\x00"
ENGINES: Final = ("evtx", "python-evtx")
TS_DESC: Final = "Event Logged"
TS_DESC_HEADER: Final = "Event Logged (record header)"

# Attribute-only System elements whose attributes become top-level fields.
_ATTR_ELEMENTS: Final = frozenset({"Correlation", "Execution", "Security"})
# Fields that name who acted, best first; "-" and "" are no name.
_USER_FIELDS: Final = ("TargetUserName", "SubjectUserName", "User", "UserID")


def scalar(value: Any) -> str:
    """Render one JSON leaf the way the XML shows it."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _put(out: dict[str, str], key: str, value: Any) -> None:
    """Flatten one value under ``key``: dicts to dotted paths, lists to ``key_1``…"""
    kind = type(value)
    if kind is str:
        out[key] = value
    elif kind is int:
        out[key] = str(value)
    elif kind is dict:
        for sub, item in value.items():
            if sub == "#text":
                _put(out, key, item)
            elif sub == "#attributes":
                for attr, attr_value in item.items():
                    if attr != "xmlns" and not attr.startswith("xmlns:"):
                        out[f"{key}.{attr}"] = scalar(attr_value)
            else:
                _put(out, f"{key}.{sub}", item)
    elif kind is list:
        for index, item in enumerate(value, 1):
            _put(out, f"{key}_{index}", item)
    else:
        out[key] = scalar(value)


def normalise_guid(guid: str) -> str:
    """GUIDs as pyevtx-rs writes them: no braces, upper case."""
    return guid.strip("{}").upper()


_SYSTEM_SIMPLE: Final = frozenset(
    {"Version", "Level", "Task", "Opcode", "Keywords", "EventRecordID", "Channel", "Computer"}
)


def flatten_system(system: Mapping[str, Any], out: dict[str, str]) -> None:
    """Flatten ``Event/System`` into ``out`` with Sigma's names (the hot path: no calls
    for the plain integer and text elements that make up most of it)."""
    for key, value in system.items():
        kind = type(value)
        if kind is int:  # EventID, Version, Level, Task, Opcode, EventRecordID
            out[key] = str(value)
        elif kind is str:  # Keywords, Channel, Computer
            out[key] = value
        elif kind is dict:
            attrs = value.get("#attributes")
            if key == "TimeCreated":
                system_time = attrs.get("SystemTime") if attrs else None
                if system_time:
                    out["SystemTime"] = scalar(system_time)
            elif key == "Provider":
                for attr, attr_value in (attrs or {}).items():
                    text = scalar(attr_value)
                    out["Provider_" + attr] = normalise_guid(text) if attr == "Guid" else text
            elif key == "EventID":
                out["EventID"] = scalar(value.get("#text"))
                qualifiers = attrs.get("Qualifiers") if attrs else None
                if qualifiers is not None and qualifiers != "":
                    out["EventID_Qualifiers"] = scalar(qualifiers)
            elif key in _ATTR_ELEMENTS and len(value) == 1 and attrs is not None:
                for attr, attr_value in attrs.items():
                    if attr_value is not None and attr_value != "":
                        text = scalar(attr_value)
                        out[attr] = normalise_guid(text) if "ActivityID" in attr else text
            else:
                _put(out, key, value)
        elif value is not None:
            _put(out, key, value)


def flatten_event_py(event: Mapping[str, Any]) -> tuple[dict[str, str], int]:
    """Flatten a pyevtx-rs JSON ``Event``; returns the fields and how many are System's.

    The reference: :data:`flatten_event` is the C twin (``_evtxflat.c``) when it is built.
    """
    out: dict[str, str] = {}
    system = event.get("System")
    if type(system) is dict:
        flatten_system(system, out)
    n_system = len(out)
    for section, value in event.items():
        if section == "System" or section == "#attributes" or value is None:
            continue
        if section == "EventData" and type(value) is dict:
            for key, item in value.items():
                kind = type(item)
                if key in out:  # an EventData name equal to a System one keeps both
                    key = "EventData." + key
                if key == "Data":
                    _put_unnamed(out, item)
                elif kind is str:
                    out[key] = item
                elif kind is int:
                    out[key] = str(item)
                elif key != "#attributes":
                    _put(out, key, item)
        elif section == "UserData" and type(value) is dict:
            for key, item in value.items():
                _put(out, key, item)
        else:
            _put(out, section, value)
    return out, n_system


def _put_unnamed(out: dict[str, str], item: Any) -> None:
    """Unnamed ``<Data>`` elements become ``Data_1``, ``Data_2``… in document order."""
    if isinstance(item, dict) and "#text" in item and len(item) == 1:
        item = item["#text"]
    if not isinstance(item, list):
        item = [item]
    for index, value in enumerate(item, 1):
        _put(out, f"Data_{index}", value)


flatten_event: Callable[[Mapping[str, Any]], tuple[dict[str, str], int]] = (
    flatten_event_py if speedups is None else speedups.flatten_event
)


def event_user(flat: Mapping[str, str]) -> str:
    """The best-effort user name of an event."""
    for key in _USER_FIELDS:
        value = flat.get(key)
        if value and value != "-":
            return value
    return ""


def header_time(timestamp: str) -> str:
    """pyevtx-rs's record header time (``2017-12-26T13:10:29.1368792Z UTC``) as ISO 8601."""
    if timestamp.endswith("+00:00"):  # python-evtx's, already ISO 8601
        return timestamp
    text = timestamp.removesuffix(" UTC").removesuffix("Z")
    head, _, frac = text.partition(".")
    return f"{head}.{(frac + '000000')[:6]}+00:00"


def build_row(
    flat: dict[str, str],
    n_system: int,
    record: str,
    header_ts: str,
    catalog: MessageCatalog,
) -> Row:
    """Turn one flattened record into a timeline row."""
    ts = flat.get("SystemTime", "")
    ts_desc = TS_DESC
    if not ts:
        ts, ts_desc = header_time(header_ts), TS_DESC_HEADER
    return (
        ts,
        ts_desc,
        flat.get("Channel", ""),
        flat.get("Computer", ""),
        event_user(flat),
        flat.get("EventID", ""),
        catalog.render(flat, n_system),
        orjson.dumps(flat),
        record,
    )


def record_id(flat: Mapping[str, str], header_id: int) -> int:
    """The record's ``System/EventRecordID`` (what Event Viewer shows), else the header's.

    Exported or carved logs can renumber record headers (new-user-security.evtx: header 1,
    EventRecordID 111); the System value is the one a responder cross-references.
    """
    text = flat.get("EventRecordID", "")
    return int(text) if text.isascii() and text.isdigit() else header_id


class RecordKeys:
    """Stable record keys: the EventRecordID, made unique within a file when it repeats.

    Dirty logs and recovered chunks can repeat a record id. A repeat is keyed
    ``<id>#<ordinal>`` (its position in the engine's stream), which is stable for the
    same file and engine. Ranges of seen ids are kept, not every id, so memory stays
    small on a log of millions of records.
    """

    __slots__ = ("_last", "_ranges", "_start", "ordinal")

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int]] = []
        self._start = -2
        self._last = -2
        self.ordinal = 0

    def _seen(self, rid: int) -> bool:
        if self._start <= rid <= self._last:
            return True
        return any(lo <= rid <= hi for lo, hi in self._ranges)

    def ranges(self) -> list[tuple[int, int]]:
        """Every record id seen, as (first, last) ranges."""
        tail = [(self._start, self._last)] if self._start >= 0 else []
        return [*self._ranges, *tail]

    def key(self, rid: int) -> str:
        """The key for the next record, whose EventRecordID is ``rid``."""
        self.ordinal += 1
        if rid == self._last + 1:
            self._last = rid
            return str(rid)
        if self._seen(rid):
            return f"{rid}#{self.ordinal}"
        if self._start >= 0:
            self._ranges.append((self._start, self._last))
        self._start = self._last = rid
        return str(rid)


def open_fast(path: Path, ctx: ParseContext, source: Any = None) -> Iterator[Any] | None:
    """pyevtx-rs's JSON records of ``path`` (or of the file object ``source``, a slice);
    None, with the file marked failed, when it is not a readable EVTX file."""
    import evtx

    try:
        parser = evtx.PyEvtxParser(
            str(path) if source is None else source, number_of_threads=1, skip_errors=True
        )
    except (RuntimeError, OSError) as exc:
        ctx.warn("unreadable", f"not a readable EVTX file: {exc}")
        ctx.stats.status = "failed"
        return None
    records: Iterator[Any] = parser.records_json()
    return records


def decode_event(data: str) -> dict[str, Any]:
    """The ``Event`` of one record's JSON; {} when it has none (orjson errors go up)."""
    loaded = orjson.loads(data)
    event = loaded.get("Event") if type(loaded) is dict else None
    return event if type(event) is dict else {}


def _bad_json(record: Mapping[str, Any], ctx: ParseContext) -> None:
    """Count and name a record whose engine JSON does not decode."""
    rid = record["event_record_id"]
    try:
        orjson.loads(record["data"])
        problem = "not JSON"
    except orjson.JSONDecodeError as exc:
        problem = str(exc)
    # pyevtx-rs writes control characters of damaged names unescaped.
    ctx.warn("bad-record", f"record {rid}: the engine's JSON is broken: {problem}")
    ctx.stats.skipped_records += 1
    ctx.stats.status = "partial"


class _RowsOut:
    """Where ``speedups.rows`` puts its rows: straight into the sink's columns when it
    has them (:meth:`irkit.spool.SpoolWriter.open_columns`), else a list of rows handed
    to ``add``. Counts the rows in the file's stats."""

    def __init__(self, sink: RowSink, ctx: ParseContext) -> None:
        self.sink = sink
        self.ctx = ctx
        self.open_columns = getattr(sink, "open_columns", None)
        self.grown: Callable[[int], None] | None = getattr(sink, "grown", None)
        self.pending: list[Row] = []
        self.columns: tuple[list[Any], ...] | None = None
        self.before = 0

    def open(self) -> tuple[list[Row] | tuple[list[Any], ...], int]:
        """The output and how many rows it takes now."""
        if self.open_columns is None or self.grown is None:
            return self.pending, 1024
        self.columns, room = self.open_columns()
        self.before = len(self.columns[0])
        return self.columns, room

    def hand_over(self) -> None:
        """Count the rows added since :meth:`open` and give them to the sink."""
        if self.columns is not None and self.grown is not None:
            added = len(self.columns[0]) - self.before
            self.columns = None
            self.ctx.stats.records += added
            self.grown(added)
            return
        if not self.pending:
            return
        for row in self.pending:
            self.sink.add(row)
        self.ctx.stats.records += len(self.pending)
        self.pending.clear()


def iter_fast(
    path: Path, ctx: ParseContext, source: Any = None
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Yield (record id, header time, JSON event) with pyevtx-rs; bad chunks become warnings.

    ``source``, when given, is a file object to read instead of ``path`` (a slice).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = open_fast(path, ctx, source)
        if records is None:
            return
        try:
            for record in records:
                try:
                    event = decode_event(record["data"])
                except orjson.JSONDecodeError:
                    _bad_json(record, ctx)
                    continue
                yield record["event_record_id"], record["timestamp"], event
        except (RuntimeError, OSError) as exc:
            ctx.warn("read-error", f"stopped reading: {exc}")
            ctx.stats.status = "partial"
        finally:
            _count_skips(caught, ctx)


def _count_skips(caught: list[warnings.WarningMessage], ctx: ParseContext) -> None:
    where = ctx.options.get("slice_label", "")
    for item in caught:
        text = where + str(item.message).removeprefix("Skipping EVTX data: ").removeprefix(
            "RuntimeError: "
        )
        if "chunk" in text.lower() and "record" not in text.lower().split("chunk")[0]:
            ctx.stats.skipped_chunks += 1
        else:
            ctx.stats.skipped_records += 1
        ctx.warn("bad-chunk" if "chunk" in text.lower() else "bad-record", text)
    if caught and ctx.stats.status == "ok":
        ctx.stats.status = "partial"


class EvtxSource:
    """EVTX files, recognised by the ``ElfFile\\0`` signature."""

    name: ClassVar[str] = "evtx"

    def matches(self, head: bytes, path: Path) -> bool:
        """EVTX files start with ``ElfFile\\0`` whatever their name."""
        return head.startswith(SIGNATURE)

    def parse(self, ctx: ParseContext, sink: RowSink) -> None:
        """Parse with the engine named in ``ctx.options['evtx_engine']`` (default: evtx)."""
        catalog = load_catalog()
        keys = RecordKeys()
        engine = ctx.options.get("evtx_engine", "evtx")
        ctx.stats.engine = engine
        if engine == "python-evtx":
            add = sink.add
            from irkit.sources.evtx_python import iter_python

            chunk_warnings(ctx.path, ctx)
            for rid, hdr_ts, flat, n_system in iter_python(ctx.path, ctx):
                key = keys.key(record_id(flat, rid))
                add(build_row(flat, n_system, key, hdr_ts, catalog))
                ctx.stats.records += 1
            return
        source = None
        span = ctx.options.get("chunks", "")
        if span:
            first, last = (int(x) for x in span.split(":"))
            ctx.options["slice_label"] = f"(chunks {first}-{last - 1}) "
            chunk_warnings(ctx.path, ctx, first, last)
            source = read_slice(ctx.path, first, last)
        else:
            chunk_warnings(ctx.path, ctx)
        recover = ctx.options.get("recover") == "1" and not span
        seen: set[int] | None = set() if recover else None
        if speedups is None:
            self._parse_py(ctx, sink, source, keys, seen, catalog)
        else:
            self._parse_c(ctx, sink, source, keys, seen, catalog)
        ctx.stats.record_ranges = [keys.ranges()]
        if seen is not None and any(w.kind in DAMAGE for w in ctx.stats.warnings):
            self._recover(ctx, sink, keys, seen, catalog)

    @staticmethod
    def _parse_py(
        ctx: ParseContext,
        sink: RowSink,
        source: Any,
        keys: RecordKeys,
        seen: set[int] | None,
        catalog: MessageCatalog,
    ) -> None:
        """The reference loop: one record at a time; :meth:`_parse_c` is its C twin."""
        add = sink.add
        for rid, hdr_ts, event in iter_fast(ctx.path, ctx, source):
            flat, n_system = flatten_event(event)
            number = record_id(flat, rid)
            if seen is not None:
                seen.add(number)
            add(build_row(flat, n_system, keys.key(number), hdr_ts, catalog))
            ctx.stats.records += 1

    @staticmethod
    def _parse_c(
        ctx: ParseContext,
        sink: RowSink,
        source: Any,
        keys: RecordKeys,
        seen: set[int] | None,
        catalog: MessageCatalog,
    ) -> None:
        """:meth:`_parse_py` with the per-record work in C (``speedups.rows``), a batch
        of rows per call; records whose JSON does not decode come back here."""
        assert speedups is not None
        resolved, resolve = catalog.render_state()
        out = _RowsOut(sink, ctx)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                records = open_fast(ctx.path, ctx, source)
                if records is None:
                    return
                try:
                    while True:
                        odd = speedups.rows(
                            records,
                            *out.open(),
                            keys,
                            seen,
                            orjson.loads,
                            orjson.dumps,
                            header_time,
                            resolved,
                            resolve,
                            one_line,
                            TS_DESC,
                            TS_DESC_HEADER,
                        )
                        out.hand_over()
                        if odd is None:
                            break
                        if odd is not True:
                            _bad_json(odd, ctx)
                except (RuntimeError, OSError) as exc:
                    ctx.warn("read-error", f"stopped reading: {exc}")
                    ctx.stats.status = "partial"
                finally:
                    _count_skips(caught, ctx)
        finally:
            out.hand_over()

    @staticmethod
    def _recover(
        ctx: ParseContext,
        sink: RowSink,
        keys: RecordKeys,
        seen: set[int],
        catalog: MessageCatalog,
    ) -> None:
        """Read a damaged log again with python-evtx and add the records only it can read.

        python-evtx resumes after a damaged record and reads a cut last chunk; pyevtx-rs
        stops at both. Both engines flatten identically, so the added rows are the same
        as if one engine had read everything.
        """
        from irkit.model import FileStats
        from irkit.sources.evtx_python import iter_python

        # The second pass's own warnings repeat the first's: counted apart, not reported.
        second = ParseContext(ctx.path, ctx.display, ctx.sha256, FileStats(ctx.display))
        recovered = 0
        for rid, hdr_ts, flat, n_system in iter_python(ctx.path, second):
            number = record_id(flat, rid)
            if number in seen:
                continue
            seen.add(number)
            sink.add(build_row(flat, n_system, keys.key(number), hdr_ts, catalog))
            recovered += 1
        ctx.stats.records += recovered
        if recovered:
            ctx.warn(
                "recovered",
                f"{recovered} records past the damage were recovered with python-evtx",
            )


#: Warning kinds that mean records may have been lost.
DAMAGE: Final = frozenset({"truncated", "bad-record", "bad-chunk", "zeroed-chunk"})
