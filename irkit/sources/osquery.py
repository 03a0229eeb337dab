"""osquery: results logs (event, batch and snapshot lines), status logs, ``osqueryi --json``.

Every shape is recognised by content, plain or compressed (gzip, Zstandard: osquery's
``--logger_rotate`` writes ``.zst``), and read as a stream: line by line for the logs,
row object by row object for an ``osqueryi --json`` array. One row of a query result is one
event; time columns named in ``artifacts/osquery/time_columns.yaml`` add events of their
own. docs/sources.md documents the mapping.

This module reads; its parts live beside it: ``osquery_format`` (recognising, opening),
``osquery_stream`` (lines and array rows), ``osquery_values`` (values and times),
``osquery_tables`` (the table catalog) and ``osquery_glog`` (glog status files).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import IO, Any, ClassVar, Final

import orjson

from irkit.model import one_line
from irkit.sources.base import ParseContext, RowSink
from irkit.sources.osquery_format import HEAD, open_text_stream, plain_head, read_errors, shape_of
from irkit.sources.osquery_glog import STATUS_ARTIFACT, GlogReader
from irkit.sources.osquery_stream import iter_array, iter_lines, mark_partial, skip_record
from irkit.sources.osquery_tables import TableCatalog, load_tables, short_query
from irkit.sources.osquery_values import EPOCH, date_micros, epoch_micros, iso, line_time, text

#: ``short_query`` is also what irkit.detect.analytics uses to name a query.
__all__ = ["OsquerySource", "short_query"]

SEVERITIES: Final = {"0": "INFO", "1": "WARNING", "2": "ERROR", "3": "FATAL"}
#: Header keys of a results line; any other top-level key is a top-level decoration.
HEADER_KEYS: Final = frozenset(
    {"name", "hostIdentifier", "hostname", "calendarTime", "unixTime", "epoch", "counter"}
    | {"numerics", "decorations", "columns", "action", "diffResults", "snapshot"}
)
#: Decorations that name the host when the line has no ``hostIdentifier``, best first.
HOST_DECORATIONS: Final = (
    "hostname",
    "computer_name",
    "local_hostname",
    "fqdn",
    "host_uuid",
    "uuid",
    "hardware_serial",
)
#: Columns, then decorations, that name the user of a row, best first.
USER_COLUMNS: Final = ("username", "user")


def file_time(path: Path) -> int:
    """The file's modification time (the link itself, not followed) in microseconds."""
    return path.lstat().st_mtime_ns // 1000


class OsquerySource:
    """osquery results logs, status logs and ``osqueryi --json`` output, plain or compressed."""

    name: ClassVar[str] = "osquery"

    def matches(self, head: bytes, path: Path) -> bool:
        """True for the shapes osquery writes (see ``shape_of``), after decompression."""
        first = head[:1]
        if first not in (b"{", b"[", b"\xef", b"\x1f", b"\x28", b" ", b"\n", b"\r", b"\t") and (
            first not in (b"I", b"W", b"E", b"F", b"L")
        ):
            return False
        plain = plain_head(head, path)
        return shape_of(plain, cut=len(plain) >= HEAD) is not None

    def parse(self, ctx: ParseContext, sink: RowSink) -> None:
        """Parse every line (or array row) into rows; bad parts are warnings."""
        with ctx.path.open("rb") as handle:
            plain = plain_head(handle.read(HEAD), ctx.path)
        shape = shape_of(plain, cut=len(plain) >= HEAD) or "lines"
        parser = _Parser(ctx, sink, load_tables())
        try:
            with open_text_stream(ctx.path) as stream:
                if shape == "array":
                    parser.array(stream)
                elif shape == "glog":
                    parser.glog(stream)
                else:
                    parser.lines(stream)
        except read_errors() as exc:
            ctx.warn("read-error", f"stopped after line {parser.line}: {type(exc).__name__}: {exc}")
            mark_partial(ctx)
        parser.finish()


class _Parser:
    """The per-file state of one parse."""

    def __init__(self, ctx: ParseContext, sink: RowSink, tables: TableCatalog) -> None:
        self.ctx = ctx
        self.add = sink.add
        self.tables = tables
        self.line = 0
        self.untimed = 0
        self._mtime: int | None = None
        self._glog: GlogReader | None = None

    def mtime(self) -> int:
        """The file's modification time, read once."""
        if self._mtime is None:
            self._mtime = file_time(self.ctx.path)
        return self._mtime

    def finish(self) -> None:
        """Flush a pending status line; report rows that had no time of their own."""
        if self._glog is not None:
            self._glog.flush()
        if self.untimed:
            self.ctx.warn(
                "no-time",
                f"{self.untimed} rows have no valid unixTime or calendarTime: "
                "timed by the file's modification time",
            )

    # results and JSON status lines ---------------------------------------------------------

    def lines(self, stream: IO[bytes]) -> None:
        """One JSON object per line."""
        ctx = self.ctx
        for number, raw in iter_lines(stream, ctx):
            self.line = number
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                obj = self._repair(number, raw, exc)
                if obj is None:
                    continue
            if type(obj) is not dict:
                skip_record(
                    ctx, "bad-shape", f"line {number}: a JSON {type(obj).__name__}, not an object"
                )
            elif "columns" in obj or "diffResults" in obj or "snapshot" in obj:
                self.results(number, obj)
            elif "severity" in obj and "message" in obj:
                self.status(number, obj)
            else:
                skip_record(ctx, "bad-shape", f"line {number}: neither a query result nor a status")

    def _repair(self, number: int, raw: bytes, exc: Exception) -> Any:
        """A line that is JSON once invalid UTF-8 is replaced is kept (with a warning)."""
        try:
            obj = orjson.loads(raw.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            truncated = not raw.endswith(b"\n")
            kind = "truncated" if truncated else "bad-line"
            what = "the last line is cut short" if truncated else "not JSON"
            skip_record(self.ctx, kind, f"line {number}: {what}: {exc}")
            return None
        self.ctx.warn("bad-utf8", f"line {number}: invalid UTF-8 replaced by U+FFFD")
        return obj

    def header(self, obj: dict[str, Any]) -> tuple[dict[str, str], str, str]:
        """A results line's own fields (header and decorations), host and user decoration."""
        base: dict[str, str] = {}
        decorations: dict[str, str] = {}
        for key, value in obj.items():
            if key in HEADER_KEYS:
                if key == "decorations" and type(value) is dict:
                    for dkey, dvalue in value.items():
                        decorations[dkey] = text(dvalue)
                elif key not in ("columns", "diffResults", "snapshot", "decorations"):
                    base["osquery." + key] = text(value)
            else:  # --decorations_top_level
                decorations[key] = text(value)
        host = base.get("osquery.hostIdentifier") or base.get("osquery.hostname") or ""
        if not host:
            host = next((decorations[k] for k in HOST_DECORATIONS if decorations.get(k)), "")
        for key, value in decorations.items():
            base["decorations." + key] = value
        return base, host, decorations.get("username", "")

    def results(self, number: int, obj: dict[str, Any]) -> None:
        """Rows of one results line: event, batch or snapshot format."""
        ctx = self.ctx
        if "columns" in obj:
            action = obj.get("action")
            columns = obj["columns"]
            if type(columns) is not dict or type(action) is not str:
                skip_record(
                    ctx, "bad-shape", f"line {number}: 'columns' without an object or 'action'"
                )
                return
            rows: list[tuple[str, dict[str, Any], str]] = [(action, columns, str(number))]
        else:
            rows = []
            if "diffResults" in obj:
                diff = obj["diffResults"]
                pairs = (
                    [(a, diff.get(a)) for a in ("added", "removed")] if type(diff) is dict else []
                )
            else:
                pairs = [("snapshot", obj["snapshot"])]
            for action, items in pairs:
                if items is None:
                    continue
                if type(items) is not list:
                    skip_record(ctx, "bad-shape", f"line {number}: {action} is not a list of rows")
                    continue
                for item in items:
                    index = len(rows) + 1
                    if type(item) is dict:
                        rows.append((action, item, f"{number}#{index}"))
                    else:
                        rows.append(("", {}, ""))
                        skip_record(
                            ctx, "bad-shape", f"line {number}: row {index} is not an object"
                        )
        base, host, deco_user = self.header(obj)
        name = base.get("osquery.name", "")
        micros = line_time(obj)
        suffix = ""
        if micros is None:
            micros, suffix = self.mtime(), " (file modified time)"
            self.untimed += sum(1 for r in rows if r[2])
        ts = iso(micros)
        for action, columns, record in rows:
            if record:
                self.row(
                    ts,
                    f"osquery {action}{suffix}",
                    name,
                    host,
                    deco_user,
                    action,
                    columns,
                    base,
                    record,
                )

    def row(
        self,
        ts: str,
        ts_desc: str,
        name: str,
        host: str,
        deco_user: str,
        action: str,
        columns: dict[str, Any],
        base: dict[str, str],
        record: str,
    ) -> None:
        """One query-result row, and the extra events of its time columns."""
        cols = {k: v if type(v) is str else text(v) for k, v in columns.items()}
        short = short_query(name)
        resolved = self.tables.resolve(short, tuple(cols))
        user = next((cols[k] for k in USER_COLUMNS if cols.get(k)), deco_user)
        shown = _shown(cols, resolved.message)
        fields = {**cols, **base, "osquery.action": action}
        ctx = self.ctx
        artifact = name or short
        message = one_line(f"{short} {action}: {shown}" if shown else f"{short} {action}")
        self.add((ts, ts_desc, artifact, host, user, action, message, orjson.dumps(fields), record))
        ctx.stats.records += 1
        for column, desc, fmt in resolved.times:
            value = cols.get(column, "")
            micros = epoch_micros(value) if fmt == "epoch" else date_micros(value)
            if micros is None:
                continue
            extra = {**fields, "osquery.time_column": column}
            message = one_line(f"{desc} ({short}.{column}): {shown}")
            self.add(
                (
                    iso(micros),
                    desc,
                    artifact,
                    host,
                    user,
                    action,
                    message,
                    orjson.dumps(extra),
                    record,
                )
            )
            ctx.stats.records += 1

    def status(self, number: int, obj: dict[str, Any]) -> None:
        """A JSON status line (tls/kafka/… logger plugins): one event."""
        base, host, _ = self.header(obj)
        for key in ("severity", "filename", "line", "message", "version"):
            if key in obj:
                base[key] = base.pop("decorations." + key, text(obj[key]))
        micros = line_time(obj)
        ts_desc = "osquery status"
        if micros is None:
            micros, ts_desc = self.mtime(), "osquery status (file modified time)"
            self.untimed += 1
        severity = SEVERITIES.get(base.get("severity", ""), base.get("severity", ""))
        where = f"{base.get('filename', '')}:{base.get('line', '')}"
        message = one_line(f"{severity} {where}] {base.get('message', '')}")
        self.add(
            (
                iso(micros),
                ts_desc,
                STATUS_ARTIFACT,
                host,
                "",
                severity,
                message,
                orjson.dumps(base),
                str(number),
            )
        )
        self.ctx.stats.records += 1

    # glog status files -------------------------------------------------------------------------

    def glog(self, stream: IO[bytes]) -> None:
        """glog text (``osqueryd.INFO``…): one event per log line, continuations appended."""
        self._glog = GlogReader(self.ctx, self.add, self, self.mtime)
        self._glog.read(stream)

    # osqueryi --json ------------------------------------------------------------------------------

    def array(self, stream: IO[bytes]) -> None:
        """``osqueryi --json``: a JSON array of row objects, read one object at a time."""
        ctx = self.ctx
        ts, ts_desc = self._collected()
        name = _stem(ctx.path)
        base = {"osquery.name": name}
        for number, index, item in iter_array(stream, ctx, self):
            record = f"{number}#{index}"
            if type(item) is not dict:
                skip_record(ctx, "bad-shape", f"line {number}: row {index} is not an object")
                continue
            self.row(ts, ts_desc, name, "", "", "snapshot", item, base, record)

    def _collected(self) -> tuple[str, str]:
        """The collection time (from the manifest via ``ctx.collected_at``), else the mtime."""
        given = self.ctx.collected_at
        if given:
            try:
                when = dt.datetime.fromisoformat(given.replace("Z", "+00:00"))
                if when.tzinfo is None:
                    when = when.replace(tzinfo=dt.UTC)
                return iso((when - EPOCH) // dt.timedelta(microseconds=1)), "osquery collected"
            except ValueError:
                self.ctx.warn("bad-collected-at", f"collection time {given!r} is not ISO 8601")
        return iso(self.mtime()), "osquery collected (file modified time)"


def _shown(cols: dict[str, str], message: tuple[str, ...]) -> str:
    """The telling columns as ``key=value`` (the first four non-empty when none is named)."""
    if message:
        pairs = [f"{k}={v}" for k in message if (v := cols.get(k, "").strip())]
        if pairs:
            return " ".join(pairs)
    pairs = []
    for key, value in cols.items():
        if value.strip():
            pairs.append(f"{key}={value.strip()}")
            if len(pairs) == 4:
                break
    return " ".join(pairs)


def _stem(path: Path) -> str:
    """A file name without its extensions: ``processes.json.gz`` -> ``processes``."""
    name = path.name
    for suffix in (".gz", ".zst", ".json", ".txt", ".out"):
        name = name.removesuffix(suffix)
    return name or path.name
