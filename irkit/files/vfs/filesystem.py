"""Walking one file system inside an image with dfVFS: every allocated entry, once.

Depth-first, names sorted, as ``irkit.files.walk`` walks a tree. A directory already
entered (same inode: a damaged file system can loop) is not entered again, nor is one
deeper than ``MAX_DEPTH``; an entry or a directory dfVFS cannot read is a named warning
and the walk goes on. Only the default data stream is a file's content; an NTFS
alternate data stream is one more entry, ``path:stream`` (type ``r``). The TSK back-end's
virtual ``$OrphanFiles`` folder (ISO 9660, FAT) and its ``$MBR``, ``$FAT1``, ``$FAT2``
files are not walked. FAT keeps local times (no zone): shown as if UTC, with one
``local-time`` warning per volume.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from dfvfs.lib import definitions
from dfvfs.path import factory
from dfvfs.resolver import resolver
from dfvfs.serializer import json_serializer

from irkit.files.vfs.entry import (
    DFVFS_TYPES,
    Entry,
    dfdatetime_iso,
    display_path,
    mode_string,
    status_of,
)
from irkit.files.vfs.volumes import DFVFS_ERRORS
from irkit.files.vfs.warn import Warner, short_error

MAX_DEPTH: Final = 256
#: NTFS inode numbers from dfVFS are file references: the MFT entry is the low 48 bits.
_MFT_ENTRY_MASK: Final = (1 << 48) - 1
#: Files TSK makes up at the root (not on the volume): the boot sector, the FATs, and
#: the folder of unnamed inodes (slow to build on a big volume).
_TSK_VIRTUAL: Final = frozenset({"$OrphanFiles", "$MBR", "$FAT1", "$FAT2"})

_Serializer = json_serializer.JsonPathSpecSerializer


def spec_json(path_spec: Any) -> str:
    """A dfVFS path spec as the JSON ``open_entry`` reads."""
    return str(_Serializer.WriteSerialized(path_spec))


class FileSystemWalk:
    """Walks the file system at ``spec`` (a dfVFS path spec) of one volume."""

    def __init__(self, spec: Any, image: str, volume: str, context: Any, warner: Warner) -> None:
        self.spec = spec
        self.image = image
        self.volume = volume
        self.context = context
        self.warner = warner
        self.kind = spec.type_indicator
        self.ntfs = self.kind == definitions.TYPE_INDICATOR_NTFS
        self.local_warned = False

    def where(self, path: str) -> str:
        return display_path(self.image, self.volume, path)

    def entries(self) -> Iterator[Entry]:
        try:
            file_system = resolver.Resolver.OpenFileSystem(self.spec, resolver_context=self.context)
            root = file_system.GetRootFileEntry()
        except DFVFS_ERRORS as exc:
            self.warner.warn(
                self.where("/"), "unreadable-filesystem",
                f"cannot open the {self.kind} file system: {short_error(exc)}",
            )  # fmt: skip
            return
        if root is None:
            self.warner.warn(self.where("/"), "unreadable-filesystem", "no root directory")
            return
        seen: set[int] = set()
        stack: list[tuple[str, Any, int]] = [("/", root, 0)]
        while stack:
            path, file_entry, depth = stack.pop()
            try:
                entry = self.entry(file_entry, path)
            except DFVFS_ERRORS as exc:
                self.warner.warn(self.where(path), "unreadable-entry", short_error(exc))
                continue
            streams = self.streams(file_entry, entry) if self.ntfs else []
            yield entry
            yield from streams
            if entry.type != "d":
                continue
            if entry.inode is not None:
                if entry.inode in seen:
                    self.warner.warn(
                        entry.display, "directory-loop", "directory already walked: not entered"
                    )
                    continue
                seen.add(entry.inode)
            if depth >= MAX_DEPTH:
                self.warner.warn(entry.display, "too-deep", "directories nested too deep")
                continue
            children = self.children(file_entry, entry, depth)
            stack.extend(reversed(children))

    def children(self, file_entry: Any, entry: Entry, depth: int) -> list[tuple[str, Any, int]]:
        try:
            subs = list(file_entry.sub_file_entries)
        except DFVFS_ERRORS as exc:
            self.warner.warn(entry.display, "unreadable-directory", short_error(exc))
            return []
        base = entry.path.rstrip("/")
        named: list[tuple[str, Any, int]] = []
        for sub in subs:
            try:
                name = sub.name or ""
            except DFVFS_ERRORS:
                name = ""
            if not name:
                continue
            if depth == 0 and name in _TSK_VIRTUAL and self.kind == definitions.TYPE_INDICATOR_TSK:
                continue
            named.append((f"{base}/{name}", sub, depth + 1))
        named.sort(key=lambda item: item[0])
        return named

    def entry(self, file_entry: Any, path: str) -> Entry:
        info = file_entry.GetStatAttribute()
        kind = DFVFS_TYPES.get(file_entry.entry_type or getattr(info, "type", None) or "", "-")
        inode = getattr(info, "inode_number", None)
        if inode is not None and self.ntfs:
            inode &= _MFT_ENTRY_MASK
        target = ""
        if kind == "l":
            target = file_entry.link or ""
        modified = file_entry.modification_time
        if not self.local_warned and getattr(modified, "is_local_time", False):
            self.local_warned = True
            self.warner.warn(
                self.where("/"), "local-time",
                "this file system keeps local times (no zone stored): shown as if UTC",
            )  # fmt: skip
        return Entry(
            display=self.where(path),
            image=self.image,
            volume=self.volume,
            path=path,
            path_spec=spec_json(file_entry.path_spec),
            type=kind,
            size=file_entry.size or 0,
            inode=inode,
            uid=getattr(info, "owner_identifier", None),
            gid=getattr(info, "group_identifier", None),
            mode=mode_string(getattr(info, "mode", None), kind),
            target=target,
            mtime=dfdatetime_iso(modified),
            atime=dfdatetime_iso(file_entry.access_time),
            ctime=dfdatetime_iso(file_entry.change_time),
            btime=dfdatetime_iso(file_entry.creation_time),
            status=status_of(kind),
        )

    def streams(self, file_entry: Any, entry: Entry) -> list[Entry]:
        """An NTFS file's alternate data streams, one entry each (``path:stream``); a file
        without a default data stream (``$Extend/$Quota``: indexes only) is metadata."""
        try:
            streams = list(file_entry.data_streams)
        except DFVFS_ERRORS as exc:
            self.warner.warn(entry.display, "unreadable-entry", short_error(exc))
            return []
        if entry.type == "r" and not any(not s.name for s in streams):
            entry.status = "not-regular"
            entry.note = "no default data stream: metadata only"
        named: list[Entry] = []
        for stream in streams:
            if not stream.name:
                continue
            spec = file_entry.path_spec
            attributes = {k: v for k, v in vars(spec).items() if v is not None}
            attributes["data_stream"] = stream.name
            path = f"{entry.path}:{stream.name}"
            named.append(
                Entry(
                    display=self.where(path),
                    image=self.image,
                    volume=self.volume,
                    path=path,
                    path_spec=spec_json(factory.Factory.NewPathSpec(self.kind, **attributes)),
                    type="r",
                    size=getattr(stream, "size", 0) or 0,
                    inode=entry.inode,
                    uid=entry.uid,
                    gid=entry.gid,
                    mode=mode_string(None, "r"),
                    mtime=entry.mtime,
                    atime=entry.atime,
                    ctime=entry.ctime,
                    btime=entry.btime,
                    stream=stream.name,
                    status="pending",
                )
            )
        return named
