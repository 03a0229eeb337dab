"""The collection zip: written from the folder, and read back without trusting it.

Reading refuses, before anything is written: names that climb out (``..``) or are
absolute, symbolic-link entries, duplicate names, entries whose data overlap, and zip
bombs (more than ``IRKIT_ZIP_MAX_BYTES`` in all, or an entry over 16 MiB that expands
more than ``IRKIT_ZIP_MAX_RATIO`` times). While extracting, an entry that yields more
bytes than it declares stops the extraction and removes what was written.
"""

from __future__ import annotations

import calendar
import hashlib
import itertools
import os
import re
import shutil
import stat
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from irkit.errors import EvidenceError

MAX_TOTAL_BYTES: Final = 64 << 30
MAX_RATIO: Final = 500
RATIO_MIN_SIZE: Final = 16 << 20
_COPY: Final = 1 << 20
_DRIVE: Final = re.compile(r"^[A-Za-z]:")


def _limit(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def sha256_of(path: Path) -> str:
    """sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_COPY):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def write_zip(folder: Path, target: Path) -> str:
    """Zip every file under ``folder`` (names relative to it); returns the zip's sha256."""
    with zipfile.ZipFile(target, "x", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for path in _files(folder):
            info_stat = path.lstat()
            if not stat.S_ISREG(info_stat.st_mode):
                continue
            name = path.relative_to(folder).as_posix()
            stamp = time.gmtime(max(info_stat.st_mtime, 315532800))  # zip starts in 1980
            info = zipfile.ZipInfo(name, date_time=stamp[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o640) << 16
            info.file_size = info_stat.st_size
            with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as out:
                shutil.copyfileobj(source, out, _COPY)
    return sha256_of(target)


def _refuse(archive: Path, message: str) -> EvidenceError:
    return EvidenceError(
        f"refusing {archive}: {message}",
        hint="the zip is not a collection irkit wrote, or it was tampered with; "
        "inspect it by hand (unzip -l) before trusting it",
    )


def check_entries(archive: Path, zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Every entry, checked; raises ``EvidenceError`` naming the first bad one."""
    max_total = _limit("IRKIT_ZIP_MAX_BYTES", MAX_TOTAL_BYTES)
    max_ratio = _limit("IRKIT_ZIP_MAX_RATIO", MAX_RATIO)
    entries = zf.infolist()
    seen: set[str] = set()
    total = 0
    for info in entries:
        name = info.filename
        shown = name.encode("unicode_escape").decode("ascii")
        parts = re.split(r"[/\\]", name)
        if "\0" in name:
            raise _refuse(archive, f"entry {shown!r} has a NUL byte in its name")
        if name.startswith(("/", "\\")) or _DRIVE.match(name):
            raise _refuse(archive, f"entry {shown!r} has an absolute path")
        if ".." in parts:
            raise _refuse(archive, f"entry {shown!r} climbs out of the folder (path traversal)")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _refuse(archive, f"entry {shown!r} is a symbolic link")
        if name in seen:
            raise _refuse(archive, f"entry {shown!r} appears twice")
        seen.add(name)
        total += info.file_size
        if info.file_size > RATIO_MIN_SIZE and (
            info.compress_size == 0 or info.file_size / info.compress_size > max_ratio
        ):
            ratio = info.file_size / max(info.compress_size, 1)
            raise _refuse(
                archive,
                f"entry {shown!r} expands {ratio:,.0f} times ({info.file_size:,} bytes): "
                f"a zip bomb (limit {max_ratio}:1, IRKIT_ZIP_MAX_RATIO)",
            )
    if total > max_total:
        raise _refuse(
            archive,
            f"it expands to {total:,} bytes, more than {max_total:,} (IRKIT_ZIP_MAX_BYTES): "
            "a zip bomb",
        )
    ordered = sorted(entries, key=lambda i: i.header_offset)
    for first, second in itertools.pairwise(ordered):
        if first.header_offset + first.compress_size > second.header_offset:
            raise _refuse(archive, "entries overlap in the file (an overlapping zip bomb)")
    return entries


def extract(archive: Path, destination: Path) -> None:
    """Unpack a collection zip into ``destination`` (created; must not exist)."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise EvidenceError(f"{archive} is not a readable zip: {exc}") from exc
    with zf:
        entries = check_entries(archive, zf)
        total = sum(i.file_size for i in entries)
        destination.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(destination.parent).free
        if total > free:
            raise _refuse(archive, f"it expands to {total:,} bytes; only {free:,} are free")
        destination.mkdir()
        try:
            for info in entries:
                _extract_one(archive, zf, info, destination)
        except BaseException:
            shutil.rmtree(destination, ignore_errors=True)
            raise


def _extract_one(
    archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path
) -> None:
    target = destination.joinpath(*[p for p in info.filename.split("/") if p])
    if destination not in target.parents and target != destination:
        raise _refuse(archive, f"entry {info.filename!r} would be written outside")
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o640)
    try:
        with zf.open(info) as source, os.fdopen(fd, "wb", closefd=False) as out:
            while block := source.read(_COPY):
                written += len(block)
                if written > info.file_size:
                    raise _refuse(archive, f"entry {info.filename!r} holds more than it declares")
                out.write(block)
    except (zipfile.BadZipFile, zlib_error()) as exc:
        raise _refuse(archive, f"entry {info.filename!r} is damaged: {exc}") from exc
    finally:
        os.close(fd)
    date = calendar.timegm((*info.date_time, 0, 0, 0))
    os.utime(target, (date, date))


def zlib_error() -> type[Exception]:
    """The error zlib raises on damaged data."""
    import zlib

    return zlib.error
