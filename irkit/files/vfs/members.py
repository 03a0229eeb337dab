"""Reading one tar or zip member back from its path spec, with bounded memory.

A reader of an archive asks for its members one after another, in archive order: each
thread keeps its last archive open (a zip's central directory read once; a tar read on
from where the last member was found, not from its start: reading every member of a
compressed tar stays one pass). A member asked for again, or before the last one, is
found among the last ``RECENT`` headers or by reading the tar again from its start.
A compressed tar is not read past ``MAX_RATIO`` times its size (and ``RATIO_FLOOR``):
the walk lists nothing beyond that point either.
"""

from __future__ import annotations

import collections
import json
import os
import tarfile
import threading
import zipfile
from typing import IO, Any, Final, cast

from irkit.files.vfs.archives import (
    ARCHIVE_ERRORS,
    MAX_RATIO,
    RATIO_FLOOR,
    decompressed,
    forget_members,
)
from irkit.files.vfs.errors import ImageReadError

#: Tar headers remembered per open archive, for a member asked for twice.
RECENT: Final = 256
#: Decompressed bytes kept behind the read position of a compressed tar.
WINDOW: Final = 4 << 20


def is_archive_spec(spec: dict[str, Any]) -> bool:
    """A tar or zip member whose chain is a file, maybe compressed: read here, not by dfVFS."""
    if spec.get("type_indicator") not in ("TAR", "ZIP"):
        return False
    node = spec.get("parent")
    while isinstance(node, dict) and node.get("type_indicator") in ("GZIP", "COMPRESSED_STREAM"):
        node = node.get("parent")
    return isinstance(node, dict) and node.get("type_indicator") == "OS"


def _chain_stream(spec: dict[str, Any], closers: list[Any]) -> tuple[IO[bytes], int, bool]:
    """The decompressed stream of ``spec``, the size of the file under it, and whether
    anything is decompressed."""
    kind = spec.get("type_indicator")
    if kind == "OS":
        stream: IO[bytes] = open(str(spec["location"]), "rb")  # noqa: SIM115 (in closers)
        closers.append(stream)
        return stream, os.fstat(stream.fileno()).st_size, False
    parent, size, _ = _chain_stream(spec["parent"], closers)
    method = "gzip" if kind == "GZIP" else str(spec.get("compression_method", ""))
    stream = decompressed(parent, method)
    closers.append(stream)
    return cast("IO[bytes]", _Window(stream)), size, True


class _Window:
    """A decompressed stream that keeps its last ``WINDOW`` bytes: reading a member again,
    or its start after its header, does not decompress the archive again from its start
    (a gzip, bzip2 or xz stream can only seek back by starting over)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.pos = 0
        self.start = 0  # stream offset of window[0]; the stream is at start + len(window)
        self.window = bytearray()

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self.pos = max(offset, 0)
        elif whence == os.SEEK_CUR:
            self.pos = max(self.pos + offset, 0)
        else:  # the end: only the stream knows where it is
            self.pos = self.start = self.stream.seek(offset, whence)
            self.window.clear()
        return self.pos

    def read(self, size: int = -1) -> bytes:
        end = self.start + len(self.window)
        if self.pos < self.start or self.pos > end:
            self.stream.seek(self.pos)  # back: from the stream's start; on: skipped
            self.start, end = self.pos, self.pos
            self.window.clear()
        wanted = size if size >= 0 else 1 << 62
        while self.pos + wanted > end:
            data = self.stream.read(max(min(self.pos + wanted - end, 1 << 20), 1 << 16))
            if not data:
                break
            self.window += data
            end += len(data)
        at = self.pos - self.start
        data = bytes(self.window[at : at + wanted])
        self.pos += len(data)
        extra = min(len(self.window) - WINDOW, self.pos - self.start)
        if extra > 0:
            del self.window[:extra]
            self.start += extra
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.window = bytearray()


class _Archive:
    """One open archive and, for a tar, how far it has been read."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.closers: list[Any] = []
        try:
            stream, size, compressed = _chain_stream(spec["parent"], self.closers)
            self.budget = max(MAX_RATIO * size, RATIO_FLOOR) if compressed else None
            self.zip: zipfile.ZipFile | None = None
            self.tar: tarfile.TarFile | None = None
            if spec["type_indicator"] == "ZIP":
                self.zip = zipfile.ZipFile(stream)
                self.closers.append(self.zip)
            else:
                self.tar = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 (in closers)
                self.closers.append(self.tar)
        except BaseException:
            self.close()
            raise
        self.recent: collections.OrderedDict[str, tarfile.TarInfo] = collections.OrderedDict()
        self.readers = 0
        self.evicted = False

    def lease(self) -> _Lease:
        self.readers += 1
        return _Lease(self)

    def evict(self) -> None:
        """No longer this thread's archive: closed once its last reader is."""
        self.evicted = True
        if self.readers <= 0:
            self.close()

    def close(self) -> None:
        for item in reversed(self.closers):
            try:
                item.close()
            except ARCHIVE_ERRORS:
                pass
        self.closers = []

    def find(self, member: str, name: str) -> tarfile.TarInfo | None:
        """The tar header of ``member``: remembered, or read on from the last one."""
        tar = self.tar
        assert tar is not None
        if member in self.recent:
            return self.recent[member]
        while True:
            pending = getattr(tar, "firstmember", None) is not None
            if self.budget is not None and not pending and tar.offset > self.budget:
                raise ImageReadError(
                    f"cannot open {name}: it lies past the decompression limit "
                    f"({MAX_RATIO}:1, a bomb?)"
                )
            info = tar.next()
            forget_members(tar)
            if info is None:
                return None
            self.recent[info.name] = info
            while len(self.recent) > RECENT:
                self.recent.popitem(last=False)
            if info.name == member:
                return info


class _Lease:
    """Held by a member's reader: the archive stays open until every reader is closed."""

    def __init__(self, archive: _Archive) -> None:
        self.archive: _Archive | None = archive

    def close(self) -> None:
        archive, self.archive = self.archive, None
        if archive is not None:
            archive.readers -= 1
            if archive.evicted:
                archive.evict()


class _Local(threading.local):
    pid: int = 0
    key: str = ""
    archive: _Archive | None = None


_LOCAL = _Local()


def release_archives() -> None:
    """Close the archive this thread keeps open (once its open readers are closed)."""
    if _LOCAL.archive is not None and _LOCAL.pid == os.getpid():
        _LOCAL.archive.evict()
    _LOCAL.archive = None


def _archive(spec: dict[str, Any], fresh: bool = False) -> _Archive:
    key = spec["type_indicator"] + json.dumps(spec["parent"], sort_keys=True)
    if _LOCAL.pid != os.getpid():  # a forked child: the parent's handles are not ours
        _LOCAL.archive, _LOCAL.pid = None, os.getpid()
    if fresh or _LOCAL.archive is None or _LOCAL.key != key:
        release_archives()
        _LOCAL.archive = _Archive(spec)
        _LOCAL.key = key
    return _LOCAL.archive


def open_member(spec: dict[str, Any], name: str, closers: list[Any]) -> tuple[Any, int]:
    """A member's content and its size; ``closers`` get what the caller must close."""
    member = str(spec.get("location", ""))[1:]
    archive = _archive(spec)
    if archive.zip is not None:
        try:
            info = archive.zip.getinfo(member)
        except KeyError:
            raise ImageReadError(f"cannot open {name}: no such member") from None
        if info.is_dir():
            raise ImageReadError(f"cannot open {name}: a directory")
        if info.flag_bits & 0x1:
            raise ImageReadError(f"cannot open {name}: encrypted")
        closers.append(archive.lease())
        return archive.zip.open(info), info.file_size
    try:
        found = archive.find(member, name)
        if found is None:  # before the last member read: read the tar again from its start
            archive = _archive(spec, fresh=True)
            found = archive.find(member, name)
    except BaseException:
        release_archives()  # a damaged stream: the next call starts afresh
        raise
    if found is None:
        raise ImageReadError(f"cannot open {name}: no such member")
    if not found.isfile():
        raise ImageReadError(f"cannot open {name}: not a regular file ({found.type!r})")
    assert archive.tar is not None
    source = archive.tar.extractfile(found)
    if source is None:
        raise ImageReadError(f"cannot open {name}: no data")
    closers.append(archive.lease())
    return source, found.size
