"""Tar and zip archives as file systems: listed and read with bounded memory.

Listed here with Python's ``tarfile`` and ``zipfile`` (the modules dfVFS's TAR and ZIP
back-ends wrap), not through dfVFS, because:

- dfVFS's GZIP and COMPRESSED_STREAM back-ends decompress a whole 16 MiB (gzip) or
  8 MiB (bzip2, xz) read in one call, with no output cap: one read of a bomb is
  gigabytes in memory. Python's ``gzip``, ``bz2`` and ``lzma`` files decompress a few
  KiB at a time;
- listing a tar inside a compressed stream means decompressing it through: the walk
  stops (``decompression-bomb``) once the next header lies past ``max_ratio`` times the
  compressed size (and past ``ratio_floor``), before decompressing any of it;
- dfVFS lists a directory by scanning every member again (slow for big archives).

Each entry still carries a dfVFS path spec (OS, then GZIP or COMPRESSED_STREAM, then
TAR or ZIP with ``location`` ``/`` + the member's stored name), and ``open_member``
reads it back the same bounded way. Member names are shown normalised inside the
archive: ``../../etc/x`` and ``/etc/x`` are both ``archive::/etc/x``, with an
``unsafe-member-name`` warning; nothing is ever written under a member's name.
A zip member that declares more than ``max_ratio`` times its compressed size is listed
with a ``decompression-bomb`` warning (the walk never decompresses zip members).
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import json
import lzma
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any, Final, cast

from irkit.files.vfs.entry import Entry, display_path, mode_string, posix_iso, status_of
from irkit.files.vfs.warn import Warner, short_error

#: A compressed tar may decompress to this many times its size (and a zip member may
#: declare this many times its compressed size) before it counts as a bomb…
MAX_RATIO: Final = 100
#: …once past this many bytes: small archives of zeros are not bombs.
RATIO_FLOOR: Final = 256 << 20

TAR_KINDS: Final = frozenset({"tar", "tar.gz", "tar.bz2", "tar.xz"})
ARCHIVE_KINDS: Final = TAR_KINDS | {"zip"}

#: Errors a damaged archive or compressed stream raises while read.
ARCHIVE_ERRORS: Final = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    struct.error,
)

_TAR_TYPES: Final = {
    tarfile.DIRTYPE: "d",
    tarfile.SYMTYPE: "l",
    tarfile.CHRTYPE: "c",
    tarfile.BLKTYPE: "b",
    tarfile.FIFOTYPE: "p",
}
_COMPRESSION: Final = {"tar.gz": "gzip", "tar.bz2": "bzip2", "tar.xz": "xz"}
_UT_EXTRA: Final = 0x5455  # zip "extended timestamp": UTC POSIX times


def normalised(name: str) -> tuple[str, bool]:
    """A member name as a path inside the archive, and whether it tried to leave it
    (``..`` above the root, or absolute)."""
    parts: list[str] = []
    escaped = name.startswith("/")
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            else:
                escaped = True
            continue
        parts.append(part)
    inner = "/" + "/".join(parts)
    # Bytes tarfile could not decode as UTF-8 (surrogates) are shown as \xNN.
    inner = inner.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return inner, escaped


def archive_spec(path: str, kind: str, member: str) -> dict[str, Any]:
    """The dfVFS path spec of one member, as the dict the JSON serializer writes."""
    spec: dict[str, Any] = {"__type__": "PathSpec", "location": path, "type_indicator": "OS"}
    method = _COMPRESSION.get(kind)
    if method == "gzip":
        spec = {"__type__": "PathSpec", "parent": spec, "type_indicator": "GZIP"}
    elif method:
        spec = {
            "__type__": "PathSpec", "compression_method": method, "parent": spec,
            "type_indicator": "COMPRESSED_STREAM",
        }  # fmt: skip
    top = "ZIP" if kind == "zip" else "TAR"
    return {"__type__": "PathSpec", "location": "/" + member, "parent": spec, "type_indicator": top}


def forget_members(tar: tarfile.TarFile) -> None:
    """tarfile keeps every header it read (``members``): not needed when streaming."""
    members = getattr(tar, "members", None)
    if isinstance(members, list):
        members.clear()


def decompressed(raw: IO[bytes], method: str) -> IO[bytes]:
    """A compressed stream read a few KiB at a time (never a whole buffer in one go)."""
    stream: Any
    if method == "gzip":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif method == "bzip2":
        stream = bz2.BZ2File(raw, mode="rb")
    elif method == "xz":
        stream = lzma.LZMAFile(raw, mode="rb")  # noqa: SIM115 (the caller closes it)
    else:
        raise ValueError(f"compression {method!r} is not read inside archives")
    return cast("IO[bytes]", stream)


class ArchiveWalk:
    """Lists one archive file; ``kind`` is ``container_kind``'s answer for it."""

    def __init__(
        self, path: str, kind: str, image: str, warner: Warner,
        max_ratio: int = MAX_RATIO, ratio_floor: int = RATIO_FLOOR,
    ) -> None:  # fmt: skip
        self.path = path
        self.kind = kind
        self.image = image
        self.warner = warner
        self.max_ratio = max_ratio
        self.ratio_floor = ratio_floor

    def spec_json(self, member: str) -> str:
        # json, not orjson: a tar name undecodable as UTF-8 carries surrogates.
        return json.dumps(archive_spec(self.path, self.kind, member))

    def entries(self) -> Iterator[Entry]:
        try:
            with open(self.path, "rb") as raw:
                size = os.fstat(raw.fileno()).st_size
                if self.kind == "zip":
                    yield from self._zip(raw, size)
                else:
                    yield from self._tar(raw, size)
        except ARCHIVE_ERRORS as exc:
            self.warner.warn(
                self.image, "unreadable-archive", f"cannot read the archive: {short_error(exc)}"
            )

    def _member(self, name: str, kind: str, **values: Any) -> Entry:
        inner, escaped = normalised(name)
        display = display_path(self.image, "", inner)
        if escaped:
            self.warner.warn(
                display, "unsafe-member-name",
                f"member name {name!r} points outside the archive: shown as {inner}",
            )  # fmt: skip
        return Entry(
            display=display, image=self.image, volume="", path=inner,
            path_spec=self.spec_json(name), type=kind, status=status_of(kind), **values,
        )  # fmt: skip

    def _tar(self, raw: IO[bytes], size: int) -> Iterator[Entry]:
        method = _COMPRESSION.get(self.kind)
        stream = decompressed(raw, method) if method else raw
        try:
            with tarfile.open(fileobj=stream, mode="r:") as tar:
                yield from self._tar_members(tar, stream, size, method is not None)
        finally:
            stream.close()

    def _tar_members(
        self, tar: tarfile.TarFile, stream: IO[bytes], size: int, compressed: bool
    ) -> Iterator[Entry]:
        budget = max(self.max_ratio * size, self.ratio_floor) if compressed else None
        last: tarfile.TarInfo | None = None
        while True:
            # next() seeks to ``tar.offset`` (decompressing up to it) before it reads a
            # header; the first member was read by open() and is handed back as is.
            pending = getattr(tar, "firstmember", None) is not None
            if budget is not None and not pending and tar.offset > budget:
                self._bomb(last, tar.offset, size)
                return
            try:
                info = tar.next()
            except ARCHIVE_ERRORS as exc:
                self.warner.warn(
                    self.image, "truncated-archive",
                    f"listing stopped at byte {tar.offset}: {short_error(exc)}",
                )  # fmt: skip
                return
            forget_members(tar)
            if info is None:
                break
            last = info
            yield self._tar_entry(info)
        self._check_end(tar, stream, last, None if compressed else size)

    def _tar_entry(self, info: tarfile.TarInfo) -> Entry:
        kind = _TAR_TYPES.get(info.type, "r")
        pax = info.pax_headers
        target = info.linkname if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
        entry = self._member(
            info.name, kind,
            size=info.size if kind == "r" else 0,
            uid=info.uid, gid=info.gid,
            mode=mode_string(info.mode & 0o7777, kind),
            target=target,
            mtime=posix_iso(info.mtime),
            atime=posix_iso(_pax_time(pax.get("atime"))),
            ctime=posix_iso(_pax_time(pax.get("ctime"))),
        )  # fmt: skip
        if info.type == tarfile.LNKTYPE:
            entry.note = f"hard link to {info.linkname}"
        return entry

    def _bomb(self, last: tarfile.TarInfo | None, offset: int, size: int) -> None:
        name = normalised(last.name)[0] if last is not None else "/"
        self.warner.warn(
            display_path(self.image, "", name), "decompression-bomb",
            f"decompresses to more than {offset:,} bytes from {size:,} compressed "
            f"(over {self.max_ratio}:1): listing stopped, nothing past it decompressed",
        )  # fmt: skip

    def _check_end(
        self, tar: tarfile.TarFile, stream: IO[bytes], last: tarfile.TarInfo | None,
        plain_size: int | None,
    ) -> None:  # fmt: skip
        """tarfile ends quietly at a damaged or cut header: say so."""
        if last is not None and plain_size is not None:
            end = last.offset_data + last.size
            if end > plain_size:
                self.warner.warn(
                    display_path(self.image, "", normalised(last.name)[0]),
                    "truncated-archive",
                    f"the archive ends at byte {plain_size:,}, inside this member "
                    f"(its data would end at {end:,})",
                )
                return
        try:
            stream.seek(tar.offset)
            block = stream.read(tarfile.BLOCKSIZE)
        except ARCHIVE_ERRORS as exc:
            self.warner.warn(self.image, "truncated-archive", short_error(exc))
            return
        if block.strip(b"\x00"):
            self.warner.warn(
                self.image, "damaged-archive",
                f"listing stopped at byte {tar.offset:,}: a header tar cannot read",
            )  # fmt: skip

    def _zip(self, raw: IO[bytes], size: int) -> Iterator[Entry]:
        archive = zipfile.ZipFile(raw)
        local_times = bomb = False
        declared = 0
        for info in archive.infolist():
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if stat.S_ISLNK(mode):
                kind = "l"
            elif info.is_dir() or stat.S_ISDIR(mode):
                kind = "d"
            else:
                kind = "r"
            utc = _zip_utc_mtime(info.extra)
            if utc is None:
                local_times = True
                mtime = _dos_time(info.date_time)
            else:
                mtime = posix_iso(utc)
            entry = self._member(
                info.filename, kind, size=info.file_size if kind == "r" else 0,
                mode=mode_string(mode & 0o7777 if mode else None, kind), mtime=mtime,
            )  # fmt: skip
            declared += info.file_size
            if info.file_size > max(self.max_ratio * max(info.compress_size, 1), self.ratio_floor):
                bomb = True
                self.warner.warn(
                    entry.display, "decompression-bomb",
                    f"declares {info.file_size:,} bytes from {info.compress_size:,} "
                    f"compressed (over {self.max_ratio}:1): not decompressed by the walk",
                )  # fmt: skip
            if info.flag_bits & 0x1:
                self.warner.warn(entry.display, "encrypted-member", "encrypted: cannot be read")
            yield entry
        if local_times:
            self.warner.warn(
                self.image, "local-time",
                "zip times are the local time of the machine that wrote them (no zone "
                "stored): shown as if UTC",
            )  # fmt: skip
        if not bomb and declared > max(self.max_ratio * size, self.ratio_floor):
            self.warner.warn(
                self.image,
                "decompression-bomb",
                f"members declare {declared:,} bytes from a {size:,}-byte archive",
            )


def _pax_time(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _dos_time(value: tuple[int, int, int, int, int, int]) -> str:
    try:
        return dt.datetime(*value, tzinfo=dt.UTC).isoformat()
    except (TypeError, ValueError):
        return ""


def _zip_utc_mtime(extra: bytes) -> int | None:
    """The modification time of a zip's "extended timestamp" extra field (UTC), if any."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4 : at + 4 + length]
        if kind == _UT_EXTRA and len(body) >= 5 and body[0] & 0x1:
            return int(struct.unpack_from("<i", body, 1)[0])
        at += 4 + length
    return None
