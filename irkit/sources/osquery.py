"""osquery: results logs (event, batch and snapshot lines), status logs, ``osqueryi --json``.

Every shape is recognised by content, plain or compressed (gzip, Zstandard: osquery's
``--logger_rotate`` writes ``.zst``), and read as a stream: line by line for the logs,
row object by row object for an ``osqueryi --json`` array. One row of a query result is one
event; time columns named in ``artifacts/osquery/time_columns.yaml`` add events of their
own. docs/sources.md documents the mapping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fnmatch
import functools
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, ClassVar, Final

import orjson

from irkit.artifacts import artifacts_dir
from irkit.errors import IrkitError
from irkit.messages import one_line
from irkit.sources.base import ParseContext, RowSink

HEAD: Final = 4096
GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
#: A compressed file's head is decompressed from at most this many bytes to recognise it.
SNIFF_INPUT: Final = 1 << 20
#: A line (or an osqueryi row object) longer than this is skipped with a warning.
MAX_LINE: Final = 64 << 20
STATUS_ARTIFACT: Final = "osquery status"
SEVERITIES: Final = {"0": "INFO", "1": "WARNING", "2": "ERROR", "3": "FATAL"}
GLOG_SEVERITIES: Final = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "FATAL"}
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
#: Valid event times: 1980-01-01 to the end of 9999, in microseconds since 1970.
MIN_MICROS: Final = 315_532_800 * 1_000_000
MAX_MICROS: Final = 253_402_300_799 * 1_000_000
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MONTHS: Final = {
    "JanFebMarAprMayJunJulAugSepOctNovDec"[i * 3 : i * 3 + 3]: i + 1 for i in range(12)
}

_RESULTS_BATCH = re.compile(rb'^\{\s*"(?:snapshot|diffResults)"\s*:\s*[\[{]')
_KEY = {
    k: re.compile(rb'"' + k.encode() + rb'"\s*:')
    for k in (
        "name",
        "unixTime",
        "calendarTime",
        "columns",
        "action",
        "severity",
        "filename",
        "line",
        "message",
    )
}
_GLOG = re.compile(
    r"^([IWEF])(\d{4})?(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s+(\d+)\s+([^\s:\]]+):(\d+)\] ?"
)
_GLOG_BYTES = re.compile(rb"^[IWEF]\d{4}(?:\d{4})? \d\d:\d\d:\d\d\.\d{6}\s+\d+\s+[^\s:\]]+:\d+\]")
_GLOG_CREATED = re.compile(r"^Log file created at: (\d{4})/(\d\d)/(\d\d)")
_GLOG_MACHINE = "Running on machine: "
_GLOG_HEADER = (
    "Log file created at:",
    "Running on machine:",
    "Running duration",
    "Log line format:",
)
_STR = rb'"(?:[^"\\]|\\.)*"'
_PAIR = re.compile(rb"\s*" + _STR + rb"\s*:\s*" + _STR + rb"\s*([,}])")
_PAIR_PREFIX = re.compile(rb'\s*(?:"(?:[^"\\]|\\.)*(?:"\s*(?::\s*(?:"(?:[^"\\]|\\.)*)?)?)?)?\\?\Z')
_PACK = re.compile(r"^pack(?:_[^_]+_|/[^/]+/)(?=.)")


# --- recognising ---------------------------------------------------------------------------


def plain_head(head: bytes, path: Path | None = None) -> bytes:
    """The first bytes of the file's text: decompressed when it is gzip or Zstandard.

    Zstandard emits nothing until a whole block (up to 128 KiB) is in, so a compressed
    file's head is decompressed from up to 1 MiB read from ``path`` when given.
    """
    if not (head.startswith(GZIP_MAGIC) or head.startswith(ZSTD_MAGIC)):
        return head
    data = head
    if path is not None:
        with contextlib.suppress(OSError), path.open("rb") as handle:
            data = handle.read(SNIFF_INPUT)
    try:
        if data.startswith(GZIP_MAGIC):
            return zlib.decompressobj(31).decompress(data, HEAD)
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        return reader.read(HEAD)
    except Exception:  # corrupt or not really compressed: not ours
        return b""


def _first_line(text: bytes) -> bytes:
    text = text.removeprefix(b"\xef\xbb\xbf").lstrip()
    return text.split(b"\n", 1)[0]


def _is_row_array(text: bytes, cut: bool) -> bool:
    """An ``osqueryi --json`` array: ``[`` then an object of string values only.

    The first object must be whole within the head, or, when the head is cut inside it,
    be a run of complete ``"key": "value"`` pairs followed by the start of another.
    """
    start = re.match(rb"\s*\[\s*\{", text)
    if start is None:
        return False
    pos, pairs = start.end(), 0
    while True:
        match = _PAIR.match(text, pos)
        if match is None:
            return cut and pairs > 0 and _PAIR_PREFIX.match(text, pos) is not None
        pairs += 1
        pos = match.end()
        if match.group(1) == b"}":
            return True


def shape_of(head: bytes, cut: bool = True) -> str | None:
    """``lines`` (results or JSON status lines), ``glog``, ``array``, or None."""
    text = head.removeprefix(b"\xef\xbb\xbf")
    line = _first_line(text)
    if line.startswith(b"{"):
        if _RESULTS_BATCH.match(line):
            return "lines"
        has = {k for k, rx in _KEY.items() if rx.search(line)}
        if "name" in has and has & {"unixTime", "calendarTime"} and has & {"columns", "action"}:
            return "lines"
        if {"severity", "filename", "line", "message"} <= has:
            return "lines"
        return None
    if line.startswith(b"["):
        return "array" if _is_row_array(text.lstrip(), cut) else None
    if b"osquery" in text.lower():
        for candidate in text.split(b"\n")[:8]:
            if _GLOG_BYTES.match(candidate):
                return "glog"
    return None


# --- tables: message columns and time columns, as data ---------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class TableSpec:
    """What irkit knows of one osquery table (an entry of time_columns.yaml)."""

    table: str
    queries: tuple[str, ...]
    signature: frozenset[str]
    message: tuple[str, ...]
    #: (column, ts_desc, format) for each time column.
    times: tuple[tuple[str, str, str], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """What applies to rows of one query with one set of columns."""

    message: tuple[str, ...]
    times: tuple[tuple[str, str, str], ...]


TIME_FORMATS: Final = ("epoch", "yyyymmdd")


class TableCatalog:
    """The table entries, and which apply to a query's rows (cached per query and columns)."""

    def __init__(self, specs: Iterable[TableSpec]) -> None:
        self.specs = tuple(specs)
        self._by_name: dict[str, tuple[TableSpec, ...]] = {}
        self._resolved: dict[tuple[str, tuple[str, ...]], Resolved] = {}

    @classmethod
    def from_file(cls, path: Path) -> TableCatalog:
        """Read and check the YAML; a malformed entry is an IrkitError naming it."""
        import yaml

        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise IrkitError(f"cannot read osquery tables {path}: {exc}") from exc
        tables = data.get("tables") if isinstance(data, dict) else None
        if not isinstance(tables, dict) or not tables:
            raise IrkitError(f"{path}: expected a mapping with a 'tables' mapping")
        return cls(_spec(path, str(name), entry) for name, entry in tables.items())

    def for_query(self, query: str) -> tuple[TableSpec, ...]:
        """Entries whose query globs match the short query name."""
        found = self._by_name.get(query)
        if found is None:
            low = query.lower()
            found = tuple(
                s for s in self.specs if any(fnmatch.fnmatchcase(low, g) for g in s.queries)
            )
            self._by_name[query] = found
        return found

    def resolve(self, query: str, columns: tuple[str, ...]) -> Resolved:
        """Message and time columns for a row of ``query`` with these ``columns``."""
        key = (query, columns)
        found = self._resolved.get(key)
        if found is not None:
            return found
        present = frozenset(columns)
        named = self.for_query(query)
        applying = [s for s in self.specs if s in named or (s.signature and s.signature <= present)]
        best: tuple[str, ...] = ()
        best_score = 0
        times: list[tuple[str, str, str]] = []
        for spec in applying:
            score = sum(1 for c in spec.message if c in present)
            if score > best_score:
                best, best_score = spec.message, score
            times += [t for t in spec.times if t[0] in present and t not in times]
        found = Resolved(best, tuple(times))
        if len(self._resolved) > 4096:  # bounded: a log of many odd column sets
            self._resolved.clear()
        self._resolved[key] = found
        return found


def _spec(path: Path, name: str, entry: Any) -> TableSpec:
    where = f"{path}: table {name!r}"
    if not isinstance(entry, dict):
        raise IrkitError(f"{where}: expected a mapping")
    unknown = set(entry) - {"queries", "signature", "message", "times"}
    if unknown:
        raise IrkitError(f"{where}: unknown keys {sorted(unknown)}")

    def names(key: str, required: bool) -> tuple[str, ...]:
        value = entry.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise IrkitError(f"{where}: {key!r} must be a list of names")
        if required and not value:
            raise IrkitError(f"{where}: {key!r} must not be empty")
        return tuple(value)

    times = []
    raw_times = entry.get("times") or {}
    if not isinstance(raw_times, dict):
        raise IrkitError(f"{where}: 'times' must map columns to descriptions")
    for column, value in raw_times.items():
        desc, fmt = (value, "epoch") if isinstance(value, str) else ("", "")
        if isinstance(value, dict):
            desc, fmt = str(value.get("desc") or ""), str(value.get("format") or "epoch")
        if not desc.strip() or fmt not in TIME_FORMATS:
            raise IrkitError(f"{where}: time column {column!r} needs a desc and a known format")
        times.append((str(column), desc, fmt))
    return TableSpec(
        table=name,
        queries=tuple(q.lower() for q in names("queries", True)),
        signature=frozenset(names("signature", False)),
        message=names("message", True),
        times=tuple(times),
    )


@functools.cache
def load_tables() -> TableCatalog:
    """The bundled table data, read once per process."""
    return TableCatalog.from_file(artifacts_dir() / "osquery" / "time_columns.yaml")


# --- values and times ---------------------------------------------------------------------------


def text(value: Any) -> str:
    """One JSON value as text, deterministically (``--logger_numerics`` numbers included)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int or kind is float:
        return repr(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def epoch_micros(value: Any) -> int | None:
    """Seconds since 1970 (int, float or their text) as microseconds; None if not a valid time."""
    if type(value) is int:
        micros = value * 1_000_000
    else:
        raw = value if isinstance(value, str) else text(value)
        raw = raw.strip()
        if raw.isdigit():
            micros = int(raw) * 1_000_000
        else:
            try:
                micros = int(Decimal(raw) * 1_000_000)
            except (InvalidOperation, ValueError, OverflowError):
                return None
    return micros if MIN_MICROS <= micros <= MAX_MICROS else None


def date_micros(value: Any) -> int | None:
    """A ``yyyymmdd`` date (Windows ``programs.install_date``) as microseconds at 00:00 UTC."""
    raw = text(value).strip()
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        day = dt.datetime(int(raw[:4]), int(raw[4:6]), int(raw[6:]), tzinfo=dt.UTC)
    except ValueError:
        return None
    micros = (day - EPOCH) // dt.timedelta(microseconds=1)
    return micros if micros >= MIN_MICROS else None


@functools.lru_cache(maxsize=4096)
def iso(micros: int) -> str:
    """Microseconds since 1970 as ISO 8601 UTC with microseconds (``…T17:57:15.000000+00:00``)."""
    return (EPOCH + dt.timedelta(microseconds=micros)).isoformat(timespec="microseconds")


def calendar_micros(value: Any) -> int | None:
    """osquery's ``calendarTime`` (``Thu Dec  7 12:21:20 2017 UTC``) as microseconds."""
    parts = text(value).split()
    if len(parts) == 6 and parts[5] == "UTC":
        parts = parts[:5]
    if len(parts) != 5 or parts[1] not in MONTHS:
        return None
    try:
        hour, minute, second = (int(x) for x in parts[3].split(":"))
        when = dt.datetime(
            int(parts[4]), MONTHS[parts[1]], int(parts[2]), hour, minute, second, tzinfo=dt.UTC
        )
    except ValueError:
        return None
    micros = (when - EPOCH) // dt.timedelta(microseconds=1)
    return micros if MIN_MICROS <= micros <= MAX_MICROS else None


def line_time(obj: dict[str, Any]) -> int | None:
    """A log line's time: ``unixTime``, else ``calendarTime`` (when unixTime is absent or 0)."""
    micros = epoch_micros(obj["unixTime"]) if "unixTime" in obj else None
    if micros is None and "calendarTime" in obj:
        micros = calendar_micros(obj["calendarTime"])
    return micros


def short_query(name: str) -> str:
    """The query name without its pack prefix: ``pack_it-compliance_mounts`` -> ``mounts``."""
    return _PACK.sub("", name, count=1)


# --- reading --------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_text_stream(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed as a stream when it is gzip or Zstandard."""
    with path.open("rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic.startswith(GZIP_MAGIC):
            import gzip

            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        elif magic == ZSTD_MAGIC:
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            with io.BufferedReader(reader, 1 << 20) as buffered:
                yield buffered
        else:
            yield raw


def read_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the (compressed) stream itself is broken."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
    with contextlib.suppress(ImportError):
        import zstandard

        errors += (zstandard.ZstdError,)
    return errors


def _partial(ctx: ParseContext) -> None:
    if ctx.stats.status == "ok":
        ctx.stats.status = "partial"


def _skip(ctx: ParseContext, kind: str, message: str) -> None:
    ctx.warn(kind, message)
    ctx.stats.skipped_records += 1
    _partial(ctx)


def iter_lines(stream: IO[bytes], ctx: ParseContext) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) for each line; an over-long line is a skipped warning."""
    number = 0
    while line := stream.readline(MAX_LINE):
        number += 1
        if len(line) >= MAX_LINE and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            _skip(ctx, "too-long", f"line {number} is longer than {MAX_LINE >> 20} MiB: skipped")
            continue
        yield number, line


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
            _partial(ctx)
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
        self._glog: list[Any] | None = None

    def mtime(self) -> int:
        """The file's modification time, read once."""
        if self._mtime is None:
            self._mtime = file_time(self.ctx.path)
        return self._mtime

    def finish(self) -> None:
        """Flush a pending status line; report rows that had no time of their own."""
        if self._glog is not None:
            self._emit_glog()
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
                _skip(
                    ctx, "bad-shape", f"line {number}: a JSON {type(obj).__name__}, not an object"
                )
            elif "columns" in obj or "diffResults" in obj or "snapshot" in obj:
                self.results(number, obj)
            elif "severity" in obj and "message" in obj:
                self.status(number, obj)
            else:
                _skip(ctx, "bad-shape", f"line {number}: neither a query result nor a status")

    def _repair(self, number: int, raw: bytes, exc: Exception) -> Any:
        """A line that is JSON once invalid UTF-8 is replaced is kept (with a warning)."""
        try:
            obj = orjson.loads(raw.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            truncated = not raw.endswith(b"\n")
            kind = "truncated" if truncated else "bad-line"
            what = "the last line is cut short" if truncated else "not JSON"
            _skip(self.ctx, kind, f"line {number}: {what}: {exc}")
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
                _skip(ctx, "bad-shape", f"line {number}: 'columns' without an object or 'action'")
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
                    _skip(ctx, "bad-shape", f"line {number}: {action} is not a list of rows")
                    continue
                for item in items:
                    index = len(rows) + 1
                    if type(item) is dict:
                        rows.append((action, item, f"{number}#{index}"))
                    else:
                        rows.append(("", {}, ""))
                        _skip(ctx, "bad-shape", f"line {number}: row {index} is not an object")
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
        year: int | None = None
        created_month = 0
        host = ""
        for number, raw in iter_lines(stream, self.ctx):
            self.line = number
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            match = _GLOG.match(line)
            if match is None:
                if number <= 8 and line.startswith(_GLOG_HEADER):
                    if found := _GLOG_CREATED.match(line):
                        year, created_month = int(found.group(1)), int(found.group(2))
                    elif line.startswith(_GLOG_MACHINE):
                        host = line.removeprefix(_GLOG_MACHINE).strip()
                elif self._glog is not None and len(self._glog[5]) < MAX_LINE:
                    self._glog[5] += "\n" + line
                continue
            if self._glog is not None:
                self._emit_glog()
            sev, yyyy, mm, dd, hh, mi, ss, us, thread, filename, lineno = match.groups()
            if yyyy:
                when_year = int(yyyy)
            elif year is not None:  # the header's year; a line in January after a December start
                when_year = year + (1 if int(mm) < created_month else 0)
            else:
                mtime = EPOCH + dt.timedelta(microseconds=self.mtime())
                when_year = mtime.year - (1 if int(mm) > mtime.month else 0)
            try:
                when = dt.datetime(
                    when_year, int(mm), int(dd), int(hh), int(mi), int(ss), int(us), tzinfo=dt.UTC
                )
            except ValueError:
                _skip(self.ctx, "bad-line", f"line {number}: invalid glog time {line[:22]!r}")
                continue
            fields = {
                "severity": GLOG_SEVERITIES[sev],
                "thread": thread,
                "filename": filename,
                "line": lineno,
                "glog_time": line[: match.end()].rstrip(),
            }
            self._glog = [when, host, fields, str(number), "", line[match.end() :]]

    def _emit_glog(self) -> None:
        assert self._glog is not None
        when, host, fields, record, _, message = self._glog
        self._glog = None
        fields["message"] = message
        severity = fields["severity"]
        micros = (when - EPOCH) // dt.timedelta(microseconds=1)
        self.add(
            (
                iso(micros),
                "osquery status (host local time)",
                STATUS_ARTIFACT,
                host,
                "",
                severity,
                one_line(f"{severity} {fields['filename']}:{fields['line']}] {message}"),
                orjson.dumps(fields),
                record,
            )
        )
        self.ctx.stats.records += 1

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
                _skip(ctx, "bad-shape", f"line {number}: row {index} is not an object")
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


_WS: Final = re.compile(r"[\s,]*")


def iter_array(
    stream: IO[bytes], ctx: ParseContext, state: _Parser
) -> Iterator[tuple[int, int, Any]]:
    """(line, 1-based index, value) for each element of a JSON array, with bounded memory.

    Elements are decoded one at a time from a sliding text window; an element longer than
    MAX_LINE, or one cut by the end of the file, ends the reading with a warning.
    """
    reader = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    decoder = json.JSONDecoder()
    buf, pos, line, index, eof = "", 0, 1, 0, False

    def more() -> bool:
        nonlocal buf, pos, eof
        chunk = reader.read(1 << 20)
        if not chunk:
            eof = True
            return False
        buf = buf[pos:] + chunk
        pos = 0
        return True

    def skip_ws() -> None:
        nonlocal pos, line
        while True:
            end = _WS.match(buf, pos).end()  # type: ignore[union-attr]
            line += buf.count("\n", pos, end)
            pos = end
            if pos < len(buf) or not more():
                return

    skip_ws()
    if buf[pos : pos + 1] != "[":
        _skip(ctx, "bad-shape", "line 1: not a JSON array")
        return
    pos += 1
    while True:
        skip_ws()
        state.line = line
        if pos >= len(buf):
            _skip(ctx, "truncated", f"line {line}: the array is not closed: the file is cut short")
            return
        if buf[pos] == "]":
            return
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if len(buf) - pos > MAX_LINE:
                    _skip(ctx, "too-long", f"line {line}: a row longer than {MAX_LINE >> 20} MiB")
                    return
                if eof or not more():
                    kind = "truncated" if exc.pos >= len(buf) - 1 else "bad-line"
                    _skip(ctx, kind, f"line {line}: row {index + 1} is not valid JSON: {exc.msg}")
                    return
        index += 1
        yield line, index, value
        line += buf.count("\n", pos, end)
        pos = end
