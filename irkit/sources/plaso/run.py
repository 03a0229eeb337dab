"""One file through plaso: event data in, irkit rows out, every problem a named warning.

Per event data (in plaso's order, as the parsers produce it), plaso's timeliner turns its
date and time attributes into events (``timeliner.yaml``: attribute -> timestamp_desc) and
each event becomes a row. Rows are handed on at once, except after the first date-less
time (a log line without a year): from there the event data wait until the parser has
finished the stream and left its date-less log helper, which gives the year.

Times that are not used (one ``no-time`` warning per file counts them by reason and data
type; the event data keeps its other times):

- a stored zero (FILETIME 0 = 1601-01-01, POSIX 0 = 1970-01-01, plaso timestamp 0): the
  artifact's "unset", never a date;
- a date-less time with nothing to take the year from (no date-less log helper, or one
  without file dates, and no ``preferred_year``): plaso would use the current year;
- a time outside years 1-9999.

An event data with no usable time at all (plaso's ``Not a time`` placeholder, semantic
values such as ``Not set`` or ``Never``, a data type the timeliner does not map, or only
the times above) is still one row, so nothing is lost: timed by the collection time
(``ParseContext.collected_at``) or else the file's modification time, ``ts_desc``
``Not a time (collection time)`` / ``Not a time (file modified time)``.

A date-less time plaso can place (the parser's helper saw the file's dates) is placed as
plaso places it, with one ``assumed-year`` warning per file naming the years taken;
``preferred_year`` sets the year (no warning then).

This module owns ``FileRun``, the state of one file's parse: plaso's callbacks, the
times of each event data, its rows and the file's warnings.
"""

from __future__ import annotations

import collections
import tempfile
from typing import Any, Final

from irkit.sources.base import ParseContext, RowSink
from irkit.sources.plaso import rows
from irkit.sources.plaso.collector import Collector
from irkit.sources.plaso.engine import (
    DEFAULT_PARSERS,
    PARSED,
    VERSION,
    Attempt,
    Engine,
    engine,
    os_path_spec,
)
from irkit.sources.plaso.mapping import Mapping, load_mapping
from irkit.sources.plaso.options import PlasoOptions
from irkit.sources.plaso.result import REASONS, Result

#: Named warnings of one kind per file; past this, one warning counts the rest.
MAX_WARNINGS: Final = 100
#: Warning kinds that mean part of the file was not read.
_PARTIAL_KINDS: Final = frozenset({"plaso-extraction", "parser-error"})
#: plaso timeliner messages about a date-less log's year: folded into assumed-year/no-time.
_YEAR_NOTES: Final = ("base date", "date-less log helper", "earliest and latest date")
#: plaso's timestamp_desc of an event data without a time.
NOT_A_TIME: Final = rows.NOT_A_TIME


class _Pending:
    __slots__ = ("chain", "event_data", "ordinal", "times")

    def __init__(self, event_data: Any, chain: str, ordinal: int, times: list[Any]) -> None:
        self.event_data = event_data
        self.chain = chain
        self.ordinal = ordinal
        self.times = times


class FileRun:
    """The state of one file's parse."""

    def __init__(
        self,
        ctx: ParseContext,
        sink: RowSink,
        options: PlasoOptions,
        plaso: Engine | None = None,
        mapping: Mapping | None = None,
    ) -> None:
        self.ctx = ctx
        self.add = sink.add
        self.options = options
        self.engine = plaso if plaso is not None else engine(options.parsers)
        self.mapping = mapping if mapping is not None else load_mapping()
        self.timeliner = self.engine.timeliner(options.preferred_year, options.time_zone)
        self.result = Result()
        self._ordinals: dict[str, int] = {}
        self._pending: list[_Pending] = []
        #: What plaso's parsers write into for this file.
        self.collector = Collector(self.event_data, self.plaso_warning)
        self._warned: collections.Counter[str] = collections.Counter()
        self._year_notes: list[str] = []
        self._assumed = 0
        self._years: set[int] = set()
        self._fallback: tuple[str, str] | None = None

    # plaso's callbacks --------------------------------------------------------------------

    def event_data(self, event_data: Any) -> None:
        """An event data from a parser: to rows now, or after the stream (date-less)."""
        chain = getattr(event_data, "_parser_chain", None) or "-"
        ordinal = self._ordinals.get(chain, 0) + 1
        self._ordinals[chain] = ordinal
        self.result.event_data[chain] = self.result.event_data.get(chain, 0) + 1
        mapping = self.engine.time_mappings.get(event_data.data_type)
        times: list[tuple[str, Any]] = []
        if mapping is not None:
            for attribute, _desc in mapping.attributes:
                value = getattr(event_data, attribute, None)
                for item in value if isinstance(value, list) else (value,):
                    if isinstance(item, rows.DateTimeValues):
                        times.append((attribute, item))
        pending = _Pending(event_data, chain, ordinal, times)
        if self._pending or (
            self.options.preferred_year is None and any(value.is_delta for _, value in times)
        ):
            self._pending.append(pending)
        else:
            self._emit(pending)

    def plaso_warning(self, kind: str, container: Any) -> None:
        """An extraction, recovery or timelining warning from plaso."""
        message = str(getattr(container, "message", "") or "")
        if kind == "plaso-timelining" and any(note in message for note in _YEAR_NOTES):
            if len(self._year_notes) < 3 and message not in self._year_notes:
                self._year_notes.append(message)
            return
        chain = getattr(container, "parser_chain", None) or "-"
        if kind != "plaso-timelining":
            self.result.plaso_warnings += 1
            self.result.warned_parsers.add(chain.split("/")[0])
        self.warn(kind, f"{chain}: {message}")

    def crashed(self, where: str, error: str) -> None:
        """A parser or plugin raised an exception; it was contained."""
        self.warn("parser-error", f"{where} {error}")

    # the run ------------------------------------------------------------------------------

    def warn(self, kind: str, message: str) -> None:
        """A named warning; past MAX_WARNINGS of a kind only counted."""
        self._warned[kind] += 1
        if kind in _PARTIAL_KINDS:
            self.ctx.stats.status = "partial"
        if self._warned[kind] <= MAX_WARNINGS:
            self.ctx.warn(kind, message)

    def run(self) -> Result:
        """Parse the file; never raises for bad evidence."""
        ctx = self.ctx
        ctx.stats.engine = f"plaso {VERSION}"
        if self.engine.parser_filter != DEFAULT_PARSERS:
            ctx.stats.engine += f" ({self.engine.parser_filter})"
        path = str(ctx.path.absolute())
        if ctx.path.stat().st_size == 0:
            self.not_taken("empty file")
            return self.result
        collector = self.collector
        plaso = self.engine
        mediator = plaso.mediator(collector)
        plaso.reporter.attempts = self.result.attempts
        plaso.reporter.matched = self.result.matched
        plaso.reporter.crash = self.crashed
        logged: list[str] = []
        plaso.log.records = logged
        # plaso copies SQLite databases (and their WAL) to a temporary folder, and SQLite
        # leaves -wal/-shm files there: a folder of our own, removed with all it holds.
        scratch = tempfile.TemporaryDirectory(prefix="irkit-plaso-", ignore_cleanup_errors=True)
        mediator.SetTemporaryDirectory(scratch.name)
        try:
            self._process(mediator, os_path_spec(path))
            while collector.sources:  # a compressed stream (.gz, .bz2, .xz) in the file
                self._process(mediator, collector.sources.pop(0).path_spec)
        finally:
            scratch.cleanup()
            plaso.reporter.attempts = []
            plaso.reporter.matched = []
            plaso.reporter.crash = None
            plaso.log.records = None
            mediator.resolver_context.Empty()
        for record in logged:
            self.warn("plaso-log", record)
        self.finish()
        return self.result

    def _process(self, mediator: Any, path_spec: Any) -> None:
        try:
            self.engine.process(mediator, path_spec)
        except Exception as exc:  # outside any parser: dfVFS or plaso's worker itself
            self.warn("parser-error", f"plaso stopped: {type(exc).__name__}: {exc}")
        self.flush()

    def flush(self) -> None:
        """Turn the event data waiting for their year into rows (after each stream)."""
        pending, self._pending = self._pending, []
        for item in pending:
            self._emit(item)

    def finish(self) -> None:
        """The file's summary warnings (counts past the limit, times not used, assumed
        years), and whether any parser took it."""
        ctx, result = self.ctx, self.result
        for kind, count in sorted(self._warned.items()):
            if count > MAX_WARNINGS:
                ctx.warn(kind, f"{count - MAX_WARNINGS:,} more not listed ({count:,} in all)")
        if result.unused:
            reasons: collections.Counter[str] = collections.Counter()
            for (reason, _), count in result.unused.items():
                reasons[reason] += count
            what = "; ".join(f"{REASONS[r]}: {n:,}" for r, n in sorted(reasons.items()))
            top = sorted(result.unused.items(), key=lambda item: (-item[1], item[0]))[:8]
            detail = ", ".join(f"{data_type} {count:,}" for (_, data_type), count in top)
            notes = f" (plaso: {'; '.join(self._year_notes)})" if "no-year" in reasons else ""
            ctx.warn(
                "no-time",
                f"{sum(reasons.values()):,} times not used, {what} ({detail}); their event "
                f"data keep their other times or are 'Not a time' rows{notes}",
            )
        if self._assumed and self.options.preferred_year is None:
            years = "-".join(str(y) for y in sorted({min(self._years), max(self._years)}))
            notes = f" (plaso: {'; '.join(self._year_notes)})" if self._year_notes else ""
            ctx.warn(
                "assumed-year",
                f"{self._assumed:,} times have no year in the file: plaso took {years} from "
                f"the file's dates; set preferred_year to choose{notes}",
            )
        if not result.recognised:
            reason = _why_not(result.attempts, result.matched)
            if any(a.parser in result.matched for a in result.attempts):
                # Its format signature says what it is, and that parser refused it: a
                # damaged file of a known format (a cut plist), named as a warning.
                result.reason = reason
                ctx.stats.status = "failed"
                ctx.warn("rejected", reason)
            else:
                self.not_taken(reason)

    def not_taken(self, reason: str) -> None:
        """No parser took the file: not evidence, and not a warning (the run lists it)."""
        self.result.reason = reason
        self.ctx.stats.status = "unrecognised"
        self.ctx.stats.unrecognised = reason

    # rows ---------------------------------------------------------------------------------

    def _year_source(self, event_data: Any) -> bool:
        """Whether plaso has something to take a date-less time's year from: a preferred
        year, or the stream's date-less log helper with the file's dates."""
        if self.options.preferred_year is not None:
            return True
        wanted = _key(event_data.GetEventDataStreamIdentifier())
        return any(
            _key(helper.GetEventDataStreamIdentifier()) == wanted
            and (helper.earliest_date is not None or helper.latest_date is not None)
            for helper in self.collector.date_less
        )

    def _timed(self, item: _Pending) -> tuple[Any, list[tuple[str, str]], dict[str, str], bool]:
        """The event data (without the times plaso cannot place), its (ts, ts_desc) pairs,
        the texts of its time attributes (ISO 8601 UTC, µs, as ``ts``; a stored zero as
        empty), and whether any time was local."""
        event_data, times = item.event_data, item.times
        data_type = str(event_data.data_type)
        unused = self.result.unused
        texts: dict[str, list[str]] = {}
        if any(value.is_delta for _, value in times) and not self._year_source(event_data):
            for attribute, value in times:
                if value.is_delta:  # kept in the fields as the file has it: no year
                    unused[("no-year", data_type)] += 1
                    texts.setdefault(attribute, []).append(rows.time_text(value))
            times = [(attribute, value) for attribute, value in times if not value.is_delta]
            event_data = _without(event_data, set(texts))
        if not times:
            return event_data, [], rows.time_texts(event_data, texts), False
        collector = self.collector
        collector.events = []
        self.timeliner.ProcessEventData(collector, event_data, collector.stream(event_data))
        events, collector.events = collector.events, []
        paired = len(events) == len(times)
        made: list[tuple[str, str]] = []
        local = False
        for index, event in enumerate(events):
            attribute, value = times[index] if paired else ("", None)
            shown = texts.setdefault(attribute, []) if paired else []
            if isinstance(value, rows.SemanticTime):
                shown.append(rows.time_text(value))  # "Not set", "Never": not a time
                continue
            micros = int(event.timestamp or 0)
            if micros == 0 or getattr(value, "timestamp", None) == 0:
                unused[("zero", data_type)] += 1
                shown.append("")
                continue
            try:
                ts = rows.iso(micros)
            except (OverflowError, ValueError):
                unused[("range", data_type)] += 1
                shown.append(rows.time_text(value))
                continue
            shown.append(ts)
            if value is not None:
                if value.is_delta:
                    self._assumed += 1
                    self._years.add(int(ts[:4]))
                local = local or bool(getattr(value, "is_local_time", False))
            made.append((ts, str(event.timestamp_desc or NOT_A_TIME)))
        return event_data, made, rows.time_texts(event_data, texts), local

    def _emit(self, item: _Pending) -> None:
        event_data, made, resolved, local = self._timed(item)
        chain = item.chain
        data_type = str(event_data.data_type)
        if not made:
            self.result.untimed[data_type] += 1
            made = [self._not_a_time()]
        values = rows.fields(event_data, chain, resolved)
        if local:
            values["time_zone_assumed"] = self.options.time_zone or "UTC"
        host, user, event_id = rows.who(values, data_type, self.mapping)
        host = host or self.ctx.host
        plaso = self.engine
        text = rows.message(
            plaso.formatter(data_type), plaso.default_formatter, plaso.output_mediator, event_data
        )
        blob = rows.dumps(values)
        add = self.add
        seen: dict[str, int] = {}
        base = f"{chain}:{item.ordinal}"
        for ts, desc in made:
            count = seen[desc] = seen.get(desc, 0) + 1
            add(
                (
                    ts,
                    desc,
                    chain,
                    host,
                    user,
                    event_id,
                    text,
                    blob,
                    base if count == 1 else f"{base}#{count}",
                )
            )
        self.result.rows[chain] = self.result.rows.get(chain, 0) + len(made)
        self.ctx.stats.records += len(made)

    def _not_a_time(self) -> tuple[str, str]:
        """(ts, ts_desc) of an event data without a usable time (``rows.fallback_time``)."""
        if self._fallback is None:
            self._fallback = rows.fallback_time(self.ctx)
        return self._fallback


def _key(identifier: Any) -> str:
    return "" if identifier is None else str(identifier.CopyToString())


def _without(event_data: Any, attributes: set[str]) -> Any:
    """A shallow copy of the event data without some time attributes (date-less times
    plaso cannot place: its timeliner would put them in the current year)."""
    import copy

    clone = copy.copy(event_data)
    for attribute in attributes:
        setattr(clone, attribute, None)
    return clone


def _why_not(attempts: list[Attempt], matched: list[str]) -> str:
    """Why no plaso parser took the file, from what each said."""
    said = [a for a in attempts if a.parser in matched and a.result != PARSED]
    tried = len({a.parser for a in attempts} - set(matched))
    if said:
        first = said[0]
        return (
            f"the format signature of {first.parser} matched but it rejected the file: "
            f"{first.reason[:200]}; none of the {tried} parsers without a signature took it"
        )
    if not attempts:
        return "no plaso parser applies to it"
    return f"no format signature matched and none of the {tried} parsers without one took it"
