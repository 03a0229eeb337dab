"""`irkit hash`: walk trees, hash every regular file once, turn file times into events.

One read of a file feeds every requested digest; files are hashed on a pool of threads
(hashlib releases the GIL on large updates, and OpenSSL uses the CPU's SHA
instructions). The walk never hangs and never escapes the trees it was given:

- it opens only regular files, with ``O_NOFOLLOW | O_NONBLOCK``, and checks with
  ``fstat`` that what it opened is the file it listed (a FIFO swapped in is not read);
- it does not follow symbolic links unless asked, and then remembers every directory it
  entered, so a link loop ends;
- it stays on the file system of each root unless asked, and never enters a
  pseudo-file system (proc, sysfs, devtmpfs, cgroup, …) at all;
- a permission error, a file that vanished, a file that changed while it was read are
  counted, named warnings; the run goes on.

Every entry (file, directory, link, FIFO…) gives one event per known time (``File
Modified``, ``File Accessed``, ``File Changed``, ``File Created``), with its metadata
and digests in ``fields``: the same convention as the bodyfile source.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import fnmatch
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from irkit.errors import EvidenceError, UsageError
from irkit.fileio import (
    PSEUDO_FS,
    birth_time,
    iso_ns,
    mount_types,
    on_pseudo_filesystem,
    open_evidence,
    read_buffer,
)
from irkit.model import Finding, ParseWarning, Severity

if TYPE_CHECKING:
    from irkit.ioc import IocSet
    from irkit.sources.base import Row

ALGORITHMS: Final = ("md5", "sha1", "sha256")
#: The time fields of a file event, its ts_desc and its MACB letter.
TIMES: Final = (
    ("mtime", "File Modified", "m"),
    ("atime", "File Accessed", "a"),
    ("ctime", "File Changed", "c"),
    ("btime", "File Created", "b"),
)
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
#: Files hashed ahead of the one being reported: bounds memory, keeps the order.
WINDOW: Final = 256


@dataclasses.dataclass(slots=True)
class HashOptions:
    """What to hash and how far to go."""

    algorithms: tuple[str, ...] = ALGORITHMS
    follow_symlinks: bool = False
    cross_filesystems: bool = False
    max_size: int | None = None
    excludes: tuple[str, ...] = ()
    workers: int = 0
    #: sha256 of files already read whole by a parser (``irkit triage``), by normalised
    #: path: their events carry it and they are not read a second time.
    known: dict[str, str] = dataclasses.field(default_factory=dict)

    def thread_count(self) -> int:
        """Hashing threads: as asked, else one per core."""
        return max(1, self.workers or os.cpu_count() or 1)


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

    @property
    def size(self) -> int:
        """Size in bytes from lstat."""
        return self.info.st_size

    @property
    def btime(self) -> str:
        """Birth time, ISO 8601 UTC, or "" (asked of the file system once)."""
        if self._btime is None:
            self._btime = birth_time(self.info, self.path)
        return self._btime


@dataclasses.dataclass(slots=True)
class HashSummary:
    """What one hash run did; ``--json`` prints ``as_dict()``."""

    run_id: str = ""
    entries: int = 0
    files: int = 0
    hashed: int = 0
    bytes_hashed: int = 0
    events: int = 0
    events_added: int = 0
    seconds: float = 0.0
    algorithms: tuple[str, ...] = ()
    skipped: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    warnings: list[ParseWarning] = dataclasses.field(default_factory=list)
    notes: list[ParseWarning] = dataclasses.field(default_factory=list)
    findings: list[Finding] = dataclasses.field(default_factory=list)
    iocs_loaded: int = 0

    @property
    def partial(self) -> bool:
        """True when a file could not be read whole (unreadable, vanished, changed)."""
        return bool(self.warnings)

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data, stable key order."""
        return {
            "run_id": self.run_id,
            "entries": self.entries,
            "regular_files": self.files,
            "files_hashed": self.hashed,
            "bytes_hashed": self.bytes_hashed,
            "algorithms": list(self.algorithms),
            "events": self.events,
            "events_added": self.events_added,
            "skipped": dict(sorted(self.skipped.items())),
            "warnings": [dataclasses.asdict(w) for w in self.warnings],
            "notes": [dataclasses.asdict(n) for n in self.notes],
            "iocs_loaded": self.iocs_loaded,
            "findings": [
                {"uid": f.uid, "severity": str(f.severity), "title": f.title, "path": f.evidence}
                for f in self.findings
            ],
            "seconds": round(self.seconds, 3),
            "mb_per_second": round(self.bytes_hashed / 1e6 / self.seconds, 1)
            if self.seconds
            else 0.0,
        }


def parse_algorithms(text: str) -> tuple[str, ...]:
    """``md5,sha1,sha256`` as a tuple in that canonical order; anything else is refused."""
    wanted = {part.strip().lower().replace("-", "") for part in text.split(",") if part.strip()}
    unknown = wanted - set(ALGORITHMS)
    if unknown or not wanted:
        raise UsageError(
            f"unknown hash algorithm: {', '.join(sorted(unknown)) or '(none)'}",
            hint="choose from md5, sha1, sha256, comma-separated",
        )
    return tuple(a for a in ALGORITHMS if a in wanted)


def parse_size(text: str) -> int:
    """``500``, ``64K``, ``100M``, ``2G`` (powers of 1024) as bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    body = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (body[:-1], body[-1]) if body and body[-1] in units else (body, "")
    try:
        value = int(float(number) * units[unit])
    except ValueError as exc:
        raise UsageError(f"not a size: {text!r}", hint="for example 500, 64K, 100M or 2G") from exc
    if value < 0:
        raise UsageError(f"a size cannot be negative: {text!r}")
    return value


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
        for child in children:
            child_path = child.path
            if self.excluded(child_path):
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
            yield from self.walk_entry(child_path, root, child_info, device)


def hash_file(entry: FileEntry, algorithms: Sequence[str], follow: bool = False) -> FileEntry:
    """Read one regular file once, feeding every digest; sets status and digests.

    Never raises for the file's own problems: they become ``status`` and ``note``.
    """
    path = entry.path
    try:
        fd = open_evidence(path, follow)
    except FileNotFoundError:
        entry.status, entry.note = "vanished", "disappeared before it was read"
        return entry
    except OSError as exc:
        entry.status, entry.note = "unreadable", exc.strerror or str(exc)
        return entry
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or (before.st_dev, before.st_ino) != (
            entry.info.st_dev,
            entry.info.st_ino,
        ):
            entry.status, entry.note = "replaced", "replaced by another file while listed"
            return entry
        view = read_buffer()
        digests = [hashlib.new(name) for name in algorithms]
        total = 0
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as handle:
            while count := handle.readinto(view):
                chunk = view[:count]
                for digest in digests:
                    digest.update(chunk)
                total += count
        after = os.fstat(fd)
    except OSError as exc:
        entry.status, entry.note = "unreadable", exc.strerror or str(exc)
        return entry
    finally:
        os.close(fd)
    entry.digests = {name: d.hexdigest() for name, d in zip(algorithms, digests, strict=True)}
    changed = (
        after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
        or total != before.st_size
        or before.st_size != entry.info.st_size
        or before.st_mtime_ns != entry.info.st_mtime_ns
    )
    if changed:
        entry.status = "changed"
        entry.note = (
            f"changed while it was read: size {entry.info.st_size} before, "
            f"{after.st_size} after, {total} bytes read"
        )
    else:
        entry.status = "hashed"
    return entry


def entry_fields(entry: FileEntry) -> dict[str, str]:
    """A file's metadata and digests as the flat text fields every file event carries."""
    info = entry.info
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
        "mtime": iso_ns(info.st_mtime_ns),
        "atime": iso_ns(info.st_atime_ns),
        "ctime": iso_ns(info.st_ctime_ns),
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
    from irkit.messages import one_line

    fields = entry_fields(entry)
    blob = orjson.dumps(fields)
    what = f"{fields['size']} bytes, {fields['mode']}, uid {fields['uid']}"
    if entry.digests.get("sha256"):
        what += f", sha256 {entry.digests['sha256'][:16]}…"
    rows: list[Row] = []
    for key, desc, letter in TIMES:
        ts = fields[key]
        if not ts:
            continue
        message = one_line(f"{desc}: {entry.path} ({what})")
        rows.append((ts, desc, entry.root, "", fields["uid"], letter, message, blob, entry.path))
    return rows


def digest_line(entry: FileEntry, algorithm: str) -> str:
    """A ``sha256sum``-style line (GNU escaping for names with ``\\`` or a newline)."""
    name = entry.path
    digest = entry.digests[algorithm]
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


def hash_paths(
    roots: Sequence[Path],
    options: HashOptions,
    on_entry: Callable[[FileEntry], None],
    summary: HashSummary,
    iocs: IocSet | None = None,
    progress: Callable[[int], None] | None = None,
) -> HashSummary:
    """Walk and hash ``roots``; ``on_entry`` gets every entry in walk order, hashed.

    Regular files are hashed on a thread pool a bounded window ahead of the walk, and
    reported in walk order, so output is deterministic whatever the thread timing.
    """
    started = time.perf_counter()
    summary.algorithms = options.algorithms
    walker = Walker(options, summary)
    algorithms = options.algorithms
    limit = options.max_size
    pending: collections.deque[tuple[FileEntry, cf.Future[FileEntry] | None]] = collections.deque()

    def report(entry: FileEntry) -> None:
        summary.entries += 1
        if entry.type == "r":
            summary.files += 1
        if entry.status in ("hashed", "changed"):
            summary.hashed += 1
            summary.bytes_hashed += entry.size
            if progress is not None:
                progress(entry.size)
        if entry.status == "parsed":
            summary.skipped["read-by-parser"] += 1
        if entry.status == "changed":
            walker.warn(entry.path, "changed-while-read", entry.note)
        elif entry.status in ("unreadable", "vanished", "replaced"):
            walker.warn(entry.path, entry.status, entry.note)
        if iocs is not None and entry.digests and (hit := iocs.match(entry.digests)):
            summary.findings.append(
                ioc_finding(entry, hit.digest, hit.kind, hit.description, hit.list_name, hit.line)
            )
        on_entry(entry)

    with cf.ThreadPoolExecutor(options.thread_count(), thread_name_prefix="irkit-hash") as pool:
        for root in roots:
            for entry in walker.walk(root):
                future = None
                if entry.status == "pending":
                    sha = options.known.get(os.path.normpath(entry.path)) if options.known else None
                    if sha:
                        entry.status, entry.digests = "parsed", {"sha256": sha}
                    elif limit is not None and entry.size > limit:
                        entry.status = "too-big"
                        entry.note = f"larger than --max-size ({limit} bytes): not hashed"
                        walker.note(entry.path, "too-big", entry.note)
                    else:
                        future = pool.submit(hash_file, entry, algorithms, options.follow_symlinks)
                pending.append((entry, future))
                while len(pending) > WINDOW:
                    done, job = pending.popleft()
                    report(job.result() if job is not None else done)
        while pending:
            done, job = pending.popleft()
            report(job.result() if job is not None else done)
    summary.seconds = time.perf_counter() - started
    return summary


def ioc_finding(
    entry: FileEntry, digest: str, kind: str, description: str, list_name: str, line: int
) -> Finding:
    """A hash IOC match: a high-severity finding resting on the file's modified event."""
    from irkit.spool import uid

    sha = entry.digests.get("sha256", "")
    return Finding(
        ts=iso_ns(entry.info.st_mtime_ns),
        severity=Severity.HIGH,
        detector="ioc",
        rule=f"hash-ioc:{kind}:{digest}",
        title=f"Known-bad file hash ({kind.upper()})",
        description=description or "listed in a hash IOC list",
        event_uid=uid(sha, entry.path, "File Modified"),
        source="file",
        host="",
        evidence=entry.path,
        record=entry.path,
        details={
            "ioc": digest,
            "ioc_kind": kind,
            "ioc_list": list_name,
            "ioc_line": str(line),
            "path": entry.path,
            "sha256": sha,
        },
    )
