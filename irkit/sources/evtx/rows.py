"""One flattened record to one timeline row, and the record keys that make rows unique.

The row's time is ``System/TimeCreated/@SystemTime`` (the record header's time when a
record has none), its user the best-effort name of who acted, its record key the
EventRecordID, made unique within a file when it repeats (:class:`RecordKeys`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import orjson

from irkit.sources.base import Row
from irkit.sources.messages import MessageCatalog

TS_DESC: Final = "Event Logged"
TS_DESC_HEADER: Final = "Event Logged (record header)"

# Fields that name who acted, best first; "-" and "" are no name.
_USER_FIELDS: Final = ("TargetUserName", "SubjectUserName", "User", "UserID")


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
