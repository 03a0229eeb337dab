"""plaso's own results as evidence: a team that already ran log2timeline brings them in.

Three sources, each recognised by content and mapped as the plaso source maps the event
data its parsers give (docs/sources.md#plaso), so the rows match those of the original
files as far as each format carries them:

- ``PlasoStorageSource`` (``plaso-storage``): a storage file (``.plaso``), read with
  plaso's own storage reader (``results_storage``); the messages are formatted as the
  plaso source formats them;
- ``PlasoJsonSource`` (``plaso-json``): psort's ``json_line`` output (``results_json``);
- ``PlasoCsvSource`` (``plaso-csv``): psort's ``l2tcsv`` and ``dynamic`` outputs
  (``results_csv``).

Register them before the plaso catch-all. Recognising never imports plaso; parsing a
storage file sets plaso up once per process (shared with the plaso source); psort's text
outputs need none of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from irkit.sources.base import ParseContext, RowSink
from irkit.sources.plaso.results_format import (
    BOM,
    csv_shape,
    first_line,
    is_json_event,
    is_storage,
)


class PlasoStorageSource:
    """A plaso storage file: every event log2timeline stored."""

    name: ClassVar[str] = "plaso-storage"

    def matches(self, head: bytes, path: Path) -> bool:
        """An SQLite database with plaso's tables: ``metadata`` (key, value), ``event``,
        ``event_data`` (seen in its schema page, else asked of SQLite, read-only)."""
        return is_storage(head, path)

    def parse(self, ctx: ParseContext, sink: RowSink) -> None:
        """Each stored event to a row; a file plaso cannot read is a named warning."""
        from irkit.sources.plaso.results_storage import parse_storage

        parse_storage(ctx, sink)


class PlasoJsonSource:
    """psort's ``json_line`` output (``psort -o json_line``)."""

    name: ClassVar[str] = "plaso-json"

    def matches(self, head: bytes, path: Path) -> bool:
        """The first line is a JSON object with ``__container_type__`` ``event`` and
        ``__type__`` ``AttributeContainer`` (read on past ``head`` if it is longer)."""
        if not head.removeprefix(BOM).startswith(b"{"):
            return False
        return is_json_event(first_line(head, path))

    def parse(self, ctx: ParseContext, sink: RowSink) -> None:
        """Each line to a row; a line that is no plaso event is a named warning."""
        from irkit.sources.plaso.results_json import parse_json_lines

        parse_json_lines(ctx, sink)


class PlasoCsvSource:
    """psort's ``l2tcsv`` and ``dynamic`` outputs (``psort -o l2tcsv``, ``-o dynamic``)."""

    name: ClassVar[str] = "plaso-csv"

    def matches(self, head: bytes, path: Path) -> bool:
        """The first line is psort's header: l2tcsv's 17 columns exactly, or dynamic's
        default 8 (then any additional field names)."""
        if not head.removeprefix(BOM).startswith(b"date"):  # date,… and datetime,…
            return False
        return csv_shape(first_line(head, path)) is not None

    def parse(self, ctx: ParseContext, sink: RowSink) -> None:
        """Each row to its events' rows; a row cut short is a named warning."""
        from irkit.sources.plaso.results_csv import parse_csv

        parse_csv(ctx, sink)
