"""Sleuth Kit bodyfiles (TSK 3.x, what ``fls -m`` and ``ils -m`` write, mactime reads).

One line per file: ``MD5|name|inode|mode_as_string|UID|GID|size|atime|mtime|ctime|crtime``.
Each non-zero time is one event (``File Modified``, ``File Accessed``, ``File Changed``,
``File Created``) whose fields carry the whole line, so any one event rebuilds it; this is
the file-event convention ``irkit hash`` shares. Read line by line, so memory does not
grow with the file.

Tolerances, as plaso's bodyfile parser: ``#`` comments and blank lines are skipped; a name
holding ``|`` is re-joined from the middle fields; ``\\|``, ``\\\\`` and ``\\xNN`` in names
are unescaped (``\\xNN`` are bytes, then the name is decoded as UTF-8, invalid bytes kept
as ``\\xNN`` text); times may have a fraction (kept to the microsecond, cut not rounded);
``0`` is an unknown time or MD5; UID and GID may be empty; the mode may be ls style only
(``drwxrwxrwx``). A line whose four times are all 0 gives no event (mactime skips it too):
it is counted in ``skipped_records`` with no warning. A line that cannot be read is a
named ``bad-line`` warning (the first 100 of a file; then one count) and is skipped.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Final

import orjson

from irkit.model import MAX_MESSAGE, one_line
from irkit.sources.base import ParseContext, Row, RowSink

#: The event of each time, in MACB order: (field, ts_desc, event_id).
TIMES: Final = (
    ("mtime", "File Modified", "m"),
    ("atime", "File Accessed", "a"),
    ("ctime", "File Changed", "c"),
    ("btime", "File Created", "b"),
)
TS_DESCS: Final = tuple(desc for _, desc, _ in TIMES)
#: The longest message body after a ts_desc that one_line leaves whole.
_MAX_BODY: Final = MAX_MESSAGE - max(len(desc) for desc in TS_DESCS)
ARTIFACT: Final = "bodyfile"
FIELD_COUNT: Final = 11
#: A line longer than this is not a bodyfile line (a path is at most a few KiB).
MAX_LINE: Final = 1 << 20
#: Named bad-line warnings per file; past this, one warning counts the rest.
MAX_LINE_WARNINGS: Final = 100
#: Data lines that must all look right for a file to be recognised.
SNIFF_LINES: Final = 3

_MD5: Final = re.compile(rb"[0-9a-fA-F]{32}|0")
# TSK's `<name type>/<meta type><permissions>` (r/rrwxr-xr-x, d/d---------, -/rrw-------,
# V/V---------), or an ls mode alone (drwxrwxrwx, as some writers put it).
_MODE: Final = re.compile(rb"[-a-zA-Z]/[-a-zA-Z?][-rwxsStT]{9}|[-a-zA-Z?][-rwxsStT]{9}")
_TIME: Final = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?")
_ESCAPE: Final = re.compile(rb"\\(\\|\||x[0-9a-fA-F]{2})")
_UTF8_BOM: Final = b"\xef\xbb\xbf"

# TSK meta type letter <-> the first letter of an ls mode (stat.filemode()).
_META_TO_LS: Final = {"r": "-", "-": "?"}
_LS_TO_META: Final = {"-": "r", "?": "-"}
# The first letter of an ls mode -> TSK name type letter (when the line has no name type).
_LS_TO_TYPE: Final = {"-": "r", "?": "-"}

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class BadLineError(ValueError):
    """A bodyfile line that cannot be read; the message says why."""


def ls_mode(mode_as_string: str) -> tuple[str, str]:
    """(type letter, ls mode) from TSK's ``r/rrwxr-xr-x`` (or an ls mode alone)."""
    if len(mode_as_string) == 12 and mode_as_string[1] == "/":
        name_type, meta = mode_as_string[0], mode_as_string[2:]
        return name_type, _META_TO_LS.get(meta[0], meta[0]) + meta[1:]
    first = mode_as_string[0]
    return _LS_TO_TYPE.get(first, first), mode_as_string


def tsk_mode(file_type: str, mode: str) -> str:
    """TSK's ``mode_as_string`` from a type letter and an ls mode (inverse of ``ls_mode``)."""
    name_type = file_type[:1] or "-"
    if len(mode) != 10:
        return f"{name_type}/----------"
    return f"{name_type}/{_LS_TO_META.get(mode[0], mode[0])}{mode[1:]}"


@functools.lru_cache(maxsize=1 << 14)
def _day(days: int) -> str:
    return (_EPOCH + dt.timedelta(days=days)).date().isoformat()


def iso_time(text: str) -> str:
    """An epoch time (``1337961350``, ``1596091265.352146149``) as ISO 8601 UTC with µs;
    ``""`` for 0 (unknown). Digits past the microsecond are cut."""
    if text == "0":
        return ""
    if text.isdigit():
        seconds, micros = int(text), 0
    else:
        whole, _, frac = text.partition(".")
        seconds = int(whole)
        micros = int((frac + "000000")[:6]) if frac else 0
        if whole.startswith("-") and micros:
            seconds, micros = seconds - 1, 1_000_000 - micros
    if seconds == 0 and micros == 0:
        return ""
    try:
        second = _second(seconds)
    except (OverflowError, ValueError) as exc:
        raise BadLineError(f"time {text} is out of range") from exc
    return f"{second}.{micros:06d}+00:00"


@functools.lru_cache(maxsize=1 << 16)
def _second(seconds: int) -> str:
    # The lines of one bodyfile share few seconds (a file's four times are often one).
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{_day(days)}T{hours:02d}:{minutes:02d}:{secs:02d}"


def _unescape(raw: bytes) -> str:
    if b"\\" in raw:
        raw = _ESCAPE.sub(_unescape_one, raw)
    return raw.decode("utf-8", "backslashreplace")


def _unescape_one(match: re.Match[bytes]) -> bytes:
    token = match.group(1)
    if token[:1] == b"x":
        return bytes((int(token[1:], 16),))
    return token


def split_line(line: bytes) -> list[bytes]:
    """The 11 fields of a line; a name holding ``|`` is re-joined (plaso's rule)."""
    parts = line.split(b"|")
    if len(parts) < FIELD_COUNT:
        raise BadLineError(f"{len(parts)} '|'-separated fields, a bodyfile line has 11")
    if len(parts) > FIELD_COUNT:
        parts = [parts[0], b"|".join(parts[1:-9]), *parts[-9:]]
    return parts


def _check(parts: list[bytes]) -> None:
    """Raise BadLineError unless the fixed fields have bodyfile shapes."""
    md5, _, _, mode, uid, gid, size, *times = parts
    if not _MD5.fullmatch(md5):
        raise BadLineError("the MD5 field is neither 0 nor 32 hex digits")
    if not _MODE.fullmatch(mode):
        raise BadLineError("the mode field is not like r/rrwxr-xr-x")
    if not (uid.isdigit() or not uid) or not (gid.isdigit() or not gid):
        raise BadLineError("UID or GID is not a number")
    if not size.isdigit():
        raise BadLineError("the size is not a number")
    for value in times:
        if not (value.isdigit() or _TIME.fullmatch(value)):
            raise BadLineError("a time is not a number of seconds")


def looks_like_bodyfile(head: bytes) -> bool:
    """The recognition rule (docs/sources.md): the first data lines of the head (``#``
    comments and blank lines aside, at most 3, the last cut-off line ignored when the
    head fills the buffer) must each have at least 11 ``|``-separated fields, an MD5 of
    ``0`` or 32 hex digits, a TSK or ls mode string, numeric UID/GID (or empty), a
    numeric size and four numeric times. JSON (``{``, ``[``) and binary heads never match.
    """
    head = head.removeprefix(_UTF8_BOM)
    if not head or head[:1] in b"{[" or b"\x00" in head:
        return False
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines.pop()  # cut off by the head, or empty after the last newline
    seen = 0
    for raw in lines:
        line = raw.rstrip(b"\r")
        if not line.strip() or line.startswith(b"#"):
            continue
        try:
            _check(split_line(line))
        except BadLineError:
            return False
        seen += 1
        if seen >= SNIFF_LINES:
            break
    return seen > 0


def read_lines(handle: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(1-based line number, line without its end) for every line; ``None`` for a line
    longer than MAX_LINE, which is skipped without holding it in memory."""
    number = 0
    while True:
        line = handle.readline(MAX_LINE)
        if not line:
            return
        number += 1
        if not line.endswith(b"\n") and len(line) == MAX_LINE:
            while (rest := handle.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        if number == 1:
            line = line.removeprefix(_UTF8_BOM)
        yield number, line.rstrip(b"\r\n")


def file_fields(parts: list[bytes]) -> dict[str, str]:
    """The file-event fields of one split, checked line."""
    md5, name, inode, mode, uid, gid, size, atime, mtime, ctime, crtime = parts
    mode_text = mode.decode("ascii")
    file_type, ls = ls_mode(mode_text)
    target = ""
    if (file_type == "l" or ls[:1] == "l") and b" -> " in name:
        # Split before unescaping: a writer can keep a " -> " of the path apart as \x2d.
        name, _, link = name.partition(b" -> ")
        target = _unescape(link)
    path = _unescape(name)
    fields = {
        "path": path,
        "size": size.decode("ascii"),
        "mode": ls,
        "type": file_type,
        "uid": uid.decode("ascii"),
        "gid": gid.decode("ascii"),
        "inode": _unescape(inode),
        "md5": "" if md5 == b"0" else md5.decode("ascii").lower(),
        "sha1": "",
        "sha256": "",
        "mtime": iso_time(mtime.decode("ascii")),
        "atime": iso_time(atime.decode("ascii")),
        "ctime": iso_time(ctime.decode("ascii")),
        "btime": iso_time(crtime.decode("ascii")),
    }
    if target:
        fields["symlink_target"] = target
    return fields


def file_message(desc: str, fields: dict[str, str]) -> str:
    """``File Modified: /etc/passwd (1234 bytes, -rw-r--r--, uid 0)``, one line."""
    name = fields["path"]
    if fields.get("symlink_target"):
        name += " -> " + fields["symlink_target"]
    uid = fields["uid"] or "?"
    return one_line(f"{desc}: {name} ({fields['size']} bytes, {fields['mode']}, uid {uid})")


def file_rows(fields: dict[str, str], record: str, artifact: str = ARTIFACT) -> list[Row]:
    """One row per known time of a file (MACB order), per the file-event convention."""
    blob = orjson.dumps(fields)
    uid = fields["uid"]
    return [
        (ts, desc, artifact, "", uid, letter, file_message(desc, fields), blob, record)
        for key, desc, letter in TIMES
        if (ts := fields[key])
    ]


class _Columns:
    """A line's rows (``file_rows``' rows, the same values) appended to a spool's open
    columns, at most a batch's room at a time (``SpoolWriter.open_columns``)."""

    def __init__(self, sink: Any) -> None:
        self.open_columns = sink.open_columns
        self.grown = sink.grown
        self.columns, self.room = self.open_columns()
        self.pending = 0

    def add(self, fields: dict[str, str], record: str) -> int:
        """Append the rows of one line's ``fields``; returns how many."""
        times = [(ts, desc, letter) for key, desc, letter in TIMES if (ts := fields[key])]
        count = len(times)
        if not count:
            return 0
        if self.room - self.pending < len(TIMES):  # a batch is full: the spool takes it
            self.close()
            self.columns, self.room = self.open_columns()
        name = fields["path"]
        if fields.get("symlink_target"):
            name += " -> " + fields["symlink_target"]
        body = f": {name} ({fields['size']} bytes, {fields['mode']}, uid {fields['uid'] or '?'})"
        plain = body.isprintable() and len(body) <= _MAX_BODY
        uid = fields["uid"]
        ts, ts_desc, artifact, host, user, event_id, message, blob, records = self.columns
        ts += [t for t, _, _ in times]
        ts_desc += [d for _, d, _ in times]
        event_id += [letter for _, _, letter in times]
        message += [d + body if plain else one_line(d + body) for _, d, _ in times]
        artifact += [ARTIFACT] * count
        host += [""] * count
        user += [uid] * count
        blob += [orjson.dumps(fields)] * count
        records += [record] * count
        self.pending += count
        return count

    def close(self) -> None:
        """Hand the rows appended so far to the spool."""
        if self.pending:
            self.grown(self.pending)
            self.pending = 0


class BodyfileSource:
    """Sleuth Kit 3.x bodyfiles, recognised by the shape of their first lines."""

    name: ClassVar[str] = "bodyfile"

    def matches(self, head: bytes, path: Path) -> bool:
        """See ``looks_like_bodyfile`` for the rule."""
        return looks_like_bodyfile(head)

    def parse(self, ctx: ParseContext, sink: RowSink) -> None:
        """One row per non-zero time of every line; bad lines are warned about and skipped.

        A sink with columns (``open_columns``, ``grown``: the spool) gets each line's
        rows appended column by column, a line's shared values computed once."""
        ctx.stats.engine = "bodyfile"
        stats = ctx.stats
        columns = _Columns(sink) if hasattr(sink, "open_columns") else None
        add = sink.add
        bad = 0
        with ctx.path.open("rb") as handle:
            for number, line in read_lines(handle):
                try:
                    if line is None:
                        raise BadLineError(f"longer than {MAX_LINE:,} bytes")
                    if not line.strip() or line.startswith(b"#"):
                        continue
                    parts = split_line(line)
                    _check(parts)
                    fields = file_fields(parts)
                except BadLineError as exc:
                    bad += 1
                    stats.skipped_records += 1
                    stats.status = "partial"
                    if bad <= MAX_LINE_WARNINGS:
                        ctx.warn("bad-line", f"line {number}: {exc}; line skipped")
                    continue
                if columns is not None:
                    count = columns.add(fields, str(number))
                    if not count:
                        stats.skipped_records += 1  # no time at all: no event, as mactime
                    stats.records += count
                    continue
                rows = file_rows(fields, str(number))
                if not rows:
                    stats.skipped_records += 1  # no time at all: no event, as mactime
                    continue
                for row in rows:
                    add(row)
                stats.records += len(rows)
        if columns is not None:
            columns.close()
        if bad > MAX_LINE_WARNINGS:
            ctx.warn(
                "bad-line",
                f"{bad - MAX_LINE_WARNINGS:,} more bad lines not listed ({bad:,} in all)",
            )
