"""`irkit hash`: every regular file the walk lists read once, for every digest, on threads.

One read of a file feeds every requested digest; files are hashed on a pool of threads
(hashlib releases the GIL on large updates, and OpenSSL uses the CPU's SHA
instructions) a bounded window ahead of the walk (``irkit.files.walk``), and reported in
walk order. A file is opened only with ``O_NOFOLLOW | O_NONBLOCK``, and ``fstat`` checks
that what was opened is the file listed (a FIFO swapped in is not read). A file that
cannot be read, vanished, or changed while it was read is a counted, named warning; the
run goes on. A digest found in the hash IOC lists becomes a finding.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from irkit.files.fileio import iso_ns, open_evidence, read_buffer
from irkit.files.options import HashOptions, HashSummary
from irkit.files.walk import FileEntry, Walker
from irkit.model import Finding, Severity

if TYPE_CHECKING:
    from irkit.files.ioc import IocSet

#: Files hashed ahead of the one being reported: bounds memory, keeps the order.
WINDOW: Final = 256


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
                    elif not algorithms:  # --algorithms none: times and metadata only
                        entry.status = "not-hashed"
                    elif limit is not None and entry.size > limit:
                        entry.status = "too-big"
                        entry.note = f"larger than --max-size ({limit} bytes): not hashed"
                        walker.note(entry.path, "too-big", entry.note)
                    else:
                        future = pool.submit(hash_file, entry, algorithms, options.follow_symlinks)
                if future is None and not pending:  # nothing ahead of it: report it now
                    report(entry)
                    continue
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
    from irkit.files.eventcolumns import utf8_text
    from irkit.store.spool import uid

    sha = entry.digests.get("sha256", "")
    return Finding(
        ts=iso_ns(entry.info.st_mtime_ns),
        severity=Severity.HIGH,
        detector="ioc",
        rule=f"hash-ioc:{kind}:{digest}",
        title=f"Known-bad file hash ({kind.upper()})",
        description=description or "listed in a hash IOC list",
        event_uid=uid(sha, utf8_text(entry.path), "File Modified"),
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
