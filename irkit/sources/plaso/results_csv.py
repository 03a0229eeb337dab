"""psort's delimiter-separated outputs, ``l2tcsv`` and ``dynamic``, as the plaso source maps
them, as far as they carry the data.

psort writes them without quoting: every comma inside a value became a space, a line
break inside a value stays (the row goes on on the next line). A row is therefore its
header's number of comma-separated values, joined across lines when a value broke.

- ``l2tcsv``: ``date,time,timezone,MACB,…,format,extra``; time to the second in psort's
  output zone (``timezone``: ``UTC`` unless psort had ``-z``); the events of one MACB
  group (same time and values) share one row, their descriptions joined by ``; `` in
  ``type``: each is one row again. Fields use psort's names (``source``, ``source_long``,
  ``username``, ``hostname``, ``message_short``, ``display_name``, ``inode``, ``tag``,
  ``parser``) and the ``extra`` attributes (``name: value; …``).
- ``dynamic`` (psort's default): ``datetime,timestamp_desc,source,source_long,message,
  parser,display_name,tag``, or the columns ``--fields`` / ``--additional_fields`` chose
  (``datetime,timestamp_desc`` first, ``message`` and ``parser`` among them), each a field
  under its name; ``datetime`` in ISO 8601 with its offset, to the µs (psort rounds a
  finer time up) or, with ``--dynamic-time``, to the time's own precision.

Neither carries ``data_type`` (unless added as a field) nor the event data's times.
``record`` is ``line:<n>`` (the row's first line), ``#2``… for the other events of an
l2tcsv MACB group, so ingesting the file again adds nothing.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any, Final

from irkit.sources.base import ParseContext, RowSink
from irkit.sources.osquery_stream import iter_lines
from irkit.sources.plaso import rows
from irkit.sources.plaso.results_common import (
    NOT_A_TIME,
    Output,
    labels_text,
    message_text,
)
from irkit.sources.plaso.results_format import BOM, csv_shape

#: l2tcsv columns kept as fields, under psort's (dynamic's) names.
_L2T_FIELDS: Final = {
    "source": "source",
    "sourcetype": "source_long",
    "user": "username",
    "host": "hostname",
    "short": "message_short",
    "filename": "display_name",
    "inode": "inode",
}
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ISO: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?\Z"
)
#: How a row of each shape begins: a line that does not is the rest of the row before.
_ROW_START: Final = {
    "l2tcsv": re.compile(rb"(?:\d\d/\d\d/\d{4}|00/00/0000),"),
    "dynamic": re.compile(rb"(?:\d{4}-\d\d-\d\d[T ]|Invalid,|Not set,|Never,)"),
}
_UTC_NAMES: Final = frozenset({"UTC", "GMT", "UCT", "Z", "Etc/UTC", "Universal", "Zulu"})
#: FILETIME 0 and POSIX 0 as psort writes them (``--dynamic-time`` writes the latter as
#: 1970 too): a stored zero, not a date.
_ZERO_TIMES: Final = frozenset(
    {"1601-01-01T00:00:00.000000+00:00", "1970-01-01T00:00:00.000000+00:00"}
)
#: Lines one row may span (a value with line breaks).
_MAX_JOIN: Final = 1000
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def parse_csv(ctx: ParseContext, sink: RowSink) -> None:
    """Every row of a psort l2tcsv or dynamic file as rows; bad rows are warnings."""
    out = Output(ctx, sink)
    try:
        with ctx.path.open("rb") as stream:
            lines = iter_lines(stream, ctx)
            header = next(lines, (0, b""))[1].rstrip(b"\r\n")
            shape = csv_shape(header)
            if shape is None:
                out.warn("not-recognised", "the first line is not psort's l2tcsv or dynamic header")
                return
            ctx.stats.engine = f"psort {shape}"
            names = tuple(header.removeprefix(BOM).decode("ascii").split(","))
            reader = _Reader(out, shape, names, ctx.options.get("time_zone", ""))
            for number, cells in _rows(out, lines, len(names), _ROW_START[shape]):
                reader.row(number, cells)
            reader.finish()
    except OSError as exc:
        out.skip("read-error", f"{type(exc).__name__}: {exc}")
    out.finish("their events are 'Not a time' rows")


def _rows(
    out: Output, lines: Iterator[tuple[int, bytes]], width: int, starts: re.Pattern[bytes]
) -> Iterator[tuple[int, list[str]]]:
    """(first line, values) of each row; a row cut short or too long is a warning."""
    pending: list[bytes] = []
    start = 0

    def flush(ended: bool) -> Iterator[tuple[int, list[str]]]:
        raw = b"\n".join(pending)
        pending.clear()
        if not raw.strip():
            return
        text = raw.decode("utf-8", "replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in raw:
            out.warn("bad-utf8", f"line {start}: invalid UTF-8 replaced by U+FFFD")
        cells = text.split(",")
        if len(cells) == width:
            if not ended:  # psort ends every line: its last value may be cut short
                out.warn("truncated", f"line {start}: the file ends inside it")
                out.partial()
            yield start, cells
        elif not ended:
            out.skip("truncated", f"line {start}: cut short: {len(cells)} of {width} values")
        else:
            out.skip("bad-row", f"line {start}: {len(cells)} values, not {width}")

    for number, raw in lines:
        if pending and (starts.match(raw) or number - start >= _MAX_JOIN):
            yield from flush(True)
        if not pending:
            start = number
        pending.append(raw.rstrip(b"\r\n"))
        if sum(piece.count(b",") for piece in pending) + 1 >= width or not raw.endswith(b"\n"):
            yield from flush(raw.endswith(b"\n"))
    if pending:
        yield from flush(False)


class _Reader:
    """The rows of one l2tcsv or dynamic file."""

    def __init__(self, out: Output, shape: str, names: tuple[str, ...], zone_name: str) -> None:
        self.out = out
        self.shape = shape
        self.names = names
        self.zone: Any = None
        self.local: collections.Counter[str] = collections.Counter()
        if zone_name and shape == "l2tcsv":
            import pytz

            try:
                self.zone = pytz.timezone(zone_name)
            except pytz.UnknownTimeZoneError:
                out.warn("bad-option", f"unknown time zone {zone_name!r}: local times read as UTC")

    def row(self, number: int, cells: list[str]) -> None:
        values = dict(zip(self.names, cells, strict=True))
        if self.shape == "l2tcsv":
            self._l2tcsv(number, values)
        else:
            self._dynamic(number, values)

    def finish(self) -> None:
        if self.local:
            zones = ", ".join(f"{zone} {n:,}" for zone, n in self.local.most_common(5))
            self.out.warn(
                "local-time",
                f"{sum(self.local.values()):,} rows are in psort's output zone ({zones}), not "
                "UTC: read as UTC (time_zone_assumed); set time_zone to the zone psort had (-z)",
            )

    def _l2tcsv(self, number: int, cells: dict[str, str]) -> None:
        chain = _value(cells["format"]) or "-"
        values: dict[str, str] = {}
        for column, name in _L2T_FIELDS.items():
            value = _value(cells[column])
            if value:
                values[name] = value
        for name, value in _extra(cells["extra"]).items():
            values.setdefault(name, value)
        tag = _value(cells["notes"])
        if tag:
            values["tag"] = labels_text(tag)
        values["parser"] = chain
        ts = self._l2t_time(cells, values)
        message = message_text(cells["desc"])
        descs = [d for d in cells["type"].split("; ") if d and d != "-"] or [NOT_A_TIME]
        for index, desc in enumerate(descs):
            record = f"line:{number}" if index == 0 else f"line:{number}#{index + 1}"
            self._event(ts, desc, record, chain, values, message)

    def _l2t_time(self, cells: dict[str, str], values: dict[str, str]) -> str:
        """``ts`` of an l2tcsv row, or why it has none (``zero``, ``unreadable``…)."""
        date, time, zone = cells["date"], cells["time"], cells["timezone"]
        if date == "00/00/0000" or time == "--:--:--":
            return "zero"
        try:
            month, day, year = (int(part) for part in date.split("/"))
            hours, minutes, seconds = (int(part) for part in time.split(":"))
            when = dt.datetime(year, month, day, hours, minutes, seconds)
        except ValueError:
            return "unreadable"
        if zone in _UTC_NAMES:
            aware = when.replace(tzinfo=dt.UTC)
        elif self.zone is not None:
            aware = self.zone.localize(when, is_dst=False)
            values["timezone"] = zone
        else:
            aware = when.replace(tzinfo=dt.UTC)
            values["timezone"] = zone
            values["time_zone_assumed"] = "UTC"
            self.local[zone] += 1
        return _iso(aware)

    def _dynamic(self, number: int, cells: dict[str, str]) -> None:
        chain = _value(cells["parser"]) or "-"
        values: dict[str, str] = {}
        for name, value in cells.items():
            if name in ("datetime", "timestamp_desc", "message") or not _value(value):
                continue
            values[name] = labels_text(value) if name == "tag" else value
        values["parser"] = chain
        desc = _value(cells["timestamp_desc"]) or NOT_A_TIME
        ts = self._dynamic_time(cells["datetime"])
        message = message_text(cells["message"])
        self._event(ts, desc, f"line:{number}", chain, values, message)

    def _dynamic_time(self, text: str) -> str:
        """``ts`` of a dynamic row's ``datetime``, or why it has none."""
        if text.startswith("0000-00-00"):
            return "zero"
        match = _ISO.match(text)
        if match is None:
            return "semantic" if text in ("Not set", "Never", "-") else "unreadable"
        year, month, day, hours, minutes, seconds, fraction, offset = match.groups()
        try:
            when = dt.datetime(
                int(year),
                int(month),
                int(day),
                int(hours),
                int(minutes),
                int(seconds),
                int((fraction or "0")[:6].ljust(6, "0")),
                tzinfo=_zone(offset),
            )
        except ValueError:
            return "unreadable"
        return _iso(when)

    def _event(
        self, ts: str, desc: str, record: str, chain: str, values: dict[str, str], message: str
    ) -> None:
        """One event of a row; without a usable time a 'Not a time' row that keeps the
        description in ``timestamp_desc``."""
        reason = ts if ts in ("zero", "unreadable", "semantic", "range") else ""
        if ts in _ZERO_TIMES:
            reason = "zero"
        if reason:
            if reason == "zero" and desc == NOT_A_TIME:
                reason = "semantic"  # plaso's placeholder: no time was ever there
            if reason != "semantic":
                self.out.unused[(reason, chain)] += 1
            ts, new_desc = self.out.not_a_time()
            if desc != NOT_A_TIME:
                values = {**values, "timestamp_desc": desc}
            desc = new_desc
        self.out.emit([(ts, desc, record)], chain, values, message)


def _value(text: str) -> str:
    """A value as psort wrote it; ``-`` (psort's none) as empty."""
    return "" if text == "-" else text


def _extra(text: str) -> dict[str, str]:
    """l2tcsv's ``extra``: ``name: value; name: value`` (sorted by psort; a value holding
    ``; `` stays whole when what follows is no ``name: ``)."""
    found: dict[str, str] = {}
    last = ""
    for part in text.split("; ") if _value(text) else ():
        name, sep, value = part.partition(": ")
        if sep and _NAME.match(name) and name not in found:
            found[name] = value
            last = name
        elif last:
            found[last] += "; " + part
    return found


def _zone(offset: str | None) -> dt.tzinfo:
    if not offset or offset == "Z":
        return dt.UTC
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    return dt.timezone(sign * dt.timedelta(minutes=minutes))


def _iso(when: dt.datetime) -> str:
    """``ts`` of an aware time; ``range`` outside years 1-9999."""
    try:
        return rows.iso((when - _EPOCH) // dt.timedelta(microseconds=1))
    except (OverflowError, ValueError):
        return "range"
