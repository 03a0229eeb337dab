"""The fast EVTX engine: pyevtx-rs (``evtx``) with ``skip_errors``, read record by record.

pyevtx-rs reports a chunk or record it skips as a Python warning: each one becomes a
counted parse warning here. A record whose JSON does not decode is skipped and counted.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from irkit.sources.base import ParseContext


def open_fast(path: Path, ctx: ParseContext, source: Any = None) -> Iterator[Any] | None:
    """pyevtx-rs's JSON records of ``path`` (or of the file object ``source``, a slice);
    None, with the file marked failed, when it is not a readable EVTX file."""
    import evtx

    try:
        parser = evtx.PyEvtxParser(
            str(path) if source is None else source, number_of_threads=1, skip_errors=True
        )
    except (RuntimeError, OSError) as exc:
        ctx.warn("unreadable", f"not a readable EVTX file: {exc}")
        ctx.stats.status = "failed"
        return None
    records: Iterator[Any] = parser.records_json()
    return records


def decode_event(data: str) -> dict[str, Any]:
    """The ``Event`` of one record's JSON; {} when it has none (orjson errors go up)."""
    loaded = orjson.loads(data)
    event = loaded.get("Event") if type(loaded) is dict else None
    return event if type(event) is dict else {}


def _bad_json(record: Mapping[str, Any], ctx: ParseContext) -> None:
    """Count and name a record whose engine JSON does not decode."""
    rid = record["event_record_id"]
    try:
        orjson.loads(record["data"])
        problem = "not JSON"
    except orjson.JSONDecodeError as exc:
        problem = str(exc)
    # pyevtx-rs writes control characters of damaged names unescaped.
    ctx.warn("bad-record", f"record {rid}: the engine's JSON is broken: {problem}")
    ctx.stats.skipped_records += 1
    ctx.stats.status = "partial"


def iter_fast(
    path: Path, ctx: ParseContext, source: Any = None
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Yield (record id, header time, JSON event) with pyevtx-rs; bad chunks become warnings.

    ``source``, when given, is a file object to read instead of ``path`` (a slice).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = open_fast(path, ctx, source)
        if records is None:
            return
        try:
            for record in records:
                try:
                    event = decode_event(record["data"])
                except orjson.JSONDecodeError:
                    _bad_json(record, ctx)
                    continue
                yield record["event_record_id"], record["timestamp"], event
        except (RuntimeError, OSError) as exc:
            ctx.warn("read-error", f"stopped reading: {exc}")
            ctx.stats.status = "partial"
        finally:
            _count_skips(caught, ctx)


def _count_skips(caught: list[warnings.WarningMessage], ctx: ParseContext) -> None:
    where = ctx.options.get("slice_label", "")
    for item in caught:
        text = where + str(item.message).removeprefix("Skipping EVTX data: ").removeprefix(
            "RuntimeError: "
        )
        if "chunk" in text.lower() and "record" not in text.lower().split("chunk")[0]:
            ctx.stats.skipped_chunks += 1
        else:
            ctx.stats.skipped_records += 1
        ctx.warn("bad-chunk" if "chunk" in text.lower() else "bad-record", text)
    if caught and ctx.stats.status == "ok":
        ctx.stats.status = "partial"
