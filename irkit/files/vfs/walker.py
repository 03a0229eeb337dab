"""``walk``: every entry of every file system in an image, or every member of an archive."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from dfvfs.resolver import context as dfvfs_context

from irkit.errors import EvidenceError
from irkit.files.vfs.archives import ARCHIVE_KINDS, MAX_RATIO, RATIO_FLOOR, ArchiveWalk
from irkit.files.vfs.entry import Entry
from irkit.files.vfs.filesystem import FileSystemWalk
from irkit.files.vfs.signatures import HEAD_SIZE, container_kind
from irkit.files.vfs.volumes import Volume, VolumeScan
from irkit.files.vfs.warn import Warner
from irkit.model import ParseWarning


def _kind(path: Path) -> str | None:
    try:
        with path.open("rb") as stream:
            head = stream.read(HEAD_SIZE)
            size = os.fstat(stream.fileno()).st_size
    except FileNotFoundError as exc:
        raise EvidenceError(f"no such file: {path}", hint="check the path") from exc
    except OSError as exc:
        raise EvidenceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return container_kind(head, path, size)


def scan_volumes(
    path: Path, *, vss: bool = False, warnings: list[ParseWarning], display: str | None = None
) -> list[Volume]:
    """The volumes dfVFS finds in the image at ``path``, and what each holds."""
    image = display or str(path)
    warner = Warner(warnings)
    context = dfvfs_context.Context()
    try:
        return VolumeScan(image, context, warner, vss).scan(str(path.absolute()))
    finally:
        context.Empty()
        warner.finish(image)


def walk(
    path: Path,
    *,
    vss: bool = False,
    warnings: list[ParseWarning],
    display: str | None = None,
    kind: str | None = None,
    max_ratio: int = MAX_RATIO,
    ratio_floor: int = RATIO_FLOOR,
) -> Iterator[Entry]:
    """Every entry inside the image or archive at ``path``, as ``Entry``s.

    ``display`` names the image in ``Entry.display`` (default: ``path`` as given);
    ``kind`` is ``container_kind``'s answer, if the caller has it. Problems are named
    warnings appended to ``warnings`` as the walk goes; only a missing or unreadable
    ``path`` raises (``EvidenceError``).
    """
    image = display or str(path)
    if kind is None:
        kind = _kind(path)
    elif not path.exists():
        raise EvidenceError(f"no such file: {path}", hint="check the path")
    warner = Warner(warnings)
    absolute = str(path.absolute())
    try:
        if kind in ARCHIVE_KINDS:
            yield from ArchiveWalk(absolute, kind, image, warner, max_ratio, ratio_floor).entries()
            return
        context = dfvfs_context.Context()
        try:
            for volume in VolumeScan(image, context, warner, vss).scan(absolute):
                if volume.status == "ok":
                    walker = FileSystemWalk(
                        volume.file_system, image, volume.label, context, warner
                    )
                    yield from walker.entries()
        finally:
            context.Empty()
    finally:
        warner.finish(image)
