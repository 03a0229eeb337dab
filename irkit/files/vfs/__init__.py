"""Disk images and archives as trees of files, through dfVFS (issue #14).

The API:

- ``container_kind(head, path, size=None) -> str | None``: whether a file is a
  storage-media image or an archive irkit should open, from its first 4 KiB (plus at
  most a few small reads: the VHD footer, ISO 9660 at 32 KiB, a tar inside a compressed
  stream). No dfVFS import: cheap enough for discovery to call on every file.
- ``walk(path, *, vss=False, warnings, display=None, kind=None) -> Iterator[Entry]``:
  every entry of every file system in the image (partitions, LVM, VSS stores when
  ``vss``, encrypted volumes skipped with ``encrypted-volume``), or every member of a
  tar/zip archive (``max_ratio``/``ratio_floor``: where a compressed tar or a zip member
  counts as a decompression bomb). Problems are named ``ParseWarning``s in
  ``warnings``, never raised; only a missing ``path`` raises ``EvidenceError``.
- ``scan_volumes(path, *, vss=False, warnings, display=None) -> list[Volume]``: the
  volumes found and what is on each (``ok``, ``encrypted``, ``vss-skipped``…).
- ``open_entry(path_spec_json) -> BinaryIO``: an entry's content, read-only, from its
  ``Entry.path_spec``, in any process or thread (``ImageReadError`` if it cannot be
  opened, ``OSError`` if a read fails); reads stop at the entry's size, seeks stay
  within it. Each thread keeps the images and the archive it last read open (reading
  the members of a compressed tar in order is one pass); ``release()`` closes them.
- ``copy_out(path_spec_json, dest_dir, limit) -> Path``: the content in a new temporary
  file inside ``dest_dir`` (named by ``tempfile``, never by the entry);
  ``EntryTooBigError`` past ``limit`` bytes, with nothing left behind.
- ``entry_fields(entry)``, ``entry_rows(entry)``: the same fields and file events
  (``File Modified`` …, ``event_id`` m/a/c/b) as a file on disk (docs/schema.md), with
  ``artifact`` the image and ``record`` the entry's display path.

The display form, one for all: ``<image>::<inner path>``. The inner path of a file
system that is the whole image is its own path (``ext2.raw::/passwords.txt``); a
partition, logical volume or shadow copy comes first (``disk.raw::/p1/etc/passwd``,
``lvm.qcow2::/lvm1/passwords.txt``, ``vsstest.qcow2::/vss1/file.txt``; the live volume
of a VSS image is unprefixed); an archive member is normalised inside the archive
(``syslog.tar::/syslog``; ``../x`` is ``/x``); an NTFS alternate data stream is
``path:stream``. The root of a volume is ``/p1/`` (``/`` for the whole image).

May import the base modules and ``irkit.files.events``; dfVFS is imported only when a
walk or a read needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from irkit.files.vfs.entry import SEPARATOR, Entry, entry_fields, entry_rows
from irkit.files.vfs.errors import EntryTooBigError, ImageReadError
from irkit.files.vfs.signatures import HEAD_SIZE, container_kind

if TYPE_CHECKING:
    from irkit.files.vfs.archives import MAX_RATIO, RATIO_FLOOR
    from irkit.files.vfs.reader import copy_out, open_entry, release
    from irkit.files.vfs.volumes import Volume
    from irkit.files.vfs.walker import scan_volumes, walk

__all__ = [
    "HEAD_SIZE",
    "MAX_RATIO",
    "RATIO_FLOOR",
    "SEPARATOR",
    "Entry",
    "EntryTooBigError",
    "ImageReadError",
    "Volume",
    "container_kind",
    "copy_out",
    "entry_fields",
    "entry_rows",
    "open_entry",
    "release",
    "scan_volumes",
    "walk",
]

_LAZY = {
    "MAX_RATIO": "archives",
    "RATIO_FLOOR": "archives",
    "copy_out": "reader",
    "open_entry": "reader",
    "release": "reader",
    "Volume": "volumes",
    "scan_volumes": "walker",
    "walk": "walker",
}


def __getattr__(name: str) -> Any:
    """The parts that import dfVFS, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
