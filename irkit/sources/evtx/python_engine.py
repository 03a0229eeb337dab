"""The second EVTX engine: python-evtx, flattened exactly like the fast engine.

python-evtx (pure Python) opens the file, finds the chunks (inactive ones too) and parses
each template definition (element and attribute names, static text, where each
substitution goes). This engine (this module and the ``binxml*`` ones) walks each chunk's
records, fills the templates with the records' substitution values, builds the same JSON
shape pyevtx-rs 0.14 builds and flattens it with the very same
:data:`irkit.sources.evtx.flatten.flatten_event`, so both engines give identical field
dicts wherever they read the same record (the whole shared corpus: 37,847 records, no
field differs, same key order).

Why not ``record.xml()``: the text python-evtx renders has lost each value's type, so a
GUID (``{94f748d5-…}`` vs ``94F748D5-…``), a ``HexInt64`` (``0x00000000000003e7`` vs
``0x3e7``), binary (base64 vs hex), a string array (one ``Data`` vs one per item), a
boolean or a FILETIME (read through a float, off by a microsecond) cannot be put right
from a string that might just look like one. ``xml()`` is not always well-formed either
(a ``"`` in an attribute value), fails on every record that holds BinXML written out
without a template (forwarded events, CAPI2 ``UserData``), and is slow: it re-parses the
record's template for every record, where this engine compiles each template once per
chunk. Measured (one core): ``xml()`` + ElementTree 100-115 records/s; this engine
1,700-3,000 records/s on a file, 2,180 over the whole corpus.

What follows pyevtx-rs (``binxml/ir.rs``, ``ir_json.rs``, ``array_expand.rs``,
``value_render.rs``): values rendered by their declared type; an element whose only
content is one integer or boolean value is a JSON number or boolean; optional
substitutions with an empty value are dropped; empty attributes are left out and empty
elements are ``null``; repeated child elements are keyed ``Name``, ``Name_1``…;
``<Data Name="X">`` children of ``EventData``/``UserData`` are keyed by name, unnamed ones
go to ``Data.#text`` (a list when there are several); an array value repeats its element
once per item; strings stop at the first NUL and lose unpaired surrogates.

What this module adds to plain python-evtx iteration, so that a damaged log gives all it
still holds (python-evtx would stop, or raise): a bad chunk or record is a counted warning
and reading goes on; each record must carry the record magic and keep its values inside
itself; past a damaged record, reading resumes at the next intact one (the corpus has 114
intact records after one of size 0 that both python-evtx and pyevtx-rs stop at); records
the chunk header declares but that are zeroed are counted as lost; BinXML without a
template is read by a small token reader (``binxml``; python-evtx has none); a file cut
short is read into its last, partial chunk (89 more records in plaso's ``System2.evtx``).
"""

from __future__ import annotations

import datetime as dt
import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from irkit.sources.base import ParseContext
from irkit.sources.evtx.binxml import _Walker
from irkit.sources.evtx.binxml_json import event_of
from irkit.sources.evtx.chunks import CHUNK_SIZE
from irkit.sources.evtx.flatten import flatten_event

_CHUNK_HEADER_SIZE: Final = 0x200

_ZERO_CHUNK: Final = bytes(CHUNK_SIZE)

_RECORD_MAGIC: Final = b"**\x00\x00"

_EPOCH_1601: Final = dt.datetime(1601, 1, 1)

_unpack_from = struct.unpack_from

_QUIET: Final = logging.NullHandler()

#: One row: (EventRecordID of the record header, header time, flat fields, n_system).
Row = tuple[int, str, dict[str, str], int]


def _header_time(raw: int) -> str:
    """The record header's FILETIME like ``header_time()`` of pyevtx-rs's (µs, truncated)."""
    try:
        stamp = _EPOCH_1601 + dt.timedelta(microseconds=raw // 10)
    except OverflowError:
        return ""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _skip(ctx: ParseContext, kind: str, message: str) -> None:
    ctx.warn(kind, message)
    if kind == "bad-chunk":
        ctx.stats.skipped_chunks += 1
    else:
        ctx.stats.skipped_records += 1
    if ctx.stats.status == "ok":
        ctx.stats.status = "partial"


def iter_python(path: Path, ctx: ParseContext) -> Iterator[Row]:
    """Yield (EventRecordID from the record header, header time as ISO 8601 '...+00:00',
    flat fields, n_system) for every record python-evtx can read, inactive chunks included.

    Never raises for bad data: a bad chunk or record is a counted warning and reading goes
    on; a file python-evtx cannot open at all is one warning and ``status = "failed"``.
    """
    import Evtx.Evtx as evtx_file  # noqa: N813
    import Evtx.Nodes as evtx_nodes  # noqa: N813

    logging.getLogger("Evtx").addHandler(_QUIET)  # python-evtx logs warnings: not ours to print
    log = evtx_file.Evtx(str(path))
    try:
        log.__enter__()
        header = log.get_file_header()
        if not header.check_magic():
            raise ValueError("no ElfFile signature")
        first = header.header_chunk_size()
    except Exception as exc:
        handle = getattr(log, "_f", None)
        if handle is not None:
            handle.close()
        ctx.warn("unreadable", f"python-evtx cannot read the file: {type(exc).__name__}: {exc}")
        ctx.stats.status = "failed"
        return
    try:
        buf = log._buf
        number = -1
        for number, chunk in enumerate(header.chunks(include_inactive=True)):
            yield from _iter_chunk(buf, number, chunk, ctx, evtx_nodes)
        # A file cut short (a partial copy, a carved log) ends in a partial chunk that
        # chunks() leaves out: its records are read as far as the bytes go, and the one
        # the cut runs through is a skipped record. (EvtxSource's chunk_warnings() names
        # the truncation itself.)
        tail = first + (number + 1) * CHUNK_SIZE
        if len(buf) - tail >= _CHUNK_HEADER_SIZE:
            chunk = evtx_file.ChunkHeader(buf, tail)
            if chunk.check_magic():
                yield from _iter_chunk(buf, number + 1, chunk, ctx, evtx_nodes)
    except Exception as exc:  # not expected past the per-chunk guards: stop, say so
        ctx.warn("read-error", f"python-evtx stopped reading: {type(exc).__name__}: {exc}")
        if ctx.stats.status == "ok":
            ctx.stats.status = "partial"
    finally:
        log.__exit__(None, None, None)


def _iter_chunk(buf: Any, number: int, chunk: Any, ctx: ParseContext, nodes: Any) -> Iterator[Row]:
    start = chunk.offset()
    where = f"chunk {number} at offset {start:#x}"
    try:
        good = chunk.check_magic()
    except Exception:
        good = False
    if not good:
        if buf[start : start + CHUNK_SIZE] != _ZERO_CHUNK[: len(buf) - start]:
            _skip(ctx, "bad-chunk", f"{where}: bad chunk magic, chunk skipped")
        return
    walker = _Walker(buf, chunk, nodes)
    for offset in _record_offsets(buf, where, chunk, ctx):
        try:
            size, rid, raw_time = _unpack_from("<IQQ", buf, offset + 4)
            walker.end = offset + size - 4
            flat, n_system = flatten_event(event_of(walker.fragment(offset + 0x18)))
        except Exception as exc:
            _skip(ctx, "bad-record", f"{where}: record at offset {offset:#x}: {exc!r}")
            continue
        yield rid, _header_time(raw_time), flat, n_system


def _record_offsets(buf: Any, where: str, chunk: Any, ctx: ParseContext) -> Iterator[int]:
    """Where the chunk's records start: python-evtx's walk (``ChunkHeader.records``: from
    0x200, record by record, up to the chunk header's next-record offset), except that a
    damaged record does not end the chunk in silence. python-evtx stops at a record of
    size 0 or over 64 KiB and reads a record without its magic; here each record must
    have its magic, and reading resumes at the next intact record (magic, and the same
    size at both ends), with a counted warning for what lies between. Seen in the corpus:
    114 intact records after a record of size 0, and zeroed tails of chunks."""
    start = chunk.offset()
    end = min(start + chunk.next_record_offset(), start + CHUNK_SIZE)
    pos = start + _CHUNK_HEADER_SIZE
    last_rid = -1
    while pos + 0x18 <= end:
        magic, size, rid = _unpack_from("<4sIQ", buf, pos)
        if magic == _RECORD_MAGIC and 0x1C <= size <= CHUNK_SIZE:
            if pos + size > len(buf):
                _skip(ctx, "bad-record", f"{where}: record {rid} at {pos:#x} is cut off by EOF")
                return
            yield pos
            last_rid = rid
            pos += size
            continue
        resume = _next_record(buf, pos + 1, min(end, len(buf)))
        state = "zeroed" if not any(buf[pos : pos + 24]) else "not a record"
        if resume < 0:
            declared = chunk.log_last_record_number()
            _lost(
                ctx,
                f"{where}: records stop at {pos:#x} ({state}) although the chunk header "
                f"declares records up to {end:#x}, numbered up to {declared} (last read: "
                f"{last_rid}): the rest of the chunk is lost",
                declared - last_rid,
            )
            return
        (next_rid,) = _unpack_from("<Q", buf, resume + 8)
        _lost(
            ctx,
            f"{where}: {resume - pos} bytes at {pos:#x} ({state}) hold no valid record after "
            f"record {last_rid}; reading resumes at record {next_rid} at {resume:#x}",
            next_rid - last_rid - 1,
        )
        pos = resume


def _next_record(buf: Any, pos: int, end: int) -> int:
    """The offset of the next intact record in ``[pos, end)``, or -1."""
    while True:
        pos = buf.find(_RECORD_MAGIC, pos, end)
        if pos < 0 or pos + 0x18 > end:
            return -1
        (size,) = _unpack_from("<I", buf, pos + 4)
        if 0x1C <= size <= end - pos and _unpack_from("<I", buf, pos + size - 4)[0] == size:
            return int(pos)
        pos += 1


def _lost(ctx: ParseContext, message: str, count: int) -> None:
    """A counted warning for records that are gone: ``count`` when plausible, else one."""
    ctx.warn("bad-record", message)
    ctx.stats.skipped_records += count if 0 < count <= CHUNK_SIZE // 0x1C else 1
    if ctx.stats.status == "ok":
        ctx.stats.status = "partial"
