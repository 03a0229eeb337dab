"""What the readers of plaso's own results share: ``Output``, rows in the plaso source's
mapping (docs/sources.md#plaso), counted warnings, and the times plaso did not place.

Does not import plaso: reading psort's text outputs needs none of it.
"""

from __future__ import annotations

import collections
from typing import Any, Final

from irkit.model import one_line
from irkit.sources.base import ParseContext, RowSink
from irkit.sources.plaso import rows
from irkit.sources.plaso.mapping import Mapping, load_mapping

#: Named warnings of one kind per file; past this, one warning counts the rest.
MAX_WARNINGS: Final = 100
#: plaso's timestamp_desc of an event without a time.
NOT_A_TIME: Final = rows.NOT_A_TIME
#: Why a time was not used, as the ``no-time`` warning says it.
REASONS: Final = {
    "zero": "a stored zero (unset)",
    "range": "out of range",
    "unreadable": "not a time irkit can read",
}
#: One event to write: (ts, ts_desc, record).
Timed = tuple[str, str, str]


class Output:
    """The rows and warnings of one results file."""

    def __init__(self, ctx: ParseContext, sink: RowSink, mapping: Mapping | None = None) -> None:
        self.ctx = ctx
        self.add = sink.add
        self.mapping = mapping if mapping is not None else load_mapping()
        self._warned: collections.Counter[str] = collections.Counter()
        #: Times not used, per (reason, data type or parser).
        self.unused: collections.Counter[tuple[str, str]] = collections.Counter()
        self._fallback: tuple[str, str] | None = None

    def warn(self, kind: str, message: str) -> None:
        """A named warning; past MAX_WARNINGS of a kind only counted (``finish`` says how
        many more)."""
        self._warned[kind] += 1
        if self._warned[kind] <= MAX_WARNINGS:
            self.ctx.warn(kind, message)

    def partial(self) -> None:
        """Part of the file was not read."""
        if self.ctx.stats.status == "ok":
            self.ctx.stats.status = "partial"

    def skip(self, kind: str, message: str, records: int = 1) -> None:
        """Records that could not be read: a warning, counted, the parse partial."""
        self.warn(kind, message)
        self.ctx.stats.skipped_records += records
        self.partial()

    def not_a_time(self) -> tuple[str, str]:
        """(ts, ts_desc) of an event without a usable time (``rows.fallback_time``)."""
        if self._fallback is None:
            self._fallback = rows.fallback_time(self.ctx)
        return self._fallback

    def emit(self, timed: list[Timed], chain: str, values: dict[str, str], message: str) -> None:
        """Rows of one event data (or one event): the same fields, one row per time."""
        if not timed:
            return
        host, user, event_id = rows.who(values, values.get("data_type", ""), self.mapping)
        host = host or self.ctx.host
        blob = rows.dumps(values)
        add = self.add
        for ts, desc, record in timed:
            add((ts, desc, chain, host, user, event_id, message, blob, record))
        self.ctx.stats.records += len(timed)

    def finish(self, what: str) -> None:
        """The file's summary warnings: counts past the limit, times not used (``what``
        says what became of them)."""
        ctx = self.ctx
        for kind, count in sorted(self._warned.items()):
            if count > MAX_WARNINGS:
                ctx.warn(kind, f"{count - MAX_WARNINGS:,} more not listed ({count:,} in all)")
        if self.unused:
            reasons: collections.Counter[str] = collections.Counter()
            for (reason, _), count in self.unused.items():
                reasons[reason] += count
            said = "; ".join(f"{REASONS[r]}: {n:,}" for r, n in sorted(reasons.items()))
            top = sorted(self.unused.items(), key=lambda item: (-item[1], item[0]))[:8]
            detail = ", ".join(f"{name or '-'} {count:,}" for (_, name), count in top)
            total = sum(reasons.values())
            ctx.warn("no-time", f"{total:,} times not used, {said} ({detail}); {what}")


def message_text(value: Any) -> str:
    """A message as the file gives it (psort's, formatted as the plaso source formats it),
    made one line."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return rows.clean(one_line(text))


def labels_text(labels: Any) -> str:
    """Event tag labels as the fields keep them: a compact JSON list (``[]``: none)."""
    if isinstance(labels, str):
        labels = labels.split()
    if not isinstance(labels, list | tuple):
        return ""
    return rows.text([str(label) for label in labels])


def zone_text(offset: Any) -> str:
    """The zone log2timeline read a local time in: ``UTC``, or the offset it applied
    (``time_zone_offset`` of the event's time, minutes) as ``UTC+01:00``."""
    if not isinstance(offset, int) or isinstance(offset, bool):
        return "UTC"
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"
