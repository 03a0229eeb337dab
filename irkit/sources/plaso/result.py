"""What plaso did with one file, beyond its rows and warnings: ``Result`` (the event data
and rows per parser chain, the times not used and why, the parsers tried and which took
the file)."""

from __future__ import annotations

import collections
import dataclasses
from typing import Final

from irkit.sources.plaso.engine import CRASHED, FAILED, PARSED, Attempt

#: Why a time was not used (``Result.unused`` keys), as the warning says it.
REASONS: Final = {
    "zero": "a stored zero (unset)",
    "no-year": "no year to place them in",
    "range": "out of range",
}


@dataclasses.dataclass(slots=True)
class Result:
    """What plaso did with one file, beyond the rows and warnings."""

    #: Event data per parser chain, in the order the chains first appeared.
    event_data: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Rows per parser chain.
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Event data without a usable time (one ``Not a time`` row each), per data type.
    untimed: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    #: Times not used, per (reason, data type): see REASONS.
    unused: collections.Counter[tuple[str, str]] = dataclasses.field(
        default_factory=collections.Counter
    )
    #: Each parser tried, and what it did.
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    #: Parsers whose format signature matched (tried first, as log2timeline does).
    matched: list[str] = dataclasses.field(default_factory=list)
    #: Parsers that produced plaso extraction or recovery warnings.
    warned_parsers: set[str] = dataclasses.field(default_factory=set)
    #: plaso's extraction and recovery warnings.
    plaso_warnings: int = 0
    #: Why no parser took the file (empty when one did).
    reason: str = ""

    @property
    def parsers(self) -> tuple[str, ...]:
        """The parsers that took the file: those that gave event data or warnings, failed
        on it, or whose format signature matched and did not reject it."""
        took = {chain.split("/")[0] for chain in self.event_data} | self.warned_parsers
        return tuple(
            dict.fromkeys(
                a.parser
                for a in self.attempts
                if a.parser in took
                or a.result in (FAILED, CRASHED)
                or (a.result == PARSED and a.parser in self.matched)
            )
        )

    @property
    def recognised(self) -> bool:
        """True when some plaso parser took the file, even one that found nothing in it
        (an empty registry transaction log). A parser that returns without rejecting a file
        it has no signature for (plaso's ``recycle_bin_info2`` does, for any file not named
        INFO2) does not count."""
        return bool(self.event_data or self.parsers)
