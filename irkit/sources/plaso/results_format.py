"""Recognising plaso's own results by content: a storage file (``.plaso``), psort's
``json_line``, ``l2tcsv`` and ``dynamic`` outputs.

Only the standard library and orjson: ``matches`` must stay cheap and never import plaso.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Final

import orjson

BOM: Final = b"\xef\xbb\xbf"
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
#: Tables of plaso's storage as its SQLite schema (page 1) names them: a copy cut short
#: still shows them, and is then the storage source's warning, not an unknown database.
_SCHEMA: Final = (
    b"CREATE TABLE metadata (key TEXT, value TEXT)",
    b"CREATE TABLE event_data (",
    b"CREATE TABLE event (",
)
#: psort's header lines.
L2TCSV: Final = (
    *("date", "time", "timezone", "MACB", "source", "sourcetype", "type", "user", "host"),
    *("short", "desc", "version", "filename", "inode", "notes", "format", "extra"),
)
DYNAMIC: Final = (
    *("datetime", "timestamp_desc", "source", "source_long", "message", "parser"),
    *("display_name", "tag"),
)
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: The first line is read this far to recognise a file.
_FIRST_LINE: Final = 1 << 20


def first_line(head: bytes, path: Path) -> bytes:
    """The file's first line without its end or a UTF-8 BOM: from ``head``, or read on
    (1 MiB at most) when it is longer."""
    text = head.removeprefix(BOM)
    end = text.find(b"\n")
    if end < 0:
        try:
            with path.open("rb") as handle:
                text = handle.readline(_FIRST_LINE).removeprefix(BOM)
        except OSError:
            pass
        end = text.find(b"\n")
    return (text[:end] if end >= 0 else text).removesuffix(b"\r")


def is_storage(head: bytes, path: Path) -> bool:
    """An SQLite database with plaso's storage tables (``metadata`` with a
    ``format_version``, ``event``, ``event_data``)."""
    if not head.startswith(SQLITE_MAGIC):
        return False
    return all(table in head for table in _SCHEMA) or storage_metadata(path) is not None


def storage_metadata(path: Path) -> dict[str, str] | None:
    """The ``metadata`` table of a plaso storage file (``format_version``…), or None when
    the file is no SQLite database with plaso's tables. Read-only: the evidence is neither
    locked nor changed."""
    try:
        uri = f"{path.absolute().as_uri()}?mode=ro&immutable=1"
        connection = sqlite3.connect(uri, uri=True)
        try:
            tables = {
                str(name)
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            if not {"metadata", "event", "event_data"} <= tables:
                return None
            values = {
                str(key): str(value)
                for key, value in connection.execute("SELECT key, value FROM metadata")
            }
        finally:
            connection.close()
    except (sqlite3.Error, OSError, ValueError):
        return None
    return values if "format_version" in values else None


def cut_short(path: Path) -> str:
    """'the file has N bytes, its header says M' when it is shorter than its SQLite header
    says (a truncated copy), else ''."""
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
        size = path.stat().st_size
    except OSError:
        return ""
    if len(header) < 100 or header[24:28] != header[92:96]:  # the size field is stale
        return ""
    page = int.from_bytes(header[16:18], "big")
    declared = (65536 if page == 1 else page) * int.from_bytes(header[28:32], "big")
    if size < declared:
        return f"the file has {size:,} bytes, its SQLite header says {declared:,}"
    return ""


def is_json_event(line: bytes) -> bool:
    """True for a line psort's json_line module writes: a plaso event object."""
    if not line.startswith(b"{"):
        return False
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return (
        type(obj) is dict
        and obj.get("__container_type__") == "event"
        and obj.get("__type__") == "AttributeContainer"
        and "timestamp" in obj
    )


def csv_shape(line: bytes) -> str | None:
    """``l2tcsv`` or ``dynamic`` for psort's header line of that format, else None.

    l2tcsv's 17 columns are fixed. dynamic's are chosen (``--fields``,
    ``--additional_fields``): ``datetime,timestamp_desc`` first, ``message`` and
    ``parser`` among them (irkit's and Timesketch's CSV have no ``parser``)."""
    try:
        names = tuple(line.removeprefix(BOM).decode("ascii").split(","))
    except UnicodeDecodeError:
        return None
    if names == L2TCSV:
        return "l2tcsv"
    if (
        names[:2] == DYNAMIC[:2]
        and {"message", "parser"} <= set(names)
        and all(_NAME.match(name) for name in names)
        and len(set(names)) == len(names)
    ):
        return "dynamic"
    return None
