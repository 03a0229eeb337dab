"""One file copied and hashed in one read; a folder listed as a bodyfile.

The source is opened read-only, without following a link, without blocking, and
without updating its access time where the platform allows (``O_NOATIME``); ``fstat``
checks that what was opened is a regular file. Each block read feeds md5, sha1 and
sha256 and is written to the copy, so the digests are of exactly the bytes stored. The
source's metadata is taken before the copy and its size checked after.
"""

from __future__ import annotations

import dataclasses
import grp
import hashlib
import os
import pwd
import stat
import time
from collections.abc import Callable
from typing import Any, Final

from irkit.files.fileio import birth_time, iso_ns, open_evidence, read_buffer
from irkit.files.options import ALGORITHMS

_WRITE_FLAGS: Final = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
#: Longest stored path (bytes) and name kept as is; longer ones are stored under a digest.
MAX_STORED_PATH: Final = 3800
MAX_NAME: Final = 255


class NotCopiedError(Exception):
    """A file that was not copied, with the reason (a short kind) and details."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(slots=True)
class FileRecord:
    """One stored file, as its manifest entry."""

    artifact: str
    source_path: str
    stored_path: str
    size: int = 0
    stored_size: int = 0
    md5: str = ""
    sha1: str = ""
    sha256: str = ""
    mtime: str = ""
    atime: str = ""
    ctime: str = ""
    btime: str = ""
    mode: str = ""
    uid: int = 0
    gid: int = 0
    owner: str = ""
    group: str = ""
    inode: int = 0
    symlink_target: str = ""
    collected_utc: str = ""
    method: str = "copy"
    status: str = "collected"
    error: str = ""
    artifacts: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The manifest entry."""
        data = dataclasses.asdict(self)
        if not self.artifacts:
            data["artifacts"] = [self.artifact]
        return data


def utc_now() -> str:
    """Now, ISO 8601 UTC with microseconds."""
    return iso_ns(time.time_ns())


def _names(info: os.stat_result, live: bool) -> tuple[str, str]:
    if not live:
        return "", ""
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = ""
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = ""
    return owner, group


def describe(record: FileRecord, info: os.stat_result, live: bool) -> None:
    """Fill the record's metadata from the source's ``stat``."""
    record.size = info.st_size
    record.mtime = iso_ns(info.st_mtime_ns)
    record.atime = iso_ns(info.st_atime_ns)
    record.ctime = iso_ns(info.st_ctime_ns)
    record.btime = birth_time(info, record.source_path)
    record.mode = stat.filemode(info.st_mode)
    record.uid, record.gid, record.inode = info.st_uid, info.st_gid, info.st_ino
    record.owner, record.group = _names(info, live)


def stored_name(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Path parts safe to store: names that are not UTF-8 are escaped (``%XX``)."""
    safe = []
    for part in parts:
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:
            raw = part.encode("utf-8", "surrogateescape")
            part = "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x25 else f"%{b:02X}" for b in raw)
        safe.append(part)
    return tuple(safe)


def fit_path(base: str, parts: tuple[str, ...]) -> tuple[str, ...]:
    """``parts`` under ``base``, or ``_long/<sha256>`` when too long to store as is."""
    whole = os.path.join(base, *parts)
    if len(os.fsencode(whole)) <= MAX_STORED_PATH and all(
        len(os.fsencode(p)) <= MAX_NAME for p in parts
    ):
        return parts
    digest = hashlib.sha256("/".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    name = os.fsencode(parts[-1])[-80:].decode("utf-8", "ignore") if parts else ""
    return ("_long", f"{digest[:32]}-{name}" if name else digest)


def _open_source(path: str) -> int:
    try:
        return open_evidence(path)
    except FileNotFoundError as exc:
        raise NotCopiedError("vanished", "disappeared before it was read") from exc
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: a link swapped in after it was resolved
            raise NotCopiedError("symlink", "became a symbolic link: not followed") from exc
        if exc.errno == 36:  # ENAMETOOLONG
            raise NotCopiedError("path-too-long", exc.strerror or str(exc)) from exc
        raise NotCopiedError("unreadable", exc.strerror or str(exc)) from exc


def copy_file(
    source: str,
    destination: str,
    record: FileRecord,
    limit: int | None,
    live: bool,
    progress: Callable[[int], None] | None = None,
) -> FileRecord:
    """Copy ``source`` to ``destination`` (new file), hashing what is stored.

    Raises ``NotCopiedError`` when nothing was stored; a copy that was cut at ``limit`` or
    whose source changed while it was read is stored and says so in ``status``.
    """
    fd = _open_source(source)
    written = 0
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            kind = stat.S_IFMT(before.st_mode)
            what = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFDIR: "folder"}.get(
                kind, "device or special file"
            )
            raise NotCopiedError("not-regular", f"a {what}, not a regular file: not read")
        describe(record, before, live)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        try:
            out = os.open(destination, _WRITE_FLAGS, 0o640)
        except OSError as exc:
            raise NotCopiedError("cannot-store", f"{destination}: {exc.strerror or exc}") from exc
        digests = [hashlib.new(name) for name in ALGORITHMS]
        view = read_buffer()
        wanted = before.st_size if limit is None else min(before.st_size, limit)
        try:
            with os.fdopen(fd, "rb", buffering=0, closefd=False) as handle:
                while limit is None or written < limit:
                    count = handle.readinto(view)
                    if not count:
                        break
                    if limit is not None and written + count > limit:
                        count = limit - written
                    chunk = view[:count]
                    for digest in digests:
                        digest.update(chunk)
                    done = 0
                    while done < count:
                        done += os.write(out, chunk[done:])
                    written += count
                    if progress is not None:
                        progress(count)
            after = os.fstat(fd)
        except OSError as exc:
            os.close(out)
            os.unlink(destination)
            raise NotCopiedError("unreadable", exc.strerror or str(exc)) from exc
        os.close(out)
    finally:
        os.close(fd)
    os.utime(destination, ns=(before.st_atime_ns, before.st_mtime_ns))
    record.collected_utc = utc_now()
    record.stored_size = written
    record.md5, record.sha1, record.sha256 = (d.hexdigest() for d in digests)
    if limit is not None and before.st_size > limit:
        record.status = "truncated"
        record.error = (
            f"larger than --max-file-size: first {written} of {before.st_size} bytes stored"
        )
    elif (
        after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
        or written != wanted
    ):
        record.status = "changed"
        record.error = (
            f"changed while copied: size {before.st_size} before, {after.st_size} after, "
            f"{written} bytes stored"
        )
    return record
