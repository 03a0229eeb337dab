"""Reading scan targets safely, and the per-file values of the YARA externals.

irkit reads each file itself and hands YARA the bytes (``rules.match(data=…)``), rather
than ``match(filepath=…)``: libyara opens a path with plain ``open()``, which follows a
symbolic link and blocks forever on a FIFO, and maps the file, which kills the process
with SIGBUS when a live file is truncated under the scan. Here a file is opened with
``O_NOFOLLOW | O_NONBLOCK``, checked with ``fstat`` to be the regular file that was
listed, and read whole into memory (bounded by ``max_size`` and a shared byte budget).
"""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
from collections.abc import Sequence
from typing import Final

from irkit.detect.yara_rules import file_type
from irkit.files.fileio import open_evidence

#: Bytes of a file's start used to name its type (the longest magic is shorter).
HEAD: Final = 64


@dataclasses.dataclass(slots=True)
class ReadResult:
    """A file's bytes, or why there are none; ``note`` says what went wrong."""

    data: bytes | None
    status: str
    note: str = ""
    info: os.stat_result | None = None


def read_regular(path: str, listed: os.stat_result | None) -> ReadResult:
    """Read a regular file whole without following a link or opening a FIFO or device.

    ``status``: ``read``, ``changed`` (data kept, the file moved while read),
    ``vanished``, ``unreadable``, ``replaced`` (not the file that was listed), or
    ``not-regular``.
    """
    try:
        fd = open_evidence(path)
    except FileNotFoundError:
        return ReadResult(None, "vanished", "disappeared before it was read")
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symbolic link
            return ReadResult(None, "not-regular", "a symbolic link: not followed")
        return ReadResult(None, "unreadable", exc.strerror or str(exc))
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return ReadResult(None, "not-regular", "not a regular file: not read")
        if listed is not None and (before.st_dev, before.st_ino) != (
            listed.st_dev,
            listed.st_ino,
        ):
            return ReadResult(None, "replaced", "replaced by another file while listed")
        chunks = []
        left = before.st_size
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        after = os.fstat(fd)
    except OSError as exc:
        return ReadResult(None, "unreadable", exc.strerror or str(exc))
    finally:
        os.close(fd)
    if (
        after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
        or len(data) != before.st_size
    ):
        note = f"changed while it was read: {before.st_size} bytes before, {len(data)} read"
        return ReadResult(data, "changed", note, before)
    return ReadResult(data, "read", "", before)


class ByteBudget:
    """Bytes of file data held in memory at once, across the scanning threads.

    A file larger than the whole budget still runs, alone.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.cond = threading.Condition()

    def acquire(self, size: int) -> None:
        """Wait until ``size`` more bytes fit (or nothing else is held)."""
        with self.cond:
            while self.used and self.used + size > self.limit:
                self.cond.wait()
            self.used += size

    def release(self, size: int) -> None:
        """Give ``size`` bytes back."""
        with self.cond:
            self.used -= size
            self.cond.notify_all()


_OWNERS: dict[int, str] = {}


def owner_name(uid: int) -> str:
    """The user name owning a file (``owner`` external), else the uid as text."""
    name = _OWNERS.get(uid)
    if name is None:
        try:
            import pwd

            name = pwd.getpwuid(uid).pw_name
        except (ImportError, KeyError):
            name = str(uid)
        _OWNERS[uid] = name
    return name


def file_externals(
    path: str, data: bytes, info: os.stat_result | None, magic: Sequence[tuple[bytes, str]]
) -> dict[str, str]:
    """``filename``, ``filepath`` (the whole path, as LOKI sets it), ``extension``
    (lower case, with its dot), ``filetype`` and ``owner`` for one scanned file."""
    name = path.rpartition(os.sep)[2]
    stem, dot, suffix = name.rpartition(".")
    return {
        "filename": name,
        "filepath": path,
        "extension": f".{suffix.lower()}" if dot and stem.strip(".") else "",
        "filetype": file_type(data[:HEAD], magic),
        "owner": owner_name(info.st_uid) if info is not None else "",
    }
