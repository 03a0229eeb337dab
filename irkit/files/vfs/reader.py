"""Reading one entry back from its path spec: ``open_entry`` and ``copy_out``.

Any process can reopen an entry from ``Entry.path_spec`` (JSON). Entries of file systems
are read through dfVFS, with one resolver context per thread (dfVFS objects are not
thread-safe) that keeps the last few file systems open, so reading many files of one
image does not reopen it each time; a forked child starts a fresh one (an inherited
image handle would share its file offset with the parent). ``release()`` closes them.
Archive members are read with Python's ``tarfile``/``zipfile`` over bounded
decompressors (``irkit.files.vfs.members``). A reader stays valid after ``release()``
until it is closed.
"""

from __future__ import annotations

import collections
import io
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO, Final

from irkit.files.vfs.archives import ARCHIVE_ERRORS
from irkit.files.vfs.errors import EntryTooBigError, ImageReadError
from irkit.files.vfs.members import is_archive_spec, open_member, release_archives
from irkit.files.vfs.warn import short_error

#: File systems kept open per thread between ``open_entry`` calls.
KEEP_OPEN: Final = 4
_CHUNK: Final = 1 << 20
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")


class _Local(threading.local):
    pid: int = 0
    context: Any = None
    file_systems: collections.OrderedDict[str, Any]


_LOCAL = _Local()


def _context() -> Any:
    from dfvfs.resolver import context

    if _LOCAL.context is None or _LOCAL.pid != os.getpid():
        _LOCAL.context = context.Context()
        _LOCAL.pid = os.getpid()
        _LOCAL.file_systems = collections.OrderedDict()
    return _LOCAL.context


def release() -> None:
    """Close what this thread keeps open for ``open_entry`` (images, file systems, the
    last archive), once the readers still open on them are closed."""
    release_archives()
    if _LOCAL.context is not None and _LOCAL.pid == os.getpid():
        _LOCAL.file_systems.clear()
        _LOCAL.context.Empty()
    _LOCAL.context = None


class EntryReader(io.RawIOBase):
    """A read-only view of one entry: reads stop at its size, seeks are kept within it."""

    def __init__(
        self, source: Any, size: int, name: str, closers: list[Any], shared: bool = False
    ) -> None:
        super().__init__()
        self._source = source
        self._shared = shared
        self._size = size
        self._pos = 0
        self._source_pos = -1
        self._closers = closers
        self.name = name

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        self._pos = min(max(base + offset, 0), self._size)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("read of a closed entry")
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        try:
            # dfVFS hands out one file object per path spec and thread: another reader
            # of the same entry may have moved it, so seek before every read.
            if self._shared or self._source_pos != self._pos:
                self._source.seek(self._pos)
            data = self._source.read(want)
        except Exception as exc:  # dfVFS and libyal errors are not all OSError
            self._source_pos = -1
            raise OSError(f"{self.name}: {short_error(exc)}") from exc
        count = len(data)
        buffer[:count] = data
        self._pos += count
        self._source_pos = self._pos
        return count

    def close(self) -> None:
        if not self.closed:
            self._source = None
            for item in reversed(self._closers):
                try:
                    item.close()
                except ARCHIVE_ERRORS:
                    pass
            self._closers = []
        super().close()


def _parse(path_spec_json: str) -> dict[str, Any]:
    try:
        spec = json.loads(path_spec_json)
    except (TypeError, ValueError) as exc:
        raise ImageReadError(f"not a path spec: {short_error(exc)}") from exc
    if not isinstance(spec, dict) or "type_indicator" not in spec:
        raise ImageReadError("not a path spec: no type_indicator")
    return spec


#: dfVFS types whose ``location`` names a volume (``/p1``, ``/lvm1``, ``/vss2``).
_VOLUME_TYPES: Final = frozenset(
    {"APFS_CONTAINER", "APM", "CS", "GPT", "LVM", "TSK_PARTITION", "VSHADOW"}
)


def describe(spec: dict[str, Any]) -> str:
    """The entry as ``<image file>::<volume><path>``, for messages."""
    location = str(spec.get("location", ""))
    if spec.get("type_indicator") in ("NTFS", "FAT"):
        location = location.replace("\\", "/")
    volumes: list[str] = []
    node = spec
    while isinstance(node.get("parent"), dict):
        node = node["parent"]
        if node.get("type_indicator") in _VOLUME_TYPES and node.get("location", "/") != "/":
            volumes.append(str(node["location"]))
    if node is spec:
        return location
    return f"{node.get('location', '?')}::{''.join(reversed(volumes))}{location}"


def open_entry(path_spec_json: str) -> BinaryIO:
    """Open an entry for reading from its ``Entry.path_spec``.

    Raises ``ImageReadError`` when the image, the entry or its data cannot be opened
    (a directory, a link, a missing member, a damaged image); read errors later are
    ``OSError``.
    """
    return io.BufferedReader(open_raw(path_spec_json))


def open_raw(path_spec_json: str) -> EntryReader:
    """``open_entry`` without the buffer: each read goes to the back-end."""
    spec = _parse(path_spec_json)
    name = describe(spec)
    closers: list[Any] = []
    shared = not is_archive_spec(spec)
    try:
        if shared:
            source, size = _open_dfvfs(path_spec_json, name)
        else:
            source, size = open_member(spec, name, closers)
            closers.append(source)
    except ImageReadError:
        _close_all(closers)
        raise
    except Exception as exc:  # dfVFS raises its own errors, pytsk3 RuntimeError, …
        _close_all(closers)
        raise ImageReadError(f"cannot open {name}: {short_error(exc)}") from exc
    return EntryReader(source, size, name, closers, shared)


def _close_all(closers: list[Any]) -> None:
    for item in reversed(closers):
        try:
            item.close()
        except ARCHIVE_ERRORS:
            pass


def _open_dfvfs(path_spec_json: str, name: str) -> tuple[Any, int]:
    from dfvfs.resolver import resolver
    from dfvfs.serializer import json_serializer

    spec = json_serializer.JsonPathSpecSerializer.ReadSerialized(path_spec_json)
    context = _context()
    if spec.HasParent() and spec.IsFileSystem():
        file_system = resolver.Resolver.OpenFileSystem(spec, resolver_context=context)
        key = f"{spec.type_indicator}|{getattr(spec.parent, 'comparable', '')}"
        _LOCAL.file_systems[key] = file_system
        _LOCAL.file_systems.move_to_end(key)
        while len(_LOCAL.file_systems) > KEEP_OPEN:
            _LOCAL.file_systems.popitem(last=False)
        entry = file_system.GetFileEntryByPathSpec(spec)
        if entry is None:
            raise ImageReadError(f"cannot open {name}: no such entry")
        if not entry.IsFile() and not getattr(spec, "data_stream", None):
            raise ImageReadError(f"cannot open {name}: not a regular file")
    source = resolver.Resolver.OpenFileObject(spec, resolver_context=context)
    if source is None:
        raise ImageReadError(f"cannot open {name}: no such entry")
    return source, int(source.get_size())


def _safe_suffix(name: str) -> str:
    base = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return "-" + _UNSAFE.sub("_", base)[-64:] if base else ""


def copy_out(path_spec_json: str, dest_dir: Path, limit: int) -> Path:
    """Copy an entry's content into a new temporary file inside ``dest_dir``.

    For parsers that need a real path. The file's name is made by ``tempfile`` (the
    entry's base name, made safe, is only its suffix), so no entry name can place it
    outside ``dest_dir``. Refuses (``EntryTooBigError``, nothing left behind) an entry that
    declares, or turns out to hold, more than ``limit`` bytes; the caller deletes the
    copy when done.
    """
    with open_raw(path_spec_json) as source:
        size, label = source.size, source.name
        if size > limit:
            raise EntryTooBigError(
                f"{label} is {size:,} bytes, over the {limit:,}-byte limit: not copied",
                hint="raise the limit, or read it with open_entry",
            )
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="irkit-vfs-", suffix=_safe_suffix(label), dir=dest_dir)
        target = Path(name)
        copied = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    copied += len(chunk)
                    if copied > limit:
                        raise EntryTooBigError(
                            f"{label} holds more than the {limit:,}-byte limit: not copied"
                        )
                    out.write(chunk)
        except BaseException as exc:
            target.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise ImageReadError(f"cannot copy {label}: {short_error(exc)}") from exc
            raise
    return target
