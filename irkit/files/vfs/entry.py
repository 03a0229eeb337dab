"""One entry inside an image or archive, and the file events it gives.

An ``Entry`` is the image twin of ``irkit.files.walk.FileEntry``: ``entry_fields`` and
``entry_rows`` give the same flat fields and the same ``File Modified``/``Accessed``/
``Changed``/``Created`` events as a file on disk (docs/schema.md, "File events"), with
``path`` and ``record`` the entry's display path and ``artifact`` the image.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import stat
from typing import TYPE_CHECKING, Any, Final

from irkit.files.events import field_rows

if TYPE_CHECKING:
    from irkit.sources.base import Row

#: The separator between an image's display path and the path inside it.
SEPARATOR: Final = "::"

#: TSK's name-type letter for each kind of entry, and the stat bits of each.
TYPE_BITS: Final = {
    "r": stat.S_IFREG,
    "d": stat.S_IFDIR,
    "l": stat.S_IFLNK,
    "p": stat.S_IFIFO,
    "s": stat.S_IFSOCK,
    "c": stat.S_IFCHR,
    "b": stat.S_IFBLK,
    "-": 0,
}
#: dfVFS's file entry types as TSK letters.
DFVFS_TYPES: Final = {
    "file": "r",
    "directory": "d",
    "link": "l",
    "pipe": "p",
    "socket": "s",
    "character_device": "c",
    "block_device": "b",
    "device": "b",
}


@dataclasses.dataclass(slots=True)
class Entry:
    """One walked entry inside an image or archive.

    - ``display``: ``<image>::<inner>``, the one name for it in messages and events;
    - ``image``: the image's display path; ``inner``: ``volume`` + ``path``;
    - ``volume``: ``""`` for a lone file system or an archive, else ``/p1``, ``/lvm1``,
      ``/vss1``, ``/p2/vss1``…; ``path``: the path inside the file system (``/``-separated,
      ``/`` for its root), ``path:stream`` for an NTFS alternate data stream;
    - ``path_spec``: dfVFS path spec as JSON (``dfvfs.serializer.json_serializer``):
      ``open_entry`` and ``copy_out`` reopen the entry from it, in any process;
    - ``type``: TSK's letter (``r`` file, ``d`` directory, ``l`` link, ``p``, ``s``,
      ``c``, ``b``, ``-`` unknown); ``mode``: ``ls`` style; ``uid``, ``gid``, ``inode``:
      None where the format has none (NTFS owners are SIDs; archives have no inodes);
    - ``mtime``, ``atime``, ``ctime``, ``btime``: ISO 8601 UTC at the file system's own
      precision (``…T12:23:20.6896482+00:00`` on NTFS, whole seconds on ext2), ``""``
      when absent;
    - ``digests`` and ``status``, as ``FileEntry`` has them: ``pending`` for a file to
      hash, ``directory``, ``link``, ``not-regular``.
    """

    display: str
    image: str
    volume: str
    path: str
    path_spec: str
    type: str
    size: int = 0
    inode: int | None = None
    uid: int | None = None
    gid: int | None = None
    mode: str = ""
    target: str = ""
    mtime: str = ""
    atime: str = ""
    ctime: str = ""
    btime: str = ""
    stream: str = ""
    digests: dict[str, str] = dataclasses.field(default_factory=dict)
    status: str = "not-regular"
    note: str = ""

    @property
    def inner(self) -> str:
        """The path inside the image, volume included: ``/p1/etc/passwd``."""
        return inner_path(self.volume, self.path)


def inner_path(volume: str, path: str) -> str:
    """``volume`` + ``path``: ``/p1`` + ``/etc`` is ``/p1/etc``, the root of ``/p1`` ``/p1/``."""
    return volume + path


def display_path(image: str, volume: str, path: str) -> str:
    """The documented form ``<image>::<volume><path>``."""
    return f"{image}{SEPARATOR}{volume}{path}"


def mode_string(mode: int | None, kind: str) -> str:
    """``ls`` style mode; the type bits come from ``kind`` when ``mode`` lacks them."""
    bits = mode or 0
    if not stat.S_IFMT(bits):
        bits |= TYPE_BITS.get(kind, 0)
    return stat.filemode(bits)


def status_of(kind: str) -> str:
    """The hash status an entry starts with, as ``irkit.files.walk`` gives it."""
    return {"r": "pending", "d": "directory", "l": "link"}.get(kind, "not-regular")


#: dfdatetime classes whose value is a count since an epoch: (epoch's POSIX seconds,
#: counts per second, fraction digits dfdatetime writes). Formatted here in about 2 µs;
#: ``CopyToDateTimeStringISO8601`` takes over 20 µs, four times per entry.
_COUNTS: Final = {
    "Filetime": (-11_644_473_600, 10_000_000, 7),
    "PosixTime": (0, 1, 0),
    "PosixTimeInMilliseconds": (0, 1_000, 3),
    "PosixTimeInMicroseconds": (0, 1_000_000, 6),
    "PosixTimeInNanoseconds": (0, 1_000_000_000, 9),
    "APFSTime": (0, 1_000_000_000, 9),
}
_EPOCH: Final = dt.datetime(1970, 1, 1)
_UNSET_AT_ZERO: Final = frozenset({"Filetime", "TSKTime"})


def dfdatetime_iso(value: Any) -> str:
    """A dfdatetime value as ISO 8601 UTC at its own precision, or "" when not set.

    A FILETIME of 0 is NTFS's "never set" (libfsntfs gives it as 1601-01-01), a TSK
    time of 0 TSK's (its FAT root, its virtual files).
    """
    if value is None:
        return ""
    if getattr(value, "timestamp", None) == 0 and type(value).__name__ in _UNSET_AT_ZERO:
        return ""
    count = _COUNTS.get(type(value).__name__)
    timestamp = getattr(value, "timestamp", None)
    if count is not None and isinstance(timestamp, int) and not value.time_zone_offset:
        epoch, per_second, digits = count
        seconds, fraction = divmod(timestamp, per_second)
        try:
            text = (_EPOCH + dt.timedelta(seconds=epoch + seconds)).isoformat()
        except OverflowError:
            return ""
        return f"{text}.{fraction:0{digits}d}+00:00" if digits else f"{text}+00:00"
    try:
        text = str(value.CopyToDateTimeStringISO8601() or "")
    except (AttributeError, ValueError, OverflowError):
        return ""
    if not text:
        return ""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) >= 6 and text[-6] not in "+-":
        text += "+00:00"  # a value without a zone is UTC in dfVFS's file systems
    return text


def posix_iso(seconds: float | None) -> str:
    """POSIX seconds (an archive's mtime) as ISO 8601 UTC, "" when absent."""
    if seconds is None:
        return ""
    try:
        moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    spec = "seconds" if float(seconds).is_integer() else "microseconds"
    return moment.isoformat(timespec=spec)


def micro_iso(text: str) -> str:
    """Any ISO 8601 time as irkit's event form (UTC, microseconds), "" if unreadable."""
    if not text:
        return ""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        moment = moment.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return ""
    return moment.isoformat(timespec="microseconds")


def _number(value: int | None) -> str:
    return "" if value is None else str(value)


def entry_fields(entry: Entry) -> dict[str, str]:
    """The entry's metadata as the flat fields every file event carries.

    The same names as ``irkit.files.events.entry_fields``; times at microseconds as the
    schema has them (the entry keeps the file system's own precision).
    """
    fields = {
        "path": entry.display,
        "size": str(entry.size),
        "mode": entry.mode,
        "type": entry.type,
        "uid": _number(entry.uid),
        "gid": _number(entry.gid),
        "inode": _number(entry.inode),
        "md5": entry.digests.get("md5", ""),
        "sha1": entry.digests.get("sha1", ""),
        "sha256": entry.digests.get("sha256", ""),
        "mtime": micro_iso(entry.mtime),
        "atime": micro_iso(entry.atime),
        "ctime": micro_iso(entry.ctime),
        "btime": micro_iso(entry.btime),
        "hash_status": entry.status,
    }
    if entry.target:
        fields["symlink_target"] = entry.target
    if entry.note:
        fields["hash_note"] = entry.note
    return fields


def entry_rows(entry: Entry) -> list[Row]:
    """One file event per known time: artifact the image, record the display path."""
    return field_rows(entry_fields(entry), entry.image, entry.display)
