"""Sleuth Kit bodyfile (TSK 3.x): the file events of a timeline, one line per file.

File events are those of the ``bodyfile`` and ``file`` sources whose fields carry a
``path`` (the file-event convention, irkit/sources/bodyfile.py). A file's 1–4 events
(evidence + record) become one line ``MD5|name|inode|mode_as_string|UID|GID|size|atime|
mtime|ctime|crtime``; a time whose event is not in the selection is ``0``, as is an
unknown MD5. Times are epoch seconds, with a 6-digit fraction when the event has
microseconds (mactime reads it and shows whole seconds; plaso and irkit keep it). Other
events (EVTX…) are skipped and counted in ``skipped``.

Names are data: ``\\`` is written ``\\\\``, ``|`` is written ``\\x7c`` (mactime splits on
every ``|``, so ``\\|`` would shift its columns) and control, line-separator and
invisible format characters ``\\xNN`` per UTF-8 byte. irkit and plaso read all of these
back; mactime shows them as written.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final, TextIO

import orjson

from irkit.sources.bodyfile import TIMES, tsk_mode
from irkit.store.timeline import DEFAULT_FIELD_COLUMNS, ORDER, Selection

FILE_SOURCES: Final = ("bodyfile", "file")
FETCH: Final = 10_000

_NEEDS_ESCAPE: Final = re.compile(
    r"[\\|\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)
_MD5: Final = re.compile(r"[0-9a-fA-F]{32}")
_LS_MODE: Final = re.compile(r"[-a-zA-Z?][-rwxsStT]{9}")
_TYPE: Final = re.compile(r"[-a-zA-Z]")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8"))


def escape_name(text: str) -> str:
    """A name as one bodyfile field that irkit and plaso read back unchanged."""
    if text.isprintable() and "\\" not in text and "|" not in text:
        return text
    return _NEEDS_ESCAPE.sub(_escape_one, text)


def epoch_text(micros: int | None) -> str:
    """Epoch µs as bodyfile seconds: ``1337961350``, ``1596091265.352146``; 0 if unknown."""
    if micros is None:
        return "0"
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}.{frac:06d}" if frac else f"{sign}{whole}"


def _number(text: str) -> str:
    return text if text.isdigit() else "0"


def _micros(iso: str) -> int | None:
    """An ISO 8601 time as epoch µs; None when empty or unreadable."""
    if not iso:
        return None
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - _EPOCH) // dt.timedelta(microseconds=1)


def bodyfile_line(fields: Mapping[str, str], times: Mapping[str, int | None] | None = None) -> str:
    """One bodyfile line, ``\n`` included, from a file's fields (the file-event
    convention). ``times`` (epoch µs keyed ``mtime``/``atime``/``ctime``/``btime``; a
    missing key is 0) overrides the fields' own ISO times, which are used when it is None.
    """
    if times is None:
        times = {key: _micros(fields.get(key, "")) for key, _, _ in TIMES}
    path = escape_name(fields.get("path", ""))
    target = fields.get("symlink_target", "")
    if target:
        # The reader splits a link's name at the first " -> ": keep the path's own apart.
        path = path.replace(" -> ", " \\x2d> ") + " -> " + escape_name(target)
    md5 = fields.get("md5", "")
    mode = fields.get("mode", "")
    file_type = fields.get("type", "")
    return (
        "|".join(
            (
                md5.lower() if _MD5.fullmatch(md5) else "0",
                path,
                escape_name(fields.get("inode", "")) or "0",
                tsk_mode(
                    file_type if _TYPE.fullmatch(file_type) else "-",
                    mode if _LS_MODE.fullmatch(mode) else "",
                ),
                _number(fields.get("uid", "")),
                _number(fields.get("gid", "")),
                _number(fields.get("size", "")),
                epoch_text(times.get("atime")),
                epoch_text(times.get("mtime")),
                epoch_text(times.get("ctime")),
                epoch_text(times.get("btime")),
            )
        )
        + "\n"
    )


class BodyfileWriter:
    """File events as bodyfile lines; ``files``, ``events`` and ``skipped`` are counts
    of the last ``write``."""

    def __init__(self, field_columns: int = DEFAULT_FIELD_COLUMNS) -> None:
        self.field_columns = field_columns  # unused: a bodyfile has fixed columns
        self.files = 0
        self.events = 0
        self.skipped = 0

    def write(self, selection: Selection, out: TextIO) -> int:
        """Write one line per file of the selection; returns the line count."""
        source, params = _selected(selection)
        is_file = _is_file_condition()
        counts = selection.case.db.execute(
            f"SELECT count(*) FILTER (WHERE {is_file}), count(*) FROM {source}", params
        ).fetchone()
        self.events, total = (int(counts[0]), int(counts[1])) if counts else (0, 0)
        self.skipped = total - self.events
        self.files = 0
        for fields_json, *micros in _grouped(selection, source, params, is_file):
            fields: dict[str, str] = orjson.loads(fields_json) if fields_json else {}
            times = {key: value for (key, _, _), value in zip(TIMES, micros, strict=True)}
            out.write(bodyfile_line(fields, times))
            self.files += 1
        return self.files


def _selected(selection: Selection) -> tuple[str, list[Any]]:
    """The selection as an SQL table expression (the limit applies in timeline order)."""
    if selection.limit is None:
        return f"(SELECT * FROM events{selection.where})", list(selection.params)
    return (
        f"(SELECT * FROM events{selection.where} ORDER BY {ORDER} LIMIT {int(selection.limit)})",
        list(selection.params),
    )


def _is_file_condition() -> str:
    sources = ", ".join(f"'{s}'" for s in FILE_SOURCES)
    descs = ", ".join(f"'{desc}'" for _, desc, _ in TIMES)
    return (
        f"source IN ({sources}) AND ts_desc IN ({descs}) AND ts IS NOT NULL "
        "AND coalesce(json_extract_string(fields, '$.path'), '') <> ''"
    )


def _grouped(
    selection: Selection, source: str, params: list[Any], is_file: str
) -> Iterator[tuple[Any, ...]]:
    """(fields, mtime, atime, ctime, btime µs) per file, in evidence and record order."""
    times = ", ".join(
        f"max(epoch_us(ts)) FILTER (WHERE ts_desc = '{desc}')" for _, desc, _ in TIMES
    )
    cursor = selection.case.db.execute(
        f"""SELECT min(fields), {times}
            FROM {source} WHERE {is_file}
            GROUP BY evidence, record
            ORDER BY evidence, TRY_CAST(split_part(record, '#', 1) AS BIGINT) NULLS LAST,
                     record""",
        params,
    )
    while batch := cursor.fetchmany(FETCH):
        yield from batch
