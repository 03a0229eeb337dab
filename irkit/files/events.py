"""What a walked entry becomes: its flat fields, its file-time events, its digest-list line.

Every entry (file, directory, link, FIFO…) gives one event per known time (``File
Modified``, ``File Accessed``, ``File Changed``, ``File Created``), with its metadata
and digests in ``fields``: the same convention as the bodyfile source. The same fields
feed the bodyfile writer (``irkit hash --bodyfile``, the folder listings of
``irkit collect``).
"""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING, Final

import orjson

from irkit.files.fileio import iso_ns
from irkit.files.walk import FileEntry

if TYPE_CHECKING:
    from irkit.sources.base import Row

#: The time fields of a file event, its ts_desc and its MACB letter.
TIMES: Final = (
    ("mtime", "File Modified", "m"),
    ("atime", "File Accessed", "a"),
    ("ctime", "File Changed", "c"),
    ("btime", "File Created", "b"),
)


def entry_fields(entry: FileEntry) -> dict[str, str]:
    """A file's metadata and digests as the flat text fields every file event carries."""
    info = entry.info
    # A file's times are often equal (never touched since written): format each once.
    mtime = iso_ns(info.st_mtime_ns)
    atime = mtime if info.st_atime_ns == info.st_mtime_ns else iso_ns(info.st_atime_ns)
    ctime = mtime if info.st_ctime_ns == info.st_mtime_ns else iso_ns(info.st_ctime_ns)
    fields = {
        "path": entry.path,
        "size": str(info.st_size),
        "mode": stat.filemode(info.st_mode),
        "type": entry.type,
        "uid": str(info.st_uid),
        "gid": str(info.st_gid),
        "inode": str(info.st_ino),
        "md5": entry.digests.get("md5", ""),
        "sha1": entry.digests.get("sha1", ""),
        "sha256": entry.digests.get("sha256", ""),
        "mtime": mtime,
        "atime": atime,
        "ctime": ctime,
        "btime": entry.btime,
        "hash_status": entry.status,
    }
    if entry.target:
        fields["symlink_target"] = entry.target
    if entry.note:
        fields["hash_note"] = entry.note
    return fields


def entry_rows(entry: FileEntry) -> list[Row]:
    """One event per known time of the entry (the bodyfile convention)."""
    return field_rows(entry_fields(entry), entry.root, entry.path)


def field_rows(fields: dict[str, str], artifact: str, record: str) -> list[Row]:
    """One event per known time in a file's ``fields`` (``entry_fields``' names): the
    rows of a file on disk and of one inside an image (``irkit.files.vfs``) alike."""
    from irkit.model import one_line

    blob = orjson.dumps(fields)
    what = f"{fields['size']} bytes, {fields['mode']}, uid {fields['uid']}"
    if fields["sha256"]:
        what += f", sha256 {fields['sha256'][:16]}…"
    rows: list[Row] = []
    for key, desc, letter in TIMES:
        ts = fields[key]
        if not ts:
            continue
        message = one_line(f"{desc}: {fields['path']} ({what})")
        rows.append((ts, desc, artifact, "", fields["uid"], letter, message, blob, record))
    return rows


def digest_line(entry: FileEntry, algorithm: str) -> str:
    """A ``sha256sum``-style line (GNU escaping for names with ``\\`` or a newline)."""
    name = entry.path
    digest = entry.digests[algorithm]
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"
