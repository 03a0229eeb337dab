"""psort's ``json_line`` output: one plaso event per line, as the plaso source maps it.

Each line is an object psort writes with ``json.dumps(sort_keys=True)``: plaso's
``__container_type__`` (``event``) and ``__type__`` (``AttributeContainer``), the event
(``timestamp``, ``timestamp_desc``, ``date_time``), the event data's attributes but its
times (``data_type``, ``parser``: the chain…), its stream's (``pathspec``,
``sha256_hash``…), ``display_name``, ``message`` and ``tag``. Every line is one row:
``record`` is ``line:<n>``, so ingesting the file again adds nothing.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from irkit.sources.base import ParseContext, RowSink
from irkit.sources.osquery_stream import iter_lines
from irkit.sources.plaso import rows
from irkit.sources.plaso.results_common import (
    NOT_A_TIME,
    Output,
    labels_text,
    message_text,
)
from irkit.sources.plaso.results_format import BOM

#: Keys that are the event, its row's columns or plaso's bookkeeping: not fields.
_NOT_FIELDS: Final = frozenset(
    {"__container_type__", "__type__", "timestamp", "timestamp_desc", "date_time", "message"}
)
#: Fields psort makes up (from the event data stream), ``-`` when it has none.
_PSORT_MADE: Final = frozenset({"display_name", "filename", "inode"})
#: dfdatetime classes that are no date (psort's json of a ``Not set`` time and the like).
_SEMANTIC: Final = frozenset({"NotSet", "Never", "InvalidTime", "SemanticTime"})


def parse_json_lines(ctx: ParseContext, sink: RowSink) -> None:
    """Every line of a psort json_line file as one row; bad lines are warnings."""
    out = Output(ctx, sink)
    ctx.stats.engine = "psort json_line"
    line = 0
    try:
        with ctx.path.open("rb") as stream:
            for line, raw in iter_lines(stream, ctx):
                if line == 1:
                    raw = raw.removeprefix(BOM)
                if raw.strip():
                    _line(out, line, raw)
    except OSError as exc:
        out.skip("read-error", f"stopped after line {line}: {type(exc).__name__}: {exc}")
    out.finish("their events are 'Not a time' rows")


def _line(out: Output, number: int, raw: bytes) -> None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not raw.endswith(b"\n"):
            out.skip("truncated", f"line {number}: the last line is cut short: {exc}")
        else:
            out.skip("bad-line", f"line {number}: not JSON: {exc}")
        return
    if type(obj) is not dict or obj.get("__container_type__") != "event":
        what = f"a JSON {type(obj).__name__}" if type(obj) is not dict else "an object"
        out.skip("bad-line", f"line {number}: {what}, not a plaso event")
        return
    event(out, obj, f"line:{number}")


def event(out: Output, obj: dict[str, Any], record: str) -> None:
    """One plaso event as psort's JSON has it (json_line, or an entry of ``-o json``)."""
    chain = str(obj.get("parser") or "-")
    data_type = str(obj.get("data_type") or "")
    values: dict[str, str] = {}
    for name, value in obj.items():
        if name in _NOT_FIELDS or value is None or (name in _PSORT_MADE and value == "-"):
            continue
        if name == "tag":
            labels = labels_text(value.get("labels") if isinstance(value, dict) else value)
            if labels:
                values[name] = labels
        else:
            values[name] = rows.text(value)
    values["parser"] = chain
    desc = str(obj.get("timestamp_desc") or NOT_A_TIME)
    ts = _ts(out, obj, desc, data_type or chain)
    if not ts:
        ts, new_desc = out.not_a_time()
        if desc != NOT_A_TIME:
            values["timestamp_desc"] = desc
        desc = new_desc
    out.emit([(ts, desc, record)], chain, values, message_text(obj.get("message")))


def _ts(out: Output, obj: dict[str, Any], desc: str, name: str) -> str:
    """The event's time as ``ts``, or '' when it has none: a stored zero or a time out of
    range or unreadable (counted as times not used), plaso's ``Not a time`` placeholder
    or a semantic time (``Not set``: no time was ever there)."""
    micros = obj.get("timestamp")
    date_time = obj.get("date_time")
    date_time = date_time if isinstance(date_time, dict) else {}
    if date_time.get("__class_name__") in _SEMANTIC or (micros == 0 and desc == NOT_A_TIME):
        return ""
    if type(micros) is not int:
        out.unused[("unreadable", name)] += 1
        return ""
    if micros == 0 or date_time.get("timestamp") == 0:
        out.unused[("zero", name)] += 1
        return ""
    try:
        return rows.iso(micros)
    except (OverflowError, ValueError):
        out.unused[("range", name)] += 1
        return ""
