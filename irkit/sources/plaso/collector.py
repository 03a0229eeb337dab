"""The storage writer plaso's parser mediator and timeliner write into, in memory.

plaso's parsers hand everything to a storage writer (``AddAttributeContainer``): event
data, event data streams, warnings, date-less log helpers, event sources (a compressed
stream inside the file). log2timeline's writer stores them in an SQLite file and its
in-memory one (plaso's FakeStorageWriter, for tests) deep-copies and keeps them all. This
one keeps only what the file's run needs and hands each event data on at once, so memory
does not grow with the file (except for date-less logs, whose events wait for the year:
see ``irkit.sources.plaso.run``).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterator
from typing import Any, Final

from acstore.containers import interface as acstore_interface

#: Container types that are warnings, and the irkit warning kind of each.
WARNING_KINDS: Final = {
    "extraction_warning": "plaso-extraction",
    "recovery_warning": "plaso-recovery",
    "timelining_warning": "plaso-timelining",
}
_DATE_LESS: Final = "date_less_log_helper"

#: Identifiers are unique in the process, so a cache keyed on them (the timeliner's base
#: dates per event data stream) never mixes up two files.
_SEQUENCE: Final = itertools.count(1)


class Collector:
    """A storage writer that keeps nothing it does not have to."""

    def __init__(
        self,
        on_event_data: Callable[[Any], None],
        on_warning: Callable[[str, Any], None],
    ) -> None:
        self._on_event_data = on_event_data
        self._on_warning = on_warning
        self._streams: dict[str, Any] = {}
        self._date_less: list[Any] = []
        #: Event sources still to process (a compressed stream found in the file).
        self.sources: list[Any] = []
        #: Events the timeliner made for the event data it is processing.
        self.events: list[Any] = []

    def AddAttributeContainer(self, container: Any) -> None:  # noqa: N802  # plaso's name
        """Take one container from a parser, the mediator or the timeliner."""
        kind = container.CONTAINER_TYPE
        container.SetIdentifier(
            acstore_interface.AttributeContainerIdentifier(
                name=kind, sequence_number=next(_SEQUENCE)
            )
        )
        if kind == "event":
            self.events.append(container)
        elif kind == "event_data":
            self._on_event_data(container)
        elif kind == "event_data_stream":
            self._streams[container.GetIdentifier().CopyToString()] = container
        elif kind == _DATE_LESS:
            self._date_less.append(container)
        elif kind == "event_source":
            self.sources.append(container)
        elif kind in WARNING_KINDS:
            self._on_warning(WARNING_KINDS[kind], container)
        # Anything else (Windows EventLog message resources of PE files, event tags) is
        # not an event: dropped.

    def AddOrUpdateEventTag(self, event_tag: Any) -> None:  # noqa: N802
        """Event tags (plaso's ``corrupted``/``recovered`` labels) are kept in the fields."""

    def GetAttributeContainers(  # noqa: N802
        self, container_type: str, filter_expression: str | None = None
    ) -> Iterator[Any]:
        """The date-less log helpers (the only containers the timeliner looks up)."""
        if container_type != _DATE_LESS:
            return iter(())
        code = (
            compile(ast.parse(filter_expression, mode="eval"), "<filter>", "eval")
            if (filter_expression)
            else None
        )
        return (c for c in list(self._date_less) if c.MatchesExpression(code))

    def GetAttributeContainerByIdentifier(  # noqa: N802
        self, container_type: str, identifier: Any
    ) -> Any:
        """An event data stream by its identifier (others are not kept)."""
        if container_type != "event_data_stream" or identifier is None:
            return None
        return self._streams.get(identifier.CopyToString())

    def HasAttributeContainers(self, container_type: str) -> bool:  # noqa: N802
        """Only date-less log helpers are kept."""
        return container_type == _DATE_LESS and bool(self._date_less)

    def stream(self, event_data: Any) -> Any:
        """The event data stream of an event data, or None."""
        return self.GetAttributeContainerByIdentifier(
            "event_data_stream", event_data.GetEventDataStreamIdentifier()
        )

    @property
    def date_less(self) -> list[Any]:
        """The date-less log helpers parsers left (one per yearless data stream)."""
        return self._date_less
