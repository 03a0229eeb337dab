"""The protocol every artifact source implements, and the sink it writes rows into."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Protocol

from irkit.model import FileStats, ParseWarning

#: One timeline row in ``irkit.model.ROW_COLUMNS`` order (the per-file columns, source and
#: evidence, are added by the sink); tuples keep the hot loop cheap. ``fields`` is the
#: JSON object as the UTF-8 bytes orjson writes.
Row = tuple[str, str, str, str, str, str, str, bytes, str]


class RowSink(Protocol):
    """Where a source puts rows: the spool writer in a worker, a list in tests.

    A sink may also offer ``open_columns()`` and ``grown(count)`` (see
    :class:`irkit.store.spool.SpoolWriter`); the EVTX source's C loop fills its columns then.
    """

    def add(self, row: Row) -> None:
        """Take one row."""


@dataclasses.dataclass(slots=True)
class ParseContext:
    """What a source knows about the file it parses, and where its counts go."""

    path: Path
    display: str
    sha256: str
    stats: FileStats
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    #: When the evidence was collected (ISO 8601, UTC), from a collection manifest; empty
    #: when unknown. Sources whose records carry no time of their own (``osqueryi --json``
    #: output) use it, else the file's modification time, and say which in ``ts_desc``.
    collected_at: str = ""
    #: The host the evidence was collected from (a collection manifest's), "" when
    #: unknown. Sources whose records do not name their host (a Linux log) use it.
    host: str = ""

    def warn(self, kind: str, message: str) -> None:
        """Record a counted, named warning for this file; parsing goes on."""
        self.stats.warnings.append(ParseWarning(self.display, kind, message))


class Source(Protocol):
    """An artifact family: recognised by content, parsed into rows."""

    name: ClassVar[str]

    def matches(self, head: bytes, path: Path) -> bool:
        """True if the first bytes of the file say it is this artifact."""

    def parse(self, ctx: ParseContext, sink: RowSink) -> None:
        """Write every event of the file into ``sink``; warn and go on past bad parts."""
