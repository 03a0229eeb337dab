"""The EVTX source: a file parsed with the engine the options name, rows into the sink.

With the fast engine the per-record loop runs in Python (``_parse_py``, the reference) or
in C (``speedups.rows``, a batch of rows per call); a big log can be parsed as slices of
chunks; with ``recover``, a damaged log is read again with python-evtx for the records
only python-evtx can read.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson

from irkit.model import one_line
from irkit.sources.base import ParseContext, Row, RowSink
from irkit.sources.evtx.chunks import chunk_warnings, read_slice
from irkit.sources.evtx.fast_engine import _bad_json, _count_skips, iter_fast, open_fast
from irkit.sources.evtx.flatten import flatten_event
from irkit.sources.evtx.rows import (
    TS_DESC,
    TS_DESC_HEADER,
    RecordKeys,
    build_row,
    header_time,
    record_id,
)
from irkit.sources.messages import MessageCatalog, load_catalog
from irkit.speedups import speedups

SIGNATURE: Final = b"ElfFile\x00"
ENGINES: Final = ("evtx", "python-evtx")

#: Warning kinds that mean records may have been lost.
DAMAGE: Final = frozenset({"truncated", "bad-record", "bad-chunk", "zeroed-chunk"})


class _RowsOut:
    """Where ``speedups.rows`` puts its rows: straight into the sink's columns when it
    has them (:meth:`irkit.store.spool.SpoolWriter.open_columns`), else a list of rows handed
    to ``add``. Counts the rows in the file's stats."""

    def __init__(self, sink: RowSink, ctx: ParseContext) -> None:
        self.sink = sink
        self.ctx = ctx
        self.open_columns = getattr(sink, "open_columns", None)
        self.grown: Callable[[int], None] | None = getattr(sink, "grown", None)
        self.pending: list[Row] = []
        self.columns: tuple[list[Any], ...] | None = None
        self.before = 0

    def open(self) -> tuple[list[Row] | tuple[list[Any], ...], int]:
        """The output and how many rows it takes now."""
        if self.open_columns is None or self.grown is None:
            return self.pending, 1024
        self.columns, room = self.open_columns()
        self.before = len(self.columns[0])
        return self.columns, room

    def hand_over(self) -> None:
        """Count the rows added since :meth:`open` and give them to the sink."""
        if self.columns is not None and self.grown is not None:
            added = len(self.columns[0]) - self.before
            self.columns = None
            self.ctx.stats.records += added
            self.grown(added)
            return
        if not self.pending:
            return
        for row in self.pending:
            self.sink.add(row)
        self.ctx.stats.records += len(self.pending)
        self.pending.clear()


class EvtxSource:
    """EVTX files, recognised by the ``ElfFile\\0`` signature."""

    name: ClassVar[str] = "evtx"

    def matches(self, head: bytes, path: Path) -> bool:
        """EVTX files start with ``ElfFile\\0`` whatever their name."""
        return head.startswith(SIGNATURE)

    def parse(self, ctx: ParseContext, sink: RowSink) -> None:
        """Parse with the engine named in ``ctx.options['evtx_engine']`` (default: evtx)."""
        catalog = load_catalog()
        keys = RecordKeys()
        engine = ctx.options.get("evtx_engine", "evtx")
        ctx.stats.engine = engine
        if engine == "python-evtx":
            add = sink.add
            from irkit.sources.evtx.python_engine import iter_python

            chunk_warnings(ctx.path, ctx)
            for rid, hdr_ts, flat, n_system in iter_python(ctx.path, ctx):
                key = keys.key(record_id(flat, rid))
                add(build_row(flat, n_system, key, hdr_ts, catalog))
                ctx.stats.records += 1
            return
        source = None
        span = ctx.options.get("chunks", "")
        if span:
            first, last = (int(x) for x in span.split(":"))
            ctx.options["slice_label"] = f"(chunks {first}-{last - 1}) "
            chunk_warnings(ctx.path, ctx, first, last)
            source = read_slice(ctx.path, first, last)
        else:
            chunk_warnings(ctx.path, ctx)
        recover = ctx.options.get("recover") == "1" and not span
        seen: set[int] | None = set() if recover else None
        if speedups is None:
            self._parse_py(ctx, sink, source, keys, seen, catalog)
        else:
            self._parse_c(ctx, sink, source, keys, seen, catalog)
        ctx.stats.record_ranges = [keys.ranges()]
        if seen is not None and any(w.kind in DAMAGE for w in ctx.stats.warnings):
            self._recover(ctx, sink, keys, seen, catalog)

    def recover(self, ctx: ParseContext, sink: RowSink, seen: set[int]) -> None:
        """Only what ``--recover`` adds to a log whose fast-engine records (their ids:
        ``seen``) were read before: the rows python-evtx alone reads, keyed as a
        ``--recover`` parse keys them (a new id's key is the id itself)."""
        self._recover(ctx, sink, RecordKeys(), seen, load_catalog())

    @staticmethod
    def _parse_py(
        ctx: ParseContext,
        sink: RowSink,
        source: Any,
        keys: RecordKeys,
        seen: set[int] | None,
        catalog: MessageCatalog,
    ) -> None:
        """The reference loop: one record at a time; :meth:`_parse_c` is its C twin."""
        add = sink.add
        for rid, hdr_ts, event in iter_fast(ctx.path, ctx, source):
            flat, n_system = flatten_event(event)
            number = record_id(flat, rid)
            if seen is not None:
                seen.add(number)
            add(build_row(flat, n_system, keys.key(number), hdr_ts, catalog))
            ctx.stats.records += 1

    @staticmethod
    def _parse_c(
        ctx: ParseContext,
        sink: RowSink,
        source: Any,
        keys: RecordKeys,
        seen: set[int] | None,
        catalog: MessageCatalog,
    ) -> None:
        """:meth:`_parse_py` with the per-record work in C (``speedups.rows``), a batch
        of rows per call; records whose JSON does not decode come back here."""
        assert speedups is not None
        resolved, resolve = catalog.render_state()
        out = _RowsOut(sink, ctx)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                records = open_fast(ctx.path, ctx, source)
                if records is None:
                    return
                try:
                    while True:
                        odd = speedups.rows(
                            records,
                            *out.open(),
                            keys,
                            seen,
                            orjson.loads,
                            orjson.dumps,
                            header_time,
                            resolved,
                            resolve,
                            one_line,
                            TS_DESC,
                            TS_DESC_HEADER,
                        )
                        out.hand_over()
                        if odd is None:
                            break
                        if odd is not True:
                            _bad_json(odd, ctx)
                except (RuntimeError, OSError) as exc:
                    ctx.warn("read-error", f"stopped reading: {exc}")
                    ctx.stats.status = "partial"
                finally:
                    _count_skips(caught, ctx)
        finally:
            out.hand_over()

    @staticmethod
    def _recover(
        ctx: ParseContext,
        sink: RowSink,
        keys: RecordKeys,
        seen: set[int],
        catalog: MessageCatalog,
    ) -> None:
        """Read a damaged log again with python-evtx and add the records only it can read.

        python-evtx resumes after a damaged record and reads a cut last chunk; pyevtx-rs
        stops at both. Both engines flatten identically, so the added rows are the same
        as if one engine had read everything.
        """
        from irkit.model import FileStats
        from irkit.sources.evtx.python_engine import iter_python

        # The second pass's own warnings repeat the first's: counted apart, not reported.
        second = ParseContext(ctx.path, ctx.display, ctx.sha256, FileStats(ctx.display))
        recovered = 0
        for rid, hdr_ts, flat, n_system in iter_python(ctx.path, second):
            number = record_id(flat, rid)
            if number in seen:
                continue
            seen.add(number)
            sink.add(build_row(flat, n_system, keys.key(number), hdr_ts, catalog))
            recovered += 1
        ctx.stats.records += recovered
        if recovered:
            ctx.warn(
                "recovered",
                f"{recovered} records past the damage were recovered with python-evtx",
            )
