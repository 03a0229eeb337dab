"""The tree walk of ``irkit hash``: every entry listed once, in order, and why any is skipped.

Depth-first, names sorted: the same tree always walks in the same order. The walk never
hangs and never escapes the trees it was given:

- it does not follow symbolic links unless asked, and then remembers every directory it
  entered, so a link loop ends;
- it stays on the file system of each root unless asked, and never enters a
  pseudo-file system (proc, sysfs, devtmpfs, cgroup, …) at all;
- a FIFO, socket or device is listed (metadata only), never opened;
- a permission error, a file that vanished, a link that loops or leads nowhere are
  counted, named skip reasons (``HashSummary.skipped``) with a warning or a note; the
  walk goes on.

A ``FileEntry`` is one walked entry; a regular file leaves the walk ``pending``, for
``irkit.files.hashing`` to read.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from irkit.errors import EvidenceError
from irkit.files.fileio import PSEUDO_FS, birth_ns, iso_ns, mount_types, on_pseudo_filesystem
from irkit.files.options import HashOptions, HashSummary
from irkit.model import ParseWarning

S_ISREG: Final = stat.S_ISREG

#: TSK's name-type letter for each kind of entry.
_TYPE_LETTER: Final = {
    stat.S_IFREG: "r",
    stat.S_IFDIR: "d",
    stat.S_IFLNK: "l",
    stat.S_IFIFO: "p",
    stat.S_IFSOCK: "s",
    stat.S_IFCHR: "c",
    stat.S_IFBLK: "b",
}


@dataclasses.dataclass(slots=True)
class FileEntry:
    """One walked entry: its metadata, and its digests once hashed."""

    path: str
    root: str
    info: os.stat_result
    type: str
    target: str = ""
    digests: dict[str, str] = dataclasses.field(default_factory=dict)
    status: str = "not-regular"
    note: str = ""
    _btime: str | None = None
    _born: int | None = None

    @property
    def size(self) -> int:
        """Size in bytes from lstat."""
        return self.info.st_size

    @property
    def born_ns(self) -> int:
        """Birth time in nanoseconds since the epoch, 0 when unknown (asked once)."""
        if self._born is None:
            self._born = birth_ns(self.info, self.path) or 0
        return self._born

    @property
    def btime(self) -> str:
        """Birth time, ISO 8601 UTC, or "" (asked of the file system once)."""
        if self._btime is None:
            born = self.born_ns
            self._btime = iso_ns(born) if born else ""
        return self._btime


class Walker:
    """Depth-first, names sorted: the same tree always walks in the same order."""

    def __init__(self, options: HashOptions, summary: HashSummary) -> None:
        self.options = options
        self.summary = summary
        self.mounts = mount_types()
        self.pseudo = frozenset(p for p, kind in self.mounts.items() if kind in PSEUDO_FS)
        self.visited: set[tuple[int, int]] = set()

    def note(self, path: str, kind: str, message: str) -> None:
        self.summary.skipped[kind] += 1
        self.summary.notes.append(ParseWarning(path, kind, message))

    def warn(self, path: str, kind: str, message: str) -> None:
        self.summary.skipped[kind] += 1
        self.summary.warnings.append(ParseWarning(path, kind, message))

    def excluded(self, path: str) -> bool:
        name = os.path.basename(path)
        return any(
            fnmatch.fnmatchcase(path, glob) or fnmatch.fnmatchcase(name, glob)
            for glob in self.options.excludes
        )

    def in_pseudo(self, path: str) -> bool:
        return on_pseudo_filesystem(path, self.mounts)

    def walk(self, root: Path) -> Iterator[FileEntry]:
        top = str(root)
        try:
            info = os.lstat(top)
        except FileNotFoundError as exc:
            raise EvidenceError(
                f"no such file or directory: {root}", hint="check the path"
            ) from exc
        except OSError as exc:
            self.warn(top, "unreadable", exc.strerror or str(exc))
            return
        if self.in_pseudo(top):
            self.note(top, "pseudo-filesystem", "a view of the kernel, not files: not read")
            return
        if stat.S_ISLNK(info.st_mode) and self.options.follow_symlinks:
            try:
                info = os.stat(top)
            except OSError as exc:
                self.warn(top, "broken-link", exc.strerror or str(exc))
                return
        yield from self.walk_entry(top, top, info, info.st_dev)

    def walk_entry(
        self, path: str, root: str, info: os.stat_result, device: int
    ) -> Iterator[FileEntry]:
        mode = info.st_mode
        entry = FileEntry(path, root, info, _TYPE_LETTER.get(stat.S_IFMT(mode), "-"))
        if stat.S_ISLNK(mode):
            entry.status = "link"
            try:
                entry.target = os.readlink(path)
            except OSError:
                entry.target = ""
            self._check_link(path)
            yield entry
            return
        if stat.S_ISREG(mode):
            entry.status = "pending"
            yield entry
            return
        if not stat.S_ISDIR(mode):
            kind = {"p": "fifo", "s": "socket", "c": "device", "b": "device"}.get(entry.type)
            self.note(path, kind or "special-file", "not a regular file: metadata only, not opened")
            yield entry
            return
        entry.status = "directory"
        yield entry
        yield from self._directory(path, root, info, device)

    def _check_link(self, path: str) -> None:
        """Name a link that loops or points nowhere; it is not followed either way."""
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == 40:  # ELOOP
                self.note(path, "symlink-loop", "symbolic link loop: not followed")
            else:
                self.note(path, "broken-link", "symbolic link to nothing")
            return
        self.summary.skipped["symlink-not-followed"] += 1

    def _directory(
        self, path: str, root: str, info: os.stat_result, device: int
    ) -> Iterator[FileEntry]:
        key = (info.st_dev, info.st_ino)
        if key in self.visited:
            self.note(path, "symlink-loop", "directory already walked (link loop): not entered")
            return
        self.visited.add(key)
        if info.st_dev != device and not self.options.cross_filesystems:
            self.note(path, "other-filesystem", "another file system: not entered")
            return
        if path in self.pseudo:
            self.note(path, "pseudo-filesystem", "a view of the kernel, not files: not entered")
            return
        try:
            with os.scandir(path) as listing:
                children = sorted(listing, key=lambda e: e.name)
        except FileNotFoundError:
            self.warn(path, "vanished", "directory disappeared before it was read")
            return
        except OSError as exc:
            self.warn(path, "unreadable-directory", exc.strerror or str(exc))
            return
        excludes = self.options.excludes
        for child in children:
            child_path = child.path
            if excludes and self.excluded(child_path):
                self.summary.skipped["excluded"] += 1
                continue
            try:
                child_info = child.stat(follow_symlinks=False)
                if stat.S_ISLNK(child_info.st_mode) and self.options.follow_symlinks:
                    try:
                        child_info = os.stat(child_path)
                    except OSError as exc:
                        kind = "symlink-loop" if exc.errno == 40 else "broken-link"
                        self.note(child_path, kind, exc.strerror or str(exc))
                        continue
            except FileNotFoundError:
                self.warn(child_path, "vanished", "disappeared before it was read")
                continue
            except OSError as exc:
                self.warn(child_path, "unreadable", exc.strerror or str(exc))
                continue
            if S_ISREG(child_info.st_mode):  # most entries: no generator of their own
                yield FileEntry(child_path, root, child_info, "r", status="pending")
                continue
            yield from self.walk_entry(child_path, root, child_info, device)
