"""What a plaso run may change: ``PlasoOptions``, read from ``ParseContext.options``."""

from __future__ import annotations

import dataclasses

from irkit.errors import UsageError
from irkit.sources.plaso.engine import DEFAULT_PARSERS


@dataclasses.dataclass(frozen=True, slots=True)
class PlasoOptions:
    """What a run may change (``ParseContext.options`` keys ``plaso_parsers``,
    ``preferred_year``, ``time_zone``)."""

    #: plaso parser filter expression (presets not expanded): ``!filestat`` = all but it.
    parsers: str = DEFAULT_PARSERS
    #: The year of date-less times (plaso's ``--preferred-year``); None: from file dates.
    preferred_year: int | None = None
    #: The zone of local times (plaso's ``--timezone``); empty: read as UTC.
    time_zone: str = ""

    @classmethod
    def from_options(cls, options: dict[str, str]) -> PlasoOptions:
        """Read and check the options; a bad value is a UsageError."""
        year_text = options.get("preferred_year", "").strip()
        year: int | None = None
        if year_text:
            if not year_text.isdigit() or not 1970 <= int(year_text) <= 9999:
                raise UsageError(f"preferred year {year_text!r} is not a year (1970-9999)")
            year = int(year_text)
        zone = options.get("time_zone", "").strip()
        if zone:
            import pytz

            try:
                pytz.timezone(zone)
            except pytz.UnknownTimeZoneError as exc:
                raise UsageError(f"unknown time zone {zone!r}", hint="e.g. Europe/Berlin") from exc
        parsers = options.get("plaso_parsers", "").strip() or DEFAULT_PARSERS
        return cls(parsers, year, zone)
