"""A plaso storage file (log2timeline's ``.plaso``, SQLite) read with plaso's own storage
reader; every stored event becomes a row in the plaso source's mapping.

The events are read in the order log2timeline stored them; the events of one event data
(its times, as log2timeline's timeliner placed them) become that event data's rows, with
its fields and its message formatted by the plaso source's formatters (psort's), so a row
says what parsing the original file gives. The plaso source's time rules apply: a stored
zero, plaso's "Not a time" placeholder or a semantic time is not a date; an event data
without any usable time is one ``Not a time`` row (the collection time, else the file's
modification time). An event data no event names (log2timeline's timeliner does not map
its data type) is one such row too.

``record`` is plaso's own identifier of the event (``event.12``; ``event_data.7`` for an
event data without events): stable, so ingesting the file again adds nothing.
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from irkit.sources.base import ParseContext, RowSink
from irkit.sources.plaso import rows
from irkit.sources.plaso.engine import VERSION, Engine, engine
from irkit.sources.plaso.results_common import NOT_A_TIME, Output, Timed, labels_text, zone_text
from irkit.sources.plaso.results_format import cut_short, storage_metadata

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from plaso.engine import path_helper as plaso_path_helper
    from plaso.serializer import json_serializer as plaso_json_serializer
    from plaso.storage.sqlite import reader as plaso_sqlite_reader
    from plaso.storage.sqlite import sqlite_file as plaso_sqlite_file

#: What the storage's own warnings are called, as pinfo names them.
_STORED_WARNINGS: Final = {
    "extraction_warning": "extraction",
    "recovery_warning": "recovery",
    "timelining_warning": "timelining",
}
#: Event data streams whose fields are kept at once (a disk image has one per file).
_STREAM_CACHE: Final = 4096
_ZERO: Final = "zero"


def parse_storage(ctx: ParseContext, sink: RowSink) -> None:
    """Every event of a plaso storage file as rows; problems as named warnings."""
    out = Output(ctx, sink)
    ctx.stats.engine = f"plaso {VERSION} storage reader"
    refused = _refused(ctx.path)
    if refused:
        out.warn("storage-version", refused)
        ctx.stats.status = "failed"
        return
    try:
        reader = plaso_sqlite_reader.SQLiteStorageReader(str(ctx.path.absolute()))
    except Exception as exc:  # SQLite or plaso refusing the file: never an exception out
        cut = cut_short(ctx.path)
        out.warn(
            "storage-unreadable",
            f"{type(exc).__name__}: {exc}" + (f": truncated ({cut})" if cut else ""),
        )
        ctx.stats.status = "failed"
        return
    try:
        _StorageRun(reader, out, engine()).run()
    finally:
        try:
            reader.Close()
        except Exception:  # closing a damaged file must not cost its rows
            pass
    cut = cut_short(ctx.path)
    if cut:
        out.warn("truncated", f"{cut}: the events it still holds were read")
        out.partial()
    out.finish("their event data keep their other times or are 'Not a time' rows")


def _refused(path: Path) -> str:
    """Why this plaso cannot read the storage's format version, or ''."""
    metadata = storage_metadata(path)
    if metadata is None:
        return ""
    text = metadata.get("format_version", "")
    store: Any = plaso_sqlite_file.SQLiteStorageFile
    oldest, newest = int(store._READ_COMPATIBLE_FORMAT_VERSION), int(store._FORMAT_VERSION)
    if not text.isdigit() or not oldest <= int(text) <= newest:
        return (
            f"storage format {text!r}: plaso {VERSION} reads formats {oldest} to {newest}; "
            "export it with the plaso that wrote it (psort -a -o json_line) and ingest that"
        )
    return ""


class _StorageRun:
    """One storage file: its events, grouped by event data, to rows."""

    def __init__(self, reader: Any, out: Output, plaso: Engine) -> None:
        self.reader = reader
        self.out = out
        self.engine = plaso
        self.streams: dict[int, dict[str, str]] = {}
        self.tags: dict[int, str] = {}
        self.seen = bytearray()
        self.complete = True

    def run(self) -> None:
        out, reader = self.out, self.reader
        try:
            events = int(reader.GetNumberOfAttributeContainers("event"))
            event_data = int(reader.GetNumberOfAttributeContainers("event_data"))
        except Exception as exc:
            out.warn("storage-unreadable", f"cannot count its events: {type(exc).__name__}: {exc}")
            self.out.ctx.stats.status = "failed"
            return
        self._stored_warnings()
        self.tags = self._tags()
        self.seen = bytearray(event_data + 1)
        group: list[tuple[int, Any]] = []
        current = 0
        for sequence, event in self._events(events):
            identifier = event.GetEventDataIdentifier()
            number = int(getattr(identifier, "sequence_number", 0) or 0)
            if number != current and group:
                self._group(current, group)
                group = []
            current = number
            group.append((sequence, event))
        if group:
            self._group(current, group)
        self._without_events()

    # reading ------------------------------------------------------------------------------

    def _events(self, total: int) -> Iterator[tuple[int, Any]]:
        """(sequence number, event) in stored order. Past a damaged page the events are
        read one by one, each unreadable one a warning."""
        sequence = 0
        try:
            for event in self.reader.GetAttributeContainers("event"):
                sequence = int(event.GetIdentifier().sequence_number)
                yield sequence, event
            return
        except Exception as exc:
            self.complete = False
            self.out.warn(
                "storage-damaged",
                f"reading events stopped after event.{sequence} of {total:,}: "
                f"{type(exc).__name__}: {exc}; the rest are read one by one",
            )
            self.out.partial()
        for number in range(sequence + 1, total + 1):
            try:
                event = self.reader.GetAttributeContainerByIndex("event", number - 1)
            except Exception as exc:
                self.out.skip("bad-event", f"event.{number}: {type(exc).__name__}: {exc}")
                continue
            if event is not None:
                yield number, event

    def _event_data(self, number: int, events: int) -> Any:
        """The event data ``event_data.<number>``, or None (a warning said why)."""
        try:
            found = self.reader.GetAttributeContainerByIndex("event_data", number - 1)
        except Exception as exc:
            found, why = None, f"{type(exc).__name__}: {exc}"
        else:
            why = "not in the storage"
        if found is None:
            lost = f" ({events:,} events not written)" if events else ""
            self.out.skip("bad-event-data", f"event_data.{number}: {why}{lost}", max(events, 1))
        return found

    def _stored_warnings(self) -> None:
        """One warning naming the warnings log2timeline stored (pinfo lists them)."""
        said: list[str] = []
        for container, name in _STORED_WARNINGS.items():
            try:
                if not self.reader.HasAttributeContainers(container):
                    continue
                chains = collections.Counter(
                    str(getattr(w, "parser_chain", "") or "-")
                    for w in self.reader.GetAttributeContainers(container)
                )
            except Exception:  # an unknown or damaged table: nothing to say about it
                continue
            if chains:
                top = ", ".join(f"{chain} {n:,}" for chain, n in chains.most_common(5))
                said.append(f"{sum(chains.values()):,} {name} warnings ({top})")
        if said:
            self.out.warn(
                "plaso-stored-warnings",
                f"log2timeline stored {'; '.join(said)} with these events (pinfo lists them)",
            )

    def _tags(self) -> dict[int, str]:
        """Event tag labels (psort's analysis plugins) per event sequence number."""
        found: dict[int, list[str]] = {}
        try:
            if self.reader.HasAttributeContainers("event_tag"):
                for tag in self.reader.GetAttributeContainers("event_tag"):
                    number = int(tag.GetEventIdentifier().sequence_number)
                    found.setdefault(number, []).extend(getattr(tag, "labels", None) or [])
        except Exception as exc:
            self.out.warn("bad-event-tags", f"event tags not read: {type(exc).__name__}: {exc}")
        return {number: labels_text(labels) for number, labels in found.items()}

    def _stream(self, event_data: Any) -> dict[str, str]:
        """Fields of the event data's stream: ``display_name`` (psort's), ``pathspec``,
        the hashes log2timeline computed (as psort's json_line names them)."""
        identifier = event_data.GetEventDataStreamIdentifier()
        number = int(getattr(identifier, "sequence_number", 0) or 0)
        if not number:
            return {}
        found = self.streams.get(number)
        if found is not None:
            return found
        found = {}
        try:
            stream = self.reader.GetAttributeContainerByIndex("event_data_stream", number - 1)
            for name, value in stream.GetAttributes() if stream is not None else ():
                if value is None or name.startswith("_"):
                    continue
                if name == "path_spec":
                    found["display_name"] = str(
                        plaso_path_helper.PathHelper.GetDisplayNameForPathSpec(value)
                    )
                    serializer = plaso_json_serializer.JSONAttributeContainerSerializer
                    found["pathspec"] = rows.text(serializer.WriteSerializedDict(value))
                else:
                    found[name] = rows.text(value)
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            self.out.warn("bad-event-data", f"event_data_stream.{number}: {why}")
        if len(self.streams) >= _STREAM_CACHE:
            self.streams.clear()
        self.streams[number] = found
        return found

    # rows ---------------------------------------------------------------------------------

    def _group(self, number: int, events: list[tuple[int, Any]]) -> None:
        """The events of one event data (consecutive in the storage) as its rows."""
        if not number:
            self.out.skip("bad-event", f"event.{events[0][0]} names no event data", len(events))
            return
        if number < len(self.seen):
            self.seen[number] = 1
        event_data = self._event_data(number, len(events))
        if event_data is None:
            return
        data_type = str(getattr(event_data, "data_type", "") or "")
        made, texts, zone = self._times(event_data, data_type, events)
        if not made:
            ts, desc = self.out.not_a_time()
            made = [(ts, desc, f"event.{events[0][0]}", events[0][0])]
        self._emit(event_data, made, texts, zone)

    def _emit(
        self,
        event_data: Any,
        made: list[tuple[str, str, str, int]],
        texts: dict[str, str],
        zone: str = "",
    ) -> None:
        """Rows of an event data: its fields and message, one row per (ts, ts_desc,
        record, event); an event psort's tagging labelled has ``tag`` too."""
        chain = str(getattr(event_data, "_parser_chain", None) or "-")
        data_type = str(getattr(event_data, "data_type", "") or "")
        values = rows.fields(event_data, chain, texts)
        if zone:
            values["time_zone_assumed"] = zone
        for name, value in self._stream(event_data).items():
            values.setdefault(name, value)
        plaso = self.engine
        text = rows.message(
            plaso.formatter(data_type), plaso.default_formatter, plaso.output_mediator, event_data
        )
        plain: list[Timed] = []
        for ts, desc, record, sequence in made:
            tag = self.tags.get(sequence)
            if tag is None:
                plain.append((ts, desc, record))
            else:
                self.out.emit([(ts, desc, record)], chain, {**values, "tag": tag}, text)
        self.out.emit(plain, chain, values, text)

    def _times(
        self, event_data: Any, data_type: str, events: list[tuple[int, Any]]
    ) -> tuple[list[tuple[str, str, str, int]], dict[str, str], str]:
        """The usable times of the events as (ts, ts_desc, record, sequence); the texts of
        the event data's time attributes (the placed time, as ``ts``; a stored zero as
        empty); the zone a local time was read in (empty: none was local)."""
        times = _time_values(self.engine, event_data)
        paired = len(times) == len(events) and all(
            desc == str(event.timestamp_desc or "")
            for (_, desc, _), (_, event) in zip(times, events, strict=True)
        )
        texts: dict[str, list[str]] = {}
        made: list[tuple[str, str, str, int]] = []
        zone = ""
        for index, (sequence, event) in enumerate(events):
            attribute, _, value = times[index] if paired else ("", "", None)
            shown = texts.setdefault(attribute, []) if paired else []
            date_time = getattr(event, "date_time", None)
            semantic = next(
                (v for v in (value, date_time) if isinstance(v, rows.SemanticTime)), None
            )
            micros = int(getattr(event, "timestamp", 0) or 0)
            if semantic is not None or (
                micros == 0 and str(event.timestamp_desc or "") == NOT_A_TIME
            ):
                shown.append(rows.time_text(semantic) if semantic is not None else "")
                continue
            if micros == 0 or 0 in (
                getattr(value, "timestamp", None),
                getattr(date_time, "timestamp", None),
            ):
                self.out.unused[(_ZERO, data_type)] += 1
                shown.append("")
                continue
            try:
                ts = rows.iso(micros)
            except (OverflowError, ValueError):
                self.out.unused[("range", data_type)] += 1
                shown.append(rows.time_text(value) if value is not None else "")
                continue
            shown.append(ts)
            if getattr(value, "is_local_time", False):
                zone = zone_text(getattr(date_time, "time_zone_offset", None))
            desc = str(event.timestamp_desc or NOT_A_TIME)
            made.append((ts, desc, f"event.{sequence}", sequence))
        return made, rows.time_texts(event_data, texts), zone

    def _without_events(self) -> None:
        """Event data no event names: one 'Not a time' row each (all events read), else
        counted."""
        seen = self.seen
        missing = seen.count(0, 1)
        if not missing:
            return
        if not self.complete:
            self.out.warn(
                "storage-damaged",
                f"{missing:,} event data have no event that could be read: not written",
            )
            return
        number = seen.find(0, 1)
        while number > 0:
            event_data = self._event_data(number, 0)
            if event_data is not None:
                ts, desc = self.out.not_a_time()
                self._emit(event_data, [(ts, desc, f"event_data.{number}", 0)], {})
            number = seen.find(0, number + 1)


def _time_values(plaso: Engine, event_data: Any) -> list[tuple[str, str, Any]]:
    """(attribute, timestamp_desc, dfdatetime value) of each time plaso's timeliner makes
    an event of, in its order."""
    mapping = plaso.time_mappings.get(str(getattr(event_data, "data_type", "") or ""))
    found: list[tuple[str, str, Any]] = []
    if mapping is not None:
        for attribute, desc in mapping.attributes:
            value = getattr(event_data, attribute, None)
            for item in value if isinstance(value, list) else (value,):
                if isinstance(item, rows.DateTimeValues):
                    found.append((attribute, desc, item))
    return found
